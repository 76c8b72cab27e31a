// tfe-accel: small helpers shared by the TF op glue: TF's thread pool as a ParallelFor, and
// turning kernel exceptions into TF statuses. No kernel logic lives here.
#ifndef TFE_ACCEL_CC_TF_TF_GLUE_H_
#define TFE_ACCEL_CC_TF_TF_GLUE_H_

#include <exception>
#include <mutex>
#include <stdexcept>

#include "../kernels/chacha20.h"
#include "../kernels/common.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/lib/core/threadpool.h"

namespace tfe_accel {
namespace tf_glue {

// The TF names every op file uses, brought in with `using namespace tf_glue::tf_names;`.
namespace tf_names {
using ::tensorflow::DEVICE_CPU;
using ::tensorflow::DataType;
using ::tensorflow::DataTypeToEnum;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Status;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::TensorShapeUtils;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;
}  // namespace tf_names


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

// Reads input `index` as an int32[8] PRG key into `out`; on a bad shape sets an InvalidArgument
// naming `name` and returns false.
inline bool ReadKey(::tensorflow::OpKernelContext* ctx, int index, const char* name, u32 out[8]) {
  const ::tensorflow::Tensor& k = ctx->input(index);
  if (!(k.dims() == 1 && k.dim_size(0) == kSeedWords)) {
    ctx->CtxFailure(__FILE__, __LINE__,
                    ::tensorflow::errors::InvalidArgument(
                        name, " must have shape [8] (an int32[8] PRG key), got shape ",
                        k.shape().DebugString()));
    return false;
  }
  auto v = k.flat<std::int32_t>();
  for (int i = 0; i < kSeedWords; ++i) out[i] = static_cast<u32>(v(i));
  return true;
}

// Reads input `index` as an int64 scalar nonce; on a bad shape sets an InvalidArgument.
inline bool ReadNonce(::tensorflow::OpKernelContext* ctx, int index, const char* name, i64* out) {
  const ::tensorflow::Tensor& n = ctx->input(index);
  if (!::tensorflow::TensorShapeUtils::IsScalar(n.shape())) {
    ctx->CtxFailure(__FILE__, __LINE__,
                    ::tensorflow::errors::InvalidArgument(name, " must be a scalar, got shape ",
                                                          n.shape().DebugString()));
    return false;
  }
  *out = n.scalar<std::int64_t>()();
  return true;
}

// Reads the (key, nonce, key, nonce) inputs first .. first + 3 of a party's zero-sharing step.
inline bool ReadZeroShareKeys(::tensorflow::OpKernelContext* ctx, int first, u32 key_a[8],
                              i64* nonce_a, u32 key_b[8], i64* nonce_b,
                              const char* names[4] = nullptr) {
  static const char* kDefault[4] = {"key_a", "nonce_a", "key_b", "nonce_b"};
  const char** n = names ? names : kDefault;
  return ReadKey(ctx, first, n[0], key_a) && ReadNonce(ctx, first + 1, n[1], nonce_a) &&
         ReadKey(ctx, first + 2, n[2], key_b) && ReadNonce(ctx, first + 3, n[3], nonce_b);
}

// int64 tensors as the u64 ring words the kernels take (same bits).
inline const u64* Words(const ::tensorflow::Tensor& t) {
  return reinterpret_cast<const u64*>(t.flat<std::int64_t>().data());
}
inline u64* Words(::tensorflow::Tensor* t) {
  return reinterpret_cast<u64*>(t->flat<std::int64_t>().data());
}

// key + nonce as the CPU kernels derive it (SeedPlusNonce), for the CUDA entry points that take
// nonce-adjusted seeds.
struct Seed8 {
  u32 w[kSeedWords];
};
inline Seed8 SeedOf(const u32 key[8], i64 nonce) {
  Seed8 s;
  SeedPlusNonce(key, nonce, s.w);
  return s;
}

}  // namespace tf_glue
}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_TF_TF_GLUE_H_
