// TF ops for the MPC protocol steps (cc/kernels/truncation.h, cc/kernels/sigmoid_steps.h): one op
// per protocol step and party. Thin glue: validate (InvalidArgument naming the argument),
// allocate, run the kernel on TF's intra-op pool. Every step is also registered for DEVICE_GPU in
// builds with TFE_ACCEL_TF_GPU (tf_gpu.h): there it launches cc/cuda's kernel of the same name,
// with the arguments mapped as cc/cuda/native_cuda.cc maps them (bit for bit the CPU result).
// Keys are int32[8] (TFE's pairwise keys), nonces int64 scalars (TFE's pairwise nonces); the
// kernels add them as TFE's `key + nonce` does.
#include <cstdint>
#include <string>
#include <vector>

#include "../kernels/chacha20.h"
#include "../kernels/sigmoid_steps.h"
#include "../kernels/truncation.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tf_glue.h"
#include "tf_gpu.h"

namespace tfe_accel {
namespace {

using namespace tf_glue::tf_names;  // NOLINT(build/namespaces): our curated list of TF names

Status SameAsFirst(InferenceContext* c) {
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, c->input(0));
  return ::tensorflow::OkStatus();
}

Status FromShapeTensor(InferenceContext* c) {
  ShapeHandle out;
  TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(0, &out));
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, out);
  return ::tensorflow::OkStatus();
}

// ---- validation helpers (each sets ctx status and returns false on error)

using tf_glue::ReadKey;
using tf_glue::ReadNonce;

bool SameShapes(OpKernelContext* ctx, const std::vector<std::pair<int, const char*>>& args) {
  const Tensor& first = ctx->input(args[0].first);
  for (size_t k = 1; k < args.size(); ++k) {
    const Tensor& t = ctx->input(args[k].first);
    if (t.shape() != first.shape()) {
      ctx->CtxFailure(__FILE__, __LINE__,
                      InvalidArgument(args[k].second, " must have the same shape as ",
                                      args[0].second, ", got ", t.shape().DebugString(), " vs ",
                                      first.shape().DebugString()));
      return false;
    }
  }
  return true;
}

bool GetShape(OpKernelContext* ctx, int index, TensorShape* shape) {
  const Tensor& t = ctx->input(index);
  if (!TensorShapeUtils::IsVector(t.shape())) {
    ctx->CtxFailure(__FILE__, __LINE__,
                    InvalidArgument("shape must be a 1-D tensor, got shape ", t.shape().DebugString()));
    return false;
  }
  std::vector<std::int64_t> dims;
  for (int i = 0; i < t.NumElements(); ++i) {
    const std::int64_t d = t.dtype() == ::tensorflow::DT_INT64 ? t.flat<std::int64_t>()(i)
                                                               : t.flat<std::int32_t>()(i);
    if (d < 0) {
      ctx->CtxFailure(__FILE__, __LINE__,
                      InvalidArgument("shape must not contain negative dimensions, got ", d,
                                      " at index ", i));
      return false;
    }
    dims.push_back(d);
  }
  Status s = TensorShapeUtils::MakeShape(dims.data(), static_cast<int>(dims.size()), shape);
  if (!s.ok()) {
    ctx->CtxFailure(__FILE__, __LINE__, s);
    return false;
  }
  return true;
}

bool Outputs(OpKernelContext* ctx, const TensorShape& shape, std::vector<Tensor*>* outs, int n) {
  outs->assign(n, nullptr);
  for (int i = 0; i < n; ++i) {
    Status s = ctx->allocate_output(i, shape, &(*outs)[i]);
    if (!s.ok()) {
      ctx->CtxFailure(__FILE__, __LINE__, s);
      return false;
    }
  }
  return true;
}

template <typename T = std::int64_t>
const u64* In(OpKernelContext* ctx, int i) {
  return reinterpret_cast<const u64*>(ctx->input(i).flat<std::int64_t>().data());
}
u64* Out(Tensor* t) { return reinterpret_cast<u64*>(t->flat<std::int64_t>().data()); }

// bool tensors as the bytes 0/1 the CUDA kernels take. Used by the GPU branches only.
inline const u8* BoolBytes(const Tensor& t) {
  return reinterpret_cast<const u8*>(t.flat<bool>().data());
}
inline u8* BoolBytes(Tensor* t) { return reinterpret_cast<u8*>(t->flat<bool>().data()); }

void GetAmount(OpKernelConstruction* c, int* amount) {
  OP_REQUIRES_OK(c, c->GetAttr("amount", amount));
  OP_REQUIRES(c, *amount >= 1 && *amount <= 62,
              InvalidArgument("amount must be in [1, 62], got ", *amount));
}

}  // namespace

// ------------------------------------------------------------------ truncation (a)

REGISTER_OP("MpcTruncateLocalP0")
    .Input("x0: int64")
    .Output("y0: int64")
    .Attr("amount: int")
    .SetShapeFn(SameAsFirst)
    .Doc("ABY3 non-interactive truncation (TFE _truncate_local_private), P0: y0 = x0 >> amount.");

REGISTER_OP("MpcTruncateLocalP1")
    .Input("x1: int64")
    .Input("x2: int64")
    .Input("key: int32")
    .Input("nonce: int64")
    .Output("y1: int64")
    .Output("r: int64")
    .Attr("amount: int")
    .SetShapeFn(SameAsFirst)
    .Doc("ABY3 non-interactive truncation, P1: r = U(keys[1][1] + nonces[1]), y1 = ((x1+x2)>>amount) - r.");

REGISTER_OP("MpcTruncateLocalP2")
    .Input("shape: Tshape")
    .Input("key: int32")
    .Input("nonce: int64")
    .Output("r: int64")
    .Attr("Tshape: {int32, int64} = DT_INT32")
    .SetShapeFn(FromShapeTensor)
    .Doc("ABY3 non-interactive truncation, P2: r = U(keys[2][0] + nonces[1]).");

class TruncateLocalP0Op : public OpKernel {
 public:
  explicit TruncateLocalP0Op(OpKernelConstruction* c) : OpKernel(c) { GetAmount(c, &amount_); }
  void Compute(OpKernelContext* ctx) override {
    std::vector<Tensor*> o;
    if (!Outputs(ctx, ctx->input(0).shape(), &o, 1)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, cuda::TruncateLocal(0, In(ctx, 0), nullptr, o[0]->NumElements(), amount_,
                                                    nullptr, Out(o[0]), nullptr, stream));
      TruncateLocalP0(In(ctx, 0), Out(o[0]), o[0]->NumElements(), amount_, tf_glue::TfParallelFor(ctx));
    });
  }
 private:
  int amount_;
};

