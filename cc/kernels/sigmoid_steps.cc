// tfe-accel: Kogge-Stone / bit-extraction protocol steps (see sigmoid_steps.h).
#include "sigmoid_steps.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "chacha20.h"
#include "mpc_local.h"
#include "truncation.h"  // FullRangeInt64At

namespace tfe_accel {

namespace {

constexpr i64 kChunk = 512;

using local::NonceAdd;


using local::CompressEven;
using local::ZeroExt;

// Elements [first, first + n) of SeededUniformInt{32,16,8}(seed, T::min, T::max): element i is
// 32-bit word i, Lemire-reduced to the 2^w - 1 values of [min, max). With range = 2^w - 1 (odd)
// a draw is rejected iff the low half of u * range is below (2^32 - range) % range = 1, i.e. iff
// u == 0; a rejected draw is redrawn from the same position in round 1, 2, ... (as chacha20.cc).
template <typename T>
void FullRangeNarrowAt(const u32 seed[8], i64 first, i64 n, T* out) {
  static_assert(sizeof(T) <= 4, "narrow types only");
  constexpr u64 kRange = (1ull << (8 * sizeof(T))) - 1;
  constexpr std::int64_t kLo = std::numeric_limits<T>::min();
  constexpr i64 kBlocks = 32;
  alignas(64) u32 buf[16 * kBlocks];
  i64 i = first;
  const i64 end = first + n;
  while (i < end) {
    const i64 b0 = i / 16;
    const i64 b1 = std::min((end + 15) / 16, b0 + kBlocks);
    PrgBlocks(seed, static_cast<u64>(b0), 0, static_cast<std::size_t>(b1 - b0), buf);
    const i64 stop = std::min(end, b1 * 16);
    const u32* w = buf + (i - b0 * 16);
    T* o = out + (i - first);
    const i64 m = stop - i;
    bool any_zero = false;
    for (i64 k = 0; k < m; ++k) {
      any_zero |= w[k] == 0;
      o[k] = static_cast<T>(kLo + static_cast<std::int64_t>((static_cast<u64>(w[k]) * kRange) >> 32));
    }
    if (any_zero) {
      for (i64 k = 0; k < m; ++k) {
        if (w[k] != 0) continue;
        const i64 pos = i + k;
        u32 u = 0;
        for (u32 round = 1; u == 0; ++round) {
          if (round >= 1024) throw std::runtime_error("tfe_accel PRG: rejection did not terminate");
          u32 blk[16];
          PrgBlocks(seed, static_cast<u64>(pos / 16), round, 1, blk);
          u = blk[pos % 16];
        }
        o[k] = static_cast<T>(kLo + static_cast<std::int64_t>((static_cast<u64>(u) * kRange) >> 32));
      }
    }
    i = stop;
  }
}

}  // namespace

template <typename T>
void BooleanZeroShare(const u32 key_a[8], i64 nonce_a, const u32 key_b[8], i64 nonce_b, T* out,
                      i64 n, const ParallelFor& pf) {
  if (n <= 0) return;
  u32 sa[8], sb[8];
  SeedPlusNonce(key_a, nonce_a, sa);
  SeedPlusNonce(key_b, nonce_b, sb);
  if constexpr (sizeof(T) == 8) {
    ForChunks(n, kChunk, 40, pf, [&](i64 b, i64 e) {
      alignas(64) u64 tmp[kChunk];
      u64* o = reinterpret_cast<u64*>(out);
      FullRangeInt64At(sa, b, e - b, o + b);
      FullRangeInt64At(sb, b, e - b, tmp);
      for (i64 i = b; i < e; ++i) o[i] ^= tmp[i - b];
    });
  } else {
    ForChunks(n, kChunk, 12, pf, [&](i64 b, i64 e) {
      alignas(64) T tmp[kChunk];
      T* __restrict__ o = out + b;
      FullRangeNarrowAt<T>(sa, b, e - b, o);
      FullRangeNarrowAt<T>(sb, b, e - b, tmp);
      for (i64 k = 0; k < e - b; ++k) o[k] = static_cast<T>(o[k] ^ tmp[k]);
    });
  }
}

void BitExtractSetup(int party, const u64* x_a, const u64* x_b, const u32 key_a[8], i64 nonce_a,
                     const u32 key_b[8], i64 nonce_b, u64* out, i64 n, const ParallelFor& pf) {
  CheckParty(party);
  if (party == 0 && n > 0 && (x_a == nullptr || x_b == nullptr))
    throw KernelArgumentError("party 0 needs its two arithmetic shares x_a, x_b");
  BooleanZeroShare<i64>(key_a, nonce_a, key_b, nonce_b, reinterpret_cast<i64*>(out), n, pf);
  if (party == 0) {
    ForChunks(n, kChunk, 1, pf, [&](i64 b, i64 e) {
      for (i64 i = b; i < e; ++i) out[i] ^= x_a[i] + x_b[i];
    });
  }
}

void CarrySetupAnd(const u64* op1_a, const u64* op1_b, const u64* op2_a, const u64* op2_b,
                   const u32 key_a[8], i64 nonce_a, const u32 key_b[8], i64 nonce_b, u64* z,
                   u64* p_a, u64* p_b, std::int8_t* top_a, std::int8_t* top_b, i64 n,
                   const ParallelFor& pf) {
  BooleanZeroShare<i64>(key_a, nonce_a, key_b, nonce_b, reinterpret_cast<i64*>(z), n, pf);
  ForChunks(n, kChunk, 2, pf, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; ++i) {
      const local::CarrySetup c = local::CarrySetupAndTerm(op1_a[i], op1_b[i], op2_a[i], op2_b[i], z[i]);
      z[i] = c.z;
      p_a[i] = c.p_a;
      p_b[i] = c.p_b;
      top_a[i] = c.top_a;
      top_b[i] = c.top_b;
    }
  });
}

