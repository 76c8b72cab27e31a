// tfe-accel: the boolean protocol steps behind TF Encrypted's ABY3 comparisons and sigmoid
// (`_sigmoid_private` -> `polynomial_piecewise` -> `less_equal` -> `msb` -> `bit_extract` ->
// `carry`, a Kogge-Stone carry circuit on packed boolean shares), one kernel per step and party.
//
// Boolean shares are packed words: x = x0 ^ x1 ^ x2, party Pi holds (x_i, x_{i+1}).
// A boolean zero share of party i (TFE `_gen_zero_sharing(..., BOOLEAN, factory)`) is
//   alpha_i = U_T(keys[i][0] + nonces[(i+2)%3]) ^ U_T(keys[i][1] + nonces[i]),
// U_T = the factory's `sample_seeded_uniform` (SeededUniformInt{64,32,16,8} over [T::min, T::max)).
// The kernels take `key_a = keys[i][0]`, `key_b = keys[i][1]`, `nonce_a = nonces[(i+2)%3]`,
// `nonce_b = nonces[i]`; an AND gate's resharing message z_i goes to P_{i-1}.
#ifndef TFE_ACCEL_CC_KERNELS_SIGMOID_STEPS_H_
#define TFE_ACCEL_CC_KERNELS_SIGMOID_STEPS_H_

#include <cstdint>

#include "common.h"
#include "mpc_local.h"

