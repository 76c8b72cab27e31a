// tfe-accel: an op that reports the build it runs in, so every party of a cluster can check at
// connection time that all parties run the same tfe-accel build and TF version.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

#if !defined(TFE_ACCEL_BUILD_INFO_JSON) || !defined(TFE_ACCEL_TF_VERSION_STR)
#error "TFE_ACCEL_BUILD_INFO_JSON and TFE_ACCEL_TF_VERSION_STR must be defined by the build"
#endif

namespace tfe_accel {

REGISTER_OP("TfeAccelBuildInfo")
    .Output("info: string")
    .SetIsStateful()
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->Scalar());
      return ::tensorflow::OkStatus();
    })
    .Doc("JSON describing the tfe-accel build loaded in this process, plus the running TF version.");

class BuildInfoOp : public ::tensorflow::OpKernel {
 public:
  explicit BuildInfoOp(::tensorflow::OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(::tensorflow::OpKernelContext* ctx) override {
    ::tensorflow::Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ::tensorflow::TensorShape({}), &out));
    std::string info = TFE_ACCEL_BUILD_INFO_JSON;
    // Append the TF version of the headers this library was compiled with (CMake's, read from the
    // build's TensorFlow: TF 2.20+ no longer defines TF_VERSION_STRING). The loader's guard only
    // loads it into that TF minor.
    info.insert(info.size() - 1, std::string(", \"tf_running\": \"") + TFE_ACCEL_TF_VERSION_STR + "\"");
    out->scalar<::tensorflow::tstring>()() = info;
  }
};

REGISTER_KERNEL_BUILDER(Name("TfeAccelBuildInfo").Device(::tensorflow::DEVICE_CPU), BuildInfoOp);

}  // namespace tfe_accel
