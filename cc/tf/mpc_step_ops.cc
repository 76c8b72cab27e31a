// TF ops for the MPC protocol steps (cc/kernels/truncation.h, cc/kernels/sigmoid_steps.h): one op
// per protocol step and party, each described once by a spec (step_op.h) with its kernel calls:
// the CPU kernel on TF's intra-op pool and, in builds with TFE_ACCEL_TF_GPU, cc/cuda's kernel of
// the same name (bit for bit the CPU result) on TF's GPU stream. Keys are int32[8] (TFE's pairwise
// keys), nonces int64 scalars (TFE's pairwise nonces); the kernels add them as TFE's `key + nonce`.
#include <cstdint>
#include <vector>

#include "../kernels/sigmoid_steps.h"
#include "../kernels/truncation.h"
#include "step_op.h"

namespace tfe_accel {
namespace {

using namespace tf_glue::tf_names;  // NOLINT(build/namespaces): our curated list of TF names
using step_op::LeadingSplit;
using step_op::Prepend;
using step_op::ShapeIs;
using step_op::StepArgs;
using step_op::StepBase;
using step_op::StepSpec;
using step_op::VectorOf;
using Shapes = std::vector<TensorShape>;

// ------------------------------------------------------------------ truncation (a)

struct TruncateLocalP0Step : StepBase {
  TFE_ACCEL_SPEC("MpcTruncateLocalP0", {"x0: int64"}, {"y0: int64"}, {"amount: int"}, {},
                 step_op::SameAsFirst,
                 "ABY3 non-interactive truncation (TFE _truncate_local_private), P0: y0 = x0 >> amount.");
  static void Cpu(StepArgs& a, const ParallelFor& pf) { TruncateLocalP0(a.in(0), a.out(0), a.n(), a.attr.amount, pf); }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::TruncateLocal(0, a.in(0), nullptr, a.n(), a.attr.amount, nullptr, a.out(0), nullptr, stream);
  })
};
TFE_ACCEL_STEP(TruncateLocalP0Step);

struct TruncateLocalP1Step : StepBase {
  TFE_ACCEL_SPEC("MpcTruncateLocalP1", {"x1: int64", "x2: int64", "key: int32", "nonce: int64"},
                 {"y1: int64", "r: int64"}, {"amount: int"}, {"x1", "x2"}, step_op::SameAsFirst,
                 "ABY3 non-interactive truncation, P1: r = U(keys[1][1] + nonces[1]), y1 = ((x1+x2)>>amount) - r.");
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    TruncateLocalP1(a.in(0), a.in(1), a.key(2), a.nonce(3), a.out(0), a.out(1), a.n(), a.attr.amount, pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::TruncateLocal(1, a.in(0), a.in(1), a.n(), a.attr.amount, a.seed(2, 3).w, a.out(0), a.out(1), stream);
  })
};
TFE_ACCEL_STEP(TruncateLocalP1Step);

struct TruncateLocalP2Step : StepBase {
  TFE_ACCEL_SPEC("MpcTruncateLocalP2", {"shape: Tshape", "key: int32", "nonce: int64"}, {"r: int64"},
                 {"Tshape: {int32, int64} = DT_INT32"}, {}, step_op::FromShapeTensor,
                 "ABY3 non-interactive truncation, P2: r = U(keys[2][0] + nonces[1]).");
  static void Cpu(StepArgs& a, const ParallelFor& pf) { TruncateLocalP2(a.key(1), a.nonce(2), a.out(0), a.n(), pf); }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {  // r = U(key + nonce) over [-2^63, 2^63 - 1)
    cuda::SeededUniformInt64(a.seed(1, 2).w, INT64_MIN, INT64_MAX, reinterpret_cast<i64*>(a.out(0)), a.n(), stream);
  })
};
TFE_ACCEL_STEP(TruncateLocalP2Step);

// ------------------------------------------------------------------ truncation (b)

