// tfe-accel: shared definitions for the framework-free kernels.
//
// Everything under cc/kernels/ is plain C++17: no TensorFlow and no Python types.
// The TF glue (cc/tf/) and the pybind11 glue (cc/python/) call these functions.
#ifndef TFE_ACCEL_CC_KERNELS_COMMON_H_
#define TFE_ACCEL_CC_KERNELS_COMMON_H_

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace tfe_accel {

using u8 = std::uint8_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using i64 = std::int64_t;

// A parallel-for supplied by the caller: run fn(begin, end) over disjoint ranges covering
// [0, n). `cost_per_unit` is a rough cycle count per unit, used to decide how finely to split.
// TF glue passes TF's intra-op thread pool; the pybind11 glue passes a std::thread pool.
using RangeFn = std::function<void(i64 begin, i64 end)>;
using ParallelFor = std::function<void(i64 n, i64 cost_per_unit, const RangeFn& fn)>;

// Runs everything on the calling thread.
inline void SerialFor(i64 n, i64 /*cost_per_unit*/, const RangeFn& fn) {
  if (n > 0) fn(0, n);
}

// Runs body(begin, end) over consecutive chunks of `chunk` elements of [0, n), in parallel.
template <typename F>
void ForChunks(i64 n, i64 chunk, i64 cost_per_elem, const ParallelFor& pf, F&& body) {
  if (n <= 0) return;
  const i64 nchunks = (n + chunk - 1) / chunk;
  pf(nchunks, cost_per_elem * chunk, [&](i64 c0, i64 c1) {
    for (i64 c = c0; c < c1; ++c) body(c * chunk, c + 1 < nchunks ? (c + 1) * chunk : n);
  });
}

// Errors in kernel arguments. Glue code turns it into InvalidArgumentError / ValueError.
class KernelArgumentError : public std::invalid_argument {
 public:
  explicit KernelArgumentError(const std::string& what) : std::invalid_argument(what) {}
};

// The argument checks every step shares (CPU kernels and CUDA host entries alike).
inline void CheckParty(int party) {
  if (party < 0 || party > 2) throw KernelArgumentError("party must be 0, 1 or 2, got " + std::to_string(party));
}
inline void CheckTruncationAmount(int amount) {
  if (amount <= 0 || amount >= 63)
    throw KernelArgumentError("amount must be in [1, 62], got " + std::to_string(amount));
}

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_COMMON_H_