namespace tfe_accel {

// The zero share alpha_i (n elements of T) expanded in-kernel.
template <typename T>
void BooleanZeroShare(const u32 key_a[8], i64 nonce_a, const u32 key_b[8], i64 nonce_b, T* out,
                      i64 n, const ParallelFor& pf);

// Bit-extraction set-up (TFE `_bit_extract_private` / `_a2b_private`, step 1), party `party`:
// with alpha_i the int64 zero share for nonces N, P0 outputs (x0 + x1) ^ alpha_0 (sent to P2,
// also its own first share of operand1), P1 outputs alpha_1 (sent to P0), P2 outputs alpha_2
// (sent to P1). x_a, x_b are the party's arithmetic shares (only P0 reads them; may be null
// for P1 and P2). Nonces advance by 1 afterwards.
void BitExtractSetup(int party, const u64* x_a, const u64* x_b, const u32 key_a[8], i64 nonce_a,
                     const u32 key_b[8], i64 nonce_b, u64* out, i64 n, const ParallelFor& pf);

// First carry step (TFE `_carry_computation` with pos = 63 - 1 on 64-bit words): the operands
// (op1 = the a2b reshared x0+x1, op2 = the sharing of x2) are shifted left by 1, then the AND
// gate G = op1' & op2' computes its local term z (with its own zero share, nonces N+1) and
// P = op1' ^ op2' locally. Also returns the party's shares of bit 63 of op1 ^ op2 (TFE's `P`
// in `_bit_extract_private`), as int8 0/1 (the carry's final dtype).
// Outputs: z (send to P_{i-1}), p_a, p_b (int64), top_a, top_b (int8).
void CarrySetupAnd(const u64* op1_a, const u64* op1_b, const u64* op2_a, const u64* op2_b,
                   const u32 key_a[8], i64 nonce_a, const u32 key_b[8], i64 nonce_b, u64* z,
                   u64* p_a, u64* p_b, std::int8_t* top_a, std::int8_t* top_b, i64 n,
                   const ParallelFor& pf);

// One Kogge-Stone carry round (TFE `_carry_computation` loop body), local part of party i:
// Gs = bit_split_and_gather(G, 2), Ps = bit_split_and_gather(P, 2), cast to Out (the half-width
// dtype: int64 -> int32 -> int16 -> int8, then int8 stays int8); then the local terms of the two
// AND gates  Gs[0] & Ps[1]  (zero share with nonces N)  and  Ps[0] & Ps[1]  (nonces N+1).
// Outputs: zg, zp (the AND terms, sent to P_{i-1}); gs1_a, gs1_b (the party's shares of Gs[1],
// kept for the update). Nonces advance by 2 afterwards.
template <typename In, typename Out>
void KoggeStoneRound(const In* g_a, const In* g_b, const In* p_a, const In* p_b,
                     const u32 key_a[8], i64 nonce_a, const u32 key_b[8], i64 nonce_b, Out* zg,
                     Out* zp, Out* gs1_a, Out* gs1_b, i64 n, const ParallelFor& pf);

// The G update after a round's messages: G' = Gs[1] ^ (Gs[0] & Ps[1]), i.e.
// (gs1_a ^ zg_own, gs1_b ^ zg_received); P' is (zp_own, zp_received) as is.
template <typename T>
void KoggeStoneUpdate(const T* gs1_a, const T* gs1_b, const T* zg_own, const T* zg_recv,
                      T* g_a, T* g_b, i64 n, const ParallelFor& pf);


// ---------------------------------------------------------------- sigmoid piece evaluation
// TFE `polynomial_piecewise(x, c, coeffs)` with C pivots and K = C + 1 linear pieces
// (sigmoid: 5-piece C = 4, 3-piece C = 2). Pivots and coefficients are passed already encoded
// exactly as TFE encodes them (int64 ring elements), so the kernels never re-derive them.

// Comparison set-up, any party: the party's shares of d = c - tile(x) ([C] + shape; TFE's
// `_sub_public_private` adds c_j to share 0, i.e. to P0's first and P2's second share).
void PivotDiff(int party, const u64* x_a, const u64* x_b, const u64* pivots, i64 C, i64 n,
               u64* d_a, u64* d_b, const ParallelFor& pf);

// Piece selection, any party: from its shares of msb(c - x) ([C] + shape, bool) builds TFE's
// le = [~msb, 1] and gt = [1, ~msb ^ 1] ([K] + shape) and returns the local term z of the AND
// b = le & gt with its boolean zero share (bool factory: SeededUniformInt32 over [0, 2)) at the
// given nonces. z goes to P_{i-1}; the party's shares of b are then (z, z_received).
void PieceSelectAnd(int party, const bool* msb_a, const bool* msb_b, i64 C, i64 n,
                    const u32 key_a[8], i64 nonce_a, const u32 key_b[8], i64 nonce_b, bool* z,
                    const ParallelFor& pf);

// The pieces' products with their indicators (TFE `mul_ab(f, b)`: two `__mul_ab_routine`s,
// 3-party OTs, routine 0 with sender P0 at nonces N, routine 1 with sender P1 at N + 2) and the
// final `reduce_sum` over the K pieces. f is the party's shares of the pieces' values before the
// constant term c0 (shape [K] + shape); c0 (K values) is added where TFE adds it (share 0).
// Step 1 (before the OT messages), per party; arrays are [K * n] unless noted, pairs [2 * K * n].
//   P0: s_r0 (kept), m_to_p1 (pair), m_to_p2 (pair), s_r1 (kept; also to P1), wc_to_p2
//   P1: s_r0 (kept; also to P0), wc_to_p2, s_r1 (kept), m_to_p2 (pair), m_to_p0 (pair)
//   P2: s_r0 (kept; also to P0), wc_to_p1, s_r1 (kept; also to P1), wc_to_p0
// MulAbStep1Out: mpc_local.h (shared with the CUDA kernels).
void MulAbStep1(int party, const u64* f_a, const u64* f_b, const u64* c0, const bool* b_a,
                const bool* b_b, i64 K, i64 n, const u32 key_a[8], i64 nonce_a,
                const u32 key_b[8], i64 nonce_b, const MulAbStep1Out& out,
                const ParallelFor& pf);
// Step 2 (after the messages), per party: the receivers' OT outputs, both routines' shares
// added, summed over the K pieces -> the party's two output shares (n each).
//   P0: in1 = s_r0 from P1, in2 = s_r0 from P2, own = its s_r1, m = pair from P1, wc = from P2
//   P1: own = its s_r0, m = pair from P0, wc = from P2, in1 = s_r1 from P0, in2 = s_r1 from P2
//   P2: own = its s_r0, own2 = its s_r1, m = pair from P0, wc = from P1, m2 = pair from P1,
//       wc2 = from P0
// MulAbStep2In: mpc_local.h.
void MulAbStep2(int party, const MulAbStep2In& in, const bool* b_a, const bool* b_b, i64 K,
                i64 n, u64* y_a, u64* y_b, const ParallelFor& pf);

// MSB-0 truncation masking with TFE's public multiplication fused in front (`mul_public_private`
// by k_j, then the heuristic truncation): x has n elements, k has K values, the outputs are
// [K] + shape: P0: c0 = (x0 + x1) * k_j + lift + r0, P1: c1 = x2 * k_j + r1.
void TruncMsb0MaskScaledP0(const u64* x0, const u64* x1, const u64* k, i64 K, i64 n,
                           const u32 key_02[8], i64 nonce_02, u64 lift, u64* c0,
                           const ParallelFor& pf);
void TruncMsb0MaskScaledP1(const u64* x2, const u64* k, i64 K, i64 n, const u64* r1, u64* c1,
                           const ParallelFor& pf);

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_SIGMOID_STEPS_H_