class TruncateLocalP1Op : public OpKernel {
 public:
  explicit TruncateLocalP1Op(OpKernelConstruction* c) : OpKernel(c) { GetAmount(c, &amount_); }
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "x1"}, {1, "x2"}})) return;
    u32 key[8];
    i64 nonce;
    if (!ReadKey(ctx, 2, "key", key) || !ReadNonce(ctx, 3, "nonce", &nonce)) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, ctx->input(0).shape(), &o, 2)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const tf_glue::Seed8 seed = tf_glue::SeedOf(key, nonce);
        cuda::TruncateLocal(1, In(ctx, 0), In(ctx, 1), o[0]->NumElements(), amount_, seed.w,
                            Out(o[0]), Out(o[1]), stream);
      });
      TruncateLocalP1(In(ctx, 0), In(ctx, 1), key, nonce, Out(o[0]), Out(o[1]),
                      o[0]->NumElements(), amount_, tf_glue::TfParallelFor(ctx));
    });
  }
 private:
  int amount_;
};

class TruncateLocalP2Op : public OpKernel {
 public:
  explicit TruncateLocalP2Op(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    TensorShape shape;
    if (!GetShape(ctx, 0, &shape)) return;
    u32 key[8];
    i64 nonce;
    if (!ReadKey(ctx, 1, "key", key) || !ReadNonce(ctx, 2, "nonce", &nonce)) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, shape, &o, 1)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, {  // r = U(key + nonce) over [-2^63, 2^63 - 1), as TruncateLocalP2
        const tf_glue::Seed8 seed = tf_glue::SeedOf(key, nonce);
        cuda::SeededUniformInt64(seed.w, INT64_MIN, INT64_MAX, reinterpret_cast<i64*>(Out(o[0])),
                                 o[0]->NumElements(), stream);
      });
      TruncateLocalP2(key, nonce, Out(o[0]), o[0]->NumElements(), tf_glue::TfParallelFor(ctx));
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("MpcTruncateLocalP0").Device(DEVICE_CPU), TruncateLocalP0Op);
REGISTER_KERNEL_BUILDER(Name("MpcTruncateLocalP1").Device(DEVICE_CPU), TruncateLocalP1Op);
REGISTER_KERNEL_BUILDER(Name("MpcTruncateLocalP2").Device(DEVICE_CPU), TruncateLocalP2Op);

// ------------------------------------------------------------------ truncation (b)

REGISTER_OP("MpcTruncMsb0Dealer")
    .Input("shape: Tshape")
    .Input("key_20: int32")
    .Input("nonce_20: int64")
    .Input("key_21: int32")
    .Input("nonce_21: int64")
    .Input("r_seed: int32")
    .Output("r1: int64")
    .Output("s1: int64")
    .Output("rmsb1: int64")
    .Output("z20: int64")
    .Output("z21: int64")
    .Attr("amount: int")
    .Attr("unlift: int = 0")
    .Attr("Tshape: {int32, int64} = DT_INT32")
    .SetShapeFn(FromShapeTensor)
    .Doc(R"doc(
MSB-0 truncation (TFE _truncate_msb0_secureq8_private), dealer P2. key_20 = keys[2][1] with
nonce_20 = nonces[2] (shared with P0), key_21 = keys[2][0] with nonce_21 = nonces[1] (shared with
P1), r_seed a fresh secure_seed() (TFE's sample_uniform). Returns (r1, s1, rmsb1) for P1 and P2's
output shares (z20, z21) = (y2, y0 - unlift).
)doc");

REGISTER_OP("MpcTruncMsb0MaskP0")
    .Input("x0: int64")
    .Input("x1: int64")
    .Input("key: int32")
    .Input("nonce: int64")
    .Output("c0: int64")
    .Attr("lift: int = 0")
    .SetShapeFn(SameAsFirst)
    .Doc("MSB-0 truncation, P0 masking: c0 = x0 + x1 + lift + r0 (key = keys[0][0], nonce = nonces[2]).");

REGISTER_OP("MpcTruncMsb0MaskP1")
    .Input("x2: int64")
    .Input("r1: int64")
    .Output("c1: int64")
    .SetShapeFn(SameAsFirst)
    .Doc("MSB-0 truncation, P1 masking: c1 = x2 + r1.");

REGISTER_OP("MpcTruncMsb0UnmaskP0")
    .Input("c0: int64")
    .Input("c1: int64")
    .Input("key: int32")
    .Input("nonce: int64")
    .Output("y_tilde0: int64")
    .Output("z00: int64")
    .Attr("amount: int")
    .Attr("unlift: int = 0")
    .SetShapeFn(SameAsFirst)
    .Doc("MSB-0 truncation, P0 unmasking: (y_tilde0 (to P1), z00 = y0 - unlift).");

REGISTER_OP("MpcTruncMsb0UnmaskP1")
    .Input("c0: int64")
    .Input("c1: int64")
    .Input("s1: int64")
    .Input("rmsb1: int64")
    .Input("key: int32")
    .Input("nonce: int64")
    .Output("y_tilde1: int64")
    .Output("z11: int64")
    .Attr("amount: int")
    .SetShapeFn(SameAsFirst)
    .Doc("MSB-0 truncation, P1 unmasking: (y_tilde1 (to P0), z11 = y2) (key = keys[1][1], nonce = nonces[1]).");

REGISTER_OP("MpcTruncMsb0Combine")
    .Input("y_tilde0: int64")
    .Input("y_tilde1: int64")
    .Output("z: int64")
    .SetShapeFn(SameAsFirst)
    .Doc("MSB-0 truncation, P0 and P1: the shared middle share y_tilde0 + y_tilde1.");

class TruncMsb0DealerOp : public OpKernel {
 public:
  explicit TruncMsb0DealerOp(OpKernelConstruction* c) : OpKernel(c) {
    GetAmount(c, &amount_);
    OP_REQUIRES_OK(c, c->GetAttr("unlift", &unlift_));
  }
  void Compute(OpKernelContext* ctx) override {
    TensorShape shape;
    if (!GetShape(ctx, 0, &shape)) return;
    u32 k20[8], k21[8], rs[8];
    i64 n20, n21;
    if (!ReadKey(ctx, 1, "key_20", k20) || !ReadNonce(ctx, 2, "nonce_20", &n20) ||
        !ReadKey(ctx, 3, "key_21", k21) || !ReadNonce(ctx, 4, "nonce_21", &n21) ||
        !ReadKey(ctx, 5, "r_seed", rs))
      return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, shape, &o, 5)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const tf_glue::Seed8 s20 = tf_glue::SeedOf(k20, n20), s21 = tf_glue::SeedOf(k21, n21);
        cuda::TruncMsb0Dealer(s20.w, s21.w, rs, shape.num_elements(), amount_, static_cast<u64>(unlift_),
                              Out(o[0]), Out(o[1]), Out(o[2]), Out(o[3]), Out(o[4]), stream);
      });
      TruncMsb0Dealer(k20, n20, k21, n21, rs, shape.num_elements(), amount_,
                      static_cast<u64>(unlift_), Out(o[0]), Out(o[1]), Out(o[2]), Out(o[3]),
                      Out(o[4]), tf_glue::TfParallelFor(ctx));
    });
  }
 private:
  int amount_;
  std::int64_t unlift_;
};

