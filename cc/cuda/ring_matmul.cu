// tfe-accel: ring GEMM over Z_2^64 on the GPU (batched, transposes), three kernels:
//   * SimtGemmKernel: tiled 64-bit GEMM on the CUDA cores (the correct baseline, any sm).
//   * GemvRowKernel / GemvColKernel: matrix-vector shapes (N == 1 or M == 1), memory bound:
//     each matrix element is read exactly once, K split over blocks with wrapping atomicAdd.
//   * LimbMmaKernel: exact 8-limb decomposition onto int8 tensor cores (mma.sync m16n8k32
//     u8 x u8 -> s32, sm_80+). See cc/cuda/README.md for the exactness proof; summary below.
// All arithmetic is wrapping uint64; results are bit-identical whichever kernel runs.
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common.cuh"
#include "tfe_cuda.h"

namespace tfe_accel {
namespace cuda {
namespace {

// ------------------------------------------------------------------------------------------
// Element accessor of op(A) / op(B): element (r, k) of a row-major matrix view is at r*sr + k*sk.
// op(A) (M x K):  !transpose_a: A is M x K -> (sr, sk) = (K, 1);  transpose_a: K x M -> (1, M)
// op(B)^T (N x K): !transpose_b: B is K x N -> (sr, sk) = (1, N); transpose_b: N x K -> (K, 1)
// ------------------------------------------------------------------------------------------

// ================================ SIMT tiled GEMM ===========================================
// Block tile 128 (M) x 64 (N), K step 16, 256 threads; thread (ty, tx) in 16 x 16 owns rows
// ty + 16 r (r < 8) and columns tx + 16 c (c < 4): 32 outputs.
// 64-bit product mod 2^64 from 32-bit halves: a*b = alo*blo + ((alo*bhi + ahi*blo) mod 2^32) << 32;
// `acc += a * b` on u64 compiles to one IMAD.WIDE.U32 (alo*blo into the 64-bit pair) and two
// 32-bit IMADs into the high word: 3 integer multiply-adds per ring MAC.
constexpr int kSimtBM = 128, kSimtBN = 64, kSimtBK = 16, kSimtThreads = 256;

template <bool kAKFast, bool kBKFast>
__global__ void __launch_bounds__(kSimtThreads, 1)
SimtGemmKernel(const u64* __restrict__ a, const u64* __restrict__ b, u64* __restrict__ c, i64 M,
               i64 N, i64 K, i64 a_sr, i64 a_sk, i64 b_sr, i64 b_sk, i64 a_mat, i64 b_mat,
               DevBatch batch, i64 z0, bool accumulate) {
  __shared__ u64 As[kSimtBK][kSimtBM + 1];  // +1: conflict-free transposed stores
  __shared__ u64 Bs[kSimtBK][kSimtBN + 1];
  const i64 z = z0 + blockIdx.z;
  i64 ia, ib;
  BatchIndex(batch, z, &ia, &ib);
  const u64* A = a + ia * a_mat;
  const u64* B = b + ib * b_mat;
  u64* C = c + z * M * N;
  const i64 m0 = static_cast<i64>(blockIdx.y) * kSimtBM;
  const i64 n0 = static_cast<i64>(blockIdx.x) * kSimtBN;
  const int tid = threadIdx.x;
  const int ty = tid / 16, tx = tid % 16;
  // Load mapping: along k when k is the contiguous axis (sk == 1), else along m / n.
  constexpr bool a_kfast = kAKFast;  // == (a_sk == 1)
  constexpr bool b_kfast = kBKFast;  // == (b_sk == 1)

  u64 acc[8][4];
#pragma unroll
  for (int r = 0; r < 8; ++r)
#pragma unroll
    for (int q = 0; q < 4; ++q) acc[r][q] = 0;

  for (i64 k0 = 0; k0 < K; k0 += kSimtBK) {
#pragma unroll
    for (int q = 0; q < (kSimtBM * kSimtBK) / kSimtThreads; ++q) {
      const int e = tid + q * kSimtThreads;
      const int mm = a_kfast ? e / kSimtBK : e % kSimtBM;
      const int kk = a_kfast ? e % kSimtBK : e / kSimtBM;
      const i64 gm = m0 + mm, gk = k0 + kk;
      As[kk][mm] = (gm < M && gk < K) ? A[gm * a_sr + gk * a_sk] : 0;
    }
#pragma unroll
    for (int q = 0; q < (kSimtBN * kSimtBK) / kSimtThreads; ++q) {
      const int e = tid + q * kSimtThreads;
      const int nn = b_kfast ? e / kSimtBK : e % kSimtBN;
      const int kk = b_kfast ? e % kSimtBK : e / kSimtBN;
      const i64 gn = n0 + nn, gk = k0 + kk;
      Bs[kk][nn] = (gn < N && gk < K) ? B[gn * b_sr + gk * b_sk] : 0;
    }
    __syncthreads();
#pragma unroll 4
    for (int kk = 0; kk < kSimtBK; ++kk) {
      u64 av[8], bv[4];
#pragma unroll
      for (int r = 0; r < 8; ++r) av[r] = As[kk][ty + 16 * r];
#pragma unroll
      for (int q = 0; q < 4; ++q) bv[q] = Bs[kk][tx + 16 * q];
#pragma unroll
      for (int r = 0; r < 8; ++r)
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[r][q] += av[r] * bv[q];
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 8; ++r) {
    const i64 gm = m0 + ty + 16 * r;
    if (gm >= M) continue;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const i64 gn = n0 + tx + 16 * q;
      if (gn >= N) continue;
      u64 v = acc[r][q];
      if (accumulate) v += C[gm * N + gn];
      C[gm * N + gn] = v;
    }
  }
}

// ================================ matrix-vector =============================================
// out[z][r] += sum_{k in slice} Mat(r, k) * vec(k), Mat(r,k) = mat[r*sr + k*sk], vec(k) = vec[k*sv].
// The output is zeroed (or holds the value to accumulate onto) before launch; each block adds its
// partial sum with atomicAdd on unsigned long long, which wraps mod 2^64 (order-independent, so
// the result is deterministic).
struct GemvArgs {
  const u64* mat;
  const u64* vec;
  u64* out;
  i64 R, K, sr, sk, sv;
  i64 mat_batch, vec_batch;  // elements per batch matrix / vector
  bool mat_is_b;             // matrix comes from B (M == 1 case): batch index ib, vector uses ia
  i64 kslice;                // k per block (blockIdx.y)
  i64 z0;
};

__device__ __forceinline__ void GemvBatchPtrs(const GemvArgs& g, const DevBatch& batch, i64 z,
                                              const u64** mat, const u64** vec, u64** out) {
  i64 ia, ib;
  BatchIndex(batch, z, &ia, &ib);
  *mat = g.mat + (g.mat_is_b ? ib : ia) * g.mat_batch;
  *vec = g.vec + (g.mat_is_b ? ia : ib) * g.vec_batch;
  *out = g.out + z * g.R;
}

constexpr int kGemvThreads = 256;

// sk == 1: one block per (row, K slice); threads stride along the contiguous row.
__global__ void __launch_bounds__(kGemvThreads) GemvRowKernel(GemvArgs g, DevBatch batch) {
  const i64 z = g.z0 + blockIdx.z;
  const u64 *mat, *vec;
  u64* out;
  GemvBatchPtrs(g, batch, z, &mat, &vec, &out);
  const i64 r = blockIdx.x;
  const i64 kb = static_cast<i64>(blockIdx.y) * g.kslice;
  const i64 ke = min(g.K, kb + g.kslice);
  const u64* row = mat + r * g.sr;
  u64 s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  i64 k = kb + threadIdx.x;
  // 4 independent loads in flight per thread.
  for (; k + 3 * kGemvThreads < ke; k += 4 * kGemvThreads) {
    s0 += row[k] * vec[k * g.sv];
    s1 += row[k + kGemvThreads] * vec[(k + kGemvThreads) * g.sv];
    s2 += row[k + 2 * kGemvThreads] * vec[(k + 2 * kGemvThreads) * g.sv];
    s3 += row[k + 3 * kGemvThreads] * vec[(k + 3 * kGemvThreads) * g.sv];
  }
  for (; k < ke; k += kGemvThreads) s0 += row[k] * vec[k * g.sv];
  u64 s = (s0 + s1) + (s2 + s3);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
  __shared__ u64 warp_sums[kGemvThreads / 32];
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    u64 t = 0;
#pragma unroll
    for (int w = 0; w < kGemvThreads / 32; ++w) t += warp_sums[w];
    atomicAdd(reinterpret_cast<unsigned long long*>(out + r), static_cast<unsigned long long>(t));
  }
}

// sk != 1 (typically sr == 1): one thread per row, consecutive threads on consecutive rows
// (coalesced when sr == 1), blockIdx.y picks the K slice.
__global__ void __launch_bounds__(kGemvThreads) GemvColKernel(GemvArgs g, DevBatch batch) {
  const i64 z = g.z0 + blockIdx.z;
  const u64 *mat, *vec;
  u64* out;
  GemvBatchPtrs(g, batch, z, &mat, &vec, &out);
  const i64 r = static_cast<i64>(blockIdx.x) * kGemvThreads + threadIdx.x;
  if (r >= g.R) return;
  const i64 kb = static_cast<i64>(blockIdx.y) * g.kslice;
  const i64 ke = min(g.K, kb + g.kslice);
  const u64* p = mat + r * g.sr;
  u64 s0 = 0, s1 = 0;
  i64 k = kb;
  for (; k + 1 < ke; k += 2) {
    s0 += p[k * g.sk] * vec[k * g.sv];
    s1 += p[(k + 1) * g.sk] * vec[(k + 1) * g.sv];
  }
  if (k < ke) s0 += p[k * g.sk] * vec[k * g.sv];
  atomicAdd(reinterpret_cast<unsigned long long*>(out + r),
            static_cast<unsigned long long>(s0 + s1));
}

// ============================ int8 tensor cores (limbs) =====================================
// Write x = sum_{i<8} x_i 2^{8i} with byte limbs x_i in [0, 255]. Then, mod 2^64,
//   a.b = sum_{i+j<=7} a_i b_j 2^{8(i+j)}     (terms with i+j >= 8 are multiples of 2^64),
// so C = sum_{s=0..7} 2^{8s} C_s with C_s = sum_{i+j=s} A_i.B_j: 36 int8 GEMMs (u8 x u8 -> s32).
// Exactness: each limb product is <= 255^2 = 65025, the pair count for shift s is s + 1 <= 8, and
// the kernel folds its int32 accumulators into the 64-bit result every kFlushK = 4096 values of k,
// so before a fold |C_s| <= 4096 * 8 * 65025 = 2,130,739,200 < 2^31: no int32 accumulator ever
// wraps or saturates, for any K. (Wrapping would be harmless for s >= 4, where only C_s mod 2^32
// matters after the shift by >= 32 bits; the s <= 3 sums need the K split, and one flush interval
// for all shifts is simpler and costs ~1% of the mma work.) The fold is
//   res += sum_s (u64)(u32)C_s << 8s  (mod 2^64),  exact because 0 <= C_s < 2^31.
//
// Operands are first split into limb planes (LimbSplitKernel): op(A) -> [batchA][8][Mp][Kp] bytes,
// op(B)^T -> [batchB][8][Np][Kp] bytes (k contiguous, zero padded to the tile multiples), which is
// exactly the "row" A / "col" B layout mma.sync wants.
constexpr int kLimbBM = 64, kLimbBN = 64, kLimbBK = 32;  // bytes of k per step = one mma k
constexpr int kLimbThreads = 256;                        // 8 warps: 2 (m) x 4 (n), warp tile 32 x 16
constexpr int kSmemRow = 48;  // bytes per smem row (32 data + 16 pad): conflict-free fragment loads
constexpr int kLimbPlaneBytes = kLimbBM * kSmemRow;  // == kLimbBN * kSmemRow
constexpr int kLimbSmemBytes = 2 * 8 * kLimbPlaneBytes;  // A and B, 8 limbs each: 48 KiB
constexpr i64 kFlushK = 4096;
constexpr int kFlushSteps = static_cast<int>(kFlushK / kLimbBK);
static_assert(kFlushK * 8 * 65025 < (1LL << 31), "int32 limb accumulators must not overflow");
static_assert(kLimbBM == kLimbBN, "one smem plane size for A and B");

inline i64 RoundUp(i64 x, i64 m) { return (x + m - 1) / m * m; }

// dst[bat][l][r][k] = byte l of Mat(r, k) (0 outside R x K), for r < Rp, k < Kp (Kp % 4 == 0).
// One thread per (r, 4 consecutive k): one 32-bit store per limb plane.
__global__ void LimbSplitKernel(const u64* __restrict__ src, i64 nbat, i64 R, i64 K, i64 sr,
                                i64 sk, i64 mat_elems, u8* __restrict__ dst, i64 Rp, i64 Kp) {
  const i64 per_bat = Rp * (Kp / 4);
  const i64 total = nbat * per_bat;
  for (i64 t = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<i64>(gridDim.x) * blockDim.x) {
    const i64 bat = t / per_bat;
    const i64 rem = t % per_bat;
    const i64 r = rem / (Kp / 4);
    const i64 k = (rem % (Kp / 4)) * 4;
    const u64* m = src + bat * mat_elems;
    u64 v[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = (r < R && k + j < K) ? m[r * sr + (k + j) * sk] : 0;
    u8* base = dst + bat * 8 * Rp * Kp + r * Kp + k;
#pragma unroll
    for (int l = 0; l < 8; ++l) {
      u32 w = 0;
#pragma unroll
      for (int j = 0; j < 4; ++j) w |= static_cast<u32>((v[j] >> (8 * l)) & 0xff) << (8 * j);
      *reinterpret_cast<u32*>(base + static_cast<i64>(l) * Rp * Kp) = w;
    }
  }
}

__device__ __forceinline__ void MmaU8(int (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
#if defined(TFE_ACCEL_CUDA_EMULATION)
  emu::MmaM16N8K32U8(d, a, b0, b1);  // CPU emulation: the same instruction, warp-collectively
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.u8.u8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // launched only on sm_80+ (ResolveAlgo checks the device)
#endif
}

// Fragment layouts of mma.m16n8k32 (.u8), lane = 4 g + t:
//   A (16 x 32, row): a[0] = row g, k 4t..4t+3; a[1] = row g+8, same k; a[2] = row g, k 16+4t..;
//                     a[3] = row g+8, k 16+4t..   (4 bytes per register, lowest k in the low byte)
//   B (32 x 8, col):  b[0] = col g, k 4t..4t+3; b[1] = col g, k 16+4t..
//   C (16 x 8):       c[0], c[1] = row g, cols 2t, 2t+1; c[2], c[3] = row g+8, cols 2t, 2t+1
__global__ void __launch_bounds__(kLimbThreads, 1)
LimbMmaKernel(const u8* __restrict__ al, const u8* __restrict__ bl, u64* __restrict__ c, i64 M,
              i64 N, i64 Mp, i64 Np, i64 Kp, DevBatch batch, i64 z0, bool accumulate) {
  TFE_ACCEL_DYNAMIC_SMEM(u8, smem, 16);
  u8* As = smem;                        // [8][kLimbBM][kSmemRow]
  u8* Bs = smem + 8 * kLimbPlaneBytes;  // [8][kLimbBN][kSmemRow]
  const i64 z = z0 + blockIdx.z;
  i64 ia, ib;
  BatchIndex(batch, z, &ia, &ib);
  const u8* Ag = al + ia * 8 * Mp * Kp;
  const u8* Bg = bl + ib * 8 * Np * Kp;
  const i64 m0 = static_cast<i64>(blockIdx.y) * kLimbBM;
  const i64 n0 = static_cast<i64>(blockIdx.x) * kLimbBN;
  const int tid = threadIdx.x;
  const int warp = tid >> 5, lane = tid & 31;
  const int wm = warp >> 2, wn = warp & 3;  // warp tile rows wm*32.., cols wn*16..
  const int g = lane >> 2, t = lane & 3;

  int acc[8][2][2][4];
  u64 res[2][2][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        res[mt][nt][e] = 0;
#pragma unroll
        for (int s = 0; s < 8; ++s) acc[s][mt][nt][e] = 0;
      }

  const i64 ksteps = Kp / kLimbBK;
  int since_flush = 0;
  for (i64 ks = 0; ks < ksteps; ++ks) {
    const i64 k0 = ks * kLimbBK;
    // Global -> smem: 8 limbs x 64 rows x 32 bytes for each operand = 1024 16-byte chunks each.
#pragma unroll
    for (int q = 0; q < (8 * kLimbBM * 2) / kLimbThreads; ++q) {
      const int e = tid + q * kLimbThreads;
      const int l = e / (kLimbBM * 2);
      const int row = (e / 2) % kLimbBM;
      const int half = e & 1;
      const uint4 va = *reinterpret_cast<const uint4*>(Ag + (static_cast<i64>(l) * Mp + m0 + row) * Kp + k0 + 16 * half);
      const uint4 vb = *reinterpret_cast<const uint4*>(Bg + (static_cast<i64>(l) * Np + n0 + row) * Kp + k0 + 16 * half);
      *reinterpret_cast<uint4*>(As + l * kLimbPlaneBytes + row * kSmemRow + 16 * half) = va;
      *reinterpret_cast<uint4*>(Bs + l * kLimbPlaneBytes + row * kSmemRow + 16 * half) = vb;
    }
    __syncthreads();

    u32 bf[8][2][2];  // [limb j][n tile][reg]
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const u8* p = Bs + j * kLimbPlaneBytes + (wn * 16 + nt * 8 + g) * kSmemRow + 4 * t;
        bf[j][nt][0] = *reinterpret_cast<const u32*>(p);
        bf[j][nt][1] = *reinterpret_cast<const u32*>(p + 16);
      }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      u32 af[2][4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        const u8* p = As + i * kLimbPlaneBytes + (wm * 32 + mt * 16 + g) * kSmemRow + 4 * t;
        af[mt][0] = *reinterpret_cast<const u32*>(p);
        af[mt][1] = *reinterpret_cast<const u32*>(p + 8 * kSmemRow);
        af[mt][2] = *reinterpret_cast<const u32*>(p + 16);
        af[mt][3] = *reinterpret_cast<const u32*>(p + 8 * kSmemRow + 16);
      }
#pragma unroll
      for (int j = 0; j + i < 8; ++j)
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int nt = 0; nt < 2; ++nt) MmaU8(acc[i + j][mt][nt], af[mt], bf[j][nt][0], bf[j][nt][1]);
    }
    __syncthreads();

    if (++since_flush == kFlushSteps || ks + 1 == ksteps) {
      since_flush = 0;
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            u64 v = 0;
#pragma unroll
            for (int s = 0; s < 8; ++s) {
              v += static_cast<u64>(static_cast<u32>(acc[s][mt][nt][e])) << (8 * s);
              acc[s][mt][nt][e] = 0;
            }
            res[mt][nt][e] += v;
          }
    }
  }

