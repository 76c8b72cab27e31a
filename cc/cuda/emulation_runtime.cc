// tfe-accel: host definitions of the CUDA runtime calls made by the elementwise kernels' host code
// and the pybind11 glue (cc/cuda/native_cuda.cc), for the CPU emulation (emulation.h). Compiled
// ONLY in emulation builds (tests/test_cuda_emulation.py); CMake never builds it (it globs
// cc/cuda/*.cu, and native_cuda.cc is added by name). Signatures are those of cuda_runtime_api.h,
// which is included first so its renaming macros and C linkage apply.
//
// Device memory is host memory, made to catch what compute-sanitizer would on a GPU:
//   * every allocation ends flush against a PROT_NONE guard page (start aligned to 8 bytes, NOT to
//     cudaMalloc's 256): a read or write past the end faults; 0-7 bytes of slack past the end and
//     64 bytes before the start hold a canary, checked at every synchronisation and free (a write
//     there fails the next cudaDeviceSynchronize / cudaStreamSynchronize / cudaGetLastError with
//     cudaErrorIllegalAddress and prints the allocation to stderr);
//   * fresh allocations are filled with the byte 0xA5, so output never written by a kernel shows;
//   * cudaMemcpy/cudaMemset check that the device side lies inside one live allocation
//     (cudaErrorInvalidValue otherwise), cudaFree that the pointer is a live allocation.
// Launches run synchronously on the calling thread (emulation.h), so streams, events and
// synchronisation calls only check and time.
#ifndef TFE_ACCEL_CUDA_EMULATION
#error "emulation_runtime.cc is only compiled with -DTFE_ACCEL_CUDA_EMULATION (CPU emulation builds)"
#endif

#include <cuda_runtime_api.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "emulation.h"
#include "tfe_cuda.h"

// Opaque CUDA handle types, defined here (the headers only declare them).
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
  bool recorded = false;
};
struct CUstream_st {
  int unused = 0;
};

