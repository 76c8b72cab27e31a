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

// One party's local step of a column-wise sum of squares of a centred private matrix, the ABY3
// inner product (the local product terms are summed before anything is reshared, so the message is
// one value per column instead of one per element):
//     z_i[c] = sum_r a[r,c] * (a[r,c] + 2 b[r,c]) + alpha_i[c],  a = x_i - m_i[c], b = x_next - m_next[c]
// i.e. sum_r RssMulTerm(a, b, a, b): party i's 3-out-of-3 share of sum_r (x[r,c] - m[c])^2 where x and
// m are 2-out-of-3 shared and alpha_i is party i's zero share (keys and nonces as RssMul) for the
// `cols` outputs. x_i, x_next: [rows, cols] row-major; m_i, m_next: [cols]. Wrapping uint64, not
// truncated (the products carry twice the fractional bits). The resharing message is the caller's.
void RssColumnSquares(const u64* x_i, const u64* x_next, const u64* m_i, const u64* m_next, i64 rows,
                      i64 cols, const u32 key0[8], i64 nonce0, const u32 key1[8], i64 nonce1, u64* z,
                      const ParallelFor& pf);

// Adds party i's arithmetic zero share for elements [first, first + n) to out[0, n).
void AddArithmeticZeroShare(const u32 key0[8], i64 nonce0, const u32 key1[8], i64 nonce1,
                            i64 first, i64 n, u64* out);

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_RSS_ELEMENTWISE_H_