  u64* C = c + z * M * N;
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const i64 row = m0 + wm * 32 + mt * 16 + g + (e >= 2 ? 8 : 0);
        const i64 col = n0 + wn * 16 + nt * 8 + 2 * t + (e & 1);
        if (row < M && col < N) {
          u64 v = res[mt][nt][e];
          if (accumulate) v += C[row * N + col];
          C[row * N + col] = v;
        }
      }
}

// ==================================== host side =============================================
constexpr i64 kMaxGridZ = 65535;
constexpr i64 kMaxGridY = 65535;

void CheckDims(i64 M, i64 N, i64 K, const BatchMap& batch) {
  if (M < 0 || N < 0 || K < 0)
    throw KernelArgumentError("matrix dimensions must be >= 0, got M=" + std::to_string(M) +
                              " N=" + std::to_string(N) + " K=" + std::to_string(K));
  if (batch.ndim < 0 || batch.ndim > kMaxBatchDims)
    throw KernelArgumentError("batch.ndim must be in [0, " + std::to_string(kMaxBatchDims) + "]");
  for (int d = 0; d < batch.ndim; ++d)
    if (batch.dims[d] < 0) throw KernelArgumentError("batch dimensions must be >= 0");
}

int CurrentDevice() {
  int dev = 0;
  Check(cudaGetDevice(&dev), "cudaGetDevice");
  return dev;
}