class TruncMsb0MaskP0Op : public OpKernel {
 public:
  explicit TruncMsb0MaskP0Op(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("lift", &lift_));
  }
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "x0"}, {1, "x1"}})) return;
    u32 key[8];
    i64 nonce;
    if (!ReadKey(ctx, 2, "key", key) || !ReadNonce(ctx, 3, "nonce", &nonce)) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, ctx->input(0).shape(), &o, 1)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const tf_glue::Seed8 seed = tf_glue::SeedOf(key, nonce);
        cuda::TruncMsb0MaskP0(In(ctx, 0), In(ctx, 1), seed.w, static_cast<u64>(lift_), Out(o[0]),
                              o[0]->NumElements(), stream);
      });
      TruncMsb0MaskP0(In(ctx, 0), In(ctx, 1), key, nonce, static_cast<u64>(lift_), Out(o[0]),
                      o[0]->NumElements(), tf_glue::TfParallelFor(ctx));
    });
  }
 private:
  std::int64_t lift_;
};

class TruncMsb0MaskP1Op : public OpKernel {
 public:
  explicit TruncMsb0MaskP1Op(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "x2"}, {1, "r1"}})) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, ctx->input(0).shape(), &o, 1)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, cuda::RingAdd(In(ctx, 0), In(ctx, 1), Out(o[0]), o[0]->NumElements(), stream));
      TruncMsb0MaskP1(In(ctx, 0), In(ctx, 1), Out(o[0]), o[0]->NumElements(),
                      tf_glue::TfParallelFor(ctx));
    });
  }
};

class TruncMsb0UnmaskP0Op : public OpKernel {
 public:
  explicit TruncMsb0UnmaskP0Op(OpKernelConstruction* c) : OpKernel(c) {
    GetAmount(c, &amount_);
    OP_REQUIRES_OK(c, c->GetAttr("unlift", &unlift_));
  }
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "c0"}, {1, "c1"}})) return;
    u32 key[8];
    i64 nonce;
    if (!ReadKey(ctx, 2, "key", key) || !ReadNonce(ctx, 3, "nonce", &nonce)) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, ctx->input(0).shape(), &o, 2)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const tf_glue::Seed8 seed = tf_glue::SeedOf(key, nonce);
        cuda::TruncMsb0UnmaskP0(In(ctx, 0), In(ctx, 1), seed.w, amount_, static_cast<u64>(unlift_),
                                Out(o[0]), Out(o[1]), o[0]->NumElements(), stream);
      });
      TruncMsb0UnmaskP0(In(ctx, 0), In(ctx, 1), key, nonce, amount_, static_cast<u64>(unlift_),
                        Out(o[0]), Out(o[1]), o[0]->NumElements(), tf_glue::TfParallelFor(ctx));
    });
  }
 private:
  int amount_;
  std::int64_t unlift_;
};

class TruncMsb0UnmaskP1Op : public OpKernel {
 public:
  explicit TruncMsb0UnmaskP1Op(OpKernelConstruction* c) : OpKernel(c) { GetAmount(c, &amount_); }
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "c0"}, {1, "c1"}, {2, "s1"}, {3, "rmsb1"}})) return;
    u32 key[8];
    i64 nonce;
    if (!ReadKey(ctx, 4, "key", key) || !ReadNonce(ctx, 5, "nonce", &nonce)) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, ctx->input(0).shape(), &o, 2)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const tf_glue::Seed8 seed = tf_glue::SeedOf(key, nonce);
        cuda::TruncMsb0UnmaskP1(In(ctx, 0), In(ctx, 1), In(ctx, 2), In(ctx, 3), seed.w, amount_,
                                Out(o[0]), Out(o[1]), o[0]->NumElements(), stream);
      });
      TruncMsb0UnmaskP1(In(ctx, 0), In(ctx, 1), In(ctx, 2), In(ctx, 3), key, nonce, amount_,
                        Out(o[0]), Out(o[1]), o[0]->NumElements(), tf_glue::TfParallelFor(ctx));
    });
  }
 private:
  int amount_;
};

class TruncMsb0CombineOp : public OpKernel {
 public:
  explicit TruncMsb0CombineOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "y_tilde0"}, {1, "y_tilde1"}})) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, ctx->input(0).shape(), &o, 1)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, cuda::RingAdd(In(ctx, 0), In(ctx, 1), Out(o[0]), o[0]->NumElements(), stream));
      TruncMsb0Combine(In(ctx, 0), In(ctx, 1), Out(o[0]), o[0]->NumElements(),
                       tf_glue::TfParallelFor(ctx));
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("MpcTruncMsb0Dealer").Device(DEVICE_CPU), TruncMsb0DealerOp);
REGISTER_KERNEL_BUILDER(Name("MpcTruncMsb0MaskP0").Device(DEVICE_CPU), TruncMsb0MaskP0Op);
REGISTER_KERNEL_BUILDER(Name("MpcTruncMsb0MaskP1").Device(DEVICE_CPU), TruncMsb0MaskP1Op);
REGISTER_KERNEL_BUILDER(Name("MpcTruncMsb0UnmaskP0").Device(DEVICE_CPU), TruncMsb0UnmaskP0Op);
REGISTER_KERNEL_BUILDER(Name("MpcTruncMsb0UnmaskP1").Device(DEVICE_CPU), TruncMsb0UnmaskP1Op);
REGISTER_KERNEL_BUILDER(Name("MpcTruncMsb0Combine").Device(DEVICE_CPU), TruncMsb0CombineOp);

// GPU registrations of both truncations (keys, nonces and shapes are read on the host).
TFE_ACCEL_REGISTER_GPU(Name("MpcTruncateLocalP0"), TruncateLocalP0Op);
TFE_ACCEL_REGISTER_GPU(Name("MpcTruncateLocalP1").HostMemory("key").HostMemory("nonce"),
                       TruncateLocalP1Op);
TFE_ACCEL_REGISTER_GPU(Name("MpcTruncateLocalP2").HostMemory("shape").HostMemory("key")
                           .HostMemory("nonce"),
                       TruncateLocalP2Op);
TFE_ACCEL_REGISTER_GPU(Name("MpcTruncMsb0Dealer").HostMemory("shape").HostMemory("key_20")
                           .HostMemory("nonce_20").HostMemory("key_21").HostMemory("nonce_21")
                           .HostMemory("r_seed"),
                       TruncMsb0DealerOp);
TFE_ACCEL_REGISTER_GPU(Name("MpcTruncMsb0MaskP0").HostMemory("key").HostMemory("nonce"),
                       TruncMsb0MaskP0Op);
TFE_ACCEL_REGISTER_GPU(Name("MpcTruncMsb0MaskP1"), TruncMsb0MaskP1Op);
TFE_ACCEL_REGISTER_GPU(Name("MpcTruncMsb0UnmaskP0").HostMemory("key").HostMemory("nonce"),
                       TruncMsb0UnmaskP0Op);
