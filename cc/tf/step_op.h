// tfe-accel: one TF op template for the MPC protocol steps, driven by a small spec per step.
//
// A step is a struct deriving from StepBase with
//   static const StepSpec& Spec();                  inputs, outputs, attrs, shape function, doc
//   static void Cpu(StepArgs& a, const ParallelFor& pf);          the cc/kernels call
//   TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream);)  the cc/cuda call
// and optionally Check (extra validation) and OutputShapes (default: every output shaped like the
// `shape` input when there is one, else like input 0). TFE_ACCEL_STEP(Step) registers the op
// definition and the CPU kernel, plus the GPU kernel in builds with TF GPU kernels. Everything the
// op glue repeated per step lives here once: reading and checking attributes (party, amount),
// same-shape groups, PRG keys and nonces, the shape input, output allocation, the GPU branch, and
// the HostMemory list of the GPU kernel, derived from the input names by one rule (IsHostInput).
#ifndef TFE_ACCEL_CC_TF_STEP_OP_H_
#define TFE_ACCEL_CC_TF_STEP_OP_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../kernels/common.h"
#include "tensorflow/core/framework/kernel_def_builder.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tf_glue.h"
#include "tf_gpu.h"

#if TFE_ACCEL_TF_GPU
#define TFE_ACCEL_GPU_ONLY(...) __VA_ARGS__
#else
#define TFE_ACCEL_GPU_ONLY(...)
#endif

namespace tfe_accel {
namespace step_op {

using ShapeFn = ::tensorflow::Status (*)(::tensorflow::shape_inference::InferenceContext*);

// The declaration of a step's op: TF's "name: type" strings, in order.
struct StepSpec {
  const char* name;
  std::vector<const char*> inputs;
  std::vector<const char*> outputs;
  std::vector<const char*> attrs;
  std::vector<const char*> same_shape;  // inputs that must have the shape of the first one named
  ShapeFn shape_fn;
  const char* doc;
};

// "x0: int64" -> "x0".
std::string ArgName(const char* decl);

// Inputs read on the host (and by a GPU kernel from host memory): PRG keys and seeds (names with
// "key" or "seed"), nonces ("nonce") and the shape tensor ("shape").
bool IsHostInput(const std::string& name);
enum class InputKind { kTensor, kKey, kNonce, kShape };
InputKind KindOf(const std::string& name);

// Registers the op definition of `spec` (REGISTER_OP, from the spec).
bool RegisterOpDef(const StepSpec& spec);

// The integer attributes a step may declare, read and checked once: `amount` in [1, 62],
// `party` in {0, 1, 2}; `lift` and `unlift` as ring words.
struct StepAttrs {
  int amount = 0;
  int party = -1;
  u64 lift = 0;
  u64 unlift = 0;
  void Read(::tensorflow::OpKernelConstruction* c, const StepSpec& spec);
};

// One call's inputs and outputs, as the kernels take them.
class StepArgs {
 public:
  static constexpr int kMaxArgs = 12;
  StepArgs(::tensorflow::OpKernelContext* ctx, const StepSpec& spec, const StepAttrs& attrs)
      : ctx(ctx), spec(spec), attr(attrs) {}

  // Validates the same-shape group, keys, nonces and the shape input; false (status set) on error.
  bool Read();
  // Allocates the outputs with these shapes; false (status set) on error.
  bool Allocate(const std::vector<::tensorflow::TensorShape>& shapes);
  // A failure naming an argument: sets the status and returns false.
  bool Fail(const ::tensorflow::Status& s) const;

  const ::tensorflow::Tensor& tensor(int i) const { return ctx->input(i); }
  const u64* in(int i) const { return tf_glue::Words(ctx->input(i)); }
  template <typename T>
  const T* typed(int i) const { return ctx->input(i).flat<T>().data(); }
  const bool* bools(int i) const { return ctx->input(i).flat<bool>().data(); }
  const u8* bytes(int i) const { return reinterpret_cast<const u8*>(bools(i)); }
  const u32* key(int i) const { return keys_[i]; }
  i64 nonce(int i) const { return nonces_[i]; }
  // key i + nonce j (+ add), as the CUDA entry points that take nonce-adjusted seeds want it.
  tf_glue::Seed8 seed(int key_i, int nonce_i, i64 add = 0) const;
  const ::tensorflow::TensorShape& shape_arg() const { return shape_; }
  ::tensorflow::TensorShape default_shape() const;

  int num_outputs() const { return static_cast<int>(spec.outputs.size()); }
  ::tensorflow::Tensor* output(int i) const { return outs_[i]; }
  u64* out(int i) const { return tf_glue::Words(outs_[i]); }
  template <typename T>
  T* out_t(int i) const { return outs_[i]->flat<T>().data(); }
  bool* out_bools(int i) const { return outs_[i]->flat<bool>().data(); }
  u8* out_bytes(int i) const { return reinterpret_cast<u8*>(out_bools(i)); }
  i64 n() const { return outs_[0]->NumElements(); }  // elements of output 0

