// tfe-accel: shared device-side helpers of the CUDA kernels (not a public header).
#ifndef TFE_ACCEL_CC_CUDA_COMMON_CUH_
#define TFE_ACCEL_CC_CUDA_COMMON_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "tfe_cuda.h"

#ifdef TFE_ACCEL_CUDA_EMULATION
#include "emulator/emulation.h"  // CPU emulation (host compiler): built-ins, launches as host loops
#endif

// Kernel launch: kernel<<<grid, block, smem, stream>>>(args...) written as
//   TFE_ACCEL_LAUNCH(kernel, grid, block, smem, stream)(args...);
// Under nvcc it expands to exactly that launch; with TFE_ACCEL_CUDA_EMULATION (host compiler) to a
// host call of the kernel for each emulated thread (emulator/emulation.h). A kernel name with a comma
// (a template with several arguments) goes in TFE_ACCEL_KERNEL(...).
#ifdef TFE_ACCEL_CUDA_EMULATION
#define TFE_ACCEL_LAUNCH(kernel, grid, block, smem, stream) \
  ::tfe_accel::cuda::emu::Launch(kernel, grid, block, smem, stream)
#else
#define TFE_ACCEL_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#endif
#define TFE_ACCEL_KERNEL(...) __VA_ARGS__

// Dynamic shared memory of a kernel, declared inside it as
//   TFE_ACCEL_DYNAMIC_SMEM(type, name, align);
// Under nvcc exactly `extern __shared__ __align__(align) type name[]`; in the CPU emulation a
// `type* const name` pointing at the running launch's dynamic shared memory buffer (its size is the
// launch's smem argument; emulator/emulation.h).
#ifdef TFE_ACCEL_CUDA_EMULATION
#define TFE_ACCEL_DYNAMIC_SMEM(type, name, align) \
  type* const name = static_cast<type*>(::tfe_accel::cuda::emu::DynamicSmem(align))
#else
#define TFE_ACCEL_DYNAMIC_SMEM(type, name, align) extern __shared__ __align__(align) type name[]
#endif

namespace tfe_accel {
namespace cuda {

// Kernel arguments by value: the 8 PRG seed words.
struct Seed {
  u32 w[8];
};

inline Seed MakeSeed(const u32 s[8]) {
  Seed r;
  for (int i = 0; i < 8; ++i) r.w[i] = s[i];
  return r;
}

// Device copy of BatchMap (passed by value to kernels).
struct DevBatch {
  int ndim;
  i64 dims[kMaxBatchDims];
  i64 a_stride[kMaxBatchDims];
  i64 b_stride[kMaxBatchDims];
};

inline DevBatch ToDev(const BatchMap& b) {
  DevBatch d;
  d.ndim = b.ndim;
  for (int i = 0; i < kMaxBatchDims; ++i) {
    d.dims[i] = b.dims[i];
    d.a_stride[i] = b.a_stride[i];
    d.b_stride[i] = b.b_stride[i];
  }
  return d;
}

// Output batch z -> (A batch, B batch).
__device__ __forceinline__ void BatchIndex(const DevBatch& b, i64 z, i64* ia, i64* ib) {
  i64 a = 0, bb = 0;
  for (int d = b.ndim - 1; d >= 0; --d) {
    const i64 c = z % b.dims[d];
    z /= b.dims[d];
    a += c * b.a_stride[d];
    bb += c * b.b_stride[d];
  }
  *ia = a;
  *ib = bb;
}

inline unsigned GridX(i64 n, int threads) {
  const i64 blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 0x7fffffff ? 0x7fffffff : blocks));
}

}  // namespace cuda
}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_CUDA_COMMON_CUH_
