// tfe-accel: host definitions of the CUDA runtime calls made by the kernels' host code and the
// pybind11 glue (cc/python/native_cuda.cc), the launch machinery (blocks in sequence, the threads of a
// block as fibers; __syncthreads, __shfl_down_sync, mma.sync) for the CPU emulation (emulation.h). Compiled
// ONLY in emulation builds (tests/test_cuda_emulation.py); CMake never builds it (it globs
// cc/cuda/*.cu, and cc/python/native_cuda.cc is added by name). Signatures are those of cuda_runtime_api.h,
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
// synchronisation calls only check and time. The emulated device is compute capability 9.0 with
// 48 KiB of dynamic shared memory per block, 227 KiB after cudaFuncSetAttribute.
#ifndef TFE_ACCEL_CUDA_EMULATION
#error "emulation_runtime.cc is only compiled with -DTFE_ACCEL_CUDA_EMULATION (CPU emulation builds)"
#endif

#include <cuda_runtime_api.h>
#include <sys/mman.h>
#if !defined(__x86_64__) || defined(TFE_ACCEL_EMU_UCONTEXT)
#include <ucontext.h>
#endif
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
#include "../tfe_cuda.h"

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

// ---- launches: blocks one after another, the threads of a block as fibers ------------------------
namespace {

thread_local long long t_switches = 0;
thread_local long long t_warp_ops = 0;

constexpr std::size_t kDefaultSmemLimit = 48 * 1024;
constexpr std::size_t kMaxSmemOptin = 227 * 1024;  // sm_90: cudaDevAttrMaxSharedMemoryPerBlockOptin
std::mutex g_attr_mu;
std::map<const void*, std::size_t>& SmemLimits() {  // kernel -> MaxDynamicSharedMemorySize
  static auto* m = new std::map<const void*, std::size_t>();
  return *m;
}

// Fiber contexts. x86-64: a switch of the callee-saved registers and the stack pointer only. glibc's
// swapcontext also saves the signal mask with a system call per switch, which would dominate: the
// tensor-core kernel switches fibers ~32 times per mma.sync. Other targets: ucontext.
#if defined(__x86_64__) && !defined(TFE_ACCEL_EMU_UCONTEXT)  // TFE_ACCEL_EMU_UCONTEXT: force the portable path
extern "C" void tfe_emu_fiber_switch(void** save_sp, void* load_sp);
extern "C" void tfe_emu_fiber_start();
// tfe_emu_fiber_switch: push the System V callee-saved registers on the current stack, store the
// stack pointer in *save_sp, load load_sp and pop the registers saved there. tfe_emu_fiber_start:
// first `ret` target of a new fiber: calls the entry function (in r13) on a 16-byte aligned stack.
asm(R"(
  .text
  .p2align 4
  .globl tfe_emu_fiber_switch
  .hidden tfe_emu_fiber_switch
  .type tfe_emu_fiber_switch, @function
tfe_emu_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size tfe_emu_fiber_switch, .-tfe_emu_fiber_switch
  .p2align 4
  .globl tfe_emu_fiber_start
  .hidden tfe_emu_fiber_start
  .type tfe_emu_fiber_start, @function
tfe_emu_fiber_start:
  andq $-16, %rsp
  call *%r13
  ud2
  .size tfe_emu_fiber_start, .-tfe_emu_fiber_start
)");
struct Ctx {
  void* sp = nullptr;
};
void CtxInit(Ctx* c, unsigned char* stack_lo, std::size_t size, void (*entry)()) {
  const auto top = reinterpret_cast<std::uintptr_t>(stack_lo + size) & ~std::uintptr_t{15};
  auto* w = reinterpret_cast<std::uint64_t*>(top);
  w[-1] = 0;                                                     // never used (alignment)
  w[-2] = reinterpret_cast<std::uint64_t>(&tfe_emu_fiber_start);  // `ret` target
  w[-3] = 0;                                                     // rbp
  w[-4] = 0;                                                     // rbx
  w[-5] = 0;                                                     // r12
  w[-6] = reinterpret_cast<std::uint64_t>(entry);                // r13
  w[-7] = 0;                                                     // r14
  w[-8] = 0;                                                     // r15
  c->sp = &w[-8];
}
inline void CtxSwitch(Ctx* from, Ctx* to) { tfe_emu_fiber_switch(&from->sp, to->sp); }
#else
struct Ctx {
  ucontext_t uc;
};
void CtxInit(Ctx* c, unsigned char* stack_lo, std::size_t size, void (*entry)()) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = stack_lo;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = nullptr;
  makecontext(&c->uc, entry, 0);
}
inline void CtxSwitch(Ctx* from, Ctx* to) { swapcontext(&from->uc, &to->uc); }
#endif

