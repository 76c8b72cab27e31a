// tfe-accel: pybind11 glue of the CUDA kernels (built into `_native` only with TFE_ACCEL_CUDA=ON,
// see cmake/cuda.cmake). Every entry point accepts either NumPy int64 arrays (copied to the device
// and back; returns NumPy) or CUDA device arrays, read in place: objects exposing
// __cuda_array_interface__ (CuPy, Numba, PyTorch, this module's CudaBuffer) or the DLPack protocol
// (__dlpack__ / __dlpack_device__ on a CUDA device: JAX, TF, PyTorch, CuPy, ...). Device-mode calls
// return a CudaBuffer, which exports both protocols (cupy.asarray / torch.from_dlpack wrap it
// without a copy). The glue only validates, moves data and calls cc/cuda/tfe_cuda.h; no kernel
// logic lives here.
// Synchronisation: the device is synchronised before reading foreign device arrays (they may have
// been written on another stream) and after each call, so results are ready when a call returns.
#include <cuda_runtime_api.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <Python.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../cuda/tfe_cuda.h"
#include "../kernels/chacha20.h"
#include "native_common.h"
#include "native_registry.h"

namespace py = pybind11;

namespace tfe_accel {
namespace py_glue {
namespace {

using cuda::Check;

// Integer element types the glue moves: itemsize 1, 2, 4, 8 (int8 .. int64).
// itemsize 0 stands for NumPy bool (one byte, 0 or 1).
constexpr int kBoolItem = 0;
std::string TypeStr(int itemsize) {
  return itemsize == kBoolItem ? "|b1" : itemsize == 1 ? "|i1" : "<i" + std::to_string(itemsize);
}
std::string DtypeName(int itemsize) { return itemsize == kBoolItem ? "bool" : "int" + std::to_string(8 * itemsize); }
size_t ItemBytes(int itemsize) { return itemsize == kBoolItem ? 1 : static_cast<size_t>(itemsize); }

// Which element types an operand may have.
enum OperandKind { kInt64Only = 0, kAnyInt = 1, kBoolOnly = 2 };

// DLPack's C ABI (dlpack.h v0.8, the unversioned "dltensor" capsule every producer supports).
struct DLDevice {
  std::int32_t device_type;
  std::int32_t device_id;
};
struct DLDataType {
  std::uint8_t code;  // 0 int, 1 uint, 2 float, 6 bool
  std::uint8_t bits;
  std::uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  std::int32_t ndim;
  DLDataType dtype;
  std::int64_t* shape;
  std::int64_t* strides;  // in elements; null: C-contiguous
  std::uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};
constexpr std::int32_t kDLCUDA = 2, kDLCUDAManaged = 13;
constexpr std::uint8_t kDLInt = 0, kDLUInt = 1, kDLBool = 6;

// Device memory owned by Python: the result type of device-mode calls.
class CudaBuffer {
 public:
  explicit CudaBuffer(std::vector<i64> shape, int itemsize = 8) : shape_(std::move(shape)), itemsize_(itemsize) {
    const size_t bytes = ItemBytes(itemsize_) * static_cast<size_t>(std::max<i64>(Size(), 1));
    Check(cudaMalloc(&ptr_, bytes), "cudaMalloc");
  }
  ~CudaBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;
  i64 Size() const {
    i64 n = 1;
    for (i64 d : shape_) n *= d;
    return n;
  }
  u64* data() const { return static_cast<u64*>(ptr_); }
  void* raw() const { return ptr_; }
  int itemsize() const { return itemsize_; }
  const std::vector<i64>& shape() const { return shape_; }

 private:
  void* ptr_ = nullptr;
  std::vector<i64> shape_;
  int itemsize_ = 8;
};

// An integer operand on the device: borrowed (foreign device array) or owned (copied from NumPy).
struct DevArray {
  std::vector<i64> shape;
  const u64* ptr = nullptr;  // int64 operands; raw() for other widths
  int itemsize = 8;
  std::shared_ptr<CudaBuffer> owned;
  py::object keep;  // a DLPack capsule: keeps the producer's memory alive during the call
  bool from_device = false;
  i64 Size() const {
    i64 n = 1;
    for (i64 d : shape) n *= d;
    return n;
  }
  const void* raw() const { return ptr; }
};

bool HasCai(const py::handle& obj) { return py::hasattr(obj, "__cuda_array_interface__"); }

// A DLPack producer on a CUDA device (NumPy arrays also speak DLPack, on the CPU: they are host
// operands).
bool HasCudaDlpack(const py::handle& obj) {
  if (py::isinstance<py::array>(obj) || !py::hasattr(obj, "__dlpack__") || !py::hasattr(obj, "__dlpack_device__"))
    return false;
  py::tuple dev = obj.attr("__dlpack_device__")();
  const int type = dev[0].cast<int>();
  return type == kDLCUDA || type == kDLCUDAManaged;
}

bool IsDeviceArray(const py::handle& obj) { return HasCai(obj) || HasCudaDlpack(obj); }

// Element size for an operand of `kind` with integer/bool type (is_bool, bits), or a TypeError.
int ItemsizeFor(const char* name, int kind, bool is_bool, bool is_int, int bits, const std::string& what) {
  if (kind == kBoolOnly) {
    if (is_bool && bits == 8) return kBoolItem;
    throw py::type_error(std::string(name) + " must have dtype bool, got " + what);
  }
  if (is_int && bits == 64) return 8;
  if (kind == kAnyInt && is_int && (bits == 32 || bits == 16 || bits == 8)) return bits / 8;
  throw py::type_error(std::string(name) +
                       (kind == kAnyInt ? " must have dtype int8, int16, int32 or int64" : " must have dtype int64") +
                       ", got " + what);
}

void CheckContiguous(const char* name, const std::vector<i64>& shape, const std::vector<i64>& strides_elems) {
  i64 expect = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    if (shape[i] > 1 && strides_elems[i] != expect)
      throw py::value_error(std::string(name) + " must be C-contiguous on the device");
    expect *= shape[i];
  }
}

// A DLPack CUDA array, read in place; the capsule is held (not consumed: its destructor returns
// the memory to the producer after the call).
DevArray FromDlpack(const py::handle& obj, const char* name, int kind) {
  py::tuple dev = obj.attr("__dlpack_device__")();
  py::object cap = obj.attr("__dlpack__")();
  if (!PyCapsule_IsValid(cap.ptr(), "dltensor"))
    throw py::type_error(std::string(name) + ": __dlpack__() did not return an unconsumed 'dltensor' capsule");
  auto* mt = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap.ptr(), "dltensor"));
  const DLTensor& t = mt->dl_tensor;
  if (t.device.device_type != kDLCUDA && t.device.device_type != kDLCUDAManaged)
    throw py::type_error(std::string(name) + " is not on a CUDA device (DLPack device type " +
                         std::to_string(t.device.device_type) + ")");
  int current = 0;
  Check(cudaGetDevice(&current), "cudaGetDevice");
  if (t.device.device_id != current)
    throw py::value_error(std::string(name) + " is on CUDA device " + std::to_string(t.device.device_id) +
                          ", this call runs on device " + std::to_string(current));
  const std::string what = "DLPack dtype (code " + std::to_string(t.dtype.code) + ", bits " +
                           std::to_string(t.dtype.bits) + ", lanes " + std::to_string(t.dtype.lanes) + ")";
  if (t.dtype.lanes != 1) throw py::type_error(std::string(name) + " must not be a vector type, got " + what);
  DevArray d;
  d.itemsize = ItemsizeFor(name, kind, t.dtype.code == kDLBool, t.dtype.code == kDLInt || t.dtype.code == kDLUInt,
                           t.dtype.bits, what);
  if (t.ndim < 0 || (t.ndim > 0 && t.shape == nullptr))
    throw py::value_error(std::string(name) + ": malformed DLPack tensor (ndim/shape)");
  d.shape.assign(t.shape, t.shape + t.ndim);
  if (t.strides != nullptr) CheckContiguous(name, d.shape, std::vector<i64>(t.strides, t.strides + t.ndim));
  d.ptr = reinterpret_cast<const u64*>(static_cast<const char*>(t.data) + t.byte_offset);
  if (t.data == nullptr && d.Size() > 0) throw py::value_error(std::string(name) + " has a null device pointer");
  d.keep = cap;
  d.from_device = true;
  return d;
}

