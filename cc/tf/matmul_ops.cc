// TF ops for the ring products (cc/kernels/ring_gemm.h, cc/kernels/rss_matmul.h):
//   TfeAccelRingMatmul             C = A.B mod 2^64 (int64), like tf.matmul / BatchMatMulV2
//   TfeAccelRssMatmul              party i's local step of ABY3's private x private matmul
//   TfeAccelPublicPrivateMatmul    both shares of one party times a public matrix, one call
// Thin glue: validate, allocate, call the kernel on TF's intra-op thread pool; on a GPU (builds with
// TFE_ACCEL_TF_GPU, tf_gpu.h) the same op launches cc/cuda's kernels on TF's stream instead.
#include <cstdint>
#include <vector>

#include "../kernels/chacha20.h"
#include "../kernels/ring_gemm.h"
#include "../kernels/rss_matmul.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tf_glue.h"
#include "tf_gpu.h"

namespace tfe_accel {
namespace {

using namespace tf_glue::tf_names;  // NOLINT(build/namespaces): our curated list of TF names

// Static shape of a (maybe batched, maybe transposed) product of inputs ia and ib, as
// BatchMatMulV2: rank >= 2, inner dims equal, batch dims broadcast.
Status ProductShape(InferenceContext* c, ShapeHandle a_in, ShapeHandle b_in, ShapeHandle* out) {
  bool ta = false, tb = false;
  TF_RETURN_IF_ERROR(c->GetAttr("transpose_a", &ta));
  TF_RETURN_IF_ERROR(c->GetAttr("transpose_b", &tb));
  ShapeHandle a, b;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(a_in, 2, &a));
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(b_in, 2, &b));
  if (!c->RankKnown(a) || !c->RankKnown(b)) {
    *out = c->UnknownShape();
    return ::tensorflow::OkStatus();
  }
  DimensionHandle m = c->Dim(a, ta ? -1 : -2);
  DimensionHandle ka = c->Dim(a, ta ? -2 : -1);
  DimensionHandle kb = c->Dim(b, tb ? -1 : -2);
  DimensionHandle n = c->Dim(b, tb ? -2 : -1);
  DimensionHandle k;
  TF_RETURN_IF_ERROR(c->Merge(ka, kb, &k));
  ShapeHandle a_batch, b_batch, batch;
  TF_RETURN_IF_ERROR(c->Subshape(a, 0, -2, &a_batch));
  TF_RETURN_IF_ERROR(c->Subshape(b, 0, -2, &b_batch));
  TF_RETURN_IF_ERROR(::tensorflow::shape_inference::BroadcastBinaryOpOutputShapeFnHelper(
      c, a_batch, b_batch, true, &batch));
  return c->Concatenate(batch, c->Matrix(m, n), out);
}

std::vector<i64> Dims(const TensorShape& s) {
  std::vector<i64> d;
  for (int i = 0; i < s.dims(); ++i) d.push_back(s.dim_size(i));
  return d;
}

TensorShape ToShape(const std::vector<i64>& d) {
  TensorShape s;
  for (i64 x : d) s.AddDim(x);
  return s;
}

const i64* I(const Tensor& t) { return t.flat<std::int64_t>().data(); }

// TF's intra-op pool as a ParallelFor, but work that is small, or a pool of one thread, runs
// inline on the op's thread (a hand-off to the pool costs a thread wake-up for no parallelism).
ParallelFor OpParallelFor(OpKernelContext* ctx) {
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  if (workers == nullptr || workers->num_threads <= 1) return SerialFor;
  ParallelFor pool = tf_glue::TfParallelFor(ctx);
  return [pool](i64 n, i64 cost, const RangeFn& fn) {
    if (n <= 0) return;
    if (n == 1 || static_cast<double>(n) * static_cast<double>(cost) < 1e5) {
      fn(0, n);
      return;
    }
    pool(n, cost, fn);
  };
}

}  // namespace

REGISTER_OP("TfeAccelRingMatmul")
    .Input("a: int64")
    .Input("b: int64")
    .Output("product: int64")
    .Attr("transpose_a: bool = false")
    .Attr("transpose_b: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle out;
      TF_RETURN_IF_ERROR(ProductShape(c, c->input(0), c->input(1), &out));
      c->set_output(0, out);
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Ring product C = A.B mod 2^64 of int64 tensors (wrapping), with tf.matmul's rank >= 2,
broadcast batch dims and transpose flags.
)doc");