namespace tfe_accel {
namespace cuda {
namespace emu {
namespace {

constexpr std::size_t kAlign = 8;
constexpr std::size_t kFrontCanary = 64;
constexpr unsigned char kCanaryByte = 0x5a;
constexpr unsigned char kFreshByte = 0xa5;

struct Alloc {
  void* map = nullptr;
  std::size_t map_len = 0;
  std::size_t size = 0;
  std::size_t slack = 0;
};

std::mutex g_mu;
std::map<std::uintptr_t, Alloc>& Allocs() {  // user pointer -> allocation
  static auto* m = new std::map<std::uintptr_t, Alloc>();
  return *m;
}
std::atomic<int> g_geometry{static_cast<int>(Geometry::kFull)};
std::atomic<long long> g_launches{0};
// A canary overwrite seen at a free: reported by the next synchronisation of any thread.
std::atomic<bool> g_pending_illegal{false};
thread_local cudaError_t t_last_error = cudaSuccess;

std::size_t PageSize() {
  static const std::size_t p = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

std::size_t RoundUp(std::size_t x, std::size_t m) { return (x + m - 1) / m * m; }

bool CanaryIntact(std::uintptr_t user, const Alloc& a, std::string* where) {
  const auto* p = reinterpret_cast<const unsigned char*>(user);
  for (std::size_t i = 0; i < kFrontCanary; ++i)
    if (p[-1 - static_cast<std::ptrdiff_t>(i)] != kCanaryByte) {
      *where = "byte " + std::to_string(i + 1) + " before the start";
      return false;
    }
  for (std::size_t i = 0; i < a.slack; ++i)
    if (p[a.size + i] != kCanaryByte) {
      *where = "byte " + std::to_string(i) + " past the end";
      return false;
    }
  return true;
}

void ReportOverwrite(std::uintptr_t user, const Alloc& a, const std::string& where, const char* when) {
  std::fprintf(stderr,
               "tfe-accel CUDA emulation: out-of-bounds write into device allocation %p (%zu bytes): "
               "%s overwritten (seen at %s)\n",
               reinterpret_cast<void*>(user), a.size, where.c_str(), when);
}

// Checks every live allocation's canaries (and a pending report from a free).
cudaError_t CheckAll(const char* when) {
  bool bad = g_pending_illegal.exchange(false);
  std::lock_guard<std::mutex> lock(g_mu);
  for (const auto& [user, a] : Allocs()) {
    std::string where;
    if (!CanaryIntact(user, a, &where)) {
      ReportOverwrite(user, a, where, when);
      bad = true;
      // Re-arm the canary so one overwrite is reported once.
      auto* p = reinterpret_cast<unsigned char*>(user);
      std::memset(p - kFrontCanary, kCanaryByte, kFrontCanary);
      std::memset(p + a.size, kCanaryByte, a.slack);
    }
  }
  return bad ? cudaErrorIllegalAddress : cudaSuccess;
}

// True when [p, p + bytes) lies inside one live allocation.
bool InDeviceRange(const void* p, std::size_t bytes) {
  if (bytes == 0) return true;
  const auto u = reinterpret_cast<std::uintptr_t>(p);
  std::lock_guard<std::mutex> lock(g_mu);
  auto& m = Allocs();
  auto it = m.upper_bound(u);
  if (it == m.begin()) return false;
  --it;
  return u >= it->first && u - it->first <= it->second.size && bytes <= it->second.size - (u - it->first);
}

cudaError_t Record(cudaError_t err) {
  if (err != cudaSuccess) t_last_error = err;
  return err;
}

cudaError_t Allocate(void** ptr, std::size_t size) {
  if (ptr == nullptr) return Record(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (size == 0) return cudaSuccess;
  const std::size_t page = PageSize();
  const std::size_t body = RoundUp(size, kAlign);
  const std::size_t data_len = RoundUp(kFrontCanary + body, page);
  const std::size_t map_len = data_len + page;
  void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return Record(cudaErrorMemoryAllocation);
  auto* base = static_cast<unsigned char*>(m);
  if (mprotect(base + data_len, page, PROT_NONE) != 0) {
    munmap(m, map_len);
    return Record(cudaErrorMemoryAllocation);
  }
  unsigned char* user = base + data_len - body;
  std::memset(user - kFrontCanary, kCanaryByte, kFrontCanary);
  std::memset(user, kFreshByte, size);
  std::memset(user + size, kCanaryByte, body - size);
  Alloc a;
  a.map = m;
  a.map_len = map_len;
  a.size = size;
  a.slack = body - size;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    Allocs()[reinterpret_cast<std::uintptr_t>(user)] = a;
  }
  *ptr = user;
  return cudaSuccess;
}

cudaError_t Release(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  Alloc a;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = Allocs().find(reinterpret_cast<std::uintptr_t>(ptr));
    if (it == Allocs().end()) return Record(cudaErrorInvalidValue);  // not live: double free or foreign
    a = it->second;
    Allocs().erase(it);
  }
  std::string where;
  if (!CanaryIntact(reinterpret_cast<std::uintptr_t>(ptr), a, &where)) {
    ReportOverwrite(reinterpret_cast<std::uintptr_t>(ptr), a, where, "cudaFree");
    g_pending_illegal = true;
  }
  munmap(a.map, a.map_len);
  return cudaSuccess;
}

cudaError_t Copy(void* dst, const void* src, std::size_t count, cudaMemcpyKind kind) {
  if (count == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return Record(cudaErrorInvalidValue);
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind != cudaMemcpyHostToHost && kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToHost &&
      kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)
    return Record(cudaErrorInvalidMemcpyDirection);
  if ((dst_dev && !InDeviceRange(dst, count)) || (src_dev && !InDeviceRange(src, count)))
    return Record(cudaErrorInvalidValue);
  std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t Fill(void* p, int value, std::size_t count) {
  if (count == 0) return cudaSuccess;
  if (!InDeviceRange(p, count)) return Record(cudaErrorInvalidValue);
  std::memset(p, value, count);
  return cudaSuccess;
}

cudaError_t Sync(const char* when) { return Record(CheckAll(when)); }

}  // namespace

void SetGeometry(Geometry g) { g_geometry = static_cast<int>(g); }
Geometry GetGeometry() { return static_cast<Geometry>(g_geometry.load()); }
void SetLaunchError(cudaError_t err) { Record(err); }
void CountLaunch() { ++g_launches; }
long long LaunchCount() { return g_launches.load(); }

}  // namespace emu

// ---- GEMM entry points of ring_matmul.cu (not emulated) --------------------------------------------
namespace {
[[noreturn]] void NotEmulated(const char* what) {
  throw std::runtime_error(std::string(what) +
                           " is not emulated on the CPU (GEMM kernels use shared memory / tensor cores): "
                           "run bench/gpu_check.sh on a GPU");
}
}  // namespace

const char* GemmAlgoName(GemmAlgo) { NotEmulated("GemmAlgoName"); }
GemmAlgo ResolveAlgo(GemmAlgo, i64, i64, i64, int) { NotEmulated("ResolveAlgo"); }
MatmulDims PlanMatmul(const std::vector<i64>&, const std::vector<i64>&, bool, bool, const char*, const char*) {
  NotEmulated("PlanMatmul (ring_matmul / rss_matmul)");
}
void RingMatmul(const u64*, const u64*, u64*, i64, i64, i64, bool, bool, const BatchMap&, bool, GemmAlgo,
                cudaStream_t, const ScratchFn*) {
  NotEmulated("RingMatmul");
}
void RssMatmul(const u64*, const u64*, const u64*, const u64*, u64*, i64, i64, i64, bool, bool, const BatchMap&,
               i64, const u32[8], const u32[8], GemmAlgo, cudaStream_t, const ScratchFn*) {
  NotEmulated("RssMatmul");
}

}  // namespace cuda
}  // namespace tfe_accel

namespace emu = tfe_accel::cuda::emu;

// ---- the CUDA runtime API ----------------------------------------------------------------------------
extern "C" {

cudaError_t CUDARTAPI cudaMalloc(void** devPtr, size_t size) { return emu::Allocate(devPtr, size); }
cudaError_t CUDARTAPI cudaFree(void* devPtr) { return emu::Release(devPtr); }
cudaError_t CUDARTAPI cudaMallocAsync(void** devPtr, size_t size, cudaStream_t) { return emu::Allocate(devPtr, size); }
cudaError_t CUDARTAPI cudaFreeAsync(void* devPtr, cudaStream_t) { return emu::Release(devPtr); }

cudaError_t CUDARTAPI cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind) {
  return emu::Copy(dst, src, count, kind);
}
cudaError_t CUDARTAPI cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind,
                                      cudaStream_t) {
  return emu::Copy(dst, src, count, kind);
}
cudaError_t CUDARTAPI cudaMemset(void* devPtr, int value, size_t count) { return emu::Fill(devPtr, value, count); }
cudaError_t CUDARTAPI cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t) {
  return emu::Fill(devPtr, value, count);
}

