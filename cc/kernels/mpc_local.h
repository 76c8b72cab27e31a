// tfe-accel: the per-element local functions of the MPC protocol steps -- the ONE implementation
// of each step's arithmetic, used by the CPU kernels (cc/kernels/*.cc: chunked, vectorised loops
// over these functions) and by the CUDA kernels (cc/cuda/*.cu: one thread per element or per PRG
// block). What differs between the two is only how elements and PRG words are brought to these
// functions; what is computed from them is written once, here.
//
// Plain C++17, no TensorFlow, no CUDA headers for CPU builds. Under nvcc (and in the CPU emulation
// of the CUDA code, tests/test_cuda_emulation.py) every function is __host__ __device__.
// The protocols, parties, keys and nonces are documented where the kernels are declared:
// truncation.h (TFE `_truncate_local_private`, `_truncate_msb0_secureq8_private`,
// `_truncate_heuristic_private`), rss_elementwise.h (`_mul_private_private`), sigmoid_steps.h
// (`bit_extract` / `carry`, `polynomial_piecewise`, `mul_ab`). All arithmetic wraps mod 2^64.
#ifndef TFE_ACCEL_CC_KERNELS_MPC_LOCAL_H_
#define TFE_ACCEL_CC_KERNELS_MPC_LOCAL_H_

#if defined(__CUDACC__) || defined(TFE_ACCEL_CUDA_EMULATION)
#include <cuda_runtime.h>
#define TFE_ACCEL_LOCAL __host__ __device__ __forceinline__
#define TFE_ACCEL_LOCAL_ABI hd
#else
#define TFE_ACCEL_LOCAL inline __attribute__((always_inline))
#define TFE_ACCEL_LOCAL_ABI host
#endif

#include <cstdint>
#include <type_traits>

#include "common.h"

