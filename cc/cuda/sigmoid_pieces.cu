// tfe-accel: sigmoid piece evaluation steps (TFE `polynomial_piecewise`: pivot comparison set-up,
// piece selection AND, `mul_ab` 3-party OT steps and the sum over pieces, and the MSB-0 masking
// fused with a public multiplication), one party's local work per kernel, bit-identical to
// cc/kernels/sigmoid_steps.cc (read it for the protocol and the nonce offsets). Several streams are
// read at offsets that are not block aligned (the [2] + shape OT masks), so these kernels draw each
// element at its own position (FullInt64At), one thread per element.
#include <cuda_runtime.h>

#include <string>

#include "chacha20.cuh"
#include "common.cuh"
#include "tfe_cuda.h"

namespace tfe_accel {
namespace cuda {
namespace {

constexpr int kThreads = 256;

Seed SeedNonce(const u32 key[8], i64 nonce) {  // == SeedPlusNonce (chacha20.h)
  Seed s;
  const u32 add = static_cast<u32>(static_cast<u64>(nonce));
  for (int i = 0; i < 8; ++i) s.w[i] = key[i] + add;
  return s;
}

__device__ __forceinline__ i64 Start() { return blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ i64 Stride() { return static_cast<i64>(gridDim.x) * blockDim.x; }

unsigned Blocks(i64 work) {
  const i64 b = (work + kThreads - 1) / kThreads;
  const i64 cap = 65535LL * 16;
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

void CheckParty(int party) {
  if (party < 0 || party > 2)
    throw KernelArgumentError("party must be 0, 1 or 2, got " + std::to_string(party));
}

__global__ void PivotDiffKernel(int party, const u64* x_a, const u64* x_b, const u64* pivots, i64 n,
                                i64 total, u64* d_a, u64* d_b) {
  for (i64 t = Start(); t < total; t += Stride()) {
    const i64 i = t % n;
    const u64 c = pivots[t / n];
    d_a[t] = (party == 0 ? c : 0) - x_a[i];
    d_b[t] = (party == 2 ? c : 0) - x_b[i];
  }
}

__global__ void PieceSelectKernel(int party, const u8* msb_a, const u8* msb_b, i64 C, i64 n,
                                  i64 total, Seed sa, Seed sb, NarrowParams bit, u8* z) {
  // ~msb flips P0's first and P2's second share; the public ones sit in the same shares.
  const bool flip_a = party == 0, flip_b = party == 2;
  const bool one_a = party == 0, one_b = party == 2;
  for (i64 t = Start(); t < total; t += Stride()) {
    const i64 j = t / n, i = t % n;
    bool le_a, le_b, gt_a, gt_b;
    if (j < C) {
      le_a = (msb_a[j * n + i] != 0) != flip_a;
      le_b = (msb_b[j * n + i] != 0) != flip_b;
    } else {
      le_a = one_a;
      le_b = one_b;
    }
    if (j == 0) {
      gt_a = one_a;
      gt_b = one_b;
    } else {
      gt_a = ((msb_a[(j - 1) * n + i] != 0) != flip_a) != true;
      gt_b = ((msb_b[(j - 1) * n + i] != 0) != flip_b) != true;
    }
    const bool alpha = (NarrowAt(sa, bit, t) != 0) != (NarrowAt(sb, bit, t) != 0);
    z[t] = (((le_a && gt_a) != (le_a && gt_b)) != ((le_b && gt_a) != alpha)) ? 1 : 0;
  }
}

// OT sender of `__mul_ab_routine`: a(t) = mode 0: f_a[t] + c0[t / n] (P0, routine 0);
// mode 1: f_a[t] + f_b[t] (P1, routine 1). m0 = b * a + s, m1 = a - b * a + s (b = b_a ^ b_b),
// masked with w = U([2] + shape) of the two seeds.
__global__ void OtSenderKernel(int mode, const u64* f_a, const u64* f_b, const u64* c0, i64 n,
                               const u8* b_a, const u8* b_b, const u64* s, i64 total, Seed sa,
                               Seed sb, u64* m_next, u64* m_prev) {
  for (i64 t = Start(); t < total; t += Stride()) {
    const u64 av = mode == 0 ? f_a[t] + c0[t / n] : f_a[t] + f_b[t];
    const u64 tmp = ((b_a[t] != 0) != (b_b[t] != 0)) ? av : 0;
    const u64 m0 = tmp + s[t], m1 = av - tmp + s[t];
    m_next[t] = FullInt64At(sa, t) ^ m0;
    m_next[total + t] = FullInt64At(sa, total + t) ^ m1;
    m_prev[t] = FullInt64At(sb, t) ^ m0;
    m_prev[total + t] = FullInt64At(sb, total + t) ^ m1;
  }
}

// OT helper: wc = choice ? w[1] : w[0], w = U([2] + shape).
__global__ void OtHelperKernel(const u8* choice, i64 total, Seed sk, u64* wc) {
  for (i64 t = Start(); t < total; t += Stride())
    wc[t] = FullInt64At(sk, choice[t] != 0 ? total + t : t);
}

__device__ __forceinline__ u64 OtReceive(bool choice, const u64* pair, i64 total, i64 t, u64 wc) {
  return (choice ? pair[total + t] : pair[t]) ^ wc;
}

__global__ void MulAbStep2Kernel(int party, MulAbStep2Dev in, const u8* b_a, const u8* b_b, i64 K,
                                 i64 n, u64* y_a, u64* y_b) {
  const i64 total = K * n;
  for (i64 i = Start(); i < n; i += Stride()) {
    u64 sa = 0, sb = 0;
    for (i64 j = 0; j < K; ++j) {
      const i64 t = j * n + i;
      if (party == 0) {
        sa += in.in2[t] + OtReceive(b_a[t] != 0, in.m, total, t, in.wc[t]);
        sb += in.in1[t] + in.own[t];
      } else if (party == 1) {
        sa += in.own[t] + in.in1[t];
        sb += OtReceive(b_b[t] != 0, in.m, total, t, in.wc[t]) + in.in2[t];
      } else {
        sa += OtReceive(b_a[t] != 0, in.m, total, t, in.wc[t]) + in.own2[t];
        sb += in.own[t] + OtReceive(b_b[t] != 0, in.m2, total, t, in.wc2[t]);
      }
    }
    y_a[i] = sa;
    y_b[i] = sb;
  }
}

__global__ void MaskScaledP0Kernel(const u64* x0, const u64* x1, const u64* k, i64 n, i64 total,
                                   Seed seed, u64 lift, u64* c0) {
  for (i64 t = Start(); t < total; t += Stride()) {
    const i64 i = t % n;
    c0[t] = FullInt64At(seed, t) + (x0[i] + x1[i]) * k[t / n] + lift;
  }
}

__global__ void MaskScaledP1Kernel(const u64* x2, const u64* k, i64 n, i64 total, const u64* r1,
                                   u64* c1) {
  for (i64 t = Start(); t < total; t += Stride()) c1[t] = x2[t % n] * k[t / n] + r1[t];
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
  TFE_ACCEL_LAUNCH(PieceSelectKernel, Blocks(total), kThreads, 0, stream)(party, msb_a, msb_b, C, n,
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
    const Seed a2 = SeedNonce(key_a, nonce_a + 2), b2 = SeedNonce(key_b, nonce_b + 2);
    ZeroShare(a0.w, b0.w, out.s_r0, total, stream);
    ZeroShare(a2.w, b2.w, out.s_r1, total, stream);
  }
  const unsigned blocks = Blocks(total);
  if (party == 0) {
    TFE_ACCEL_LAUNCH(OtSenderKernel, blocks, kThreads, 0, stream)(0, f_a, f_b, c0, n, b_a, b_b,
        out.s_r0, total, SeedNonce(key_a, nonce_a + 1), SeedNonce(key_b, nonce_b + 1), out.m_next,
        out.m_prev);
    Launched("MulAbStep1 OtSender");
    TFE_ACCEL_LAUNCH(OtHelperKernel, blocks, kThreads, 0, stream)(b_a, total,
        SeedNonce(key_b, nonce_b + 3), out.wc_a);
  } else if (party == 1) {
    TFE_ACCEL_LAUNCH(OtHelperKernel, blocks, kThreads, 0, stream)(b_b, total,
        SeedNonce(key_a, nonce_a + 1), out.wc_a);
    Launched("MulAbStep1 OtHelper");
    TFE_ACCEL_LAUNCH(OtSenderKernel, blocks, kThreads, 0, stream)(1, f_a, f_b, c0, n, b_a, b_b,
        out.s_r1, total, SeedNonce(key_a, nonce_a + 3), SeedNonce(key_b, nonce_b + 3), out.m_next,
        out.m_prev);
  } else {
    TFE_ACCEL_LAUNCH(OtHelperKernel, blocks, kThreads, 0, stream)(b_a, total,
        SeedNonce(key_b, nonce_b + 1), out.wc_a);
    Launched("MulAbStep1 OtHelper");
    TFE_ACCEL_LAUNCH(OtHelperKernel, blocks, kThreads, 0, stream)(b_b, total,
        SeedNonce(key_a, nonce_a + 3), out.wc_b);
  }
  Launched("MulAbStep1 launch");
}

void MulAbStep2(int party, const MulAbStep2Dev& in, const u8* b_a, const u8* b_b, i64 K, i64 n,
                u64* y_a, u64* y_b, cudaStream_t stream) {
  CheckParty(party);
  if (K < 0 || n < 0) throw KernelArgumentError("K and n must be >= 0");
  if (n == 0) return;
  TFE_ACCEL_LAUNCH(MulAbStep2Kernel, Blocks(n), kThreads, 0, stream)(party, in, b_a, b_b, K, n, y_a,
      y_b);
  Launched("MulAbStep2 launch");
}

void TruncMsb0MaskScaledP0(const u64* x0, const u64* x1, const u64* k, i64 K, i64 n,
                           const u32 key_02[8], i64 nonce_02, u64 lift, u64* c0,
                           cudaStream_t stream) {
  if (K < 0 || n < 0) throw KernelArgumentError("K and n must be >= 0");
  const i64 total = K * n;
  if (total == 0) return;
  TFE_ACCEL_LAUNCH(MaskScaledP0Kernel, Blocks(total), kThreads, 0, stream)(x0, x1, k, n, total,
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
