// tfe-accel: one party's local step of ABY3's elementwise private x private product
// (TF Encrypted `_mul_private_private`), fused with its zero sharing:
//     z_i = x_i*y_i + x_i*y_{i+1} + x_{i+1}*y_i + a_i,   a_i = U(key0 + nonce0) - U(key1 + nonce1)
// with U = SeededUniformInt64 over [-2^63, 2^63-1) (TFE's int64 sample_seeded_uniform) and, to match
// stock TFE's share of party i: key0 = keys[i][0], nonce0 = nonces[(i+2)%3], key1 = keys[i][1],
// nonce1 = nonces[i]. Wrapping uint64. Not truncated (the caller truncates scaled products).
// The resharing message (z_i to P_{i-1}) is the caller's.
#ifndef TFE_ACCEL_CC_KERNELS_RSS_ELEMENTWISE_H_
#define TFE_ACCEL_CC_KERNELS_RSS_ELEMENTWISE_H_

#include "common.h"

namespace tfe_accel {

void RssMul(const u64* x_i, const u64* x_next, const u64* y_i, const u64* y_next,
            const u32 key0[8], i64 nonce0, const u32 key1[8], i64 nonce1, u64* z, i64 n,
            const ParallelFor& pf);

// Adds party i's arithmetic zero share for elements [first, first + n) to out[0, n).
void AddArithmeticZeroShare(const u32 key0[8], i64 nonce0, const u32 key1[8], i64 nonce1,
                            i64 first, i64 n, u64* out);

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_RSS_ELEMENTWISE_H_
