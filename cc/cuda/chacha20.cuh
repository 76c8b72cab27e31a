// tfe-accel: the PRG of cc/kernels/chacha20.h on the device. Same stream layout, bit for bit:
//   state words 0-3   "expand 32-byte k" constants
//   words 4-11        the 8 seed words (key)
//   words 12, 13      64-bit block counter (low, high), from 0
//   word 14           rejection round (0 = main stream, k = k-th redraw)
//   word 15           kPrgDomainWord 0x61656674 ("tfea")
// int64 element i = 64-bit word i of round 0 = 32-bit words 2(i mod 8), 2(i mod 8)+1 (low first) of
// block i / 8. A draw rejected by Lemire's range reduction is redrawn from the same position in
// round 1, 2, ... (cc/kernels/chacha20.cc SeededUniformInt64 / Redraw<2>).
//
// Every function here is __host__ __device__: on the device the rotation, the 64x64 high product
// and the abort are the CUDA intrinsics; on the host (tests/cuda_host/, compiled by nvcc and RUN on
// the CPU by `make test`) their plain C++ equivalents, so the stream logic below is executed and
// compared with the CPU PRG bit for bit even on machines without a GPU.
#ifndef TFE_ACCEL_CC_CUDA_CHACHA20_CUH_
#define TFE_ACCEL_CC_CUDA_CHACHA20_CUH_

#include <cuda_runtime.h>

#include <cstdlib>

#include "common.cuh"

#define TFE_ACCEL_HD __host__ __device__ __forceinline__

namespace tfe_accel {
namespace cuda {

constexpr u32 kDevPrgDomainWord = 0x61656674u;  // == kPrgDomainWord (chacha20.h)
constexpr u32 kDevMaxRounds = 1024;             // as chacha20.cc: unreachable except on corruption

TFE_ACCEL_HD u32 DevRotl(u32 x, int n) {
#ifdef __CUDA_ARCH__
  return __funnelshift_l(x, x, n);
#else
  return (x << n) | (x >> (32 - n));  // n in {7, 8, 12, 16}
#endif
}

TFE_ACCEL_HD u64 DevMulHi(u64 a, u64 b) {
#ifdef __CUDA_ARCH__
  return __umul64hi(a, b);
#else
  return static_cast<u64>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
}

// A corrupted state (the PRG rejected 1024 draws in a row, P < 2^-1000): never luck.
TFE_ACCEL_HD void DevAbort() {
#ifdef __CUDA_ARCH__
  __trap();
#else
  std::abort();
#endif
}

#define TFE_ACCEL_DQR(a, b, c, d)          \
  x##a += x##b; x##d = DevRotl(x##d ^ x##a, 16); \
  x##c += x##d; x##b = DevRotl(x##b ^ x##c, 12); \
  x##a += x##b; x##d = DevRotl(x##d ^ x##a, 8);  \
  x##c += x##d; x##b = DevRotl(x##b ^ x##c, 7);

// One keystream block (16 words) of the PRG stream: block `ctr`, rejection round `round`.
// Scalar registers throughout (no local-memory arrays in the rounds).
TFE_ACCEL_HD void PrgBlock(const Seed& key, u64 ctr, u32 round, u32 out[16]) {
  const u32 i0 = 0x61707865u, i1 = 0x3320646eu, i2 = 0x79622d32u, i3 = 0x6b206574u;
  const u32 i12 = static_cast<u32>(ctr), i13 = static_cast<u32>(ctr >> 32);
  u32 x0 = i0, x1 = i1, x2 = i2, x3 = i3;
  u32 x4 = key.w[0], x5 = key.w[1], x6 = key.w[2], x7 = key.w[3];
  u32 x8 = key.w[4], x9 = key.w[5], x10 = key.w[6], x11 = key.w[7];
  u32 x12 = i12, x13 = i13, x14 = round, x15 = kDevPrgDomainWord;
#pragma unroll 1
  for (int r = 0; r < 10; ++r) {
    TFE_ACCEL_DQR(0, 4, 8, 12) TFE_ACCEL_DQR(1, 5, 9, 13)
    TFE_ACCEL_DQR(2, 6, 10, 14) TFE_ACCEL_DQR(3, 7, 11, 15)
    TFE_ACCEL_DQR(0, 5, 10, 15) TFE_ACCEL_DQR(1, 6, 11, 12)
    TFE_ACCEL_DQR(2, 7, 8, 13) TFE_ACCEL_DQR(3, 4, 9, 14)
  }
  out[0] = x0 + i0; out[1] = x1 + i1; out[2] = x2 + i2; out[3] = x3 + i3;
  out[4] = x4 + key.w[0]; out[5] = x5 + key.w[1]; out[6] = x6 + key.w[2]; out[7] = x7 + key.w[3];
  out[8] = x8 + key.w[4]; out[9] = x9 + key.w[5]; out[10] = x10 + key.w[6]; out[11] = x11 + key.w[7];
  out[12] = x12 + i12; out[13] = x13 + i13; out[14] = x14 + round; out[15] = x15 + kDevPrgDomainWord;
}
#undef TFE_ACCEL_DQR

// Lemire's unbiased reduction of 64-bit draws to [lo, lo + range), as SeededUniformInt64.
struct UniformParams {
  u64 lo;      // (u64)lo
  u64 range;   // hi - lo (mod 2^64), nonzero
  u64 thresh;  // (0 - range) % range: reject when the low half of u * range is below it
};

inline UniformParams MakeUniformParams(i64 lo, i64 hi) {
  UniformParams p;
  p.lo = static_cast<u64>(lo);
  p.range = static_cast<u64>(hi) - static_cast<u64>(lo);
  p.thresh = (0 - p.range) % p.range;
  return p;
}

// TFE's default int64 range [-2^63, 2^63 - 1): range = 2^64 - 1, thresh = 1.
inline UniformParams TfeInt64Params() { return MakeUniformParams(INT64_MIN, INT64_MAX); }

// Element i's value given its round-0 draw u (the rare redraw path recomputes whole blocks).
TFE_ACCEL_HD u64 UniformFromDraw(const Seed& key, const UniformParams& p, i64 i,
                                               u64 u) {
  u32 round = 0;
  while (u * p.range < p.thresh) {
    if (++round >= kDevMaxRounds) DevAbort();  // mirrors RejectionExhausted()
    u32 blk[16];
    PrgBlock(key, static_cast<u64>(i) >> 3, round, blk);
    const int w = static_cast<int>(i & 7) * 2;
    // blk is indexed dynamically only on this cold path.
    u = static_cast<u64>(blk[w]) | (static_cast<u64>(blk[w + 1]) << 32);
  }
  return p.lo + DevMulHi(u, p.range);
}

// The 8 uniform int64 of block b (elements 8b .. 8b+7), written to v[0..8).
TFE_ACCEL_HD void UniformBlock8(const Seed& key, const UniformParams& p, i64 b,
                                              u64 v[8]) {
  u32 blk[16];
  PrgBlock(key, static_cast<u64>(b), 0, blk);
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const u64 u = static_cast<u64>(blk[2 * j]) | (static_cast<u64>(blk[2 * j + 1]) << 32);
    v[j] = UniformFromDraw(key, p, 8 * b + j, u);
  }
}

// v[j] = element first + j of the int64 stream (range p), j < 8, for any first >= 0: a window
// that starts inside a block spans two blocks (so kernels whose streams are read at offsets that
// are not multiples of 8, e.g. row q of a [Q] + shape draw, still compute <= 2 blocks per 8
// elements instead of one block per element).
TFE_ACCEL_HD void UniformWindow8(const Seed& key, const UniformParams& p, i64 first, u64 v[8]) {
  u32 w[32];
  const i64 b0 = first >> 3;
  const int sh = static_cast<int>(first & 7);
  PrgBlock(key, static_cast<u64>(b0), 0, w);
  if (sh != 0) PrgBlock(key, static_cast<u64>(b0 + 1), 0, w + 16);
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int pos = 2 * (sh + j);
    const u64 u = static_cast<u64>(w[pos]) | (static_cast<u64>(w[pos + 1]) << 32);
    v[j] = UniformFromDraw(key, p, first + j, u);
  }
}

