// tfe-accel: Kogge-Stone / bit-extraction protocol steps (see sigmoid_steps.h).
#include "sigmoid_steps.h"

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "chacha20.h"
#include "truncation.h"  // FullRangeInt64At

namespace tfe_accel {

namespace {

constexpr i64 kChunk = 512;

template <typename F>
void ForChunks(i64 n, i64 cost_per_elem, const ParallelFor& pf, F&& body) {
  if (n <= 0) return;
  const i64 nchunks = (n + kChunk - 1) / kChunk;
  pf(nchunks, cost_per_elem * kChunk, [&](i64 c0, i64 c1) {
    for (i64 c = c0; c < c1; ++c) body(c * kChunk, std::min(n, (c + 1) * kChunk));
  });
}

// Gathers the even bits (0, 2, 4, ...) of a word into its low half (TFE's bit_gather(x, 0, 2) on
// the word's own width, given the word zero-extended to 64 bits).
inline u64 CompressEven(u64 x) {
  x &= 0x5555555555555555ull;
  x = (x | (x >> 1)) & 0x3333333333333333ull;
  x = (x | (x >> 2)) & 0x0f0f0f0f0f0f0f0full;
  x = (x | (x >> 4)) & 0x00ff00ff00ff00ffull;
  x = (x | (x >> 8)) & 0x0000ffff0000ffffull;
  x = (x | (x >> 16)) & 0x00000000ffffffffull;
  return x;
}

template <typename T>
inline u64 ZeroExt(T v) {
  return static_cast<u64>(static_cast<typename std::make_unsigned<T>::type>(v));
}

template <typename T>
void SeededFull(const u32 seed[8], T* out, i64 n, const ParallelFor& pf);
template <>
void SeededFull<std::int32_t>(const u32 seed[8], std::int32_t* out, i64 n, const ParallelFor& pf) {
  SeededUniformInt32(seed, INT32_MIN, INT32_MAX, out, n, pf);
}
template <>
void SeededFull<std::int16_t>(const u32 seed[8], std::int16_t* out, i64 n, const ParallelFor& pf) {
  SeededUniformInt16(seed, INT16_MIN, INT16_MAX, out, n, pf);
}
template <>
void SeededFull<std::int8_t>(const u32 seed[8], std::int8_t* out, i64 n, const ParallelFor& pf) {
  SeededUniformInt8(seed, INT8_MIN, INT8_MAX, out, n, pf);
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
    ForChunks(n, 40, pf, [&](i64 b, i64 e) {
      alignas(64) u64 tmp[kChunk];
      u64* o = reinterpret_cast<u64*>(out);
      FullRangeInt64At(sa, b, e - b, o + b);
      FullRangeInt64At(sb, b, e - b, tmp);
      for (i64 i = b; i < e; ++i) o[i] ^= tmp[i - b];
    });
  } else {
    std::vector<T> tmp(static_cast<size_t>(n));
    SeededFull<T>(sa, out, n, pf);
    SeededFull<T>(sb, tmp.data(), n, pf);
    ForChunks(n, 1, pf, [&](i64 b, i64 e) {
      for (i64 i = b; i < e; ++i) out[i] ^= tmp[i];
    });
  }
}

void BitExtractSetup(int party, const u64* x_a, const u64* x_b, const u32 key_a[8], i64 nonce_a,
                     const u32 key_b[8], i64 nonce_b, u64* out, i64 n, const ParallelFor& pf) {
  if (party < 0 || party > 2)
    throw KernelArgumentError("party must be 0, 1 or 2, got " + std::to_string(party));
  if (party == 0 && n > 0 && (x_a == nullptr || x_b == nullptr))
    throw KernelArgumentError("party 0 needs its two arithmetic shares x_a, x_b");
  BooleanZeroShare<i64>(key_a, nonce_a, key_b, nonce_b, reinterpret_cast<i64*>(out), n, pf);
  if (party == 0) {
    ForChunks(n, 1, pf, [&](i64 b, i64 e) {
      for (i64 i = b; i < e; ++i) out[i] ^= x_a[i] + x_b[i];
    });
  }
}

void CarrySetupAnd(const u64* op1_a, const u64* op1_b, const u64* op2_a, const u64* op2_b,
                   const u32 key_a[8], i64 nonce_a, const u32 key_b[8], i64 nonce_b, u64* z,
                   u64* p_a, u64* p_b, std::int8_t* top_a, std::int8_t* top_b, i64 n,
                   const ParallelFor& pf) {
  BooleanZeroShare<i64>(key_a, nonce_a, key_b, nonce_b, reinterpret_cast<i64*>(z), n, pf);
  ForChunks(n, 2, pf, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; ++i) {
      const u64 xa = op1_a[i], xb = op1_b[i], ya = op2_a[i], yb = op2_b[i];
      top_a[i] = static_cast<std::int8_t>((xa ^ ya) >> 63);
      top_b[i] = static_cast<std::int8_t>((xb ^ yb) >> 63);
      const u64 sxa = xa << 1, sxb = xb << 1, sya = ya << 1, syb = yb << 1;
      z[i] ^= (sxa & sya) ^ (sxa & syb) ^ (sxb & sya);
      p_a[i] = sxa ^ sya;
      p_b[i] = sxb ^ syb;
    }
  });
}

template <typename In, typename Out>
void KoggeStoneRound(const In* g_a, const In* g_b, const In* p_a, const In* p_b,
                     const u32 key_a[8], i64 nonce_a, const u32 key_b[8], i64 nonce_b, Out* zg,
                     Out* zp, Out* gs1_a, Out* gs1_b, i64 n, const ParallelFor& pf) {
  if (n <= 0) return;
  BooleanZeroShare<Out>(key_a, nonce_a, key_b, nonce_b, zg, n, pf);
  BooleanZeroShare<Out>(key_a, nonce_a + 1, key_b, nonce_b + 1, zp, n, pf);
  ForChunks(n, 6, pf, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; ++i) {
      const u64 ga = ZeroExt(g_a[i]), gb = ZeroExt(g_b[i]);
      const u64 pa = ZeroExt(p_a[i]), pb = ZeroExt(p_b[i]);
      const Out g0a = static_cast<Out>(CompressEven(ga)), g0b = static_cast<Out>(CompressEven(gb));
      const Out g1a = static_cast<Out>(CompressEven(ga >> 1));
      const Out g1b = static_cast<Out>(CompressEven(gb >> 1));
      const Out p0a = static_cast<Out>(CompressEven(pa)), p0b = static_cast<Out>(CompressEven(pb));
      const Out p1a = static_cast<Out>(CompressEven(pa >> 1));
      const Out p1b = static_cast<Out>(CompressEven(pb >> 1));
      zg[i] = static_cast<Out>(zg[i] ^ (g0a & p1a) ^ (g0a & p1b) ^ (g0b & p1a));
      zp[i] = static_cast<Out>(zp[i] ^ (p0a & p1a) ^ (p0a & p1b) ^ (p0b & p1a));
      gs1_a[i] = g1a;
      gs1_b[i] = g1b;
    }
  });
}

template <typename T>
void KoggeStoneUpdate(const T* gs1_a, const T* gs1_b, const T* zg_own, const T* zg_recv,
                      T* g_a, T* g_b, i64 n, const ParallelFor& pf) {
  ForChunks(n, 1, pf, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; ++i) {
      g_a[i] = static_cast<T>(gs1_a[i] ^ zg_own[i]);
      g_b[i] = static_cast<T>(gs1_b[i] ^ zg_recv[i]);
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