TFE_ACCEL_REGISTER_GPU(Name("MpcTruncMsb0UnmaskP1").HostMemory("key").HostMemory("nonce"),
                       TruncMsb0UnmaskP1Op);
TFE_ACCEL_REGISTER_GPU(Name("MpcTruncMsb0Combine"), TruncMsb0CombineOp);

// ------------------------------------------------------------------ bit extraction / carry

REGISTER_OP("MpcBitExtractSetup")
    .Input("x_a: int64")
    .Input("x_b: int64")
    .Input("key_a: int32")
    .Input("nonce_a: int64")
    .Input("key_b: int32")
    .Input("nonce_b: int64")
    .Output("out: int64")
    .Attr("party: int")
    .SetShapeFn(SameAsFirst)
    .Doc(R"doc(
Bit-extraction (a2b) set-up of TFE's msb / _bit_extract_private, party `party`: P0 returns
(x0 + x1) ^ alpha0 (sent to P2), P1 alpha1 (sent to P0), P2 alpha2 (sent to P1); alpha_i is the
party's int64 boolean zero share (key_a = keys[i][0], nonce_a = nonces[(i+2)%3], key_b = keys[i][1],
nonce_b = nonces[i]).
)doc");

REGISTER_OP("MpcCarrySetupAnd")
    .Input("op1_a: int64")
    .Input("op1_b: int64")
    .Input("op2_a: int64")
    .Input("op2_b: int64")
    .Input("key_a: int32")
    .Input("nonce_a: int64")
    .Input("key_b: int32")
    .Input("nonce_b: int64")
    .Output("z: int64")
    .Output("p_a: int64")
    .Output("p_b: int64")
    .Output("top_a: int8")
    .Output("top_b: int8")
    .SetShapeFn(SameAsFirst)
    .Doc("Carry set-up: shift by 1, AND term of G = op1 & op2 (to P_{i-1}), P shares, bit-63 shares.");

REGISTER_OP("MpcKoggeStoneRound")
    .Input("g_a: Tin")
    .Input("g_b: Tin")
    .Input("p_a: Tin")
    .Input("p_b: Tin")
    .Input("key_a: int32")
    .Input("nonce_a: int64")
    .Input("key_b: int32")
    .Input("nonce_b: int64")
    .Output("zg: Tout")
    .Output("zp: Tout")
    .Output("gs1_a: Tout")
    .Output("gs1_b: Tout")
    .Attr("Tin: {int8, int16, int32, int64}")
    .Attr("Tout: {int8, int16, int32}")
    .SetShapeFn(SameAsFirst)
    .Doc(R"doc(
One Kogge-Stone carry round of TFE's _carry_computation, local part of one party: bit split and
gather of G and P into the half-width dtype Tout, the local terms zg of Gs[0] & Ps[1] (zero share
at nonces N) and zp of Ps[0] & Ps[1] (nonces N+1), both sent to P_{i-1}, and the party's Gs[1]
shares for the update.
)doc");

REGISTER_OP("MpcKoggeStoneUpdate")
    .Input("gs1_a: T")
    .Input("gs1_b: T")
    .Input("zg_own: T")
    .Input("zg_recv: T")
    .Output("g_a: T")
    .Output("g_b: T")
    .Attr("T: {int8, int16, int32, int64}")
    .SetShapeFn(SameAsFirst)
    .Doc("Kogge-Stone G update after a round's messages: (gs1_a ^ zg_own, gs1_b ^ zg_recv).");

class BitExtractSetupOp : public OpKernel {
 public:
  explicit BitExtractSetupOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("party", &party_));
    OP_REQUIRES(c, party_ >= 0 && party_ <= 2,
                InvalidArgument("party must be 0, 1 or 2, got ", party_));
  }
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "x_a"}, {1, "x_b"}})) return;
    u32 ka[8], kb[8];
    i64 na, nb;
    if (!tf_glue::ReadZeroShareKeys(ctx, 2, ka, &na, kb, &nb)) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, ctx->input(0).shape(), &o, 1)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const tf_glue::Seed8 sa = tf_glue::SeedOf(ka, na), sb = tf_glue::SeedOf(kb, nb);
        cuda::BitExtractSetup(party_, In(ctx, 0), In(ctx, 1), sa.w, sb.w, Out(o[0]),
                              o[0]->NumElements(), stream);
      });
      BitExtractSetup(party_, In(ctx, 0), In(ctx, 1), ka, na, kb, nb, Out(o[0]),
                      o[0]->NumElements(), tf_glue::TfParallelFor(ctx));
    });
  }
 private:
  int party_;
};

class CarrySetupAndOp : public OpKernel {
 public:
  explicit CarrySetupAndOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "op1_a"}, {1, "op1_b"}, {2, "op2_a"}, {3, "op2_b"}})) return;
    u32 ka[8], kb[8];
    i64 na, nb;
    if (!tf_glue::ReadZeroShareKeys(ctx, 4, ka, &na, kb, &nb)) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, ctx->input(0).shape(), &o, 5)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const tf_glue::Seed8 sa = tf_glue::SeedOf(ka, na), sb = tf_glue::SeedOf(kb, nb);
        cuda::CarrySetupAnd(In(ctx, 0), In(ctx, 1), In(ctx, 2), In(ctx, 3), sa.w, sb.w, Out(o[0]),
                            Out(o[1]), Out(o[2]), o[3]->flat<std::int8_t>().data(),
                            o[4]->flat<std::int8_t>().data(), o[0]->NumElements(), stream);
      });
      CarrySetupAnd(In(ctx, 0), In(ctx, 1), In(ctx, 2), In(ctx, 3), ka, na, kb, nb, Out(o[0]),
                    Out(o[1]), Out(o[2]), o[3]->flat<std::int8_t>().data(),
                    o[4]->flat<std::int8_t>().data(), o[0]->NumElements(),
                    tf_glue::TfParallelFor(ctx));
    });
  }
};