REGISTER_OP("TfeAccelRssMatmul")
    .Input("x_i: int64")
    .Input("x_next: int64")
    .Input("y_i: int64")
    .Input("y_next: int64")
    .Input("key0: int32")
    .Input("key1: int32")
    .Input("nonce0: int64")
    .Input("nonce1: int64")
    .Output("z: int64")
    .Attr("transpose_a: bool = false")
    .Attr("transpose_b: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, y, unused;
      TF_RETURN_IF_ERROR(c->Merge(c->input(0), c->input(1), &x));
      TF_RETURN_IF_ERROR(c->Merge(c->input(2), c->input(3), &y));
      for (int i = 4; i < 6; ++i) {
        ShapeHandle key;
        TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 1, &key));
        DimensionHandle d;
        TF_RETURN_IF_ERROR(c->WithValue(c->Dim(key, 0), kSeedWords, &d));
      }
      TF_RETURN_IF_ERROR(c->WithRank(c->input(6), 0, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(7), 0, &unused));
      ShapeHandle out;
      TF_RETURN_IF_ERROR(ProductShape(c, x, y, &out));
      c->set_output(0, out);
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Party i's local step of ABY3's private x private matmul (TFE _matmul_private_private):
z = x_i.(y_i + y_next) + x_next.y_i + a_i with the zero share
a_i = U(key0 + nonce0) - U(key1 + nonce1) expanded in-kernel (TFE's _gen_zero_sharing; for party i:
key0 = pairwise_keys[i][0], nonce0 = nonces[(i+2)%3], key1 = pairwise_keys[i][1],
nonce1 = nonces[i]). Not truncated.
)doc");

REGISTER_OP("TfeAccelPublicPrivateMatmul")
    .Input("p: int64")
    .Input("x0: int64")
    .Input("x1: int64")
    .Output("z0: int64")
    .Output("z1: int64")
    .Attr("transpose_a: bool = false")
    .Attr("transpose_b: bool = false")
    .Attr("public_left: bool = true")
    .SetShapeFn([](InferenceContext* c) {
      bool left = true;
      TF_RETURN_IF_ERROR(c->GetAttr("public_left", &left));
      ShapeHandle x, out;
      TF_RETURN_IF_ERROR(c->Merge(c->input(1), c->input(2), &x));
      if (left) {
        TF_RETURN_IF_ERROR(ProductShape(c, c->input(0), x, &out));
      } else {
        TF_RETURN_IF_ERROR(ProductShape(c, x, c->input(0), &out));
      }
      c->set_output(0, out);
      c->set_output(1, out);
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Both shares of one party times a public matrix p in one call:
public_left: z0 = p.x0, z1 = p.x1; otherwise z0 = x0.p, z1 = x1.p (transpose flags apply to the
left and right operand). On matrix-vector shapes p is read once.
)doc");

namespace {

class RingMatmulOp : public OpKernel {
 public:
  explicit RingMatmulOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("transpose_a", &ta_));
    OP_REQUIRES_OK(c, c->GetAttr("transpose_b", &tb_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& a = ctx->input(0);
    const Tensor& b = ctx->input(1);
    tf_glue::RunKernel(ctx, [&] {
      const MatmulPlan plan = PlanMatmul(Dims(a.shape()), Dims(b.shape()), ta_, tb_, "a", "b");
      Tensor* out = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ToShape(plan.out_shape), &out));
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const cuda::MatmulDims d = cuda::PlanMatmul(Dims(a.shape()), Dims(b.shape()), ta_, tb_, "a", "b");
        cuda::RingMatmul(tf_glue::Words(a), tf_glue::Words(b), tf_glue::Words(out), d.M, d.N, d.K, ta_,
                         tb_, d.batch, false, cuda::GemmAlgo::kAuto, stream, scratch);
      });
      RingMatmul(plan, I(a), I(b), out->flat<std::int64_t>().data(), OpParallelFor(ctx));
    });
  }

 private:
  bool ta_ = false, tb_ = false;
};

using tf_glue::ReadKey;
using tf_glue::ReadNonce;