namespace tfe_accel {

// The party's output arrays of mul_ab step 1 and its inputs to step 2 (sigmoid_steps.h), the same
// structs for host (CPU kernels) and device (CUDA kernels) pointers.
struct MulAbStep1Out {
  u64* s_r0 = nullptr;
  u64* s_r1 = nullptr;
  u64* m_next = nullptr;  // sender's masked pair for P_{i+1}
  u64* m_prev = nullptr;  // sender's masked pair for P_{i-1}
  u64* wc_a = nullptr;    // P0: wc_to_p2; P1: wc_to_p2; P2: wc_to_p1
  u64* wc_b = nullptr;    // P2: wc_to_p0
};
struct MulAbStep2In {
  const u64* own = nullptr;
  const u64* own2 = nullptr;
  const u64* in1 = nullptr;
  const u64* in2 = nullptr;
  const u64* m = nullptr;
  const u64* wc = nullptr;
  const u64* m2 = nullptr;
  const u64* wc2 = nullptr;
};

namespace local {
// The inline namespace keeps the host-only and the __host__ __device__ compilations of these
// functions distinct symbols (one program may contain both).
inline namespace TFE_ACCEL_LOCAL_ABI {

// ------------------------------------------------------------------ helpers

// Arithmetic shift right of the int64 bit pattern (`tf.bitwise.right_shift` on int64).
TFE_ACCEL_LOCAL u64 Sar(u64 v, int amount) { return static_cast<u64>(static_cast<i64>(v) >> amount); }

// nonce + k as TF's int64 add computes it (wrapping; a signed overflow would be UB): the nonce of a
// protocol step's k-th extra draw (the second AND gate of a Kogge-Stone round, the mul_ab OTs).
TFE_ACCEL_LOCAL i64 NonceAdd(i64 nonce, i64 k) {
  return static_cast<i64>(static_cast<u64>(nonce) + static_cast<u64>(k));
}

// All ones if `bit`, else 0: branch-free selection (vectorises on the CPU, no divergence on the GPU).
TFE_ACCEL_LOCAL u64 Mask(bool bit) { return 0 - static_cast<u64>(bit); }

// bit ? w1 : w0, branch-free.
TFE_ACCEL_LOCAL u64 Select(bool bit, u64 w0, u64 w1) { return (w1 & Mask(bit)) | (w0 & ~Mask(bit)); }

// The unsigned bit pattern of a boolean word of any width, zero-extended to 64 bits.
template <typename T>
TFE_ACCEL_LOCAL u64 ZeroExt(T v) {
  return static_cast<u64>(static_cast<typename std::make_unsigned<T>::type>(v));
}

// Gathers the even bits (0, 2, 4, ...) of a zero-extended word into its low half (TFE's
// bit_gather(x, 0, 2) on the word's own width).
TFE_ACCEL_LOCAL u64 CompressEven(u64 x) {
  x &= 0x5555555555555555ull;
  x = (x | (x >> 1)) & 0x3333333333333333ull;
  x = (x | (x >> 2)) & 0x0f0f0f0f0f0f0f0full;
  x = (x | (x >> 4)) & 0x00ff00ff00ff00ffull;
  x = (x | (x >> 8)) & 0x0000ffff0000ffffull;
  x = (x | (x >> 16)) & 0x00000000ffffffffull;
  return x;
}

// ------------------------------------------------------------------ multiplication

// A party's local term of the ABY3 product (TFE `_mul_private_private`) before its zero share:
// x_i y_i + x_i y_{i+1} + x_{i+1} y_i.
TFE_ACCEL_LOCAL u64 RssMulTerm(u64 x_i, u64 x_next, u64 y_i, u64 y_next) {
  return x_i * (y_i + y_next) + x_next * y_i;
}

// ------------------------------------------------------------------ truncation

// (a) non-interactive, P1: y1 = ((x1 + x2) >> d) - r.
TFE_ACCEL_LOCAL u64 TruncLocalP1(u64 x1, u64 x2, u64 r, int amount) { return Sar(x1 + x2, amount) - r; }

// (b) MSB-0 dealer (P2): from its fresh r and P0's shares (rows 0..2 of R02), P1's shares of r,
// s = (r >>> d) - (msb(r) >>> d) and msb(r).
struct DealerShares {
  u64 r1, s1, rmsb1;
};
TFE_ACCEL_LOCAL DealerShares TruncDealer(u64 r, u64 r0, u64 s0, u64 rmsb0, int amount) {
  const u64 h = r & (1ull << 63);
  const u64 s = (r >> amount) - (h >> amount);
  const u64 rmsb = h != 0 ? 1u : 0u;
  return {r - r0, s - s0, rmsb - rmsb0};
}

// P0 masking: c0 = x0 + x1 + lift + r0 (r0 = row 0 of R02).
TFE_ACCEL_LOCAL u64 TruncMaskP0(u64 r0, u64 x0, u64 x1, u64 lift) { return r0 + x0 + lift + x1; }

// P0 masking fused with the public multiplication by k (sigmoid pieces): (x0 + x1) k + lift + r0.
TFE_ACCEL_LOCAL u64 TruncMaskScaledP0(u64 r0, u64 x0, u64 x1, u64 k, u64 lift) {
  return r0 + (x0 + x1) * k + lift;
}

// P1 masking: c1 = x2 k + r1 (k = 1 for the plain truncation).
TFE_ACCEL_LOCAL u64 TruncMaskP1(u64 x2, u64 k, u64 r1) { return x2 * k + r1; }

// P0 unmasking: c = c0 + c1; y~0 = ((c >> d) & (2^(63-d) - 1)) - s0 + b0 2^(63-d) - y0,
// b0 = msb(c) ? 1 - rmsb0 : rmsb0.
TFE_ACCEL_LOCAL u64 TruncUnmaskP0(u64 c0, u64 c1, u64 s0, u64 rmsb0, u64 y0, int amount) {
  const u64 top = 1ull << (63 - amount);
  const u64 c = c0 + c1;
  const u64 b0 = (c >> 63) ? 1 - rmsb0 : rmsb0;
  return ((c >> amount) & (top - 1)) - s0 + b0 * top - y0;
}

// P1 unmasking: y~1 = b1 2^(63-d) - s1 - y2, b1 = msb(c) ? -rmsb1 : rmsb1.
TFE_ACCEL_LOCAL u64 TruncUnmaskP1(u64 c0, u64 c1, u64 s1, u64 rmsb1, u64 y2, int amount) {
  const u64 top = 1ull << (63 - amount);
  const u64 c = c0 + c1;
  const u64 b1 = (c >> 63) ? 0 - rmsb1 : rmsb1;
  return b1 * top - s1 - y2;
}

// ------------------------------------------------------------------ bit extraction / Kogge-Stone

// First carry step on 64-bit words: op1' = op1 << 1, op2' = op2 << 1; the AND gate G's local term
// (with zero share alpha), P = op1' ^ op2', and bit 63 of op1 ^ op2 (int8 0/1).
struct CarrySetup {
  u64 z, p_a, p_b;
  std::int8_t top_a, top_b;
};
TFE_ACCEL_LOCAL CarrySetup CarrySetupAndTerm(u64 xa, u64 xb, u64 ya, u64 yb, u64 alpha) {
  const u64 sxa = xa << 1, sxb = xb << 1, sya = ya << 1, syb = yb << 1;
  CarrySetup r;
  r.z = alpha ^ (sxa & sya) ^ (sxa & syb) ^ (sxb & sya);
  r.p_a = sxa ^ sya;
  r.p_b = sxb ^ syb;
  r.top_a = static_cast<std::int8_t>((xa ^ ya) >> 63);
  r.top_b = static_cast<std::int8_t>((xb ^ yb) >> 63);
  return r;
}

// One Kogge-Stone round's local part, from the zero-extended shares of G and P: Gs = split(G),
// Ps = split(P) at half width Out; the AND terms Gs[0] & Ps[1] (zero share ag) and Ps[0] & Ps[1]
// (zero share ap), and the party's shares of Gs[1].
template <typename Out>
struct KoggeStoneTerms {
  Out zg, zp, gs1_a, gs1_b;
};
template <typename Out>
TFE_ACCEL_LOCAL KoggeStoneTerms<Out> KoggeStoneRoundTerm(u64 ga, u64 gb, u64 pa, u64 pb, Out ag,
                                                         Out ap) {
  const Out g0a = static_cast<Out>(CompressEven(ga)), g0b = static_cast<Out>(CompressEven(gb));
  const Out p0a = static_cast<Out>(CompressEven(pa)), p0b = static_cast<Out>(CompressEven(pb));
  const Out p1a = static_cast<Out>(CompressEven(pa >> 1));
  const Out p1b = static_cast<Out>(CompressEven(pb >> 1));
  KoggeStoneTerms<Out> r;
  r.zg = static_cast<Out>(ag ^ (g0a & p1a) ^ (g0a & p1b) ^ (g0b & p1a));
  r.zp = static_cast<Out>(ap ^ (p0a & p1a) ^ (p0a & p1b) ^ (p0b & p1a));
  r.gs1_a = static_cast<Out>(CompressEven(ga >> 1));
  r.gs1_b = static_cast<Out>(CompressEven(gb >> 1));
  return r;
}

// The G update after a round's messages: a share of G' = Gs[1] ^ (the AND term's share).
template <typename T>
TFE_ACCEL_LOCAL T KoggeStoneUpdateTerm(T gs1, T z) { return static_cast<T>(gs1 ^ z); }

// ------------------------------------------------------------------ sigmoid pieces

// The party's shares of d = c - x for one pivot c (TFE `_sub_public_private`: c goes to share 0,
// i.e. P0's first and P2's second share).
struct SharePair {
  u64 a, b;
};
TFE_ACCEL_LOCAL SharePair PivotDiffTerm(int party, u64 c, u64 xa, u64 xb) {
  return {(party == 0 ? c : 0) - xa, (party == 2 ? c : 0) - xb};
}

// Piece j's selection AND (TFE: b_j = le_j & gt_j with le = [~msb, 1], gt = [1, ~msb ^ 1]), the
// party's local term with boolean zero share alpha. msb_{a,b} are the party's shares of
// msb(c_j - x) (read only when j < C), prev_{a,b} of msb(c_{j-1} - x) (read only when j > 0).
// `~msb` (TFE `_not_private`) flips P0's first and P2's second share; `_ones_private` puts its 1 in
// the same two shares; `^ 1` with a public flips every share.
TFE_ACCEL_LOCAL bool PieceSelectTerm(int party, i64 j, i64 C, bool msb_a, bool msb_b, bool prev_a,
                                     bool prev_b, bool alpha) {
  const bool flip_a = party == 0, flip_b = party == 2;
  const bool le_a = j < C ? msb_a != flip_a : flip_a;
  const bool le_b = j < C ? msb_b != flip_b : flip_b;
  const bool gt_a = j > 0 ? (prev_a != flip_a) != true : flip_a;
  const bool gt_b = j > 0 ? (prev_b != flip_b) != true : flip_b;
  return ((le_a && gt_a) != (le_a && gt_b)) != ((le_b && gt_a) != alpha);
}

// The OT sender of `__mul_ab_routine`: with b = b_a ^ b_b, m0 = b a + s and m1 = a - b a + s
// (the caller masks each with its PRG words for the two receivers).
TFE_ACCEL_LOCAL SharePair OtSenderTerm(u64 a, bool b_a, bool b_b, u64 s) {
  const u64 ba = a & Mask(b_a != b_b);
  return {ba + s, a - ba + s};
}

// The OT receiver: its masked message m_choice ^ w_choice.
TFE_ACCEL_LOCAL u64 OtReceive(bool choice, u64 m0, u64 m1, u64 wc) { return Select(choice, m0, m1) ^ wc; }

// mul_ab step 2: one piece's contribution to the party's two output shares (the sum over the K
// pieces is the caller's loop). `In` is MulAbStep2In; b_a, b_b are the party's shares of the
// indicators (bool on the CPU, bytes 0/1 on the GPU; each party reads only the one(s) it uses);
// t is the element's index in [K] + shape, total = K n, pairs are [2] + [K] + shape.
//   P0: routine 0 sender (s2, s1); routine 1 receiver of the OT to P_{S-1}: (m_c, s0)
//   P1: routine 0 receiver of the OT to P_{S+1}: (s1, m_c); routine 1 sender: (s0, s2)
//   P2: routine 0 receiver to P_{S-1}: (m_c, s2); routine 1 receiver to P_{S+1}: (s2', m_c)
template <int Party, typename In, typename B>
TFE_ACCEL_LOCAL SharePair MulAbStep2Term(const In& in, const B* b_a, const B* b_b, i64 total, i64 t) {
  if (Party == 0)
    return {in.in2[t] + OtReceive(b_a[t] != 0, in.m[t], in.m[total + t], in.wc[t]),
            in.in1[t] + in.own[t]};
  if (Party == 1)
    return {in.own[t] + in.in1[t],
            OtReceive(b_b[t] != 0, in.m[t], in.m[total + t], in.wc[t]) + in.in2[t]};
  return {OtReceive(b_a[t] != 0, in.m[t], in.m[total + t], in.wc[t]) + in.own2[t],
          in.own[t] + OtReceive(b_b[t] != 0, in.m2[t], in.m2[total + t], in.wc2[t])};
}

}  // inline namespace
}  // namespace local
}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_MPC_LOCAL_H_