int ComputeMajor(int device) {
  int major = 0;
  Check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
        "cudaDeviceGetAttribute(major)");
  return major;
}

void LaunchSimt(const u64* a, const u64* b, u64* c, i64 M, i64 N, i64 K, bool ta, bool tb,
                const BatchMap& batch, bool accumulate, cudaStream_t stream) {
  const i64 a_sr = ta ? 1 : K, a_sk = ta ? M : 1;
  const i64 b_sr = tb ? K : 1, b_sk = tb ? 1 : N;
  const i64 gy = (M + kSimtBM - 1) / kSimtBM, gx = (N + kSimtBN - 1) / kSimtBN;
  if (gy > kMaxGridY) throw KernelArgumentError("M too large for the SIMT ring GEMM grid");
  const DevBatch db = ToDev(batch);
  const i64 nz = batch.Count();
  for (i64 z0 = 0; z0 < nz; z0 += kMaxGridZ) {
    const unsigned gz = static_cast<unsigned>(nz - z0 < kMaxGridZ ? nz - z0 : kMaxGridZ);
    const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), gz);
#define TFE_ACCEL_SIMT(AK, BK)                                                              \
  TFE_ACCEL_LAUNCH(TFE_ACCEL_KERNEL(SimtGemmKernel<AK, BK>), grid, kSimtThreads, 0, stream)(       \
      a, b, c, M, N, K, a_sr, a_sk, b_sr, b_sk, M * K, K * N, db, z0, accumulate)
    if (a_sk == 1 && b_sk == 1) TFE_ACCEL_SIMT(true, true);
    else if (a_sk == 1) TFE_ACCEL_SIMT(true, false);
    else if (b_sk == 1) TFE_ACCEL_SIMT(false, true);
    else TFE_ACCEL_SIMT(false, false);
