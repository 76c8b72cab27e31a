#include "chacha20.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>  // SYS_getrandom: the raw syscall, no glibc >= 2.25 wrapper needed
#ifndef SYS_getrandom     // kernel headers older than Linux 3.17
#if defined(__x86_64__)
#define SYS_getrandom 318
#elif defined(__aarch64__)
#define SYS_getrandom 278
#endif
#endif
#endif

#include "chacha20_impl.h"
#include "cpu_features.h"

namespace tfe_accel {

void PrgBlocksAvx2(const u32 key[8], u64 block0, u32 round, std::size_t nblocks, u32* out);
void PrgBlocksAvx512(const u32 key[8], u64 block0, u32 round, std::size_t nblocks, u32* out);

namespace {
inline u32 Load32Le(const u8* p) {
  return static_cast<u32>(p[0]) | (static_cast<u32>(p[1]) << 8) | (static_cast<u32>(p[2]) << 16) |
         (static_cast<u32>(p[3]) << 24);
}
}  // namespace

void Chacha20Block(const u32 state[16], u32 out[16]) {
  u32 x[16];
  std::memcpy(x, state, sizeof(x));
  auto qr = [&x](int a, int b, int c, int d) {
    x[a] += x[b]; x[d] = chacha_impl::Rotl(x[d] ^ x[a], 16);
    x[c] += x[d]; x[b] = chacha_impl::Rotl(x[b] ^ x[c], 12);
    x[a] += x[b]; x[d] = chacha_impl::Rotl(x[d] ^ x[a], 8);
    x[c] += x[d]; x[b] = chacha_impl::Rotl(x[b] ^ x[c], 7);
  };
  for (int i = 0; i < 10; ++i) {
    qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15);
    qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14);
  }
  for (int i = 0; i < 16; ++i) out[i] = x[i] + state[i];
}

void Chacha20Xor(const u8 key[32], u32 counter, const u8 nonce[12], const u8* in, u8* out,
                 std::size_t len) {
  u32 state[16] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u};
  for (int i = 0; i < 8; ++i) state[4 + i] = Load32Le(key + 4 * i);
  state[12] = counter;
  for (int i = 0; i < 3; ++i) state[13 + i] = Load32Le(nonce + 4 * i);
  u32 block[16];
  u8 ks[64];
  for (std::size_t off = 0; off < len; off += 64) {
    Chacha20Block(state, block);
    for (int i = 0; i < 16; ++i) {
      ks[4 * i] = static_cast<u8>(block[i]);
      ks[4 * i + 1] = static_cast<u8>(block[i] >> 8);
      ks[4 * i + 2] = static_cast<u8>(block[i] >> 16);
      ks[4 * i + 3] = static_cast<u8>(block[i] >> 24);
    }
    const std::size_t n = std::min<std::size_t>(64, len - off);
    for (std::size_t i = 0; i < n; ++i) out[off + i] = in[off + i] ^ ks[i];
    state[12] += 1;
  }
}

void PrgBlocks(const u32 key[8], u64 block0, u32 round, std::size_t nblocks, u32* out) {
  switch (ActiveCodePath()) {
    case CodePath::kAvx512: PrgBlocksAvx512(key, block0, round, nblocks, out); return;
    case CodePath::kAvx2: PrgBlocksAvx2(key, block0, round, nblocks, out); return;
    default: chacha_impl::PrgBlocksImpl<4>(key, block0, round, nblocks, out); return;
  }
}

