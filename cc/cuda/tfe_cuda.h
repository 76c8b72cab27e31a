// tfe-accel: host API of the CUDA kernels (cc/cuda/*.cu). Plain C++ (no TF or Python types); every
// pointer below is a DEVICE pointer, every function enqueues on `stream` and returns without
// synchronising. Bad arguments throw KernelArgumentError (before anything is launched); CUDA
// failures throw std::runtime_error naming the failing call.
//
// Ring arithmetic is wrapping uint64 (Z_2^64); int64 tensors are passed as u64 bit patterns.
// The PRG streams are bit-identical to cc/kernels/chacha20.h (SeededUniformInt64 et al.).
#ifndef TFE_ACCEL_CC_CUDA_TFE_CUDA_H_
#define TFE_ACCEL_CC_CUDA_TFE_CUDA_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../kernels/common.h"
#include "../kernels/mpc_local.h"

namespace tfe_accel {
namespace cuda {

constexpr int kMaxBatchDims = 8;

// Broadcast batch dimensions of a batched matmul, like tf.matmul: output batch index z (row-major
// over dims[0..ndim)) reads A batch sum_d coord_d * a_stride[d] and B batch sum_d coord_d * b_stride[d]
// (strides counted in whole matrices; 0 where that operand broadcasts).
struct BatchMap {
  int ndim = 0;
  i64 dims[kMaxBatchDims] = {};
  i64 a_stride[kMaxBatchDims] = {};
  i64 b_stride[kMaxBatchDims] = {};
  i64 Count() const {
    i64 n = 1;
    for (int d = 0; d < ndim; ++d) n *= dims[d];
    return n;
  }
};

// Builds the BatchMap for operands with batch shapes `a_batch` and `b_batch` (shape[:-2]), numpy
// broadcasting rules (right-aligned; 1 broadcasts). Throws KernelArgumentError on a mismatch.
BatchMap BroadcastBatch(const std::vector<i64>& a_batch, const std::vector<i64>& b_batch,
                        std::vector<i64>* out_batch);

// Shapes of a (maybe batched, maybe transposed) product op(A).op(B), like tf.matmul: rank >= 2,
// equal inner dimensions, broadcast batch dims. Throws KernelArgumentError naming a_name/b_name.
struct MatmulDims {
  i64 M = 0, N = 0, K = 0;
  BatchMap batch;
  std::vector<i64> out_shape;  // broadcast batch dims + [M, N]
};
MatmulDims PlanMatmul(const std::vector<i64>& a_shape, const std::vector<i64>& b_shape,
                      bool transpose_a, bool transpose_b, const char* a_name, const char* b_name);

// Device scratch memory for one call: returns `bytes` of device memory that stays valid until the
// work enqueued by that call has finished; the caller owns it (the callee never frees it). TF's
// GPU kernels pass one backed by TF's allocator (allocate_temp); with none, the call uses
// cudaMallocAsync / cudaFreeAsync on its stream.
using ScratchFn = std::function<void*(std::size_t bytes)>;

enum class GemmAlgo : int {
  kAuto = 0,        // GEMV for N == 1 or M == 1, int8 tensor cores where sm >= 80 and the shape is large, SIMT otherwise
  kSimt = 1,        // tiled 64-bit SIMT GEMM on the CUDA cores
  kTensorCore = 2,  // exact 8-limb decomposition onto int8 mma.sync (sm_80+)
  kGemv = 3,        // matrix-vector kernels (only when N == 1 or M == 1)
};
const char* GemmAlgoName(GemmAlgo a);
GemmAlgo ResolveAlgo(GemmAlgo requested, i64 M, i64 N, i64 K, int device);

// C[z] (+)= op(A)[z] . op(B)[z] mod 2^64, op(A) is M x K, op(B) is K x N, C is M x N, all row-major
// and contiguous per batch. transpose_a: A is stored K x M; transpose_b: B is stored N x K.
// accumulate: add into C instead of overwriting it.
void RingMatmul(const u64* a, const u64* b, u64* c, i64 M, i64 N, i64 K, bool transpose_a,
                bool transpose_b, const BatchMap& batch, bool accumulate, GemmAlgo algo,
                cudaStream_t stream, const ScratchFn* scratch = nullptr);

// Uniform int64 in [lo, hi) from the PRG keyed by `seed` (host array of 8 words): identical to
// tfe_accel::SeededUniformInt64 (Lemire multiply-and-reject, redraw at the same position in
// rounds 1, 2, ...).
void SeededUniformInt64(const u32 seed[8], i64 lo, i64 hi, i64* out, i64 n, cudaStream_t stream);

// out[i] = U(seed0)[i] - U(seed1)[i] (mod 2^64), U uniform over [-2^63, 2^63 - 1) (TFE's default
// int64 min/max): one party's share of TFE's _gen_zero_sharing. Seeds are the nonce-adjusted ones
// (key + nonce, cc/kernels/chacha20.h SeedPlusNonce).
void ZeroShare(const u32 seed0[8], const u32 seed1[8], u64* out, i64 n, cudaStream_t stream);

// One party's local step of the ABY3 private x private matmul (replicated shares):
//   z = X0.(Y0 + Y1) + X1.Y0 + a,  a = U(seed0) - U(seed1) over the output's elements
// where (X0, X1) / (Y0, Y1) are the party's two shares (Y0 has y_elems elements), shapes and flags
// as RingMatmul. Y0 + Y1 and the limb planes go to `scratch` (see ScratchFn).
void RssMatmul(const u64* x0, const u64* x1, const u64* y0, const u64* y1, u64* z, i64 M, i64 N,
               i64 K, bool transpose_a, bool transpose_b, const BatchMap& batch, i64 y_elems,
               const u32 seed0[8], const u32 seed1[8], GemmAlgo algo, cudaStream_t stream,
               const ScratchFn* scratch = nullptr);

// One party's local step of ABY3's elementwise private x private product (TFE
// _mul_private_private), as cc/kernels/rss_elementwise.h: z = x_i*y_i + x_i*y_next + x_next*y_i +
// U(seed0) - U(seed1) over n elements (seeds nonce-adjusted: key0 + nonce0, key1 + nonce1).
void RssMul(const u64* x_i, const u64* x_next, const u64* y_i, const u64* y_next,
            const u32 seed0[8], const u32 seed1[8], u64* z, i64 n, cudaStream_t stream);

// ABY3 non-interactive truncation (TFE _truncate_local_private), one party's local step,
// elementwise over n elements, shift `amount` in [1, 62] (arithmetic shift, as tf.bitwise.right_shift
// on int64):
//   party 0: y = x0 >> amount                                        (r unused)
//   party 1: r = U(seed); y = ((x0 + x1) >> amount) - r              (seed = keys[1][1] + nonces[1])
//   party 2: r = U(seed); y unused (the party's new shares are (r, y0 from P0))
//                                                                  (seed = keys[2][0] + nonces[1])
// U uniform over [-2^63, 2^63 - 1). y and r may be nullptr where unused.
void TruncateLocal(int party, const u64* x0, const u64* x1, i64 n, int amount, const u32 seed[8],
                   u64* y, u64* r, cudaStream_t stream);

// MSB-0 truncation with a dealer (TFE `_truncate_msb0_secureq8_private`; with lift/unlift the
// heuristic `_truncate_heuristic_private`), one kernel per party and step, mirroring
// cc/kernels/truncation.h exactly (same streams, same row layout of the [4] + shape draw R02).
// Seeds are nonce-adjusted (key + nonce); r_seed is used as is. amount in [1, 62].
void TruncMsb0Dealer(const u32 seed_20[8], const u32 seed_21[8], const u32 r_seed[8], i64 n,
                     int amount, u64 unlift, u64* r1, u64* s1, u64* rmsb1, u64* z20, u64* z21,
                     cudaStream_t stream);
void TruncMsb0MaskP0(const u64* x0, const u64* x1, const u32 seed_02[8], u64 lift, u64* c0, i64 n,
                     cudaStream_t stream);
void TruncMsb0UnmaskP0(const u64* c0, const u64* c1, const u32 seed_02[8], int amount, u64 unlift,
                       u64* y_tilde0, u64* z00, i64 n, cudaStream_t stream);
void TruncMsb0UnmaskP1(const u64* c0, const u64* c1, const u64* s1, const u64* rmsb1,
                       const u32 seed_12[8], int amount, u64* y_tilde1, u64* z11, i64 n,
                       cudaStream_t stream);
// (P1's masking c1 = x2 + r1 and the final y~0 + y~1 are RingAdd.)

// Bit extraction / Kogge-Stone carry steps (TFE `msb` -> `bit_extract` -> `carry`), one party's
// local work, mirroring cc/kernels/sigmoid_steps.h exactly. Seeds are nonce-adjusted:
// seed_a = keys[i][0] + nonces[(i+2)%3], seed_b = keys[i][1] + nonces[i]; for the second AND gate
// of a round the caller passes the seeds of nonce + 1. `elem_bytes` selects the boolean word type
// (8: int64, 4: int32, 2: int16, 1: int8); narrow draws are SeededUniformInt{32,16,8} over
// [T::min, T::max) (one 32-bit PRG word per element).
// out = U_T(seed_a) ^ U_T(seed_b): the boolean zero share.
void BooleanZeroShare(int elem_bytes, const u32 seed_a[8], const u32 seed_b[8], void* out, i64 n,
                      cudaStream_t stream);
// P0: (x_a + x_b) ^ alpha0; P1, P2: alpha_i (int64). x_a/x_b read by P0 only.
void BitExtractSetup(int party, const u64* x_a, const u64* x_b, const u32 seed_a[8],
                     const u32 seed_b[8], u64* out, i64 n, cudaStream_t stream);
// First carry step on 64-bit words (see CarrySetupAnd in sigmoid_steps.h).
void CarrySetupAnd(const u64* op1_a, const u64* op1_b, const u64* op2_a, const u64* op2_b,
                   const u32 seed_a[8], const u32 seed_b[8], u64* z, u64* p_a, u64* p_b,
                   std::int8_t* top_a, std::int8_t* top_b, i64 n, cudaStream_t stream);
// One round's local part: In has in_bytes, Out = half width (int8 stays int8). seed_a1/seed_b1
// are the seeds at nonce + 1 (the P AND gate).
void KoggeStoneRound(int in_bytes, const void* g_a, const void* g_b, const void* p_a,
                     const void* p_b, const u32 seed_a[8], const u32 seed_b[8],
                     const u32 seed_a1[8], const u32 seed_b1[8], void* zg, void* zp, void* gs1_a,
                     void* gs1_b, i64 n, cudaStream_t stream);
// g_a = gs1_a ^ zg_own, g_b = gs1_b ^ zg_recv (elem_bytes wide).
void KoggeStoneUpdate(int elem_bytes, const void* gs1_a, const void* gs1_b, const void* zg_own,
                      const void* zg_recv, void* g_a, void* g_b, i64 n, cudaStream_t stream);

// Sigmoid piece evaluation (TFE `polynomial_piecewise` / `mul_ab`), mirroring
// cc/kernels/sigmoid_steps.h (PivotDiff, PieceSelectAnd, MulAbStep1/2, TruncMsb0MaskScaled*).
// Booleans are bytes 0/1 (NumPy bool). `pivots`, `c0`, `k` are device arrays of C / K values.
// Keys and nonces as the CPU functions (the kernels add the nonces, with the same offsets).
void PivotDiff(int party, const u64* x_a, const u64* x_b, const u64* pivots, i64 C, i64 n,
               u64* d_a, u64* d_b, cudaStream_t stream);
void PieceSelectAnd(int party, const u8* msb_a, const u8* msb_b, i64 C, i64 n, const u32 key_a[8],
                    i64 nonce_a, const u32 key_b[8], i64 nonce_b, u8* z, cudaStream_t stream);
using MulAbStep1Dev = ::tfe_accel::MulAbStep1Out;  // device pointers (kernels/mpc_local.h)
void MulAbStep1(int party, const u64* f_a, const u64* f_b, const u64* c0, const u8* b_a,
                const u8* b_b, i64 K, i64 n, const u32 key_a[8], i64 nonce_a, const u32 key_b[8],
                i64 nonce_b, const MulAbStep1Dev& out, cudaStream_t stream);
using MulAbStep2Dev = ::tfe_accel::MulAbStep2In;  // device pointers
void MulAbStep2(int party, const MulAbStep2Dev& in, const u8* b_a, const u8* b_b, i64 K, i64 n,
                u64* y_a, u64* y_b, cudaStream_t stream);
void TruncMsb0MaskScaledP0(const u64* x0, const u64* x1, const u64* k, i64 K, i64 n,
                           const u32 key_02[8], i64 nonce_02, u64 lift, u64* c0,
                           cudaStream_t stream);
void TruncMsb0MaskScaledP1(const u64* x2, const u64* k, i64 K, i64 n, const u64* r1, u64* c1,
                           cudaStream_t stream);

// Elementwise c = a + b (mod 2^64).
void RingAdd(const u64* a, const u64* b, u64* c, i64 n, cudaStream_t stream);

// Throws std::runtime_error("<what>: <cuda error string>") if err != cudaSuccess.
void Check(cudaError_t err, const char* what);

// Name and compute capability of `device`, e.g. "NVIDIA H100 80GB HBM3 (sm_90)".
std::string DeviceDescription(int device);

}  // namespace cuda
}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_CUDA_TFE_CUDA_H_