DevArray FromDevice(const py::handle& obj, const char* name, int kind) {
  if (!HasCai(obj)) return FromDlpack(obj, name, kind);
  py::dict cai = obj.attr("__cuda_array_interface__");
  const std::string typestr = py::str(cai["typestr"]);
  const bool any_int = kind == kAnyInt;
  DevArray d;
  if (kind == kBoolOnly) {
    if (typestr != "|b1")
      throw py::type_error(std::string(name) + " must have dtype bool ('|b1'), got typestr '" + typestr + "'");
    d.itemsize = kBoolItem;
  } else if (typestr == "<i8" || typestr == "<u8") d.itemsize = 8;
  else if (any_int && typestr == "<i4") d.itemsize = 4;
  else if (any_int && typestr == "<i2") d.itemsize = 2;
  else if (any_int && (typestr == "|i1" || typestr == "<i1")) d.itemsize = 1;
  else
    throw py::type_error(std::string(name) + (any_int ? " must have dtype int8, int16, int32 or int64" : " must have dtype int64 ('<i8')") +
                         ", got typestr '" + typestr + "'");
  for (auto v : py::tuple(cai["shape"])) d.shape.push_back(v.cast<i64>());
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    py::tuple st = cai["strides"];
    i64 expect = static_cast<i64>(ItemBytes(d.itemsize));
    for (int i = static_cast<int>(d.shape.size()) - 1; i >= 0; --i) {
      if (d.shape[i] > 1 && st[i].cast<i64>() != expect)
        throw py::value_error(std::string(name) + " must be C-contiguous on the device");
      expect *= d.shape[i];
    }
  }
  py::tuple data = cai["data"];
  d.ptr = reinterpret_cast<const u64*>(data[0].cast<std::uintptr_t>());
  if (d.ptr == nullptr && d.Size() > 0) throw py::value_error(std::string(name) + " has a null device pointer");
  d.from_device = true;
  return d;
}

// NumPy operand: shape now, uploaded by Upload() once every argument has been validated.
DevArray FromHost(const py::handle& obj, const char* name, int kind, std::vector<py::array>* keep) {
  DevArray d;
  py::array arr;
  if (kind == kBoolOnly) {
    arr = Require<bool>(obj, name);
    d.itemsize = kBoolItem;
  } else if (kind == kInt64Only) {
    arr = Require<std::int64_t>(obj, name);
  } else {
    if (!py::isinstance<py::array>(obj))
      throw py::type_error(std::string(name) + " must be a numpy array of dtype int8, int16, int32 or int64");
    py::array a = py::reinterpret_borrow<py::array>(obj);
    const auto dt = a.dtype();
    if (dt.is(py::dtype::of<std::int64_t>())) arr = Require<std::int64_t>(obj, name), d.itemsize = 8;
    else if (dt.is(py::dtype::of<std::int32_t>())) arr = Require<std::int32_t>(obj, name), d.itemsize = 4;
    else if (dt.is(py::dtype::of<std::int16_t>())) arr = Require<std::int16_t>(obj, name), d.itemsize = 2;
    else if (dt.is(py::dtype::of<std::int8_t>())) arr = Require<std::int8_t>(obj, name), d.itemsize = 1;
    else
      throw py::type_error(std::string(name) + " must have dtype int8, int16, int32 or int64, got " +
                           py::str(dt).cast<std::string>());
  }
  for (py::ssize_t i = 0; i < arr.ndim(); ++i) d.shape.push_back(arr.shape(i));
  keep->push_back(arr);
  return d;
}

// All array operands of one call must live on the same side.
struct Operands {
  std::vector<DevArray> ops;
  std::vector<py::array> host;
  bool device = false;
  explicit Operands(const std::vector<std::pair<py::handle, const char*>>& objs, int kind = kInt64Only) {
    int ndev = 0;
    for (auto& o : objs) ndev += IsDeviceArray(o.first) ? 1 : 0;
    if (ndev != 0 && ndev != static_cast<int>(objs.size()))
      throw py::type_error("pass either all NumPy arrays or all CUDA device arrays (__cuda_array_interface__ or DLPack)");
    device = ndev > 0;
    for (auto& o : objs)
      ops.push_back(device ? FromDevice(o.first, o.second, kind) : FromHost(o.first, o.second, kind, &host));
  }
  DevArray& operator[](size_t i) { return ops[i]; }
  // Copies NumPy operands to the device (or synchronises before reading foreign device arrays).
  void Upload() {
    if (device) {
      Check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
      return;
    }
    for (size_t i = 0; i < ops.size(); ++i) {
      ops[i].owned = std::make_shared<CudaBuffer>(ops[i].shape, ops[i].itemsize);
      if (ops[i].Size() > 0)
        Check(cudaMemcpy(ops[i].owned->raw(), host[i].data(), ItemBytes(ops[i].itemsize) * ops[i].Size(),
                         cudaMemcpyHostToDevice),
              "cudaMemcpy(host to device)");
      ops[i].ptr = ops[i].owned->data();
    }
  }
};

py::object Result(const std::shared_ptr<CudaBuffer>& buf, bool device) {
  Check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  if (device) return py::cast(buf);
  std::vector<py::ssize_t> dims(buf->shape().begin(), buf->shape().end());
  py::array out(py::dtype(DtypeName(buf->itemsize())), dims);
  if (buf->Size() > 0)
    Check(cudaMemcpy(out.mutable_data(), buf->raw(), ItemBytes(buf->itemsize()) * buf->Size(),
                     cudaMemcpyDeviceToHost),
          "cudaMemcpy(device to host)");
  return std::move(out);
}

std::vector<u32> SeedArg(const py::handle& obj, const char* name) {
  auto seed = Require<std::int32_t>(obj, name);
  if (seed.ndim() != 1 || seed.shape(0) != 8)
    throw py::value_error(std::string(name) + " must have shape (8,)");
  std::vector<u32> w(8);
  for (int i = 0; i < 8; ++i) w[i] = static_cast<u32>(seed.at(i));
  return w;
}

cuda::GemmAlgo AlgoArg(const std::string& s) {
  if (s == "auto") return cuda::GemmAlgo::kAuto;
  if (s == "simt") return cuda::GemmAlgo::kSimt;
  if (s == "tensor_core") return cuda::GemmAlgo::kTensorCore;
  if (s == "gemv") return cuda::GemmAlgo::kGemv;
  throw py::value_error("algo must be 'auto', 'simt', 'tensor_core' or 'gemv', got '" + s + "'");
}

template <typename F>
void RunCuda(F&& f) {
  Run([&] {
    f();
    Check(cudaGetLastError(), "kernel");
  });
}

cuda::MatmulDims MatmulShapes(const std::vector<i64>& a, const std::vector<i64>& b, bool ta, bool tb,
                              const char* an, const char* bn) {
  try {
    return cuda::PlanMatmul(a, b, ta, tb, an, bn);
  } catch (const KernelArgumentError& e) {
    throw py::value_error(e.what());
  }
}