template <typename InT, typename OutT>
class KoggeStoneRoundOp : public OpKernel {
 public:
  explicit KoggeStoneRoundOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "g_a"}, {1, "g_b"}, {2, "p_a"}, {3, "p_b"}})) return;
    u32 ka[8], kb[8];
    i64 na, nb;
    if (!tf_glue::ReadZeroShareKeys(ctx, 4, ka, &na, kb, &nb)) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, ctx->input(0).shape(), &o, 4)) return;
    tf_glue::RunKernel(ctx, [&] {
      // The P AND gate draws at nonce + 1 (wrapping, as the CPU kernel's NonceAdd).
      TFE_ACCEL_GPU_BRANCH(ctx, {
        const tf_glue::Seed8 sa = tf_glue::SeedOf(ka, na), sb = tf_glue::SeedOf(kb, nb);
        const tf_glue::Seed8 sa1 = tf_glue::SeedOf(ka, local::NonceAdd(na, 1));
        const tf_glue::Seed8 sb1 = tf_glue::SeedOf(kb, local::NonceAdd(nb, 1));
        cuda::KoggeStoneRound(static_cast<int>(sizeof(InT)), ctx->input(0).flat<InT>().data(),
                              ctx->input(1).flat<InT>().data(), ctx->input(2).flat<InT>().data(),
                              ctx->input(3).flat<InT>().data(), sa.w, sb.w, sa1.w, sb1.w,
                              o[0]->flat<OutT>().data(), o[1]->flat<OutT>().data(),
                              o[2]->flat<OutT>().data(), o[3]->flat<OutT>().data(),
                              o[0]->NumElements(), stream);
      });
      KoggeStoneRound<InT, OutT>(
          ctx->input(0).flat<InT>().data(), ctx->input(1).flat<InT>().data(),
          ctx->input(2).flat<InT>().data(), ctx->input(3).flat<InT>().data(), ka, na, kb, nb,
          o[0]->flat<OutT>().data(), o[1]->flat<OutT>().data(), o[2]->flat<OutT>().data(),
          o[3]->flat<OutT>().data(), o[0]->NumElements(), tf_glue::TfParallelFor(ctx));
    });
  }
};

// A Tin/Tout pair other than the registered halvings finds no kernel (NotFound naming Tout).
// The GPU kernels have the same type constraints: cuda::KoggeStoneRound derives the same halving
// from sizeof(In) (int8 stays int8). `Alias` names the class (TFE_ACCEL_REGISTER_GPU takes no
// template argument list with a comma).
#define TFE_ACCEL_KS_REGISTER(In, OutT, Alias)                                            \
  using Alias = KoggeStoneRoundOp<In, OutT>;                                              \
  REGISTER_KERNEL_BUILDER(Name("MpcKoggeStoneRound")                                      \
                              .Device(DEVICE_CPU)                                         \
                              .TypeConstraint<In>("Tin")                                  \
                              .TypeConstraint<OutT>("Tout"),                              \
                          Alias);                                                         \
  TFE_ACCEL_REGISTER_GPU(Name("MpcKoggeStoneRound")                                       \
                             .TypeConstraint<In>("Tin")                                   \
                             .TypeConstraint<OutT>("Tout")                                \
                             .HostMemory("key_a")                                         \
                             .HostMemory("nonce_a")                                       \
                             .HostMemory("key_b")                                         \
                             .HostMemory("nonce_b"),                                      \
                         Alias);
TFE_ACCEL_KS_REGISTER(std::int64_t, std::int32_t, KoggeStoneRound64Op)
TFE_ACCEL_KS_REGISTER(std::int32_t, std::int16_t, KoggeStoneRound32Op)
TFE_ACCEL_KS_REGISTER(std::int16_t, std::int8_t, KoggeStoneRound16Op)
TFE_ACCEL_KS_REGISTER(std::int8_t, std::int8_t, KoggeStoneRound8Op)
#undef TFE_ACCEL_KS_REGISTER

template <typename T>
class KoggeStoneUpdateOp : public OpKernel {
 public:
  explicit KoggeStoneUpdateOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "gs1_a"}, {1, "gs1_b"}, {2, "zg_own"}, {3, "zg_recv"}})) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, ctx->input(0).shape(), &o, 2)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, cuda::KoggeStoneUpdate(
                                    static_cast<int>(sizeof(T)), ctx->input(0).flat<T>().data(),
                                    ctx->input(1).flat<T>().data(), ctx->input(2).flat<T>().data(),
                                    ctx->input(3).flat<T>().data(), o[0]->flat<T>().data(),
                                    o[1]->flat<T>().data(), o[0]->NumElements(), stream));
      KoggeStoneUpdate<T>(ctx->input(0).flat<T>().data(), ctx->input(1).flat<T>().data(),
                          ctx->input(2).flat<T>().data(), ctx->input(3).flat<T>().data(),
                          o[0]->flat<T>().data(), o[1]->flat<T>().data(), o[0]->NumElements(),
                          tf_glue::TfParallelFor(ctx));
    });
  }
};

#define TFE_ACCEL_KSU_REGISTER(T)                                                          \
  REGISTER_KERNEL_BUILDER(Name("MpcKoggeStoneUpdate").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          KoggeStoneUpdateOp<T>);                                          \
  TFE_ACCEL_REGISTER_GPU(Name("MpcKoggeStoneUpdate").TypeConstraint<T>("T"), KoggeStoneUpdateOp<T>);
TFE_ACCEL_KSU_REGISTER(std::int64_t)
TFE_ACCEL_KSU_REGISTER(std::int32_t)
TFE_ACCEL_KSU_REGISTER(std::int16_t)
TFE_ACCEL_KSU_REGISTER(std::int8_t)
#undef TFE_ACCEL_KSU_REGISTER

REGISTER_KERNEL_BUILDER(Name("MpcBitExtractSetup").Device(DEVICE_CPU), BitExtractSetupOp);
REGISTER_KERNEL_BUILDER(Name("MpcCarrySetupAnd").Device(DEVICE_CPU), CarrySetupAndOp);

TFE_ACCEL_REGISTER_GPU(Name("MpcBitExtractSetup").HostMemory("key_a").HostMemory("nonce_a")
                           .HostMemory("key_b").HostMemory("nonce_b"),
                       BitExtractSetupOp);
TFE_ACCEL_REGISTER_GPU(Name("MpcCarrySetupAnd").HostMemory("key_a").HostMemory("nonce_a")
                           .HostMemory("key_b").HostMemory("nonce_b"),
                       CarrySetupAndOp);


// ------------------------------------------------------------------ sigmoid piece evaluation

namespace {

TensorShape Prepend(std::int64_t k, const TensorShape& s) {
  TensorShape out({k});
  out.AppendShape(s);
  return out;
}

bool LeadingSplit(OpKernelContext* ctx, int index, const char* name, i64* K, i64* n) {
  const Tensor& t = ctx->input(index);
  if (t.dims() < 1) {
    ctx->CtxFailure(__FILE__, __LINE__,
                    InvalidArgument(name, " must have rank >= 1 ([pieces] + shape), got ",
                                    t.shape().DebugString()));
    return false;
  }
  *K = t.dim_size(0);
  *n = *K == 0 ? 0 : t.NumElements() / *K;
  return true;
}

bool VectorOf(OpKernelContext* ctx, int index, const char* name, i64 want) {
  const Tensor& t = ctx->input(index);
  if (t.dims() != 1 || (want >= 0 && t.dim_size(0) != want)) {
    ctx->CtxFailure(__FILE__, __LINE__,
                    InvalidArgument(name, " must be a vector of ",
                                    want >= 0 ? std::to_string(want) : std::string("K"),
                                    " values, got shape ", t.shape().DebugString()));
    return false;
  }
  return true;
}

bool ShapeIs(OpKernelContext* ctx, int index, const char* name, const TensorShape& want) {
  const Tensor& t = ctx->input(index);
  if (t.shape() != want) {
    ctx->CtxFailure(__FILE__, __LINE__,
                    InvalidArgument(name, " must have shape ", want.DebugString(), ", got ",
                                    t.shape().DebugString()));
    return false;
  }
  return true;
}

Status ReplaceLeadingUnknown(InferenceContext* c) {
  ShapeHandle rest, out;
  TF_RETURN_IF_ERROR(c->Subshape(c->input(0), 1, &rest));
  TF_RETURN_IF_ERROR(c->Concatenate(c->Vector(InferenceContext::kUnknownDim), rest, &out));
  c->set_output(0, out);
  return ::tensorflow::OkStatus();
}

Status DropLeading(InferenceContext* c) {
  ShapeHandle rest;
  TF_RETURN_IF_ERROR(c->Subshape(c->input(0), 1, &rest));
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, rest);
  return ::tensorflow::OkStatus();
}

