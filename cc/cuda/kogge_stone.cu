// tfe-accel: bit extraction and Kogge-Stone carry steps of TFE's ABY3 comparisons / sigmoid
// (`msb` -> `bit_extract` -> `carry`), one party's local work per kernel, bit-identical to
// cc/kernels/sigmoid_steps.cc (read it for the protocol); the per-element arithmetic is
// cc/kernels/mpc_local.h, shared with the CPU kernels. Boolean zero shares are expanded
// in-kernel: one thread per ChaCha20 block (8 int64 or 16 narrow elements).
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "chacha20.cuh"
#include "common.cuh"
#include "tfe_cuda.h"
#include "../kernels/mpc_local.h"

namespace tfe_accel {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
struct PerBlock {
  static constexpr int value = sizeof(T) == 8 ? 8 : 16;
};

// [T::min, T::max) of the narrow boolean word types (device-usable constants).
template <typename T> struct NarrowRange;
template <> struct NarrowRange<std::int32_t> { static constexpr std::int64_t lo = -2147483648LL, hi = 2147483647LL; };
template <> struct NarrowRange<std::int16_t> { static constexpr std::int64_t lo = -32768, hi = 32767; };
template <> struct NarrowRange<std::int8_t> { static constexpr std::int64_t lo = -128, hi = 127; };

// v[j] = U_T(key)[b * PerBlock<T> + j] as the unsigned bit pattern of T, zero-extended.
template <typename T>
__device__ __forceinline__ void DrawBlock(const Seed& key, i64 b, u64 v[16]) {
  u32 blk[16];
  PrgBlock(key, static_cast<u64>(b), 0, blk);
  using UT = typename std::make_unsigned<T>::type;
  if constexpr (sizeof(T) == 8) {
    const UniformParams p = {0x8000000000000000ull, 0xffffffffffffffffull, 1ull};  // TfeInt64Params
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const u64 u = static_cast<u64>(blk[2 * j]) | (static_cast<u64>(blk[2 * j + 1]) << 32);
      v[j] = UniformFromDraw(key, p, 8 * b + j, u);
    }
  } else {
    NarrowParams q;
    q.lo = NarrowRange<T>::lo;
    q.range = static_cast<u32>(NarrowRange<T>::hi - NarrowRange<T>::lo);
    q.thresh = (0u - q.range) % q.range;
#pragma unroll
    for (int j = 0; j < 16; ++j)
      v[j] = static_cast<UT>(static_cast<T>(NarrowFromDraw(key, q, 16 * b + j, blk[j])));
  }
}

// z[j] = alpha bits (U_T(a) ^ U_T(b)) of block b, zero-extended.
template <typename T>
__device__ __forceinline__ void ZeroShareBlock(const Seed& a, const Seed& b, i64 blk, u64 z[16]) {
  u64 va[16], vb[16];
  DrawBlock<T>(a, blk, va);
  DrawBlock<T>(b, blk, vb);
#pragma unroll
  for (int j = 0; j < PerBlock<T>::value; ++j) z[j] = va[j] ^ vb[j];
}

using local::ZeroExt;

__device__ __forceinline__ i64 BlockStart() { return blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ i64 BlockStride() { return static_cast<i64>(gridDim.x) * blockDim.x; }

template <typename T>
__global__ void BoolZeroShareKernel(Seed a, Seed b, T* out, i64 n) {
  constexpr int P = PerBlock<T>::value;
  const i64 nb = (n + P - 1) / P;
  for (i64 blk = BlockStart(); blk < nb; blk += BlockStride()) {
    u64 z[16];
    ZeroShareBlock<T>(a, b, blk, z);
#pragma unroll
    for (int j = 0; j < P; ++j)
      if (blk * P + j < n) out[blk * P + j] = static_cast<T>(z[j]);
  }
}

__global__ void BitExtractSetupKernel(int party, const u64* x_a, const u64* x_b, Seed a, Seed b,
                                      u64* out, i64 n) {
  const i64 nb = (n + 7) / 8;
  for (i64 blk = BlockStart(); blk < nb; blk += BlockStride()) {
    u64 z[16];
    ZeroShareBlock<std::int64_t>(a, b, blk, z);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const i64 i = blk * 8 + j;
      if (i < n) out[i] = party == 0 ? (z[j] ^ (x_a[i] + x_b[i])) : z[j];
    }
  }
}

__global__ void CarrySetupAndKernel(const u64* op1_a, const u64* op1_b, const u64* op2_a,
                                    const u64* op2_b, Seed a, Seed b, u64* z, u64* p_a, u64* p_b,
                                    std::int8_t* top_a, std::int8_t* top_b, i64 n) {
  const i64 nb = (n + 7) / 8;
  for (i64 blk = BlockStart(); blk < nb; blk += BlockStride()) {
    u64 alpha[16];
    ZeroShareBlock<std::int64_t>(a, b, blk, alpha);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const i64 i = blk * 8 + j;
      if (i >= n) break;
      const local::CarrySetup c = local::CarrySetupAndTerm(op1_a[i], op1_b[i], op2_a[i], op2_b[i], alpha[j]);
      z[i] = c.z;
      p_a[i] = c.p_a;
      p_b[i] = c.p_b;
      top_a[i] = c.top_a;
      top_b[i] = c.top_b;
    }
  }
}

