// tfe-accel: the pybind11 module `_cuda_emu` of the CPU emulation of the CUDA kernels
// (cc/cuda/emulator/emulation.h): the cuda_* entry points of cc/python/native_cuda.cc, registered
// exactly as in `_native`, over prg_elementwise.cu, truncation_msb0.cu, kogge_stone.cu,
// sigmoid_pieces.cu and ring_matmul.cu compiled as host C++ with -DTFE_ACCEL_CUDA_EMULATION and
// cc/cuda/emulator/emulation_runtime.cc.
// Built and used by tests/test_cuda_emulation.py; never part of a wheel.
#include <fcntl.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "../../cc/cuda/common.cuh"  // TFE_ACCEL_LAUNCH, emulator/emulation.h

namespace tfe_accel {
namespace py_glue {
void RegisterCuda(pybind11::module_& m);  // cc/python/native_cuda.cc
}  // namespace py_glue
}  // namespace tfe_accel

namespace tfe_accel {
namespace cuda {
namespace {

// Self-test kernels of the emulator itself (not tfe-accel kernels).
__global__ void CountKernel(u64* hits, i64 n) {  // grid-stride: every element exactly once
  for (i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<i64>(gridDim.x) * blockDim.x)
    hits[i] += 1;
}
__global__ void OrderKernel(u64* order, u64* next) {  // records the order the threads ran in
  order[blockIdx.x * blockDim.x + threadIdx.x] = (*next)++;
}
__global__ void OverrunKernel(u8* p, i64 n) {  // one byte past the end
  if (blockIdx.x == 0 && threadIdx.x == 0) p[n] = 1;
}
// Block barrier and static shared memory: each thread reads what its neighbour wrote before the
// barrier; threads >= `live` exit first (a barrier waits for the live threads only).
__global__ void BarrierKernel(u64* out, int live) {
  __shared__ u64 s[256];
  const int t = threadIdx.x;
  if (t >= live) return;
  s[t] = 1000 * blockIdx.x + t;
  __syncthreads();
  const u64 v = s[(t + 1) % live];
  __syncthreads();  // nobody overwrites s before everybody has read it
  s[t] = 0;
  out[blockIdx.x * blockDim.x + t] = v;
}
__global__ void ShflKernel(u64* out, unsigned delta) {
  const u64 mine = 7 * (blockIdx.x * blockDim.x + threadIdx.x) + 3;
  out[blockIdx.x * blockDim.x + threadIdx.x] = __shfl_down_sync(0xffffffffu, mine, delta);
}
// Dynamic shared memory: thread t writes byte t, reads byte n - 1 - t after the barrier.
__global__ void DynSmemKernel(u8* out, int n) {
  TFE_ACCEL_DYNAMIC_SMEM(u8, buf, 16);
  for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = static_cast<u8>(i * 13 + blockIdx.x);
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[blockIdx.x * n + i] = buf[n - 1 - i];
}
// A full-mask warp shuffle after half of the warp has exited: can never complete.
__global__ void ExitedLanesShflKernel(u64* out) {
  if (threadIdx.x < 16) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<u64>(threadIdx.x), 1);
}
// One warp: D = A.B + C for one m16n8k32 tile (row-major A 16 x 32, B 32 x 8 bytes, C/D 16 x 8),
// each lane packing its registers from the PTX ISA's fragment description (register r of A holds
// row g (r even) or g + 8 (r odd), k = 4t..4t+3 (r < 2) or 16 + 4t.. (r >= 2), low byte first; B:
// column g, k = 4t.. (b0) and 16 + 4t.. (b1); C/D: rows g, g, g + 8, g + 8, columns 2t, 2t + 1).
__global__ void MmaTileKernel(const u8* A, const u8* B, const std::int32_t* C, std::int32_t* D) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  u32 a[4], b0 = 0, b1 = 0;
  for (int r = 0; r < 4; ++r) {
    const int row = g + 8 * (r % 2), k0 = 4 * t + 16 * (r / 2);
    a[r] = 0;
    for (int j = 0; j < 4; ++j) a[r] |= static_cast<u32>(A[row * 32 + k0 + j]) << (8 * j);
  }
  for (int j = 0; j < 4; ++j) {
    b0 |= static_cast<u32>(B[(4 * t + j) * 8 + g]) << (8 * j);
    b1 |= static_cast<u32>(B[(16 + 4 * t + j) * 8 + g]) << (8 * j);
  }
  int d[4];
  for (int i = 0; i < 4; ++i) d[i] = C[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2];
  emu::MmaM16N8K32U8(d, a, b0, b1);
  for (int i = 0; i < 4; ++i) D[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2] = d[i];
}

// Runs the emulator's own checks; returns {name: bool}.
pybind11::dict SelfTest() {
  pybind11::dict r;
  const emu::Geometry saved = emu::GetGeometry();
  const i64 n = 1000;
  u64* hits = nullptr;
  Check(cudaMalloc(reinterpret_cast<void**>(&hits), n * sizeof(u64)), "cudaMalloc");
  std::vector<unsigned char> fresh(n * sizeof(u64));
  Check(cudaMemcpy(fresh.data(), hits, fresh.size(), cudaMemcpyDeviceToHost), "cudaMemcpy");
  bool all_a5 = true;
  for (unsigned char c : fresh) all_a5 = all_a5 && c == 0xa5;
  r["fresh allocations are filled with 0xa5"] = all_a5;
  for (auto [g, name] : {std::pair{emu::Geometry::kFull, "full"}, std::pair{emu::Geometry::kReverse, "reverse"},
                         std::pair{emu::Geometry::kSingle, "single"}}) {
    emu::SetGeometry(g);
    for (auto [grid, block] : {std::pair{1u, 1u}, std::pair{3u, 7u}, std::pair{2u, 256u}, std::pair{40u, 32u}}) {
      Check(cudaMemset(hits, 0, n * sizeof(u64)), "cudaMemset");
      TFE_ACCEL_LAUNCH(CountKernel, grid, block, 0, 0)(hits, n);
      const bool launched = cudaGetLastError() == cudaSuccess;
      std::vector<u64> h(n);
      Check(cudaMemcpy(h.data(), hits, n * sizeof(u64), cudaMemcpyDeviceToHost), "cudaMemcpy");
      bool once = launched;
      for (u64 v : h) once = once && v == 1;
      r[("grid-stride loop covers every element once, " + std::string(name) + " <<<" + std::to_string(grid) + ", " +
         std::to_string(block) + ">>>").c_str()] = once;
    }
  }
  {  // thread order: full runs (block, thread) ascending, reverse descending, single one thread
    u64* order = nullptr;
    Check(cudaMalloc(reinterpret_cast<void**>(&order), 13 * sizeof(u64)), "cudaMalloc");
    for (auto g : {emu::Geometry::kFull, emu::Geometry::kReverse}) {
      emu::SetGeometry(g);
      Check(cudaMemset(hits, 0, sizeof(u64)), "cudaMemset");
      TFE_ACCEL_LAUNCH(OrderKernel, 13, 1, 0, 0)(order, hits);
      std::vector<u64> o(13);
      Check(cudaMemcpy(o.data(), order, 13 * sizeof(u64), cudaMemcpyDeviceToHost), "cudaMemcpy");
      bool ok = cudaGetLastError() == cudaSuccess;
      for (u64 i = 0; i < 13; ++i) ok = ok && o[i] == (g == emu::Geometry::kFull ? i : 12 - i);
      r[g == emu::Geometry::kFull ? "full geometry runs blocks in order" : "reverse geometry runs blocks backwards"] = ok;
    }
    cudaFree(order);
  }
  emu::SetGeometry(emu::Geometry::kFull);
  {
    cudaGetLastError();
    TFE_ACCEL_LAUNCH(CountKernel, 1, 2048, 0, 0)(hits, n);
    r["> 1024 threads per block: cudaErrorInvalidConfiguration"] = cudaGetLastError() == cudaErrorInvalidConfiguration;
    TFE_ACCEL_LAUNCH(CountKernel, 0, 32, 0, 0)(hits, n);
    r["empty grid: cudaErrorInvalidConfiguration"] = cudaGetLastError() == cudaErrorInvalidConfiguration;
    TFE_ACCEL_LAUNCH(CountKernel, 1, 32, 64 * 1024, 0)(hits, n);
    r["64 KiB dynamic shared memory: cudaErrorInvalidConfiguration"] =
        cudaGetLastError() == cudaErrorInvalidConfiguration;
    r["the error is cleared by cudaGetLastError"] = cudaGetLastError() == cudaSuccess;
  }
  {
    u8* p = nullptr;
    Check(cudaMalloc(reinterpret_cast<void**>(&p), 13), "cudaMalloc");
    std::vector<u8> src(14, 7);
    r["cudaMemcpy past the end of an allocation: cudaErrorInvalidValue"] =
        cudaMemcpy(p, src.data(), 14, cudaMemcpyHostToDevice) == cudaErrorInvalidValue;
    cudaGetLastError();
    r["cudaMemcpy inside an allocation succeeds"] =
        cudaMemcpy(p + 1, src.data(), 12, cudaMemcpyHostToDevice) == cudaSuccess;
    r["cudaMemcpy from a host pointer marked device: cudaErrorInvalidValue"] =
        cudaMemcpy(src.data(), src.data() + 1, 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue;
    cudaGetLastError();
    TFE_ACCEL_LAUNCH(OverrunKernel, 1, 1, 0, 0)(p, 13);
    r["a kernel writing past the end: cudaErrorIllegalAddress at the next synchronisation"] =
        cudaDeviceSynchronize() == cudaErrorIllegalAddress;
    r["... reported once"] = cudaDeviceSynchronize() == cudaSuccess;
    // A read past the end of an 8-byte-multiple allocation hits the guard page (in a child process).
    u64* q = nullptr;
    Check(cudaMalloc(reinterpret_cast<void**>(&q), 5 * sizeof(u64)), "cudaMalloc");
    const pid_t pid = fork();
    if (pid == 0) {
      std::signal(SIGSEGV, SIG_DFL);  // no Python fault handler in the child
      volatile u64 v = q[5];
      (void)v;
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    r["a read past the end faults (guard page)"] = pid > 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
    Check(cudaFree(q), "cudaFree");
    Check(cudaFree(p), "cudaFree");
    r["double free: cudaErrorInvalidValue"] = cudaFree(p) == cudaErrorInvalidValue;
    cudaGetLastError();
  }
  for (auto [g, name] : {std::pair{emu::Geometry::kFull, "full"}, std::pair{emu::Geometry::kReverse, "reverse"}}) {
    emu::SetGeometry(g);
    const std::string in = std::string(" (") + name + ")";
    u64* out = nullptr;
    Check(cudaMalloc(reinterpret_cast<void**>(&out), 3 * 256 * sizeof(u64)), "cudaMalloc");
    for (int live : {256, 200, 1}) {
      cudaGetLastError();
      TFE_ACCEL_LAUNCH(BarrierKernel, 3, 256, 0, 0)(out, live);
      std::vector<u64> h(3 * 256);
      bool ok = cudaGetLastError() == cudaSuccess;
      Check(cudaMemcpy(h.data(), out, h.size() * sizeof(u64), cudaMemcpyDeviceToHost), "cudaMemcpy");
      for (int b = 0; b < 3; ++b)
        for (int t = 0; t < live; ++t) ok = ok && h[b * 256 + t] == static_cast<u64>(1000 * b + (t + 1) % live);
      r[("__syncthreads + __shared__: every thread sees its neighbour's write, " + std::to_string(live) +
         " of 256 threads live" + in).c_str()] = ok;
    }
    for (unsigned delta : {1u, 2u, 5u, 16u, 31u}) {
      TFE_ACCEL_LAUNCH(ShflKernel, 2, 96, 0, 0)(out, delta);
      std::vector<u64> h(192);
      bool ok = cudaGetLastError() == cudaSuccess;
      Check(cudaMemcpy(h.data(), out, h.size() * sizeof(u64), cudaMemcpyDeviceToHost), "cudaMemcpy");
      for (unsigned i = 0; i < 192; ++i) {
        const unsigned lane = i % 32, src = lane + delta < 32 ? i + delta : i;
        ok = ok && h[i] == 7 * src + 3;
      }
      r[("__shfl_down_sync delta " + std::to_string(delta) + ": lanes >= 32 - delta keep their value" + in).c_str()] =
          ok;
    }
    Check(cudaFree(out), "cudaFree");
  }
  emu::SetGeometry(emu::Geometry::kFull);
  {  // dynamic shared memory and its limits
    const int n = 64 * 1024;
    u8* out = nullptr;
    Check(cudaMalloc(reinterpret_cast<void**>(&out), 2 * n), "cudaMalloc");
    cudaGetLastError();
    TFE_ACCEL_LAUNCH(DynSmemKernel, 2, 128, n, 0)(out, n);
    r["64 KiB dynamic shared memory without the attribute: cudaErrorInvalidConfiguration"] =
        cudaGetLastError() == cudaErrorInvalidConfiguration;
    r["MaxDynamicSharedMemorySize 227 KiB + 1 refused: cudaErrorInvalidValue"] =
        cudaFuncSetAttribute(DynSmemKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024 + 1) ==
        cudaErrorInvalidValue;
    cudaGetLastError();
    r["MaxDynamicSharedMemorySize 227 KiB accepted"] =
        cudaFuncSetAttribute(DynSmemKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024) == cudaSuccess;
    Check(cudaFuncSetAttribute(DynSmemKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, n), "cudaFuncSetAttribute");
    TFE_ACCEL_LAUNCH(DynSmemKernel, 2, 128, n, 0)(out, n);
    bool ok = cudaGetLastError() == cudaSuccess;
    std::vector<u8> h(2 * n);
    Check(cudaMemcpy(h.data(), out, h.size(), cudaMemcpyDeviceToHost), "cudaMemcpy");
    for (int b = 0; b < 2; ++b)
      for (int i = 0; i < n; ++i) ok = ok && h[b * n + i] == static_cast<u8>((n - 1 - i) * 13 + b);
    r["64 KiB dynamic shared memory after cudaFuncSetAttribute(64 KiB): written and read back per block"] = ok;
    TFE_ACCEL_LAUNCH(DynSmemKernel, 2, 128, n + 16, 0)(out, n);
    r["dynamic shared memory above the kernel's attribute: cudaErrorInvalidConfiguration"] =
        cudaGetLastError() == cudaErrorInvalidConfiguration;
    int major = 0, optin = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0);
    r["emulated device: compute capability 9.x, 227 KiB opt-in shared memory"] = major == 9 && optin == 227 * 1024;
    Check(cudaFree(out), "cudaFree");
    // A warp operation that cannot complete (in a child process: the emulator aborts with a message
    // naming the block and the waiting lanes; on a GPU this is undefined behaviour or a hang).
    const pid_t pid = fork();
    if (pid == 0) {
      std::signal(SIGABRT, SIG_DFL);
      const int devnull = open("/dev/null", O_WRONLY);
      if (devnull >= 0) dup2(devnull, 2);
      TFE_ACCEL_LAUNCH(ExitedLanesShflKernel, 1, 32, 0, 0)(hits);
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    r["a full-mask __shfl_down_sync with exited lanes aborts with a message (no hang)"] =
        pid > 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  }
  Check(cudaFree(hits), "cudaFree");
  emu::SetGeometry(saved);
  return r;
}

// D = A.B + C of one m16n8k32 u8 tile through the emulated mma.sync (one warp, one launch).
std::vector<std::int32_t> MmaTile(const std::vector<u8>& a, const std::vector<u8>& b, const std::vector<std::int32_t>& c) {
  if (a.size() != 16 * 32 || b.size() != 32 * 8 || c.size() != 16 * 8)
    throw pybind11::value_error("mma tile: A is 16x32, B 32x8, C 16x8");
  u8 *da = nullptr, *db = nullptr;
  std::int32_t *dc = nullptr, *dd = nullptr;
  Check(cudaMalloc(reinterpret_cast<void**>(&da), a.size()), "cudaMalloc");
  Check(cudaMalloc(reinterpret_cast<void**>(&db), b.size()), "cudaMalloc");
  Check(cudaMalloc(reinterpret_cast<void**>(&dc), c.size() * sizeof(std::int32_t)), "cudaMalloc");
  Check(cudaMalloc(reinterpret_cast<void**>(&dd), c.size() * sizeof(std::int32_t)), "cudaMalloc");
  Check(cudaMemcpy(da, a.data(), a.size(), cudaMemcpyHostToDevice), "cudaMemcpy");
  Check(cudaMemcpy(db, b.data(), b.size(), cudaMemcpyHostToDevice), "cudaMemcpy");
  Check(cudaMemcpy(dc, c.data(), c.size() * sizeof(std::int32_t), cudaMemcpyHostToDevice), "cudaMemcpy");
  const emu::Geometry saved = emu::GetGeometry();
  if (saved == emu::Geometry::kSingle) emu::SetGeometry(emu::Geometry::kFull);
  TFE_ACCEL_LAUNCH(MmaTileKernel, 1, 32, 0, 0)(da, db, dc, dd);
  emu::SetGeometry(saved);
  Check(cudaGetLastError(), "MmaTileKernel launch");
  std::vector<std::int32_t> d(c.size());
  Check(cudaMemcpy(d.data(), dd, d.size() * sizeof(std::int32_t), cudaMemcpyDeviceToHost), "cudaMemcpy");
  for (void* p : {static_cast<void*>(da), static_cast<void*>(db), static_cast<void*>(dc), static_cast<void*>(dd)})
    Check(cudaFree(p), "cudaFree");
  return d;
}

}  // namespace
}  // namespace cuda
}  // namespace tfe_accel

