// tfe-accel: small helpers shared by the TF op glue: TF's thread pool as a ParallelFor, and
// turning kernel exceptions into TF statuses. No kernel logic lives here.
#ifndef TFE_ACCEL_CC_TF_TF_GLUE_H_
#define TFE_ACCEL_CC_TF_TF_GLUE_H_

#include <exception>
#include <mutex>
#include <stdexcept>

#include "../kernels/common.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/lib/core/threadpool.h"

namespace tfe_accel {
namespace tf_glue {

// TF's intra-op thread pool as a ParallelFor. Exceptions from worker ranges are captured and
// rethrown on the calling thread (a throw inside TF's pool would abort the process).
inline ParallelFor TfParallelFor(::tensorflow::OpKernelContext* ctx) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [workers](i64 n, i64 cost, const RangeFn& fn) {
    if (n <= 0) return;
    std::exception_ptr err;
    std::mutex mu;
    workers->ParallelFor(n, cost, [&](int64_t b, int64_t e) {
      try {
        fn(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!err) err = std::current_exception();
      }
    });
    if (err) std::rethrow_exception(err);
  };
}

// Runs `body`, mapping KernelArgumentError to InvalidArgument and anything else to Internal.
template <typename F>
void RunKernel(::tensorflow::OpKernelContext* ctx, F&& body) {
  try {
    body();
  } catch (const KernelArgumentError& e) {
    ctx->CtxFailure(__FILE__, __LINE__, ::tensorflow::errors::InvalidArgument(e.what()));
  } catch (const std::bad_alloc&) {
    ctx->CtxFailure(__FILE__, __LINE__,
                    ::tensorflow::errors::ResourceExhausted("tfe_accel: out of memory"));
  } catch (const std::exception& e) {
    ctx->CtxFailure(__FILE__, __LINE__, ::tensorflow::errors::Internal(e.what()));
  }
}

}  // namespace tf_glue
}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_TF_TF_GLUE_H_
