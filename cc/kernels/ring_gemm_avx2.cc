// Compiled with -mavx2: ring GEMM kernels for CPUs without AVX-512. AVX2 has no 64x64-bit low
// multiply; it is built from three 32x32->64 vpmuludq:
//   a*b mod 2^64 = lo(a)*lo(b) + ((hi(a)*lo(b) + lo(a)*hi(b)) << 32)   (mod 2^64).
#include <immintrin.h>

#include <algorithm>

#include "ring_gemm.h"

namespace tfe_accel {
namespace ring_gemm_detail {
namespace {

constexpr int kMr = 4;
constexpr int kNr = 8;  // two ymm of 4 uint64

inline __m256i MulLo64(__m256i a, __m256i a_hi, __m256i b, __m256i b_hi) {
  const __m256i lo = _mm256_mul_epu32(a, b);
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(a_hi, b), _mm256_mul_epu32(a, b_hi));
  return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}
inline __m256i MulLo64(__m256i a, __m256i b) {
  return MulLo64(a, _mm256_srli_epi64(a, 32), b, _mm256_srli_epi64(b, 32));
}

void Micro(i64 kc, const u64* ap, const u64* bp, u64* c, i64 ldc, bool accumulate) {
  __m256i acc[kMr][2];
#pragma GCC unroll 4
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (i64 k = 0; k < kc; ++k) {
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(bp));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(bp + 4));
    const __m256i b0h = _mm256_srli_epi64(b0, 32);
    const __m256i b1h = _mm256_srli_epi64(b1, 32);
#pragma GCC unroll 4
    for (int r = 0; r < kMr; ++r) {
      const __m256i a = _mm256_set1_epi64x(static_cast<long long>(ap[r]));
      const __m256i ah = _mm256_set1_epi64x(static_cast<long long>(ap[r] >> 32));
      acc[r][0] = _mm256_add_epi64(acc[r][0], MulLo64(a, ah, b0, b0h));
      acc[r][1] = _mm256_add_epi64(acc[r][1], MulLo64(a, ah, b1, b1h));
    }
    ap += kMr;
    bp += kNr;
  }
#pragma GCC unroll 4
  for (int r = 0; r < kMr; ++r) {
    __m256i* row = reinterpret_cast<__m256i*>(c + r * ldc);
    if (accumulate) {
      acc[r][0] = _mm256_add_epi64(acc[r][0], _mm256_loadu_si256(row));
      acc[r][1] = _mm256_add_epi64(acc[r][1], _mm256_loadu_si256(row + 1));
    }
    _mm256_storeu_si256(row, acc[r][0]);
    _mm256_storeu_si256(row + 1, acc[r][1]);
  }
}

inline u64 HSum(__m256i v) {
  alignas(32) u64 t[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), v);
  return t[0] + t[1] + t[2] + t[3];
}

void Dot(i64 r0, i64 r1, i64 K, const u64* mat, i64 ld, const u64* v0, const u64* v1, u64* out0,
         u64* out1, bool accumulate) {
  const i64 kfull = K & ~i64{3};
  for (i64 r = r0; r < r1; ++r) {
    const u64* row = mat + r * ld;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;
    for (i64 k = 0; k < kfull; k += 4) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + k));
      const __m256i xh = _mm256_srli_epi64(x, 32);
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v0 + k));
      s0 = _mm256_add_epi64(s0, MulLo64(x, xh, w0, _mm256_srli_epi64(w0, 32)));
      if (v1) {
        const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v1 + k));
        s1 = _mm256_add_epi64(s1, MulLo64(x, xh, w1, _mm256_srli_epi64(w1, 32)));
      }
    }
    u64 t0 = HSum(s0), t1 = HSum(s1);
    for (i64 k = kfull; k < K; ++k) {
      t0 += row[k] * v0[k];
      if (v1) t1 += row[k] * v1[k];
    }
    out0[r] = accumulate ? out0[r] + t0 : t0;
    if (v1) out1[r] = accumulate ? out1[r] + t1 : t1;
  }
}

void Axpy(i64 R, i64 c0, i64 c1, const u64* mat, i64 ld, const u64* v0, const u64* v1, u64* out0,
          u64* out1, bool accumulate) {
  constexpr i64 kChunk = 8192;  // 64 KiB of output per pass (L2); long contiguous row reads
  for (i64 cb = c0; cb < c1; cb += kChunk) {
    const i64 ce = std::min(c1, cb + kChunk);
    const i64 cv = cb + ((ce - cb) & ~i64{3});
    if (!accumulate) {
      for (i64 c = cb; c < ce; ++c) out0[c] = 0;
      if (v1)
        for (i64 c = cb; c < ce; ++c) out1[c] = 0;
    }
    for (i64 r = 0; r < R; ++r) {
      const u64* row = mat + r * ld;
      const __m256i a0 = _mm256_set1_epi64x(static_cast<long long>(v0[r]));
      const __m256i a0h = _mm256_set1_epi64x(static_cast<long long>(v0[r] >> 32));
      const u64 s1 = v1 ? v1[r] : 0;
      const __m256i a1 = _mm256_set1_epi64x(static_cast<long long>(s1));
      const __m256i a1h = _mm256_set1_epi64x(static_cast<long long>(s1 >> 32));
      for (i64 c = cb; c < cv; c += 4) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c));
        const __m256i xh = _mm256_srli_epi64(x, 32);
        __m256i* o0 = reinterpret_cast<__m256i*>(out0 + c);
        _mm256_storeu_si256(o0, _mm256_add_epi64(_mm256_loadu_si256(o0), MulLo64(a0, a0h, x, xh)));
        if (v1) {
          __m256i* o1 = reinterpret_cast<__m256i*>(out1 + c);
          _mm256_storeu_si256(o1,
                              _mm256_add_epi64(_mm256_loadu_si256(o1), MulLo64(a1, a1h, x, xh)));
        }
      }
      for (i64 c = cv; c < ce; ++c) {
        out0[c] += v0[r] * row[c];
        if (v1) out1[c] += s1 * row[c];
      }
    }
  }
}

}  // namespace

const IsaKernels& Avx2Kernels() {
  static const IsaKernels k{kMr, kNr, &Micro, &Dot, &Axpy, "avx2"};
  return k;
}

}  // namespace ring_gemm_detail
}  // namespace tfe_accel