// Fiber stacks: 64 KiB each with a PROT_NONE guard page below (a stack overflow faults), reserved
// once per host thread for 1024 threads; only touched pages are ever committed.
constexpr std::size_t kFiberStack = 64 * 1024;
constexpr int kMaxBlockThreads = 1024;
unsigned char* FiberStack(int i) {
  static thread_local unsigned char* base = nullptr;
  const std::size_t page = PageSize(), slot = page + kFiberStack;
  if (base == nullptr) {
    void* m = mmap(nullptr, slot * kMaxBlockThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) {
      std::fprintf(stderr, "tfe-accel CUDA emulation: cannot reserve fiber stacks\n");
      std::abort();
    }
    base = static_cast<unsigned char*>(m);
    for (int k = 0; k < kMaxBlockThreads; ++k) mprotect(base + k * slot, page, PROT_NONE);
  }
  return base + static_cast<std::size_t>(i) * slot + page;
}

enum class FState : unsigned char { kRunnable, kRunning, kAtBarrier, kAtWarp, kDone };
enum class WarpOp : unsigned char { kNone, kShflDown, kMma };
const char* OpName(WarpOp op) {
  return op == WarpOp::kShflDown ? "__shfl_down_sync" : op == WarpOp::kMma ? "mma.sync.m16n8k32" : "none";
}

struct Fiber {
  Ctx ctx;
  FState state = FState::kDone;
  uint3 tid = {0, 0, 0};
  int lin = 0;  // linear thread index in the block
};
struct LaneSlot {
  WarpOp op = WarpOp::kNone;
  unsigned delta = 0;
  std::uint64_t v = 0, out_v = 0;
  std::uint32_t a[4] = {}, b[2] = {};
  std::int32_t c[4] = {}, d[4] = {};
};
struct Warp {
  int arrived = 0;
  int size = 0;  // threads of the block in this warp (32 but for a partial last warp)
  LaneSlot lane[32];
};
struct BlockRun {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  Ctx sched;
  Fiber* current = nullptr;
  int live = 0;
  int at_barrier = 0;
  long long switches = 0, warp_ops = 0;  // added to t_switches / t_warp_ops after the launch
  // 'reverse' geometry: fibers made runnable are run last in, first out (depth first), see RunBlock.
  bool lifo = false;
  std::vector<int> ready;
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
};
thread_local BlockRun* t_block = nullptr;       // the block being run (fibers), else null
thread_local unsigned char* t_smem = nullptr;   // the running launch's dynamic shared memory
thread_local bool t_in_launch = false;

