// TF ops for TF Encrypted's secure randomness (tf_encrypted/operations/secure_random), with the
// op names, inputs and attributes TFE 0.9.1's Python wrappers call, backed by our ChaCha20 PRG.
#include <cstdint>

#include "../kernels/chacha20.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tf_glue.h"

namespace tfe_accel {
namespace {

using namespace tf_glue::tf_names;  // NOLINT(build/namespaces): our curated list of TF names

Status UniformShape(InferenceContext* c) {
  ShapeHandle out;
  TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(0, &out));
  // minval / maxval must be scalars.
  const int first_bound = c->num_inputs() - 2;
  ShapeHandle unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first_bound), 0, &unused));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first_bound + 1), 0, &unused));
  c->set_output(0, out);
  return ::tensorflow::OkStatus();
}

Status SeededUniformShape(InferenceContext* c) {
  ShapeHandle seed;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &seed));
  DimensionHandle unused;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(seed, 0), kSeedWords, &unused));
  return UniformShape(c);
}

}  // namespace

REGISTER_OP("SecureSeededRandomUniform")
    .Input("shape: T")
    .Input("seed: Tseed")
    .Input("minval: dtype")
    .Input("maxval: dtype")
    .Output("output: dtype")
    .Attr("dtype: {int8, int16, int32, int64} = DT_INT32")
    .Attr("T: {int32, int64} = DT_INT32")
    .Attr("Tseed: {int32} = DT_INT32")
    // Not stateful (as in TFE's own op): the output is a function of the inputs, and the freshness
    // comes from the seed. A stateful op would make tf.function chain every party's draws in
    // program order with cross-party control edges: 60 extra one-way hops in stock's sigmoid.
    .SetShapeFn(SeededUniformShape)
    .Doc(R"doc(
Uniform integers in [minval, maxval) from tfe-accel's ChaCha20 PRG keyed by `seed` (int32[8]).
Deterministic in (seed, shape, minval, maxval); unbiased (rejection, no modulo bias).
)doc");

REGISTER_OP("SecureRandomUniform")
    .Input("shape: T")
    .Input("minval: dtype")
    .Input("maxval: dtype")
    .Output("output: dtype")
    .Attr("dtype: {int8, int16, int32, int64} = DT_INT32")
    .Attr("T: {int32, int64} = DT_INT32")
    .SetIsStateful()
    .SetShapeFn(UniformShape)
    .Doc("Uniform integers in [minval, maxval) from a fresh OS-seeded ChaCha20 stream.");

REGISTER_OP("SecureSeed")
    .Output("output: int32")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(kSeedWords));
      return ::tensorflow::OkStatus();
    })
    .Doc("A fresh 256-bit seed (int32[8]) from the OS CSPRNG (getrandom).");

namespace {

template <typename T>
void CheckedBounds(OpKernelContext* ctx, int min_index, T* lo, T* hi, bool* ok) {
  *ok = false;
  const Tensor& minval = ctx->input(min_index);
  const Tensor& maxval = ctx->input(min_index + 1);
  OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(minval.shape()),
              InvalidArgument("minval must be a scalar, got shape ", minval.shape().DebugString()));
  OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(maxval.shape()),
              InvalidArgument("maxval must be a scalar, got shape ", maxval.shape().DebugString()));
  *lo = minval.scalar<T>()();
  *hi = maxval.scalar<T>()();
  OP_REQUIRES(ctx, *lo < *hi,
              InvalidArgument("minval must be less than maxval, got minval=", *lo,
                              " maxval=", *hi));
  *ok = true;
}

template <typename T>
void Fill(const u32 seed[8], T lo, T hi, T* out, i64 n, const ParallelFor& pf);
template <>
void Fill<std::int64_t>(const u32 seed[8], std::int64_t lo, std::int64_t hi, std::int64_t* out,
                        i64 n, const ParallelFor& pf) {
  SeededUniformInt64(seed, lo, hi, out, n, pf);
}
template <>
void Fill<std::int32_t>(const u32 seed[8], std::int32_t lo, std::int32_t hi, std::int32_t* out,
                        i64 n, const ParallelFor& pf) {
  SeededUniformInt32(seed, lo, hi, out, n, pf);
}
template <>
void Fill<std::int16_t>(const u32 seed[8], std::int16_t lo, std::int16_t hi, std::int16_t* out,
                        i64 n, const ParallelFor& pf) {
  SeededUniformInt16(seed, lo, hi, out, n, pf);
}
template <>
void Fill<std::int8_t>(const u32 seed[8], std::int8_t lo, std::int8_t hi, std::int8_t* out,
                       i64 n, const ParallelFor& pf) {
  SeededUniformInt8(seed, lo, hi, out, n, pf);
}