py::object CudaRingMatmul(const py::handle& a, const py::handle& b, bool ta, bool tb, const std::string& algo) {
  const auto al = AlgoArg(algo);
  Operands ops({{a, "a"}, {b, "b"}});
  const bool device = ops.device;
  auto s = MatmulShapes(ops[0].shape, ops[1].shape, ta, tb, "a", "b");
  ops.Upload();
  auto out = std::make_shared<CudaBuffer>(s.out_shape);
  RunCuda([&] { cuda::RingMatmul(ops[0].ptr, ops[1].ptr, out->data(), s.M, s.N, s.K, ta, tb, s.batch, false, al, 0); });
  return Result(out, device);
}

// Mirrors _native.rss_matmul (cc/kernels/rss_matmul.h): party i passes
// key0 = pairwise_keys()[i][0], nonce0 = pairwise_nonces()[(i + 2) % 3],
// key1 = pairwise_keys()[i][1], nonce1 = pairwise_nonces()[i].
py::object CudaRssMatmul(const py::handle& x_i, const py::handle& x_next, const py::handle& y_i,
                         const py::handle& y_next, const py::handle& key0, const py::handle& key1,
                         i64 nonce0, i64 nonce1, bool ta, bool tb, const std::string& algo) {
  const auto al = AlgoArg(algo);
  auto k0 = SeedArg(key0, "key0"), k1 = SeedArg(key1, "key1");
  u32 s0[8], s1[8];
  SeedPlusNonce(k0.data(), nonce0, s0);
  SeedPlusNonce(k1.data(), nonce1, s1);
  Operands ops({{x_i, "x_i"}, {x_next, "x_next"}, {y_i, "y_i"}, {y_next, "y_next"}});
  const bool device = ops.device;
  if (ops[0].shape != ops[1].shape) throw py::value_error("x_i and x_next must have the same shape");
  if (ops[2].shape != ops[3].shape) throw py::value_error("y_i and y_next must have the same shape");
  auto s = MatmulShapes(ops[0].shape, ops[2].shape, ta, tb, "x_i", "y_i");
  ops.Upload();
  auto out = std::make_shared<CudaBuffer>(s.out_shape);
  RunCuda([&] {
    cuda::RssMatmul(ops[0].ptr, ops[1].ptr, ops[2].ptr, ops[3].ptr, out->data(), s.M, s.N, s.K, ta, tb,
                    s.batch, ops[2].Size(), s0, s1, al, 0);
  });
  return Result(out, device);
}

// Mirrors _native.rss_mul (cc/kernels/rss_elementwise.h), same argument order.
py::object CudaRssMul(const py::handle& x_i, const py::handle& x_next, const py::handle& y_i,
                      const py::handle& y_next, const py::handle& key0, i64 nonce0, const py::handle& key1,
                      i64 nonce1) {
  auto k0 = SeedArg(key0, "key0"), k1 = SeedArg(key1, "key1");
  u32 s0[8], s1[8];
  SeedPlusNonce(k0.data(), nonce0, s0);
  SeedPlusNonce(k1.data(), nonce1, s1);
  Operands ops({{x_i, "x_i"}, {x_next, "x_next"}, {y_i, "y_i"}, {y_next, "y_next"}});
  for (int k = 1; k < 4; ++k)
    if (ops[k].shape != ops[0].shape)
      throw py::value_error(std::string(k == 1 ? "x_next" : k == 2 ? "y_i" : "y_next") +
                            " must have the shape of x_i");
  ops.Upload();
  auto out = std::make_shared<CudaBuffer>(ops[0].shape);
  RunCuda([&] { cuda::RssMul(ops[0].ptr, ops[1].ptr, ops[2].ptr, ops[3].ptr, s0, s1, out->data(), ops[0].Size(), 0); });
  return Result(out, ops.device);
}

py::object CudaSeededUniform(const std::vector<i64>& shape, const py::handle& seed, i64 lo, i64 hi, bool device) {
  auto s = SeedArg(seed, "seed");
  auto out = std::make_shared<CudaBuffer>(CheckedShape(shape));
  RunCuda([&] { cuda::SeededUniformInt64(s.data(), lo, hi, reinterpret_cast<i64*>(out->data()), out->Size(), 0); });
  return Result(out, device);
}

py::object CudaZeroShare(const std::vector<i64>& shape, const py::handle& seed0, const py::handle& seed1, bool device) {
  auto s0 = SeedArg(seed0, "seed0"), s1 = SeedArg(seed1, "seed1");
  auto out = std::make_shared<CudaBuffer>(CheckedShape(shape));
  RunCuda([&] { cuda::ZeroShare(s0.data(), s1.data(), out->data(), out->Size(), 0); });
  return Result(out, device);
}

// ABY3 non-interactive truncation (TFE _truncate_local_private), mirroring _native.truncate_local_p*.
py::object CudaTruncP0(const py::handle& x0, int amount) {
  CheckAmount(amount);
  Operands ops({{x0, "x0"}});
  ops.Upload();
  auto y = std::make_shared<CudaBuffer>(ops[0].shape);
  RunCuda([&] { cuda::TruncateLocal(0, ops[0].ptr, nullptr, ops[0].Size(), amount, nullptr, y->data(), nullptr, 0); });
  return Result(y, ops.device);
}

py::object CudaTruncP1(const py::handle& x1, const py::handle& x2, const py::handle& key, i64 nonce, int amount) {
  CheckAmount(amount);
  auto k = SeedArg(key, "key");
  u32 seed[8];
  SeedPlusNonce(k.data(), nonce, seed);
  Operands ops({{x1, "x1"}, {x2, "x2"}});
  if (ops[0].shape != ops[1].shape) throw py::value_error("x1 and x2 must have the same shape");
  ops.Upload();
  auto y = std::make_shared<CudaBuffer>(ops[0].shape);
  auto r = std::make_shared<CudaBuffer>(ops[0].shape);
  RunCuda([&] { cuda::TruncateLocal(1, ops[0].ptr, ops[1].ptr, ops[0].Size(), amount, seed, y->data(), r->data(), 0); });
  py::object yo = Result(y, ops.device);
  return py::make_tuple(yo, Result(r, ops.device));
}

py::object CudaTruncP2(const py::handle& key, i64 nonce, const std::vector<i64>& shape, bool device);

py::object CudaTruncP2(const py::handle& key, i64 nonce, const std::vector<i64>& shape, bool device) {
  auto k = SeedArg(key, "key");
  u32 seed[8];
  SeedPlusNonce(k.data(), nonce, seed);
  auto r = std::make_shared<CudaBuffer>(CheckedShape(shape));
  RunCuda([&] { cuda::TruncateLocal(2, nullptr, nullptr, r->Size(), 1, seed, nullptr, r->data(), 0); });
  return Result(r, device);
}

// ---- MSB-0 / heuristic truncation (mirrors _native.trunc_msb0_*, cc/kernels/truncation.h)
void SeedFromKey(const py::handle& key, i64 nonce, const char* name, u32 out[8]) {
  auto k = SeedArg(key, name);
  SeedPlusNonce(k.data(), nonce, out);
}

void SameShapes(const Operands& ops, const std::vector<const char*>& names) {
  for (size_t i = 1; i < ops.ops.size(); ++i)
    if (ops.ops[i].shape != ops.ops[0].shape)
      throw py::value_error(std::string(names[i]) + " must have the same shape as " + names[0]);
}

