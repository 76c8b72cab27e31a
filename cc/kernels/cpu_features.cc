#include "cpu_features.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define TFE_ACCEL_X86 1
#endif

namespace tfe_accel {
namespace {

#ifdef TFE_ACCEL_X86
unsigned long long ReadXcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

CpuFeatures Detect() {
  CpuFeatures f;
#ifdef TFE_ACCEL_X86
  unsigned int eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = (ecx >> 27) & 1;
  const bool avx = (ecx >> 28) & 1;
  if (!osxsave || !avx) return f;
  const unsigned long long xcr0 = ReadXcr0();
  const bool ymm_ok = (xcr0 & 0x6) == 0x6;
  const bool zmm_ok = (xcr0 & 0xE6) == 0xE6;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  f.avx2 = ymm_ok && ((ebx >> 5) & 1);
  f.avx512f = zmm_ok && ((ebx >> 16) & 1);
  f.avx512dq = f.avx512f && ((ebx >> 17) & 1);
  f.avx512ifma = f.avx512f && ((ebx >> 21) & 1);
  f.avx512bw = f.avx512f && ((ebx >> 30) & 1);
  f.avx512vl = f.avx512f && ((ebx >> 31) & 1);
  f.avx512vnni = f.avx512f && ((ecx >> 11) & 1);
  f.amx_int8 = (edx >> 25) & 1;
#endif
  return f;
}

CodePath ComputeActivePath() {
  const CpuFeatures& f = DetectCpuFeatures();
  CodePath best = CodePath::kPortable;
  if (f.avx2) best = CodePath::kAvx2;
  if (f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl) best = CodePath::kAvx512;
  const char* forced = std::getenv("TFE_ACCEL_FORCE_PATH");
  if (forced != nullptr) {
    CodePath want = best;
    if (std::strcmp(forced, "portable") == 0) want = CodePath::kPortable;
    else if (std::strcmp(forced, "avx2") == 0) want = CodePath::kAvx2;
    else if (std::strcmp(forced, "avx512") == 0) want = CodePath::kAvx512;
    if (static_cast<int>(want) < static_cast<int>(best)) best = want;
  }
  return best;
}

}  // namespace

const CpuFeatures& DetectCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

CodePath ActiveCodePath() {
  static const CodePath path = ComputeActivePath();
  return path;
}

const char* CodePathName(CodePath p) {
  switch (p) {
    case CodePath::kAvx512: return "avx512";
    case CodePath::kAvx2: return "avx2";
    default: return "portable";
  }
}

}  // namespace tfe_accel
