"""The device PRG (cc/cuda/chacha20.cuh) executed on the CPU: its __host__ __device__ functions are
compiled as host code (the host compiler with the CUDA toolkit's headers, exactly as nvcc's host
pass sees them) into a small library (tests/cuda_host/prg_host.cu) and compared, bit for
bit, with the CPU PRG of `_native` (cc/kernels/chacha20.cc) on fresh random seeds: raw keystream
blocks (counter carry into the high word, rejection rounds), the blockwise int64 stream of the
elementwise kernels (default range and ranges with a high rejection rate, so the redraw path runs),
element access at arbitrary positions, and the narrow (int8/16/32) streams. Every CUDA kernel that
draws randomness calls these functions; on the device only the three intrinsics differ (rotation,
64-bit high product, trap). Skipped when the CUDA toolkit is absent. No GPU is needed."""
import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from tfe_accel import _native

from test_cuda_compile import NVCC, ROOT, _cuda_include

CUDA_INCLUDE = _cuda_include() if NVCC else None
CXX = shutil.which("c++") or shutil.which("g++")
pytestmark = pytest.mark.skipif(CUDA_INCLUDE is None or CXX is None,
                                reason="CUDA toolkit headers (next to nvcc) or a host C++ compiler not found")

RNG = np.random.default_rng()
I64 = np.iinfo(np.int64)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda_host") / "libprg_host.so"
    cmd = [CXX, "-std=gnu++17", "-O2", "-Wall", "-Werror", "-Wno-unknown-pragmas", "-shared", "-fPIC", "-x", "c++",
           "-I", str(CUDA_INCLUDE), "-I", str(ROOT / "cc" / "cuda"),
           str(ROOT / "tests" / "cuda_host" / "prg_host.cu"), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lib = ctypes.CDLL(str(out))
    p, i64, u64, u32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32
    lib.host_prg_blocks.argtypes = [p, u64, u32, i64, p]
    lib.host_uniform_blocks.argtypes = [p, i64, i64, i64, p]
    lib.host_full_int64_at.argtypes = [p, p, i64, p]
    lib.host_uniform_window8.argtypes = [p, i64, i64, p, i64, p]
    lib.host_narrow_at.argtypes = [p, i64, i64, p, i64, p]
    return lib


def _seed():
    return RNG.integers(-(2**31), 2**31 - 1, size=8, dtype=np.int32, endpoint=True)


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


@pytest.mark.parametrize("block0,round_", [(0, 0), (12345, 0), (2**32 - 2, 0), (7, 1), (2**40 + 3, 5)])
def test_keystream_blocks(lib, block0, round_):
    seed = _seed()
    n = 5
    got = np.zeros((n, 16), np.uint32)
    lib.host_prg_blocks(_ptr(seed), block0, round_, n, _ptr(got))
    want = _native.prg_blocks(seed, block0, round_, n)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("lo,hi", [
    (I64.min, I64.max),                 # TFE's default int64 range: rejection probability 2^-64
    (-(2**62), 2**62 + 1),              # range 2^63 + 1: about half the draws are redrawn
    (2**62, I64.max),                   # range just under 2^62 (rejects ~1/4)
    (-5, 7), (0, 1), (0, 3),
])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 20011])
def test_blockwise_int64_stream(lib, lo, hi, n):
    seed = _seed()
    got = np.zeros(n, np.int64)
    lib.host_uniform_blocks(_ptr(seed), lo, hi, n, _ptr(got))
    want = _native.seeded_uniform([n], seed, lo, hi)
    np.testing.assert_array_equal(got, want)
    assert got.min() >= lo and got.max() < hi


def test_int64_elements_at_arbitrary_positions(lib):
    seed = _seed()
    n = 4099
    stream = _native.seeded_uniform([n], seed, I64.min, I64.max)
    idx = np.concatenate([[0, 1, 7, 8, n - 1], RNG.integers(0, n, 500)]).astype(np.int64)
    got = np.zeros(idx.size, np.int64)
    lib.host_full_int64_at(_ptr(seed), _ptr(idx), idx.size, _ptr(got))
    np.testing.assert_array_equal(got, stream[idx])


@pytest.mark.parametrize("lo,hi", [(I64.min, I64.max), (-(2**62), 2**62 + 1)])
def test_int64_windows_at_arbitrary_offsets(lib, lo, hi):
    """UniformWindow8 (8 elements from any offset: one or two blocks, the rejection redraws at the
    elements' own positions) against the CPU stream; every offset mod 8 and random ones."""
    seed = _seed()
    n = 4099
    stream = _native.seeded_uniform([n + 8], seed, lo, hi)
    firsts = np.concatenate([np.arange(17), [n - 1], RNG.integers(0, n, 300)]).astype(np.int64)
    got = np.zeros((firsts.size, 8), np.int64)
    lib.host_uniform_window8(_ptr(seed), lo, hi, _ptr(firsts), firsts.size, _ptr(got))
    np.testing.assert_array_equal(got, stream[firsts[:, None] + np.arange(8)])


@pytest.mark.parametrize("dtype", ["int32", "int16", "int8"])
@pytest.mark.parametrize("full", [True, False])
def test_narrow_streams(lib, dtype, full):
    info = np.iinfo(dtype)
    lo, hi = (int(info.min), int(info.max)) if full else (-3, 5)
    seed = _seed()
    n = 10007
    want = _native.seeded_uniform([n], seed, lo, hi, dtype=dtype).astype(np.int64)
    idx = np.arange(n, dtype=np.int64)
    got = np.zeros(n, np.int64)
    lib.host_narrow_at(_ptr(seed), lo, hi, _ptr(idx), n, _ptr(got))
    np.testing.assert_array_equal(got, want)
