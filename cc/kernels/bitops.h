// tfe-accel: TF Encrypted's bit-manipulation ops (operations/aux), with TFE's exact semantics.
// Used by ABY3's boolean circuits (Kogge-Stone carry, bit decomposition).
#ifndef TFE_ACCEL_CC_KERNELS_BITOPS_H_
#define TFE_ACCEL_CC_KERNELS_BITOPS_H_

#include <type_traits>

#include "common.h"

namespace tfe_accel {

// out[i] = bits start, start+stride, start+2*stride, ... of x[i], packed from bit 0 up.
template <typename T>
inline T BitGatherOne(T v, int start, int stride) {
  using U = typename std::make_unsigned<T>::type;
  const U uv = static_cast<U>(v);
  U ans = 0;
  int i = 0;
  for (int d = start; d < static_cast<int>(sizeof(T) * 8); d += stride, ++i)
    ans |= static_cast<U>(((uv >> d) & 1u) << i);
  return static_cast<T>(ans);
}

// Validates (start, stride) for a dtype of `bits` bits; throws KernelArgumentError.
void CheckBitGatherArgs(int bits, int start, int stride);
void CheckBitSplitArgs(int bits, int stride);

template <typename T>
void BitGather(const T* x, T* out, i64 n, int start, int stride, const ParallelFor& pf);
// out has shape [stride, n]: out[s * n + i] = BitGather(x[i], s, stride).
template <typename T>
void BitSplitAndGather(const T* x, T* out, i64 n, int stride, const ParallelFor& pf);
// Reverses the 64 bits of each element.
void BitReverse(const i64* x, i64* out, i64 n, const ParallelFor& pf);
// XOR of the indices of the set bits of each element.
void XorIndices(const i64* x, i64* out, i64 n, const ParallelFor& pf);

}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_KERNELS_BITOPS_H_
