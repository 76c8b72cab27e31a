// Compiled with -mavx512f/dq (and friends): ring GEMM kernels on vpmullq (_mm512_mullo_epi64,
// the exact low 64 bits of a 64x64-bit product, i.e. multiplication mod 2^64) and vpaddq.
#include <immintrin.h>

#include <algorithm>

#include "ring_gemm.h"

namespace tfe_accel {
namespace ring_gemm_detail {
namespace {

constexpr int kMr = 8;
constexpr int kNr = 16;  // two zmm of 8 uint64

// C[8 x 16] (+)= Apack . Bpack: 16 accumulators, per k: 2 loads of B, 8 broadcasts of A,
// 16 vpmullq + 16 vpaddq.
void Micro(i64 kc, const u64* ap, const u64* bp, u64* c, i64 ldc, bool accumulate) {
  __m512i acc[kMr][2];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) {
    // The C tile is touched only after the k loop: fetch it meanwhile.
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 8), _MM_HINT_T0);
    acc[r][0] = _mm512_setzero_si512();
    acc[r][1] = _mm512_setzero_si512();
  }
  for (i64 k = 0; k < kc; ++k) {
    const __m512i b0 = _mm512_load_si512(reinterpret_cast<const void*>(bp));
    const __m512i b1 = _mm512_load_si512(reinterpret_cast<const void*>(bp + 8));
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m512i a = _mm512_set1_epi64(static_cast<long long>(ap[r]));
      acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_mullo_epi64(a, b0));
      acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_mullo_epi64(a, b1));
    }
    ap += kMr;
    bp += kNr;
  }
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) {
    u64* row = c + r * ldc;
    if (accumulate) {
      acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_loadu_si512(row));
      acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_loadu_si512(row + 8));
    }
    _mm512_storeu_si512(row, acc[r][0]);
    _mm512_storeu_si512(row + 8, acc[r][1]);
  }
}

// Sum of the 8 lanes mod 2^64. Not _mm512_reduce_add_epi64: GCC implements it with a signed
// long long addition, undefined behaviour when the ring sum wraps (found by the UBSan driver).
inline u64 HSum(__m512i v) {
  alignas(64) u64 lanes[8];
  _mm512_store_si512(reinterpret_cast<__m512i*>(lanes), v);
  u64 s = 0;
  for (int i = 0; i < 8; ++i) s += lanes[i];
  return s;
}

// Dot form, 4 rows at a time so each vector load serves 4 rows (the matrix is read once).
template <bool kTwo>
void DotImpl(i64 r0, i64 r1, i64 K, const u64* mat, i64 ld, const u64* v0, const u64* v1,
             u64* out0, u64* out1, bool accumulate) {
  const i64 kfull = K & ~i64{7};
  const __mmask8 tail = static_cast<__mmask8>((1u << (K - kfull)) - 1u);
  i64 r = r0;
  for (; r + 4 <= r1; r += 4) {
    const u64* m0 = mat + r * ld;
    const u64* m1 = m0 + ld;
    const u64* m2 = m1 + ld;
    const u64* m3 = m2 + ld;
    __m512i s00 = _mm512_setzero_si512(), s01 = s00, s02 = s00, s03 = s00;
    __m512i s10 = s00, s11 = s00, s12 = s00, s13 = s00;
    auto step = [&](__m512i x0, __m512i x1, __m512i x2, __m512i x3, __m512i w0, __m512i w1) {
      s00 = _mm512_add_epi64(s00, _mm512_mullo_epi64(x0, w0));
      s01 = _mm512_add_epi64(s01, _mm512_mullo_epi64(x1, w0));
      s02 = _mm512_add_epi64(s02, _mm512_mullo_epi64(x2, w0));
      s03 = _mm512_add_epi64(s03, _mm512_mullo_epi64(x3, w0));
      if (kTwo) {
        s10 = _mm512_add_epi64(s10, _mm512_mullo_epi64(x0, w1));
        s11 = _mm512_add_epi64(s11, _mm512_mullo_epi64(x1, w1));
        s12 = _mm512_add_epi64(s12, _mm512_mullo_epi64(x2, w1));
        s13 = _mm512_add_epi64(s13, _mm512_mullo_epi64(x3, w1));
      }
    };
    for (i64 k = 0; k < kfull; k += 8) {
      const __m512i w0 = _mm512_loadu_si512(v0 + k);
      const __m512i w1 = kTwo ? _mm512_loadu_si512(v1 + k) : w0;
      step(_mm512_loadu_si512(m0 + k), _mm512_loadu_si512(m1 + k), _mm512_loadu_si512(m2 + k),
           _mm512_loadu_si512(m3 + k), w0, w1);
    }
    if (tail) {
      const __m512i w0 = _mm512_maskz_loadu_epi64(tail, v0 + kfull);
      const __m512i w1 = kTwo ? _mm512_maskz_loadu_epi64(tail, v1 + kfull) : w0;
      step(_mm512_maskz_loadu_epi64(tail, m0 + kfull), _mm512_maskz_loadu_epi64(tail, m1 + kfull),
           _mm512_maskz_loadu_epi64(tail, m2 + kfull), _mm512_maskz_loadu_epi64(tail, m3 + kfull),
           w0, w1);
    }
    const u64 t0[4] = {HSum(s00), HSum(s01), HSum(s02), HSum(s03)};
    for (int j = 0; j < 4; ++j) out0[r + j] = accumulate ? out0[r + j] + t0[j] : t0[j];
    if (kTwo) {
      const u64 t1[4] = {HSum(s10), HSum(s11), HSum(s12), HSum(s13)};
      for (int j = 0; j < 4; ++j) out1[r + j] = accumulate ? out1[r + j] + t1[j] : t1[j];
    }
  }
  for (; r < r1; ++r) {
    const u64* m0 = mat + r * ld;
    __m512i s0 = _mm512_setzero_si512(), s1 = s0;
    for (i64 k = 0; k < kfull; k += 8) {
      const __m512i x = _mm512_loadu_si512(m0 + k);
      s0 = _mm512_add_epi64(s0, _mm512_mullo_epi64(x, _mm512_loadu_si512(v0 + k)));
      if (kTwo) s1 = _mm512_add_epi64(s1, _mm512_mullo_epi64(x, _mm512_loadu_si512(v1 + k)));
    }
    if (tail) {
      const __m512i x = _mm512_maskz_loadu_epi64(tail, m0 + kfull);
      s0 = _mm512_add_epi64(s0, _mm512_mullo_epi64(x, _mm512_maskz_loadu_epi64(tail, v0 + kfull)));
      if (kTwo)
        s1 = _mm512_add_epi64(s1,
                              _mm512_mullo_epi64(x, _mm512_maskz_loadu_epi64(tail, v1 + kfull)));
    }
    out0[r] = accumulate ? out0[r] + HSum(s0) : HSum(s0);
    if (kTwo) out1[r] = accumulate ? out1[r] + HSum(s1) : HSum(s1);
  }
}