struct TruncMsb0DealerStep : StepBase {
  TFE_ACCEL_SPEC("MpcTruncMsb0Dealer",
                 {"shape: Tshape", "key_20: int32", "nonce_20: int64", "key_21: int32", "nonce_21: int64", "r_seed: int32"},
                 {"r1: int64", "s1: int64", "rmsb1: int64", "z20: int64", "z21: int64"},
                 {"amount: int", "unlift: int = 0", "Tshape: {int32, int64} = DT_INT32"}, {}, step_op::FromShapeTensor,
                 R"doc(
MSB-0 truncation (TFE _truncate_msb0_secureq8_private), dealer P2. key_20 = keys[2][1] with
nonce_20 = nonces[2] (shared with P0), key_21 = keys[2][0] with nonce_21 = nonces[1] (shared with
P1), r_seed a fresh secure_seed() (TFE's sample_uniform). Returns (r1, s1, rmsb1) for P1 and P2's
output shares (z20, z21) = (y2, y0 - unlift).
)doc");
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    TruncMsb0Dealer(a.key(1), a.nonce(2), a.key(3), a.nonce(4), a.key(5), a.n(), a.attr.amount, a.attr.unlift,
                    a.out(0), a.out(1), a.out(2), a.out(3), a.out(4), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::TruncMsb0Dealer(a.seed(1, 2).w, a.seed(3, 4).w, a.key(5), a.n(), a.attr.amount, a.attr.unlift, a.out(0),
                          a.out(1), a.out(2), a.out(3), a.out(4), stream);
  })
};
TFE_ACCEL_STEP(TruncMsb0DealerStep);

struct TruncMsb0MaskP0Step : StepBase {
  TFE_ACCEL_SPEC("MpcTruncMsb0MaskP0", {"x0: int64", "x1: int64", "key: int32", "nonce: int64"}, {"c0: int64"},
                 {"lift: int = 0"}, {"x0", "x1"}, step_op::SameAsFirst,
                 "MSB-0 truncation, P0 masking: c0 = x0 + x1 + lift + r0 (key = keys[0][0], nonce = nonces[2]).");
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    TruncMsb0MaskP0(a.in(0), a.in(1), a.key(2), a.nonce(3), a.attr.lift, a.out(0), a.n(), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::TruncMsb0MaskP0(a.in(0), a.in(1), a.seed(2, 3).w, a.attr.lift, a.out(0), a.n(), stream);
  })
};
TFE_ACCEL_STEP(TruncMsb0MaskP0Step);

// c = a + b of two shares: P1's masking (c1 = x2 + r1) and the shared middle share.
template <int kWhich>
struct RingAddStep : StepBase {
  static const StepSpec& Spec() {
    static const StepSpec mask{"MpcTruncMsb0MaskP1", {"x2: int64", "r1: int64"}, {"c1: int64"}, {}, {"x2", "r1"},
                               step_op::SameAsFirst, "MSB-0 truncation, P1 masking: c1 = x2 + r1."};
    static const StepSpec combine{"MpcTruncMsb0Combine", {"y_tilde0: int64", "y_tilde1: int64"}, {"z: int64"}, {},
                                  {"y_tilde0", "y_tilde1"}, step_op::SameAsFirst,
                                  "MSB-0 truncation, P0 and P1: the shared middle share y_tilde0 + y_tilde1."};
    return kWhich == 0 ? mask : combine;
  }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    if (kWhich == 0) TruncMsb0MaskP1(a.in(0), a.in(1), a.out(0), a.n(), pf);
    else TruncMsb0Combine(a.in(0), a.in(1), a.out(0), a.n(), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::RingAdd(a.in(0), a.in(1), a.out(0), a.n(), stream);
  })
};
using TruncMsb0MaskP1Step = RingAddStep<0>;
using TruncMsb0CombineStep = RingAddStep<1>;
TFE_ACCEL_STEP(TruncMsb0MaskP1Step);
TFE_ACCEL_STEP(TruncMsb0CombineStep);

struct TruncMsb0UnmaskP0Step : StepBase {
  TFE_ACCEL_SPEC("MpcTruncMsb0UnmaskP0", {"c0: int64", "c1: int64", "key: int32", "nonce: int64"},
                 {"y_tilde0: int64", "z00: int64"}, {"amount: int", "unlift: int = 0"}, {"c0", "c1"}, step_op::SameAsFirst,
                 "MSB-0 truncation, P0 unmasking: (y_tilde0 (to P1), z00 = y0 - unlift).");
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    TruncMsb0UnmaskP0(a.in(0), a.in(1), a.key(2), a.nonce(3), a.attr.amount, a.attr.unlift, a.out(0), a.out(1),
                      a.n(), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::TruncMsb0UnmaskP0(a.in(0), a.in(1), a.seed(2, 3).w, a.attr.amount, a.attr.unlift, a.out(0), a.out(1),
                            a.n(), stream);
  })
};
TFE_ACCEL_STEP(TruncMsb0UnmaskP0Step);