#undef TFE_ACCEL_SIMT
    Check(cudaGetLastError(), "SimtGemmKernel launch");
  }
}

void LaunchGemv(const u64* a, const u64* b, u64* c, i64 M, i64 N, i64 K, bool ta, bool tb,
                const BatchMap& batch, bool accumulate, cudaStream_t stream) {
  const i64 nz = batch.Count();
  if (!accumulate) Check(cudaMemsetAsync(c, 0, sizeof(u64) * nz * M * N, stream), "cudaMemsetAsync");
  GemvArgs g;
  g.out = c;
  if (N == 1) {  // C(m) = sum_k op(A)(m, k) * op(B)(k, 0); op(B)(k, 0) = B[k] either way
    g.mat = a; g.vec = b; g.R = M; g.K = K;
    g.sr = ta ? 1 : K; g.sk = ta ? M : 1; g.sv = 1;
    g.mat_batch = M * K; g.vec_batch = K; g.mat_is_b = false;
  } else {       // M == 1: C(n) = sum_k op(B)(k, n) * op(A)(0, k); op(A)(0, k) = A[k] either way
    g.mat = b; g.vec = a; g.R = N; g.K = K;
    g.sr = tb ? K : 1; g.sk = tb ? 1 : N; g.sv = 1;
    g.mat_batch = K * N; g.vec_batch = K; g.mat_is_b = true;
  }
  const DevBatch db = ToDev(batch);
  const bool row_kernel = (g.sk == 1);
  // Enough blocks to fill the card (~2^15 warps in flight), each slice >= 1024 (row) / 16 (col) k.
  const i64 target_threads = i64{1} << 20;
  i64 slices;
  unsigned gx;
  if (row_kernel) {
    if (g.R > 0x7fffffffLL) throw KernelArgumentError("too many rows for the GEMV grid");
    slices = target_threads / (g.R * nz * kGemvThreads > 0 ? g.R * nz * kGemvThreads : 1);
    const i64 max_slices = (K + 1023) / 1024;
    gx = static_cast<unsigned>(g.R);
    slices = slices < 1 ? 1 : (slices > max_slices ? max_slices : slices);
  } else {
    const i64 bx = (g.R + kGemvThreads - 1) / kGemvThreads;
    slices = target_threads / (g.R * nz > 0 ? g.R * nz : 1);
    const i64 max_slices = (K + 15) / 16;
    gx = static_cast<unsigned>(bx);
    slices = slices < 1 ? 1 : (slices > max_slices ? max_slices : slices);
  }
  if (slices > kMaxGridY) slices = kMaxGridY;
  if (slices < 1) slices = 1;
  g.kslice = (K + slices - 1) / slices;
  if (g.kslice < 1) g.kslice = 1;
  slices = (K + g.kslice - 1) / g.kslice;
  if (K == 0 || g.R == 0) return;
  for (i64 z0 = 0; z0 < nz; z0 += kMaxGridZ) {
    const unsigned gz = static_cast<unsigned>(nz - z0 < kMaxGridZ ? nz - z0 : kMaxGridZ);
    g.z0 = z0;
    const dim3 grid(gx, static_cast<unsigned>(slices), gz);
    if (row_kernel) TFE_ACCEL_LAUNCH(GemvRowKernel, grid, kGemvThreads, 0, stream)(g, db);
    else TFE_ACCEL_LAUNCH(GemvColKernel, grid, kGemvThreads, 0, stream)(g, db);
    Check(cudaGetLastError(), "Gemv kernel launch");
  }
}