// Element i of the int64 stream in TFE's full range [-2^63, 2^63 - 1), at any position (computes
// the element's whole block: 8x the work of UniformBlock8, for kernels whose streams are not
// aligned to the element they write).
TFE_ACCEL_HD u64 FullInt64At(const Seed& key, i64 i) {
  u32 blk[16];
  PrgBlock(key, static_cast<u64>(i) >> 3, 0, blk);
  const int w = static_cast<int>(i & 7) * 2;
  const u64 u = static_cast<u64>(blk[w]) | (static_cast<u64>(blk[w + 1]) << 32);
  const UniformParams p = {0x8000000000000000ull, 0xffffffffffffffffull, 1ull};  // TfeInt64Params()
  return UniformFromDraw(key, p, i, u);
}

// Narrow draws (int8/16/32): element i is 32-bit word i (block i / 16), 32-bit Lemire over
// [lo, lo + range), redraw from the same position in round 1, 2, ...
// (chacha20.cc SeededUniformNarrow / Redraw<1>).
struct NarrowParams {
  std::int64_t lo;
  u32 range, thresh;
};

inline NarrowParams MakeNarrowParams(std::int64_t lo, std::int64_t hi) {
  NarrowParams p;
  p.lo = lo;
  p.range = static_cast<u32>(hi - lo);
  p.thresh = (0u - p.range) % p.range;
  return p;
}

TFE_ACCEL_HD std::int64_t NarrowFromDraw(const Seed& key, const NarrowParams& p, i64 i,
                                                       u32 u) {
  u64 m = static_cast<u64>(u) * p.range;
  u32 round = 0;
  while (static_cast<u32>(m) < p.thresh) {
    if (++round >= kDevMaxRounds) DevAbort();
    u32 blk[16];
    PrgBlock(key, static_cast<u64>(i) >> 4, round, blk);
    u = blk[i & 15];
    m = static_cast<u64>(u) * p.range;
  }
  return p.lo + static_cast<std::int64_t>(m >> 32);
}

TFE_ACCEL_HD std::int64_t NarrowAt(const Seed& key, const NarrowParams& p, i64 i) {
  u32 blk[16];
  PrgBlock(key, static_cast<u64>(i) >> 4, 0, blk);
  return NarrowFromDraw(key, p, i, blk[i & 15]);
}

}  // namespace cuda
}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_CUDA_CHACHA20_CUH_
