// tfe-accel: registration hooks of the pybind11 module, one per kernel family, so each family's
// glue lives in its own file (native_*.cc) and RegisterAll lists them in one place.
#ifndef TFE_ACCEL_CC_PYTHON_NATIVE_REGISTRY_H_
#define TFE_ACCEL_CC_PYTHON_NATIVE_REGISTRY_H_

#include <pybind11/pybind11.h>

namespace tfe_accel {
namespace py_glue {

void RegisterPrgAndBitops(pybind11::module_& m);   // native_module.cc
void RegisterMatmul(pybind11::module_& m);         // native_matmul.cc: ring_matmul, rss_matmul
void RegisterMpcSteps(pybind11::module_& m);       // native_mpc_steps.cc: truncation, sigmoid steps
void RegisterCuda(pybind11::module_& m);           // native_cuda.cc (only with TFE_ACCEL_CUDA=ON)
void RegisterElementwise(pybind11::module_& m);    // native_elementwise.cc: rss_mul
void RegisterNet(pybind11::module_& m);            // native_net.cc: link shaper and probes
void RegisterAll(pybind11::module_& m);

}  // namespace py_glue
}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_PYTHON_NATIVE_REGISTRY_H_