// mul_ab step 1: outputs shaped like f, OT pairs [2] + f.shape.
template <int kParty>
Status MulAbStep1Shape(InferenceContext* c) {
  const bool is_pair[3][5] = {{false, true, true, false, false},
                              {false, false, false, true, true},
                              {false, false, false, false, false}};
  ShapeHandle pair;
  TF_RETURN_IF_ERROR(c->Concatenate(c->Vector(2), c->input(0), &pair));
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, is_pair[kParty][i] ? pair : c->input(0));
  return ::tensorflow::OkStatus();
}

Status PrependUnknown(InferenceContext* c, int from, int nout) {
  ShapeHandle out;
  TF_RETURN_IF_ERROR(c->Concatenate(c->Vector(InferenceContext::kUnknownDim), c->input(from), &out));
  for (int i = 0; i < nout; ++i) c->set_output(i, out);
  return ::tensorflow::OkStatus();
}

}  // namespace

REGISTER_OP("MpcPivotDiff")
    .Input("x_a: int64")
    .Input("x_b: int64")
    .Input("pivots: int64")
    .Output("d_a: int64")
    .Output("d_b: int64")
    .Attr("party: int")
    .SetShapeFn([](InferenceContext* c) { return PrependUnknown(c, 0, 2); })
    .Doc("Sigmoid comparison set-up: the party's shares of pivots - tile(x) ([C] + shape).");

REGISTER_OP("MpcPieceSelectAnd")
    .Input("msb_a: bool")
    .Input("msb_b: bool")
    .Input("key_a: int32")
    .Input("nonce_a: int64")
    .Input("key_b: int32")
    .Input("nonce_b: int64")
    .Output("z: bool")
    .Attr("party: int")
    .SetShapeFn(ReplaceLeadingUnknown)
    .Doc("Piece selection: local AND term of b = [~msb, 1] & [1, ~msb ^ 1] ([C+1] + shape).");

REGISTER_OP("MpcTruncMsb0MaskScaledP0")
    .Input("x0: int64")
    .Input("x1: int64")
    .Input("k: int64")
    .Input("key: int32")
    .Input("nonce: int64")
    .Output("c0: int64")
    .Attr("lift: int = 0")
    .SetShapeFn([](InferenceContext* c) { return PrependUnknown(c, 0, 1); })
    .Doc("MSB-0 masking after a public multiplication, P0: c0 = (x0 + x1) * k_j + lift + r0.");

REGISTER_OP("MpcTruncMsb0MaskScaledP1")
    .Input("x2: int64")
    .Input("k: int64")
    .Input("r1: int64")
    .Output("c1: int64")
    .SetShapeFn([](InferenceContext* c) { c->set_output(0, c->input(2)); return ::tensorflow::OkStatus(); })
    .Doc("MSB-0 masking after a public multiplication, P1: c1 = x2 * k_j + r1.");

#define TFE_ACCEL_MULAB1_INPUTS                                                              \
  .Input("f_a: int64").Input("f_b: int64").Input("c0: int64").Input("b_a: bool")             \
      .Input("b_b: bool").Input("key_a: int32").Input("nonce_a: int64").Input("key_b: int32") \
      .Input("nonce_b: int64")

REGISTER_OP("MpcMulAbStep1P0")
    TFE_ACCEL_MULAB1_INPUTS
    .Output("s_r0: int64")
    .Output("m_to_p1: int64")
    .Output("m_to_p2: int64")
    .Output("s_r1: int64")
    .Output("wc_to_p2: int64")
    .SetShapeFn(MulAbStep1Shape<0>)
    .Doc("mul_ab(f, b) step 1, P0: sender of routine 0, OT helper of routine 1.");
REGISTER_OP("MpcMulAbStep1P1")
    TFE_ACCEL_MULAB1_INPUTS
    .Output("s_r0: int64")
    .Output("wc_to_p2: int64")
    .Output("s_r1: int64")
    .Output("m_to_p2: int64")
    .Output("m_to_p0: int64")
    .SetShapeFn(MulAbStep1Shape<1>)
    .Doc("mul_ab(f, b) step 1, P1: OT helper of routine 0, sender of routine 1.");
REGISTER_OP("MpcMulAbStep1P2")
    TFE_ACCEL_MULAB1_INPUTS
    .Output("s_r0: int64")
    .Output("wc_to_p1: int64")
    .Output("s_r1: int64")
    .Output("wc_to_p0: int64")
    .SetShapeFn(MulAbStep1Shape<2>)
    .Doc("mul_ab(f, b) step 1, P2: OT helper of both routines.");
#undef TFE_ACCEL_MULAB1_INPUTS

REGISTER_OP("MpcMulAbStep2P0")
    .Input("b_a: bool").Input("b_b: bool")
    .Input("s_r0_from_p1: int64").Input("s_r0_from_p2: int64").Input("s_r1: int64")
    .Input("m_from_p1: int64").Input("wc_from_p2: int64")
    .Output("y_a: int64").Output("y_b: int64")
    .SetShapeFn(DropLeading)
    .Doc("mul_ab(f, b) step 2 and sum over pieces, P0: its two output shares.");
REGISTER_OP("MpcMulAbStep2P1")
    .Input("b_a: bool").Input("b_b: bool")
    .Input("s_r0: int64").Input("s_r1_from_p0: int64").Input("s_r1_from_p2: int64")
    .Input("m_from_p0: int64").Input("wc_from_p2: int64")
    .Output("y_a: int64").Output("y_b: int64")
    .SetShapeFn(DropLeading)
    .Doc("mul_ab(f, b) step 2 and sum over pieces, P1: its two output shares.");
REGISTER_OP("MpcMulAbStep2P2")
    .Input("b_a: bool").Input("b_b: bool")
    .Input("s_r0: int64").Input("s_r1: int64")
    .Input("m_from_p0: int64").Input("wc_from_p1: int64")
    .Input("m_from_p1: int64").Input("wc_from_p0: int64")
    .Output("y_a: int64").Output("y_b: int64")
    .SetShapeFn(DropLeading)
    .Doc("mul_ab(f, b) step 2 and sum over pieces, P2: its two output shares.");

