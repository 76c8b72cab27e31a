// tfe-accel: the msb of an arithmetic sharing in three rounds, by a masked comparison with P2 as
// the comparing party (SecureNN's PrivateCompare, Wagh et al. 2019, on ABY3's replicated shares,
// with the shares P2 receives re-randomised). It replaces the a2b and the six Kogge-Stone rounds
// of TFE's `_bit_extract_private(x, 63)` (seven rounds) in the comparisons of the sigmoid's pieces.
//
// Shares: x = x0 + x1 + x2 (mod 2^64), Pi holds (x_i, x_{i+1}). Streams: U(key, N) is the
// project's PRG stream of key + N (chacha20.h); k01, k02, k12 are the pairwise keys of the two
// parties named, N01, N02, N12 their nonces for this comparison (the caller's nonce cursor).
//
//   rho0 = U_full(k02, N02), rho1 = U_full(k12, N12), r = rho0 + rho1: uniform, known to P2 only.
//   D0 [n x 63]: P0's shares in Z_67 of the low 63 bits of r, two per 32-bit draw v of
//     U32[0, 67^2)(k02, N02 + 1) at position 32 i + q: digits 2q = v mod 67, 2q + 1 = v div 67.
//   Dealer (P2): D1 = bits(r) - D0 mod 67 -> P1 (data-independent: sent while x is computed).
//   Round 1 (open): P0 sends a0 = x0 + x1 + rho0 to P1, P1 sends a1 = x2 + rho1 to P0; both
//     know c = x + r, uniform to each of them.
//   Round 2 (mask): with c' = c mod 2^63, a bit beta and a rotation o in [0, 64) from
//     v = U32[0, 128)(k01, N01) at i (beta = v & 1, o = v >> 1), a multiplier s_k in [1, 67) and a
//     mask m_k in Z_67 per position k from v = U32[0, 66 * 67)(k01, N01 + 1) at 64 i + k
//     (s_k = 1 + v div 67, m_k = v mod 67), t = c' + beta
//     and w_l = r_l xor t_l (linear in the shares of r_l, t public to P0 and P1):
//       e_k = (beta ? r_k - t_k : t_k - r_k) + 1 + sum_{l > k} w_l     (r_63 = 0)
//     e_k = 0 for some k iff (beta ? t > r' : r' > t), with r' = r mod 2^63. Party j in {0, 1}
//     sends P2 its share s_k e_k^(j) +- m_k at position (k + o) mod 64 (uint8 [n x 64]).
//   Round 3 (resolve): P2 adds the two vectors mod 67; z = [some entry is 0] = beta xor [r' > c'].
//     msb(x) = c_63 ^ r_63 ^ [c' < r'] = (c_63 ^ beta) ^ (r_63 ^ z). Output boolean sharing:
//     s1 = c_63 ^ beta (P0, P1), s0 = U32[0, 2)(k02, N02 + 2) at i (P0, P2), s2 = r_63 ^ z ^ s0 (P2 -> P1).
//
// What each party sees is uniform given its own inputs: a0 and D1 are masked by k02 streams P1
// lacks, a1 by a k12 stream P0 lacks; P2 sees d0 (uniform, masked by m) and d0 + d1, whose
// entries are s_k e_k with s_k uniform in Z_67^*: iid uniform non-zero values, and at most one zero
// (e_k >= 1 below the first differing bit) at a uniform position (rotation o), present with
// probability 1/2 whatever x is (beta); s2 is masked by s0. Every e_k
// is in [0, 66] (at most 64 + 2), so Z_67 holds it without wrapping.
#ifndef TFE_ACCEL_CC_KERNELS_PRIVATE_COMPARE_H_
#define TFE_ACCEL_CC_KERNELS_PRIVATE_COMPARE_H_

#include "common.h"

namespace tfe_accel {

constexpr int kPcPrime = 67;      // Z_p of the bit shares: every e_k is in [0, 66]
constexpr int kPcPositions = 64;  // positions k = 0..63 of the comparison of t (<= 2^63) with r'
constexpr int kPcShareBits = 63;  // bits of r' that are shared (bit 63 of r' is 0)

// Round 1, party 0: a = x_a + x_b + rho0 (key = k02, nonce = N02); party 1: a = x_b + rho1
// (key = k12, nonce = N12; x_a is not read and may be null).
void PcOpen(int party, const u64* x_a, const u64* x_b, const u32 key[8], i64 nonce, u64* a,
            i64 n, const ParallelFor& pf);

// The dealer, P2: D1 (n x 63 values in [0, 67), to P1) and r_top = bit 63 of r (kept).
void PcDealer(const u32 key02[8], i64 nonce02, const u32 key12[8], i64 nonce12, u8* d1,
              bool* r_top, i64 n, const ParallelFor& pf);

// Round 2, party 0 (digits = null: D0 is drawn from key02 at nonce02 + 1; s0 is output) or party 1
// (digits = D1 as received; key02 and s0 are not used and may be null). a_own, a_recv: the two
// opened halves. Outputs d (n x 64 values in [0, 67), to P2), s1 = c_63 ^ beta.
void PcMask(int party, const u64* a_own, const u64* a_recv, const u8* digits,
            const u32 key02[8], i64 nonce02, const u32 key01[8], i64 nonce01, u8* d, bool* s1,
            bool* s0, i64 n, const ParallelFor& pf);

// Round 3, P2: from d0, d1 (n x 64 each) and r_top, its output shares (s2, sent to P1, and s0).
void PcResolve(const u8* d0, const u8* d1, const bool* r_top, const u32 key02[8], i64 nonce02,
               bool* s2, bool* s0, i64 n, const ParallelFor& pf);

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_PRIVATE_COMPARE_H_