[[noreturn]] void Fatal(const std::string& what) {
  std::fprintf(stderr,
               "tfe-accel CUDA emulation: %s (block (%u, %u, %u), thread (%u, %u, %u)); on a GPU this hangs or is "
               "undefined behaviour\n",
               what.c_str(), blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
  std::fflush(stderr);
  std::abort();
}

inline void MakeRunnable(BlockRun* b, Fiber& f) {
  f.state = FState::kRunnable;
  if (b->lifo) b->ready.push_back(f.lin);
}

void ReleaseBarrier(BlockRun* b) {
  for (Fiber& f : b->fibers)
    if (f.state == FState::kAtBarrier) MakeRunnable(b, f);
  b->at_barrier = 0;
}

inline void Yield(BlockRun* b, Fiber* f) {
  ++b->switches;
  CtxSwitch(&f->ctx, &b->sched);
}

void FiberMain() {
  BlockRun* b = t_block;
  b->body(b->ctx);
  Fiber* f = b->current;
  f->state = FState::kDone;
  --b->live;
  // The threads still waiting at a barrier may all be there now.
  if (b->at_barrier > 0 && b->at_barrier == b->live) ReleaseBarrier(b);
  CtxSwitch(&f->ctx, &b->sched);
  std::abort();  // a finished fiber is never resumed
}

[[noreturn]] void Deadlock(BlockRun* b) {
  int at_barrier = 0, done = 0;
  std::string warps;
  for (std::size_t w = 0; w < b->warps.size(); ++w) {
    int waiting = 0, exited = 0;
    WarpOp op = WarpOp::kNone;
    bool mixed = false;
    for (int l = 0; l < b->warps[w].size; ++l) {
      const Fiber& f = b->fibers[w * 32 + l];
      if (f.state == FState::kAtWarp) {
        const WarpOp o = b->warps[w].lane[l].op;
        mixed = mixed || (op != WarpOp::kNone && o != op);
        op = o;
        ++waiting;
      }
      exited += f.state == FState::kDone;
    }
    if (waiting > 0)
      warps += " warp " + std::to_string(w) + ": " + std::to_string(waiting) + " lanes at " +
               (mixed ? std::string("different warp operations") : std::string(OpName(op))) + ", " +
               std::to_string(exited) + " exited, " + std::to_string(b->warps[w].size) + " in the warp;";
  }
  for (const Fiber& f : b->fibers) {
    at_barrier += f.state == FState::kAtBarrier;
    done += f.state == FState::kDone;
  }
  std::fprintf(stderr,
               "tfe-accel CUDA emulation: block (%u, %u, %u) of a %u-thread launch cannot proceed: %d threads wait "
               "at __syncthreads, %d exited;%s on a GPU this hangs or is undefined behaviour\n",
               blockIdx.x, blockIdx.y, blockIdx.z, blockDim.x * blockDim.y * blockDim.z, at_barrier, done,
               warps.c_str());
  std::fflush(stderr);
  std::abort();
}

// Two schedules, both ones a GPU may run:
//   kFull:    round robin in thread order: every runnable fiber once per sweep, so the warps of a
//             block advance in lockstep (one warp operation per sweep).
//   kReverse: last in, first out, starting from the last thread: the fibers released by a warp
//             operation or a barrier run next, so one warp runs ahead as far as its barriers allow
//             before the others start (exposes a missing __syncthreads between a warp's shared
//             memory reads and another warp's next writes).
void RunBlock(BlockRun* b, bool reverse) {
  const int nt = static_cast<int>(b->fibers.size());
  uint3* const tidx = &threadIdx;  // one thread-local address look-up, not one per switch
  if (reverse) {
    b->lifo = true;
    b->ready.clear();
    for (int t = 0; t < nt; ++t) b->ready.push_back(t);  // popped last thread first
    while (!b->ready.empty()) {
      Fiber& f = b->fibers[b->ready.back()];
      b->ready.pop_back();
      if (f.state != FState::kRunnable) continue;
      b->current = &f;
      *tidx = f.tid;
      f.state = FState::kRunning;
      ++b->switches;
      CtxSwitch(&b->sched, &f.ctx);
    }
    b->lifo = false;
    if (b->live != 0) Deadlock(b);
    return;
  }
  for (;;) {
    bool ran = false;
    for (int k = 0; k < nt; ++k) {
      Fiber& f = b->fibers[reverse ? nt - 1 - k : k];
      if (f.state != FState::kRunnable) continue;
      b->current = &f;
      *tidx = f.tid;
      f.state = FState::kRunning;
      ++b->switches;
      CtxSwitch(&b->sched, &f.ctx);
      ran = true;
    }
    if (b->live == 0) return;
    if (!ran) Deadlock(b);
  }
}

// Dynamic shared memory: ends flush against a PROT_NONE guard page (an access past the launch's size
// faults; the start is 16-byte aligned, so up to 15 bytes of slack), reserved per host thread and
// grown as needed.
unsigned char* SmemBuffer(std::size_t bytes) {
  static thread_local unsigned char* data_end = nullptr;
  static thread_local std::size_t cap = 0;
  const std::size_t need = RoundUp(bytes, 16);
  if (need > cap || data_end == nullptr) {
    const std::size_t page = PageSize();
    const std::size_t data_len = RoundUp(need > 0 ? need : 1, page);
    void* m = mmap(nullptr, data_len + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(static_cast<unsigned char*>(m) + data_len, page, PROT_NONE) != 0) {
      std::fprintf(stderr, "tfe-accel CUDA emulation: cannot map %zu bytes of shared memory\n", bytes);
      std::abort();
    }
    // The old buffer stays mapped (a few per process at most).
    data_end = static_cast<unsigned char*>(m) + data_len;
    cap = data_len;
  }
  return data_end - need;
}

}  // namespace

long long FiberSwitchCount() { return t_switches; }
long long WarpOpCount() { return t_warp_ops; }

std::size_t DynamicSmemLimit(const void* kernel) {
  std::lock_guard<std::mutex> lock(g_attr_mu);
  auto it = SmemLimits().find(kernel);
  return it == SmemLimits().end() ? kDefaultSmemLimit : it->second;
}

