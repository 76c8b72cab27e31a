// Host harness for the device PRG (cc/cuda/chacha20.cuh): its __host__ __device__ functions,
// compiled as host code (c++ -x c++ with the CUDA headers) and run on the CPU, behind a C ABI for
// tests/test_cuda_host_prg.py (ctypes).
// The kernels call exactly these functions on the device; this checks their stream logic (block
// layout, counters, rejection rounds, Lemire reduction) against the CPU PRG without a GPU.
#include <cstdint>

#include "chacha20.cuh"

using tfe_accel::cuda::Seed;
namespace dev = tfe_accel::cuda;

namespace {
Seed ToSeed(const std::uint32_t* k) {
  Seed s;
  for (int i = 0; i < 8; ++i) s.w[i] = k[i];
  return s;
}
}  // namespace

extern "C" {

void host_prg_blocks(const std::uint32_t* key, std::uint64_t block0, std::uint32_t round,
                     std::int64_t nblocks, std::uint32_t* out) {
  const Seed s = ToSeed(key);
  for (std::int64_t b = 0; b < nblocks; ++b) dev::PrgBlock(s, block0 + b, round, out + 16 * b);
}

// Elements [0, n) of the int64 stream in [lo, hi), block by block as the elementwise kernels do.
void host_uniform_blocks(const std::uint32_t* key, std::int64_t lo, std::int64_t hi, std::int64_t n,
                         std::int64_t* out) {
  const Seed s = ToSeed(key);
  const dev::UniformParams p = dev::MakeUniformParams(lo, hi);
  for (std::int64_t b = 0; 8 * b < n; ++b) {
    tfe_accel::u64 v[8];
    dev::UniformBlock8(s, p, b, v);
    for (int j = 0; j < 8 && 8 * b + j < n; ++j) out[8 * b + j] = static_cast<std::int64_t>(v[j]);
  }
}

// Windows of 8 elements of the int64 stream in [lo, hi) starting at firsts[k] (UniformWindow8,
// the kernels' reader for streams at offsets that are not block aligned): out is [n][8].
void host_uniform_window8(const std::uint32_t* key, std::int64_t lo, std::int64_t hi,
                          const std::int64_t* firsts, std::int64_t n, std::int64_t* out) {
  const Seed s = ToSeed(key);
  const dev::UniformParams p = dev::MakeUniformParams(lo, hi);
  for (std::int64_t k = 0; k < n; ++k) {
    tfe_accel::u64 v[8];
    dev::UniformWindow8(s, p, firsts[k], v);
    for (int j = 0; j < 8; ++j) out[8 * k + j] = static_cast<std::int64_t>(v[j]);
  }
}

// Element idx[k] of the full-range int64 stream, at arbitrary positions (FullInt64At).
void host_full_int64_at(const std::uint32_t* key, const std::int64_t* idx, std::int64_t n,
                        std::int64_t* out) {
  const Seed s = ToSeed(key);
  for (std::int64_t k = 0; k < n; ++k) out[k] = static_cast<std::int64_t>(dev::FullInt64At(s, idx[k]));
}

// Element idx[k] of the narrow (32-bit word) stream in [lo, hi) (NarrowAt).
void host_narrow_at(const std::uint32_t* key, std::int64_t lo, std::int64_t hi, const std::int64_t* idx,
                    std::int64_t n, std::int64_t* out) {
  const Seed s = ToSeed(key);
  const dev::NarrowParams p = dev::MakeNarrowParams(lo, hi);
  for (std::int64_t k = 0; k < n; ++k) out[k] = dev::NarrowAt(s, p, idx[k]);
}

}  // extern "C"
