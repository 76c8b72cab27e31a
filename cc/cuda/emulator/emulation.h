// tfe-accel: CPU emulation of the CUDA kernels (not a public header; included by common.cuh only
// when TFE_ACCEL_CUDA_EMULATION is defined). With it, prg_elementwise.cu, truncation_msb0.cu,
// kogge_stone.cu, sigmoid_pieces.cu, ring_matmul.cu and cc/python/native_cuda.cc compile UNCHANGED in meaning
// with the host C++ compiler against the CUDA toolkit's headers:
//   c++ -x c++ -std=gnu++17 -DTFE_ACCEL_CUDA_EMULATION -I/usr/local/cuda/include ...
// and, linked with cc/cuda/emulator/emulation_runtime.cc (host definitions of the CUDA runtime calls they
// make, the fiber scheduler and the warp-collective operations), run on the CPU
// (tests/test_cuda_emulation.py checks them against the CPU kernels with bench/gpu_check.py's checks).
//
// How a launch runs (TFE_ACCEL_LAUNCH -> emu::Launch -> emu::RunGrid, emulation_runtime.cc): the
// blocks one after another on the calling host thread; inside a block, every thread is a FIBER (its
// own stack, switched cooperatively on the calling host thread), so threads can wait for each other:
//   __syncthreads()          block barrier: a fiber arriving waits until every live (not exited)
//                            fiber of its block has arrived, then all continue
//   __shfl_down_sync, mma    warp-collective: each lane deposits its operands and waits until all 32
//                            lanes of its warp are at the same operation; the last one to arrive
//                            computes every lane's result, each lane then reads its own
//   atomicAdd (u64)          a plain read-modify-write (fibers never run concurrently)
//   __shared__ arrays        `static thread_local` (below): one storage per kernel and host thread,
//                            shared by the fibers of the block that runs; blocks run one after
//                            another, so it is that block's shared memory (content left by the
//                            previous block, as undefined as on a GPU)
//   dynamic shared memory    TFE_ACCEL_DYNAMIC_SMEM (common.cuh): a per-launch buffer of the launch's
//                            size, ending at a PROT_NONE guard page, filled with 0xA5 per block
// A barrier or warp operation that can never complete (divergent __syncthreads, a warp operation
// with exited lanes or a partial warp, different operations in one warp) aborts the process with a
// message naming the block, threads and operations: on a GPU that is a hang or undefined behaviour.
// Geometries (emu::SetGeometry; tests/cuda_host/cuda_emu_module.cc exposes it to Python):
//   kFull    every thread of the real grid: blocks in order; fibers round robin in thread order
//            (the warps of a block advance in lockstep, one warp operation per sweep)
//   kReverse the same threads: blocks in reverse order; fibers last in, first out from the last
//            thread (whoever a barrier or warp operation released runs next: one warp runs as far
//            ahead of the others as the barriers allow)
//   kSingle  ONE thread (blockIdx = threadIdx = 0, blockDim = gridDim = 1), no fiber: the grid-stride
//            loops of the elementwise kernels must then cover every element by themselves. Meaningless
//            for the cooperative GEMM kernels (their tiles assume 256 threads): a warp operation
//            there aborts; test them under kFull / kReverse.
// Any interleaving the fiber scheduler produces is one the GPU may run (threads only wait at the
// barriers and warp operations), so a result that differs from the reference under either
// schedule shows a race (e.g. a missing __syncthreads).
// Launch configurations CUDA would reject (empty grid, > 1024 threads per block, grid.x > 2^31 - 1,
// grid.y/z > 65535, dynamic shared memory above 48 KiB or above the kernel's
// cudaFuncAttributeMaxDynamicSharedMemorySize, which may be set up to 227 KiB) are not run and make
// the next cudaGetLastError return cudaErrorInvalidConfiguration, as on a GPU.
// Not emulated: real concurrency between threads, blocks or streams (data races between barriers
// are invisible unless the two geometries disagree), the GPU memory model and memory spaces,
// timings, occupancy, registers, bank conflicts, static shared memory limits.
#ifndef TFE_ACCEL_CC_CUDA_EMULATOR_EMULATION_H_
#define TFE_ACCEL_CC_CUDA_EMULATOR_EMULATION_H_

#ifndef TFE_ACCEL_CUDA_EMULATION
#error "emulation.h is only for builds with -DTFE_ACCEL_CUDA_EMULATION"
#endif
#if defined(__CUDACC__) || defined(__CUDA_ARCH__)
#error "TFE_ACCEL_CUDA_EMULATION is for the host C++ compiler (c++ -x c++), not for nvcc"
#endif

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