void RunGrid(dim3 grid, dim3 block, std::size_t smem, void (*body)(void*), void* ctx) {
  if (t_in_launch) Fatal("a kernel launched a kernel (not emulated)");
  const dim3 saved_grid = gridDim, saved_block = blockDim;
  const uint3 saved_bi = blockIdx, saved_ti = threadIdx;
  unsigned char* smem_buf = SmemBuffer(smem);
  t_smem = smem_buf;
  t_in_launch = true;
  const Geometry g = GetGeometry();
  if (g == Geometry::kSingle) {
    gridDim = dim3(1, 1, 1);
    blockDim = dim3(1, 1, 1);
    blockIdx = {0, 0, 0};
    threadIdx = {0, 0, 0};
    std::memset(smem_buf, kFreshByte, smem);
    body(ctx);
  } else {
    static thread_local BlockRun run;
    BlockRun* b = &run;
    gridDim = grid;
    blockDim = block;
    const unsigned long long nb = static_cast<unsigned long long>(grid.x) * grid.y * grid.z;
    const int nt = static_cast<int>(block.x * block.y * block.z);
    b->fibers.assign(nt, Fiber());
    b->warps.resize((nt + 31) / 32);
    for (std::size_t w = 0; w < b->warps.size(); ++w) {
      b->warps[w].size = static_cast<int>(nt - 32 * w < 32 ? nt - 32 * w : 32);
      b->warps[w].arrived = 0;
    }
    for (int t = 0; t < nt; ++t) {
      b->fibers[t].lin = t;
      b->fibers[t].tid = {static_cast<unsigned>(t % block.x), static_cast<unsigned>(t / block.x % block.y),
                          static_cast<unsigned>(t / block.x / block.y)};
    }
    b->body = body;
    b->ctx = ctx;
    const bool reverse = g == Geometry::kReverse;
    for (unsigned long long b0 = 0; b0 < nb; ++b0) {
      const unsigned long long bi = reverse ? nb - 1 - b0 : b0;
      blockIdx = {static_cast<unsigned>(bi % grid.x), static_cast<unsigned>(bi / grid.x % grid.y),
                  static_cast<unsigned>(bi / grid.x / grid.y)};
      std::memset(smem_buf, kFreshByte, smem);  // shared memory starts undefined in every block
      for (int t = 0; t < nt; ++t) {
        Fiber& f = b->fibers[t];
        f.state = FState::kRunnable;
        CtxInit(&f.ctx, FiberStack(t), kFiberStack, &FiberMain);
      }
      for (Warp& w : b->warps) w.arrived = 0;
      b->live = nt;
      b->at_barrier = 0;
      b->current = nullptr;
      t_block = b;
      RunBlock(b, reverse);
      t_block = nullptr;
    }
    t_switches += b->switches;
    t_warp_ops += b->warp_ops;
    b->switches = b->warp_ops = 0;
  }
  t_in_launch = false;
  t_smem = nullptr;
  gridDim = saved_grid;
  blockDim = saved_block;
  blockIdx = saved_bi;
  threadIdx = saved_ti;
}

void* DynamicSmem(std::size_t align) {
  if (!t_in_launch) Fatal("dynamic shared memory used outside a launch");
  if (align > 16 || (align & (align - 1)) != 0) Fatal("dynamic shared memory alignment above 16 is not emulated");
  return t_smem;
}

void SyncThreads() {
  BlockRun* b = t_block;
  if (b == nullptr) {
    if (blockDim.x * blockDim.y * blockDim.z == 1) return;  // a one-thread block ('single' geometry)
    Fatal("__syncthreads outside a fiber");
  }
  Fiber* f = b->current;
  if (++b->at_barrier == b->live) {  // the last one: everybody continues
    ReleaseBarrier(b);
    return;
  }
  f->state = FState::kAtBarrier;
  Yield(b, f);
}