struct TruncMsb0UnmaskP1Step : StepBase {
  TFE_ACCEL_SPEC("MpcTruncMsb0UnmaskP1",
                 {"c0: int64", "c1: int64", "s1: int64", "rmsb1: int64", "key: int32", "nonce: int64"},
                 {"y_tilde1: int64", "z11: int64"}, {"amount: int"}, {"c0", "c1", "s1", "rmsb1"}, step_op::SameAsFirst,
                 "MSB-0 truncation, P1 unmasking: (y_tilde1 (to P0), z11 = y2) (key = keys[1][1], nonce = nonces[1]).");
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    TruncMsb0UnmaskP1(a.in(0), a.in(1), a.in(2), a.in(3), a.key(4), a.nonce(5), a.attr.amount, a.out(0), a.out(1),
                      a.n(), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::TruncMsb0UnmaskP1(a.in(0), a.in(1), a.in(2), a.in(3), a.seed(4, 5).w, a.attr.amount, a.out(0), a.out(1),
                            a.n(), stream);
  })
};
TFE_ACCEL_STEP(TruncMsb0UnmaskP1Step);

// ------------------------------------------------------------------ bit extraction / carry

#define TFE_ACCEL_ZERO_SHARE_INPUTS "key_a: int32", "nonce_a: int64", "key_b: int32", "nonce_b: int64"

struct BitExtractSetupStep : StepBase {
  TFE_ACCEL_SPEC("MpcBitExtractSetup", {"x_a: int64", "x_b: int64", TFE_ACCEL_ZERO_SHARE_INPUTS},
                 {"out: int64"}, {"party: int"}, {"x_a", "x_b"}, step_op::SameAsFirst, R"doc(
Bit-extraction (a2b) set-up of TFE's msb / _bit_extract_private, party `party`: P0 returns
(x0 + x1) ^ alpha0 (sent to P2), P1 alpha1 (sent to P0), P2 alpha2 (sent to P1); alpha_i is the
party's int64 boolean zero share (key_a = keys[i][0], nonce_a = nonces[(i+2)%3], key_b = keys[i][1],
nonce_b = nonces[i]).
)doc");
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    BitExtractSetup(a.attr.party, a.in(0), a.in(1), a.key(2), a.nonce(3), a.key(4), a.nonce(5), a.out(0), a.n(), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::BitExtractSetup(a.attr.party, a.in(0), a.in(1), a.seed(2, 3).w, a.seed(4, 5).w, a.out(0), a.n(), stream);
  })
};
TFE_ACCEL_STEP(BitExtractSetupStep);

struct CarrySetupAndStep : StepBase {
  TFE_ACCEL_SPEC("MpcCarrySetupAnd", {"op1_a: int64", "op1_b: int64", "op2_a: int64", "op2_b: int64", TFE_ACCEL_ZERO_SHARE_INPUTS},
                 {"z: int64", "p_a: int64", "p_b: int64", "top_a: int8", "top_b: int8"}, {},
                 {"op1_a", "op1_b", "op2_a", "op2_b"}, step_op::SameAsFirst,
                 "Carry set-up: shift by 1, AND term of G = op1 & op2 (to P_{i-1}), P shares, bit-63 shares.");
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    CarrySetupAnd(a.in(0), a.in(1), a.in(2), a.in(3), a.key(4), a.nonce(5), a.key(6), a.nonce(7), a.out(0), a.out(1),
                  a.out(2), a.out_t<std::int8_t>(3), a.out_t<std::int8_t>(4), a.n(), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::CarrySetupAnd(a.in(0), a.in(1), a.in(2), a.in(3), a.seed(4, 5).w, a.seed(6, 7).w, a.out(0), a.out(1),
                        a.out(2), a.out_t<std::int8_t>(3), a.out_t<std::int8_t>(4), a.n(), stream);
  })
};
TFE_ACCEL_STEP(CarrySetupAndStep);