i64 OperandBatches(const BatchMap& b, bool is_a) {
  // Largest index reachable + 1 (strides are row-major over the operand's own batch dims).
  i64 n = 1;
  for (int d = 0; d < b.ndim; ++d) {
    const i64 s = is_a ? b.a_stride[d] : b.b_stride[d];
    if (s != 0 && b.dims[d] > 0) n += (b.dims[d] - 1) * s;
  }
  return n;
}

// Scratch memory of one call: from the caller's ScratchFn when given (the caller keeps it alive
// until the stream has finished), else cudaMallocAsync, freed (stream-ordered) on destruction.
class StreamScratch {
 public:
  StreamScratch(const ScratchFn* fn, cudaStream_t stream) : fn_(fn), stream_(stream) {}
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  ~StreamScratch() {
    for (void* p : owned_) cudaFreeAsync(p, stream_);
  }
  void* Get(size_t bytes, const char* what) {
    if (bytes == 0) bytes = 1;
    if (fn_ != nullptr && *fn_) {
      void* p = (*fn_)(bytes);
      if (p == nullptr) throw std::runtime_error(std::string("scratch allocation failed: ") + what);
      return p;
    }
    void* p = nullptr;
    Check(cudaMallocAsync(&p, bytes, stream_), what);
    owned_.push_back(p);
    return p;
  }

