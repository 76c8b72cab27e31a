// TF ops for TF Encrypted's bit manipulation (tf_encrypted/operations/aux), same names, attrs
// and semantics as TFE 0.9.1's aux module, backed by cc/kernels/bitops.
#include <cstdint>

#include "../kernels/bitops.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf_glue.h"

namespace tfe_accel {
namespace {

using namespace tf_glue::tf_names;  // NOLINT(build/namespaces): our curated list of TF names

}  // namespace

REGISTER_OP("BitGather")
    .Input("op: dtype")
    .Output("output: dtype")
    .Attr("start: int")
    .Attr("stride: int")
    .Attr("dtype: {int8, int16, int32, int64}")
    .SetShapeFn(::tensorflow::shape_inference::UnchangedShape);

REGISTER_OP("BitSplitAndGather")
    .Input("op: dtype")
    .Output("output: dtype")
    .Attr("stride: int")
    .Attr("dtype: {int8, int16, int32, int64}")
    .SetShapeFn([](InferenceContext* c) {
      int stride;
      TF_RETURN_IF_ERROR(c->GetAttr("stride", &stride));
      if (stride < 1) return InvalidArgument("stride must be >= 1, got ", stride);
      ShapeHandle out;
      TF_RETURN_IF_ERROR(c->Concatenate(c->Vector(stride), c->input(0), &out));
      c->set_output(0, out);
      return ::tensorflow::OkStatus();
    });

REGISTER_OP("BitReverse")
    .Input("op0: int64")
    .Output("output: int64")
    .SetShapeFn(::tensorflow::shape_inference::UnchangedShape);

REGISTER_OP("XorIndices")
    .Input("op0: int64")
    .Output("output: int64")
    .SetShapeFn(::tensorflow::shape_inference::UnchangedShape);

namespace {

template <typename T>
class BitGatherOp : public OpKernel {
 public:
  explicit BitGatherOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("start", &start_));
    OP_REQUIRES_OK(c, c->GetAttr("stride", &stride_));
    try {
      CheckBitGatherArgs(static_cast<int>(sizeof(T) * 8), start_, stride_);
    } catch (const KernelArgumentError& e) {
      c->CtxFailure(__FILE__, __LINE__, InvalidArgument("BitGather: ", e.what()));
    }
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &out));
    tf_glue::RunKernel(ctx, [&] {
      BitGather<T>(x.flat<T>().data(), out->flat<T>().data(), x.NumElements(), start_, stride_,
                   tf_glue::TfParallelFor(ctx));
    });
  }

 private:
  int start_ = 0, stride_ = 1;
};

template <typename T>
class BitSplitAndGatherOp : public OpKernel {
 public:
  explicit BitSplitAndGatherOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("stride", &stride_));
    try {
      CheckBitSplitArgs(static_cast<int>(sizeof(T) * 8), stride_);
    } catch (const KernelArgumentError& e) {
      c->CtxFailure(__FILE__, __LINE__, InvalidArgument("BitSplitAndGather: ", e.what()));
    }
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    TensorShape shape = x.shape();
    shape.InsertDim(0, stride_);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &out));
    tf_glue::RunKernel(ctx, [&] {
      BitSplitAndGather<T>(x.flat<T>().data(), out->flat<T>().data(), x.NumElements(), stride_,
                           tf_glue::TfParallelFor(ctx));
    });
  }

 private:
  int stride_ = 1;
};

template <void (*Fn)(const i64*, i64*, i64, const ParallelFor&)>
class Int64UnaryOp : public OpKernel {
 public:
  explicit Int64UnaryOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &out));
    tf_glue::RunKernel(ctx, [&] {
      Fn(x.flat<std::int64_t>().data(), out->flat<std::int64_t>().data(), x.NumElements(),
         tf_glue::TfParallelFor(ctx));
    });
  }
};

}  // namespace

#define TFE_ACCEL_REGISTER(T)                                                                  \
  REGISTER_KERNEL_BUILDER(Name("BitGather").Device(DEVICE_CPU).TypeConstraint<T>("dtype"),     \
                          BitGatherOp<T>);                                                     \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("BitSplitAndGather").Device(DEVICE_CPU).TypeConstraint<T>("dtype"),                 \
      BitSplitAndGatherOp<T>);
TFE_ACCEL_REGISTER(std::int8_t)
TFE_ACCEL_REGISTER(std::int16_t)
TFE_ACCEL_REGISTER(std::int32_t)
TFE_ACCEL_REGISTER(std::int64_t)
#undef TFE_ACCEL_REGISTER

REGISTER_KERNEL_BUILDER(Name("BitReverse").Device(DEVICE_CPU), Int64UnaryOp<BitReverse>);
REGISTER_KERNEL_BUILDER(Name("XorIndices").Device(DEVICE_CPU), Int64UnaryOp<XorIndices>);

}  // namespace tfe_accel