py::object CudaMsb0Dealer(const py::handle& k20, i64 n20, const py::handle& k21, i64 n21, const py::handle& rseed,
                          const std::vector<i64>& shape, int amount, std::uint64_t unlift, bool device) {
  CheckAmount(amount);
  u32 s20[8], s21[8];
  SeedFromKey(k20, n20, "key_20", s20);
  SeedFromKey(k21, n21, "key_21", s21);
  auto rs = SeedArg(rseed, "r_seed");
  auto dims = CheckedShape(shape);
  std::vector<std::shared_ptr<CudaBuffer>> outs;
  for (int i = 0; i < 5; ++i) outs.push_back(std::make_shared<CudaBuffer>(dims));
  RunCuda([&] {
    cuda::TruncMsb0Dealer(s20, s21, rs.data(), outs[0]->Size(), amount, unlift, outs[0]->data(), outs[1]->data(),
                          outs[2]->data(), outs[3]->data(), outs[4]->data(), 0);
  });
  py::list res;
  for (auto& o : outs) res.append(Result(o, device));
  return py::tuple(res);
}

py::object CudaMsb0MaskP0(const py::handle& x0, const py::handle& x1, const py::handle& key, i64 nonce, std::uint64_t lift) {
  u32 s02[8];
  SeedFromKey(key, nonce, "key", s02);
  Operands ops({{x0, "x0"}, {x1, "x1"}});
  SameShapes(ops, {"x0", "x1"});
  ops.Upload();
  auto c0 = std::make_shared<CudaBuffer>(ops[0].shape);
  RunCuda([&] { cuda::TruncMsb0MaskP0(ops[0].ptr, ops[1].ptr, s02, lift, c0->data(), ops[0].Size(), 0); });
  return Result(c0, ops.device);
}

py::object CudaAdd(const py::handle& a, const py::handle& b, const char* an, const char* bn) {
  Operands ops({{a, an}, {b, bn}});
  SameShapes(ops, {an, bn});
  ops.Upload();
  auto c = std::make_shared<CudaBuffer>(ops[0].shape);
  RunCuda([&] { cuda::RingAdd(ops[0].ptr, ops[1].ptr, c->data(), ops[0].Size(), 0); });
  return Result(c, ops.device);
}

py::object CudaMsb0UnmaskP0(const py::handle& c0, const py::handle& c1, const py::handle& key, i64 nonce, int amount,
                            std::uint64_t unlift) {
  CheckAmount(amount);
  u32 s02[8];
  SeedFromKey(key, nonce, "key", s02);
  Operands ops({{c0, "c0"}, {c1, "c1"}});
  SameShapes(ops, {"c0", "c1"});
  ops.Upload();
  auto yt = std::make_shared<CudaBuffer>(ops[0].shape), z = std::make_shared<CudaBuffer>(ops[0].shape);
  RunCuda([&] { cuda::TruncMsb0UnmaskP0(ops[0].ptr, ops[1].ptr, s02, amount, unlift, yt->data(), z->data(), ops[0].Size(), 0); });
  py::object a = Result(yt, ops.device);
  return py::make_tuple(a, Result(z, ops.device));
}

py::object CudaMsb0UnmaskP1(const py::handle& c0, const py::handle& c1, const py::handle& s1, const py::handle& m1,
                            const py::handle& key, i64 nonce, int amount) {
  CheckAmount(amount);
  u32 s12[8];
  SeedFromKey(key, nonce, "key", s12);
  Operands ops({{c0, "c0"}, {c1, "c1"}, {s1, "s1"}, {m1, "rmsb1"}});
  SameShapes(ops, {"c0", "c1", "s1", "rmsb1"});
  ops.Upload();
  auto yt = std::make_shared<CudaBuffer>(ops[0].shape), z = std::make_shared<CudaBuffer>(ops[0].shape);
  RunCuda([&] {
    cuda::TruncMsb0UnmaskP1(ops[0].ptr, ops[1].ptr, ops[2].ptr, ops[3].ptr, s12, amount, yt->data(), z->data(),
                            ops[0].Size(), 0);
  });
  py::object a = Result(yt, ops.device);
  return py::make_tuple(a, Result(z, ops.device));
}

// ---- bit extraction / Kogge-Stone carry (mirrors _native's boolean_zero_share, bit_extract_setup,
// carry_setup_and, kogge_stone_round, kogge_stone_update; cc/kernels/sigmoid_steps.h)
int DtypeBytes(const std::string& dtype) {
  if (dtype == "int64") return 8;
  if (dtype == "int32") return 4;
  if (dtype == "int16") return 2;
  if (dtype == "int8") return 1;
  throw py::type_error("dtype must be 'int8', 'int16', 'int32' or 'int64', got '" + dtype + "'");
}

py::object CudaBoolZeroShare(const py::handle& ka, i64 na, const py::handle& kb, i64 nb, const std::vector<i64>& shape,
                             const std::string& dtype, bool device) {
  const int bytes = DtypeBytes(dtype);
  u32 sa[8], sb[8];
  SeedFromKey(ka, na, "key_a", sa);
  SeedFromKey(kb, nb, "key_b", sb);
  auto out = std::make_shared<CudaBuffer>(CheckedShape(shape), bytes);
  RunCuda([&] { cuda::BooleanZeroShare(bytes, sa, sb, out->raw(), out->Size(), 0); });
  return Result(out, device);
}

py::object CudaBitExtractSetup(int party, const py::handle& x_a, const py::handle& x_b, const py::handle& ka, i64 na,
                               const py::handle& kb, i64 nb) {
  CheckParty(party);
  u32 sa[8], sb[8];
  SeedFromKey(ka, na, "key_a", sa);
  SeedFromKey(kb, nb, "key_b", sb);
  Operands ops({{x_a, "x_a"}, {x_b, "x_b"}});
  SameShapes(ops, {"x_a", "x_b"});
  ops.Upload();
  auto out = std::make_shared<CudaBuffer>(ops[0].shape);
  RunCuda([&] { cuda::BitExtractSetup(party, ops[0].ptr, ops[1].ptr, sa, sb, out->data(), ops[0].Size(), 0); });
  return Result(out, ops.device);
}

py::object CudaCarrySetupAnd(const py::handle& o1a, const py::handle& o1b, const py::handle& o2a, const py::handle& o2b,
                             const py::handle& ka, i64 na, const py::handle& kb, i64 nb) {
  u32 sa[8], sb[8];
  SeedFromKey(ka, na, "key_a", sa);
  SeedFromKey(kb, nb, "key_b", sb);
  Operands ops({{o1a, "op1_a"}, {o1b, "op1_b"}, {o2a, "op2_a"}, {o2b, "op2_b"}});
  SameShapes(ops, {"op1_a", "op1_b", "op2_a", "op2_b"});
  ops.Upload();
  const auto& dims = ops[0].shape;
  auto z = std::make_shared<CudaBuffer>(dims), pa = std::make_shared<CudaBuffer>(dims),
       pb = std::make_shared<CudaBuffer>(dims), ta = std::make_shared<CudaBuffer>(dims, 1),
       tb = std::make_shared<CudaBuffer>(dims, 1);
  RunCuda([&] {
    cuda::CarrySetupAnd(ops[0].ptr, ops[1].ptr, ops[2].ptr, ops[3].ptr, sa, sb, z->data(), pa->data(), pb->data(),
                        static_cast<std::int8_t*>(ta->raw()), static_cast<std::int8_t*>(tb->raw()), ops[0].Size(), 0);
  });
  py::list res;
  for (auto& o : {z, pa, pb, ta, tb}) res.append(Result(o, ops.device));
  return py::tuple(res);
}

void SameTypes(const Operands& ops, const std::vector<const char*>& names) {
  SameShapes(ops, names);
  for (size_t i = 1; i < ops.ops.size(); ++i)
    if (ops.ops[i].itemsize != ops.ops[0].itemsize)
      throw py::type_error(std::string(names[i]) + " must have the same dtype as " + names[0] + " (" +
                           DtypeName(ops.ops[0].itemsize) + "), got " + DtypeName(ops.ops[i].itemsize));
}

