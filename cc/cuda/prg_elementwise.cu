// tfe-accel: elementwise CUDA kernels with in-kernel ChaCha20 randomness: seeded uniform int64,
// ABY3 zero sharing (TFE _gen_zero_sharing) and the ABY3 non-interactive truncation's local step
// (TFE _truncate_local_private). One thread per PRG block = 8 int64 elements, so each ChaCha20
// block is computed once.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "chacha20.cuh"
#include "common.cuh"
#include "tfe_cuda.h"
#include "../kernels/mpc_local.h"

namespace tfe_accel {
namespace cuda {

void Check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

std::string DeviceDescription(int device) {
  cudaDeviceProp prop;
  Check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
         ")";
}

BatchMap BroadcastBatch(const std::vector<i64>& a_batch, const std::vector<i64>& b_batch,
                        std::vector<i64>* out_batch) {
  const int nd = static_cast<int>(a_batch.size() > b_batch.size() ? a_batch.size() : b_batch.size());
  if (nd > kMaxBatchDims)
    throw KernelArgumentError("at most " + std::to_string(kMaxBatchDims) +
                              " batch dimensions are supported, got " + std::to_string(nd));
  BatchMap m;
  m.ndim = nd;
  std::vector<i64> out(nd);
  // Right-aligned dims; strides (in matrices) of each operand's own row-major batch layout.
  i64 sa = 1, sb = 1;
  for (int d = nd - 1; d >= 0; --d) {
    const int da = d - (nd - static_cast<int>(a_batch.size()));
    const int db = d - (nd - static_cast<int>(b_batch.size()));
    const i64 ea = da >= 0 ? a_batch[da] : 1;
    const i64 eb = db >= 0 ? b_batch[db] : 1;
    if (ea != eb && ea != 1 && eb != 1)
      throw KernelArgumentError("batch dimensions are not broadcastable: " + std::to_string(ea) +
                                " vs " + std::to_string(eb) + " at batch axis " + std::to_string(d));
    out[d] = ea == 1 ? eb : ea;
    m.dims[d] = out[d];
    m.a_stride[d] = ea == 1 ? 0 : sa;
    m.b_stride[d] = eb == 1 ? 0 : sb;
    sa *= ea;
    sb *= eb;
  }
  if (out_batch) *out_batch = out;
  return m;
}

namespace {

constexpr int kThreads = 256;

__global__ void SeededUniformKernel(Seed key, UniformParams p, u64* out, i64 n) {
  const i64 nb = (n + 7) / 8;
  for (i64 b = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<i64>(gridDim.x) * blockDim.x) {
    u64 v[8];
    UniformBlock8(key, p, b, v);
    const i64 base = 8 * b;
#pragma unroll
    for (int j = 0; j < 8; ++j)
      if (base + j < n) out[base + j] = v[j];
  }
}

// One party's share of TFE's zero sharing, z = U(k0) - U(k1), plus, when xi != nullptr, its local
// ABY3 elementwise product x_i*y_i + x_i*y_next + x_next*y_i (cc/kernels/rss_elementwise.h, TFE
// _mul_private_private). One thread per 8-element PRG block.
__global__ void ZeroShareKernel(Seed k0, Seed k1, UniformParams p, const u64* xi, const u64* xn,
                                const u64* yi, const u64* yn, u64* z, i64 n) {
  const i64 nb = (n + 7) / 8;
  for (i64 b = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<i64>(gridDim.x) * blockDim.x) {
    u64 v0[8], v1[8];
    UniformBlock8(k0, p, b, v0);
    UniformBlock8(k1, p, b, v1);
    const i64 base = 8 * b;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const i64 e = base + j;
      if (e >= n) break;
      const u64 a = v0[j] - v1[j];
      z[e] = xi == nullptr ? a : local::RssMulTerm(xi[e], xn[e], yi[e], yn[e]) + a;
    }
  }
}

__global__ void TruncateP0Kernel(const u64* x0, u64* y, i64 n, int amount) {
  for (i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<i64>(gridDim.x) * blockDim.x)
    y[i] = local::Sar(x0[i], amount);
}

// party 1 (y != nullptr, x0/x1 given) or party 2 (y == nullptr): r = U(seed); y = ((x0+x1)>>d) - r.
__global__ void TruncateP12Kernel(const u64* x0, const u64* x1, Seed key, UniformParams p,
                                  u64* y, u64* r, i64 n, int amount) {
  const i64 nb = (n + 7) / 8;
  for (i64 b = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<i64>(gridDim.x) * blockDim.x) {
    u64 v[8];
    UniformBlock8(key, p, b, v);
    const i64 base = 8 * b;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const i64 i = base + j;
      if (i < n) {
        if (r) r[i] = v[j];
        if (y) y[i] = local::TruncLocalP1(x0[i], x1[i], v[j], amount);
      }
    }
  }
}

__global__ void RingAddKernel(const u64* a, const u64* b, u64* c, i64 n) {
  for (i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<i64>(gridDim.x) * blockDim.x)
    c[i] = a[i] + b[i];
}

unsigned BlocksFor(i64 work) {
  const i64 b = (work + kThreads - 1) / kThreads;
  const i64 cap = 65535LL * 16;  // grid-stride loops cover the rest
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

void CheckN(i64 n, const char* name) {
  if (n < 0) throw KernelArgumentError(std::string(name) + " must be >= 0, got " + std::to_string(n));
}

}  // namespace

void SeededUniformInt64(const u32 seed[8], i64 lo, i64 hi, i64* out, i64 n, cudaStream_t stream) {
  if (!(lo < hi))
    throw KernelArgumentError("minval must be less than maxval, got minval=" + std::to_string(lo) +
                              " maxval=" + std::to_string(hi));
  CheckN(n, "n");
  if (n == 0) return;
  TFE_ACCEL_LAUNCH(SeededUniformKernel, BlocksFor((n + 7) / 8), kThreads, 0, stream)(MakeSeed(seed),
      MakeUniformParams(lo, hi), reinterpret_cast<u64*>(out), n);
  Check(cudaGetLastError(), "SeededUniformKernel launch");
}

void ZeroShare(const u32 seed0[8], const u32 seed1[8], u64* out, i64 n, cudaStream_t stream) {
  CheckN(n, "n");
  if (n == 0) return;
  TFE_ACCEL_LAUNCH(ZeroShareKernel, BlocksFor((n + 7) / 8), kThreads, 0, stream)(MakeSeed(seed0),
      MakeSeed(seed1), TfeInt64Params(), nullptr, nullptr, nullptr, nullptr, out, n);
  Check(cudaGetLastError(), "ZeroShareKernel launch");
}

void TruncateLocal(int party, const u64* x0, const u64* x1, i64 n, int amount, const u32 seed[8],
                   u64* y, u64* r, cudaStream_t stream) {
  CheckParty(party);
  CheckTruncationAmount(amount);
  CheckN(n, "n");
  if (party == 0 && (x0 == nullptr || y == nullptr))
    throw KernelArgumentError("party 0 needs x0 and y");
  if (party == 1 && (x0 == nullptr || x1 == nullptr || y == nullptr || r == nullptr))
    throw KernelArgumentError("party 1 needs x0, x1, y and r");
  if (party == 2 && r == nullptr) throw KernelArgumentError("party 2 needs r");
  if (party != 0 && seed == nullptr) throw KernelArgumentError("parties 1 and 2 need a seed");
  if (n == 0) return;
  if (party == 0) {
    TFE_ACCEL_LAUNCH(TruncateP0Kernel, BlocksFor(n), kThreads, 0, stream)(x0, y, n, amount);
  } else {
    TFE_ACCEL_LAUNCH(TruncateP12Kernel, BlocksFor((n + 7) / 8), kThreads, 0, stream)(
        party == 1 ? x0 : nullptr, party == 1 ? x1 : nullptr, MakeSeed(seed), TfeInt64Params(),
        party == 1 ? y : nullptr, r, n, amount);
  }
  Check(cudaGetLastError(), "TruncateLocal launch");
}

void RssMul(const u64* x_i, const u64* x_next, const u64* y_i, const u64* y_next,
            const u32 seed0[8], const u32 seed1[8], u64* z, i64 n, cudaStream_t stream) {
  CheckN(n, "n");
  if (seed0 == nullptr || seed1 == nullptr) throw KernelArgumentError("rss_mul needs seed0 and seed1");
  if (n == 0) return;
  if (x_i == nullptr || x_next == nullptr || y_i == nullptr || y_next == nullptr)
    throw KernelArgumentError("rss_mul needs x_i, x_next, y_i and y_next");
  TFE_ACCEL_LAUNCH(ZeroShareKernel, BlocksFor((n + 7) / 8), kThreads, 0, stream)(MakeSeed(seed0),
      MakeSeed(seed1), TfeInt64Params(), x_i, x_next, y_i, y_next, z, n);
  Check(cudaGetLastError(), "ZeroShareKernel launch (rss_mul)");
}

void RingAdd(const u64* a, const u64* b, u64* c, i64 n, cudaStream_t stream) {
  CheckN(n, "n");
  if (n == 0) return;
  TFE_ACCEL_LAUNCH(RingAddKernel, BlocksFor(n), kThreads, 0, stream)(a, b, c, n);
  Check(cudaGetLastError(), "RingAddKernel launch");
}

}  // namespace cuda
}  // namespace tfe_accel
