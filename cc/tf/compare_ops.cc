// TF ops for the masked-comparison msb (cc/kernels/private_compare.h), one op per step and party,
// each described once by a spec (step_op.h). CPU-only: no CUDA kernel yet (kGpu = false).
#include <vector>

#include "../kernels/private_compare.h"
#include "step_op.h"

namespace tfe_accel {
namespace {

using namespace tf_glue::tf_names;  // NOLINT(build/namespaces): our curated list of TF names
using step_op::StepArgs;
using step_op::StepBase;
using Shapes = std::vector<TensorShape>;

TensorShape WithLast(TensorShape s, i64 k) {
  s.AddDim(k);
  return s;
}

// Output 0 is `base` + [k] and every other output is `base`, with `base` from `fn`.
template <int kLast, bool kFromShapeTensor>
Status AppendLast(InferenceContext* c) {
  ShapeHandle base, last;
  if (kFromShapeTensor) {
    TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(0, &base));
  } else {
    base = c->input(0);
  }
  TF_RETURN_IF_ERROR(c->Concatenate(base, c->Vector(kLast), &last));
  c->set_output(0, last);
  for (int i = 1; i < c->num_outputs(); ++i) c->set_output(i, base);
  return ::tensorflow::OkStatus();
}

bool Digits(StepArgs& a, int index, const TensorShape& base, i64 k) {
  return step_op::ShapeIs(a, index, WithLast(base, k));
}

struct PcOpenStep : StepBase {
  static constexpr bool kGpu = false;
  TFE_ACCEL_SPEC("MpcPcOpen", {"x_a: int64", "x_b: int64", "key: int32", "nonce: int64"}, {"a: int64"},
                 {"party: int"}, {"x_a", "x_b"}, step_op::SameAsFirst,
                 "Masked comparison, round 1: P0 a = x_a + x_b + rho0 (k02), P1 a = x_b + rho1 (k12).");
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    PcOpen(a.attr.party, a.in(0), a.in(1), a.key(2), a.nonce(3), a.out(0), a.n(), pf);
  }
};
TFE_ACCEL_STEP(PcOpenStep);

struct PcDealerStep : StepBase {
  static constexpr bool kGpu = false;
  TFE_ACCEL_SPEC("MpcPcDealer", {"shape: int64", "key02: int32", "nonce02: int64", "key12: int32", "nonce12: int64"},
                 {"d1: uint8", "r_top: bool"}, {}, {}, (AppendLast<kPcShareBits, true>),
                 "Masked comparison, dealer P2: P1's Z_67 shares of r's low 63 bits (to P1), r's bit 63.");
  static bool OutputShapes(StepArgs& a, Shapes* s) {
    *s = {WithLast(a.shape_arg(), kPcShareBits), a.shape_arg()};
    return true;
  }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    PcDealer(a.key(1), a.nonce(2), a.key(3), a.nonce(4), a.out_t<u8>(0), a.out_bools(1), a.output(1)->NumElements(), pf);
  }
};
TFE_ACCEL_STEP(PcDealerStep);

Shapes MaskShapes(StepArgs& a, int outputs) {
  Shapes s(outputs, a.tensor(0).shape());
  s[0] = WithLast(a.tensor(0).shape(), kPcPositions);
  return s;
}

struct PcMaskP0Step : StepBase {
  static constexpr bool kGpu = false;
  TFE_ACCEL_SPEC("MpcPcMaskP0", {"a_own: int64", "a_recv: int64", "key02: int32", "nonce02: int64", "key01: int32",
                                 "nonce01: int64"},
                 {"d: uint8", "s1: bool", "s0: bool"}, {}, {"a_own", "a_recv"}, (AppendLast<kPcPositions, false>),
                 "Masked comparison, round 2, P0: its masked Z_67 vector (to P2) and its output shares s1, s0.");
  static bool OutputShapes(StepArgs& a, Shapes* s) {
    *s = MaskShapes(a, 3);
    return true;
  }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    PcMask(0, a.in(0), a.in(1), nullptr, a.key(2), a.nonce(3), a.key(4), a.nonce(5), a.out_t<u8>(0),
           a.out_bools(1), a.out_bools(2), a.tensor(0).NumElements(), pf);
  }
};
TFE_ACCEL_STEP(PcMaskP0Step);

struct PcMaskP1Step : StepBase {
  static constexpr bool kGpu = false;
  TFE_ACCEL_SPEC("MpcPcMaskP1", {"a_own: int64", "a_recv: int64", "digits: uint8", "key01: int32", "nonce01: int64"},
                 {"d: uint8", "s1: bool"}, {}, {"a_own", "a_recv"}, (AppendLast<kPcPositions, false>),
                 "Masked comparison, round 2, P1: its masked Z_67 vector (to P2) and its output share s1.");
  static bool Check(StepArgs& a) { return Digits(a, 2, a.tensor(0).shape(), kPcShareBits); }
  static bool OutputShapes(StepArgs& a, Shapes* s) {
    *s = MaskShapes(a, 2);
    return true;
  }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    PcMask(1, a.in(0), a.in(1), a.typed<u8>(2), nullptr, 0, a.key(3), a.nonce(4), a.out_t<u8>(0), a.out_bools(1),
           nullptr, a.tensor(0).NumElements(), pf);
  }
};
TFE_ACCEL_STEP(PcMaskP1Step);

struct PcResolveStep : StepBase {
  static constexpr bool kGpu = false;
  TFE_ACCEL_SPEC("MpcPcResolve", {"d0: uint8", "d1: uint8", "r_top: bool", "key02: int32", "nonce02: int64"},
                 {"s2: bool", "s0: bool"}, {}, {"d0", "d1"},
                 [](InferenceContext* c) {
                   for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, c->input(2));
                   return ::tensorflow::OkStatus();
                 },
                 "Masked comparison, round 3, P2: its output shares (s2 to P1, s0) from both masked vectors.");
  static bool Check(StepArgs& a) { return Digits(a, 0, a.tensor(2).shape(), kPcPositions); }
  static bool OutputShapes(StepArgs& a, Shapes* s) {
    s->assign(2, a.tensor(2).shape());
    return true;
  }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    PcResolve(a.typed<u8>(0), a.typed<u8>(1), a.bools(2), a.key(3), a.nonce(4), a.out_bools(0), a.out_bools(1),
              a.tensor(2).NumElements(), pf);
  }
};
TFE_ACCEL_STEP(PcResolveStep);

}  // namespace
}  // namespace tfe_accel