template <typename In, typename Out>
__global__ void KoggeStoneRoundKernel(const In* g_a, const In* g_b, const In* p_a, const In* p_b,
                                      Seed a, Seed b, Seed a1, Seed b1, Out* zg, Out* zp,
                                      Out* gs1_a, Out* gs1_b, i64 n) {
  constexpr int P = PerBlock<Out>::value;
  const i64 nb = (n + P - 1) / P;
  for (i64 blk = BlockStart(); blk < nb; blk += BlockStride()) {
    u64 ag[16], ap[16];
    ZeroShareBlock<Out>(a, b, blk, ag);    // G gate's zero share (nonces N)
    ZeroShareBlock<Out>(a1, b1, blk, ap);  // P gate's zero share (nonces N + 1)
#pragma unroll
    for (int j = 0; j < P; ++j) {
      const i64 i = blk * P + j;
      if (i >= n) break;
      const local::KoggeStoneTerms<Out> r = local::KoggeStoneRoundTerm<Out>(
          ZeroExt(g_a[i]), ZeroExt(g_b[i]), ZeroExt(p_a[i]), ZeroExt(p_b[i]),
          static_cast<Out>(ag[j]), static_cast<Out>(ap[j]));
      zg[i] = r.zg;
      zp[i] = r.zp;
      gs1_a[i] = r.gs1_a;
      gs1_b[i] = r.gs1_b;
    }
  }
}

template <typename T>
__global__ void KoggeStoneUpdateKernel(const T* gs1_a, const T* gs1_b, const T* zg_own,
                                       const T* zg_recv, T* g_a, T* g_b, i64 n) {
  for (i64 i = BlockStart(); i < n; i += BlockStride()) {
    g_a[i] = local::KoggeStoneUpdateTerm<T>(gs1_a[i], zg_own[i]);
    g_b[i] = local::KoggeStoneUpdateTerm<T>(gs1_b[i], zg_recv[i]);
  }
}

unsigned Blocks(i64 work) {
  const i64 b = (work + kThreads - 1) / kThreads;
  const i64 cap = 65535LL * 16;
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

void CheckN(i64 n) {
  if (n < 0) throw KernelArgumentError("n must be >= 0, got " + std::to_string(n));
}

void CheckBytes(int bytes, const char* name) {
  if (bytes != 1 && bytes != 2 && bytes != 4 && bytes != 8)
    throw KernelArgumentError(std::string(name) + " must be 1, 2, 4 or 8, got " + std::to_string(bytes));
}

template <typename T>
void LaunchZero(const u32 sa[8], const u32 sb[8], void* out, i64 n, cudaStream_t stream) {
  constexpr int P = PerBlock<T>::value;
  TFE_ACCEL_LAUNCH(BoolZeroShareKernel<T>, Blocks((n + P - 1) / P), kThreads, 0, stream)(
      MakeSeed(sa), MakeSeed(sb), static_cast<T*>(out), n);
}

template <typename In, typename Out>
void LaunchRound(const void* g_a, const void* g_b, const void* p_a, const void* p_b, const u32 sa[8],
                 const u32 sb[8], const u32 sa1[8], const u32 sb1[8], void* zg, void* zp, void* gs1_a,
                 void* gs1_b, i64 n, cudaStream_t stream) {
  constexpr int P = PerBlock<Out>::value;
  TFE_ACCEL_LAUNCH(TFE_ACCEL_KERNEL(KoggeStoneRoundKernel<In, Out>), Blocks((n + P - 1) / P),
                   kThreads, 0, stream)(
      static_cast<const In*>(g_a), static_cast<const In*>(g_b), static_cast<const In*>(p_a),
      static_cast<const In*>(p_b), MakeSeed(sa), MakeSeed(sb), MakeSeed(sa1), MakeSeed(sb1),
      static_cast<Out*>(zg), static_cast<Out*>(zp), static_cast<Out*>(gs1_a),
      static_cast<Out*>(gs1_b), n);
}

template <typename T>
void LaunchUpdate(const void* a, const void* b, const void* zo, const void* zr, void* ga, void* gb, i64 n,
                  cudaStream_t stream) {
  TFE_ACCEL_LAUNCH(KoggeStoneUpdateKernel<T>, Blocks(n), kThreads, 0, stream)(
      static_cast<const T*>(a), static_cast<const T*>(b), static_cast<const T*>(zo),
      static_cast<const T*>(zr), static_cast<T*>(ga), static_cast<T*>(gb), n);
}

}  // namespace