template <typename In, typename Out>
void KoggeStoneRound(const In* g_a, const In* g_b, const In* p_a, const In* p_b,
                     const u32 key_a[8], i64 nonce_a, const u32 key_b[8], i64 nonce_b, Out* zg,
                     Out* zp, Out* gs1_a, Out* gs1_b, i64 n, const ParallelFor& pf) {
  if (n <= 0) return;
  BooleanZeroShare<Out>(key_a, nonce_a, key_b, nonce_b, zg, n, pf);
  BooleanZeroShare<Out>(key_a, NonceAdd(nonce_a, 1), key_b, NonceAdd(nonce_b, 1), zp, n, pf);
  ForChunks(n, kChunk, 6, pf, [&](i64 b, i64 e) {
    const In* __restrict__ g_a_ = g_a;
    const In* __restrict__ g_b_ = g_b;
    const In* __restrict__ p_a_ = p_a;
    const In* __restrict__ p_b_ = p_b;
    Out* __restrict__ zg_ = zg;
    Out* __restrict__ zp_ = zp;
    Out* __restrict__ gs1_a_ = gs1_a;
    Out* __restrict__ gs1_b_ = gs1_b;
    for (i64 i = b; i < e; ++i) {
      const local::KoggeStoneTerms<Out> r = local::KoggeStoneRoundTerm<Out>(
          ZeroExt(g_a_[i]), ZeroExt(g_b_[i]), ZeroExt(p_a_[i]), ZeroExt(p_b_[i]), zg_[i], zp_[i]);
      zg_[i] = r.zg;
      zp_[i] = r.zp;
      gs1_a_[i] = r.gs1_a;
      gs1_b_[i] = r.gs1_b;
    }
  });
}

template <typename T>
void KoggeStoneUpdate(const T* gs1_a, const T* gs1_b, const T* zg_own, const T* zg_recv,
                      T* g_a, T* g_b, i64 n, const ParallelFor& pf) {
  ForChunks(n, kChunk, 1, pf, [&](i64 b, i64 e) {
    // restrict: int8 pointers may alias anything, which would block vectorisation
    const T* __restrict__ sa = gs1_a;
    const T* __restrict__ sb = gs1_b;
    const T* __restrict__ zo = zg_own;
    const T* __restrict__ zr = zg_recv;
    T* __restrict__ ga = g_a;
    T* __restrict__ gb = g_b;
    for (i64 i = b; i < e; ++i) ga[i] = local::KoggeStoneUpdateTerm<T>(sa[i], zo[i]);
    for (i64 i = b; i < e; ++i) gb[i] = local::KoggeStoneUpdateTerm<T>(sb[i], zr[i]);
  });
}


// ---------------------------------------------------------------- sigmoid piece evaluation