namespace {

constexpr i64 kChunkBlocks = 64;      // blocks generated per inner step (4 KiB)
constexpr i64 kCyclesPerBlock = 400;  // rough cost for the parallel-for
constexpr u32 kMaxRounds = 1024;      // P(reaching this) < 2^-1000: a corrupted state, not luck

// Redraw of element `i` (words_per_elem 32-bit words each) after `round - 1` rejections.
template <int kWords>
u64 Redraw(const u32 seed[8], i64 i, u32 round) {
  constexpr i64 kPerBlock = 16 / kWords;
  u32 blk[16];
  PrgBlocks(seed, static_cast<u64>(i / kPerBlock), round, 1, blk);
  const int w = static_cast<int>(i % kPerBlock) * kWords;
  if (kWords == 2) return static_cast<u64>(blk[w]) | (static_cast<u64>(blk[w + 1]) << 32);
  return blk[w];
}

[[noreturn]] void RejectionExhausted() {
  throw std::runtime_error("tfe_accel PRG: rejection sampling did not terminate (internal error)");
}

// Calls f(i, word) for the elements i in [first, first + n) of the round-0 stream, kWords 32-bit
// words per element (2: int64, low word first; 1: the narrow types), serially.
template <int kWords, typename F>
void WalkAt(const u32 seed[8], i64 first, i64 n, F&& f) {
  constexpr i64 kPerBlock = 16 / kWords;
  alignas(64) u32 buf[16 * kChunkBlocks];
  const i64 end = first + n;
  i64 i = first;
  while (i < end) {
    const i64 blk = i / kPerBlock;
    const i64 nb = std::min<i64>(kChunkBlocks, (end - 1) / kPerBlock - blk + 1);
    PrgBlocks(seed, static_cast<u64>(blk), 0, static_cast<std::size_t>(nb), buf);
    const i64 stop = std::min(end, (blk + nb) * kPerBlock);
    for (; i < stop; ++i) {
      const i64 j = (i - blk * kPerBlock) * kWords;
      f(i, kWords == 2 ? static_cast<u64>(buf[j]) | (static_cast<u64>(buf[j + 1]) << 32) : buf[j]);
    }
  }
}

}  // namespace

void SeededUniformInt64(const u32 seed[8], i64 lo, i64 hi, i64* out, i64 n,
                        const ParallelFor& pf) {
  if (!(lo < hi)) {
    throw KernelArgumentError("minval must be less than maxval, got minval=" +
                              std::to_string(lo) + " maxval=" + std::to_string(hi));
  }
  if (n <= 0) return;
  const i64 nblocks = (n + 7) / 8;
  pf(nblocks, kCyclesPerBlock, [&](i64 b0, i64 b1) {
    const i64 first = b0 * 8;
    SeededUniformInt64At(seed, lo, hi, first, std::min(n, b1 * 8) - first, out + first);
  });
}

void SeededUniformInt64At(const u32 seed[8], i64 lo, i64 hi, i64 first, i64 n, i64* out) {
  if (!(lo < hi)) {
    throw KernelArgumentError("minval must be less than maxval, got minval=" +
                              std::to_string(lo) + " maxval=" + std::to_string(hi));
  }
  const u64 range = static_cast<u64>(hi) - static_cast<u64>(lo);
  const u64 thresh = (0 - range) % range;
  const u64 ulo = static_cast<u64>(lo);
  WalkAt<2>(seed, first, n, [&](i64 i, u64 u) {
    unsigned __int128 m = static_cast<unsigned __int128>(u) * range;
    u32 round = 0;
    while (static_cast<u64>(m) < thresh) {
      if (++round >= kMaxRounds) RejectionExhausted();
      u = Redraw<2>(seed, i, round);
      m = static_cast<unsigned __int128>(u) * range;
    }
    out[i - first] = static_cast<i64>(ulo + static_cast<u64>(m >> 64));
  });
}

void SeededFullRangeInt64At(const u32 seed[8], i64 first, i64 n, u64* out) {
  // Lemire with range 2^64 - 1: thresh = 1 and low64(u * range) = -u, so only u = 0 is rejected
  // (probability 2^-64); otherwise high64(u * range) = u - 1. Plus lo = -2^63.
  WalkAt<2>(seed, first, n, [&](i64 i, u64 u) {
    u32 round = 0;
    while (u == 0) {
      if (++round >= kMaxRounds) RejectionExhausted();
      u = Redraw<2>(seed, i, round);
    }
    out[i - first] = (u - 1) + (static_cast<u64>(1) << 63);
  });
}

