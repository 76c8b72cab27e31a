// tfe-accel: the masked-comparison msb (private_compare.h).
#include "private_compare.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "chacha20.h"

namespace tfe_accel {

namespace {

constexpr i64 kChunk = 16;           // values per inner step: the draws of a chunk fit in 8 KiB
constexpr i64 kCostPerValue = 3000;  // rough cycles per value (PRG words + 64 positions)

void CheckSize(i64 n) {
  if (n < 0) throw KernelArgumentError("element count must be >= 0, got " + std::to_string(n));
}

// Received Z_67 values must be reduced (a message that is not is refused, not misread).
void CheckDigits(const u8* v, i64 count, const char* name) {
  for (i64 i = 0; i < count; ++i)
    if (v[i] >= kPcPrime)
      throw KernelArgumentError(std::string(name) + " must hold values in [0, 67), got " + std::to_string(v[i]) +
                                " at index " + std::to_string(i));
}

// Seed of stream U(key, nonce + add).
struct Stream {
  u32 seed[8];
  Stream(const u32 key[8], i64 nonce, i64 add = 0) { SeedPlusNonce(key, nonce + add, seed); }
};

constexpr int kDigitWords = (kPcShareBits + 1) / 2;  // two Z_67 digits per 32-bit draw

// a - b mod p for a, b in [0, p).
inline u8 SubP(int a, int b) { return static_cast<u8>(a >= b ? a - b : a - b + kPcPrime); }
inline int AddP(int a, int b) {  // a + b mod p for a, b in [0, p)
  const int v = a + b;
  return v >= kPcPrime ? v - kPcPrime : v;
}

// Values [first, first + n) of D0 (n x 63 digits): stream positions 32 i + q, two digits each.
void DrawDigits(const Stream& s, i64 first, i64 n, u8* out) {
  std::int32_t v[kChunk * kDigitWords];
  SeededUniformInt32At(s.seed, 0, kPcPrime * kPcPrime, first * kDigitWords, n * kDigitWords, v);
  for (i64 i = 0; i < n; ++i)
    for (int k = 0; k < kPcShareBits; ++k) {
      const int w = v[i * kDigitWords + k / 2];
      out[i * kPcShareBits + k] = static_cast<u8>(k % 2 == 0 ? w % kPcPrime : w / kPcPrime);
    }
}

}  // namespace

void PcOpen(int party, const u64* x_a, const u64* x_b, const u32 key[8], i64 nonce, u64* a,
            i64 n, const ParallelFor& pf) {
  if (party != 0 && party != 1)
    throw KernelArgumentError("PcOpen: party must be 0 or 1, got " + std::to_string(party));
  CheckSize(n);
  const Stream rho(key, nonce);
  ForChunks(n, 1024, 20, pf, [&](i64 b, i64 e) {
    SeededFullRangeInt64At(rho.seed, b, e - b, a + b);
    for (i64 i = b; i < e; ++i) a[i] += (party == 0 ? x_a[i] : 0) + x_b[i];
  });
}

void PcDealer(const u32 key02[8], i64 nonce02, const u32 key12[8], i64 nonce12, u8* d1,
              bool* r_top, i64 n, const ParallelFor& pf) {
  CheckSize(n);
  const Stream rho0(key02, nonce02), rho1(key12, nonce12), digits(key02, nonce02, 1);
  ForChunks(n, kChunk, kCostPerValue, pf, [&](i64 b, i64 e) {
    u64 r0[kChunk], r1[kChunk];
    u8 d0[kChunk * kPcShareBits];
    SeededFullRangeInt64At(rho0.seed, b, e - b, r0);
    SeededFullRangeInt64At(rho1.seed, b, e - b, r1);
    DrawDigits(digits, b, e - b, d0);
    for (i64 i = b; i < e; ++i) {
      const u64 r = r0[i - b] + r1[i - b];
      r_top[i] = (r >> 63) != 0;
      const u8* own = d0 + (i - b) * kPcShareBits;
      u8* out = d1 + i * kPcShareBits;
      for (int k = 0; k < kPcShareBits; ++k) out[k] = SubP(static_cast<int>((r >> k) & 1), own[k]);
    }
  });
}

void PcMask(int party, const u64* a_own, const u64* a_recv, const u8* digits,
            const u32 key02[8], i64 nonce02, const u32 key01[8], i64 nonce01, u8* d, bool* s1,
            bool* s0, i64 n, const ParallelFor& pf) {
  if (party != 0 && party != 1)
    throw KernelArgumentError("PcMask: party must be 0 or 1, got " + std::to_string(party));
  if (party == 1 && digits == nullptr)
    throw KernelArgumentError("PcMask: party 1 needs the dealer's digits");
  CheckSize(n);
  if (party == 1) CheckDigits(digits, n * kPcShareBits, "digits");
  const bool lead = party == 0;  // P0 adds the public constants of the linear forms
  const Stream coins(key01, nonce01), mult(key01, nonce01, 1);
  const Stream own_digits(lead ? key02 : key01, nonce02, 1), out0(lead ? key02 : key01, nonce02, 2);
  ForChunks(n, kChunk, kCostPerValue, pf, [&](i64 b, i64 e) {
    const i64 m = e - b;
    std::int32_t coin[kChunk], sm[kChunk * kPcPositions], bit[kChunk];
    u8 drawn[kChunk * kPcShareBits];
    SeededUniformInt32At(coins.seed, 0, 2 * kPcPositions, b, m, coin);
    SeededUniformInt32At(mult.seed, 0, (kPcPrime - 1) * kPcPrime, b * kPcPositions, m * kPcPositions, sm);
    if (lead) {
      DrawDigits(own_digits, b, m, drawn);
      SeededUniformInt32At(out0.seed, 0, 2, b, m, bit);
      for (i64 i = b; i < e; ++i) s0[i] = bit[i - b] != 0;
    }
    for (i64 i = b; i < e; ++i) {
      const i64 j = i - b;
      const u64 c = a_own[i] + a_recv[i];
      const int beta = coin[j] & 1;
      const int rot = coin[j] >> 1;
      const u64 t = (c & ~(static_cast<u64>(1) << 63)) + static_cast<u64>(beta);
      s1[i] = ((c >> 63) != 0) != (beta != 0);
      const u8* r = lead ? drawn + j * kPcShareBits : digits + i * kPcShareBits;
      u8* out = d + i * kPcPositions;
      int w_above = 0;  // this party's share of sum_{l > k} w_l, mod p
      for (int k = kPcPositions - 1; k >= 0; --k) {
        const int tk = static_cast<int>((t >> k) & 1);
        const int rk = k < kPcShareBits ? r[k] : 0;
        const int lin = beta ? AddP(rk, lead ? 1 - tk : 0) : SubP(lead ? tk + 1 : 0, rk);  // +-(r_k - t_k) + 1
        const int e_share = AddP(lin, w_above);
        const int v = sm[j * kPcPositions + k];
        const int mk = v % kPcPrime, sk = 1 + v / kPcPrime;
        const int masked = (sk * e_share + (lead ? mk : kPcPrime - mk)) % kPcPrime;
        out[(k + rot) & (kPcPositions - 1)] = static_cast<u8>(masked);
        w_above = AddP(w_above, tk ? SubP(lead ? 1 : 0, rk) : rk);  // share of r_k xor t_k
      }
    }
  });
}

void PcResolve(const u8* d0, const u8* d1, const bool* r_top, const u32 key02[8], i64 nonce02,
               bool* s2, bool* s0, i64 n, const ParallelFor& pf) {
  CheckSize(n);
  CheckDigits(d0, n * kPcPositions, "d0");
  CheckDigits(d1, n * kPcPositions, "d1");
  const Stream out0(key02, nonce02, 2);
  ForChunks(n, kChunk, 400, pf, [&](i64 b, i64 e) {
    std::int32_t bit[kChunk];
    SeededUniformInt32At(out0.seed, 0, 2, b, e - b, bit);
    for (i64 i = b; i < e; ++i) {
      bool zero = false;
      for (int k = 0; k < kPcPositions; ++k) {
        const int v = d0[i * kPcPositions + k] + d1[i * kPcPositions + k];
        zero |= (v == 0 || v == kPcPrime);
      }
      s0[i] = bit[i - b] != 0;
      s2[i] = (r_top[i] != zero) != s0[i];
    }
  });
}

}  // namespace tfe_accel