  ::tensorflow::OpKernelContext* const ctx;
  const StepSpec& spec;
  const StepAttrs& attr;

 private:
  int IndexOf(const char* name) const;
  u32 keys_[kMaxArgs][8] = {};
  i64 nonces_[kMaxArgs] = {};
  ::tensorflow::TensorShape shape_;
  std::vector<::tensorflow::Tensor*> outs_;
};

// Shape checks the steps share.
bool VectorOf(StepArgs& a, int index, i64 want);  // rank 1 (with `want` elements when >= 0)
bool ShapeIs(StepArgs& a, int index, const ::tensorflow::TensorShape& want);
bool LeadingSplit(StepArgs& a, int index, i64* K, i64* n);  // [K] + shape: K and the rest's size
::tensorflow::TensorShape Prepend(i64 k, const ::tensorflow::TensorShape& s);

// Shape functions the steps share.
::tensorflow::Status SameAsFirst(::tensorflow::shape_inference::InferenceContext* c);
::tensorflow::Status FromShapeTensor(::tensorflow::shape_inference::InferenceContext* c);

struct StepBase {
  static constexpr bool kGpu = true;  // false: a CPU-only step (no Gpu(), no GPU kernel registered)
  static bool Check(StepArgs&) { return true; }
  static bool OutputShapes(StepArgs& a, std::vector<::tensorflow::TensorShape>* shapes) {
    shapes->assign(a.num_outputs(), a.default_shape());
    return true;
  }
};

template <class Step>
class StepKernel : public ::tensorflow::OpKernel {
 public:
  explicit StepKernel(::tensorflow::OpKernelConstruction* c) : OpKernel(c) {
    attrs_.Read(c, Step::Spec());
  }
  void Compute(::tensorflow::OpKernelContext* ctx) override {
    StepArgs a(ctx, Step::Spec(), attrs_);
    std::vector<::tensorflow::TensorShape> shapes;
    if (!a.Read() || !Step::Check(a) || !Step::OutputShapes(a, &shapes) || !a.Allocate(shapes)) return;
    tf_glue::RunKernel(ctx, [&] {
      if constexpr (Step::kGpu) { TFE_ACCEL_GPU_BRANCH(ctx, Step::Gpu(a, stream)); }
      Step::Cpu(a, tf_glue::TfParallelFor(ctx));
    });
  }

 private:
  StepAttrs attrs_;
};

using TypeConstraints = std::vector<std::pair<const char*, ::tensorflow::DataType>>;

// Registers StepKernel<Step> for DEVICE_CPU and, with TF GPU kernels and Step::kGpu, DEVICE_GPU
// (host inputs in host memory), under the given type constraints.
template <class Step>
bool RegisterKernels(const TypeConstraints& constraints = {}) {
  auto build = [&](const char* device, bool host_memory) {
    ::tensorflow::KernelDefBuilder b(Step::Spec().name);
    b.Device(device);
    for (const auto& tc : constraints) b.TypeConstraint(tc.first, tc.second);
    if (host_memory)
      for (const char* decl : Step::Spec().inputs)
        if (IsHostInput(ArgName(decl))) b.HostMemory(ArgName(decl).c_str());
    return b.Build();
  };
  ::tensorflow::OpKernel* (*create)(::tensorflow::OpKernelConstruction*) =
      [](::tensorflow::OpKernelConstruction* c) -> ::tensorflow::OpKernel* {
    return new StepKernel<Step>(c);
  };
  static ::tensorflow::kernel_factory::OpKernelRegistrar cpu(build(::tensorflow::DEVICE_CPU, false),
                                                             Step::Spec().name, create);
#if TFE_ACCEL_TF_GPU
  if (Step::kGpu) {
    static ::tensorflow::kernel_factory::OpKernelRegistrar gpu(build(::tensorflow::DEVICE_GPU, true),
                                                               Step::Spec().name, create);
  }
#endif
  return true;
}

}  // namespace step_op
}  // namespace tfe_accel

// Inside a step struct: `static const StepSpec& Spec()` returning the spec built from the arguments.
#define TFE_ACCEL_SPEC(...)                    \
  static const ::tfe_accel::step_op::StepSpec& Spec() { \
    static const ::tfe_accel::step_op::StepSpec s{__VA_ARGS__}; \
    return s;                                  \
  }

#define TFE_ACCEL_STEP_CONCAT_(a, b) a##b
#define TFE_ACCEL_STEP_CONCAT(a, b) TFE_ACCEL_STEP_CONCAT_(a, b)
// Registers the op definition and the kernels of a step without type attributes.
#define TFE_ACCEL_STEP(Step)                                                              \
  static const bool TFE_ACCEL_STEP_CONCAT(step_registered_, __COUNTER__) =               \
      ::tfe_accel::step_op::RegisterOpDef(Step::Spec()) &&                                \
      ::tfe_accel::step_op::RegisterKernels<Step>()

#endif  // TFE_ACCEL_CC_TF_STEP_OP_H_