 private:
  const ScratchFn* fn_;
  cudaStream_t stream_;
  std::vector<void*> owned_;
};

void LaunchLimbMma(const u64* a, const u64* b, u64* c, i64 M, i64 N, i64 K, bool ta, bool tb,
                   const BatchMap& batch, bool accumulate, cudaStream_t stream,
                   const ScratchFn* scratch_fn) {
  const i64 nz = batch.Count();
  const i64 Mp = RoundUp(M, kLimbBM), Np = RoundUp(N, kLimbBN), Kp = RoundUp(K, kLimbBK);
  if (Mp / kLimbBM > kMaxGridY) throw KernelArgumentError("M too large for the limb GEMM grid");
  const i64 na = OperandBatches(batch, true), nb = OperandBatches(batch, false);
  StreamScratch scratch(scratch_fn, stream);
  u8* al = static_cast<u8*>(scratch.Get(static_cast<size_t>(na * 8 * Mp * Kp), "A limb planes"));
  u8* bl = static_cast<u8*>(scratch.Get(static_cast<size_t>(nb * 8 * Np * Kp), "B limb planes"));
  auto blocks = [](i64 work) {
    const i64 bks = (work + 255) / 256;
    return static_cast<unsigned>(bks < 1 ? 1 : (bks > (1 << 20) ? (1 << 20) : bks));
  };
  TFE_ACCEL_LAUNCH(LimbSplitKernel, blocks(na * Mp * (Kp / 4)), 256, 0, stream)(
      a, na, M, K, ta ? 1 : K, ta ? M : 1, M * K, al, Mp, Kp);
  Check(cudaGetLastError(), "LimbSplitKernel launch (A)");
  TFE_ACCEL_LAUNCH(LimbSplitKernel, blocks(nb * Np * (Kp / 4)), 256, 0, stream)(
      b, nb, N, K, tb ? K : 1, tb ? 1 : N, K * N, bl, Np, Kp);
  Check(cudaGetLastError(), "LimbSplitKernel launch (B)");
  Check(cudaFuncSetAttribute(LimbMmaKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             kLimbSmemBytes),
        "cudaFuncSetAttribute(LimbMmaKernel)");
  const DevBatch db = ToDev(batch);
  for (i64 z0 = 0; z0 < nz; z0 += kMaxGridZ) {
    const unsigned gz = static_cast<unsigned>(nz - z0 < kMaxGridZ ? nz - z0 : kMaxGridZ);
    TFE_ACCEL_LAUNCH(LimbMmaKernel,
                     dim3(static_cast<unsigned>(Np / kLimbBN), static_cast<unsigned>(Mp / kLimbBM), gz),
                     kLimbThreads, kLimbSmemBytes, stream)(al, bl, c, M, N, Mp, Np, Kp, db, z0, accumulate);
    Check(cudaGetLastError(), "LimbMmaKernel launch");
  }
}

}  // namespace