namespace {

// mma.sync.aligned.m16n8k32.row.col.s32.u8.u8.s32 for the 32 lanes of a warp, with the fragment
// layouts of the PTX ISA, section "Warp-level matrix instructions" > "Matrix Fragments for
// mma.m16n8k32" (9.7.14.5.10 in PTX ISA 9.x, 9.7.13.4.10 in 8.x), .u8 multiplicands and .s32
// accumulators. groupID = %laneid >> 2, threadID_in_group = %laneid % 4; each .b32 register holds
// four 8-bit elements, low to high, so element i of a fragment is byte i % 4 of register i / 4:
//   A (16 x 32), a0..a15: row = groupID for ai with 0 <= i < 4 or 8 <= i < 12, groupID + 8 otherwise;
//                         col = threadID_in_group * 4 + (i & 0x3), + 16 for i >= 8
//   B (32 x 8),  b0..b7:  row = threadID_in_group * 4 + (i & 0x3), + 16 for i >= 4; col = groupID
//   C, D (16 x 8), c0..c3: row = groupID for i < 2, groupID + 8 otherwise;
//                         col = threadID_in_group * 2 + (i & 0x1)
// D = A.B + C with every u8 x u8 product accumulated in 32 bits, wrapping (no .satfinite).
struct MmaLayout {
  int a_row[32][16], a_col[32][16], b_row[32][8], b_col[32][8], c_row[32][4], c_col[32][4];
  MmaLayout() {
    int a_seen[16][32] = {}, b_seen[32][8] = {}, c_seen[16][8] = {};
    for (int lane = 0; lane < 32; ++lane) {
      const int group = lane >> 2, tig = lane % 4;
      for (int i = 0; i < 16; ++i) {
        a_row[lane][i] = ((0 <= i && i < 4) || (8 <= i && i < 12)) ? group : group + 8;
        a_col[lane][i] = tig * 4 + (i & 0x3) + (i >= 8 ? 16 : 0);
        ++a_seen[a_row[lane][i]][a_col[lane][i]];
      }
      for (int i = 0; i < 8; ++i) {
        b_row[lane][i] = tig * 4 + (i & 0x3) + (i >= 4 ? 16 : 0);
        b_col[lane][i] = group;
        ++b_seen[b_row[lane][i]][b_col[lane][i]];
      }
      for (int i = 0; i < 4; ++i) {
        c_row[lane][i] = i < 2 ? group : group + 8;
        c_col[lane][i] = tig * 2 + (i & 0x1);
        ++c_seen[c_row[lane][i]][c_col[lane][i]];
      }
    }
    // Each matrix element belongs to exactly one (lane, element): the layout is a bijection.
    bool ok = true;
    for (auto& r : a_seen)
      for (int v : r) ok = ok && v == 1;
    for (auto& r : b_seen)
      for (int v : r) ok = ok && v == 1;
    for (auto& r : c_seen)
      for (int v : r) ok = ok && v == 1;
    if (!ok) {
      std::fprintf(stderr, "tfe-accel CUDA emulation: the m16n8k32 fragment layout is not a bijection\n");
      std::abort();
    }
  }
};

// Not instrumented by UBSan (in the test build), which would keep the dot products from vectorising:
// the indices come from the checked MmaLayout tables and the sums cannot overflow.
__attribute__((no_sanitize("undefined"))) void MmaWarp(Warp& w) {
  static const MmaLayout L;
  // int16 copies of the bytes: the dot products below vectorise (pmaddwd); each is at most
  // 32 * 255 * 255 < 2^21, exact in int32, and is added to C modulo 2^32.
  std::int16_t A[16][32], Bt[8][32];  // Bt[n][k] = B[k][n]
  std::uint32_t C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const LaneSlot& s = w.lane[lane];
    for (int i = 0; i < 16; ++i)
      A[L.a_row[lane][i]][L.a_col[lane][i]] = static_cast<std::int16_t>((s.a[i / 4] >> (8 * (i % 4))) & 0xff);
    for (int i = 0; i < 8; ++i)
      Bt[L.b_col[lane][i]][L.b_row[lane][i]] = static_cast<std::int16_t>((s.b[i / 4] >> (8 * (i % 4))) & 0xff);
    for (int i = 0; i < 4; ++i) C[L.c_row[lane][i]][L.c_col[lane][i]] = static_cast<std::uint32_t>(s.c[i]);
  }
  std::uint32_t D[16][8];
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      std::int32_t dot = 0;
      for (int k = 0; k < 32; ++k) dot += A[m][k] * Bt[n][k];
      D[m][n] = C[m][n] + static_cast<std::uint32_t>(dot);
    }
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i)
      w.lane[lane].d[i] = static_cast<std::int32_t>(D[L.c_row[lane][i]][L.c_col[lane][i]]);
}

