// tfe-accel: the pybind11 module `tfe_accel._native`, exposing the same C++ kernels the TF ops
// use to NumPy (tests, benchmarks, and the CUDA path on machines without TensorFlow).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../kernels/bitops.h"
#include "../kernels/chacha20.h"
#include "../kernels/cpu_features.h"
#include "../kernels/parallel.h"
#include "native_common.h"
#include "native_registry.h"

namespace py = pybind11;

namespace tfe_accel {
namespace py_glue {

int& NumThreads() {
  static int n = 0;
  return n;
}
ParallelFor Pool() { return ThreadParallelFor(NumThreads()); }

namespace {

std::vector<u32> SeedWords(const py::handle& seed_obj) {
  auto seed = Require<std::int32_t>(seed_obj, "seed");
  if (seed.ndim() != 1 || seed.shape(0) != kSeedWords)
    throw py::value_error("seed must have shape (8,), got " +
                          py::str(py::tuple(py::cast(ShapeOf(seed)))).cast<std::string>());
  std::vector<u32> key(kSeedWords);
  for (int i = 0; i < kSeedWords; ++i) key[i] = static_cast<u32>(seed.at(i));
  return key;
}

py::array SeededUniform(const std::vector<i64>& shape, const py::handle& seed_obj, py::object minval,
                        py::object maxval, const std::string& dtype) {
  auto dims = ShapeArg(shape);
  auto key = SeedWords(seed_obj);
  if (dtype == "int64") {
    const i64 lo = minval.cast<i64>(), hi = maxval.cast<i64>();
    py::array_t<std::int64_t> out(dims);
    Run([&] { SeededUniformInt64(key.data(), lo, hi, out.mutable_data(), out.size(), Pool()); });
    return std::move(out);
  }
  const i64 lo64 = minval.cast<i64>(), hi64 = maxval.cast<i64>();
  auto narrow = [&](auto tag, i64 tmin, i64 tmax, auto fill) -> py::array {
    using T = decltype(tag);
    if (lo64 < tmin || lo64 > tmax || hi64 < tmin || hi64 > tmax)
      throw py::value_error("minval/maxval out of range for dtype " + dtype);
    py::array_t<T> out(dims);
    Run([&] { fill(key.data(), static_cast<T>(lo64), static_cast<T>(hi64), out.mutable_data(), out.size(), Pool()); });
    return std::move(out);
  };
  if (dtype == "int32") return narrow(std::int32_t{}, INT32_MIN, INT32_MAX, &SeededUniformInt32);
  if (dtype == "int16") return narrow(std::int16_t{}, INT16_MIN, INT16_MAX, &SeededUniformInt16);
  if (dtype == "int8") return narrow(std::int8_t{}, INT8_MIN, INT8_MAX, &SeededUniformInt8);
  throw py::type_error("dtype must be 'int8', 'int16', 'int32' or 'int64', got '" + dtype + "'");
}

template <typename T>
py::array BitGatherT(const py::array& x, int start, int stride) {
  auto a = Require<T>(x, "x");
  py::array_t<T> out(ShapeOf(a));
  Run([&] { BitGather<T>(a.data(), out.mutable_data(), a.size(), start, stride, Pool()); });
  return std::move(out);
}

template <typename T>
py::array BitSplitT(const py::array& x, int stride) {
  auto a = Require<T>(x, "x");
  auto shape = ShapeOf(a);
  shape.insert(shape.begin(), stride < 0 ? 0 : stride);
  CheckBitSplitArgs(static_cast<int>(sizeof(T) * 8), stride);  // before allocating
  py::array_t<T> out(shape);
  Run([&] { BitSplitAndGather<T>(a.data(), out.mutable_data(), a.size(), stride, Pool()); });
  return std::move(out);
}

template <typename R>
R DispatchIntDtype(const py::array& x, const char* what, R (*f8)(const py::array&),
                   R (*f16)(const py::array&), R (*f32)(const py::array&), R (*f64)(const py::array&)) {
  const auto dt = x.dtype();
  if (dt.is(py::dtype::of<std::int8_t>())) return f8(x);
  if (dt.is(py::dtype::of<std::int16_t>())) return f16(x);
  if (dt.is(py::dtype::of<std::int32_t>())) return f32(x);
  if (dt.is(py::dtype::of<std::int64_t>())) return f64(x);
  throw py::type_error(std::string(what) + ": x must have dtype int8, int16, int32 or int64, got " +
                       py::str(dt).cast<std::string>());
}

py::array Int64Unary(const py::handle& x, void (*fn)(const i64*, i64*, i64, const ParallelFor&)) {
  auto a = Require<std::int64_t>(x, "x");
  py::array_t<std::int64_t> out(ShapeOf(a));
  Run([&] { fn(a.data(), out.mutable_data(), a.size(), Pool()); });
  return std::move(out);
}

}  // namespace

void RegisterPrgAndBitops(py::module_& m) {
  m.def("chacha20_block",
        [](const py::handle& state_obj) {
          auto st = Require<std::uint32_t>(state_obj, "state");
          if (st.ndim() != 1 || st.shape(0) != 16)
            throw py::value_error("state must have shape (16,)");
          py::array_t<std::uint32_t> out(16);
          Chacha20Block(st.data(), out.mutable_data());
          return out;
        },
        py::arg("state"), "RFC 8439 ChaCha20 block function on a uint32[16] state.");
  m.def("chacha20_xor",
        [](py::bytes key, std::uint32_t counter, py::bytes nonce, py::bytes data) {
          std::string k = key, n = nonce, d = data;
          if (k.size() != 32) throw py::value_error("key must be 32 bytes, got " + std::to_string(k.size()));
          if (n.size() != 12) throw py::value_error("nonce must be 12 bytes, got " + std::to_string(n.size()));
          std::string out(d.size(), '\0');
          Chacha20Xor(reinterpret_cast<const u8*>(k.data()), counter,
                      reinterpret_cast<const u8*>(n.data()), reinterpret_cast<const u8*>(d.data()),
                      reinterpret_cast<u8*>(&out[0]), d.size());
          return py::bytes(out);
        },
        py::arg("key"), py::arg("counter"), py::arg("nonce"), py::arg("data"),
        "RFC 8439 ChaCha20 encryption (section 2.4).");
  m.def("prg_blocks",
        [](const py::handle& seed, std::uint64_t block0, std::uint32_t round, std::int64_t nblocks) {
          auto key = SeedWords(seed);
          if (nblocks < 0) throw py::value_error("nblocks must be >= 0");
          py::array_t<std::uint32_t> out({static_cast<py::ssize_t>(nblocks), static_cast<py::ssize_t>(16)});
          PrgBlocks(key.data(), block0, round, static_cast<size_t>(nblocks), out.mutable_data());
          return out;
        },
        py::arg("seed"), py::arg("block0"), py::arg("round"), py::arg("nblocks"),
        "Raw PRG keystream blocks (uint32[nblocks, 16]) of the stream layout in chacha20.h.");
  m.def("seeded_uniform", &SeededUniform, py::arg("shape"), py::arg("seed"), py::arg("minval"),
        py::arg("maxval"), py::arg("dtype") = "int64",
        "Uniform integers in [minval, maxval) from the ChaCha20 PRG keyed by seed (int32[8]); "
        "bit-identical to the SecureSeededRandomUniform TF op.");
  m.def("secure_seed",
        [] {
          py::array_t<std::int32_t> out(kSeedWords);
          SecureSeed(reinterpret_cast<u32*>(out.mutable_data()));
          return out;
        },
        "A fresh int32[8] seed from the OS CSPRNG.");
  m.def("bit_gather",
        [](const py::array& x, int start, int stride) {
          const auto dt = x.dtype();
          if (dt.is(py::dtype::of<std::int8_t>())) return BitGatherT<std::int8_t>(x, start, stride);
          if (dt.is(py::dtype::of<std::int16_t>())) return BitGatherT<std::int16_t>(x, start, stride);
          if (dt.is(py::dtype::of<std::int32_t>())) return BitGatherT<std::int32_t>(x, start, stride);
          if (dt.is(py::dtype::of<std::int64_t>())) return BitGatherT<std::int64_t>(x, start, stride);
          throw py::type_error("bit_gather: x must have dtype int8, int16, int32 or int64, got " +
                               py::str(dt).cast<std::string>());
        },
        py::arg("x"), py::arg("start"), py::arg("stride"));
  m.def("bit_split_and_gather",
        [](const py::array& x, int stride) {
          try {
            const auto dt = x.dtype();
            if (dt.is(py::dtype::of<std::int8_t>())) return BitSplitT<std::int8_t>(x, stride);
            if (dt.is(py::dtype::of<std::int16_t>())) return BitSplitT<std::int16_t>(x, stride);
            if (dt.is(py::dtype::of<std::int32_t>())) return BitSplitT<std::int32_t>(x, stride);
            if (dt.is(py::dtype::of<std::int64_t>())) return BitSplitT<std::int64_t>(x, stride);
          } catch (const KernelArgumentError& e) {
            throw py::value_error(e.what());
          }
          throw py::type_error("bit_split_and_gather: x must have dtype int8, int16, int32 or int64, got " +
                               py::str(x.dtype()).cast<std::string>());
        },
        py::arg("x"), py::arg("stride"));
  m.def("bit_reverse", [](const py::handle& x) { return Int64Unary(x, &BitReverse); }, py::arg("x"));
  m.def("xor_indices", [](const py::handle& x) { return Int64Unary(x, &XorIndices); }, py::arg("x"));
}

}  // namespace py_glue
}  // namespace tfe_accel

PYBIND11_MODULE(_native, m) {
  using namespace tfe_accel;
  m.doc() = "tfe-accel kernels for NumPy (no TensorFlow): PRG, bit ops, ring GEMM, MPC steps.";
  m.def("set_num_threads", [](int n) {
    if (n < 0) throw py::value_error("num_threads must be >= 0 (0 = all cores)");
    py_glue::NumThreads() = n;
  }, py::arg("n"));
  m.def("get_num_threads", [] { return py_glue::NumThreads(); });
  m.def("cpu_features", [] {
    const CpuFeatures& f = DetectCpuFeatures();
    py::dict d;
    d["avx2"] = f.avx2; d["avx512f"] = f.avx512f; d["avx512dq"] = f.avx512dq;
    d["avx512bw"] = f.avx512bw; d["avx512vl"] = f.avx512vl; d["avx512ifma"] = f.avx512ifma;
    d["avx512vnni"] = f.avx512vnni; d["amx_int8"] = f.amx_int8;
    return d;
  });
  m.def("code_path", [] { return std::string(CodePathName(ActiveCodePath())); },
        "The CPU code path the kernels dispatch to (portable / avx2 / avx512).");
  py_glue::RegisterPrgAndBitops(m);
  py_glue::RegisterAll(m);
}