void BooleanZeroShare(int elem_bytes, const u32 seed_a[8], const u32 seed_b[8], void* out, i64 n,
                      cudaStream_t stream) {
  CheckBytes(elem_bytes, "elem_bytes");
  CheckN(n);
  if (n == 0) return;
  switch (elem_bytes) {
    case 8: LaunchZero<std::int64_t>(seed_a, seed_b, out, n, stream); break;
    case 4: LaunchZero<std::int32_t>(seed_a, seed_b, out, n, stream); break;
    case 2: LaunchZero<std::int16_t>(seed_a, seed_b, out, n, stream); break;
    default: LaunchZero<std::int8_t>(seed_a, seed_b, out, n, stream); break;
  }
  Check(cudaGetLastError(), "BooleanZeroShare launch");
}

void BitExtractSetup(int party, const u64* x_a, const u64* x_b, const u32 seed_a[8],
                     const u32 seed_b[8], u64* out, i64 n, cudaStream_t stream) {
  CheckParty(party);
  CheckN(n);
  if (party == 0 && n > 0 && (x_a == nullptr || x_b == nullptr))
    throw KernelArgumentError("party 0 needs its two arithmetic shares x_a, x_b");
  if (n == 0) return;
  TFE_ACCEL_LAUNCH(BitExtractSetupKernel, Blocks((n + 7) / 8), kThreads, 0, stream)(party, x_a, x_b,
      MakeSeed(seed_a), MakeSeed(seed_b), out, n);
  Check(cudaGetLastError(), "BitExtractSetup launch");
}

void CarrySetupAnd(const u64* op1_a, const u64* op1_b, const u64* op2_a, const u64* op2_b,
                   const u32 seed_a[8], const u32 seed_b[8], u64* z, u64* p_a, u64* p_b,
                   std::int8_t* top_a, std::int8_t* top_b, i64 n, cudaStream_t stream) {
  CheckN(n);
  if (n == 0) return;
  TFE_ACCEL_LAUNCH(CarrySetupAndKernel, Blocks((n + 7) / 8), kThreads, 0, stream)(op1_a, op1_b,
      op2_a, op2_b, MakeSeed(seed_a), MakeSeed(seed_b), z, p_a, p_b, top_a, top_b, n);
  Check(cudaGetLastError(), "CarrySetupAnd launch");
}

void KoggeStoneRound(int in_bytes, const void* g_a, const void* g_b, const void* p_a,
                     const void* p_b, const u32 seed_a[8], const u32 seed_b[8],
                     const u32 seed_a1[8], const u32 seed_b1[8], void* zg, void* zp, void* gs1_a,
                     void* gs1_b, i64 n, cudaStream_t stream) {
  CheckBytes(in_bytes, "in_bytes");
  CheckN(n);
  if (n == 0) return;
  switch (in_bytes) {
    case 8: LaunchRound<std::int64_t, std::int32_t>(g_a, g_b, p_a, p_b, seed_a, seed_b, seed_a1, seed_b1, zg, zp, gs1_a, gs1_b, n, stream); break;
    case 4: LaunchRound<std::int32_t, std::int16_t>(g_a, g_b, p_a, p_b, seed_a, seed_b, seed_a1, seed_b1, zg, zp, gs1_a, gs1_b, n, stream); break;
    case 2: LaunchRound<std::int16_t, std::int8_t>(g_a, g_b, p_a, p_b, seed_a, seed_b, seed_a1, seed_b1, zg, zp, gs1_a, gs1_b, n, stream); break;
    default: LaunchRound<std::int8_t, std::int8_t>(g_a, g_b, p_a, p_b, seed_a, seed_b, seed_a1, seed_b1, zg, zp, gs1_a, gs1_b, n, stream); break;
  }
  Check(cudaGetLastError(), "KoggeStoneRound launch");
}

void KoggeStoneUpdate(int elem_bytes, const void* gs1_a, const void* gs1_b, const void* zg_own,
                      const void* zg_recv, void* g_a, void* g_b, i64 n, cudaStream_t stream) {
  CheckBytes(elem_bytes, "elem_bytes");
  CheckN(n);
  if (n == 0) return;
  switch (elem_bytes) {
    case 8: LaunchUpdate<std::int64_t>(gs1_a, gs1_b, zg_own, zg_recv, g_a, g_b, n, stream); break;
    case 4: LaunchUpdate<std::int32_t>(gs1_a, gs1_b, zg_own, zg_recv, g_a, g_b, n, stream); break;
    case 2: LaunchUpdate<std::int16_t>(gs1_a, gs1_b, zg_own, zg_recv, g_a, g_b, n, stream); break;
    default: LaunchUpdate<std::int8_t>(gs1_a, gs1_b, zg_own, zg_recv, g_a, g_b, n, stream); break;
  }
  Check(cudaGetLastError(), "KoggeStoneUpdate launch");
}

}  // namespace cuda
}  // namespace tfe_accel
