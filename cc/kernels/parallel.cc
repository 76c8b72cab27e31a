#include "parallel.h"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace tfe_accel {

ParallelFor ThreadParallelFor(int num_threads) {
  int nt = num_threads > 0 ? num_threads : static_cast<int>(std::thread::hardware_concurrency());
  if (nt < 1) nt = 1;
  return [nt](i64 n, i64 cost_per_unit, const RangeFn& fn) {
    if (n <= 0) return;
    const double total = static_cast<double>(n) * static_cast<double>(std::max<i64>(cost_per_unit, 1));
    i64 parts = std::min<i64>(nt, n);
    if (total < 1e5) parts = 1;
    if (parts <= 1) {
      fn(0, n);
      return;
    }
    std::exception_ptr err;
    std::mutex mu;
    std::vector<std::thread> threads;
    const i64 step = (n + parts - 1) / parts;
    auto run = [&](i64 b, i64 e) {
      try {
        fn(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!err) err = std::current_exception();
      }
    };
    for (i64 b = step; b < n; b += step) threads.emplace_back(run, b, std::min(n, b + step));
    run(0, std::min(n, step));
    for (auto& t : threads) t.join();
    if (err) std::rethrow_exception(err);
  };
}

}  // namespace tfe_accel