const StepSpec& KoggeStoneRoundSpec() {
  static const StepSpec s{"MpcKoggeStoneRound", {"g_a: Tin", "g_b: Tin", "p_a: Tin", "p_b: Tin", TFE_ACCEL_ZERO_SHARE_INPUTS},
                          {"zg: Tout", "zp: Tout", "gs1_a: Tout", "gs1_b: Tout"},
                          {"Tin: {int8, int16, int32, int64}", "Tout: {int8, int16, int32}"},
                          {"g_a", "g_b", "p_a", "p_b"}, step_op::SameAsFirst, R"doc(
One Kogge-Stone carry round of TFE's _carry_computation, local part of one party: bit split and
gather of G and P into the half-width dtype Tout, the local terms zg of Gs[0] & Ps[1] (zero share
at nonces N) and zp of Ps[0] & Ps[1] (nonces N+1), both sent to P_{i-1}, and the party's Gs[1]
shares for the update.
)doc"};
  return s;
}

// A Tin/Tout pair other than the registered halvings finds no kernel (NotFound naming Tout). The
// GPU kernels have the same type constraints: cuda::KoggeStoneRound derives the same halving from
// sizeof(In) (int8 stays int8).
template <typename InT, typename OutT>
struct KoggeStoneRoundStep : StepBase {
  static const StepSpec& Spec() { return KoggeStoneRoundSpec(); }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    KoggeStoneRound<InT, OutT>(a.typed<InT>(0), a.typed<InT>(1), a.typed<InT>(2), a.typed<InT>(3), a.key(4),
                               a.nonce(5), a.key(6), a.nonce(7), a.out_t<OutT>(0), a.out_t<OutT>(1),
                               a.out_t<OutT>(2), a.out_t<OutT>(3), a.n(), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    // The P AND gate draws at nonce + 1 (wrapping, as the CPU kernel's NonceAdd).
    cuda::KoggeStoneRound(static_cast<int>(sizeof(InT)), a.typed<InT>(0), a.typed<InT>(1), a.typed<InT>(2),
                          a.typed<InT>(3), a.seed(4, 5).w, a.seed(6, 7).w, a.seed(4, 5, 1).w, a.seed(6, 7, 1).w,
                          a.out_t<OutT>(0), a.out_t<OutT>(1), a.out_t<OutT>(2), a.out_t<OutT>(3), a.n(), stream);
  })
};

template <typename T>
struct KoggeStoneUpdateStep : StepBase {
  TFE_ACCEL_SPEC("MpcKoggeStoneUpdate", {"gs1_a: T", "gs1_b: T", "zg_own: T", "zg_recv: T"},
                 {"g_a: T", "g_b: T"}, {"T: {int8, int16, int32, int64}"},
                 {"gs1_a", "gs1_b", "zg_own", "zg_recv"}, step_op::SameAsFirst,
                 "Kogge-Stone G update after a round's messages: (gs1_a ^ zg_own, gs1_b ^ zg_recv).");
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    KoggeStoneUpdate<T>(a.typed<T>(0), a.typed<T>(1), a.typed<T>(2), a.typed<T>(3), a.out_t<T>(0), a.out_t<T>(1),
                        a.n(), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::KoggeStoneUpdate(static_cast<int>(sizeof(T)), a.typed<T>(0), a.typed<T>(1), a.typed<T>(2), a.typed<T>(3),
                           a.out_t<T>(0), a.out_t<T>(1), a.n(), stream);
  })
};

template <typename T>
::tensorflow::DataType Dt() { return ::tensorflow::DataTypeToEnum<T>::v(); }

const bool kKoggeStoneRegistered =
    step_op::RegisterOpDef(KoggeStoneRoundSpec()) &&
    step_op::RegisterKernels<KoggeStoneRoundStep<std::int64_t, std::int32_t>>({{"Tin", Dt<std::int64_t>()}, {"Tout", Dt<std::int32_t>()}}) &&
    step_op::RegisterKernels<KoggeStoneRoundStep<std::int32_t, std::int16_t>>({{"Tin", Dt<std::int32_t>()}, {"Tout", Dt<std::int16_t>()}}) &&
    step_op::RegisterKernels<KoggeStoneRoundStep<std::int16_t, std::int8_t>>({{"Tin", Dt<std::int16_t>()}, {"Tout", Dt<std::int8_t>()}}) &&
    step_op::RegisterKernels<KoggeStoneRoundStep<std::int8_t, std::int8_t>>({{"Tin", Dt<std::int8_t>()}, {"Tout", Dt<std::int8_t>()}}) &&
    step_op::RegisterOpDef(KoggeStoneUpdateStep<std::int64_t>::Spec()) &&
    step_op::RegisterKernels<KoggeStoneUpdateStep<std::int64_t>>({{"T", Dt<std::int64_t>()}}) &&
    step_op::RegisterKernels<KoggeStoneUpdateStep<std::int32_t>>({{"T", Dt<std::int32_t>()}}) &&
    step_op::RegisterKernels<KoggeStoneUpdateStep<std::int16_t>>({{"T", Dt<std::int16_t>()}}) &&
    step_op::RegisterKernels<KoggeStoneUpdateStep<std::int8_t>>({{"T", Dt<std::int8_t>()}});