void PivotDiff(int party, const u64* x_a, const u64* x_b, const u64* pivots, i64 C, i64 n,
               u64* d_a, u64* d_b, const ParallelFor& pf) {
  CheckParty(party);
  if (C < 1) throw KernelArgumentError("need at least one pivot, got " + std::to_string(C));
  ForChunks(C * n, kChunk, 1, pf, [&](i64 b, i64 e) {
    i64 row = b / n, i = b % n;
    for (i64 t = b; t < e; ++t) {
      const local::SharePair d = local::PivotDiffTerm(party, pivots[row], x_a[i], x_b[i]);
      d_a[t] = d.a;
      d_b[t] = d.b;
      if (++i == n) { i = 0; ++row; }
    }
  });
}

void PieceSelectAnd(int party, const bool* msb_a, const bool* msb_b, i64 C, i64 n,
                    const u32 key_a[8], i64 nonce_a, const u32 key_b[8], i64 nonce_b, bool* z,
                    const ParallelFor& pf) {
  CheckParty(party);
  if (C < 1) throw KernelArgumentError("need at least one pivot, got " + std::to_string(C));
  const i64 K = C + 1, total = K * n;
  if (total <= 0) return;
  // The bool factory's zero share: int32 draws over [0, 2) cast to bool, per key.
  u32 sa[8], sb[8];
  SeedPlusNonce(key_a, nonce_a, sa);
  SeedPlusNonce(key_b, nonce_b, sb);
  std::vector<std::int32_t> fa(static_cast<size_t>(total)), fb(static_cast<size_t>(total));
  SeededUniformInt32(sa, 0, 2, fa.data(), total, pf);
  SeededUniformInt32(sb, 0, 2, fb.data(), total, pf);
  ForChunks(total, kChunk, 2, pf, [&](i64 b, i64 e) {
    for (i64 t = b; t < e; ++t) {
      const i64 j = t / n;  // msb row j is element t, row j - 1 is t - n
      z[t] = local::PieceSelectTerm(party, j, C, j < C && msb_a[t], j < C && msb_b[t],
                                    j > 0 && msb_a[t - n], j > 0 && msb_b[t - n],
                                    (fa[t] != 0) != (fb[t] != 0));
    }
  });
}

namespace {

// Arithmetic zero share of a party (TFE `_gen_zero_sharing`, ARITHMETIC): U(a) - U(b).
void ArithZeroShare(const u32 key_a[8], i64 nonce_a, const u32 key_b[8], i64 nonce_b, u64* out,
                    i64 total, const ParallelFor& pf) {
  u32 sa[8], sb[8];
  SeedPlusNonce(key_a, nonce_a, sa);
  SeedPlusNonce(key_b, nonce_b, sb);
  ForChunks(total, kChunk, 40, pf, [&](i64 b, i64 e) {
    alignas(64) u64 tmp[kChunk];
    FullRangeInt64At(sa, b, e - b, out + b);
    FullRangeInt64At(sb, b, e - b, tmp);
    for (i64 i = b; i < e; ++i) out[i] -= tmp[i - b];
  });
}

// The OT sender of `__mul_ab_routine`: m0 = (b_a ^ b_b) * a + s, m1 = a - (b_a ^ b_b) * a + s,
// masked with w = U([2] + shape) of key_a (pair for P_{i+1}) and of key_b (pair for P_{i-1}).
// a = f_a + c0[row] (P0, routine 0) or f_a + f_b (P1, routine 1), rows of n elements.
void OtSender(const u64* f_a, const u64* f_b, const u64* c0, i64 n, const bool* b_a,
              const bool* b_b, const u64* s, i64 total, const u32 key_a[8], i64 nonce_a,
              const u32 key_b[8], i64 nonce_b, u64* m_next, u64* m_prev, const ParallelFor& pf) {
  u32 sa[8], sb[8];
  SeedPlusNonce(key_a, nonce_a, sa);
  SeedPlusNonce(key_b, nonce_b, sb);
  ForChunks(total, kChunk, 170, pf, [&](i64 b, i64 e) {
    const i64 m = e - b;
    u64* __restrict__ n0 = m_next + b;
    u64* __restrict__ n1 = m_next + total + b;
    u64* __restrict__ p0 = m_prev + b;
    u64* __restrict__ p1 = m_prev + total + b;
    FullRangeInt64At(sa, b, m, n0);
    FullRangeInt64At(sa, total + b, m, n1);
    FullRangeInt64At(sb, b, m, p0);
    FullRangeInt64At(sb, total + b, m, p1);
    alignas(64) u64 a[kChunk];
    if (c0 != nullptr) {
      i64 row = b / n, col = b % n;
      for (i64 k = 0; k < m; ++k) {
        a[k] = f_a[b + k] + c0[row];
        if (++col == n) { col = 0; ++row; }
      }
    } else {
      for (i64 k = 0; k < m; ++k) a[k] = f_a[b + k] + f_b[b + k];
    }
    const bool* __restrict__ ba = b_a + b;
    const bool* __restrict__ bb = b_b + b;
    const u64* __restrict__ sv = s + b;
    for (i64 k = 0; k < m; ++k) {
      const local::SharePair msg = local::OtSenderTerm(a[k], ba[k], bb[k], sv[k]);
      n0[k] ^= msg.a;
      n1[k] ^= msg.b;
      p0[k] ^= msg.a;
      p1[k] ^= msg.b;
    }
  });
}

// The OT helper: w_c = choice ? w[1] : w[0], w = U([2] + shape) of (key, nonce).
void OtHelper(const bool* choice, i64 total, const u32 key[8], i64 nonce, u64* wc,
              const ParallelFor& pf) {
  u32 sk[8];
  SeedPlusNonce(key, nonce, sk);
  ForChunks(total, kChunk, 80, pf, [&](i64 b, i64 e) {
    alignas(64) u64 w1[kChunk];
    FullRangeInt64At(sk, b, e - b, wc + b);
    FullRangeInt64At(sk, total + b, e - b, w1);
    u64* __restrict__ o = wc + b;
    const bool* __restrict__ c = choice + b;
    for (i64 k = 0; k < e - b; ++k) o[k] = local::Select(c[k], o[k], w1[k]);
  });
}

}  // namespace

