// tfe-accel: run-time CPU feature detection and code-path selection.
#ifndef TFE_ACCEL_CC_KERNELS_CPU_FEATURES_H_
#define TFE_ACCEL_CC_KERNELS_CPU_FEATURES_H_

#include <string>

namespace tfe_accel {

enum class CodePath { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

struct CpuFeatures {
  bool avx2 = false;
  bool avx512f = false;
  bool avx512dq = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512ifma = false;
  bool avx512vnni = false;
  bool amx_int8 = false;
};

// What this CPU supports (cpuid + OS support for the register state).
const CpuFeatures& DetectCpuFeatures();

// The widest code path the kernels use on this machine. The environment variable
// TFE_ACCEL_FORCE_PATH=portable|avx2|avx512 lowers it (never raises it above what the CPU has);
// it is read once per process.
CodePath ActiveCodePath();
const char* CodePathName(CodePath p);

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_CPU_FEATURES_H_