// ------------------------------------------------------------------ sigmoid piece evaluation

Status LeadingPlusOne(InferenceContext* c) {  // [C + 1] + shape for input [C] + shape
  ShapeHandle rest, out;
  ::tensorflow::shape_inference::DimensionHandle k;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &out));
  TF_RETURN_IF_ERROR(c->Add(c->Dim(c->input(0), 0), 1, &k));
  TF_RETURN_IF_ERROR(c->Subshape(c->input(0), 1, &rest));
  TF_RETURN_IF_ERROR(c->Concatenate(c->Vector(k), rest, &out));
  c->set_output(0, out);
  return ::tensorflow::OkStatus();
}

Status DropLeading(InferenceContext* c) {
  ShapeHandle rest;
  TF_RETURN_IF_ERROR(c->Subshape(c->input(0), 1, &rest));
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, rest);
  return ::tensorflow::OkStatus();
}

Status PrependInput2(InferenceContext* c) {  // [C] + input 0's shape for every output, C = len(input 2)
  ShapeHandle out;
  TF_RETURN_IF_ERROR(c->Concatenate(c->Vector(c->Dim(c->input(2), 0)), c->input(0), &out));
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, out);
  return ::tensorflow::OkStatus();
}

Status ShapeOfR1(InferenceContext* c) {
  c->set_output(0, c->input(2));
  return ::tensorflow::OkStatus();
}

struct PivotDiffStep : StepBase {
  TFE_ACCEL_SPEC("MpcPivotDiff", {"x_a: int64", "x_b: int64", "pivots: int64"}, {"d_a: int64", "d_b: int64"},
                 {"party: int"}, {"x_a", "x_b"}, PrependInput2,
                 "Sigmoid comparison set-up: the party's shares of pivots - tile(x) ([C] + shape).");
  static bool Check(StepArgs& a) {
    if (!VectorOf(a, 2, -1)) return false;
    return a.tensor(2).dim_size(0) >= 1 || a.Fail(InvalidArgument("pivots must not be empty"));
  }
  static bool OutputShapes(StepArgs& a, Shapes* s) {
    s->assign(2, Prepend(a.tensor(2).dim_size(0), a.tensor(0).shape()));
    return true;
  }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    PivotDiff(a.attr.party, a.in(0), a.in(1), a.in(2), a.tensor(2).dim_size(0), a.tensor(0).NumElements(), a.out(0),
              a.out(1), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::PivotDiff(a.attr.party, a.in(0), a.in(1), a.in(2), a.tensor(2).dim_size(0), a.tensor(0).NumElements(),
                    a.out(0), a.out(1), stream);
  })
};
TFE_ACCEL_STEP(PivotDiffStep);

struct PieceSelectAndStep : StepBase {
  TFE_ACCEL_SPEC("MpcPieceSelectAnd", {"msb_a: bool", "msb_b: bool", TFE_ACCEL_ZERO_SHARE_INPUTS}, {"z: bool"},
                 {"party: int"}, {"msb_a", "msb_b"}, LeadingPlusOne,
                 "Piece selection: local AND term of b = [~msb, 1] & [1, ~msb ^ 1] ([C+1] + shape).");
  static bool Check(StepArgs& a) {
    i64 C, n;
    if (!LeadingSplit(a, 0, &C, &n)) return false;
    return C >= 1 || a.Fail(InvalidArgument("msb_a must have at least one pivot row"));
  }
  static bool OutputShapes(StepArgs& a, Shapes* s) {
    TensorShape shape = a.tensor(0).shape();
    shape.set_dim(0, shape.dim_size(0) + 1);
    s->assign(1, shape);
    return true;
  }
  static i64 C(StepArgs& a) { return a.tensor(0).dim_size(0); }
  static i64 N(StepArgs& a) { return a.tensor(0).NumElements() / C(a); }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    PieceSelectAnd(a.attr.party, a.bools(0), a.bools(1), C(a), N(a), a.key(2), a.nonce(3), a.key(4), a.nonce(5),
                   a.out_bools(0), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    // keys and nonces as the CPU kernel takes them (the CUDA kernel adds the nonces itself)
    cuda::PieceSelectAnd(a.attr.party, a.bytes(0), a.bytes(1), C(a), N(a), a.key(2), a.nonce(3), a.key(4),
                         a.nonce(5), a.out_bytes(0), stream);
  })
};
TFE_ACCEL_STEP(PieceSelectAndStep);

