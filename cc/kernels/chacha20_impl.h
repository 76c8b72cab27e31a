// tfe-accel: ChaCha20 multi-block core, included by one translation unit per ISA
// (chacha20.cc portable, chacha20_avx2.cc, chacha20_avx512.cc) so the compiler vectorises the
// same source for each target. Not a public header.
#ifndef TFE_ACCEL_CC_KERNELS_CHACHA20_IMPL_H_
#define TFE_ACCEL_CC_KERNELS_CHACHA20_IMPL_H_

#include <cstddef>
#include <cstdint>

#include "chacha20.h"

namespace tfe_accel {
namespace chacha_impl {

static inline u32 Rotl(u32 x, int n) { return (x << n) | (x >> (32 - n)); }

#define TFE_ACCEL_QR(a, b, c, d)                     \
  for (int l = 0; l < L; ++l) {                      \
    x[a][l] += x[b][l]; x[d][l] = Rotl(x[d][l] ^ x[a][l], 16); \
    x[c][l] += x[d][l]; x[b][l] = Rotl(x[b][l] ^ x[c][l], 12); \
    x[a][l] += x[b][l]; x[d][l] = Rotl(x[d][l] ^ x[a][l], 8);  \
    x[c][l] += x[d][l]; x[b][l] = Rotl(x[b][l] ^ x[c][l], 7);  \
  }

// L blocks at once, lanes interleaved so each loop over l is one vector instruction.
template <int L>
static inline void BlocksL(const u32 key[8], u64 block0, u32 round, u32* out) {
  alignas(64) u32 in[16][L];
  alignas(64) u32 x[16][L];
  for (int l = 0; l < L; ++l) {
    const u64 ctr = block0 + static_cast<u64>(l);
    in[0][l] = 0x61707865u; in[1][l] = 0x3320646eu; in[2][l] = 0x79622d32u; in[3][l] = 0x6b206574u;
    for (int k = 0; k < 8; ++k) in[4 + k][l] = key[k];
    in[12][l] = static_cast<u32>(ctr);
    in[13][l] = static_cast<u32>(ctr >> 32);
    in[14][l] = round;
    in[15][l] = kPrgDomainWord;
  }
  for (int w = 0; w < 16; ++w)
    for (int l = 0; l < L; ++l) x[w][l] = in[w][l];
  for (int r = 0; r < 10; ++r) {
    TFE_ACCEL_QR(0, 4, 8, 12) TFE_ACCEL_QR(1, 5, 9, 13)
    TFE_ACCEL_QR(2, 6, 10, 14) TFE_ACCEL_QR(3, 7, 11, 15)
    TFE_ACCEL_QR(0, 5, 10, 15) TFE_ACCEL_QR(1, 6, 11, 12)
    TFE_ACCEL_QR(2, 7, 8, 13) TFE_ACCEL_QR(3, 4, 9, 14)
  }
  for (int l = 0; l < L; ++l)
    for (int w = 0; w < 16; ++w) out[16 * l + w] = x[w][l] + in[w][l];
}
#undef TFE_ACCEL_QR

template <int L>
static inline void PrgBlocksImpl(const u32 key[8], u64 block0, u32 round, std::size_t nblocks,
                                 u32* out) {
  std::size_t b = 0;
  for (; b + L <= nblocks; b += L) BlocksL<L>(key, block0 + b, round, out + 16 * b);
  if (b < nblocks) {
    alignas(64) u32 tmp[16 * L];
    BlocksL<L>(key, block0 + b, round, tmp);
    for (std::size_t i = 0; i < 16 * (nblocks - b); ++i) out[16 * b + i] = tmp[i];
  }
}

}  // namespace chacha_impl
}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_CHACHA20_IMPL_H_