void Dot(i64 r0, i64 r1, i64 K, const u64* mat, i64 ld, const u64* v0, const u64* v1, u64* out0,
         u64* out1, bool accumulate) {
  if (v1) {
    DotImpl<true>(r0, r1, K, mat, ld, v0, v1, out0, out1, accumulate);
  } else {
    DotImpl<false>(r0, r1, K, mat, ld, v0, v1, out0, out1, accumulate);
  }
}

// Axpy form: columns [c0, c1) in chunks whose output stays in L2; 8 matrix rows per pass over a
// chunk (each pass streams 8 long contiguous row pieces and touches the output once).
template <bool kTwo>
void AxpyImpl(i64 R, i64 c0, i64 c1, const u64* mat, i64 ld, const u64* v0, const u64* v1,
              u64* out0, u64* out1, bool accumulate) {
  constexpr i64 kChunk = 8192;  // 64 KiB of output per pass
  constexpr int kRows = 8;
  for (i64 cb = c0; cb < c1; cb += kChunk) {
    const i64 ce = std::min(c1, cb + kChunk);
    if (!accumulate) {
      for (i64 c = cb; c < ce; ++c) out0[c] = 0;
      if (kTwo)
        for (i64 c = cb; c < ce; ++c) out1[c] = 0;
    }
    i64 r = 0;
    for (; r < R; r += kRows) {
      const int rows = static_cast<int>(std::min<i64>(kRows, R - r));
      const u64* m[kRows];
      __m512i a[kRows], e[kRows];
#pragma GCC unroll 8
      for (int j = 0; j < kRows; ++j) {
        // rows past the end repeat the last row with a zero coefficient
        m[j] = mat + (r + std::min(j, rows - 1)) * ld;
        a[j] = _mm512_set1_epi64(j < rows ? static_cast<long long>(v0[r + j]) : 0);
        e[j] = _mm512_set1_epi64(kTwo && j < rows ? static_cast<long long>(v1[r + j]) : 0);
      }
      for (i64 c = cb; c < ce; c += 8) {
        const __mmask8 mk = (ce - c >= 8) ? static_cast<__mmask8>(0xFF)
                                          : static_cast<__mmask8>((1u << (ce - c)) - 1u);
        __m512i s = _mm512_maskz_loadu_epi64(mk, out0 + c);
        __m512i t = kTwo ? _mm512_maskz_loadu_epi64(mk, out1 + c) : s;
#pragma GCC unroll 8
        for (int j = 0; j < kRows; ++j) {
          const __m512i x = _mm512_maskz_loadu_epi64(mk, m[j] + c);
          s = _mm512_add_epi64(s, _mm512_mullo_epi64(a[j], x));
          if (kTwo) t = _mm512_add_epi64(t, _mm512_mullo_epi64(e[j], x));
        }
        _mm512_mask_storeu_epi64(out0 + c, mk, s);
        if (kTwo) _mm512_mask_storeu_epi64(out1 + c, mk, t);
      }
    }
  }
}

void Axpy(i64 R, i64 c0, i64 c1, const u64* mat, i64 ld, const u64* v0, const u64* v1, u64* out0,
          u64* out1, bool accumulate) {
  if (v1) {
    AxpyImpl<true>(R, c0, c1, mat, ld, v0, v1, out0, out1, accumulate);
  } else {
    AxpyImpl<false>(R, c0, c1, mat, ld, v0, v1, out0, out1, accumulate);
  }
}

}  // namespace

const IsaKernels& Avx512Kernels() {
  static const IsaKernels k{kMr, kNr, &Micro, &Dot, &Axpy, "avx512"};
  return k;
}

}  // namespace ring_gemm_detail
}  // namespace tfe_accel
