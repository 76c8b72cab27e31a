// tfe-accel: ChaCha20 (RFC 8439) and the counter-based PRG built on it.
//
// PRG stream layout (documented in README "Secure randomness"):
//   key      = the 8 seed words (TFE's int32[8] seed, taken as uint32, little-endian key bytes)
//   words 12,13 = 64-bit block counter (low, high), starting at 0
//   word 14  = rejection round (0 for the main stream, k for the k-th redraw)
//   word 15  = 0x61656674 ("tfea", domain separation from other ChaCha20 uses of a key)
// A tensor of n elements is one stream: int64 element i is 64-bit word i of round 0 (two
// consecutive 32-bit words, low first); int8/int16/int32 element i is 32-bit word i. A draw that the
// unbiased range reduction rejects is redrawn from the same position in round 1, 2, ...
// so the output is a pure function of (seed, shape, minval, maxval), independent of threads.
#ifndef TFE_ACCEL_CC_KERNELS_CHACHA20_H_
#define TFE_ACCEL_CC_KERNELS_CHACHA20_H_

#include <cstddef>
#include <cstdint>

#include "common.h"

namespace tfe_accel {

constexpr u32 kPrgDomainWord = 0x61656674u;  // "tfea"
constexpr int kSeedWords = 8;

// RFC 8439 section 2.3: the block function on a full 16-word input state.
void Chacha20Block(const u32 state[16], u32 out[16]);

// RFC 8439 section 2.4: encrypt/decrypt `len` bytes with a 32-byte key, 32-bit initial block
// counter and 12-byte nonce. `in` and `out` may alias.
void Chacha20Xor(const u8 key[32], u32 counter, const u8 nonce[12], const u8* in, u8* out,
                 std::size_t len);

// Keystream blocks [block0, block0 + nblocks) of the PRG stream for `round`, 16 words each.
// Vectorised by the widest code path available at run time.
void PrgBlocks(const u32 key[8], u64 block0, u32 round, std::size_t nblocks, u32* out);

// Uniform integers in [lo, hi) (requires lo < hi), unbiased (Lemire's multiply-and-reject),
// deterministic in the seed. Throws KernelArgumentError if lo >= hi.
void SeededUniformInt64(const u32 seed[8], i64 lo, i64 hi, i64* out, i64 n,
                        const ParallelFor& pf);
// int8/int16/int32 element i is 32-bit word i, reduced to the range with 32-bit Lemire.
void SeededUniformInt32(const u32 seed[8], std::int32_t lo, std::int32_t hi, std::int32_t* out,
                        i64 n, const ParallelFor& pf);
void SeededUniformInt16(const u32 seed[8], std::int16_t lo, std::int16_t hi, std::int16_t* out,
                        i64 n, const ParallelFor& pf);
void SeededUniformInt8(const u32 seed[8], std::int8_t lo, std::int8_t hi, std::int8_t* out,
                       i64 n, const ParallelFor& pf);

// Elements [first, first + n) of the stream SeededUniformInt64(seed, -2^63, 2^63 - 1, ...) (TFE's
// default int64 range, used for every zero sharing), generated directly at that offset, serially
// (callers split ranges over threads). out[k] = element first + k.
void SeededFullRangeInt64At(const u32 seed[8], i64 first, i64 n, u64* out);

// Elements [first, first + n) of the stream SeededUniformInt64(seed, lo, hi, ...), generated
// directly at that offset, serially. Throws KernelArgumentError if lo >= hi.
void SeededUniformInt64At(const u32 seed[8], i64 lo, i64 hi, i64 first, i64 n, i64* out);
// The same for the 32-bit stream of SeededUniformInt32.
void SeededUniformInt32At(const u32 seed[8], std::int32_t lo, std::int32_t hi, i64 first, i64 n,
                          std::int32_t* out);

// The seed TFE adds a nonce to: seed'[j] = key[j] + nonce (mod 2^32), as TF's int32 add does.
void SeedPlusNonce(const u32 key[8], i64 nonce, u32 out[8]);

// 8 fresh words from the OS CSPRNG (getrandom(2); /dev/urandom if getrandom is unavailable).
// Throws std::runtime_error if the OS cannot supply entropy; never falls back to anything weaker.
void SecureSeed(u32 out[8]);

// Raw bytes from the OS CSPRNG (same source as SecureSeed).
void OsRandomBytes(void* buf, std::size_t len);

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_CHACHA20_H_
