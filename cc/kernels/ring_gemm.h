// tfe-accel: matrix products over the ring Z_2^64 (int64 tensors, wrapping arithmetic).
//
// ring_matmul: C = A.B mod 2^64 with tf.matmul's conventions (rank >= 2, broadcast batch dims,
// transpose flags). The engine is a packed, cache-blocked GEMM (GotoBLAS/BLIS loop order: A block
// mc x kc packed in MR-row micro-panels, B panel kc x nc packed in NR-column micro-panels, a
// register-blocked MR x NR micro-kernel) with run-time dispatch AVX-512 (vpmullq) / AVX2 (64-bit
// low product emulated from vpmuludq) / portable scalar. Matrix-vector shapes (N == 1 or M == 1)
// are memory bound and go through streaming kernels that read the matrix exactly once.
//
// The engine also serves the fused MPC products (rss_matmul.h): a product is a sum of terms
// A_t.(B_t + B2_t) sharing one output, and an epilogue sees every output segment once with its
// final value while it is still in cache (the zero share is added there).
#ifndef TFE_ACCEL_CC_KERNELS_RING_GEMM_H_
#define TFE_ACCEL_CC_KERNELS_RING_GEMM_H_

#include <functional>
#include <string>
#include <vector>

#include "common.h"
#include "cpu_features.h"

namespace tfe_accel {

// A logical matrix view: element (r, c) is p[r * rs + c * cs].
struct RingMatView {
  const u64* p = nullptr;
  i64 rs = 0;
  i64 cs = 0;
};

// One term of a fused product: a (M x K) . (b [+ b2]) (K x N). b2.p == nullptr means no b2.
struct GemmTerm {
  RingMatView a;
  RingMatView b;
  RingMatView b2;
};

// The shapes of one batched product, as tf.matmul (BatchMatMulV2) defines them.
struct MatmulPlan {
  std::vector<i64> out_shape;   // broadcast batch dims + [M, N]
  i64 batch = 1, M = 0, N = 0, K = 0;
  bool transpose_a = false, transpose_b = false;
  std::vector<i64> a_offset;    // per output batch index: element offset of that A matrix
  std::vector<i64> b_offset;    // same for B
  i64 a_rows = 0, a_cols = 0;   // A's stored inner dims (before transpose)
  i64 b_rows = 0, b_cols = 0;
};

// Validates shapes and builds the plan. Throws KernelArgumentError naming `a_name` / `b_name` for
// rank < 2, mismatched inner dimensions, or batch dims that do not broadcast.
MatmulPlan PlanMatmul(const std::vector<i64>& a_shape, const std::vector<i64>& b_shape,
                      bool transpose_a, bool transpose_b, const char* a_name = "a",
                      const char* b_name = "b");

// Called with contiguous segments [flat, flat + n) of the (batch, M, N) row-major output, each
// exactly once, holding their final product values, before the product returns.
using SegmentEpilogue = std::function<void(i64 flat, i64 n, u64* out)>;

// out[b] = sum_t terms[t].a[b] . (terms[t].b[b] + terms[t].b2[b]) for every output batch b, where
// the views of batch b start at a_offset[b] / b_offset[b] elements past the term's pointers.
// out is (batch, M, N) row-major. epi may be null.
void RingGemmBatched(i64 batch, i64 M, i64 N, i64 K, const GemmTerm* terms, int nterms,
                     const i64* a_offset, const i64* b_offset, u64* out,
                     const SegmentEpilogue* epi, const ParallelFor& pf);

// The term of a plain product for a plan (views of batch 0; offsets in the plan).
GemmTerm PlanTerm(const MatmulPlan& plan, const u64* a, const u64* b, const u64* b2 = nullptr);

// C = A.B mod 2^64 for int64 tensors laid out row-major with the plan's shapes.
void RingMatmul(const MatmulPlan& plan, const i64* a, const i64* b, i64* c, const ParallelFor& pf);

// ---- memory-bound building blocks (matrix read once, up to two vectors/outputs per matrix) ----
// Dot form: out_o[r] (+)= sum_k mat[r * ld + k] * v_o[k] for r in [0, R), o in {0, 1};
// v1/out1 may be null.
void RingStreamDot(i64 R, i64 K, const u64* mat, i64 ld, const u64* v0, const u64* v1, u64* out0,
                   u64* out1, bool accumulate, const ParallelFor& pf);
// Axpy form: out_o[c] (+)= sum_r v_o[r] * mat[r * ld + c] for c in [0, C).
void RingStreamAxpy(i64 R, i64 C, const u64* mat, i64 ld, const u64* v0, const u64* v1,
                    u64* out0, u64* out1, bool accumulate, const ParallelFor& pf);

// The code path the GEMM dispatches to in this process (ActiveCodePath()).
const char* RingGemmPathName();

// ---- per-ISA kernels (internal; selected by ActiveCodePath()) ----
namespace ring_gemm_detail {
// C[MR x NR] (row stride ldc) (+)= Apack (kc x MR, k-major) . Bpack (kc x NR, k-major).
using MicroKernelFn = void (*)(i64 kc, const u64* ap, const u64* bp, u64* c, i64 ldc,
                               bool accumulate);
// Streaming rows [r0, r1) of the dot form, columns [c0, c1) of the axpy form.
using DotRowsFn = void (*)(i64 r0, i64 r1, i64 K, const u64* mat, i64 ld, const u64* v0,
                           const u64* v1, u64* out0, u64* out1, bool accumulate);
using AxpyColsFn = void (*)(i64 R, i64 c0, i64 c1, const u64* mat, i64 ld, const u64* v0,
                            const u64* v1, u64* out0, u64* out1, bool accumulate);
struct IsaKernels {
  int mr, nr;
  MicroKernelFn micro;
  DotRowsFn dot;
  AxpyColsFn axpy;
  const char* name;
};
const IsaKernels& PortableKernels();
const IsaKernels& Avx2Kernels();
const IsaKernels& Avx512Kernels();
}  // namespace ring_gemm_detail

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_RING_GEMM_H_
