// tfe-accel: the step-op template's shared parts (step_op.h).
#include "step_op.h"

#include "../kernels/mpc_local.h"

#include <cstring>

namespace tfe_accel {
namespace step_op {

using namespace tf_glue::tf_names;  // NOLINT(build/namespaces): our curated list of TF names

std::string ArgName(const char* decl) {
  const char* colon = std::strchr(decl, ':');
  std::string name = colon ? std::string(decl, colon - decl) : std::string(decl);
  while (!name.empty() && name.back() == ' ') name.pop_back();
  return name;
}

bool IsHostInput(const std::string& name) { return KindOf(name) != InputKind::kTensor; }

InputKind KindOf(const std::string& name) {
  if (name == "shape") return InputKind::kShape;
  if (name.find("nonce") != std::string::npos) return InputKind::kNonce;
  if (name.find("key") != std::string::npos || name.find("seed") != std::string::npos)
    return InputKind::kKey;
  return InputKind::kTensor;
}

bool RegisterOpDef(const StepSpec& spec) {
  ::tensorflow::register_op::OpDefBuilderWrapper b(spec.name);
  for (const char* d : spec.inputs) b.Input(d);
  for (const char* d : spec.outputs) b.Output(d);
  for (const char* d : spec.attrs) b.Attr(d);
  b.SetShapeFn(spec.shape_fn);
  b.Doc(spec.doc);
  b();  // what REGISTER_OP's initializer does: hand the definition to TF's op registry
  return true;
}

void StepAttrs::Read(OpKernelConstruction* c, const StepSpec& spec) {
  for (const char* decl : spec.attrs) {
    const std::string name = ArgName(decl);
    if (name == "amount") {
      OP_REQUIRES_OK(c, c->GetAttr("amount", &amount));
      OP_REQUIRES(c, amount >= 1 && amount <= 62,
                  InvalidArgument("amount must be in [1, 62], got ", amount));
    } else if (name == "party") {
      OP_REQUIRES_OK(c, c->GetAttr("party", &party));
      OP_REQUIRES(c, party >= 0 && party <= 2, InvalidArgument("party must be 0, 1 or 2, got ", party));
    } else if (name == "lift" || name == "unlift") {
      std::int64_t v = 0;
      OP_REQUIRES_OK(c, c->GetAttr(name, &v));
      (name == "lift" ? lift : unlift) = static_cast<u64>(v);
    }
  }
}

bool StepArgs::Fail(const Status& s) const {
  ctx->CtxFailure(__FILE__, __LINE__, s);
  return false;
}

int StepArgs::IndexOf(const char* name) const {
  for (size_t i = 0; i < spec.inputs.size(); ++i)
    if (ArgName(spec.inputs[i]) == name) return static_cast<int>(i);
  return -1;
}

static bool ReadShape(StepArgs& a, int index, TensorShape* shape) {
  const Tensor& t = a.tensor(index);
  if (!TensorShapeUtils::IsVector(t.shape()))
    return a.Fail(InvalidArgument("shape must be a 1-D tensor, got shape ", t.shape().DebugString()));
  std::vector<std::int64_t> dims;
  for (int i = 0; i < t.NumElements(); ++i) {
    const std::int64_t d = t.dtype() == ::tensorflow::DT_INT64 ? t.flat<std::int64_t>()(i)
                                                               : t.flat<std::int32_t>()(i);
    if (d < 0)
      return a.Fail(InvalidArgument("shape must not contain negative dimensions, got ", d, " at index ", i));
    dims.push_back(d);
  }
  Status s = TensorShapeUtils::MakeShape(dims.data(), static_cast<int>(dims.size()), shape);
  return s.ok() || a.Fail(s);
}

bool StepArgs::Read() {
  if (!spec.same_shape.empty()) {
    const int first = IndexOf(spec.same_shape[0]);
    for (size_t k = 1; k < spec.same_shape.size(); ++k) {
      const Tensor& t = tensor(IndexOf(spec.same_shape[k]));
      if (t.shape() != tensor(first).shape())
        return Fail(InvalidArgument(spec.same_shape[k], " must have the same shape as ", spec.same_shape[0],
                                    ", got ", t.shape().DebugString(), " vs ",
                                    tensor(first).shape().DebugString()));
    }
  }
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    const std::string name = ArgName(spec.inputs[i]);
    const int k = static_cast<int>(i);
    switch (KindOf(name)) {
      case InputKind::kKey:
        if (!tf_glue::ReadKey(ctx, k, name.c_str(), keys_[k])) return false;
        break;
      case InputKind::kNonce:
        if (!tf_glue::ReadNonce(ctx, k, name.c_str(), &nonces_[k])) return false;
        break;
      case InputKind::kShape:
        if (!ReadShape(*this, k, &shape_)) return false;
        break;
      case InputKind::kTensor:
        break;
    }
  }
  return true;
}

TensorShape StepArgs::default_shape() const {
  return IndexOf("shape") >= 0 ? shape_ : tensor(0).shape();
}

bool StepArgs::Allocate(const std::vector<TensorShape>& shapes) {
  outs_.assign(shapes.size(), nullptr);
  for (size_t i = 0; i < shapes.size(); ++i) {
    Status s = ctx->allocate_output(static_cast<int>(i), shapes[i], &outs_[i]);
    if (!s.ok()) return Fail(s);
  }
  return true;
}

tf_glue::Seed8 StepArgs::seed(int key_i, int nonce_i, i64 add) const {
  return tf_glue::SeedOf(keys_[key_i], local::NonceAdd(nonces_[nonce_i], add));
}

bool VectorOf(StepArgs& a, int index, i64 want) {
  const Tensor& t = a.tensor(index);
  if (t.dims() == 1 && (want < 0 || t.dim_size(0) == want)) return true;
  return a.Fail(InvalidArgument(ArgName(a.spec.inputs[index]), " must be a vector of ",
                                want >= 0 ? std::to_string(want) : std::string("K"),
                                " values, got shape ", t.shape().DebugString()));
}

bool ShapeIs(StepArgs& a, int index, const TensorShape& want) {
  const Tensor& t = a.tensor(index);
  if (t.shape() == want) return true;
  return a.Fail(InvalidArgument(ArgName(a.spec.inputs[index]), " must have shape ", want.DebugString(),
                                ", got ", t.shape().DebugString()));
}

bool LeadingSplit(StepArgs& a, int index, i64* K, i64* n) {
  const Tensor& t = a.tensor(index);
  if (t.dims() < 1)
    return a.Fail(InvalidArgument(ArgName(a.spec.inputs[index]), " must have rank >= 1 ([pieces] + shape), got ",
                                  t.shape().DebugString()));
  *K = t.dim_size(0);
  *n = *K == 0 ? 0 : t.NumElements() / *K;
  return true;
}

TensorShape Prepend(i64 k, const TensorShape& s) {
  TensorShape out({k});
  out.AppendShape(s);
  return out;
}

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

}  // namespace step_op
}  // namespace tfe_accel
