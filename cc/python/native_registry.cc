#include "native_registry.h"

namespace tfe_accel {
namespace py_glue {

void RegisterAll(pybind11::module_& m) { (void)m; }

}  // namespace py_glue
}  // namespace tfe_accel
