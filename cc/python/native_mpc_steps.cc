// tfe-accel: pybind11 glue for the MPC protocol-step kernels (truncation, Kogge-Stone / bit
// extraction). Thin: checks dtypes and shapes, allocates, calls cc/kernels/{truncation,sigmoid_steps}.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "../kernels/chacha20.h"
#include "../kernels/private_compare.h"
#include "../kernels/sigmoid_steps.h"
#include "../kernels/truncation.h"
#include "native_common.h"
#include "native_registry.h"

namespace py = pybind11;

namespace tfe_accel {
namespace py_glue {

namespace {

using I64Array = py::array_t<std::int64_t, py::array::c_style>;

std::string ShapeStr(const py::array& a) {
  return py::str(py::tuple(py::cast(ShapeOf(a)))).cast<std::string>();
}

std::vector<u32> Key(const py::handle& obj, const char* name) {
  auto k = Require<std::int32_t>(obj, name);
  if (k.ndim() != 1 || k.shape(0) != kSeedWords)
    throw py::value_error(std::string(name) + " must have shape (8,), got " + ShapeStr(k));
  std::vector<u32> out(kSeedWords);
  for (int i = 0; i < kSeedWords; ++i) out[i] = static_cast<u32>(k.at(i));
  return out;
}

void SameShape(const py::array& a, const char* an, const py::array& b, const char* bn) {
  if (ShapeOf(a) != ShapeOf(b))
    throw py::value_error(std::string(bn) + " must have the same shape as " + an + ", got " +
                          ShapeStr(b) + " vs " + ShapeStr(a));
}

std::vector<py::ssize_t> Dims(const std::vector<i64>& shape) { return ShapeArg(shape); }

u64* U(I64Array& a) { return reinterpret_cast<u64*>(a.mutable_data()); }
const u64* C(const I64Array& a) { return reinterpret_cast<const u64*>(a.data()); }

template <typename T>
struct Half { using type = T; };
template <> struct Half<std::int64_t> { using type = std::int32_t; };
template <> struct Half<std::int32_t> { using type = std::int16_t; };
template <> struct Half<std::int16_t> { using type = std::int8_t; };
template <> struct Half<std::int8_t> { using type = std::int8_t; };

template <typename In>
py::tuple KsRound(const py::handle& ga, const py::handle& gb, const py::handle& pa,
                  const py::handle& pb, const std::vector<u32>& ka, i64 na,
                  const std::vector<u32>& kb, i64 nb) {
  using Out = typename Half<In>::type;
  auto g_a = Require<In>(ga, "g_a"), g_b = Require<In>(gb, "g_b");
  auto p_a = Require<In>(pa, "p_a"), p_b = Require<In>(pb, "p_b");
  SameShape(g_a, "g_a", g_b, "g_b");
  SameShape(g_a, "g_a", p_a, "p_a");
  SameShape(g_a, "g_a", p_b, "p_b");
  auto dims = ShapeOf(g_a);
  py::array_t<Out> zg(dims), zp(dims), s1a(dims), s1b(dims);
  const i64 n = g_a.size();
  Run([&] {
    KoggeStoneRound<In, Out>(g_a.data(), g_b.data(), p_a.data(), p_b.data(), ka.data(), na,
                             kb.data(), nb, zg.mutable_data(), zp.mutable_data(),
                             s1a.mutable_data(), s1b.mutable_data(), n, Pool());
  });
  return py::make_tuple(zg, zp, s1a, s1b);
}

template <typename T>
py::tuple KsUpdate(const py::handle& a, const py::handle& b, const py::handle& zo,
                   const py::handle& zr) {
  auto s1a = Require<T>(a, "gs1_a"), s1b = Require<T>(b, "gs1_b");
  auto z_own = Require<T>(zo, "zg_own"), z_recv = Require<T>(zr, "zg_recv");
  SameShape(s1a, "gs1_a", s1b, "gs1_b");
  SameShape(s1a, "gs1_a", z_own, "zg_own");
  SameShape(s1a, "gs1_a", z_recv, "zg_recv");
  auto dims = ShapeOf(s1a);
  py::array_t<T> ga(dims), gb(dims);
  Run([&] {
    KoggeStoneUpdate<T>(s1a.data(), s1b.data(), z_own.data(), z_recv.data(), ga.mutable_data(),
                        gb.mutable_data(), s1a.size(), Pool());
  });
  return py::make_tuple(ga, gb);
}

std::string DtypeName(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array");
  return py::str(py::reinterpret_borrow<py::array>(obj).dtype()).cast<std::string>();
}


using BoolArray = py::array_t<bool, py::array::c_style>;

std::vector<py::ssize_t> Prepend(py::ssize_t k, const std::vector<py::ssize_t>& dims) {
  std::vector<py::ssize_t> out{k};
  out.insert(out.end(), dims.begin(), dims.end());
  return out;
}

// [K] + rest: returns K and n = prod(rest); `name` must have rank >= 1.
std::pair<i64, i64> SplitLeading(const py::array& a, const char* name) {
  if (a.ndim() < 1) throw py::value_error(std::string(name) + " must have rank >= 1 ([pieces] + shape)");
  const i64 k = a.shape(0);
  return {k, k == 0 ? 0 : static_cast<i64>(a.size()) / k};
}

I64Array Vec(const py::handle& obj, const char* name, i64 want) {
  auto v = Require<std::int64_t>(obj, name);
  if (v.ndim() != 1 || (want >= 0 && v.shape(0) != want))
    throw py::value_error(std::string(name) + " must be a vector of " +
                          (want >= 0 ? std::to_string(want) : std::string("n")) +
                          " int64 values, got shape " + ShapeStr(v));
  return v;
}

I64Array Opt(const py::handle& obj, const char* name, const std::vector<py::ssize_t>& dims,
             bool needed) {
  if (!needed) return I64Array(std::vector<py::ssize_t>{0});
  if (obj.is_none()) throw py::value_error(std::string(name) + " is required for this party");
  auto a = Require<std::int64_t>(obj, name);
  if (ShapeOf(a) != dims)
    throw py::value_error(std::string(name) + " has shape " + ShapeStr(a) + ", expected " +
                          py::str(py::tuple(py::cast(dims))).cast<std::string>());
  return a;
}

}  // namespace

void RegisterMpcSteps(py::module_& m) {
  // ---------------- truncation (a): ABY3 non-interactive
  m.def("truncate_local_p0", [](py::handle x0o, int amount) {
    CheckAmount(amount);
    auto x0 = Require<std::int64_t>(x0o, "x0");
    I64Array y0(ShapeOf(x0));
    Run([&] { TruncateLocalP0(C(x0), U(y0), x0.size(), amount, Pool()); });
    return y0;
  }, py::arg("x0"), py::arg("amount"),
  "ABY3 non-interactive truncation, P0: y0 = x0 >> amount (sent to P2).");
  m.def("truncate_local_p1", [](py::handle x1o, py::handle x2o, py::handle key, i64 nonce, int amount) {
    CheckAmount(amount);
    auto x1 = Require<std::int64_t>(x1o, "x1"), x2 = Require<std::int64_t>(x2o, "x2");
    SameShape(x1, "x1", x2, "x2");
    auto k = Key(key, "key");
    I64Array y1(ShapeOf(x1)), r(ShapeOf(x1));
    Run([&] { TruncateLocalP1(C(x1), C(x2), k.data(), nonce, U(y1), U(r), x1.size(), amount, Pool()); });
    return py::make_tuple(y1, r);
  }, py::arg("x1"), py::arg("x2"), py::arg("key"), py::arg("nonce"), py::arg("amount"),
  "ABY3 non-interactive truncation, P1 (key = keys[1][1], nonce = nonces[1]): returns (y1, r).");
  m.def("truncate_local_p2", [](py::handle key, i64 nonce, const std::vector<i64>& shape) {
    auto k = Key(key, "key");
    I64Array r(Dims(shape));
    Run([&] { TruncateLocalP2(k.data(), nonce, U(r), r.size(), Pool()); });
    return r;
  }, py::arg("key"), py::arg("nonce"), py::arg("shape"),
  "ABY3 non-interactive truncation, P2 (key = keys[2][0], nonce = nonces[1]): returns r.");

  // ---------------- truncation (b): MSB-0 (SecureQ8) with dealer P2, heuristic lift/unlift
  m.def("trunc_msb0_dealer", [](py::handle k20, i64 n20, py::handle k21, i64 n21, py::handle rseed,
                                const std::vector<i64>& shape, int amount, std::uint64_t unlift) {
    CheckAmount(amount);
    auto a = Key(k20, "key_20"), b = Key(k21, "key_21"), rs = Key(rseed, "r_seed");
    auto dims = Dims(shape);
    I64Array r1(dims), s1(dims), m1(dims), z20(dims), z21(dims);
    Run([&] {
      TruncMsb0Dealer(a.data(), n20, b.data(), n21, rs.data(), r1.size(), amount, unlift, U(r1),
                      U(s1), U(m1), U(z20), U(z21), Pool());
    });
    return py::make_tuple(r1, s1, m1, z20, z21);
  }, py::arg("key_20"), py::arg("nonce_20"), py::arg("key_21"), py::arg("nonce_21"),
  py::arg("r_seed"), py::arg("shape"), py::arg("amount"), py::arg("unlift") = 0,
  "MSB-0 truncation, dealer P2: returns (r1, s1, rmsb1) for P1 and P2's shares (z20, z21).");
  m.def("trunc_msb0_mask_p0", [](py::handle x0o, py::handle x1o, py::handle key, i64 nonce, std::uint64_t lift) {
    auto x0 = Require<std::int64_t>(x0o, "x0"), x1 = Require<std::int64_t>(x1o, "x1");
    SameShape(x0, "x0", x1, "x1");
    auto k = Key(key, "key");
    I64Array c0(ShapeOf(x0));
    Run([&] { TruncMsb0MaskP0(C(x0), C(x1), k.data(), nonce, lift, U(c0), x0.size(), Pool()); });
    return c0;
  }, py::arg("x0"), py::arg("x1"), py::arg("key"), py::arg("nonce"), py::arg("lift") = 0,
  "MSB-0 truncation, P0 masking (key = keys[0][0], nonce = nonces[2]): c0 (sent to P1).");
  m.def("trunc_msb0_mask_p1", [](py::handle x2o, py::handle r1o) {
    auto x2 = Require<std::int64_t>(x2o, "x2"), r1 = Require<std::int64_t>(r1o, "r1");
    SameShape(x2, "x2", r1, "r1");
    I64Array c1(ShapeOf(x2));
    Run([&] { TruncMsb0MaskP1(C(x2), C(r1), U(c1), x2.size(), Pool()); });
    return c1;
  }, py::arg("x2"), py::arg("r1"), "MSB-0 truncation, P1 masking: c1 = x2 + r1 (sent to P0).");
  m.def("trunc_msb0_unmask_p0", [](py::handle c0o, py::handle c1o, py::handle key, i64 nonce, int amount, std::uint64_t unlift) {
    CheckAmount(amount);
    auto c0 = Require<std::int64_t>(c0o, "c0"), c1 = Require<std::int64_t>(c1o, "c1");
    SameShape(c0, "c0", c1, "c1");
    auto k = Key(key, "key");
    I64Array yt(ShapeOf(c0)), z00(ShapeOf(c0));
    Run([&] { TruncMsb0UnmaskP0(C(c0), C(c1), k.data(), nonce, amount, unlift, U(yt), U(z00), c0.size(), Pool()); });
    return py::make_tuple(yt, z00);
  }, py::arg("c0"), py::arg("c1"), py::arg("key"), py::arg("nonce"), py::arg("amount"),
  py::arg("unlift") = 0, "MSB-0 truncation, P0 unmasking: returns (y_tilde0 (sent to P1), z00).");
  m.def("trunc_msb0_unmask_p1", [](py::handle c0o, py::handle c1o, py::handle s1o, py::handle m1o, py::handle key, i64 nonce, int amount) {
    CheckAmount(amount);
    auto c0 = Require<std::int64_t>(c0o, "c0"), c1 = Require<std::int64_t>(c1o, "c1");
    auto s1 = Require<std::int64_t>(s1o, "s1"), m1 = Require<std::int64_t>(m1o, "rmsb1");
    SameShape(c0, "c0", c1, "c1");
    SameShape(c0, "c0", s1, "s1");
    SameShape(c0, "c0", m1, "rmsb1");
    auto k = Key(key, "key");
    I64Array yt(ShapeOf(c0)), z11(ShapeOf(c0));
    Run([&] { TruncMsb0UnmaskP1(C(c0), C(c1), C(s1), C(m1), k.data(), nonce, amount, U(yt), U(z11), c0.size(), Pool()); });
    return py::make_tuple(yt, z11);
  }, py::arg("c0"), py::arg("c1"), py::arg("s1"), py::arg("rmsb1"), py::arg("key"),
  py::arg("nonce"), py::arg("amount"),
  "MSB-0 truncation, P1 unmasking (key = keys[1][1], nonce = nonces[1]): (y_tilde1 (sent to P0), z11).");
  m.def("trunc_msb0_combine", [](py::handle ao, py::handle bo) {
    auto a = Require<std::int64_t>(ao, "y_tilde0"), b = Require<std::int64_t>(bo, "y_tilde1");
    SameShape(a, "y_tilde0", b, "y_tilde1");
    I64Array z(ShapeOf(a));
    Run([&] { TruncMsb0Combine(C(a), C(b), U(z), a.size(), Pool()); });
    return z;
  }, py::arg("y_tilde0"), py::arg("y_tilde1"), "MSB-0 truncation, P0 and P1: y_tilde0 + y_tilde1.");

  // ---------------- bit extraction / Kogge-Stone carry
  m.def("boolean_zero_share", [](py::handle ka, i64 na, py::handle kb, i64 nb,
                                 const std::vector<i64>& shape, const std::string& dtype) -> py::array {
    auto a = Key(ka, "key_a"), b = Key(kb, "key_b");
    auto dims = Dims(shape);
    auto go = [&](auto tag) -> py::array {
      using T = decltype(tag);
      py::array_t<T> out(dims);
      Run([&] { BooleanZeroShare<T>(a.data(), na, b.data(), nb, out.mutable_data(), out.size(), Pool()); });
      return std::move(out);
    };
    if (dtype == "int64") return go(std::int64_t{});
    if (dtype == "int32") return go(std::int32_t{});
    if (dtype == "int16") return go(std::int16_t{});
    if (dtype == "int8") return go(std::int8_t{});
    throw py::type_error("dtype must be 'int8', 'int16', 'int32' or 'int64', got '" + dtype + "'");
  }, py::arg("key_a"), py::arg("nonce_a"), py::arg("key_b"), py::arg("nonce_b"), py::arg("shape"),
  py::arg("dtype") = "int64", "A party's boolean zero share (TFE _gen_zero_sharing, BOOLEAN).");
  m.def("bit_extract_setup", [](int party, py::handle xao, py::handle xbo, py::handle ka, i64 na, py::handle kb, i64 nb) {
    CheckParty(party);
    auto xa = Require<std::int64_t>(xao, "x_a"), xb = Require<std::int64_t>(xbo, "x_b");
    SameShape(xa, "x_a", xb, "x_b");
    auto a = Key(ka, "key_a"), b = Key(kb, "key_b");
    I64Array out(ShapeOf(xa));
    Run([&] { BitExtractSetup(party, C(xa), C(xb), a.data(), na, b.data(), nb, U(out), xa.size(), Pool()); });
    return out;
  }, py::arg("party"), py::arg("x_a"), py::arg("x_b"), py::arg("key_a"), py::arg("nonce_a"),
  py::arg("key_b"), py::arg("nonce_b"),
  "Bit-extraction (a2b) set-up: P0 -> (x0+x1)^alpha0 (to P2); P1 -> alpha1 (to P0); P2 -> alpha2 (to P1).");
  m.def("carry_setup_and", [](py::handle o1a, py::handle o1b, py::handle o2a, py::handle o2b, py::handle ka, i64 na, py::handle kb, i64 nb) {
    auto a1 = Require<std::int64_t>(o1a, "op1_a"), b1 = Require<std::int64_t>(o1b, "op1_b");
    auto a2 = Require<std::int64_t>(o2a, "op2_a"), b2 = Require<std::int64_t>(o2b, "op2_b");
    SameShape(a1, "op1_a", b1, "op1_b");
    SameShape(a1, "op1_a", a2, "op2_a");
    SameShape(a1, "op1_a", b2, "op2_b");
    auto a = Key(ka, "key_a"), b = Key(kb, "key_b");
    auto dims = ShapeOf(a1);
    I64Array z(dims), pa(dims), pb(dims);
    py::array_t<std::int8_t> ta(dims), tb(dims);
    Run([&] {
      CarrySetupAnd(C(a1), C(b1), C(a2), C(b2), a.data(), na, b.data(), nb, U(z), U(pa), U(pb),
                    ta.mutable_data(), tb.mutable_data(), a1.size(), Pool());
    });
    return py::make_tuple(z, pa, pb, ta, tb);
  }, py::arg("op1_a"), py::arg("op1_b"), py::arg("op2_a"), py::arg("op2_b"), py::arg("key_a"),
  py::arg("nonce_a"), py::arg("key_b"), py::arg("nonce_b"),
  "Carry set-up: shift, G = op1 & op2 local AND term (z, to P_{i-1}), P shares, bit-63 shares.");
  m.def("kogge_stone_round", [](py::handle ga, py::handle gb, py::handle pa, py::handle pb, py::handle ka, i64 na, py::handle kb, i64 nb) {
    auto a = Key(ka, "key_a"), b = Key(kb, "key_b");
    const std::string dt = DtypeName(ga, "g_a");
    if (dt == "int64") return KsRound<std::int64_t>(ga, gb, pa, pb, a, na, b, nb);
    if (dt == "int32") return KsRound<std::int32_t>(ga, gb, pa, pb, a, na, b, nb);
    if (dt == "int16") return KsRound<std::int16_t>(ga, gb, pa, pb, a, na, b, nb);
    if (dt == "int8") return KsRound<std::int8_t>(ga, gb, pa, pb, a, na, b, nb);
    throw py::type_error("g_a must have dtype int8, int16, int32 or int64, got " + dt);
  }, py::arg("g_a"), py::arg("g_b"), py::arg("p_a"), py::arg("p_b"), py::arg("key_a"),
  py::arg("nonce_a"), py::arg("key_b"), py::arg("nonce_b"),
  "One Kogge-Stone carry round, local part: returns (zg, zp, gs1_a, gs1_b) in the half-width dtype.");
  m.def("kogge_stone_update", [](py::handle a, py::handle b, py::handle zo, py::handle zr) {
    const std::string dt = DtypeName(a, "gs1_a");
    if (dt == "int64") return KsUpdate<std::int64_t>(a, b, zo, zr);
    if (dt == "int32") return KsUpdate<std::int32_t>(a, b, zo, zr);
    if (dt == "int16") return KsUpdate<std::int16_t>(a, b, zo, zr);
    if (dt == "int8") return KsUpdate<std::int8_t>(a, b, zo, zr);
    throw py::type_error("gs1_a must have dtype int8, int16, int32 or int64, got " + dt);
  }, py::arg("gs1_a"), py::arg("gs1_b"), py::arg("zg_own"), py::arg("zg_recv"),
  "Kogge-Stone G update after the round's messages: (gs1_a ^ zg_own, gs1_b ^ zg_recv).");

  // ---------------- sigmoid piece evaluation
  m.def("pivot_diff", [](int party, py::handle xao, py::handle xbo, py::handle pv) {
    CheckParty(party);
    auto xa = Require<std::int64_t>(xao, "x_a"), xb = Require<std::int64_t>(xbo, "x_b");
    SameShape(xa, "x_a", xb, "x_b");
    auto piv = Vec(pv, "pivots", -1);
    const i64 npiv = piv.shape(0);
    if (npiv < 1) throw py::value_error("pivots must not be empty");
    auto dims = Prepend(npiv, ShapeOf(xa));
    I64Array da(dims), db(dims);
    Run([&] { PivotDiff(party, C(xa), C(xb), C(piv), npiv, xa.size(), U(da), U(db), Pool()); });
    return py::make_tuple(da, db);
  }, py::arg("party"), py::arg("x_a"), py::arg("x_b"), py::arg("pivots"),
  "Comparison set-up: the party's shares of pivots - tile(x) ([C] + shape).");
  m.def("piece_select_and", [](int party, py::handle mao, py::handle mbo, py::handle ka, i64 na, py::handle kb, i64 nb) {
    CheckParty(party);
    auto ma = Require<bool>(mao, "msb_a"), mb = Require<bool>(mbo, "msb_b");
    SameShape(ma, "msb_a", mb, "msb_b");
    auto [Cp, n] = SplitLeading(ma, "msb_a");
    if (Cp < 1) throw py::value_error("msb_a must have at least one pivot row");
    auto a = Key(ka, "key_a"), b = Key(kb, "key_b");
    auto dims = ShapeOf(ma);
    dims[0] = Cp + 1;
    BoolArray z(dims);
    const i64 C = Cp, nn = n;
    Run([&] { PieceSelectAnd(party, ma.data(), mb.data(), C, nn, a.data(), na, b.data(), nb, z.mutable_data(), Pool()); });
    return z;
  }, py::arg("party"), py::arg("msb_a"), py::arg("msb_b"), py::arg("key_a"), py::arg("nonce_a"),
  py::arg("key_b"), py::arg("nonce_b"),
  "Piece selection: local term of b = [~msb, 1] & [1, ~msb ^ 1] ([C+1] + shape, bool; to P_{i-1}).");
  m.def("mul_ab_step1", [](int party, py::handle fao, py::handle fbo, py::handle c0o, py::handle bao, py::handle bbo,
                           py::handle ka, i64 na, py::handle kb, i64 nb) -> py::tuple {
    CheckParty(party);
    auto fa = Require<std::int64_t>(fao, "f_a"), fb = Require<std::int64_t>(fbo, "f_b");
    auto ba = Require<bool>(bao, "b_a"), bb = Require<bool>(bbo, "b_b");
    SameShape(fa, "f_a", fb, "f_b");
    if (ShapeOf(ba) != ShapeOf(fa)) throw py::value_error("b_a must have the same shape as f_a, got " + ShapeStr(ba) + " vs " + ShapeStr(fa));
    SameShape(ba, "b_a", bb, "b_b");
    auto [K, n] = SplitLeading(fa, "f_a");
    auto c0 = Vec(c0o, "c0", K);
    auto a = Key(ka, "key_a"), b = Key(kb, "key_b");
    auto dims = ShapeOf(fa);
    auto pair = Prepend(2, dims);
    I64Array s0(dims), s1(dims), mn(party == 2 ? dims : pair), mp(party == 2 ? dims : pair), wa(dims);
    I64Array wb(party == 2 ? dims : std::vector<py::ssize_t>{0});
    MulAbStep1Out out;
    out.s_r0 = U(s0); out.s_r1 = U(s1); out.wc_a = U(wa);
    if (party != 2) { out.m_next = U(mn); out.m_prev = U(mp); } else { out.wc_b = U(wb); }
    const i64 KK = K, nn = n;
    Run([&] { MulAbStep1(party, C(fa), C(fb), C(c0), ba.data(), bb.data(), KK, nn, a.data(), na, b.data(), nb, out, Pool()); });
    if (party == 0) return py::make_tuple(s0, mn, mp, s1, wa);
    if (party == 1) return py::make_tuple(s0, wa, s1, mn, mp);
    return py::make_tuple(s0, wa, s1, wb);
  }, py::arg("party"), py::arg("f_a"), py::arg("f_b"), py::arg("c0"), py::arg("b_a"), py::arg("b_b"),
  py::arg("key_a"), py::arg("nonce_a"), py::arg("key_b"), py::arg("nonce_b"),
  "mul_ab(f, b) step 1. P0 -> (s_r0, m_to_p1, m_to_p2, s_r1, wc_to_p2); P1 -> (s_r0, wc_to_p2, s_r1, "
  "m_to_p2, m_to_p0); P2 -> (s_r0, wc_to_p1, s_r1, wc_to_p0).");
  m.def("mul_ab_step2", [](int party, py::handle bao, py::handle bbo, py::handle own, py::handle own2,
                           py::handle in1, py::handle in2, py::handle mo, py::handle wco, py::handle m2o,
                           py::handle wc2o) {
    CheckParty(party);
    auto ba = Require<bool>(bao, "b_a"), bb = Require<bool>(bbo, "b_b");
    SameShape(ba, "b_a", bb, "b_b");
    auto [K, n] = SplitLeading(ba, "b_a");
    auto dims = ShapeOf(ba);
    auto pair = Prepend(2, dims);
    const bool p2 = party == 2;
    auto a_own = Opt(own, "own", dims, true);
    auto a_own2 = Opt(own2, "own2", dims, p2);
    auto a_in1 = Opt(in1, "in1", dims, !p2);
    auto a_in2 = Opt(in2, "in2", dims, !p2);
    auto a_m = Opt(mo, "m", pair, true);
    auto a_wc = Opt(wco, "wc", dims, true);
    auto a_m2 = Opt(m2o, "m2", pair, p2);
    auto a_wc2 = Opt(wc2o, "wc2", dims, p2);
    MulAbStep2In in;
    in.own = C(a_own); in.m = C(a_m); in.wc = C(a_wc);
    if (p2) { in.own2 = C(a_own2); in.m2 = C(a_m2); in.wc2 = C(a_wc2); } else { in.in1 = C(a_in1); in.in2 = C(a_in2); }
    std::vector<py::ssize_t> out_dims(dims.begin() + 1, dims.end());
    I64Array ya(out_dims), yb(out_dims);
    const i64 KK = K, nn = n;
    Run([&] { MulAbStep2(party, in, ba.data(), bb.data(), KK, nn, U(ya), U(yb), Pool()); });
    return py::make_tuple(ya, yb);
  }, py::arg("party"), py::arg("b_a"), py::arg("b_b"), py::arg("own"), py::arg("own2") = py::none(),
  py::arg("in1") = py::none(), py::arg("in2") = py::none(), py::arg("m") = py::none(),
  py::arg("wc") = py::none(), py::arg("m2") = py::none(), py::arg("wc2") = py::none(),
  "mul_ab(f, b) step 2 and the sum over pieces: the party's two output shares (see sigmoid_steps.h).");
  m.def("trunc_msb0_mask_scaled_p0", [](py::handle x0o, py::handle x1o, py::handle ko, py::handle key, i64 nonce, std::uint64_t lift) {
    auto x0 = Require<std::int64_t>(x0o, "x0"), x1 = Require<std::int64_t>(x1o, "x1");
    SameShape(x0, "x0", x1, "x1");
    auto k = Vec(ko, "k", -1);
    auto kk = Key(key, "key");
    I64Array c0(Prepend(k.shape(0), ShapeOf(x0)));
    Run([&] { TruncMsb0MaskScaledP0(C(x0), C(x1), C(k), k.shape(0), x0.size(), kk.data(), nonce, lift, U(c0), Pool()); });
    return c0;
  }, py::arg("x0"), py::arg("x1"), py::arg("k"), py::arg("key"), py::arg("nonce"), py::arg("lift") = 0,
  "MSB-0 masking after a public multiplication, P0: c0 = (x0 + x1) * k_j + lift + r0 ([K] + shape).");
  m.def("trunc_msb0_mask_scaled_p1", [](py::handle x2o, py::handle ko, py::handle r1o) {
    auto x2 = Require<std::int64_t>(x2o, "x2"), r1 = Require<std::int64_t>(r1o, "r1");
    auto k = Vec(ko, "k", -1);
    auto dims = Prepend(k.shape(0), ShapeOf(x2));
    if (ShapeOf(r1) != dims) throw py::value_error("r1 must have shape [K] + x2.shape, got " + ShapeStr(r1));
    I64Array c1(dims);
    Run([&] { TruncMsb0MaskScaledP1(C(x2), C(k), k.shape(0), x2.size(), C(r1), U(c1), Pool()); });
    return c1;
  }, py::arg("x2"), py::arg("k"), py::arg("r1"),
  "MSB-0 masking after a public multiplication, P1: c1 = x2 * k_j + r1 ([K] + shape).");

  // ---------------- masked-comparison msb (private_compare.h)
  using U8Array = py::array_t<std::uint8_t, py::array::c_style>;
  auto with_last = [](std::vector<py::ssize_t> d, py::ssize_t k) { d.push_back(k); return d; };
  m.def("pc_open", [](int party, py::handle xao, py::handle xbo, py::handle key, i64 nonce) {
    auto xa = Require<std::int64_t>(xao, "x_a"), xb = Require<std::int64_t>(xbo, "x_b");
    SameShape(xa, "x_a", xb, "x_b");
    auto k = Key(key, "key");
    I64Array a(ShapeOf(xb));
    Run([&] { PcOpen(party, C(xa), C(xb), k.data(), nonce, U(a), xb.size(), Pool()); });
    return a;
  }, py::arg("party"), py::arg("x_a"), py::arg("x_b"), py::arg("key"), py::arg("nonce"),
  "Masked comparison, round 1 (party 0 or 1): a = x_a + x_b + rho0 (P0) or x_b + rho1 (P1).");
  m.def("pc_dealer", [with_last](py::handle k02, i64 n02, py::handle k12, i64 n12, const std::vector<i64>& shape) {
    auto a = Key(k02, "key02"), b = Key(k12, "key12");
    BoolArray top(Dims(shape));
    U8Array d1(with_last(Dims(shape), kPcShareBits));
    Run([&] { PcDealer(a.data(), n02, b.data(), n12, d1.mutable_data(), top.mutable_data(), top.size(), Pool()); });
    return py::make_tuple(d1, top);
  }, py::arg("key02"), py::arg("nonce02"), py::arg("key12"), py::arg("nonce12"), py::arg("shape"),
  "Masked comparison, dealer P2: (d1 to P1, r_top).");
  m.def("pc_mask", [with_last](int party, py::handle ao, py::handle bo, py::handle digits, py::handle k02,
                               i64 n02, py::handle k01, i64 n01) {
    auto a = Require<std::int64_t>(ao, "a_own"), b = Require<std::int64_t>(bo, "a_recv");
    SameShape(a, "a_own", b, "a_recv");
    auto k1 = Key(k01, "key01");
    std::vector<u32> k2 = party == 0 ? Key(k02, "key02") : std::vector<u32>(kSeedWords, 0);
    U8Array dig;
    if (party == 1) {
      dig = Require<std::uint8_t>(digits, "digits");
      if (ShapeOf(dig) != with_last(ShapeOf(a), kPcShareBits))
        throw py::value_error("digits must have shape a_own.shape + (63,), got " + ShapeStr(dig));
    }
    U8Array d(with_last(ShapeOf(a), kPcPositions));
    BoolArray s1(ShapeOf(a)), s0(ShapeOf(a));
    Run([&] {
      PcMask(party, C(a), C(b), party == 1 ? dig.data() : nullptr, k2.data(), n02, k1.data(), n01,
             d.mutable_data(), s1.mutable_data(), s0.mutable_data(), a.size(), Pool());
    });
    return py::make_tuple(d, s1, s0);
  }, py::arg("party"), py::arg("a_own"), py::arg("a_recv"), py::arg("digits") = py::none(),
  py::arg("key02") = py::none(), py::arg("nonce02") = 0, py::arg("key01") = py::none(), py::arg("nonce01") = 0,
  "Masked comparison, round 2 (party 0 or 1): (d to P2, s1, s0 (P0 only)).");
  m.def("pc_resolve", [](py::handle d0o, py::handle d1o, py::handle topo, py::handle k02, i64 n02) {
    auto d0 = Require<std::uint8_t>(d0o, "d0"), d1 = Require<std::uint8_t>(d1o, "d1");
    auto top = Require<bool>(topo, "r_top");
    SameShape(d0, "d0", d1, "d1");
    auto want = ShapeOf(top);
    want.push_back(kPcPositions);
    if (ShapeOf(d0) != want) throw py::value_error("d0 must have shape r_top.shape + (64,), got " + ShapeStr(d0));
    auto k = Key(k02, "key02");
    BoolArray s2(ShapeOf(top)), s0(ShapeOf(top));
    Run([&] { PcResolve(d0.data(), d1.data(), top.data(), k.data(), n02, s2.mutable_data(), s0.mutable_data(), top.size(), Pool()); });
    return py::make_tuple(s2, s0);
  }, py::arg("d0"), py::arg("d1"), py::arg("r_top"), py::arg("key02"), py::arg("nonce02"),
  "Masked comparison, round 3, P2: (s2 to P1, s0).");
}

}  // namespace py_glue
}  // namespace tfe_accel