py::object CudaKsRound(const py::handle& ga, const py::handle& gb, const py::handle& pa, const py::handle& pb,
                       const py::handle& ka, i64 na, const py::handle& kb, i64 nb) {
  u32 sa[8], sb[8], sa1[8], sb1[8];
  SeedFromKey(ka, na, "key_a", sa);
  SeedFromKey(kb, nb, "key_b", sb);
  SeedFromKey(ka, local::NonceAdd(na, 1), "key_a", sa1);
  SeedFromKey(kb, local::NonceAdd(nb, 1), "key_b", sb1);
  Operands ops({{ga, "g_a"}, {gb, "g_b"}, {pa, "p_a"}, {pb, "p_b"}}, kAnyInt);
  SameTypes(ops, {"g_a", "g_b", "p_a", "p_b"});
  ops.Upload();
  const int in_bytes = ops[0].itemsize, out_bytes = in_bytes > 1 ? in_bytes / 2 : 1;
  const auto& dims = ops[0].shape;
  std::vector<std::shared_ptr<CudaBuffer>> outs;
  for (int i = 0; i < 4; ++i) outs.push_back(std::make_shared<CudaBuffer>(dims, out_bytes));
  RunCuda([&] {
    cuda::KoggeStoneRound(in_bytes, ops[0].raw(), ops[1].raw(), ops[2].raw(), ops[3].raw(), sa, sb, sa1, sb1,
                          outs[0]->raw(), outs[1]->raw(), outs[2]->raw(), outs[3]->raw(), ops[0].Size(), 0);
  });
  py::list res;
  for (auto& o : outs) res.append(Result(o, ops.device));
  return py::tuple(res);
}

py::object CudaKsUpdate(const py::handle& a, const py::handle& b, const py::handle& zo, const py::handle& zr) {
  Operands ops({{a, "gs1_a"}, {b, "gs1_b"}, {zo, "zg_own"}, {zr, "zg_recv"}}, kAnyInt);
  SameTypes(ops, {"gs1_a", "gs1_b", "zg_own", "zg_recv"});
  ops.Upload();
  const int bytes = ops[0].itemsize;
  auto ga = std::make_shared<CudaBuffer>(ops[0].shape, bytes), gb = std::make_shared<CudaBuffer>(ops[0].shape, bytes);
  RunCuda([&] {
    cuda::KoggeStoneUpdate(bytes, ops[0].raw(), ops[1].raw(), ops[2].raw(), ops[3].raw(), ga->raw(), gb->raw(),
                           ops[0].Size(), 0);
  });
  py::object x = Result(ga, ops.device);
  return py::make_tuple(x, Result(gb, ops.device));
}

// ---- sigmoid piece evaluation (mirrors _native's pivot_diff, piece_select_and, mul_ab_step1/2,
// trunc_msb0_mask_scaled_p0/p1; cc/kernels/sigmoid_steps.h). Public vectors (pivots, c0, k) are
// NumPy int64 arrays; the shares may be NumPy or device arrays.
std::shared_ptr<CudaBuffer> PublicVec(const py::handle& obj, const char* name, i64 want) {
  auto v = Require<std::int64_t>(obj, name);
  if (v.ndim() != 1) throw py::value_error(std::string(name) + " must be 1-D");
  if (want >= 0 && v.shape(0) != want)
    throw py::value_error(std::string(name) + " must have " + std::to_string(want) + " values, got " +
                          std::to_string(v.shape(0)));
  auto buf = std::make_shared<CudaBuffer>(std::vector<i64>{static_cast<i64>(v.shape(0))});
  if (v.shape(0) > 0)
    Check(cudaMemcpy(buf->raw(), v.data(), sizeof(u64) * v.shape(0), cudaMemcpyHostToDevice), "cudaMemcpy(vector)");
  return buf;
}

void SameSide(const Operands& a, const Operands& b) {
  if (a.device != b.device)
    throw py::type_error("pass either all NumPy arrays or all CUDA device arrays (__cuda_array_interface__ or DLPack)");
}

std::vector<i64> Prepend(i64 d, const std::vector<i64>& shape) {
  std::vector<i64> out{d};
  out.insert(out.end(), shape.begin(), shape.end());
  return out;
}

std::pair<i64, i64> SplitLeading(const std::vector<i64>& shape, const char* name) {
  if (shape.empty()) throw py::value_error(std::string(name) + " must have rank >= 1");
  i64 rest = 1;
  for (size_t i = 1; i < shape.size(); ++i) rest *= shape[i];
  return {shape[0], rest};
}

std::vector<u32> KeyArg(const py::handle& obj, const char* name) { return SeedArg(obj, name); }

py::object CudaPivotDiff(int party, const py::handle& x_a, const py::handle& x_b, const py::handle& pivots) {
  CheckParty(party);
  Operands ops({{x_a, "x_a"}, {x_b, "x_b"}});
  SameShapes(ops, {"x_a", "x_b"});
  auto piv = PublicVec(pivots, "pivots", -1);
  const i64 C = piv->Size();
  if (C < 1) throw py::value_error("pivots must not be empty");
  ops.Upload();
  auto dims = Prepend(C, ops[0].shape);
  auto da = std::make_shared<CudaBuffer>(dims), db = std::make_shared<CudaBuffer>(dims);
  RunCuda([&] { cuda::PivotDiff(party, ops[0].ptr, ops[1].ptr, piv->data(), C, ops[0].Size(), da->data(), db->data(), 0); });
  py::object a = Result(da, ops.device);
  return py::make_tuple(a, Result(db, ops.device));
}

py::object CudaPieceSelectAnd(int party, const py::handle& msb_a, const py::handle& msb_b, const py::handle& ka, i64 na,
                              const py::handle& kb, i64 nb) {
  CheckParty(party);
  auto a = KeyArg(ka, "key_a"), b = KeyArg(kb, "key_b");
  Operands ops({{msb_a, "msb_a"}, {msb_b, "msb_b"}}, kBoolOnly);
  SameShapes(ops, {"msb_a", "msb_b"});
  auto [C, n] = SplitLeading(ops[0].shape, "msb_a");
  if (C < 1) throw py::value_error("msb_a must have at least one pivot row");
  ops.Upload();
  auto dims = ops[0].shape;
  dims[0] = C + 1;
  auto z = std::make_shared<CudaBuffer>(dims, kBoolItem);
  RunCuda([&] {
    cuda::PieceSelectAnd(party, static_cast<const u8*>(ops[0].raw()), static_cast<const u8*>(ops[1].raw()), C, n,
                         a.data(), na, b.data(), nb, static_cast<u8*>(z->raw()), 0);
  });
  return Result(z, ops.device);
}

