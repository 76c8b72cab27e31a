// tfe-accel: the pybind11 module `_cuda_emu` of the CPU emulation of the elementwise CUDA kernels
// (cc/cuda/emulation.h): the cuda_* entry points of cc/cuda/native_cuda.cc, registered exactly as
// in `_native`, over prg_elementwise.cu, truncation_msb0.cu, kogge_stone.cu and sigmoid_pieces.cu
// compiled as host C++ with -DTFE_ACCEL_CUDA_EMULATION and cc/cuda/emulation_runtime.cc.
// Built and used by tests/test_cuda_emulation.py; never part of a wheel.
#include <pybind11/pybind11.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "../../cc/cuda/common.cuh"  // TFE_ACCEL_LAUNCH, emulation.h

namespace tfe_accel {
namespace py_glue {
void RegisterCuda(pybind11::module_& m);  // cc/cuda/native_cuda.cc
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
  Check(cudaFree(hits), "cudaFree");
  emu::SetGeometry(saved);
  return r;
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
  m.def("emulator_self_test", &tfe_accel::cuda::SelfTest,
        "Checks of the emulator itself (launch geometries, launch errors, memory checks): {name: ok}.");
}
