// tfe-accel: sigmoid piece evaluation steps (TFE `polynomial_piecewise`: pivot comparison set-up,
// piece selection AND, `mul_ab` 3-party OT steps and the sum over pieces, and the MSB-0 masking
// fused with a public multiplication), one party's local work per kernel, bit-identical to
// cc/kernels/sigmoid_steps.cc (read it for the protocol and the nonce offsets); the per-element
// arithmetic is cc/kernels/mpc_local.h, shared with the CPU kernels. Kernels that draw randomness
// take one thread per PRG block (8 int64 or 16 int32 elements); a stream read at an offset that is
// not block aligned (row 1 of a [2] + shape OT mask) costs one extra block per 8 elements.
#include <cuda_runtime.h>

#include <string>

#include "chacha20.cuh"
#include "common.cuh"
#include "tfe_cuda.h"
#include "../kernels/chacha20.h"
#include "../kernels/mpc_local.h"

namespace tfe_accel {
namespace cuda {
namespace {

constexpr int kThreads = 256;
// TFE's int64 range [-2^63, 2^63 - 1) (TfeInt64Params(), usable in device code).
constexpr UniformParams kFullInt64 = {0x8000000000000000ull, 0xffffffffffffffffull, 1ull};

// The seed of a draw at nonce + k (SeedPlusNonce of chacha20.h at the wrapping NonceAdd).
Seed SeedNonce(const u32 key[8], i64 nonce, i64 k = 0) {
  Seed s;
  SeedPlusNonce(key, local::NonceAdd(nonce, k), s.w);
  return s;
}

__device__ __forceinline__ i64 Start() { return blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ i64 Stride() { return static_cast<i64>(gridDim.x) * blockDim.x; }

unsigned Blocks(i64 work) {
  const i64 b = (work + kThreads - 1) / kThreads;
  const i64 cap = 65535LL * 16;
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

__global__ void PivotDiffKernel(int party, const u64* x_a, const u64* x_b, const u64* pivots, i64 n,
                                i64 total, u64* d_a, u64* d_b) {
  for (i64 t = Start(); t < total; t += Stride()) {
    const local::SharePair d = local::PivotDiffTerm(party, pivots[t / n], x_a[t % n], x_b[t % n]);
    d_a[t] = d.a;
    d_b[t] = d.b;
  }
}

// One thread per 16 elements = one ChaCha20 block of each key's int32 stream.
__global__ void PieceSelectKernel(int party, const u8* msb_a, const u8* msb_b, i64 C, i64 n,
                                  i64 total, Seed sa, Seed sb, NarrowParams bit, u8* z) {
  const i64 groups = (total + 15) / 16;
  for (i64 g = Start(); g < groups; g += Stride()) {
    u32 wa[16], wb[16];
    PrgBlock(sa, static_cast<u64>(g), 0, wa);
    PrgBlock(sb, static_cast<u64>(g), 0, wb);
    for (int k = 0; k < 16; ++k) {
      const i64 t = 16 * g + k;
      if (t >= total) break;
      const i64 j = t / n;  // msb row j is element t, row j - 1 is t - n
      const bool alpha = (NarrowFromDraw(sa, bit, t, wa[k]) != 0) != (NarrowFromDraw(sb, bit, t, wb[k]) != 0);
      z[t] = local::PieceSelectTerm(party, j, C, j < C && msb_a[t] != 0, j < C && msb_b[t] != 0,
                                    j > 0 && msb_a[t - n] != 0, j > 0 && msb_b[t - n] != 0, alpha)
                 ? 1 : 0;
    }
  }
}

// OT sender of `__mul_ab_routine`: a(t) = mode 0: f_a[t] + c0[t / n] (P0, routine 0);
// mode 1: f_a[t] + f_b[t] (P1, routine 1); messages masked with w = U([2] + shape) of the two
// seeds. One thread per 8 elements: w[0] rows are block aligned, w[1] rows start at `total`.
__global__ void OtSenderKernel(int mode, const u64* f_a, const u64* f_b, const u64* c0, i64 n,
                               const u8* b_a, const u8* b_b, const u64* s, i64 total, Seed sa,
                               Seed sb, u64* m_next, u64* m_prev) {
  const UniformParams p = kFullInt64;
  const i64 groups = (total + 7) / 8;
  for (i64 g = Start(); g < groups; g += Stride()) {
    const i64 t0 = 8 * g;
    u64 wa0[8], wa1[8], wb0[8], wb1[8];
    UniformBlock8(sa, p, g, wa0);
    UniformWindow8(sa, p, total + t0, wa1);
    UniformBlock8(sb, p, g, wb0);
    UniformWindow8(sb, p, total + t0, wb1);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const i64 t = t0 + j;
      if (t >= total) break;
      const u64 av = mode == 0 ? f_a[t] + c0[t / n] : f_a[t] + f_b[t];
      const local::SharePair msg = local::OtSenderTerm(av, b_a[t] != 0, b_b[t] != 0, s[t]);
      m_next[t] = wa0[j] ^ msg.a;
      m_next[total + t] = wa1[j] ^ msg.b;
      m_prev[t] = wb0[j] ^ msg.a;
      m_prev[total + t] = wb1[j] ^ msg.b;
    }
  }
}

// OT helper: wc = choice ? w[1] : w[0], w = U([2] + shape); one thread per 8 elements.
__global__ void OtHelperKernel(const u8* choice, i64 total, Seed sk, u64* wc) {
  const UniformParams p = kFullInt64;
  const i64 groups = (total + 7) / 8;
  for (i64 g = Start(); g < groups; g += Stride()) {
    const i64 t0 = 8 * g;
    u64 w0[8], w1[8];
    UniformBlock8(sk, p, g, w0);
    UniformWindow8(sk, p, total + t0, w1);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const i64 t = t0 + j;
      if (t < total) wc[t] = local::Select(choice[t] != 0, w0[j], w1[j]);
    }
  }
}

template <int Party>
__global__ void MulAbStep2Kernel(MulAbStep2Dev in, const u8* b_a, const u8* b_b, i64 K, i64 n,
                                 u64* y_a, u64* y_b) {
  const i64 total = K * n;
  for (i64 i = Start(); i < n; i += Stride()) {
    u64 sa = 0, sb = 0;
    for (i64 j = 0; j < K; ++j) {
      const local::SharePair y = local::MulAbStep2Term<Party>(in, b_a, b_b, total, j * n + i);
      sa += y.a;
      sb += y.b;
    }
    y_a[i] = sa;
    y_b[i] = sb;
  }
}

// One thread per 8 elements (row 0 of R02 is block aligned).
__global__ void MaskScaledP0Kernel(const u64* x0, const u64* x1, const u64* k, i64 n, i64 total,
                                   Seed seed, u64 lift, u64* c0) {
  const UniformParams p = kFullInt64;
  const i64 groups = (total + 7) / 8;
  for (i64 g = Start(); g < groups; g += Stride()) {
    u64 r0[8];
    UniformBlock8(seed, p, g, r0);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const i64 t = 8 * g + j;
      if (t >= total) break;
      c0[t] = local::TruncMaskScaledP0(r0[j], x0[t % n], x1[t % n], k[t / n], lift);
    }
  }
}

__global__ void MaskScaledP1Kernel(const u64* x2, const u64* k, i64 n, i64 total, const u64* r1,
                                   u64* c1) {
  for (i64 t = Start(); t < total; t += Stride()) c1[t] = local::TruncMaskP1(x2[t % n], k[t / n], r1[t]);
}

void Launched(const char* what) { Check(cudaGetLastError(), what); }

}  // namespace

void PivotDiff(int party, const u64* x_a, const u64* x_b, const u64* pivots, i64 C, i64 n,
               u64* d_a, u64* d_b, cudaStream_t stream) {
  CheckParty(party);
  if (C < 1) throw KernelArgumentError("need at least one pivot, got " + std::to_string(C));
  if (n < 0) throw KernelArgumentError("n must be >= 0");
  const i64 total = C * n;
  if (total == 0) return;
  TFE_ACCEL_LAUNCH(PivotDiffKernel, Blocks(total), kThreads, 0, stream)(party, x_a, x_b, pivots, n,
      total, d_a, d_b);
  Launched("PivotDiff launch");
}

void PieceSelectAnd(int party, const u8* msb_a, const u8* msb_b, i64 C, i64 n, const u32 key_a[8],
                    i64 nonce_a, const u32 key_b[8], i64 nonce_b, u8* z, cudaStream_t stream) {
  CheckParty(party);
  if (C < 1) throw KernelArgumentError("need at least one pivot, got " + std::to_string(C));
  if (n < 0) throw KernelArgumentError("n must be >= 0");
  const i64 total = (C + 1) * n;
  if (total == 0) return;
  // The bool factory's zero share: int32 draws over [0, 2) (SeededUniformInt32), per key.
  TFE_ACCEL_LAUNCH(PieceSelectKernel, Blocks((total + 15) / 16), kThreads, 0, stream)(party, msb_a, msb_b, C, n,
      total, SeedNonce(key_a, nonce_a), SeedNonce(key_b, nonce_b), MakeNarrowParams(0, 2), z);
  Launched("PieceSelectAnd launch");
}

void MulAbStep1(int party, const u64* f_a, const u64* f_b, const u64* c0, const u8* b_a,
                const u8* b_b, i64 K, i64 n, const u32 key_a[8], i64 nonce_a, const u32 key_b[8],
                i64 nonce_b, const MulAbStep1Dev& out, cudaStream_t stream) {
  CheckParty(party);
  if (K < 0 || n < 0) throw KernelArgumentError("K and n must be >= 0");
  const i64 total = K * n;
  if (total <= 0) return;
  // routine 0: zero share at N, OT at N + 1; routine 1: zero share at N + 2, OT at N + 3.
  {
    const Seed a0 = SeedNonce(key_a, nonce_a), b0 = SeedNonce(key_b, nonce_b);
    const Seed a2 = SeedNonce(key_a, nonce_a, 2), b2 = SeedNonce(key_b, nonce_b, 2);
    ZeroShare(a0.w, b0.w, out.s_r0, total, stream);
    ZeroShare(a2.w, b2.w, out.s_r1, total, stream);
  }
  const unsigned blocks = Blocks((total + 7) / 8);
  if (party == 0) {
    TFE_ACCEL_LAUNCH(OtSenderKernel, blocks, kThreads, 0, stream)(0, f_a, f_b, c0, n, b_a, b_b,
        out.s_r0, total, SeedNonce(key_a, nonce_a, 1), SeedNonce(key_b, nonce_b, 1), out.m_next,
        out.m_prev);
    Launched("MulAbStep1 OtSender");
    TFE_ACCEL_LAUNCH(OtHelperKernel, blocks, kThreads, 0, stream)(b_a, total,
        SeedNonce(key_b, nonce_b, 3), out.wc_a);
  } else if (party == 1) {
    TFE_ACCEL_LAUNCH(OtHelperKernel, blocks, kThreads, 0, stream)(b_b, total,
        SeedNonce(key_a, nonce_a, 1), out.wc_a);
    Launched("MulAbStep1 OtHelper");
    TFE_ACCEL_LAUNCH(OtSenderKernel, blocks, kThreads, 0, stream)(1, f_a, f_b, c0, n, b_a, b_b,
        out.s_r1, total, SeedNonce(key_a, nonce_a, 3), SeedNonce(key_b, nonce_b, 3), out.m_next,
        out.m_prev);
  } else {
    TFE_ACCEL_LAUNCH(OtHelperKernel, blocks, kThreads, 0, stream)(b_a, total,
        SeedNonce(key_b, nonce_b, 1), out.wc_a);
    Launched("MulAbStep1 OtHelper");
    TFE_ACCEL_LAUNCH(OtHelperKernel, blocks, kThreads, 0, stream)(b_b, total,
        SeedNonce(key_a, nonce_a, 3), out.wc_b);
  }
  Launched("MulAbStep1 launch");
}

void MulAbStep2(int party, const MulAbStep2Dev& in, const u8* b_a, const u8* b_b, i64 K, i64 n,
                u64* y_a, u64* y_b, cudaStream_t stream) {
  CheckParty(party);
  if (K < 0 || n < 0) throw KernelArgumentError("K and n must be >= 0");
  if (n == 0) return;
  switch (party) {
    case 0: TFE_ACCEL_LAUNCH(MulAbStep2Kernel<0>, Blocks(n), kThreads, 0, stream)(in, b_a, b_b, K, n, y_a, y_b); break;
    case 1: TFE_ACCEL_LAUNCH(MulAbStep2Kernel<1>, Blocks(n), kThreads, 0, stream)(in, b_a, b_b, K, n, y_a, y_b); break;
    default: TFE_ACCEL_LAUNCH(MulAbStep2Kernel<2>, Blocks(n), kThreads, 0, stream)(in, b_a, b_b, K, n, y_a, y_b); break;
  }
  Launched("MulAbStep2 launch");
}

void TruncMsb0MaskScaledP0(const u64* x0, const u64* x1, const u64* k, i64 K, i64 n,
                           const u32 key_02[8], i64 nonce_02, u64 lift, u64* c0,
                           cudaStream_t stream) {
  if (K < 0 || n < 0) throw KernelArgumentError("K and n must be >= 0");
  const i64 total = K * n;
  if (total == 0) return;
  TFE_ACCEL_LAUNCH(MaskScaledP0Kernel, Blocks((total + 7) / 8), kThreads, 0, stream)(x0, x1, k, n, total,
      SeedNonce(key_02, nonce_02), lift, c0);
  Launched("TruncMsb0MaskScaledP0 launch");
}

void TruncMsb0MaskScaledP1(const u64* x2, const u64* k, i64 K, i64 n, const u64* r1, u64* c1,
                           cudaStream_t stream) {
  if (K < 0 || n < 0) throw KernelArgumentError("K and n must be >= 0");
  const i64 total = K * n;
  if (total == 0) return;
  TFE_ACCEL_LAUNCH(MaskScaledP1Kernel, Blocks(total), kThreads, 0, stream)(x2, k, n, total, r1, c1);
  Launched("TruncMsb0MaskScaledP1 launch");
}

}  // namespace cuda
}  // namespace tfe_accel