py::object CudaMulAbStep1(int party, const py::handle& f_a, const py::handle& f_b, const py::handle& c0o,
                          const py::handle& b_a, const py::handle& b_b, const py::handle& ka, i64 na,
                          const py::handle& kb, i64 nb) {
  CheckParty(party);
  auto a = KeyArg(ka, "key_a"), b = KeyArg(kb, "key_b");
  Operands f({{f_a, "f_a"}, {f_b, "f_b"}});
  Operands bb({{b_a, "b_a"}, {b_b, "b_b"}}, kBoolOnly);
  SameSide(f, bb);
  SameShapes(f, {"f_a", "f_b"});
  SameShapes(bb, {"b_a", "b_b"});
  if (bb[0].shape != f[0].shape) throw py::value_error("b_a must have the same shape as f_a");
  auto [K, n] = SplitLeading(f[0].shape, "f_a");
  auto c0 = PublicVec(c0o, "c0", K);
  f.Upload();
  bb.Upload();
  const auto& dims = f[0].shape;
  const auto pair = Prepend(2, dims);
  auto s0 = std::make_shared<CudaBuffer>(dims), s1 = std::make_shared<CudaBuffer>(dims),
       wa = std::make_shared<CudaBuffer>(dims);
  std::shared_ptr<CudaBuffer> mn, mp, wb;
  cuda::MulAbStep1Dev out;
  out.s_r0 = s0->data();
  out.s_r1 = s1->data();
  out.wc_a = wa->data();
  if (party != 2) {
    mn = std::make_shared<CudaBuffer>(pair);
    mp = std::make_shared<CudaBuffer>(pair);
    out.m_next = mn->data();
    out.m_prev = mp->data();
  } else {
    wb = std::make_shared<CudaBuffer>(dims);
    out.wc_b = wb->data();
  }
  RunCuda([&] {
    cuda::MulAbStep1(party, f[0].ptr, f[1].ptr, c0->data(), static_cast<const u8*>(bb[0].raw()),
                     static_cast<const u8*>(bb[1].raw()), K, n, a.data(), na, b.data(), nb, out, 0);
  });
  const bool dev = f.device;
  if (party == 0) return py::make_tuple(Result(s0, dev), Result(mn, dev), Result(mp, dev), Result(s1, dev), Result(wa, dev));
  if (party == 1) return py::make_tuple(Result(s0, dev), Result(wa, dev), Result(s1, dev), Result(mn, dev), Result(mp, dev));
  return py::make_tuple(Result(s0, dev), Result(wa, dev), Result(s1, dev), Result(wb, dev));
}

py::object CudaMulAbStep2(int party, const py::handle& b_a, const py::handle& b_b, const py::object& own,
                          const py::object& own2, const py::object& in1, const py::object& in2, const py::object& m,
                          const py::object& wc, const py::object& m2, const py::object& wc2) {
  CheckParty(party);
  const bool p2 = party == 2;
  Operands bb({{b_a, "b_a"}, {b_b, "b_b"}}, kBoolOnly);
  SameShapes(bb, {"b_a", "b_b"});
  auto [K, n] = SplitLeading(bb[0].shape, "b_a");
  const auto dims = bb[0].shape;
  const auto pair = Prepend(2, dims);
  // The arrays this party needs, in a fixed order, with their expected shapes.
  struct Need { const py::object* obj; const char* name; bool pair; bool needed; };
  const Need needs[] = {{&own, "own", false, true}, {&own2, "own2", false, p2}, {&in1, "in1", false, !p2},
                        {&in2, "in2", false, !p2}, {&m, "m", true, true}, {&wc, "wc", false, true},
                        {&m2, "m2", true, p2}, {&wc2, "wc2", false, p2}};
  std::vector<std::pair<py::handle, const char*>> objs;
  std::vector<const Need*> used;
  for (const auto& nd : needs) {
    if (!nd.needed) continue;
    if (nd.obj->is_none()) throw py::value_error(std::string("party ") + std::to_string(party) + " needs " + nd.name);
    objs.push_back({*nd.obj, nd.name});
    used.push_back(&nd);
  }
  Operands ops(objs);
  SameSide(bb, ops);
  for (size_t i = 0; i < used.size(); ++i)
    if (ops[i].shape != (used[i]->pair ? pair : dims))
      throw py::value_error(std::string(used[i]->name) + (used[i]->pair ? " must have shape [2] + b_a.shape" : " must have the shape of b_a"));
  bb.Upload();
  ops.Upload();
  cuda::MulAbStep2Dev in;
  for (size_t i = 0; i < used.size(); ++i) {
    const std::string nm = used[i]->name;
    const u64* p = ops[i].ptr;
    if (nm == "own") in.own = p; else if (nm == "own2") in.own2 = p; else if (nm == "in1") in.in1 = p;
    else if (nm == "in2") in.in2 = p; else if (nm == "m") in.m = p; else if (nm == "wc") in.wc = p;
    else if (nm == "m2") in.m2 = p; else if (nm == "wc2") in.wc2 = p;
  }
  std::vector<i64> out_dims(dims.begin() + 1, dims.end());
  auto ya = std::make_shared<CudaBuffer>(out_dims), yb = std::make_shared<CudaBuffer>(out_dims);
  RunCuda([&] {
    cuda::MulAbStep2(party, in, static_cast<const u8*>(bb[0].raw()), static_cast<const u8*>(bb[1].raw()), K, n,
                     ya->data(), yb->data(), 0);
  });
  py::object a = Result(ya, bb.device);
  return py::make_tuple(a, Result(yb, bb.device));
}

py::object CudaMaskScaledP0(const py::handle& x0, const py::handle& x1, const py::handle& ko, const py::handle& key,
                            i64 nonce, std::uint64_t lift) {
  auto kk = KeyArg(key, "key");
  Operands ops({{x0, "x0"}, {x1, "x1"}});
  SameShapes(ops, {"x0", "x1"});
  auto k = PublicVec(ko, "k", -1);
  ops.Upload();
  auto c0 = std::make_shared<CudaBuffer>(Prepend(k->Size(), ops[0].shape));
  RunCuda([&] {
    cuda::TruncMsb0MaskScaledP0(ops[0].ptr, ops[1].ptr, k->data(), k->Size(), ops[0].Size(), kk.data(), nonce, lift,
                                c0->data(), 0);
  });
  return Result(c0, ops.device);
}

py::object CudaMaskScaledP1(const py::handle& x2, const py::handle& ko, const py::handle& r1) {
  Operands ops({{x2, "x2"}, {r1, "r1"}});
  auto k = PublicVec(ko, "k", -1);
  if (ops[1].shape != Prepend(k->Size(), ops[0].shape)) throw py::value_error("r1 must have shape [K] + x2.shape");
  ops.Upload();
  auto c1 = std::make_shared<CudaBuffer>(ops[1].shape);
  RunCuda([&] { cuda::TruncMsb0MaskScaledP1(ops[0].ptr, k->data(), k->Size(), ops[0].Size(), ops[1].ptr, c1->data(), 0); });
  return Result(c1, ops.device);
}