const char* GemmAlgoName(GemmAlgo a) {
  switch (a) {
    case GemmAlgo::kAuto: return "auto";
    case GemmAlgo::kSimt: return "simt";
    case GemmAlgo::kTensorCore: return "tensor_core";
    case GemmAlgo::kGemv: return "gemv";
  }
  return "?";
}

GemmAlgo ResolveAlgo(GemmAlgo requested, i64 M, i64 N, i64 K, int device) {
  switch (requested) {
    case GemmAlgo::kGemv:
      if (N != 1 && M != 1)
        throw KernelArgumentError("algo 'gemv' needs N == 1 or M == 1, got M=" + std::to_string(M) +
                                  " N=" + std::to_string(N));
      return requested;
    case GemmAlgo::kTensorCore:
      if (ComputeMajor(device) < 8)
        throw KernelArgumentError("algo 'tensor_core' needs compute capability >= 8.0 (int8 mma.sync)");
      return requested;
    case GemmAlgo::kSimt:
      return requested;
    case GemmAlgo::kAuto:
      break;
  }
  if (N == 1 || M == 1) return GemmAlgo::kGemv;
  // The limb path pays two O((M + N) K) splits and 64-row/col padding; below ~128 it is not worth it.
  if (ComputeMajor(device) >= 8 && M >= 128 && N >= 128 && K >= 64) return GemmAlgo::kTensorCore;
  return GemmAlgo::kSimt;
}