template <typename T>
void SeededUniformNarrowAt(const u32 seed[8], T lo, T hi, i64 first, i64 n, T* out) {
  static_assert(sizeof(T) <= 4, "narrow types draw one 32-bit word per element");
  if (!(lo < hi)) {
    throw KernelArgumentError("minval must be less than maxval, got minval=" +
                              std::to_string(lo) + " maxval=" + std::to_string(hi));
  }
  const u32 range = static_cast<u32>(static_cast<std::int64_t>(hi) - static_cast<std::int64_t>(lo));
  const u32 thresh = (0u - range) % range;
  WalkAt<1>(seed, first, n, [&](i64 i, u64 word) {
    u32 u = static_cast<u32>(word);
    u64 m = static_cast<u64>(u) * range;
    u32 round = 0;
    while (static_cast<u32>(m) < thresh) {
      if (++round >= kMaxRounds) RejectionExhausted();
      u = static_cast<u32>(Redraw<1>(seed, i, round));
      m = static_cast<u64>(u) * range;
    }
    out[i - first] = static_cast<T>(static_cast<std::int64_t>(lo) + static_cast<std::int64_t>(m >> 32));
  });
}

template <typename T>
void SeededUniformNarrow(const u32 seed[8], T lo, T hi, T* out, i64 n, const ParallelFor& pf) {
  if (!(lo < hi)) {
    throw KernelArgumentError("minval must be less than maxval, got minval=" +
                              std::to_string(lo) + " maxval=" + std::to_string(hi));
  }
  if (n <= 0) return;
  const i64 nblocks = (n + 15) / 16;
  pf(nblocks, kCyclesPerBlock, [&](i64 b0, i64 b1) {
    const i64 first = b0 * 16;
    SeededUniformNarrowAt<T>(seed, lo, hi, first, std::min(n, b1 * 16) - first, out + first);
  });
}

void SeededUniformInt32At(const u32 seed[8], std::int32_t lo, std::int32_t hi, i64 first, i64 n,
                          std::int32_t* out) {
  SeededUniformNarrowAt<std::int32_t>(seed, lo, hi, first, n, out);
}

void SeededUniformInt32(const u32 seed[8], std::int32_t lo, std::int32_t hi, std::int32_t* out,
                        i64 n, const ParallelFor& pf) {
  SeededUniformNarrow<std::int32_t>(seed, lo, hi, out, n, pf);
}
void SeededUniformInt16(const u32 seed[8], std::int16_t lo, std::int16_t hi, std::int16_t* out,
                        i64 n, const ParallelFor& pf) {
  SeededUniformNarrow<std::int16_t>(seed, lo, hi, out, n, pf);
}
void SeededUniformInt8(const u32 seed[8], std::int8_t lo, std::int8_t hi, std::int8_t* out,
                       i64 n, const ParallelFor& pf) {
  SeededUniformNarrow<std::int8_t>(seed, lo, hi, out, n, pf);
}

void SeedPlusNonce(const u32 key[8], i64 nonce, u32 out[8]) {
  const u32 add = static_cast<u32>(static_cast<u64>(nonce));
  for (int i = 0; i < 8; ++i) out[i] = key[i] + add;
}

void OsRandomBytes(void* buf, std::size_t len) {
  u8* p = static_cast<u8*>(buf);
  std::size_t got = 0;
#if defined(__linux__) && defined(SYS_getrandom)
  while (got < len) {
    const long r = ::syscall(SYS_getrandom, p + got, len - got, 0);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else if (r < 0 && errno == ENOSYS) {
      break;  // very old kernel: read /dev/urandom below (also the kernel CSPRNG)
    } else {
      throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    }
  }
#endif
  if (got < len) {
    const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open /dev/urandom for secure seeds");
    while (got < len) {
      const ssize_t r = ::read(fd, p + got, len - got);
      if (r > 0) got += static_cast<std::size_t>(r);
      else if (r < 0 && errno == EINTR) continue;
      else {
        ::close(fd);
        throw std::runtime_error("reading /dev/urandom failed");
      }
    }
    ::close(fd);
  }
}

void SecureSeed(u32 out[8]) { OsRandomBytes(out, 8 * sizeof(u32)); }

}  // namespace tfe_accel
