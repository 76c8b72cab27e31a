// tfe-accel: the GPU side of the TF op glue. Compiled with TFE_ACCEL_TF_GPU=1 only (CMake sets it
// where TensorFlow is a CUDA build and the CUDA kernels are built, cmake/cuda.cmake).
//
// An op class is written once (validation, output allocation, the CPU kernel call) and registered
// for DEVICE_CPU and, here, DEVICE_GPU. Its Compute runs
//     TFE_ACCEL_GPU_BRANCH(ctx, <calls of cc/cuda/tfe_cuda.h with `stream` and `scratch`>);
// before the CPU call: on a GPU device the branch launches the CUDA kernels on TF's own CUDA stream
// and returns; without TFE_ACCEL_TF_GPU it expands to nothing. Keys, nonces and shape arguments are
// HostMemory inputs (read on the host, as the CPU kernels do); tensors are device memory.
//
// Only TF's stream-executor headers are used (the stream handle and the device ordinal), not TF's
// CUDA headers, so the kernels may be built with a newer CUDA than TF's own; they carry their own
// static CUDA runtime and share the device's primary context with TF.
//
// Across TF 2.12-2.21 (TFE_ACCEL_TF_VERSION_NUM = major*100+minor, from CMake):
//   headers        tensorflow/compiler/xla/stream_executor/ until XLA moved to the include root
//                  (xla/stream_executor/, the only path from TF 2.17 on): chosen by __has_include;
//   CUDA stream    Stream::platform_specific_handle().stream (public, TF >= 2.16) or, before,
//                  the stream implementation's GpuStreamHack() (removed in 2.16);
//   device ordinal Stream::parent()->device_ordinal() (StreamExecutor's public accessor, all).
#ifndef TFE_ACCEL_CC_TF_TF_GPU_H_
#define TFE_ACCEL_CC_TF_TF_GPU_H_

#if TFE_ACCEL_TF_GPU

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

#include "../cuda/tfe_cuda.h"
#include "tensorflow/core/framework/op_kernel.h"

#ifndef TFE_ACCEL_TF_VERSION_NUM
#error "TFE_ACCEL_TF_VERSION_NUM (major*100+minor of the TensorFlow built against) must be defined by the build"
#endif

#if __has_include("xla/stream_executor/stream.h")
#include "xla/stream_executor/stream.h"
#include "xla/stream_executor/stream_executor.h"
#else
#include "tensorflow/compiler/xla/stream_executor/stream.h"
#include "tensorflow/compiler/xla/stream_executor/stream_executor.h"
#endif
#if TFE_ACCEL_TF_VERSION_NUM < 216
#if __has_include("xla/stream_executor/stream_executor_internal.h")
#include "xla/stream_executor/stream_executor_internal.h"
#else
#include "tensorflow/compiler/xla/stream_executor/stream_executor_internal.h"
#endif
#endif

namespace tfe_accel {
namespace tf_glue {

inline bool OnGpu(::tensorflow::OpKernelContext* ctx) {
  return ctx->device()->tensorflow_accelerator_device_info() != nullptr;
}

// TF's compute stream of this op's GPU, with that GPU made current for our CUDA runtime.
inline cudaStream_t GpuStream(::tensorflow::OpKernelContext* ctx) {
  auto* dc = ctx->op_device_context();
  auto* stream = dc == nullptr ? nullptr : dc->stream();
  if (stream == nullptr) throw std::runtime_error("tfe_accel: GPU kernel without a TF stream");
  cuda::Check(cudaSetDevice(stream->parent()->device_ordinal()), "cudaSetDevice");
#if TFE_ACCEL_TF_VERSION_NUM >= 216
  void* handle = stream->platform_specific_handle().stream;
#else
  void* handle = stream->implementation()->GpuStreamHack();
#endif
  if (handle == nullptr) throw std::runtime_error("tfe_accel: TF's GPU stream has no CUDA handle");
  return static_cast<cudaStream_t>(handle);
}

// Scratch device memory from TF's allocator (allocate_temp). The tensors live until the op's
// Compute returns; TF's GPU allocator orders their reuse after the work enqueued on the op's
// stream, which is where every kernel of the op runs.
class GpuScratch {
 public:
  explicit GpuScratch(::tensorflow::OpKernelContext* ctx)
      : ctx_(ctx), fn_([this](std::size_t bytes) { return Allocate(bytes); }) {}
  const cuda::ScratchFn* fn() const { return &fn_; }

 private:
  void* Allocate(std::size_t bytes) {
    temps_.emplace_back();
    const std::int64_t n = static_cast<std::int64_t>(bytes);
    auto status = ctx_->allocate_temp(::tensorflow::DT_INT8, ::tensorflow::TensorShape({n}),
                                      &temps_.back());
    if (!status.ok()) throw std::bad_alloc();
    return temps_.back().flat<std::int8_t>().data();
  }
  ::tensorflow::OpKernelContext* ctx_;
  std::vector<::tensorflow::Tensor> temps_;
  cuda::ScratchFn fn_;
};

}  // namespace tf_glue
}  // namespace tfe_accel

// Runs the statements in __VA_ARGS__ (with `stream` and `scratch` in scope) and returns, when the
// kernel runs on a GPU. Use inside tf_glue::RunKernel so CUDA errors become TF statuses.
#define TFE_ACCEL_GPU_BRANCH(ctx, ...)                                  \
  if (::tfe_accel::tf_glue::OnGpu(ctx)) {                              \
    const cudaStream_t stream = ::tfe_accel::tf_glue::GpuStream(ctx);  \
    ::tfe_accel::tf_glue::GpuScratch scratch_holder(ctx);              \
    const ::tfe_accel::cuda::ScratchFn* scratch = scratch_holder.fn(); \
    (void)scratch;                                                     \
    __VA_ARGS__;                                                       \
    return;                                                            \
  }

// REGISTER_KERNEL_BUILDER for DEVICE_GPU; `builder` is the Name(...) chain (HostMemory included).
#define TFE_ACCEL_REGISTER_GPU(builder, cls) \
  REGISTER_KERNEL_BUILDER(builder.Device(::tensorflow::DEVICE_GPU), cls)

#else  // !TFE_ACCEL_TF_GPU

#define TFE_ACCEL_GPU_BRANCH(ctx, ...)
#define TFE_ACCEL_REGISTER_GPU(builder, cls)

#endif  // TFE_ACCEL_TF_GPU

#endif  // TFE_ACCEL_CC_TF_TF_GPU_H_
