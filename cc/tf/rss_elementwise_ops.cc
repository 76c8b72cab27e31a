// TF op glue for the elementwise RSS product step (cc/kernels/rss_elementwise.h; on a GPU in
// TFE_ACCEL_TF_GPU builds, cc/cuda's RssMul).
#include <cstdint>

#include "../kernels/chacha20.h"
#include "../kernels/rss_elementwise.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf_glue.h"
#include "tf_gpu.h"

namespace tfe_accel {
namespace {

using namespace tf_glue::tf_names;  // NOLINT(build/namespaces): our curated list of TF names

}  // namespace

REGISTER_OP("TfeAccelRssMul")
    .Input("x_i: int64")
    .Input("x_next: int64")
    .Input("y_i: int64")
    .Input("y_next: int64")
    .Input("key0: int32")
    .Input("nonce0: int64")
    .Input("key1: int32")
    .Input("nonce1: int64")
    .Output("z: int64")
    .SetIsStateful()  // not folded or deduplicated: it expands a fresh zero share
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle s = c->input(0);
      for (int i = 1; i < 4; ++i) TF_RETURN_IF_ERROR(c->Merge(s, c->input(i), &s));
      ShapeHandle unused;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 1, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(6), 1, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(5), 0, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(7), 0, &unused));
      c->set_output(0, s);
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
ABY3 private x private elementwise product, party i's local step (TFE `_mul_private_private`):
z_i = x_i*y_i + x_i*y_next + x_next*y_i + a_i, a_i = U(key0 + nonce0) - U(key1 + nonce1) expanded
in-kernel (TFE's `_gen_zero_sharing`). Inputs are only party i's shares and keys.
)doc");

class RssMulOp : public OpKernel {
 public:
  explicit RssMulOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    static const char* kNames[4] = {"x_i", "x_next", "y_i", "y_next"};
    const Tensor& x = ctx->input(0);
    for (int i = 1; i < 4; ++i) {
      OP_REQUIRES(ctx, ctx->input(i).shape() == x.shape(),
                  InvalidArgument(kNames[i], " must have the shape of x_i ", x.shape().DebugString(),
                                  ", got ", ctx->input(i).shape().DebugString()));
    }
    u32 keys[2][kSeedWords];
    i64 nonces[2];
    static const char* kNamesKeys[4] = {"key0", "nonce0", "key1", "nonce1"};
    if (!tf_glue::ReadZeroShareKeys(ctx, 4, keys[0], &nonces[0], keys[1], &nonces[1], kNamesKeys))
      return;
    Tensor* z = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &z));
    auto p = [&](int i) { return reinterpret_cast<const u64*>(ctx->input(i).flat<std::int64_t>().data()); };
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const tf_glue::Seed8 s0 = tf_glue::SeedOf(keys[0], nonces[0]);
        const tf_glue::Seed8 s1 = tf_glue::SeedOf(keys[1], nonces[1]);
        cuda::RssMul(p(0), p(1), p(2), p(3), s0.w, s1.w, tf_glue::Words(z), x.NumElements(), stream);
      });
      RssMul(p(0), p(1), p(2), p(3), keys[0], nonces[0], keys[1], nonces[1],
             reinterpret_cast<u64*>(z->flat<std::int64_t>().data()), x.NumElements(),
             tf_glue::TfParallelFor(ctx));
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("TfeAccelRssMul").Device(::tensorflow::DEVICE_CPU), RssMulOp);
TFE_ACCEL_REGISTER_GPU(Name("TfeAccelRssMul").HostMemory("key0").HostMemory("nonce0")
                           .HostMemory("key1").HostMemory("nonce1"),
                       RssMulOp);

}  // namespace tfe_accel
