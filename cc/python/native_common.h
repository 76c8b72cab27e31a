// tfe-accel: helpers for the pybind11 glue (argument checks that raise TypeError/ValueError
// naming the argument, the module's thread pool). No kernel logic lives here.
#ifndef TFE_ACCEL_CC_PYTHON_NATIVE_COMMON_H_
#define TFE_ACCEL_CC_PYTHON_NATIVE_COMMON_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "../kernels/common.h"

namespace tfe_accel {
namespace py_glue {

namespace py = pybind11;

// The module-wide thread pool size (set_num_threads); 0 = hardware concurrency.
int& NumThreads();
ParallelFor Pool();

// Requires `obj` to be a NumPy array of exactly dtype T (no silent casts); returns a C-contiguous
// view or copy. Raises TypeError naming `name` otherwise.
template <typename T>
py::array_t<T, py::array::c_style> Require(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy array of dtype " +
                         py::str(py::dtype::of<T>()).cast<std::string>() + ", got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  }
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<T>())) {
    throw py::type_error(std::string(name) + " must have dtype " +
                         py::str(py::dtype::of<T>()).cast<std::string>() + ", got " +
                         py::str(arr.dtype()).cast<std::string>());
  }
  return py::array_t<T, py::array::c_style>::ensure(arr);
}

// A shape argument, returned unchanged; ValueError naming the first negative dimension.
inline const std::vector<i64>& CheckedShape(const std::vector<i64>& shape) {
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] < 0)
      throw py::value_error("shape must not contain negative dimensions, got " +
                            std::to_string(shape[i]) + " at index " + std::to_string(i));
  return shape;
}

// A shape argument as NumPy dims (checked as by CheckedShape).
inline std::vector<py::ssize_t> ShapeArg(const std::vector<i64>& shape) {
  CheckedShape(shape);
  return std::vector<py::ssize_t>(shape.begin(), shape.end());
}

// A truncation amount: ValueError unless 1 <= amount <= 62.
inline void CheckAmount(int amount) {
  if (amount <= 0 || amount >= 63)
    throw py::value_error("amount must be in [1, 62], got " + std::to_string(amount));
}

// A party index: ValueError unless 0, 1 or 2.
inline void CheckParty(int party) {
  if (party < 0 || party > 2) throw py::value_error("party must be 0, 1 or 2, got " + std::to_string(party));
}

inline std::vector<py::ssize_t> ShapeOf(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

// Runs a kernel with the GIL released, mapping KernelArgumentError to ValueError.
template <typename F>
void Run(F&& f) {
  try {
    py::gil_scoped_release release;
    f();
  } catch (const KernelArgumentError& e) {
    throw py::value_error(e.what());
  }
}

}  // namespace py_glue
}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_PYTHON_NATIVE_COMMON_H_