class PivotDiffOp : public OpKernel {
 public:
  explicit PivotDiffOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("party", &party_));
    OP_REQUIRES(c, party_ >= 0 && party_ <= 2, InvalidArgument("party must be 0, 1 or 2, got ", party_));
  }
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "x_a"}, {1, "x_b"}}) || !VectorOf(ctx, 2, "pivots", -1)) return;
    const i64 C = ctx->input(2).dim_size(0);
    OP_REQUIRES(ctx, C >= 1, InvalidArgument("pivots must not be empty"));
    std::vector<Tensor*> o;
    if (!Outputs(ctx, Prepend(C, ctx->input(0).shape()), &o, 2)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, cuda::PivotDiff(party_, In(ctx, 0), In(ctx, 1), In(ctx, 2), C,
                                                ctx->input(0).NumElements(), Out(o[0]), Out(o[1]),
                                                stream));
      PivotDiff(party_, In(ctx, 0), In(ctx, 1), In(ctx, 2), C, ctx->input(0).NumElements(),
                Out(o[0]), Out(o[1]), tf_glue::TfParallelFor(ctx));
    });
  }
 private:
  int party_;
};

class PieceSelectAndOp : public OpKernel {
 public:
  explicit PieceSelectAndOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("party", &party_));
    OP_REQUIRES(c, party_ >= 0 && party_ <= 2, InvalidArgument("party must be 0, 1 or 2, got ", party_));
  }
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "msb_a"}, {1, "msb_b"}})) return;
    i64 C, n;
    if (!LeadingSplit(ctx, 0, "msb_a", &C, &n)) return;
    OP_REQUIRES(ctx, C >= 1, InvalidArgument("msb_a must have at least one pivot row"));
    u32 ka[8], kb[8];
    i64 na, nb;
    if (!tf_glue::ReadZeroShareKeys(ctx, 2, ka, &na, kb, &nb)) return;
    TensorShape shape = ctx->input(0).shape();
    shape.set_dim(0, C + 1);
    std::vector<Tensor*> o;
    if (!Outputs(ctx, shape, &o, 1)) return;
    tf_glue::RunKernel(ctx, [&] {
      // keys and nonces as the CPU kernel takes them (the CUDA kernel adds the nonces itself)
      TFE_ACCEL_GPU_BRANCH(ctx, cuda::PieceSelectAnd(party_, BoolBytes(ctx->input(0)),
                                                     BoolBytes(ctx->input(1)), C, n, ka, na, kb,
                                                     nb, BoolBytes(o[0]), stream));
      PieceSelectAnd(party_, ctx->input(0).flat<bool>().data(), ctx->input(1).flat<bool>().data(),
                     C, n, ka, na, kb, nb, o[0]->flat<bool>().data(), tf_glue::TfParallelFor(ctx));
    });
  }
 private:
  int party_;
};

class MaskScaledP0Op : public OpKernel {
 public:
  explicit MaskScaledP0Op(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("lift", &lift_));
  }
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "x0"}, {1, "x1"}}) || !VectorOf(ctx, 2, "k", -1)) return;
    u32 key[8];
    i64 nonce;
    if (!ReadKey(ctx, 3, "key", key) || !ReadNonce(ctx, 4, "nonce", &nonce)) return;
    const i64 K = ctx->input(2).dim_size(0);
    std::vector<Tensor*> o;
    if (!Outputs(ctx, Prepend(K, ctx->input(0).shape()), &o, 1)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, cuda::TruncMsb0MaskScaledP0(In(ctx, 0), In(ctx, 1), In(ctx, 2), K,
                                                            ctx->input(0).NumElements(), key, nonce,
                                                            static_cast<u64>(lift_), Out(o[0]),
                                                            stream));
      TruncMsb0MaskScaledP0(In(ctx, 0), In(ctx, 1), In(ctx, 2), K, ctx->input(0).NumElements(),
                            key, nonce, static_cast<u64>(lift_), Out(o[0]),
                            tf_glue::TfParallelFor(ctx));
    });
  }
 private:
  std::int64_t lift_;
};

class MaskScaledP1Op : public OpKernel {
 public:
  explicit MaskScaledP1Op(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    if (!VectorOf(ctx, 1, "k", -1)) return;
    const i64 K = ctx->input(1).dim_size(0);
    const TensorShape shape = Prepend(K, ctx->input(0).shape());
    if (!ShapeIs(ctx, 2, "r1", shape)) return;
    std::vector<Tensor*> o;
    if (!Outputs(ctx, shape, &o, 1)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, cuda::TruncMsb0MaskScaledP1(In(ctx, 0), In(ctx, 1), K,
                                                            ctx->input(0).NumElements(), In(ctx, 2),
                                                            Out(o[0]), stream));
      TruncMsb0MaskScaledP1(In(ctx, 0), In(ctx, 1), K, ctx->input(0).NumElements(), In(ctx, 2),
                            Out(o[0]), tf_glue::TfParallelFor(ctx));
    });
  }
};

template <int kParty>
class MulAbStep1Op : public OpKernel {
 public:
  explicit MulAbStep1Op(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "f_a"}, {1, "f_b"}, {3, "b_a"}, {4, "b_b"}})) return;
    i64 K, n;
    if (!LeadingSplit(ctx, 0, "f_a", &K, &n) || !VectorOf(ctx, 2, "c0", K)) return;
    u32 ka[8], kb[8];
    i64 na, nb;
    if (!tf_glue::ReadZeroShareKeys(ctx, 5, ka, &na, kb, &nb)) return;
    const TensorShape shape = ctx->input(0).shape();
    const TensorShape pair = Prepend(2, shape);
    Tensor* t[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
    // Output layouts per party (see MulAbStep1 in sigmoid_steps.h).
    const bool is_pair[3][5] = {{false, true, true, false, false},
                                {false, false, false, true, true},
                                {false, false, false, false, false}};
    const int nout = kParty == 2 ? 4 : 5;
    for (int i = 0; i < nout; ++i)
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, is_pair[kParty][i] ? pair : shape, &t[i]));
    MulAbStep1Out out;
    if (kParty == 0) {
      out.s_r0 = Out(t[0]); out.m_next = Out(t[1]); out.m_prev = Out(t[2]);
      out.s_r1 = Out(t[3]); out.wc_a = Out(t[4]);
    } else if (kParty == 1) {
      out.s_r0 = Out(t[0]); out.wc_a = Out(t[1]); out.s_r1 = Out(t[2]);
      out.m_next = Out(t[3]); out.m_prev = Out(t[4]);
    } else {
      out.s_r0 = Out(t[0]); out.wc_a = Out(t[1]); out.s_r1 = Out(t[2]); out.wc_b = Out(t[3]);
    }
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, {
        cuda::MulAbStep1Dev dev;
        dev.s_r0 = out.s_r0; dev.s_r1 = out.s_r1; dev.m_next = out.m_next;
        dev.m_prev = out.m_prev; dev.wc_a = out.wc_a; dev.wc_b = out.wc_b;
        cuda::MulAbStep1(kParty, In(ctx, 0), In(ctx, 1), In(ctx, 2), BoolBytes(ctx->input(3)),
                         BoolBytes(ctx->input(4)), K, n, ka, na, kb, nb, dev, stream);
      });
      MulAbStep1(kParty, In(ctx, 0), In(ctx, 1), In(ctx, 2), ctx->input(3).flat<bool>().data(),
                 ctx->input(4).flat<bool>().data(), K, n, ka, na, kb, nb, out,
                 tf_glue::TfParallelFor(ctx));
    });
  }
};

