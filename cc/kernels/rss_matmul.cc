#include "rss_matmul.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "chacha20.h"

namespace tfe_accel {

namespace {

std::string ShapeStr(const std::vector<i64>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

void AddZeroShare(const u32 seed0[8], const u32 seed1[8], i64 flat, i64 n, u64* out) {
  // U(seed) over TFE's int64 range at an arbitrary element offset (chacha20.h), in stack chunks.
  constexpr i64 kChunk = 256;
  u64 r0[kChunk], r1[kChunk];
  for (i64 b = 0; b < n; b += kChunk) {
    const i64 m = std::min(kChunk, n - b);
    SeededFullRangeInt64At(seed0, flat + b, m, r0);
    SeededFullRangeInt64At(seed1, flat + b, m, r1);
    for (i64 k = 0; k < m; ++k) out[b + k] += r0[k] - r1[k];
  }
}

MatmulPlan PlanRssMatmul(const std::vector<i64>& x_i, const std::vector<i64>& x_next,
                         const std::vector<i64>& y_i, const std::vector<i64>& y_next,
                         bool transpose_a, bool transpose_b) {
  if (x_i != x_next)
    throw KernelArgumentError("x_i and x_next (the party's two shares of x) must have the same "
                              "shape, got " + ShapeStr(x_i) + " and " + ShapeStr(x_next));
  if (y_i != y_next)
    throw KernelArgumentError("y_i and y_next (the party's two shares of y) must have the same "
                              "shape, got " + ShapeStr(y_i) + " and " + ShapeStr(y_next));
  return PlanMatmul(x_i, y_i, transpose_a, transpose_b, "x_i", "y_i");
}

void RssMatmul(const MatmulPlan& plan, const i64* x_i, const i64* x_next, const i64* y_i,
               const i64* y_next, const u32 key0[8], i64 nonce0, const u32 key1[8], i64 nonce1,
               i64* z, const ParallelFor& pf) {
  u32 seed0[8], seed1[8];
  SeedPlusNonce(key0, nonce0, seed0);
  SeedPlusNonce(key1, nonce1, seed1);
  auto u = [](const i64* p) { return reinterpret_cast<const u64*>(p); };
  // X_i.(Y_i + Y_next) + X_next.Y_i
  const GemmTerm terms[2] = {PlanTerm(plan, u(x_i), u(y_i), u(y_next)),
                             PlanTerm(plan, u(x_next), u(y_i))};
  const SegmentEpilogue epi = [&](i64 flat, i64 n, u64* out) {
    AddZeroShare(seed0, seed1, flat, n, out);
  };
  RingGemmBatched(plan.batch, plan.M, plan.N, plan.K, terms, 2, plan.a_offset.data(),
                  plan.b_offset.data(), reinterpret_cast<u64*>(z), &epi, pf);
}

void PublicPrivateMatmul(const MatmulPlan& plan, const i64* p, const i64* x0, const i64* x1,
                         bool public_left, i64* z0, i64* z1, const ParallelFor& pf) {
  if (plan.batch <= 0 || plan.M <= 0 || plan.N <= 0) return;
  auto u = [](const i64* q) { return reinterpret_cast<const u64*>(q); };
  const i64 M = plan.M, N = plan.N, K = plan.K;
  u64* o0 = reinterpret_cast<u64*>(z0);
  u64* o1 = reinterpret_cast<u64*>(z1);
  // Views of batch 0: the public matrix and the two shares.
  const GemmTerm t0 = public_left ? PlanTerm(plan, u(p), u(x0)) : PlanTerm(plan, u(x0), u(p));
  const GemmTerm t1 = public_left ? PlanTerm(plan, u(p), u(x1)) : PlanTerm(plan, u(x1), u(p));
  const RingMatView pv = public_left ? t0.a : t0.b;
  // Matrix-vector shape where P is the matrix: stream P once against both share vectors.
  // public_left and N == 1: z_s[r] = sum_k P(r, k) x_s(k, 0)
  // private-public and M == 1: z_s[c] = sum_k x_s(0, k) P(k, c)
  const bool stream = K > 0 && (public_left ? N == 1 : M == 1) && (pv.cs == 1 || pv.rs == 1);
  if (stream) {
    std::vector<u64> v0(static_cast<size_t>(K)), v1(static_cast<size_t>(K));
    const std::vector<i64>& p_off = public_left ? plan.a_offset : plan.b_offset;
    const std::vector<i64>& x_off = public_left ? plan.b_offset : plan.a_offset;
    for (i64 b = 0; b < plan.batch; ++b) {
      const RingMatView xv0 = public_left ? t0.b : t0.a;
      const RingMatView xv1 = public_left ? t1.b : t1.a;
      // the share vector: column 0 of X (public_left) or row 0 of X
      const i64 xs = public_left ? xv0.rs : xv0.cs;
      for (i64 k = 0; k < K; ++k) {
        v0[static_cast<size_t>(k)] = xv0.p[x_off[b] + k * xs];
        v1[static_cast<size_t>(k)] = xv1.p[x_off[b] + k * xs];
      }
      const u64* pm = pv.p + p_off[b];
      const i64 R = public_left ? M : N;  // length of the output vector
      // Rows of P contiguous along k -> dot form; otherwise P's stored rows run along the output.
      const bool dot = public_left ? pv.cs == 1 : pv.rs == 1;
      if (dot) {
        const i64 ld = public_left ? pv.rs : pv.cs;
        RingStreamDot(R, K, pm, ld, v0.data(), v1.data(), o0 + b * R, o1 + b * R, false, pf);
      } else {
        const i64 ld = public_left ? pv.cs : pv.rs;
        RingStreamAxpy(K, R, pm, ld, v0.data(), v1.data(), o0 + b * R, o1 + b * R, false, pf);
      }
    }
    return;
  }
  RingGemmBatched(plan.batch, M, N, K, &t0, 1, plan.a_offset.data(), plan.b_offset.data(), o0,
                  nullptr, pf);
  RingGemmBatched(plan.batch, M, N, K, &t1, 1, plan.a_offset.data(), plan.b_offset.data(), o1,
                  nullptr, pf);
}

}  // namespace tfe_accel
