// pybind11 glue for the elementwise RSS product step (cc/kernels/rss_elementwise.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "../kernels/chacha20.h"
#include "../kernels/rss_elementwise.h"
#include "native_common.h"
#include "native_registry.h"

namespace tfe_accel {
namespace py_glue {

namespace {
void KeyWords(const py::handle& obj, const char* name, u32 out[8]) {
  auto k = Require<std::int32_t>(obj, name);
  if (k.ndim() != 1 || k.shape(0) != kSeedWords)
    throw py::value_error(std::string(name) + " must have shape (8,)");
  for (int i = 0; i < kSeedWords; ++i) out[i] = static_cast<u32>(k.at(i));
}
}  // namespace

void RegisterElementwise(py::module_& m) {
  m.def("rss_mul",
        [](const py::handle& x_i, const py::handle& x_next, const py::handle& y_i,
           const py::handle& y_next, const py::handle& key0, std::int64_t nonce0,
           const py::handle& key1, std::int64_t nonce1) {
          const char* names[4] = {"x_i", "x_next", "y_i", "y_next"};
          const py::handle objs[4] = {x_i, x_next, y_i, y_next};
          py::array_t<std::int64_t, py::array::c_style> a[4];
          for (int i = 0; i < 4; ++i) {
            a[i] = Require<std::int64_t>(objs[i], names[i]);
            if (ShapeOf(a[i]) != ShapeOf(a[0]))
              throw py::value_error(std::string(names[i]) + " must have the shape of x_i");
          }
          u32 k0[8], k1[8];
          KeyWords(key0, "key0", k0);
          KeyWords(key1, "key1", k1);
          py::array_t<std::int64_t> z(ShapeOf(a[0]));
          auto u = [&](int i) { return reinterpret_cast<const u64*>(a[i].data()); };
          Run([&] {
            RssMul(u(0), u(1), u(2), u(3), k0, nonce0, k1, nonce1,
                   reinterpret_cast<u64*>(z.mutable_data()), a[0].size(), Pool());
          });
          return z;
        },
        py::arg("x_i"), py::arg("x_next"), py::arg("y_i"), py::arg("y_next"), py::arg("key0"),
        py::arg("nonce0"), py::arg("key1"), py::arg("nonce1"),
        "Party i's local step of ABY3's elementwise private product with in-kernel zero share.");
}

}  // namespace py_glue
}  // namespace tfe_accel
