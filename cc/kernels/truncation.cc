// tfe-accel: share truncation protocol steps (see truncation.h for the protocol and the parties).
#include "truncation.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "chacha20.h"
#include "mpc_local.h"

namespace tfe_accel {

namespace {

constexpr i64 kChunk = 512;            // elements per inner step (one 4 KiB PRG buffer per row)
constexpr i64 kCyclesPerElemPrg = 60;  // rough cost of one int64 draw plus the arithmetic
constexpr u32 kMaxRounds = 1024;

// The value SeededUniformInt64(lo = -2^63, hi = 2^63 - 1) derives from the 64-bit word u:
// range = 2^64 - 1, Lemire's m = u * range = (u - 1) * 2^64 + (2^64 - u), rejected iff the low
// half is below (2^64 - range) % range = 1, i.e. iff u == 0; otherwise lo + (u - 1).
inline u64 FromWord(u64 u) { return u + 0x7fffffffffffffffull; }  // -2^63 + u - 1

u64 RedrawAt(const u32 seed[8], i64 i) {
  for (u32 round = 1; round < kMaxRounds; ++round) {
    u32 blk[16];
    PrgBlocks(seed, static_cast<u64>(i / 8), round, 1, blk);
    const int w = static_cast<int>(i % 8) * 2;
    const u64 u = static_cast<u64>(blk[w]) | (static_cast<u64>(blk[w + 1]) << 32);
    if (u != 0) return FromWord(u);
  }
  throw std::runtime_error("tfe_accel PRG: rejection sampling did not terminate (internal error)");
}


struct Seed {
  u32 w[8];
  Seed(const u32 key[8], i64 nonce) { SeedPlusNonce(key, nonce, w); }
};

}  // namespace

void FullRangeInt64At(const u32 seed[8], i64 first, i64 n, u64* out) {
  if (n <= 0) return;
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
                "whole blocks are generated in place: word pair (lo, hi) must read as one u64");
  const i64 end = first + n;
  i64 i = first;
  alignas(64) u32 buf[16];
  // head and tail: partial blocks through a one-block buffer
  auto partial = [&](i64 stop) {
    PrgBlocks(seed, static_cast<u64>(i / 8), 0, 1, buf);
    for (; i < stop; ++i) {
      const i64 j = i % 8;
      const u64 u = static_cast<u64>(buf[2 * j]) | (static_cast<u64>(buf[2 * j + 1]) << 32);
      out[i - first] = (u != 0) ? FromWord(u) : RedrawAt(seed, i);
    }
  };
  if (i % 8 != 0) partial(std::min(end, (i / 8 + 1) * 8));
  // whole blocks: keystream written straight into `out`, then mapped in place (vectorised)
  const i64 nfull = (end - i) / 8;
  if (nfull > 0) {
    u64* dst = out + (i - first);
    PrgBlocks(seed, static_cast<u64>(i / 8), 0, static_cast<std::size_t>(nfull),
              reinterpret_cast<u32*>(dst));
    const i64 m = nfull * 8;
    bool any_zero = false;
    for (i64 k = 0; k < m; ++k) {
      any_zero |= dst[k] == 0;
      dst[k] = FromWord(dst[k]);
    }
    if (any_zero) {  // probability ~ m / 2^64: redraw the rejected positions
      for (i64 k = 0; k < m; ++k)
        if (dst[k] == FromWord(0)) {
          // FromWord(0) == 2^63 - 1 is also FromWord of no accepted u, so this finds exactly
          // the rejected draws
          dst[k] = RedrawAt(seed, i + k);
        }
    }
    i += m;
  }
  if (i < end) partial(end);
}


// ---------------------------------------------------------------- (a) non-interactive

void TruncateLocalP0(const u64* x0, u64* y0, i64 n, int amount, const ParallelFor& pf) {
  CheckTruncationAmount(amount);
  ForChunks(n, kChunk, 2, pf, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; ++i) y0[i] = local::Sar(x0[i], amount);
  });
}

void TruncateLocalP1(const u64* x1, const u64* x2, const u32 key_12[8], i64 nonce_12, u64* y1,
                     u64* r, i64 n, int amount, const ParallelFor& pf) {
  CheckTruncationAmount(amount);
  const Seed seed(key_12, nonce_12);
  ForChunks(n, kChunk, kCyclesPerElemPrg, pf, [&](i64 b, i64 e) {
    FullRangeInt64At(seed.w, b, e - b, r + b);
    for (i64 i = b; i < e; ++i) y1[i] = local::TruncLocalP1(x1[i], x2[i], r[i], amount);
  });
}

void TruncateLocalP2(const u32 key_12[8], i64 nonce_12, u64* r, i64 n, const ParallelFor& pf) {
  const Seed seed(key_12, nonce_12);
  ForChunks(n, kChunk, kCyclesPerElemPrg, pf,
            [&](i64 b, i64 e) { FullRangeInt64At(seed.w, b, e - b, r + b); });
}

