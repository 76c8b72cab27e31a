// tfe-accel: ring GEMM driver (shape planning, packing, cache blocking, threading, run-time
// dispatch) and the portable scalar kernels. The ISA-specific micro-kernels live in
// ring_gemm_avx512.cc and ring_gemm_avx2.cc.
#include "ring_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <sstream>

namespace tfe_accel {

namespace ring_gemm_detail {
namespace {

// ---- portable kernels: plain uint64 arithmetic (wraps mod 2^64 by definition) ----
constexpr int kPortMr = 4;
constexpr int kPortNr = 4;

void PortableMicro(i64 kc, const u64* ap, const u64* bp, u64* c, i64 ldc, bool accumulate) {
  u64 acc[kPortMr][kPortNr] = {};
  for (i64 k = 0; k < kc; ++k) {
    for (int r = 0; r < kPortMr; ++r) {
      const u64 a = ap[r];
      for (int j = 0; j < kPortNr; ++j) acc[r][j] += a * bp[j];
    }
    ap += kPortMr;
    bp += kPortNr;
  }
  for (int r = 0; r < kPortMr; ++r) {
    for (int j = 0; j < kPortNr; ++j) {
      c[r * ldc + j] = accumulate ? c[r * ldc + j] + acc[r][j] : acc[r][j];
    }
  }
}

void PortableDot(i64 r0, i64 r1, i64 K, const u64* mat, i64 ld, const u64* v0, const u64* v1,
                 u64* out0, u64* out1, bool accumulate) {
  for (i64 r = r0; r < r1; ++r) {
    const u64* row = mat + r * ld;
    u64 s0 = 0, s1 = 0;
    for (i64 k = 0; k < K; ++k) s0 += row[k] * v0[k];
    if (v1) {
      for (i64 k = 0; k < K; ++k) s1 += row[k] * v1[k];
    }
    out0[r] = accumulate ? out0[r] + s0 : s0;
    if (v1) out1[r] = accumulate ? out1[r] + s1 : s1;
  }
}

void PortableAxpy(i64 R, i64 c0, i64 c1, const u64* mat, i64 ld, const u64* v0, const u64* v1,
                  u64* out0, u64* out1, bool accumulate) {
  if (!accumulate) {
    for (i64 c = c0; c < c1; ++c) out0[c] = 0;
    if (v1) for (i64 c = c0; c < c1; ++c) out1[c] = 0;
  }
  for (i64 r = 0; r < R; ++r) {
    const u64* row = mat + r * ld;
    const u64 a0 = v0[r];
    for (i64 c = c0; c < c1; ++c) out0[c] += a0 * row[c];
    if (v1) {
      const u64 a1 = v1[r];
      for (i64 c = c0; c < c1; ++c) out1[c] += a1 * row[c];
    }
  }
}

}  // namespace

const IsaKernels& PortableKernels() {
  static const IsaKernels k{kPortMr, kPortNr, &PortableMicro, &PortableDot, &PortableAxpy,
                            "portable"};
  return k;
}

}  // namespace ring_gemm_detail

using ring_gemm_detail::IsaKernels;

namespace {

const IsaKernels& Kernels() {
  static const IsaKernels& k = []() -> const IsaKernels& {
    switch (ActiveCodePath()) {
      case CodePath::kAvx512: return ring_gemm_detail::Avx512Kernels();
      case CodePath::kAvx2: return ring_gemm_detail::Avx2Kernels();
      default: return ring_gemm_detail::PortableKernels();
    }
  }();
  return k;
}

// Blocking: A block MC x KC (L2), B panel KC x NC (L3), micro-panels KC x NR (L1).
// MC is at most kMc; smaller when that gives the thread pool too few output tiles.
constexpr i64 kMc = 192;
constexpr i64 kKc = 256;
constexpr i64 kNc = 512;

struct AlignedFree {
  void operator()(u64* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<u64, AlignedFree>;
Buffer AllocU64(i64 n) {
  const std::size_t bytes = ((static_cast<std::size_t>(std::max<i64>(n, 1)) * 8 + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return Buffer(static_cast<u64*>(p));
}

// Pack rows [i0, i0+mc) x cols [p0, p0+kc) of `a` into MR-row micro-panels (k-major, zero padded).
void PackA(const RingMatView& a, i64 i0, i64 mc, i64 p0, i64 kc, int mr, u64* out) {
  for (i64 ip = 0; ip < mc; ip += mr) {
    const int rows = static_cast<int>(std::min<i64>(mr, mc - ip));
    u64* dst = out + ip * kc;
    if (a.cs == 1) {
      for (int r = 0; r < rows; ++r) {
        const u64* src = a.p + (i0 + ip + r) * a.rs + p0;
        for (i64 k = 0; k < kc; ++k) dst[k * mr + r] = src[k];
      }
    } else {
      for (i64 k = 0; k < kc; ++k) {
        const u64* src = a.p + (p0 + k) * a.cs + (i0 + ip) * a.rs;
        for (int r = 0; r < rows; ++r) dst[k * mr + r] = src[r * a.rs];
      }
    }
    if (rows < mr) {
      for (i64 k = 0; k < kc; ++k)
        for (int r = rows; r < mr; ++r) dst[k * mr + r] = 0;
    }
  }
}

// Pack rows [p0, p0+kc) x cols [j0, j0+nc) of b (+ b2) into NR-column micro-panels.
void PackB(const RingMatView& b, const RingMatView& b2, i64 p0, i64 kc, i64 j0, i64 nc, int nr,
           u64* out) {
  const bool two = b2.p != nullptr;
  if (b.cs == 1 && (!two || b2.cs == 1)) {
    // Row-major B: read each row piece contiguously, scatter into the NR-column micro-panels.
    for (i64 k = 0; k < kc; ++k) {
      const u64* s = b.p + (p0 + k) * b.rs + j0;
      const u64* s2 = two ? b2.p + (p0 + k) * b2.rs + j0 : nullptr;
      for (i64 jp = 0; jp < nc; jp += nr) {
        const int cols = static_cast<int>(std::min<i64>(nr, nc - jp));
        u64* d = out + jp * kc + k * nr;
        if (two) {
          for (int j = 0; j < cols; ++j) d[j] = s[jp + j] + s2[jp + j];
        } else {
          for (int j = 0; j < cols; ++j) d[j] = s[jp + j];
        }
        for (int j = cols; j < nr; ++j) d[j] = 0;
      }
    }
    return;
  }
  for (i64 jp = 0; jp < nc; jp += nr) {
    const int cols = static_cast<int>(std::min<i64>(nr, nc - jp));
    u64* dst = out + jp * kc;
    if (b.cs == 1 && (!two || b2.cs == 1)) {
      for (i64 k = 0; k < kc; ++k) {
        const u64* s = b.p + (p0 + k) * b.rs + j0 + jp;
        u64* d = dst + k * nr;
        if (two) {
          const u64* s2 = b2.p + (p0 + k) * b2.rs + j0 + jp;
          for (int j = 0; j < cols; ++j) d[j] = s[j] + s2[j];
        } else {
          for (int j = 0; j < cols; ++j) d[j] = s[j];
        }
        for (int j = cols; j < nr; ++j) d[j] = 0;
      }
    } else {
      for (int j = 0; j < nr; ++j) {
        if (j >= cols) {
          for (i64 k = 0; k < kc; ++k) dst[k * nr + j] = 0;
          continue;
        }
        const u64* s = b.p + p0 * b.rs + (j0 + jp + j) * b.cs;
        if (two) {
          const u64* s2 = b2.p + p0 * b2.rs + (j0 + jp + j) * b2.cs;
          for (i64 k = 0; k < kc; ++k) dst[k * nr + j] = s[k * b.rs] + s2[k * b2.rs];
        } else {
          for (i64 k = 0; k < kc; ++k) dst[k * nr + j] = s[k * b.rs];
        }
      }
    }
  }
}

RingMatView Offset(const RingMatView& v, i64 off) {
  RingMatView r = v;
  if (r.p) r.p += off;
  return r;
}

// The packed, blocked path: tasks are (batch, column block, row block) output tiles.
void GemmBlocked(i64 batch, i64 M, i64 N, i64 K, const GemmTerm* terms, int nterms,
                 const i64* a_off, const i64* b_off, u64* out, const SegmentEpilogue* epi,
                 const ParallelFor& pf) {
  const IsaKernels& isa = Kernels();
  const int mr = isa.mr, nr = isa.nr;
  const i64 nb = (N + kNc - 1) / kNc;
  // Row blocks: as large as kMc allows (B is packed once per row block), but at least 4 output
  // tiles in all when M permits, of balanced height (a multiple of MR).
  i64 mb = (M + kMc - 1) / kMc;
  const i64 want = (4 + batch * nb - 1) / (batch * nb);
  mb = std::max(mb, std::min((M + mr - 1) / mr, want));
  i64 mcb = (M + mb - 1) / mb;
  mcb = ((mcb + mr - 1) / mr) * mr;
  mb = (M + mcb - 1) / mcb;
  const i64 tasks = batch * mb * nb;
  const i64 cost = std::min<i64>(mcb, M) * std::min<i64>(kNc, N) * std::max<i64>(K, 1) * nterms;
  pf(tasks, cost, [&](i64 t0, i64 t1) {
    // Per-thread packing buffers, kept across calls (no page faults per product).
    thread_local Buffer abuf, bbuf;
    if (!abuf) abuf = AllocU64(((kMc + 31) / 32) * 32 * kKc);
    if (!bbuf) bbuf = AllocU64(((kNc + 31) / 32) * 32 * kKc);
    alignas(64) u64 tmp[32 * 32];
    for (i64 t = t0; t < t1; ++t) {
      const i64 b = t / (mb * nb);
      const i64 jb = (t / mb) % nb;
      const i64 ib = t % mb;
      const i64 i0 = ib * mcb, mc = std::min(mcb, M - i0);
      const i64 j0 = jb * kNc, nc = std::min(kNc, N - j0);
      u64* c = out + b * M * N;
      if (K == 0 || nterms == 0) {
        for (i64 i = 0; i < mc; ++i) std::memset(c + (i0 + i) * N + j0, 0, nc * sizeof(u64));
      }
      for (int term = 0; term < nterms && K > 0; ++term) {
        const RingMatView av = Offset(terms[term].a, a_off[b]);
        const RingMatView bv = Offset(terms[term].b, b_off[b]);
        const RingMatView b2v = Offset(terms[term].b2, b_off[b]);
        for (i64 p0 = 0; p0 < K; p0 += kKc) {
          const i64 kc = std::min(kKc, K - p0);
          const bool accumulate = term > 0 || p0 > 0;
          PackB(bv, b2v, p0, kc, j0, nc, nr, bbuf.get());
          PackA(av, i0, mc, p0, kc, mr, abuf.get());
          for (i64 jr = 0; jr < nc; jr += nr) {
            const i64 cols = std::min<i64>(nr, nc - jr);
            const u64* bp = bbuf.get() + jr * kc;
            for (i64 ir = 0; ir < mc; ir += mr) {
              const i64 rows = std::min<i64>(mr, mc - ir);
              const u64* ap = abuf.get() + ir * kc;
              u64* cp = c + (i0 + ir) * N + j0 + jr;
              if (rows == mr && cols == nr) {
                isa.micro(kc, ap, bp, cp, N, accumulate);
              } else {
                isa.micro(kc, ap, bp, tmp, nr, false);
                for (i64 r = 0; r < rows; ++r)
                  for (i64 j = 0; j < cols; ++j)
                    cp[r * N + j] = accumulate ? cp[r * N + j] + tmp[r * nr + j] : tmp[r * nr + j];
              }
            }
          }
        }
      }
      if (epi) {
        for (i64 i = 0; i < mc; ++i) {
          const i64 flat = b * M * N + (i0 + i) * N + j0;
          (*epi)(flat, nc, out + flat);
        }
      }
    }
  });
}

// Gathers a strided vector into contiguous storage, optionally adding a second one.
void GatherVec(i64 n, const u64* p, i64 stride, const u64* p2, i64 stride2, u64* out) {
  for (i64 k = 0; k < n; ++k) out[k] = p[k * stride] + (p2 ? p2[k * stride2] : 0);
}

// Matrix-vector shapes: returns false if the views are not contiguous the way streaming needs.
bool GemmStreaming(i64 batch, i64 M, i64 N, i64 K, const GemmTerm* terms, int nterms,
                   const i64* a_off, const i64* b_off, u64* out, const SegmentEpilogue* epi,
                   const ParallelFor& pf) {
  // Check every term has a streamable layout first (no partial work before bailing out).
  for (int t = 0; t < nterms; ++t) {
    const GemmTerm& g = terms[t];
    if (N == 1) {
      if (!(g.a.cs == 1 || g.a.rs == 1)) return false;
    } else if (M == 1) {
      if (!(g.b.cs == 1 || g.b.rs == 1)) return false;
      if (g.b2.p && !((g.b.cs == 1 && g.b2.cs == 1) || (g.b.rs == 1 && g.b2.rs == 1))) return false;
    } else {
      return false;
    }
  }
  Buffer vec = AllocU64(K);
  for (i64 b = 0; b < batch; ++b) {
    u64* o = out + b * M * N;
    for (int t = 0; t < nterms; ++t) {
      const bool acc = t > 0;
      const RingMatView a = Offset(terms[t].a, a_off[b]);
      const RingMatView bv = Offset(terms[t].b, b_off[b]);
      const RingMatView b2 = Offset(terms[t].b2, b_off[b]);
      if (N == 1) {
        // v = column 0 of (b + b2); out[r] = sum_k a(r, k) v[k]
        GatherVec(K, bv.p, bv.rs, b2.p, b2.rs, vec.get());
        if (a.cs == 1) {
          RingStreamDot(M, K, a.p, a.rs, vec.get(), nullptr, o, nullptr, acc, pf);
        } else {
          RingStreamAxpy(K, M, a.p, a.cs, vec.get(), nullptr, o, nullptr, acc, pf);
        }
      } else {
        // v = row 0 of a; out[c] = sum_k v[k] (b + b2)(k, c)
        GatherVec(K, a.p, a.cs, nullptr, 0, vec.get());
        if (bv.cs == 1) {
          RingStreamAxpy(K, N, bv.p, bv.rs, vec.get(), nullptr, o, nullptr, acc, pf);
          if (b2.p) RingStreamAxpy(K, N, b2.p, b2.rs, vec.get(), nullptr, o, nullptr, true, pf);
        } else {
          RingStreamDot(N, K, bv.p, bv.cs, vec.get(), nullptr, o, nullptr, acc, pf);
          if (b2.p) RingStreamDot(N, K, b2.p, b2.cs, vec.get(), nullptr, o, nullptr, true, pf);
        }
      }
    }
    if (epi) (*epi)(b * M * N, M * N, o);
  }
  return true;
}

std::string ShapeStr(const std::vector<i64>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

}  // namespace

const char* RingGemmPathName() { return Kernels().name; }

MatmulPlan PlanMatmul(const std::vector<i64>& a_shape, const std::vector<i64>& b_shape,
                      bool transpose_a, bool transpose_b, const char* a_name, const char* b_name) {
  const std::string an(a_name), bn(b_name);
  if (a_shape.size() < 2)
    throw KernelArgumentError(an + " must have rank >= 2, got rank " +
                              std::to_string(a_shape.size()) + " with shape " + ShapeStr(a_shape));
  if (b_shape.size() < 2)
    throw KernelArgumentError(bn + " must have rank >= 2, got rank " +
                              std::to_string(b_shape.size()) + " with shape " + ShapeStr(b_shape));
  for (i64 d : a_shape)
    if (d < 0) throw KernelArgumentError(an + " has a negative dimension: " + ShapeStr(a_shape));
  for (i64 d : b_shape)
    if (d < 0) throw KernelArgumentError(bn + " has a negative dimension: " + ShapeStr(b_shape));
  MatmulPlan p;
  p.transpose_a = transpose_a;
  p.transpose_b = transpose_b;
  const size_t ra = a_shape.size(), rb = b_shape.size();
  p.a_rows = a_shape[ra - 2];
  p.a_cols = a_shape[ra - 1];
  p.b_rows = b_shape[rb - 2];
  p.b_cols = b_shape[rb - 1];
  p.M = transpose_a ? p.a_cols : p.a_rows;
  const i64 ka = transpose_a ? p.a_rows : p.a_cols;
  const i64 kb = transpose_b ? p.b_cols : p.b_rows;
  p.N = transpose_b ? p.b_rows : p.b_cols;
  if (ka != kb)
    throw KernelArgumentError("inner dimensions of " + an + " and " + bn + " do not match: " + an +
                              " has shape " + ShapeStr(a_shape) + " (transpose_a=" +
                              (transpose_a ? "true" : "false") + "), " + bn + " has shape " +
                              ShapeStr(b_shape) + " (transpose_b=" +
                              (transpose_b ? "true" : "false") + "): " + std::to_string(ka) +
                              " != " + std::to_string(kb));
  p.K = ka;
  // Broadcast batch dims (right-aligned), as BatchMatMulV2.
  const size_t ba = ra - 2, bb = rb - 2, nb = std::max(ba, bb);
  std::vector<i64> out_batch(nb), sa(nb, 0), sb(nb, 0);
  i64 stride_a = p.a_rows * p.a_cols, stride_b = p.b_rows * p.b_cols;
  bool stride_overflow = false;
  for (size_t i = 0; i < nb; ++i) {
    const size_t d = nb - 1 - i;  // output batch dim index, from the right
    const i64 da = i < ba ? a_shape[ba - 1 - i] : 1;
    const i64 db = i < bb ? b_shape[bb - 1 - i] : 1;
    if (da != db && da != 1 && db != 1)
      throw KernelArgumentError("batch dimensions of " + an + " and " + bn +
                                " are not broadcastable: " + an + " has shape " +
                                ShapeStr(a_shape) + ", " + bn + " has shape " + ShapeStr(b_shape));
    out_batch[d] = (da == 1) ? db : da;
    sa[d] = (da == 1) ? 0 : stride_a;
    sb[d] = (db == 1) ? 0 : stride_b;
    // An operand with a zero dimension can have batch strides beyond i64 (TF allocates
    // [0, 2^40, 2^40, 1, 1]); those strides are never used, since the product is then empty.
    stride_overflow |= __builtin_mul_overflow(stride_a, da, &stride_a);
    stride_overflow |= __builtin_mul_overflow(stride_b, db, &stride_b);
  }
  // The broadcast output can be far larger than either input: check before anything allocates.
  p.batch = 1;
  i64 total = 1;
  bool overflow = false;
  for (i64 d : out_batch) overflow |= __builtin_mul_overflow(p.batch, d, &p.batch);
  overflow |= __builtin_mul_overflow(p.batch, p.M, &total);
  overflow |= __builtin_mul_overflow(total, p.N, &total);
  if (overflow || total > (static_cast<i64>(1) << 56))
    throw KernelArgumentError("the product of " + an + " and " + bn +
                              " would have too many elements (broadcast batch x M x N overflows)");
  p.out_shape = out_batch;
  p.out_shape.push_back(p.M);
  p.out_shape.push_back(p.N);
  if (total == 0) p.batch = 0;  // nothing to compute (and no per-batch offsets to allocate)
  if (stride_overflow && total != 0)
    throw KernelArgumentError("the batch dimensions of " + an + " and " + bn + " are too large");
  p.a_offset.assign(static_cast<size_t>(p.batch), 0);
  p.b_offset.assign(static_cast<size_t>(p.batch), 0);
  for (i64 idx = 0; idx < p.batch; ++idx) {
    i64 rem = idx, oa = 0, ob = 0;
    for (size_t d = nb; d-- > 0;) {
      const i64 coord = rem % out_batch[d];
      rem /= out_batch[d];
      oa += coord * sa[d];
      ob += coord * sb[d];
    }
    p.a_offset[static_cast<size_t>(idx)] = oa;
    p.b_offset[static_cast<size_t>(idx)] = ob;
  }
  return p;
}

GemmTerm PlanTerm(const MatmulPlan& plan, const u64* a, const u64* b, const u64* b2) {
  GemmTerm t;
  // A stored (a_rows x a_cols) row-major; logical (M x K).
  t.a.p = a;
  t.a.rs = plan.transpose_a ? 1 : plan.a_cols;
  t.a.cs = plan.transpose_a ? plan.a_cols : 1;
  t.b.p = b;
  t.b.rs = plan.transpose_b ? 1 : plan.b_cols;
  t.b.cs = plan.transpose_b ? plan.b_cols : 1;
  if (b2) {
    t.b2 = t.b;
    t.b2.p = b2;
  }
  return t;
}

void RingGemmBatched(i64 batch, i64 M, i64 N, i64 K, const GemmTerm* terms, int nterms,
                     const i64* a_offset, const i64* b_offset, u64* out,
                     const SegmentEpilogue* epi, const ParallelFor& pf) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K > 0 && nterms > 0 && (N == 1 || M == 1) &&
      GemmStreaming(batch, M, N, K, terms, nterms, a_offset, b_offset, out, epi, pf))
    return;
  GemmBlocked(batch, M, N, K, terms, nterms, a_offset, b_offset, out, epi, pf);
}

void RingMatmul(const MatmulPlan& plan, const i64* a, const i64* b, i64* c, const ParallelFor& pf) {
  const GemmTerm term =
      PlanTerm(plan, reinterpret_cast<const u64*>(a), reinterpret_cast<const u64*>(b));
  RingGemmBatched(plan.batch, plan.M, plan.N, plan.K, &term, 1, plan.a_offset.data(),
                  plan.b_offset.data(), reinterpret_cast<u64*>(c), nullptr, pf);
}

void RingStreamDot(i64 R, i64 K, const u64* mat, i64 ld, const u64* v0, const u64* v1, u64* out0,
                   u64* out1, bool accumulate, const ParallelFor& pf) {
  if (R <= 0) return;
  const IsaKernels& isa = Kernels();
  const i64 rows_per_unit = 4;
  const i64 units = (R + rows_per_unit - 1) / rows_per_unit;
  pf(units, rows_per_unit * std::max<i64>(K, 1) * (v1 ? 2 : 1), [&](i64 u0, i64 u1) {
    isa.dot(u0 * rows_per_unit, std::min(R, u1 * rows_per_unit), K, mat, ld, v0, v1, out0, out1,
            accumulate);
  });
}

void RingStreamAxpy(i64 R, i64 C, const u64* mat, i64 ld, const u64* v0, const u64* v1,
                    u64* out0, u64* out1, bool accumulate, const ParallelFor& pf) {
  if (C <= 0) return;
  const IsaKernels& isa = Kernels();
  const i64 cols_per_unit = 256;
  const i64 units = (C + cols_per_unit - 1) / cols_per_unit;
  pf(units, cols_per_unit * std::max<i64>(R, 1) * (v1 ? 2 : 1), [&](i64 u0, i64 u1) {
    isa.axpy(R, u0 * cols_per_unit, std::min(C, u1 * cols_per_unit), mat, ld, v0, v1, out0, out1,
             accumulate);
  });
}

}  // namespace tfe_accel
