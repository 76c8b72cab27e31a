// tfe-accel: CPU emulation of the elementwise CUDA kernels (not a public header; included by
// common.cuh only when TFE_ACCEL_CUDA_EMULATION is defined). With it, prg_elementwise.cu,
// truncation_msb0.cu, kogge_stone.cu, sigmoid_pieces.cu and native_cuda.cc compile UNCHANGED with
// the host C++ compiler against the CUDA toolkit's headers:
//   c++ -x c++ -std=gnu++17 -DTFE_ACCEL_CUDA_EMULATION -I/usr/local/cuda/include ...
// and, linked with cc/cuda/emulation_runtime.cc (host definitions of the CUDA runtime calls they
// make), run on the CPU (tests/test_cuda_emulation.py checks them against the CPU kernels with
// bench/gpu_check.py's checks).
//
// What makes this sound for these four files: their kernels are grid-stride loops over
// independent elements, with no shared memory, no __syncthreads, no atomics, no warp intrinsics
// and no device intrinsics of their own (chacha20.cuh has host versions of its three). Any
// sequential order of the threads of a launch is then one of the schedules the GPU may run, so
// TFE_ACCEL_LAUNCH runs the launch's threads one after the other on the calling host thread:
//   kFull    every thread of the real grid (the launch geometry the host code computed), in order
//   kReverse the same threads in reverse order (last block, last thread first)
//   kSingle  ONE thread (blockIdx = threadIdx = 0, blockDim = gridDim = 1): the grid-stride loops
//            must then cover every element by themselves
// chosen by emu::SetGeometry (tests/cuda_host/cuda_emu_module.cc exposes it to Python).
// Launch configurations CUDA would reject (empty grid, > 1024 threads per block, grid.x > 2^31 - 1,
// grid.y/z > 65535, > 48 KiB dynamic shared memory) are not run and make the next
// cudaGetLastError return cudaErrorInvalidConfiguration, as on a GPU.
// Not emulated: shared memory, barriers, atomics, warp-level behaviour, tensor cores (the GEMM
// kernels of ring_matmul.cu), real concurrency between threads or streams, device memory spaces.
#ifndef TFE_ACCEL_CC_CUDA_EMULATION_H_
#define TFE_ACCEL_CC_CUDA_EMULATION_H_

#ifndef TFE_ACCEL_CUDA_EMULATION
#error "emulation.h is only for builds with -DTFE_ACCEL_CUDA_EMULATION"
#endif
#if defined(__CUDACC__) || defined(__CUDA_ARCH__)
#error "TFE_ACCEL_CUDA_EMULATION is for the host C++ compiler (c++ -x c++), not for nvcc"
#endif

#include <cuda_runtime.h>

#include <cstddef>

namespace tfe_accel {
namespace cuda {
namespace emu {

enum class Geometry : int { kFull = 0, kReverse = 1, kSingle = 2 };

// Process-wide; defined in emulation_runtime.cc.
void SetGeometry(Geometry g);
Geometry GetGeometry();
// Records a launch error for the next cudaGetLastError / cudaPeekAtLastError (calling thread).
void SetLaunchError(cudaError_t err);
// Launches run so far (all host threads), a cheap witness that the kernels ran here.
void CountLaunch();
long long LaunchCount();

// The CUDA built-in variables of the emulated thread running now (per host thread, so host
// threads may run launches concurrently).
inline thread_local uint3 threadIdx = {0, 0, 0};
inline thread_local uint3 blockIdx = {0, 0, 0};
inline thread_local dim3 blockDim = dim3(1, 1, 1);
inline thread_local dim3 gridDim = dim3(1, 1, 1);
constexpr int warpSize = 32;

inline bool ValidLaunch(dim3 grid, dim3 block, std::size_t smem) {
  const unsigned long long threads =
      static_cast<unsigned long long>(block.x) * block.y * block.z;
  return grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 0x7fffffffu && grid.y <= 65535u &&
         grid.z <= 65535u && block.x >= 1 && block.y >= 1 && block.z >= 1 && block.x <= 1024u &&
         block.y <= 1024u && block.z <= 64u && threads <= 1024u && smem <= 48u * 1024u;
}

// kernel<<<grid, block, smem, stream>>>(args...) as a host loop over the emulated threads.
template <typename... P>
class Launcher {
 public:
  Launcher(void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream)
      : kernel_(kernel), grid_(grid), block_(block), smem_(smem) {
    (void)stream;  // one host thread: every stream is already ordered
  }

  template <typename... A>
  void operator()(A&&... args) const {
    CountLaunch();
    if (!ValidLaunch(grid_, block_, smem_)) {
      SetLaunchError(cudaErrorInvalidConfiguration);
      return;
    }
    const dim3 saved_grid = gridDim, saved_block = blockDim;
    const uint3 saved_bi = blockIdx, saved_ti = threadIdx;
    const Geometry g = GetGeometry();
    if (g == Geometry::kSingle) {
      gridDim = dim3(1, 1, 1);
      blockDim = dim3(1, 1, 1);
      blockIdx = {0, 0, 0};
      threadIdx = {0, 0, 0};
      kernel_(args...);  // lvalues: every thread gets its own copies of the by-value parameters
    } else {
      gridDim = grid_;
      blockDim = block_;
      const unsigned long long nb = static_cast<unsigned long long>(grid_.x) * grid_.y * grid_.z;
      const unsigned long long nt = static_cast<unsigned long long>(block_.x) * block_.y * block_.z;
      for (unsigned long long b0 = 0; b0 < nb; ++b0) {
        const unsigned long long b = g == Geometry::kReverse ? nb - 1 - b0 : b0;
        blockIdx = {static_cast<unsigned>(b % grid_.x), static_cast<unsigned>(b / grid_.x % grid_.y),
                    static_cast<unsigned>(b / grid_.x / grid_.y)};
        for (unsigned long long t0 = 0; t0 < nt; ++t0) {
          const unsigned long long t = g == Geometry::kReverse ? nt - 1 - t0 : t0;
          threadIdx = {static_cast<unsigned>(t % block_.x), static_cast<unsigned>(t / block_.x % block_.y),
                       static_cast<unsigned>(t / block_.x / block_.y)};
          kernel_(args...);
        }
      }
    }
    gridDim = saved_grid;
    blockDim = saved_block;
    blockIdx = saved_bi;
    threadIdx = saved_ti;
  }

 private:
  void (*kernel_)(P...);
  dim3 grid_, block_;
  std::size_t smem_;
};

template <typename... P>
Launcher<P...> Launch(void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem,
                      cudaStream_t stream) {
  return Launcher<P...>(kernel, grid, block, smem, stream);
}

}  // namespace emu

// The kernels (all inside tfe_accel::cuda) see the emulated built-ins: these using-declarations
// are found before any global declaration.
using emu::blockDim;
using emu::blockIdx;
using emu::gridDim;
using emu::threadIdx;
using emu::warpSize;

}  // namespace cuda
}  // namespace tfe_accel

// Device intrinsics: the four elementwise .cu files call none themselves; chacha20.cuh's three
// (__funnelshift_l, __umul64hi, __trap) have host versions behind #ifdef __CUDA_ARCH__ there.

#endif  // TFE_ACCEL_CC_CUDA_EMULATION_H_
