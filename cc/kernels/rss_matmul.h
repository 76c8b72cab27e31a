// tfe-accel: one party's local step of ABY3's products with replicated secret shares
// (TF Encrypted 0.9.1, tf_encrypted/protocol/aby3/aby3.py).
//
// Party i holds the shares (X_i, X_{i+1}) of X and (Y_i, Y_{i+1}) of Y (indices mod 3).
// Private x private (`_matmul_private_private`), party i's local step computes the 3-out-of-3
// share of the product re-randomised by a zero sharing:
//     z_i = X_i.Y_i + X_i.Y_{i+1} + X_{i+1}.Y_i + a_i
//         = X_i.(Y_i + Y_{i+1}) + X_{i+1}.Y_i + a_i       (one pass, two products)
// with a_i party i's share of `_gen_zero_sharing` (a_0 + a_1 + a_2 = 0):
//     a_i = U(key0 + nonce0) - U(key1 + nonce1),
// U(seed) = SeededUniformInt64(seed, -2^63, 2^63 - 1) over the output's shape (TFE's
// factory.sample_seeded_uniform), expanded tile by tile in the GEMM epilogue (never materialised).
// To reproduce stock TFE's share of party i pass
//     key0 = pairwise_keys()[i][0], nonce0 = pairwise_nonces()[(i + 2) % 3],
//     key1 = pairwise_keys()[i][1], nonce1 = pairwise_nonces()[i].
// The result is not truncated: TFE truncates a product of two scaled values afterwards
// (prot.truncate), a separate kernel. The re-sharing message (z_i to P_{i-1}) is the caller's.
//
// Public x private (`_matmul_public_private` / `_matmul_private_public`): a party multiplies both
// of its shares by the public matrix P in one call (P is read once on matrix-vector shapes).
#ifndef TFE_ACCEL_CC_KERNELS_RSS_MATMUL_H_
#define TFE_ACCEL_CC_KERNELS_RSS_MATMUL_H_

#include <vector>

#include "common.h"
#include "ring_gemm.h"

namespace tfe_accel {

// Validates the four share shapes (x_i and x_next equal, y_i and y_next equal, then as
// PlanMatmul(x, y)); throws KernelArgumentError naming the offending argument.
MatmulPlan PlanRssMatmul(const std::vector<i64>& x_i, const std::vector<i64>& x_next,
                         const std::vector<i64>& y_i, const std::vector<i64>& y_next,
                         bool transpose_a, bool transpose_b);

// z (plan.out_shape) = party i's z_i as above.
void RssMatmul(const MatmulPlan& plan, const i64* x_i, const i64* x_next, const i64* y_i,
               const i64* y_next, const u32 key0[8], i64 nonce0, const u32 key1[8], i64 nonce1,
               i64* z, const ParallelFor& pf);

// Adds a_i = U(seed0) - U(seed1) for elements [flat, flat + n) of a tensor (the zero share of
// `_gen_zero_sharing` for that range), to out[0, n). seed0/1 already include the nonce.
void AddZeroShare(const u32 seed0[8], const u32 seed1[8], i64 flat, i64 n, u64* out);

// Public x private, both shares of one party in one call:
//   public_left:  z0 = P.X_0, z1 = P.X_1   (plan = PlanMatmul(P, X))
//   otherwise:    z0 = X_0.P, z1 = X_1.P   (plan = PlanMatmul(X, P))
// X_0/X_1 are the party's two shares (same shape).
void PublicPrivateMatmul(const MatmulPlan& plan, const i64* p, const i64* x0, const i64* x1,
                         bool public_left, i64* z0, i64* z1, const ParallelFor& pf);

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_RSS_MATMUL_H_
