// tfe-accel: an op that reports the build it runs in, so every party of a cluster can check at
// connection time that all parties run the same tfe-accel build and TF version.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/public/version.h"

#ifndef TFE_ACCEL_BUILD_INFO_JSON
#error "TFE_ACCEL_BUILD_INFO_JSON must be defined by the build"
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
    // Append the TF version of the running process (may differ from the built-for one).
    info.insert(info.size() - 1, std::string(", \"tf_running\": \"") + TF_VERSION_STRING + "\"");
    out->scalar<::tensorflow::tstring>()() = info;
  }
};

REGISTER_KERNEL_BUILDER(Name("TfeAccelBuildInfo").Device(::tensorflow::DEVICE_CPU), BuildInfoOp);

}  // namespace tfe_accel
