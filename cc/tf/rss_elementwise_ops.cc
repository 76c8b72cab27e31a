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

// Shapes of a zero share's (key0: [8], nonce0: [], key1: [8], nonce1: []) inputs from input `first`.
Status ZeroShareKeyShapes(InferenceContext* c, int first) {
  ShapeHandle unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first), 1, &unused));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first + 2), 1, &unused));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first + 1), 0, &unused));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first + 3), 0, &unused));
  return ::tensorflow::OkStatus();
}

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
    // Not stateful: the output is a function of the inputs (the zero share's freshness is the
    // nonce's). A stateful op would make tf.function chain the parties' calls in program order
    // with cross-party control edges: rounds no data edge needs.
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle s = c->input(0);
      for (int i = 1; i < 4; ++i) TF_RETURN_IF_ERROR(c->Merge(s, c->input(i), &s));
      TF_RETURN_IF_ERROR(ZeroShareKeyShapes(c, 4));
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

REGISTER_OP("TfeAccelRssColumnSquares")
    .Input("x_i: int64")
    .Input("x_next: int64")
    .Input("m_i: int64")
    .Input("m_next: int64")
    .Input("key0: int32")
    .Input("nonce0: int64")
    .Input("key1: int32")
    .Input("nonce1: int64")
    .Output("z: int64")
    // Not stateful: the output is a function of the inputs (the zero share's freshness is the
    // nonce's). A stateful op would make tf.function chain the parties' calls in program order
    // with cross-party control edges: rounds no data edge needs.
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, m;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &x));
      TF_RETURN_IF_ERROR(c->Merge(x, c->input(1), &x));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &m));
      TF_RETURN_IF_ERROR(c->Merge(m, c->input(3), &m));
      DimensionHandle one, cols;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(m, 0), 1, &one));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 1), c->Dim(m, 1), &cols));
      TF_RETURN_IF_ERROR(ZeroShareKeyShapes(c, 4));
      c->set_output(0, c->Matrix(1, cols));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
ABY3 column sums of squares of a centred private matrix, party i's local step (the inner-product
form of TFE `_mul_private_private` followed by `reduce_sum(axis=0)`): with a = x_i - m_i and
b = x_next - m_next (m broadcast over rows), z_i[0, c] = sum_r a (a + 2 b) + alpha_i[c], alpha_i
party i's zero share expanded in-kernel from key0/nonce0 and key1/nonce1 as in TfeAccelRssMul.
x_i, x_next: [rows, cols]; m_i, m_next: [1, cols]; z: [1, cols], not truncated. Inputs are only party
i's shares and keys; the resharing of z (one value per column) is the caller's.
)doc");

class RssColumnSquaresOp : public OpKernel {
 public:
  explicit RssColumnSquaresOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& m = ctx->input(2);
    OP_REQUIRES(ctx, x.dims() == 2,
                InvalidArgument("x_i must be a matrix [rows, cols], got shape ", x.shape().DebugString()));
    OP_REQUIRES(ctx, ctx->input(1).shape() == x.shape(),
                InvalidArgument("x_next must have the shape of x_i ", x.shape().DebugString(), ", got ",
                                ctx->input(1).shape().DebugString()));
    const std::int64_t cols = x.dim_size(1);
    OP_REQUIRES(ctx, m.dims() == 2 && m.dim_size(0) == 1 && m.dim_size(1) == cols,
                InvalidArgument("m_i must have shape [1, ", cols, "] (one centre per column of x_i), got ",
                                m.shape().DebugString()));
    OP_REQUIRES(ctx, ctx->input(3).shape() == m.shape(),
                InvalidArgument("m_next must have the shape of m_i ", m.shape().DebugString(), ", got ",
                                ctx->input(3).shape().DebugString()));
    u32 keys[2][kSeedWords];
    i64 nonces[2];
    static const char* kNamesKeys[4] = {"key0", "nonce0", "key1", "nonce1"};
    if (!tf_glue::ReadZeroShareKeys(ctx, 4, keys[0], &nonces[0], keys[1], &nonces[1], kNamesKeys))
      return;
    Tensor* z = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ::tensorflow::TensorShape({1, cols}), &z));
    auto p = [&](int i) { return reinterpret_cast<const u64*>(ctx->input(i).flat<std::int64_t>().data()); };
    tf_glue::RunKernel(ctx, [&] {
      RssColumnSquares(p(0), p(1), p(2), p(3), x.dim_size(0), cols, keys[0], nonces[0], keys[1],
                       nonces[1], reinterpret_cast<u64*>(z->flat<std::int64_t>().data()),
                       tf_glue::TfParallelFor(ctx));
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("TfeAccelRssColumnSquares").Device(::tensorflow::DEVICE_CPU),
                        RssColumnSquaresOp);

}  // namespace tfe_accel