void RingMatmul(const u64* a, const u64* b, u64* c, i64 M, i64 N, i64 K, bool transpose_a,
                bool transpose_b, const BatchMap& batch, bool accumulate, GemmAlgo algo,
                cudaStream_t stream, const ScratchFn* scratch) {
  CheckDims(M, N, K, batch);
  const i64 nz = batch.Count();
  if (nz == 0 || M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate) Check(cudaMemsetAsync(c, 0, sizeof(u64) * nz * M * N, stream), "cudaMemsetAsync");
    return;
  }
  switch (ResolveAlgo(algo, M, N, K, CurrentDevice())) {
    case GemmAlgo::kGemv: LaunchGemv(a, b, c, M, N, K, transpose_a, transpose_b, batch, accumulate, stream); return;
    case GemmAlgo::kTensorCore: LaunchLimbMma(a, b, c, M, N, K, transpose_a, transpose_b, batch, accumulate, stream, scratch); return;
    default: LaunchSimt(a, b, c, M, N, K, transpose_a, transpose_b, batch, accumulate, stream); return;
  }
}

void RssMatmul(const u64* x0, const u64* x1, const u64* y0, const u64* y1, u64* z, i64 M, i64 N,
               i64 K, bool transpose_a, bool transpose_b, const BatchMap& batch, i64 y_elems,
               const u32 seed0[8], const u32 seed1[8], GemmAlgo algo, cudaStream_t stream,
               const ScratchFn* scratch_fn) {
  CheckDims(M, N, K, batch);
  if (seed0 == nullptr || seed1 == nullptr) throw KernelArgumentError("rss_matmul needs seed0 and seed1");
  if (y_elems < 0) throw KernelArgumentError("y_elems must be >= 0");
  const i64 nz = batch.Count();
  const i64 out_elems = nz * M * N;
  if (out_elems == 0) return;
  // z = a (the zero share), then z += X0.(Y0 + Y1), then z += X1.Y0.
  ZeroShare(seed0, seed1, z, out_elems, stream);
  if (K == 0) return;
  StreamScratch scratch(scratch_fn, stream);
  u64* sum = static_cast<u64*>(scratch.Get(sizeof(u64) * static_cast<size_t>(y_elems), "Y0 + Y1"));
  RingAdd(y0, y1, sum, y_elems, stream);
  RingMatmul(x0, sum, z, M, N, K, transpose_a, transpose_b, batch, true, algo, stream, scratch_fn);
  RingMatmul(x1, y0, z, M, N, K, transpose_a, transpose_b, batch, true, algo, stream, scratch_fn);
}

MatmulDims PlanMatmul(const std::vector<i64>& a, const std::vector<i64>& b, bool ta, bool tb,
                      const char* an, const char* bn) {
  auto rank_error = [](const char* name, size_t rank) {
    return KernelArgumentError(std::string(name) + " must have rank >= 2, got rank " + std::to_string(rank));
  };
  if (a.size() < 2) throw rank_error(an, a.size());
  if (b.size() < 2) throw rank_error(bn, b.size());
  MatmulDims s;
  const i64 ar = a[a.size() - 2], ac = a[a.size() - 1], br = b[b.size() - 2], bc = b[b.size() - 1];
  s.M = ta ? ac : ar;
  const i64 ka = ta ? ar : ac;
  const i64 kb = tb ? bc : br;
  s.N = tb ? br : bc;
  if (ka != kb)
    throw KernelArgumentError("inner dimensions do not match: op(" + std::string(an) + ") is " +
                              std::to_string(s.M) + "x" + std::to_string(ka) + ", op(" + bn + ") is " +
                              std::to_string(kb) + "x" + std::to_string(s.N));
  s.K = ka;
  s.batch = BroadcastBatch(std::vector<i64>(a.begin(), a.end() - 2),
                           std::vector<i64>(b.begin(), b.end() - 2), &s.out_shape);
  s.out_shape.push_back(s.M);
  s.out_shape.push_back(s.N);
  return s;
}

}  // namespace cuda
}  // namespace tfe_accel