cudaError_t CUDARTAPI cudaGetLastError(void) {
  cudaError_t e = emu::t_last_error;
  if (e == cudaSuccess) e = emu::CheckAll("cudaGetLastError");
  emu::t_last_error = cudaSuccess;
  return e;
}
cudaError_t CUDARTAPI cudaPeekAtLastError(void) { return emu::t_last_error; }
cudaError_t CUDARTAPI cudaDeviceSynchronize(void) { return emu::Sync("cudaDeviceSynchronize"); }
cudaError_t CUDARTAPI cudaStreamSynchronize(cudaStream_t) { return emu::Sync("cudaStreamSynchronize"); }
cudaError_t CUDARTAPI cudaStreamCreate(cudaStream_t* pStream) {
  if (pStream == nullptr) return emu::Record(cudaErrorInvalidValue);
  *pStream = new CUstream_st();
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaGetDeviceCount(int* count) {
  if (count == nullptr) return emu::Record(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaGetDevice(int* device) {
  if (device == nullptr) return emu::Record(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : emu::Record(cudaErrorInvalidDevice);
}
cudaError_t CUDARTAPI cudaGetDeviceProperties(struct cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return emu::Record(cudaErrorInvalidValue);
  if (device != 0) return emu::Record(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "%s", "CPU emulation of the CUDA kernels");
  prop->major = 0;
  prop->minor = 0;
  prop->totalGlobalMem = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  prop->sharedMemPerBlock = 48 * 1024;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaDeviceGetAttribute(int* value, enum cudaDeviceAttr attr, int device) {
  if (value == nullptr) return emu::Record(cudaErrorInvalidValue);
  if (device != 0) return emu::Record(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = 0; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMultiProcessorCount: *value = 1; break;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 48 * 1024; break;
    default: *value = 0; break;
  }
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaFuncSetAttribute(const void*, enum cudaFuncAttribute, int) { return cudaSuccess; }

const char* CUDARTAPI cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    default: return "cudaErrorUnknown";
  }
}
const char* CUDARTAPI cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument (CPU emulation)";
    case cudaErrorMemoryAllocation: return "out of memory (CPU emulation)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (CPU emulation)";
    case cudaErrorInvalidDevice: return "invalid device ordinal (CPU emulation)";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy (CPU emulation)";
    case cudaErrorIllegalAddress:
      return "an illegal memory access was encountered (CPU emulation: out-of-bounds write, see stderr)";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle (CPU emulation)";
    case cudaErrorNotReady: return "device not ready (CPU emulation)";
    default: return "unknown error (CPU emulation)";
  }
}

cudaError_t CUDARTAPI cudaEventCreate(cudaEvent_t* event) {
  if (event == nullptr) return emu::Record(cudaErrorInvalidValue);
  *event = new CUevent_st();
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) { return cudaEventCreate(event); }
cudaError_t CUDARTAPI cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (event == nullptr) return emu::Record(cudaErrorInvalidResourceHandle);
  event->t = std::chrono::steady_clock::now();  // the work before it has already run
  event->recorded = true;
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaEventSynchronize(cudaEvent_t event) {
  if (event == nullptr) return emu::Record(cudaErrorInvalidResourceHandle);
  return emu::Sync("cudaEventSynchronize");
}
cudaError_t CUDARTAPI cudaEventQuery(cudaEvent_t event) {
  return event == nullptr ? emu::Record(cudaErrorInvalidResourceHandle) : cudaSuccess;
}
cudaError_t CUDARTAPI cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr) return emu::Record(cudaErrorInvalidValue);
  if (start == nullptr || end == nullptr) return emu::Record(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return emu::Record(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}

}  // extern "C"