void MulAbStep1(int party, const u64* f_a, const u64* f_b, const u64* c0, const bool* b_a,
                const bool* b_b, i64 K, i64 n, const u32 key_a[8], i64 nonce_a,
                const u32 key_b[8], i64 nonce_b, const MulAbStep1Out& out,
                const ParallelFor& pf) {
  CheckParty(party);
  const i64 total = K * n;
  if (total <= 0) return;
  // routine 0: zero share at N, OT at N + 1; routine 1: zero share at N + 2, OT at N + 3.
  ArithZeroShare(key_a, nonce_a, key_b, nonce_b, out.s_r0, total, pf);
  ArithZeroShare(key_a, NonceAdd(nonce_a, 2), key_b, NonceAdd(nonce_b, 2), out.s_r1, total, pf);
  if (party == 0) {
    // routine 0 sender: a = f0 + c0 (TFE adds the constant term to share 0)
    OtSender(f_a, nullptr, c0, n, b_a, b_b, out.s_r0, total, key_a, NonceAdd(nonce_a, 1), key_b,
             NonceAdd(nonce_b, 1), out.m_next, out.m_prev, pf);
    // routine 1 (sender P1): P0 helps P1's OT to P2 (choice: share 0 of b = P0's first share)
    OtHelper(b_a, total, key_b, NonceAdd(nonce_b, 3), out.wc_a, pf);
  } else if (party == 1) {
    // routine 0 (sender P0): P1 helps P0's OT to P2 (choice: share 2 of b = P1's second share)
    OtHelper(b_b, total, key_a, NonceAdd(nonce_a, 1), out.wc_a, pf);
    // routine 1 sender: a = f1 + f2
    OtSender(f_a, f_b, nullptr, n, b_a, b_b, out.s_r1, total, key_a, NonceAdd(nonce_a, 3), key_b,
             NonceAdd(nonce_b, 3), out.m_next, out.m_prev, pf);
  } else {
    // routine 0: P2 helps P0's OT to P1 (choice: share 2 = P2's first share)
    OtHelper(b_a, total, key_b, NonceAdd(nonce_b, 1), out.wc_a, pf);
    // routine 1: P2 helps P1's OT to P0 (choice: share 0 = P2's second share)
    OtHelper(b_b, total, key_a, NonceAdd(nonce_a, 3), out.wc_b, pf);
  }
}