namespace emu = tfe_accel::cuda::emu;

PYBIND11_MODULE(_cuda_emu, m) {
  m.doc() = "CPU emulation of tfe-accel's elementwise CUDA kernels (tests only)";
  tfe_accel::py_glue::RegisterCuda(m);
  m.def(
      "set_geometry",
      [](const std::string& g) {
        if (g == "full") emu::SetGeometry(emu::Geometry::kFull);
        else if (g == "reverse") emu::SetGeometry(emu::Geometry::kReverse);
        else if (g == "single") emu::SetGeometry(emu::Geometry::kSingle);
        else throw pybind11::value_error("geometry must be 'full', 'reverse' or 'single', got '" + g + "'");
      },
      pybind11::arg("geometry"),
      "How launches run: 'full' (every thread of the real grid, in order), 'reverse' (the same, last "
      "thread first) or 'single' (one thread; the grid-stride loops cover everything).");
  m.def("geometry", [] {
    switch (emu::GetGeometry()) {
      case emu::Geometry::kReverse: return "reverse";
      case emu::Geometry::kSingle: return "single";
      default: return "full";
    }
  });
  m.def("launch_count", &emu::LaunchCount, "Kernel launches emulated so far.");
  m.def("fiber_switch_count", &emu::FiberSwitchCount, "Fiber switches so far on the calling host thread.");
  m.def("warp_op_count", &emu::WarpOpCount, "Warp-collective operations completed so far on the calling host thread.");
  m.def("emulator_mma_tile", &tfe_accel::cuda::MmaTile, pybind11::arg("a"), pybind11::arg("b"), pybind11::arg("c"),
        "D = A.B + C (int32, wrapping) of one 16x8x32 u8 tile through the emulated mma.sync: A 16x32 and B 32x8 "
        "bytes and C 16x8 int32, row-major flat lists.");
  m.def("emulator_self_test", &tfe_accel::cuda::SelfTest,
        "Checks of the emulator itself (launch geometries, launch errors, memory checks): {name: ok}.");
}