struct MaskScaledP0Step : StepBase {
  TFE_ACCEL_SPEC("MpcTruncMsb0MaskScaledP0", {"x0: int64", "x1: int64", "k: int64", "key: int32", "nonce: int64"},
                 {"c0: int64"}, {"lift: int = 0"}, {"x0", "x1"}, PrependInput2,
                 "MSB-0 masking after a public multiplication, P0: c0 = (x0 + x1) * k_j + lift + r0.");
  static bool Check(StepArgs& a) { return VectorOf(a, 2, -1); }
  static bool OutputShapes(StepArgs& a, Shapes* s) {
    s->assign(1, Prepend(a.tensor(2).dim_size(0), a.tensor(0).shape()));
    return true;
  }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    TruncMsb0MaskScaledP0(a.in(0), a.in(1), a.in(2), a.tensor(2).dim_size(0), a.tensor(0).NumElements(), a.key(3),
                          a.nonce(4), a.attr.lift, a.out(0), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::TruncMsb0MaskScaledP0(a.in(0), a.in(1), a.in(2), a.tensor(2).dim_size(0), a.tensor(0).NumElements(),
                                a.key(3), a.nonce(4), a.attr.lift, a.out(0), stream);
  })
};
TFE_ACCEL_STEP(MaskScaledP0Step);

struct MaskScaledP1Step : StepBase {
  TFE_ACCEL_SPEC("MpcTruncMsb0MaskScaledP1", {"x2: int64", "k: int64", "r1: int64"}, {"c1: int64"}, {}, {},
                 ShapeOfR1, "MSB-0 masking after a public multiplication, P1: c1 = x2 * k_j + r1.");
  static TensorShape Shape(StepArgs& a) { return Prepend(a.tensor(1).dim_size(0), a.tensor(0).shape()); }
  static bool Check(StepArgs& a) { return VectorOf(a, 1, -1) && ShapeIs(a, 2, Shape(a)); }
  static bool OutputShapes(StepArgs& a, Shapes* s) {
    s->assign(1, Shape(a));
    return true;
  }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    TruncMsb0MaskScaledP1(a.in(0), a.in(1), a.tensor(1).dim_size(0), a.tensor(0).NumElements(), a.in(2), a.out(0), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    cuda::TruncMsb0MaskScaledP1(a.in(0), a.in(1), a.tensor(1).dim_size(0), a.tensor(0).NumElements(), a.in(2),
                                a.out(0), stream);
  })
};
TFE_ACCEL_STEP(MaskScaledP1Step);

// mul_ab(f, b), step 1 per party (see MulAbStep1 in sigmoid_steps.h for the output layouts).
#define TFE_ACCEL_MULAB1_INPUTS \
  "f_a: int64", "f_b: int64", "c0: int64", "b_a: bool", "b_b: bool", TFE_ACCEL_ZERO_SHARE_INPUTS

Status MulAbPairOutputs(InferenceContext* c, const bool* is_pair) {  // outputs f.shape or [2] + f.shape
  ShapeHandle pair;
  TF_RETURN_IF_ERROR(c->Concatenate(c->Vector(2), c->input(0), &pair));
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, is_pair[i] ? pair : c->input(0));
  return ::tensorflow::OkStatus();
}

constexpr bool kMulAb1Pair[3][5] = {{false, true, true, false, false},
                                    {false, false, false, true, true},
                                    {false, false, false, false, false}};

