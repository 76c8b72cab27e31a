#include "rss_elementwise.h"

#include <algorithm>

#include "chacha20.h"
#include "mpc_local.h"

namespace tfe_accel {

namespace {
constexpr i64 kTile = 2048;  // elements per zero-share tile (16 KiB per stream)
}

void AddArithmeticZeroShare(const u32 key0[8], i64 nonce0, const u32 key1[8], i64 nonce1,
                            i64 first, i64 n, u64* out) {
  u32 s0[8], s1[8];
  SeedPlusNonce(key0, nonce0, s0);
  SeedPlusNonce(key1, nonce1, s1);
  alignas(64) u64 r0[kTile];
  alignas(64) u64 r1[kTile];
  for (i64 b = 0; b < n; b += kTile) {
    const i64 m = std::min(kTile, n - b);
    SeededFullRangeInt64At(s0, first + b, m, r0);
    SeededFullRangeInt64At(s1, first + b, m, r1);
    for (i64 k = 0; k < m; ++k) out[b + k] += r0[k] - r1[k];
  }
}

void RssMul(const u64* x_i, const u64* x_next, const u64* y_i, const u64* y_next,
            const u32 key0[8], i64 nonce0, const u32 key1[8], i64 nonce1, u64* z, i64 n,
            const ParallelFor& pf) {
  // Tiles aligned to whole ChaCha20 blocks (8 int64 each) so threads never share a block.
  const i64 ntiles = (n + kTile - 1) / kTile;
  pf(ntiles, kTile * 20, [&](i64 t0, i64 t1) {
    for (i64 t = t0; t < t1; ++t) {
      const i64 b = t * kTile;
      const i64 m = std::min(kTile, n - b);
      for (i64 k = b; k < b + m; ++k) z[k] = local::RssMulTerm(x_i[k], x_next[k], y_i[k], y_next[k]);
      AddArithmeticZeroShare(key0, nonce0, key1, nonce1, b, m, z + b);
    }
  });
}

void RssColumnSquares(const u64* x_i, const u64* x_next, const u64* m_i, const u64* m_next, i64 rows,
                      i64 cols, const u32 key0[8], i64 nonce0, const u32 key1[8], i64 nonce1, u64* z,
                      const ParallelFor& pf) {
  // Column tiles (whole ChaCha20 blocks of the zero share); each task walks every row of its tile,
  // so a row segment is read once and the accumulators stay in L1.
  constexpr i64 kCols = 512;
  const i64 ntiles = (cols + kCols - 1) / kCols;
  pf(ntiles, std::max<i64>(rows, 1) * kCols * 3, [&](i64 t0, i64 t1) {
    for (i64 t = t0; t < t1; ++t) {
      const i64 c0 = t * kCols;
      const i64 m = std::min(kCols, cols - c0);
      u64* acc = z + c0;
      for (i64 c = 0; c < m; ++c) acc[c] = 0;
      for (i64 r = 0; r < rows; ++r) {
        const u64* xa = x_i + r * cols + c0;
        const u64* xb = x_next + r * cols + c0;
        for (i64 c = 0; c < m; ++c) {
          const u64 a = xa[c] - m_i[c0 + c];
          const u64 b = xb[c] - m_next[c0 + c];
          acc[c] += local::RssMulTerm(a, b, a, b);
        }
      }
      AddArithmeticZeroShare(key0, nonce0, key1, nonce1, c0, m, acc);
    }
  });
}

}  // namespace tfe_accel
