#include "native_registry.h"

namespace tfe_accel {
namespace py_glue {

// Families are declared weak so the module links while a family is absent from a build
// (the CUDA family exists only with TFE_ACCEL_CUDA=ON); `_native.families()` lists what is in.
__attribute__((weak)) void RegisterMatmul(pybind11::module_& m);
__attribute__((weak)) void RegisterMpcSteps(pybind11::module_& m);
__attribute__((weak)) void RegisterCuda(pybind11::module_& m);
__attribute__((weak)) void RegisterElementwise(pybind11::module_& m);
__attribute__((weak)) void RegisterNet(pybind11::module_& m);

void RegisterAll(pybind11::module_& m) {
  pybind11::list families;
  families.append("prg");
  families.append("bitops");
  if (RegisterMatmul) { RegisterMatmul(m); families.append("matmul"); }
  if (RegisterMpcSteps) { RegisterMpcSteps(m); families.append("mpc_steps"); }
  if (RegisterCuda) { RegisterCuda(m); families.append("cuda"); }
  if (RegisterElementwise) { RegisterElementwise(m); families.append("elementwise"); }
  if (RegisterNet) { RegisterNet(m); families.append("net"); }
  m.attr("_families") = families;
  m.def("families", [families] { return families; }, "Kernel families compiled into this module.");
}

}  // namespace py_glue
}  // namespace tfe_accel