template <typename T>
void MakeOutputShape(OpKernelContext* ctx, TensorShape* shape, bool* ok) {
  *ok = false;
  const Tensor& shape_tensor = ctx->input(0);
  OP_REQUIRES(ctx, TensorShapeUtils::IsVector(shape_tensor.shape()),
              InvalidArgument("shape must be a 1-D tensor, got shape ",
                              shape_tensor.shape().DebugString()));
  auto dims = shape_tensor.flat<T>();
  for (int i = 0; i < dims.size(); ++i) {
    OP_REQUIRES(ctx, dims(i) >= 0,
                InvalidArgument("shape must not contain negative dimensions, got ", dims(i),
                                " at index ", i));
  }
  OP_REQUIRES_OK(ctx, TensorShapeUtils::MakeShape(dims.data(), dims.size(), shape));
  *ok = true;
}

template <typename T>
class SeededUniformOp : public OpKernel {
 public:
  explicit SeededUniformOp(OpKernelConstruction* c) : OpKernel(c) {}

  void Compute(OpKernelContext* ctx) override {
    bool ok;
    TensorShape shape;
    const ::tensorflow::DataType shape_dtype = ctx->input(0).dtype();
    if (shape_dtype == ::tensorflow::DT_INT64) MakeOutputShape<std::int64_t>(ctx, &shape, &ok);
    else MakeOutputShape<std::int32_t>(ctx, &shape, &ok);
    if (!ok) return;
    const Tensor& seed = ctx->input(1);
    OP_REQUIRES(ctx, seed.dims() == 1 && seed.dim_size(0) == kSeedWords,
                InvalidArgument("seed must have shape [", kSeedWords, "], got ",
                                seed.shape().DebugString()));
    T lo, hi;
    CheckedBounds<T>(ctx, 2, &lo, &hi, &ok);
    if (!ok) return;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &out));
    u32 key[kSeedWords];
    auto s = seed.flat<std::int32_t>();
    for (int i = 0; i < kSeedWords; ++i) key[i] = static_cast<u32>(s(i));
    tf_glue::RunKernel(ctx, [&] {
      Fill<T>(key, lo, hi, out->flat<T>().data(), out->NumElements(), tf_glue::TfParallelFor(ctx));
    });
  }
};

template <typename T>
class UniformOp : public OpKernel {
 public:
  explicit UniformOp(OpKernelConstruction* c) : OpKernel(c) {}

  void Compute(OpKernelContext* ctx) override {
    bool ok;
    TensorShape shape;
    if (ctx->input(0).dtype() == ::tensorflow::DT_INT64) MakeOutputShape<std::int64_t>(ctx, &shape, &ok);
    else MakeOutputShape<std::int32_t>(ctx, &shape, &ok);
    if (!ok) return;
    T lo, hi;
    CheckedBounds<T>(ctx, 1, &lo, &hi, &ok);
    if (!ok) return;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &out));
    tf_glue::RunKernel(ctx, [&] {
      u32 key[kSeedWords];
      SecureSeed(key);
      Fill<T>(key, lo, hi, out->flat<T>().data(), out->NumElements(), tf_glue::TfParallelFor(ctx));
    });
  }
};

class SeedOp : public OpKernel {
 public:
  explicit SeedOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({kSeedWords}), &out));
    tf_glue::RunKernel(ctx, [&] {
      SecureSeed(reinterpret_cast<u32*>(out->flat<std::int32_t>().data()));
    });
  }
};

}  // namespace

#define TFE_ACCEL_REGISTER(T)                                                                \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("SecureSeededRandomUniform").Device(DEVICE_CPU).TypeConstraint<T>("dtype"),       \
      SeededUniformOp<T>);                                                                   \
  REGISTER_KERNEL_BUILDER(Name("SecureRandomUniform").Device(DEVICE_CPU).TypeConstraint<T>("dtype"), \
                          UniformOp<T>);
TFE_ACCEL_REGISTER(std::int8_t)
TFE_ACCEL_REGISTER(std::int16_t)
TFE_ACCEL_REGISTER(std::int32_t)
TFE_ACCEL_REGISTER(std::int64_t)
#undef TFE_ACCEL_REGISTER
REGISTER_KERNEL_BUILDER(Name("SecureSeed").Device(DEVICE_CPU), SeedOp);

}  // namespace tfe_accel
