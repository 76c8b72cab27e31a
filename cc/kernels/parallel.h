// tfe-accel: a std::thread parallel-for for callers without a framework thread pool
// (the pybind11 module, the sanitizer driver). TF glue uses TF's intra-op pool instead.
#ifndef TFE_ACCEL_CC_KERNELS_PARALLEL_H_
#define TFE_ACCEL_CC_KERNELS_PARALLEL_H_

#include "common.h"

namespace tfe_accel {

// A ParallelFor over up to `num_threads` threads (0 = hardware concurrency). Work below about
// 100k cycles runs inline. Exceptions thrown by fn are rethrown on the calling thread.
ParallelFor ThreadParallelFor(int num_threads);

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_PARALLEL_H_
