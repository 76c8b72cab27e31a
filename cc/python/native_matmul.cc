// tfe-accel: pybind11 glue for the ring products (cc/kernels/ring_gemm.h, rss_matmul.h).
// Same kernels as the TF ops in cc/tf/matmul_ops.cc.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../kernels/chacha20.h"
#include "../kernels/ring_gemm.h"
#include "../kernels/rss_matmul.h"
#include "native_common.h"
#include "native_registry.h"

namespace tfe_accel {
namespace py_glue {

namespace {

using Arr = py::array_t<std::int64_t, py::array::c_style>;

std::vector<i64> Dims(const py::array& a) {
  return std::vector<i64>(a.shape(), a.shape() + a.ndim());
}

// "(d0, d1, ...)" built by hand (py::cast of std::vector would need pybind11/stl.h in every
// translation unit that instantiates it).
std::string ShapeText(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

std::vector<py::ssize_t> PyDims(const std::vector<i64>& d) {
  return std::vector<py::ssize_t>(d.begin(), d.end());
}

void ReadKey(const py::handle& obj, const char* name, u32 out[8]) {
  auto k = Require<std::int32_t>(obj, name);
  if (k.ndim() != 1 || k.shape(0) != kSeedWords)
    throw py::value_error(std::string(name) + " must have shape (8,) (an int32[8] PRG key), got " +
                          ShapeText(k));
  for (int i = 0; i < kSeedWords; ++i) out[i] = static_cast<u32>(k.at(i));
}

i64 ReadNonce(const py::handle& obj, const char* name) {
  if (py::isinstance<py::array>(obj)) {
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (a.ndim() != 0)
      throw py::value_error(std::string(name) + " must be a scalar, got an array of shape " +
                            ShapeText(a));
  }
  if (py::isinstance<py::bool_>(obj) || !py::hasattr(obj, "__index__"))
    throw py::type_error(std::string(name) + " must be an integer (int64 nonce), got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  return obj.attr("__index__")().cast<i64>();
}

py::array RingMatmulPy(const py::handle& a_obj, const py::handle& b_obj, bool ta, bool tb) {
  Arr a = Require<std::int64_t>(a_obj, "a");
  Arr b = Require<std::int64_t>(b_obj, "b");
  MatmulPlan plan;
  try {
    plan = PlanMatmul(Dims(a), Dims(b), ta, tb, "a", "b");
  } catch (const KernelArgumentError& e) {
    throw py::value_error(e.what());
  }
  Arr out(PyDims(plan.out_shape));
  Run([&] { RingMatmul(plan, a.data(), b.data(), out.mutable_data(), Pool()); });
  return std::move(out);
}

py::array RssMatmulPy(const py::handle& xi_o, const py::handle& xn_o, const py::handle& yi_o,
                      const py::handle& yn_o, const py::handle& key0_o, const py::handle& key1_o,
                      const py::handle& nonce0_o, const py::handle& nonce1_o, bool ta, bool tb) {
  Arr xi = Require<std::int64_t>(xi_o, "x_i");
  Arr xn = Require<std::int64_t>(xn_o, "x_next");
  Arr yi = Require<std::int64_t>(yi_o, "y_i");
  Arr yn = Require<std::int64_t>(yn_o, "y_next");
  u32 key0[8], key1[8];
  ReadKey(key0_o, "key0", key0);
  ReadKey(key1_o, "key1", key1);
  const i64 nonce0 = ReadNonce(nonce0_o, "nonce0");
  const i64 nonce1 = ReadNonce(nonce1_o, "nonce1");
  MatmulPlan plan;
  try {
    plan = PlanRssMatmul(Dims(xi), Dims(xn), Dims(yi), Dims(yn), ta, tb);
  } catch (const KernelArgumentError& e) {
    throw py::value_error(e.what());
  }
  Arr out(PyDims(plan.out_shape));
  Run([&] {
    RssMatmul(plan, xi.data(), xn.data(), yi.data(), yn.data(), key0, nonce0, key1, nonce1,
              out.mutable_data(), Pool());
  });
  return std::move(out);
}

py::tuple PublicPrivatePy(const py::handle& p_o, const py::handle& x0_o, const py::handle& x1_o,
                          bool ta, bool tb, bool public_left) {
  Arr p = Require<std::int64_t>(p_o, "p");
  Arr x0 = Require<std::int64_t>(x0_o, "x0");
  Arr x1 = Require<std::int64_t>(x1_o, "x1");
  if (Dims(x0) != Dims(x1))
    throw py::value_error("x0 and x1 (the party's two shares) must have the same shape, got " +
                          ShapeText(x0) + " and " +
                          ShapeText(x1));
  MatmulPlan plan;
  try {
    plan = public_left ? PlanMatmul(Dims(p), Dims(x0), ta, tb, "p", "x0")
                       : PlanMatmul(Dims(x0), Dims(p), ta, tb, "x0", "p");
  } catch (const KernelArgumentError& e) {
    throw py::value_error(e.what());
  }
  Arr z0(PyDims(plan.out_shape)), z1(PyDims(plan.out_shape));
  Run([&] {
    PublicPrivateMatmul(plan, p.data(), x0.data(), x1.data(), public_left, z0.mutable_data(),
                        z1.mutable_data(), Pool());
  });
  return py::make_tuple(std::move(z0), std::move(z1));
}

}  // namespace

void RegisterMatmul(py::module_& m) {
  m.def("ring_matmul", &RingMatmulPy, py::arg("a"), py::arg("b"), py::arg("transpose_a") = false,
        py::arg("transpose_b") = false,
        "C = A.B mod 2^64 for int64 arrays (wrapping), tf.matmul's batch dims and transposes.");
  m.def("rss_matmul", &RssMatmulPy, py::arg("x_i"), py::arg("x_next"), py::arg("y_i"),
        py::arg("y_next"), py::arg("key0"), py::arg("key1"), py::arg("nonce0"), py::arg("nonce1"),
        py::arg("transpose_a") = false, py::arg("transpose_b") = false,
        "Party i's ABY3 private x private matmul step: x_i.(y_i + y_next) + x_next.y_i + a_i with "
        "a_i = U(key0 + nonce0) - U(key1 + nonce1) (TFE's _gen_zero_sharing; party i passes "
        "keys[i][0], keys[i][1], nonces[(i+2)%3], nonces[i]). Not truncated.");
  m.def(
      "public_private_matmul",
      [](const py::handle& p, const py::handle& x0, const py::handle& x1, bool ta, bool tb) {
        return PublicPrivatePy(p, x0, x1, ta, tb, true);
      },
      py::arg("p"), py::arg("x0"), py::arg("x1"), py::arg("transpose_a") = false,
      py::arg("transpose_b") = false, "(p.x0, p.x1) mod 2^64, p read once on matrix-vector shapes.");
  m.def(
      "private_public_matmul",
      [](const py::handle& x0, const py::handle& x1, const py::handle& p, bool ta, bool tb) {
        return PublicPrivatePy(p, x0, x1, ta, tb, false);
      },
      py::arg("x0"), py::arg("x1"), py::arg("p"), py::arg("transpose_a") = false,
      py::arg("transpose_b") = false, "(x0.p, x1.p) mod 2^64, p read once on matrix-vector shapes.");
  m.def("ring_gemm_path", [] { return std::string(RingGemmPathName()); },
        "The code path (avx512, avx2, portable) the ring GEMM dispatches to in this process.");
}

}  // namespace py_glue
}  // namespace tfe_accel
