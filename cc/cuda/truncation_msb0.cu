// tfe-accel: MSB-0 truncation with a dealer (TFE `_truncate_msb0_secureq8_private`, and the
// heuristic `_truncate_heuristic_private` through lift/unlift), one kernel per party and step,
// bit-identical to cc/kernels/truncation.cc (read it for the protocol); the per-element arithmetic
// is cc/kernels/mpc_local.h, shared with the CPU kernels. The randomness is drawn
// in-kernel from the PRG streams: R02 = U(seed_02) over [4] + shape (row q of element i is stream
// element q * n + i), y2 = U(seed_12), the dealer's r = U(r_seed); U is TFE's full int64 range.
// One thread per 8 consecutive elements; a stream window starting at an arbitrary offset spans at
// most two ChaCha20 blocks.
#include <cuda_runtime.h>

#include <string>

#include "chacha20.cuh"
#include "common.cuh"
#include "tfe_cuda.h"
#include "../kernels/mpc_local.h"

namespace tfe_accel {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ i64 GroupStart() {
  return 8 * (blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x);
}
__device__ __forceinline__ i64 GroupStride() { return 8 * static_cast<i64>(gridDim.x) * blockDim.x; }

__global__ void DealerKernel(Seed s02, Seed s12, Seed rs, UniformParams p, i64 n, int amount,
                             u64 unlift, u64* r1, u64* s1, u64* rmsb1, u64* z20, u64* z21) {
  for (i64 i0 = GroupStart(); i0 < n; i0 += GroupStride()) {
    u64 r0[8], s0[8], m0[8], y0[8], y2[8], r[8];
    UniformWindow8(s02, p, i0, r0);          // row 0: P0's share of r
    UniformWindow8(s02, p, n + i0, s0);      // row 1: P0's share of s
    UniformWindow8(s02, p, 2 * n + i0, m0);  // row 2: P0's share of msb(r)
    UniformWindow8(s02, p, 3 * n + i0, y0);  // row 3: y0 (P0 and P2)
    UniformWindow8(s12, p, i0, y2);          // y2 (P1 and P2)
    UniformWindow8(rs, p, i0, r);            // the dealer's fresh r
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const i64 i = i0 + j;
      if (i >= n) break;
      const local::DealerShares d = local::TruncDealer(r[j], r0[j], s0[j], m0[j], amount);
      r1[i] = d.r1;
      s1[i] = d.s1;
      rmsb1[i] = d.rmsb1;
      z20[i] = y2[j];
      z21[i] = y0[j] - unlift;
    }
  }
}

__global__ void MaskP0Kernel(const u64* x0, const u64* x1, Seed s02, UniformParams p, u64 lift,
                             u64* c0, i64 n) {
  for (i64 i0 = GroupStart(); i0 < n; i0 += GroupStride()) {
    u64 r0[8];
    UniformWindow8(s02, p, i0, r0);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const i64 i = i0 + j;
      if (i < n) c0[i] = local::TruncMaskP0(r0[j], x0[i], x1[i], lift);
    }
  }
}

__global__ void UnmaskP0Kernel(const u64* c0, const u64* c1, Seed s02, UniformParams p, int amount,
                               u64 unlift, u64* yt0, u64* z00, i64 n) {
  for (i64 i0 = GroupStart(); i0 < n; i0 += GroupStride()) {
    u64 s0[8], m0[8], y0[8];
    UniformWindow8(s02, p, n + i0, s0);
    UniformWindow8(s02, p, 2 * n + i0, m0);
    UniformWindow8(s02, p, 3 * n + i0, y0);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const i64 i = i0 + j;
      if (i >= n) break;
      yt0[i] = local::TruncUnmaskP0(c0[i], c1[i], s0[j], m0[j], y0[j], amount);
      z00[i] = y0[j] - unlift;
    }
  }
}

__global__ void UnmaskP1Kernel(const u64* c0, const u64* c1, const u64* s1, const u64* rmsb1,
                               Seed s12, UniformParams p, int amount, u64* yt1, u64* z11, i64 n) {
  for (i64 i0 = GroupStart(); i0 < n; i0 += GroupStride()) {
    u64 y2[8];
    UniformWindow8(s12, p, i0, y2);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const i64 i = i0 + j;
      if (i >= n) break;
      yt1[i] = local::TruncUnmaskP1(c0[i], c1[i], s1[i], rmsb1[i], y2[j], amount);
      z11[i] = y2[j];
    }
  }
}

unsigned Blocks(i64 n) {
  const i64 groups = (n + 7) / 8;
  const i64 b = (groups + kThreads - 1) / kThreads;
  const i64 cap = 65535LL * 16;
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

void CheckArgs(i64 n, int amount, bool check_amount) {
  if (n < 0) throw KernelArgumentError("n must be >= 0, got " + std::to_string(n));
  if (check_amount) CheckTruncationAmount(amount);
}

}  // namespace

void TruncMsb0Dealer(const u32 seed_20[8], const u32 seed_21[8], const u32 r_seed[8], i64 n,
                     int amount, u64 unlift, u64* r1, u64* s1, u64* rmsb1, u64* z20, u64* z21,
                     cudaStream_t stream) {
  CheckArgs(n, amount, true);
  if (n == 0) return;
  TFE_ACCEL_LAUNCH(DealerKernel, Blocks(n), kThreads, 0, stream)(MakeSeed(seed_20),
      MakeSeed(seed_21), MakeSeed(r_seed), TfeInt64Params(), n, amount, unlift, r1, s1, rmsb1, z20,
      z21);
  Check(cudaGetLastError(), "TruncMsb0Dealer launch");
}

void TruncMsb0MaskP0(const u64* x0, const u64* x1, const u32 seed_02[8], u64 lift, u64* c0, i64 n,
                     cudaStream_t stream) {
  CheckArgs(n, 1, false);
  if (n == 0) return;
  TFE_ACCEL_LAUNCH(MaskP0Kernel, Blocks(n), kThreads, 0, stream)(x0, x1, MakeSeed(seed_02),
      TfeInt64Params(), lift, c0, n);
  Check(cudaGetLastError(), "TruncMsb0MaskP0 launch");
}

void TruncMsb0UnmaskP0(const u64* c0, const u64* c1, const u32 seed_02[8], int amount, u64 unlift,
                       u64* y_tilde0, u64* z00, i64 n, cudaStream_t stream) {
  CheckArgs(n, amount, true);
  if (n == 0) return;
  TFE_ACCEL_LAUNCH(UnmaskP0Kernel, Blocks(n), kThreads, 0, stream)(c0, c1, MakeSeed(seed_02),
      TfeInt64Params(), amount, unlift, y_tilde0, z00, n);
  Check(cudaGetLastError(), "TruncMsb0UnmaskP0 launch");
}

void TruncMsb0UnmaskP1(const u64* c0, const u64* c1, const u64* s1, const u64* rmsb1,
                       const u32 seed_12[8], int amount, u64* y_tilde1, u64* z11, i64 n,
                       cudaStream_t stream) {
  CheckArgs(n, amount, true);
  if (n == 0) return;
  TFE_ACCEL_LAUNCH(UnmaskP1Kernel, Blocks(n), kThreads, 0, stream)(c0, c1, s1, rmsb1,
      MakeSeed(seed_12), TfeInt64Params(), amount, y_tilde1, z11, n);
  Check(cudaGetLastError(), "TruncMsb0UnmaskP1 launch");
}

}  // namespace cuda
}  // namespace tfe_accel