// ---------------------------------------------------------------- (b) MSB-0 with a dealer

void TruncMsb0Dealer(const u32 key_20[8], i64 nonce_20, const u32 key_21[8], i64 nonce_21,
                     const u32 r_seed[8], i64 n, int amount, u64 unlift, u64* r1, u64* s1,
                     u64* rmsb1, u64* z20, u64* z21, const ParallelFor& pf) {
  CheckTruncationAmount(amount);
  const Seed s02(key_20, nonce_20), s12(key_21, nonce_21);
  ForChunks(n, kChunk, 5 * kCyclesPerElemPrg, pf, [&](i64 b, i64 e) {
    alignas(64) u64 r0[kChunk], s0[kChunk], m0[kChunk], r[kChunk];
    const i64 m = e - b;
    FullRangeInt64At(s02.w, b, m, r0);            // row 0: P0's share of r
    FullRangeInt64At(s02.w, n + b, m, s0);        // row 1: P0's share of s
    FullRangeInt64At(s02.w, 2 * n + b, m, m0);    // row 2: P0's share of msb(r)
    FullRangeInt64At(s02.w, 3 * n + b, m, z21 + b);  // row 3: y0 (shared by P0 and P2)
    FullRangeInt64At(s12.w, b, m, z20 + b);       // y2 (shared by P1 and P2)
    FullRangeInt64At(r_seed, b, m, r);            // the dealer's fresh r
    for (i64 j = 0; j < m; ++j) {
      const local::DealerShares d = local::TruncDealer(r[j], r0[j], s0[j], m0[j], amount);
      r1[b + j] = d.r1;
      s1[b + j] = d.s1;
      rmsb1[b + j] = d.rmsb1;
      z21[b + j] -= unlift;
    }
  });
}

void TruncMsb0MaskP0(const u64* x0, const u64* x1, const u32 key_02[8], i64 nonce_02, u64 lift,
                     u64* c0, i64 n, const ParallelFor& pf) {
  const Seed seed(key_02, nonce_02);
  ForChunks(n, kChunk, kCyclesPerElemPrg, pf, [&](i64 b, i64 e) {
    FullRangeInt64At(seed.w, b, e - b, c0 + b);  // row 0 of R02: r0
    for (i64 i = b; i < e; ++i) c0[i] = local::TruncMaskP0(c0[i], x0[i], x1[i], lift);
  });
}

void TruncMsb0MaskP1(const u64* x2, const u64* r1, u64* c1, i64 n, const ParallelFor& pf) {
  ForChunks(n, kChunk, 1, pf, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; ++i) c1[i] = local::TruncMaskP1(x2[i], 1, r1[i]);
  });
}

void TruncMsb0UnmaskP0(const u64* c0, const u64* c1, const u32 key_02[8], i64 nonce_02,
                       int amount, u64 unlift, u64* y_tilde0, u64* z00, i64 n,
                       const ParallelFor& pf) {
  CheckTruncationAmount(amount);
  const Seed seed(key_02, nonce_02);
  ForChunks(n, kChunk, 3 * kCyclesPerElemPrg, pf, [&](i64 b, i64 e) {
    alignas(64) u64 s0[kChunk], m0[kChunk];
    const i64 m = e - b;
    FullRangeInt64At(seed.w, n + b, m, s0);
    FullRangeInt64At(seed.w, 2 * n + b, m, m0);
    FullRangeInt64At(seed.w, 3 * n + b, m, z00 + b);  // y0
    for (i64 j = 0; j < m; ++j) {
      const i64 i = b + j;
      y_tilde0[i] = local::TruncUnmaskP0(c0[i], c1[i], s0[j], m0[j], z00[i], amount);
      z00[i] -= unlift;
    }
  });
}

void TruncMsb0UnmaskP1(const u64* c0, const u64* c1, const u64* s1, const u64* rmsb1,
                       const u32 key_12[8], i64 nonce_12, int amount, u64* y_tilde1, u64* z11,
                       i64 n, const ParallelFor& pf) {
  CheckTruncationAmount(amount);
  const Seed seed(key_12, nonce_12);
  ForChunks(n, kChunk, kCyclesPerElemPrg, pf, [&](i64 b, i64 e) {
    FullRangeInt64At(seed.w, b, e - b, z11 + b);  // y2
    for (i64 i = b; i < e; ++i)
      y_tilde1[i] = local::TruncUnmaskP1(c0[i], c1[i], s1[i], rmsb1[i], z11[i], amount);
  });
}

void TruncMsb0Combine(const u64* y_tilde0, const u64* y_tilde1, u64* z, i64 n,
                      const ParallelFor& pf) {
  ForChunks(n, kChunk, 1, pf, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; ++i) z[i] = y_tilde0[i] + y_tilde1[i];
  });
}

}  // namespace tfe_accel