template <int kParty>
struct MulAbStep1Step : StepBase {
  static Status ShapeFn(InferenceContext* c) { return MulAbPairOutputs(c, kMulAb1Pair[kParty]); }
  static const StepSpec& Spec() {
    static const StepSpec specs[3] = {
        {"MpcMulAbStep1P0", {TFE_ACCEL_MULAB1_INPUTS},
         {"s_r0: int64", "m_to_p1: int64", "m_to_p2: int64", "s_r1: int64", "wc_to_p2: int64"}, {},
         {"f_a", "f_b", "b_a", "b_b"}, ShapeFn, "mul_ab(f, b) step 1, P0: sender of routine 0, OT helper of routine 1."},
        {"MpcMulAbStep1P1", {TFE_ACCEL_MULAB1_INPUTS},
         {"s_r0: int64", "wc_to_p2: int64", "s_r1: int64", "m_to_p2: int64", "m_to_p0: int64"}, {},
         {"f_a", "f_b", "b_a", "b_b"}, ShapeFn, "mul_ab(f, b) step 1, P1: OT helper of routine 0, sender of routine 1."},
        {"MpcMulAbStep1P2", {TFE_ACCEL_MULAB1_INPUTS},
         {"s_r0: int64", "wc_to_p1: int64", "s_r1: int64", "wc_to_p0: int64"}, {},
         {"f_a", "f_b", "b_a", "b_b"}, ShapeFn, "mul_ab(f, b) step 1, P2: OT helper of both routines."}};
    return specs[kParty];
  }
  static bool Check(StepArgs& a) {
    i64 K, n;
    return LeadingSplit(a, 0, &K, &n) && VectorOf(a, 2, K);
  }
  static bool OutputShapes(StepArgs& a, Shapes* s) {
    for (int i = 0; i < a.num_outputs(); ++i)
      s->push_back(kMulAb1Pair[kParty][i] ? Prepend(2, a.tensor(0).shape()) : a.tensor(0).shape());
    return true;
  }
  static MulAbStep1Out Outs(StepArgs& a) {
    MulAbStep1Out o;
    if (kParty == 0) {
      o.s_r0 = a.out(0); o.m_next = a.out(1); o.m_prev = a.out(2); o.s_r1 = a.out(3); o.wc_a = a.out(4);
    } else if (kParty == 1) {
      o.s_r0 = a.out(0); o.wc_a = a.out(1); o.s_r1 = a.out(2); o.m_next = a.out(3); o.m_prev = a.out(4);
    } else {
      o.s_r0 = a.out(0); o.wc_a = a.out(1); o.s_r1 = a.out(2); o.wc_b = a.out(3);
    }
    return o;
  }
  static i64 K(StepArgs& a) { return a.tensor(0).dim_size(0); }
  static i64 N(StepArgs& a) { return K(a) == 0 ? 0 : a.tensor(0).NumElements() / K(a); }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    MulAbStep1(kParty, a.in(0), a.in(1), a.in(2), a.bools(3), a.bools(4), K(a), N(a), a.key(5), a.nonce(6), a.key(7),
               a.nonce(8), Outs(a), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    const MulAbStep1Out o = Outs(a);
    cuda::MulAbStep1Dev dev;
    dev.s_r0 = o.s_r0; dev.s_r1 = o.s_r1; dev.m_next = o.m_next; dev.m_prev = o.m_prev; dev.wc_a = o.wc_a;
    dev.wc_b = o.wc_b;
    cuda::MulAbStep1(kParty, a.in(0), a.in(1), a.in(2), a.bytes(3), a.bytes(4), K(a), N(a), a.key(5), a.nonce(6),
                     a.key(7), a.nonce(8), dev, stream);
  })
};
using MulAbStep1P0 = MulAbStep1Step<0>;
using MulAbStep1P1 = MulAbStep1Step<1>;
using MulAbStep1P2 = MulAbStep1Step<2>;
TFE_ACCEL_STEP(MulAbStep1P0);
TFE_ACCEL_STEP(MulAbStep1P1);
TFE_ACCEL_STEP(MulAbStep1P2);

// mul_ab step 2 and the sum over pieces: inputs after (b_a, b_b), and which of them are OT pairs.
constexpr bool kMulAb2Pair[3][6] = {{false, false, false, true, false, false},
                                    {false, false, false, true, false, false},
                                    {false, false, true, false, true, false}};