namespace {

// One row of pieces added into the accumulators of a chunk of columns.
template <int Party>
inline void MulAbStep2Row(const MulAbStep2In& in, const bool* b_a, const bool* b_b, i64 total,
                          i64 t0, i64 m, u64* sa, u64* sb) {
  for (i64 k = 0; k < m; ++k) {
    const local::SharePair y = local::MulAbStep2Term<Party>(in, b_a, b_b, total, t0 + k);
    sa[k] += y.a;
    sb[k] += y.b;
  }
}

}  // namespace

void MulAbStep2(int party, const MulAbStep2In& in, const bool* b_a, const bool* b_b, i64 K,
                i64 n, u64* y_a, u64* y_b, const ParallelFor& pf) {
  CheckParty(party);
  const i64 total = K * n;
  // Columns in chunks; for each chunk, rows j = 0..K-1 stream contiguously into accumulators.
  // (The party switch inside the row loop is unswitched by the compiler; a perfect loop nest
  // instead gets GCC's unroll-and-jam over rows, measured ~20% slower.)
  ForChunks(n, kChunk, 8 * (K > 0 ? K : 1), pf, [&](i64 b, i64 e) {
    const i64 m = e - b;
    alignas(64) u64 sa[kChunk], sb[kChunk];
    for (i64 k = 0; k < m; ++k) sa[k] = sb[k] = 0;
    for (i64 j = 0; j < K; ++j) {
      const i64 t0 = j * n + b;
      if (party == 0) MulAbStep2Row<0>(in, b_a, b_b, total, t0, m, sa, sb);
      else if (party == 1) MulAbStep2Row<1>(in, b_a, b_b, total, t0, m, sa, sb);
      else MulAbStep2Row<2>(in, b_a, b_b, total, t0, m, sa, sb);
    }
    for (i64 k = 0; k < m; ++k) {
      y_a[b + k] = sa[k];
      y_b[b + k] = sb[k];
    }
  });
}

void TruncMsb0MaskScaledP0(const u64* x0, const u64* x1, const u64* k, i64 K, i64 n,
                           const u32 key_02[8], i64 nonce_02, u64 lift, u64* c0,
                           const ParallelFor& pf) {
  u32 seed[8];
  SeedPlusNonce(key_02, nonce_02, seed);
  ForChunks(K * n, kChunk, 40, pf, [&](i64 b, i64 e) {
    FullRangeInt64At(seed, b, e - b, c0 + b);  // row 0 of R02 ([4] + [K] + shape): r0
    i64 row = b / n, i = b % n;
    for (i64 t = b; t < e; ++t) {
      c0[t] = local::TruncMaskScaledP0(c0[t], x0[i], x1[i], k[row], lift);
      if (++i == n) { i = 0; ++row; }
    }
  });
}

void TruncMsb0MaskScaledP1(const u64* x2, const u64* k, i64 K, i64 n, const u64* r1, u64* c1,
                           const ParallelFor& pf) {
  ForChunks(K * n, kChunk, 2, pf, [&](i64 b, i64 e) {
    i64 row = b / n, i = b % n;
    for (i64 t = b; t < e; ++t) {
      c1[t] = local::TruncMaskP1(x2[i], k[row], r1[t]);
      if (++i == n) { i = 0; ++row; }
    }
  });
}

#define TFE_ACCEL_KS(In, Out)                                                                   \
  template void KoggeStoneRound<In, Out>(const In*, const In*, const In*, const In*,           \
                                         const u32[8], i64, const u32[8], i64, Out*, Out*,     \
                                         Out*, Out*, i64, const ParallelFor&);
TFE_ACCEL_KS(std::int64_t, std::int32_t)
TFE_ACCEL_KS(std::int32_t, std::int16_t)
TFE_ACCEL_KS(std::int16_t, std::int8_t)
TFE_ACCEL_KS(std::int8_t, std::int8_t)
#undef TFE_ACCEL_KS
#define TFE_ACCEL_T(T)                                                                         \
  template void BooleanZeroShare<T>(const u32[8], i64, const u32[8], i64, T*, i64,             \
                                    const ParallelFor&);                                       \
  template void KoggeStoneUpdate<T>(const T*, const T*, const T*, const T*, T*, T*, i64,       \
                                    const ParallelFor&);
TFE_ACCEL_T(std::int64_t)
TFE_ACCEL_T(std::int32_t)
TFE_ACCEL_T(std::int16_t)
TFE_ACCEL_T(std::int8_t)
#undef TFE_ACCEL_T

}  // namespace tfe_accel