class RssMatmulOp : public OpKernel {
 public:
  explicit RssMatmulOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("transpose_a", &ta_));
    OP_REQUIRES_OK(c, c->GetAttr("transpose_b", &tb_));
  }
  void Compute(OpKernelContext* ctx) override {
    u32 key0[8], key1[8];
    i64 nonce0 = 0, nonce1 = 0;
    if (!ReadKey(ctx, 4, "key0", key0) || !ReadKey(ctx, 5, "key1", key1)) return;
    if (!ReadNonce(ctx, 6, "nonce0", &nonce0) || !ReadNonce(ctx, 7, "nonce1", &nonce1)) return;
    const Tensor& xi = ctx->input(0);
    const Tensor& xn = ctx->input(1);
    const Tensor& yi = ctx->input(2);
    const Tensor& yn = ctx->input(3);
    tf_glue::RunKernel(ctx, [&] {
      const MatmulPlan plan = PlanRssMatmul(Dims(xi.shape()), Dims(xn.shape()), Dims(yi.shape()),
                                            Dims(yn.shape()), ta_, tb_);
      Tensor* out = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ToShape(plan.out_shape), &out));
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const cuda::MatmulDims d =
            cuda::PlanMatmul(Dims(xi.shape()), Dims(yi.shape()), ta_, tb_, "x_i", "y_i");
        const tf_glue::Seed8 s0 = tf_glue::SeedOf(key0, nonce0), s1 = tf_glue::SeedOf(key1, nonce1);
        cuda::RssMatmul(tf_glue::Words(xi), tf_glue::Words(xn), tf_glue::Words(yi), tf_glue::Words(yn),
                        tf_glue::Words(out), d.M, d.N, d.K, ta_, tb_, d.batch, yi.NumElements(), s0.w,
                        s1.w, cuda::GemmAlgo::kAuto, stream, scratch);
      });
      RssMatmul(plan, I(xi), I(xn), I(yi), I(yn), key0, nonce0, key1, nonce1,
                out->flat<std::int64_t>().data(), OpParallelFor(ctx));
    });
  }

 private:
  bool ta_ = false, tb_ = false;
};

class PublicPrivateMatmulOp : public OpKernel {
 public:
  explicit PublicPrivateMatmulOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("transpose_a", &ta_));
    OP_REQUIRES_OK(c, c->GetAttr("transpose_b", &tb_));
    OP_REQUIRES_OK(c, c->GetAttr("public_left", &left_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& p = ctx->input(0);
    const Tensor& x0 = ctx->input(1);
    const Tensor& x1 = ctx->input(2);
    OP_REQUIRES(ctx, x0.shape() == x1.shape(),
                InvalidArgument("x0 and x1 (the party's two shares) must have the same shape, got ",
                                x0.shape().DebugString(), " and ", x1.shape().DebugString()));
    tf_glue::RunKernel(ctx, [&] {
      const MatmulPlan plan =
          left_ ? PlanMatmul(Dims(p.shape()), Dims(x0.shape()), ta_, tb_, "p", "x0")
                : PlanMatmul(Dims(x0.shape()), Dims(p.shape()), ta_, tb_, "x0", "p");
      Tensor* z0 = nullptr;
      Tensor* z1 = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ToShape(plan.out_shape), &z0));
      OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ToShape(plan.out_shape), &z1));
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const cuda::MatmulDims d =
            left_ ? cuda::PlanMatmul(Dims(p.shape()), Dims(x0.shape()), ta_, tb_, "p", "x0")
                  : cuda::PlanMatmul(Dims(x0.shape()), Dims(p.shape()), ta_, tb_, "x0", "p");
        const Tensor* xs[2] = {&x0, &x1};
        Tensor* zs[2] = {z0, z1};
        for (int s = 0; s < 2; ++s) {
          const u64* lhs = tf_glue::Words(left_ ? p : *xs[s]);
          const u64* rhs = tf_glue::Words(left_ ? *xs[s] : p);
          cuda::RingMatmul(lhs, rhs, tf_glue::Words(zs[s]), d.M, d.N, d.K, ta_, tb_, d.batch, false,
                           cuda::GemmAlgo::kAuto, stream, scratch);
        }
      });
      PublicPrivateMatmul(plan, I(p), I(x0), I(x1), left_, z0->flat<std::int64_t>().data(),
                          z1->flat<std::int64_t>().data(), OpParallelFor(ctx));
    });
  }

 private:
  bool ta_ = false, tb_ = false, left_ = true;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("TfeAccelRingMatmul").Device(DEVICE_CPU), RingMatmulOp);
REGISTER_KERNEL_BUILDER(Name("TfeAccelRssMatmul").Device(DEVICE_CPU), RssMatmulOp);
REGISTER_KERNEL_BUILDER(Name("TfeAccelPublicPrivateMatmul").Device(DEVICE_CPU),
                        PublicPrivateMatmulOp);
TFE_ACCEL_REGISTER_GPU(Name("TfeAccelRingMatmul"), RingMatmulOp);
TFE_ACCEL_REGISTER_GPU(Name("TfeAccelRssMatmul")
                           .HostMemory("key0").HostMemory("key1")
                           .HostMemory("nonce0").HostMemory("nonce1"),
                       RssMatmulOp);
TFE_ACCEL_REGISTER_GPU(Name("TfeAccelPublicPrivateMatmul"), PublicPrivateMatmulOp);

}  // namespace tfe_accel