// Times RingMatmul on random device operands with CUDA events: `warmup` untimed runs, then `reps`
// timed ones (milliseconds each). Operands come from the device PRG (no host transfer).
// Milliseconds of each of `reps` runs of `launch` on the default stream, timed with CUDA events.
template <typename Launch>
std::vector<double> EventTimes(int reps, const Launch& launch) {
  std::vector<double> ms;
  cudaEvent_t e0, e1;
  Check(cudaEventCreate(&e0), "cudaEventCreate");
  Check(cudaEventCreate(&e1), "cudaEventCreate");
  for (int i = 0; i < reps; ++i) {
    Check(cudaEventRecord(e0, 0), "cudaEventRecord");
    launch();
    Check(cudaEventRecord(e1, 0), "cudaEventRecord");
    Check(cudaEventSynchronize(e1), "cudaEventSynchronize");
    float t = 0;
    Check(cudaEventElapsedTime(&t, e0, e1), "cudaEventElapsedTime");
    ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return ms;
}

py::dict CudaBenchRingMatmul(i64 M, i64 N, i64 K, bool ta, bool tb, const std::string& algo, int warmup,
                             int reps, i64 batch) {
  const auto al = AlgoArg(algo);
  if (M <= 0 || N <= 0 || K <= 0 || batch <= 0 || reps <= 0 || warmup < 0)
    throw py::value_error("M, N, K, batch and reps must be > 0, warmup >= 0");
  int dev = 0;
  Check(cudaGetDevice(&dev), "cudaGetDevice");
  const auto resolved = cuda::ResolveAlgo(al, M, N, K, dev);
  CudaBuffer a({batch, M, K}), b({batch, K, N}), c({batch, M, N});
  const u32 s0[8] = {1, 2, 3, 4, 5, 6, 7, 8}, s1[8] = {9, 10, 11, 12, 13, 14, 15, 16};
  cuda::BatchMap bm;
  bm.ndim = 1;
  bm.dims[0] = batch;
  bm.a_stride[0] = 1;
  bm.b_stride[0] = 1;
  std::vector<double> ms;
  {
    py::gil_scoped_release release;
    cuda::SeededUniformInt64(s0, INT64_MIN, INT64_MAX, reinterpret_cast<i64*>(a.data()), a.Size(), 0);
    cuda::SeededUniformInt64(s1, INT64_MIN, INT64_MAX, reinterpret_cast<i64*>(b.data()), b.Size(), 0);
    for (int i = 0; i < warmup; ++i) cuda::RingMatmul(a.data(), b.data(), c.data(), M, N, K, ta, tb, bm, false, resolved, 0);
    Check(cudaDeviceSynchronize(), "warm-up");
    ms = EventTimes(reps, [&] { cuda::RingMatmul(a.data(), b.data(), c.data(), M, N, K, ta, tb, bm, false, resolved, 0); });
  }
  py::dict d;
  d["algo"] = cuda::GemmAlgoName(resolved);
  d["ms"] = ms;
  return d;
}

// Device-to-device cudaMemcpy of `nbytes`, timed with events; returns the milliseconds per copy
// (a copy reads and writes nbytes each).
std::vector<double> CudaBenchCopy(i64 nbytes, int reps) {
  if (nbytes <= 0 || reps <= 0) throw py::value_error("nbytes and reps must be > 0");
  CudaBuffer src({(nbytes + 7) / 8}), dst({(nbytes + 7) / 8});
  py::gil_scoped_release release;
  Check(cudaMemset(src.data(), 1, nbytes), "cudaMemset");
  Check(cudaMemcpy(dst.data(), src.data(), nbytes, cudaMemcpyDeviceToDevice), "warm-up copy");
  return EventTimes(reps, [&] {
    Check(cudaMemcpyAsync(dst.data(), src.data(), nbytes, cudaMemcpyDeviceToDevice, 0), "cudaMemcpyAsync");
  });
}

// CudaBuffer -> DLPack: the managed tensor owns a reference to the buffer and its shape.
struct DlpackExport {
  std::shared_ptr<CudaBuffer> buf;
  std::vector<std::int64_t> shape;
  DLManagedTensor tensor;
};

void DeleteDlpackExport(DLManagedTensor* self) { delete static_cast<DlpackExport*>(self->manager_ctx); }

void DlpackCapsuleDestructor(PyObject* cap) {
  if (PyCapsule_IsValid(cap, "dltensor")) {  // never consumed: we still own it
    auto* mt = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
    if (mt != nullptr && mt->deleter != nullptr) mt->deleter(mt);
  }
}

py::object ExportDlpack(const std::shared_ptr<CudaBuffer>& b, const py::object& /*stream*/) {
  int dev = 0;
  Check(cudaGetDevice(&dev), "cudaGetDevice");
  auto* ex = new DlpackExport{b, std::vector<std::int64_t>(b->shape().begin(), b->shape().end()), {}};
  DLTensor& t = ex->tensor.dl_tensor;
  t.data = b->raw();
  t.device = {kDLCUDA, dev};
  t.ndim = static_cast<std::int32_t>(ex->shape.size());
  t.dtype = b->itemsize() == kBoolItem ? DLDataType{kDLBool, 8, 1}
                                       : DLDataType{kDLInt, static_cast<std::uint8_t>(8 * b->itemsize()), 1};
  t.shape = ex->shape.data();
  t.strides = nullptr;
  t.byte_offset = 0;
  ex->tensor.manager_ctx = ex;
  ex->tensor.deleter = DeleteDlpackExport;
  PyObject* cap = PyCapsule_New(&ex->tensor, "dltensor", DlpackCapsuleDestructor);
  if (cap == nullptr) {
    delete ex;
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(cap);
}

}  // namespace

void RegisterCuda(py::module_& m) {
  py::class_<CudaBuffer, std::shared_ptr<CudaBuffer>>(m, "CudaBuffer",
      "Integer device memory returned by the cuda_* functions in device mode; exposes "
      "__cuda_array_interface__ (cupy.asarray(buf) wraps it without a copy).")
      .def_property_readonly("shape", [](const CudaBuffer& b) { return py::tuple(py::cast(b.shape())); })
      .def_property_readonly("dtype", [](const CudaBuffer& b) { return DtypeName(b.itemsize()); })
      .def_property_readonly("__cuda_array_interface__", [](const CudaBuffer& b) {
        py::dict d;
        d["shape"] = py::tuple(py::cast(b.shape()));
        d["typestr"] = TypeStr(b.itemsize());
        d["data"] = py::make_tuple(reinterpret_cast<std::uintptr_t>(b.data()), false);
        d["version"] = 3;
        d["strides"] = py::none();
        return d;
      })
      .def("numpy", [](const std::shared_ptr<CudaBuffer>& b) { return Result(b, false); },
           "Copy to a NumPy int64 array.")
      .def("__dlpack_device__", [](const CudaBuffer&) {
        int dev = 0;
        Check(cudaGetDevice(&dev), "cudaGetDevice");
        return py::make_tuple(kDLCUDA, dev);
      })
      .def("__dlpack__", &ExportDlpack, py::arg("stream") = py::none(),
           "DLPack capsule of this buffer (in place; the buffer stays alive while it is used). The "
           "buffer's work is complete when a cuda_* call returns, so any consumer stream may read it.");
  m.def("cuda_available", [] {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  }, "True when a CUDA device is usable by this process.");
  m.def("cuda_device_name", [] {
    int dev = 0;
    Check(cudaGetDevice(&dev), "cudaGetDevice");
    return cuda::DeviceDescription(dev);
  });
  m.def("cuda_ring_matmul", &CudaRingMatmul, py::arg("a"), py::arg("b"), py::arg("transpose_a") = false,
        py::arg("transpose_b") = false, py::arg("algo") = "auto",
        "C = op(a) @ op(b) mod 2^64 on the GPU (batch dims broadcast like tf.matmul); algo: auto, "
        "simt, tensor_core (int8 limbs), gemv.");
  m.def("cuda_rss_matmul", &CudaRssMatmul, py::arg("x_i"), py::arg("x_next"), py::arg("y_i"), py::arg("y_next"),
        py::arg("key0"), py::arg("key1"), py::arg("nonce0"), py::arg("nonce1"), py::arg("transpose_a") = false,
        py::arg("transpose_b") = false, py::arg("algo") = "auto",
        "One party's ABY3 matmul step (as rss_matmul): x_i.(y_i + y_next) + x_next.y_i + "
        "U(key0 + nonce0) - U(key1 + nonce1).");
  m.def("cuda_rss_mul", &CudaRssMul, py::arg("x_i"), py::arg("x_next"), py::arg("y_i"), py::arg("y_next"),
        py::arg("key0"), py::arg("nonce0"), py::arg("key1"), py::arg("nonce1"),
        "One party's ABY3 elementwise product step (as rss_mul): x_i*y_i + x_i*y_next + x_next*y_i + "
        "U(key0 + nonce0) - U(key1 + nonce1).");
  m.def("cuda_seeded_uniform", &CudaSeededUniform, py::arg("shape"), py::arg("seed"),
        py::arg("minval") = INT64_MIN, py::arg("maxval") = INT64_MAX, py::arg("device") = false,
        "int64 uniform in [minval, maxval) from the device PRG; identical to seeded_uniform.");
  m.def("cuda_zero_share", &CudaZeroShare, py::arg("shape"), py::arg("seed0"), py::arg("seed1"),
        py::arg("device") = false, "U(seed0) - U(seed1): one party's share of TFE's zero sharing.");
  m.def("cuda_truncate_local_p0", &CudaTruncP0, py::arg("x0"), py::arg("amount"),
        "ABY3 non-interactive truncation, P0: y0 = x0 >> amount (as truncate_local_p0).");
  m.def("cuda_truncate_local_p1", &CudaTruncP1, py::arg("x1"), py::arg("x2"), py::arg("key"), py::arg("nonce"),
        py::arg("amount"),
        "P1: r = U(key + nonce); returns (((x1 + x2) >> amount) - r, r) (as truncate_local_p1).");
  m.def("cuda_truncate_local_p2", &CudaTruncP2, py::arg("key"), py::arg("nonce"), py::arg("shape"),
        py::arg("device") = false, "P2: r = U(key + nonce) over shape (as truncate_local_p2).");
  m.def("cuda_trunc_msb0_dealer", &CudaMsb0Dealer, py::arg("key_20"), py::arg("nonce_20"), py::arg("key_21"),
        py::arg("nonce_21"), py::arg("r_seed"), py::arg("shape"), py::arg("amount"), py::arg("unlift") = 0,
        py::arg("device") = false, "MSB-0 truncation, dealer P2 (as trunc_msb0_dealer): (r1, s1, rmsb1, z20, z21).");
  m.def("cuda_trunc_msb0_mask_p0", &CudaMsb0MaskP0, py::arg("x0"), py::arg("x1"), py::arg("key"), py::arg("nonce"),
        py::arg("lift") = 0, "MSB-0 truncation, P0 masking (as trunc_msb0_mask_p0): c0.");
  m.def("cuda_trunc_msb0_mask_p1", [](const py::handle& x2, const py::handle& r1) { return CudaAdd(x2, r1, "x2", "r1"); },
        py::arg("x2"), py::arg("r1"), "MSB-0 truncation, P1 masking: c1 = x2 + r1.");
  m.def("cuda_trunc_msb0_unmask_p0", &CudaMsb0UnmaskP0, py::arg("c0"), py::arg("c1"), py::arg("key"), py::arg("nonce"),
        py::arg("amount"), py::arg("unlift") = 0, "MSB-0 truncation, P0 unmasking: (y_tilde0, z00).");
  m.def("cuda_trunc_msb0_unmask_p1", &CudaMsb0UnmaskP1, py::arg("c0"), py::arg("c1"), py::arg("s1"), py::arg("rmsb1"),
        py::arg("key"), py::arg("nonce"), py::arg("amount"), "MSB-0 truncation, P1 unmasking: (y_tilde1, z11).");
  m.def("cuda_trunc_msb0_combine",
        [](const py::handle& a, const py::handle& b) { return CudaAdd(a, b, "y_tilde0", "y_tilde1"); },
        py::arg("y_tilde0"), py::arg("y_tilde1"), "MSB-0 truncation: y_tilde0 + y_tilde1.");
  m.def("cuda_boolean_zero_share", &CudaBoolZeroShare, py::arg("key_a"), py::arg("nonce_a"), py::arg("key_b"),
        py::arg("nonce_b"), py::arg("shape"), py::arg("dtype") = "int64", py::arg("device") = false,
        "A party's boolean zero share (as boolean_zero_share).");
  m.def("cuda_bit_extract_setup", &CudaBitExtractSetup, py::arg("party"), py::arg("x_a"), py::arg("x_b"),
        py::arg("key_a"), py::arg("nonce_a"), py::arg("key_b"), py::arg("nonce_b"),
        "Bit-extraction (a2b) set-up (as bit_extract_setup).");
  m.def("cuda_carry_setup_and", &CudaCarrySetupAnd, py::arg("op1_a"), py::arg("op1_b"), py::arg("op2_a"),
        py::arg("op2_b"), py::arg("key_a"), py::arg("nonce_a"), py::arg("key_b"), py::arg("nonce_b"),
        "Carry set-up (as carry_setup_and): (z, p_a, p_b, top_a, top_b).");
  m.def("cuda_kogge_stone_round", &CudaKsRound, py::arg("g_a"), py::arg("g_b"), py::arg("p_a"), py::arg("p_b"),
        py::arg("key_a"), py::arg("nonce_a"), py::arg("key_b"), py::arg("nonce_b"),
        "One Kogge-Stone round's local part (as kogge_stone_round): (zg, zp, gs1_a, gs1_b), half width.");
  m.def("cuda_kogge_stone_update", &CudaKsUpdate, py::arg("gs1_a"), py::arg("gs1_b"), py::arg("zg_own"),
        py::arg("zg_recv"), "Kogge-Stone G update (as kogge_stone_update): (g_a, g_b).");
  m.def("cuda_pivot_diff", &CudaPivotDiff, py::arg("party"), py::arg("x_a"), py::arg("x_b"), py::arg("pivots"),
        "Comparison set-up (as pivot_diff): the party's shares of pivots - tile(x).");
  m.def("cuda_piece_select_and", &CudaPieceSelectAnd, py::arg("party"), py::arg("msb_a"), py::arg("msb_b"),
        py::arg("key_a"), py::arg("nonce_a"), py::arg("key_b"), py::arg("nonce_b"),
        "Piece selection AND local term (as piece_select_and).");
  m.def("cuda_mul_ab_step1", &CudaMulAbStep1, py::arg("party"), py::arg("f_a"), py::arg("f_b"), py::arg("c0"),
        py::arg("b_a"), py::arg("b_b"), py::arg("key_a"), py::arg("nonce_a"), py::arg("key_b"), py::arg("nonce_b"),
        "mul_ab(f, b) step 1 (as mul_ab_step1).");
  m.def("cuda_mul_ab_step2", &CudaMulAbStep2, py::arg("party"), py::arg("b_a"), py::arg("b_b"), py::arg("own"),
        py::arg("own2") = py::none(), py::arg("in1") = py::none(), py::arg("in2") = py::none(),
        py::arg("m") = py::none(), py::arg("wc") = py::none(), py::arg("m2") = py::none(),
        py::arg("wc2") = py::none(), "mul_ab(f, b) step 2 and the sum over pieces (as mul_ab_step2).");
  m.def("cuda_trunc_msb0_mask_scaled_p0", &CudaMaskScaledP0, py::arg("x0"), py::arg("x1"), py::arg("k"),
        py::arg("key"), py::arg("nonce"), py::arg("lift") = 0, "As trunc_msb0_mask_scaled_p0.");
  m.def("cuda_trunc_msb0_mask_scaled_p1", &CudaMaskScaledP1, py::arg("x2"), py::arg("k"), py::arg("r1"),
        "As trunc_msb0_mask_scaled_p1.");
  m.def("cuda_bench_ring_matmul", &CudaBenchRingMatmul, py::arg("M"), py::arg("N"), py::arg("K"),
        py::arg("transpose_a") = false, py::arg("transpose_b") = false, py::arg("algo") = "auto",
        py::arg("warmup") = 2, py::arg("reps") = 5, py::arg("batch") = 1,
        "Times the device ring GEMM with CUDA events; returns {'algo', 'ms': [...]}.");
  m.def("cuda_bench_copy", &CudaBenchCopy, py::arg("nbytes"), py::arg("reps") = 10,
        "Milliseconds per device-to-device cudaMemcpy of nbytes.");
}

}  // namespace py_glue
}  // namespace tfe_accel
