#include "bitops.h"

#include <string>

namespace tfe_accel {

void CheckBitGatherArgs(int bits, int start, int stride) {
  if (stride < 1 || stride > bits)
    throw KernelArgumentError("stride must be in [1, " + std::to_string(bits) + "], got " +
                              std::to_string(stride));
  if (start < 0 || start >= bits)
    throw KernelArgumentError("start must be in [0, " + std::to_string(bits) + "), got " +
                              std::to_string(start));
}

void CheckBitSplitArgs(int bits, int stride) {
  if (stride < 1 || stride > bits || bits % stride != 0)
    throw KernelArgumentError("stride must divide the bit length " + std::to_string(bits) +
                              ", got " + std::to_string(stride));
}

template <typename T>
void BitGather(const T* x, T* out, i64 n, int start, int stride, const ParallelFor& pf) {
  CheckBitGatherArgs(static_cast<int>(sizeof(T) * 8), start, stride);
  pf(n, 64, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; ++i) out[i] = BitGatherOne<T>(x[i], start, stride);
  });
}

template <typename T>
void BitSplitAndGather(const T* x, T* out, i64 n, int stride, const ParallelFor& pf) {
  CheckBitSplitArgs(static_cast<int>(sizeof(T) * 8), stride);
  pf(n, 64 * stride, [&](i64 b, i64 e) {
    for (int s = 0; s < stride; ++s)
      for (i64 i = b; i < e; ++i) out[s * n + i] = BitGatherOne<T>(x[i], s, stride);
  });
}

namespace {
inline u64 Reverse64(u64 v) {
  v = ((v >> 1) & 0x5555555555555555ull) | ((v & 0x5555555555555555ull) << 1);
  v = ((v >> 2) & 0x3333333333333333ull) | ((v & 0x3333333333333333ull) << 2);
  v = ((v >> 4) & 0x0F0F0F0F0F0F0F0Full) | ((v & 0x0F0F0F0F0F0F0F0Full) << 4);
  return __builtin_bswap64(v);
}
inline u64 XorIdx(u64 v) {
  u64 ans = 0;
  while (v) {
    ans ^= static_cast<u64>(__builtin_ctzll(v));
    v &= v - 1;
  }
  return ans;
}
}  // namespace

void BitReverse(const i64* x, i64* out, i64 n, const ParallelFor& pf) {
  pf(n, 8, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; ++i) out[i] = static_cast<i64>(Reverse64(static_cast<u64>(x[i])));
  });
}

void XorIndices(const i64* x, i64* out, i64 n, const ParallelFor& pf) {
  pf(n, 64, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; ++i) out[i] = static_cast<i64>(XorIdx(static_cast<u64>(x[i])));
  });
}

#define TFE_ACCEL_INSTANTIATE(T)                                                        \
  template void BitGather<T>(const T*, T*, i64, int, int, const ParallelFor&);         \
  template void BitSplitAndGather<T>(const T*, T*, i64, int, const ParallelFor&);
TFE_ACCEL_INSTANTIATE(std::int8_t)
TFE_ACCEL_INSTANTIATE(std::int16_t)
TFE_ACCEL_INSTANTIATE(std::int32_t)
TFE_ACCEL_INSTANTIATE(std::int64_t)
#undef TFE_ACCEL_INSTANTIATE

}  // namespace tfe_accel