template <int kParty>
class MulAbStep2Op : public OpKernel {
 public:
  explicit MulAbStep2Op(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    if (!SameShapes(ctx, {{0, "b_a"}, {1, "b_b"}})) return;
    i64 K, n;
    if (!LeadingSplit(ctx, 0, "b_a", &K, &n)) return;
    const TensorShape shape = ctx->input(0).shape();
    const TensorShape pair = Prepend(2, shape);
    // inputs after b_a, b_b: name and whether it is an OT pair
    static const char* names[3][6] = {
        {"s_r0_from_p1", "s_r0_from_p2", "s_r1", "m_from_p1", "wc_from_p2", nullptr},
        {"s_r0", "s_r1_from_p0", "s_r1_from_p2", "m_from_p0", "wc_from_p2", nullptr},
        {"s_r0", "s_r1", "m_from_p0", "wc_from_p1", "m_from_p1", "wc_from_p0"}};
    static const bool pairs[3][6] = {{false, false, false, true, false, false},
                                     {false, false, false, true, false, false},
                                     {false, false, true, false, true, false}};
    for (int i = 0; i < 6 && names[kParty][i] != nullptr; ++i)
      if (!ShapeIs(ctx, 2 + i, names[kParty][i], pairs[kParty][i] ? pair : shape)) return;
    MulAbStep2In in;
    if (kParty == 0) {
      in.in1 = In(ctx, 2); in.in2 = In(ctx, 3); in.own = In(ctx, 4); in.m = In(ctx, 5);
      in.wc = In(ctx, 6);
    } else if (kParty == 1) {
      in.own = In(ctx, 2); in.in1 = In(ctx, 3); in.in2 = In(ctx, 4); in.m = In(ctx, 5);
      in.wc = In(ctx, 6);
    } else {
      in.own = In(ctx, 2); in.own2 = In(ctx, 3); in.m = In(ctx, 4); in.wc = In(ctx, 5);
      in.m2 = In(ctx, 6); in.wc2 = In(ctx, 7);
    }
    TensorShape out_shape = shape;
    out_shape.RemoveDim(0);
    std::vector<Tensor*> o;
    if (!Outputs(ctx, out_shape, &o, 2)) return;
    tf_glue::RunKernel(ctx, [&] {
      TFE_ACCEL_GPU_BRANCH(ctx, {
        cuda::MulAbStep2Dev dev;
        dev.own = in.own; dev.own2 = in.own2; dev.in1 = in.in1; dev.in2 = in.in2;
        dev.m = in.m; dev.wc = in.wc; dev.m2 = in.m2; dev.wc2 = in.wc2;
        cuda::MulAbStep2(kParty, dev, BoolBytes(ctx->input(0)), BoolBytes(ctx->input(1)), K, n,
                         Out(o[0]), Out(o[1]), stream);
      });
      MulAbStep2(kParty, in, ctx->input(0).flat<bool>().data(), ctx->input(1).flat<bool>().data(),
                 K, n, Out(o[0]), Out(o[1]), tf_glue::TfParallelFor(ctx));
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("MpcPivotDiff").Device(DEVICE_CPU), PivotDiffOp);
REGISTER_KERNEL_BUILDER(Name("MpcPieceSelectAnd").Device(DEVICE_CPU), PieceSelectAndOp);
REGISTER_KERNEL_BUILDER(Name("MpcTruncMsb0MaskScaledP0").Device(DEVICE_CPU), MaskScaledP0Op);
REGISTER_KERNEL_BUILDER(Name("MpcTruncMsb0MaskScaledP1").Device(DEVICE_CPU), MaskScaledP1Op);
REGISTER_KERNEL_BUILDER(Name("MpcMulAbStep1P0").Device(DEVICE_CPU), MulAbStep1Op<0>);
REGISTER_KERNEL_BUILDER(Name("MpcMulAbStep1P1").Device(DEVICE_CPU), MulAbStep1Op<1>);
REGISTER_KERNEL_BUILDER(Name("MpcMulAbStep1P2").Device(DEVICE_CPU), MulAbStep1Op<2>);
REGISTER_KERNEL_BUILDER(Name("MpcMulAbStep2P0").Device(DEVICE_CPU), MulAbStep2Op<0>);
REGISTER_KERNEL_BUILDER(Name("MpcMulAbStep2P1").Device(DEVICE_CPU), MulAbStep2Op<1>);
REGISTER_KERNEL_BUILDER(Name("MpcMulAbStep2P2").Device(DEVICE_CPU), MulAbStep2Op<2>);

// GPU registrations of the sigmoid piece steps: keys and nonces are read on the host; the public
// vectors (pivots, c0, k) are device arrays, as the CUDA kernels read them.
TFE_ACCEL_REGISTER_GPU(Name("MpcPivotDiff"), PivotDiffOp);
TFE_ACCEL_REGISTER_GPU(Name("MpcPieceSelectAnd").HostMemory("key_a").HostMemory("nonce_a")
                           .HostMemory("key_b").HostMemory("nonce_b"),
                       PieceSelectAndOp);
TFE_ACCEL_REGISTER_GPU(Name("MpcTruncMsb0MaskScaledP0").HostMemory("key").HostMemory("nonce"),
                       MaskScaledP0Op);
TFE_ACCEL_REGISTER_GPU(Name("MpcTruncMsb0MaskScaledP1"), MaskScaledP1Op);
#define TFE_ACCEL_MULAB_REGISTER_GPU(P)                                                        \
  TFE_ACCEL_REGISTER_GPU(Name("MpcMulAbStep1P" #P).HostMemory("key_a").HostMemory("nonce_a")   \
                             .HostMemory("key_b").HostMemory("nonce_b"),                       \
                         MulAbStep1Op<P>);                                                     \
  TFE_ACCEL_REGISTER_GPU(Name("MpcMulAbStep2P" #P), MulAbStep2Op<P>);
TFE_ACCEL_MULAB_REGISTER_GPU(0)
TFE_ACCEL_MULAB_REGISTER_GPU(1)
TFE_ACCEL_MULAB_REGISTER_GPU(2)
#undef TFE_ACCEL_MULAB_REGISTER_GPU

}  // namespace tfe_accel