// Completes a warp operation once all 32 lanes are there: every lane's result, then all continue.
void CompleteWarpOp(BlockRun* b, Warp& w, int warp) {
  const WarpOp op = w.lane[0].op;
  for (int l = 1; l < 32; ++l)
    if (w.lane[l].op != op)
      Fatal(std::string("lanes of warp ") + std::to_string(warp) + " are at different warp operations (" +
            OpName(op) + ", " + OpName(w.lane[l].op) + ")");
  ++b->warp_ops;
  if (op == WarpOp::kShflDown) {
    for (int l = 0; l < 32; ++l) {
      const unsigned src = static_cast<unsigned>(l) + w.lane[l].delta;  // lanes >= 32 - delta keep their value
      w.lane[l].out_v = src < 32 ? w.lane[src].v : w.lane[l].v;
    }
  } else {
    MmaWarp(w);
  }
  for (int l = 0; l < 32; ++l) {
    Fiber& f = b->fibers[warp * 32 + l];
    if (f.state == FState::kAtWarp) MakeRunnable(b, f);
  }
}

// The calling lane's slot, after checking that a full-warp operation is possible here.
LaneSlot& WarpSlot(const char* what, BlockRun** block, Fiber** fiber, Warp** warp, int* windex) {
  BlockRun* b = t_block;
  if (b == nullptr) Fatal(std::string(what) + " outside a fiber (the 'single' geometry runs one thread, not a warp)");
  Fiber* f = b->current;
  const int wi = f->lin / 32;
  Warp& w = b->warps[wi];
  if (w.size != 32)
    Fatal(std::string(what) + " with a full-warp mask in a warp of " + std::to_string(w.size) + " threads");
  *block = b;
  *fiber = f;
  *warp = &w;
  *windex = wi;
  return w.lane[f->lin % 32];
}

// Waits until the 32 lanes of the warp are at this operation; the last one computes the results.
void WarpWait(BlockRun* b, Fiber* f, Warp& w, int wi) {
  if (++w.arrived == 32) {
    w.arrived = 0;
    CompleteWarpOp(b, w, wi);
    return;
  }
  f->state = FState::kAtWarp;
  Yield(b, f);
}

}  // namespace

std::uint64_t ShflDown64(unsigned mask, std::uint64_t v, unsigned delta, int width) {
  if (mask != 0xffffffffu) Fatal("__shfl_down_sync with a mask other than 0xffffffff is not emulated");
  if (width != 32) Fatal("__shfl_down_sync with width != 32 is not emulated");
  BlockRun* b;
  Fiber* f;
  Warp* w;
  int wi;
  LaneSlot& s = WarpSlot("__shfl_down_sync", &b, &f, &w, &wi);
  s.op = WarpOp::kShflDown;
  s.v = v;
  s.delta = delta;
  WarpWait(b, f, *w, wi);
  s.op = WarpOp::kNone;
  return s.out_v;
}

void MmaM16N8K32U8(int (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
  BlockRun* b;
  Fiber* f;
  Warp* w;
  int wi;
  LaneSlot& s = WarpSlot("mma.sync", &b, &f, &w, &wi);
  s.op = WarpOp::kMma;
  for (int i = 0; i < 4; ++i) {
    s.a[i] = a[i];
    s.c[i] = d[i];
  }
  s.b[0] = b0;
  s.b[1] = b1;
  WarpWait(b, f, *w, wi);
  s.op = WarpOp::kNone;
  for (int i = 0; i < 4; ++i) d[i] = s.d[i];
}

}  // namespace emu

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
  // Compute capability 9.0 (H100), so that ResolveAlgo allows the tensor-core GEMM.
  prop->major = 9;
  prop->minor = 0;
  prop->totalGlobalMem = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = emu::kMaxSmemOptin;
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
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMultiProcessorCount: *value = 1; break;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 48 * 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(emu::kMaxSmemOptin); break;
    default: *value = 0; break;
  }
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value) {
  if (func == nullptr) return emu::Record(cudaErrorInvalidDeviceFunction);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    // sm_90: up to cudaDevAttrMaxSharedMemoryPerBlockOptin (227 KiB; static shared memory not counted)
    if (value < 0 || static_cast<std::size_t>(value) > emu::kMaxSmemOptin) return emu::Record(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(emu::g_attr_mu);
    emu::SmemLimits()[func] = static_cast<std::size_t>(value);
    return cudaSuccess;
  }
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout)
    return value >= -1 && value <= 100 ? cudaSuccess : emu::Record(cudaErrorInvalidValue);
  return emu::Record(cudaErrorInvalidValue);  // not used by the kernels
}

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
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
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
    case cudaErrorInvalidDeviceFunction: return "invalid device function (CPU emulation)";
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
