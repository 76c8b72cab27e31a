// tfe-accel: share truncation, one kernel per protocol step and party, reproducing TF Encrypted
// 0.9.1's ABY3 local functions exactly (tf_encrypted/protocol/aby3/aby3.py).
//
// Notation: x = x0 + x1 + x2 (mod 2^64); party Pi holds (x_i, x_{i+1}). TFE's pairwise keys:
//   P0: keys[0] = (seed0, seed1), P1: keys[1] = (seed1, seed2), P2: keys[2] = (seed2, seed0);
//   nonces[0] is P0-P1's, nonces[1] is P1-P2's, nonces[2] is P2-P0's.
// A "seeded draw" U(key, nonce, shape) is TFE's `int64factory.sample_seeded_uniform(shape,
// key + nonce)`, i.e. SeededUniformInt64(SeedPlusNonce(key, nonce), -2^63, 2^63 - 1).
// All arithmetic is wrapping uint64. Messages between parties are *not* computed here: each kernel
// returns what its party sends and takes what it received.
#ifndef TFE_ACCEL_CC_KERNELS_TRUNCATION_H_
#define TFE_ACCEL_CC_KERNELS_TRUNCATION_H_

#include "common.h"

namespace tfe_accel {

// Elements [first, first + n) of the stream SeededUniformInt64(seed, -2^63, 2^63 - 1, ...) (TFE's
// default int64 range), generated directly at that offset (element i is 64-bit word i of the
// ChaCha20 stream; the rare rejected draw is redrawn exactly as chacha20.cc does). Serial: callers
// split the range over threads.
void FullRangeInt64At(const u32 seed[8], i64 first, i64 n, u64* out);

// CheckTruncationAmount (amount in [1, 62]) is in common.h.

// ---- (a) ABY3 non-interactive truncation: TFE `_truncate_local_private` ----
// P0: y0 = x0 >> amount (arithmetic shift). Output shares of P0: (y0, y1 received from P1).
// Sends y0 to P2.
void TruncateLocalP0(const u64* x0, u64* y0, i64 n, int amount, const ParallelFor& pf);
// P1: r = U(keys[1][1], nonces[1]); y1 = ((x1 + x2) >> amount) - r. Output shares (y1, r).
// Sends y1 to P0.
void TruncateLocalP1(const u64* x1, const u64* x2, const u32 key_12[8], i64 nonce_12, u64* y1,
                     u64* r, i64 n, int amount, const ParallelFor& pf);
// P2: r = U(keys[2][0], nonces[1]) (the same r as P1's). Output shares (r, y0 received from P0).
void TruncateLocalP2(const u32 key_12[8], i64 nonce_12, u64* r, i64 n, const ParallelFor& pf);

// ---- (b) MSB-0 truncation with a dealer: TFE `_truncate_msb0_secureq8_private`, and the
// heuristic wrapper `_truncate_heuristic_private` (lift: x0 += lift before, unlift: y0 -= unlift
// after; TFE's heuristic uses lift = 2^62, unlift = 2^(62 - amount); plain MSB-0 uses 0, 0).
//
// P2 (dealer). R02 = U(keys[2][1], nonces[2], [4] + shape) (rows r0, s0, rmsb0, y0, shared with
// P0); y2 = U(keys[2][0], nonces[1]) (shared with P1); r = SeededUniformInt64(r_seed) (TFE draws r
// with `sample_uniform`, i.e. from a fresh `secure_seed()`: pass that seed). h = r & 2^63,
// s = (r >>> amount) - (h >>> amount), rmsb = (h != 0).
// Sends to P1: r1 = r - R02[0], s1 = s - R02[1], rmsb1 = rmsb - R02[2].
// P2's output shares: (z20, z21) = (y2, y0 - unlift).
void TruncMsb0Dealer(const u32 key_20[8], i64 nonce_20, const u32 key_21[8], i64 nonce_21,
                     const u32 r_seed[8], i64 n, int amount, u64 unlift, u64* r1, u64* s1,
                     u64* rmsb1, u64* z20, u64* z21, const ParallelFor& pf);
// P0 masking: c0 = x0 + x1 + lift + R02[0] with R02 = U(keys[0][0], nonces[2], [4] + shape).
// Sends c0 to P1.
void TruncMsb0MaskP0(const u64* x0, const u64* x1, const u32 key_02[8], i64 nonce_02, u64 lift,
                     u64* c0, i64 n, const ParallelFor& pf);
// P1 masking: c1 = x2 + r1 (x2 is P1's second share, r1 received from P2). Sends c1 to P0.
void TruncMsb0MaskP1(const u64* x2, const u64* r1, u64* c1, i64 n, const ParallelFor& pf);
// P0 unmasking: c = c0 + c1; y~0 = ((c >> amount) & (2^(63-amount) - 1)) - s0
//   + b0 * 2^(63-amount) - y0, b0 = msb(c) ? 1 - rmsb0 : rmsb0 (s0, rmsb0, y0 rows 1..3 of R02).
// Sends y~0 to P1. Output shares: (z00, z01) = (y0 - unlift, y~0 + y~1).
void TruncMsb0UnmaskP0(const u64* c0, const u64* c1, const u32 key_02[8], i64 nonce_02,
                       int amount, u64 unlift, u64* y_tilde0, u64* z00, i64 n,
                       const ParallelFor& pf);
// P1 unmasking: y~1 = -s1 + b1 * 2^(63-amount) - y2, b1 = msb(c) ? -rmsb1 : rmsb1,
// y2 = U(keys[1][1], nonces[1]). Sends y~1 to P0. Output shares: (z10, z11) = (y~0 + y~1, y2).
void TruncMsb0UnmaskP1(const u64* c0, const u64* c1, const u64* s1, const u64* rmsb1,
                       const u32 key_12[8], i64 nonce_12, int amount, u64* y_tilde1, u64* z11,
                       i64 n, const ParallelFor& pf);
// P0 and P1, after exchanging y~: the shared middle share y~0 + y~1.
void TruncMsb0Combine(const u64* y_tilde0, const u64* y_tilde1, u64* z, i64 n,
                      const ParallelFor& pf);

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_TRUNCATION_H_