// Static shared memory: `__shared__ T x[...]` inside a kernel becomes a function-local
// `static thread_local` array. Sound here because the blocks of a launch run one after another on
// the launching host thread and the fibers of the running block all run on that same host thread:
// one storage per kernel (per template instantiation) and host thread is exactly one block's shared
// memory at a time. thread_local keeps host threads that launch concurrently apart. (cuda_runtime.h
// defined __shared__ as an ignored attribute for host compilers; only static arrays use it here,
// dynamic shared memory goes through TFE_ACCEL_DYNAMIC_SMEM.)
#undef __shared__
#define __shared__ static thread_local
// Launch bounds only steer nvcc's register allocation (cuda_runtime.h defines the macro for nvcc only).
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

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
// Fiber switches and warp-collective operations so far (all host threads).
long long FiberSwitchCount();
long long WarpOpCount();

// The CUDA built-in variables of the emulated thread running now (per host thread, so host
// threads may run launches concurrently; the fiber scheduler sets threadIdx before it resumes a
// fiber).
inline thread_local uint3 threadIdx = {0, 0, 0};
inline thread_local uint3 blockIdx = {0, 0, 0};
inline thread_local dim3 blockDim = dim3(1, 1, 1);
inline thread_local dim3 gridDim = dim3(1, 1, 1);
constexpr int warpSize = 32;

// The largest dynamic shared memory a launch of `kernel` may ask for: 48 KiB, or the value of its
// cudaFuncAttributeMaxDynamicSharedMemorySize when that was set (cudaFuncSetAttribute).
std::size_t DynamicSmemLimit(const void* kernel);

inline bool ValidLaunch(dim3 grid, dim3 block, std::size_t smem, std::size_t smem_limit) {
  const unsigned long long threads =
      static_cast<unsigned long long>(block.x) * block.y * block.z;
  return grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 0x7fffffffu && grid.y <= 65535u &&
         grid.z <= 65535u && block.x >= 1 && block.y >= 1 && block.z >= 1 && block.x <= 1024u &&
         block.y <= 1024u && block.z <= 64u && threads <= 1024u && smem <= smem_limit;
}

// Runs body(ctx) once per emulated thread of the launch (geometry, fibers: see the top of this
// file), with the built-ins set; restores the caller's built-ins afterwards.
void RunGrid(dim3 grid, dim3 block, std::size_t smem, void (*body)(void*), void* ctx);

// Device side of the emulation (valid only inside a launch).
void SyncThreads();
std::uint64_t ShflDown64(unsigned mask, std::uint64_t v, unsigned delta, int width);
// mma.sync.aligned.m16n8k32.row.col.s32.u8.u8.s32 d, a, {b0, b1}, d (warp-collective).
void MmaM16N8K32U8(int (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1);
// The running launch's dynamic shared memory (see TFE_ACCEL_DYNAMIC_SMEM).
void* DynamicSmem(std::size_t align);

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
    if (!ValidLaunch(grid_, block_, smem_, DynamicSmemLimit(reinterpret_cast<const void*>(kernel_)))) {
      SetLaunchError(cudaErrorInvalidConfiguration);
      return;
    }
    // lvalues: every thread gets its own copies of the by-value parameters
    auto body = [&]() { kernel_(args...); };
    using Body = decltype(body);
    RunGrid(grid_, block_, smem_, [](void* p) { (*static_cast<Body*>(p))(); }, &body);
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

// The kernels (all inside tfe_accel::cuda) see the emulated built-ins and device functions: these
// declarations are found before any global declaration.
using emu::blockDim;
using emu::blockIdx;
using emu::gridDim;
using emu::threadIdx;
using emu::warpSize;

inline void __syncthreads() { emu::SyncThreads(); }

// Full-warp masks only (what the kernels use); 4- and 8-byte types.
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 4 || sizeof(T) == 8),
                "__shfl_down_sync emulation: 4- or 8-byte types");
  std::uint64_t v = 0;
  std::memcpy(&v, &var, sizeof(T));
  v = emu::ShflDown64(mask, v, delta, width);
  T r;
  std::memcpy(&r, &v, sizeof(T));
  return r;
}

// Fibers never run concurrently: a plain read-modify-write is atomic (wraps mod 2^64).
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long val) {
  const unsigned long long old = *address;
  *address = old + val;
  return old;
}

// CUDA's device min for 64-bit integers (ring_matmul.cu).
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }

}  // namespace cuda
}  // namespace tfe_accel

// cuda_runtime.h's kernel-pointer overload of cudaFuncSetAttribute exists for nvcc only.
template <typename... P>
inline cudaError_t cudaFuncSetAttribute(void (*entry)(P...), enum cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}

// Device intrinsics of the elementwise files: chacha20.cuh's three (__funnelshift_l, __umul64hi,
// __trap) have host versions behind #ifdef __CUDA_ARCH__ there. ring_matmul.cu's inline PTX
// (mma.sync) calls emu::MmaM16N8K32U8 in emulation builds.

#endif  // TFE_ACCEL_CC_CUDA_EMULATOR_EMULATION_H_