template <int kParty>
struct MulAbStep2Step : StepBase {
  static const StepSpec& Spec() {
    static const StepSpec specs[3] = {
        {"MpcMulAbStep2P0",
         {"b_a: bool", "b_b: bool", "s_r0_from_p1: int64", "s_r0_from_p2: int64", "s_r1: int64", "m_from_p1: int64",
          "wc_from_p2: int64"},
         {"y_a: int64", "y_b: int64"}, {}, {"b_a", "b_b"}, DropLeading,
         "mul_ab(f, b) step 2 and sum over pieces, P0: its two output shares."},
        {"MpcMulAbStep2P1",
         {"b_a: bool", "b_b: bool", "s_r0: int64", "s_r1_from_p0: int64", "s_r1_from_p2: int64", "m_from_p0: int64",
          "wc_from_p2: int64"},
         {"y_a: int64", "y_b: int64"}, {}, {"b_a", "b_b"}, DropLeading,
         "mul_ab(f, b) step 2 and sum over pieces, P1: its two output shares."},
        {"MpcMulAbStep2P2",
         {"b_a: bool", "b_b: bool", "s_r0: int64", "s_r1: int64", "m_from_p0: int64", "wc_from_p1: int64",
          "m_from_p1: int64", "wc_from_p0: int64"},
         {"y_a: int64", "y_b: int64"}, {}, {"b_a", "b_b"}, DropLeading,
         "mul_ab(f, b) step 2 and sum over pieces, P2: its two output shares."}};
    return specs[kParty];
  }
  static bool Check(StepArgs& a) {
    i64 K, n;
    if (!LeadingSplit(a, 0, &K, &n)) return false;
    const TensorShape shape = a.tensor(0).shape(), pair = Prepend(2, shape);
    for (int i = 2; i < static_cast<int>(a.spec.inputs.size()); ++i)
      if (!ShapeIs(a, i, kMulAb2Pair[kParty][i - 2] ? pair : shape)) return false;
    return true;
  }
  static bool OutputShapes(StepArgs& a, Shapes* s) {
    TensorShape out = a.tensor(0).shape();
    out.RemoveDim(0);
    s->assign(2, out);
    return true;
  }
  static MulAbStep2In Ins(StepArgs& a) {
    MulAbStep2In in;
    if (kParty == 0) {
      in.in1 = a.in(2); in.in2 = a.in(3); in.own = a.in(4); in.m = a.in(5); in.wc = a.in(6);
    } else if (kParty == 1) {
      in.own = a.in(2); in.in1 = a.in(3); in.in2 = a.in(4); in.m = a.in(5); in.wc = a.in(6);
    } else {
      in.own = a.in(2); in.own2 = a.in(3); in.m = a.in(4); in.wc = a.in(5); in.m2 = a.in(6); in.wc2 = a.in(7);
    }
    return in;
  }
  static i64 K(StepArgs& a) { return a.tensor(0).dim_size(0); }
  static i64 N(StepArgs& a) { return K(a) == 0 ? 0 : a.tensor(0).NumElements() / K(a); }
  static void Cpu(StepArgs& a, const ParallelFor& pf) {
    MulAbStep2(kParty, Ins(a), a.bools(0), a.bools(1), K(a), N(a), a.out(0), a.out(1), pf);
  }
  TFE_ACCEL_GPU_ONLY(static void Gpu(StepArgs& a, cudaStream_t stream) {
    const MulAbStep2In in = Ins(a);
    cuda::MulAbStep2Dev dev;
    dev.own = in.own; dev.own2 = in.own2; dev.in1 = in.in1; dev.in2 = in.in2;
    dev.m = in.m; dev.wc = in.wc; dev.m2 = in.m2; dev.wc2 = in.wc2;
    cuda::MulAbStep2(kParty, dev, a.bytes(0), a.bytes(1), K(a), N(a), a.out(0), a.out(1), stream);
  })
};
using MulAbStep2P0 = MulAbStep2Step<0>;
using MulAbStep2P1 = MulAbStep2Step<1>;
using MulAbStep2P2 = MulAbStep2Step<2>;
TFE_ACCEL_STEP(MulAbStep2P0);
TFE_ACCEL_STEP(MulAbStep2P1);
TFE_ACCEL_STEP(MulAbStep2P2);

}  // namespace
}  // namespace tfe_accel
