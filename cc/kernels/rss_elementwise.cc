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

}  // namespace tfe_accel
