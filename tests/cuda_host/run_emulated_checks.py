"""Runs bench/gpu_check.py's check sections on the CPU emulation of the CUDA kernels
(the `_cuda_emu` module built by tests/test_cuda_emulation.py from cc/cuda/*.cu with
-DTFE_ACCEL_CUDA_EMULATION, see cc/cuda/emulator/emulation.h), in a process of its own: a kernel
that reads past the end of an allocation faults on the emulator's guard page, and that must fail
the test, not kill pytest. gpu_check's `nat` is a proxy: its cuda_* attributes come from the emulated module, all
others from tfe_accel._native (the CPU kernels the checks compare with).

    python tests/cuda_host/run_emulated_checks.py --module-dir DIR --out results.json \
        [--sections full/check_prg,single/check_msb0,...] [--seed N]

(default: every elementwise gpu_check section under each geometry, the extra sections under 'full',
then the GEMM sections under 'full' and 'reverse'; 'single' is for grid-stride kernels only).

Writes (after every section, so a crash leaves what ran) {"seed", "running", "sections":
{"<geometry>/<section>": {"checks": [gpu_check CHECKS entries], "seconds"}}}; "running" names the
section in progress when the process died. Exit status 0 when it finished (failed checks included).
"""
import argparse
import ctypes
import faulthandler
import importlib.util
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
GPU_CHECK_SECTIONS = ["check_prg", "check_rss_mul", "check_truncation", "check_msb0", "check_kogge_stone",
                      "check_sigmoid_pieces"]
GEMM_SECTIONS = ["check_ring_matmul", "check_rss_matmul"]
GEMM_GEOMETRIES = ["full", "reverse"]
EXTRA_SECTIONS = ["emulator_self_test", "mma_self_test", "device_arrays", "dlpack", "edge_shapes", "argument_errors",
                  "gemm_extra", "device_queries"]
GEOMETRIES = ["full", "reverse", "single"]
PLAN = ([f"{g}/{s}" for g in GEOMETRIES for s in GPU_CHECK_SECTIONS] + [f"full/{s}" for s in EXTRA_SECTIONS]
        + [f"{g}/{s}" for g in GEMM_GEOMETRIES for s in GEMM_SECTIONS])


class Emulated:
    """gpu_check's `nat`: cuda_* from the emulated module, everything else from _native."""

    def __init__(self, emu, native):
        self._emu, self._native = emu, native

    def __getattr__(self, name):
        return getattr(self._emu if name.startswith("cuda_") else self._native, name)


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    return gc


def record(gc, name, ok, detail=""):
    gc.CHECKS.append({"name": name, "ok": bool(ok), "detail": detail})
    print(f"  [{'ok' if ok else 'FAIL'}] {name} {detail}", flush=True)


def emulator_self_test(gc, nat, emu):
    for name, ok in emu.emulator_self_test().items():
        record(gc, f"emulator: {name}", ok)


def device_arrays(gc, nat, emu):
    """The device-array path of the glue (__cuda_array_interface__ in, CudaBuffer out), with
    CudaBuffers standing in for CuPy arrays."""
    I64 = (-(2**63), 2**63 - 1)
    s, s1, s2 = gc.seed(), gc.seed(), gc.seed()
    buf = emu.cuda_seeded_uniform([1000, 3], s, device=True)
    cai = buf.__cuda_array_interface__
    record(gc, "device: CudaBuffer result with __cuda_array_interface__",
           type(buf).__name__ == "CudaBuffer" and buf.shape == (1000, 3) and buf.dtype == "int64"
           and cai["typestr"] == "<i8" and cai["shape"] == (1000, 3) and cai["version"] == 3
           and cai["data"][0] != 0, f"{type(buf).__name__} {cai}")
    gc.check("device: seeded_uniform CudaBuffer.numpy() vs CPU", buf.numpy(), nat.seeded_uniform([1000, 3], s, *I64))
    x1, x2 = emu.cuda_seeded_uniform([1000, 3], s1, device=True), emu.cuda_seeded_uniform([1000, 3], s2, device=True)
    key, nonce = gc.seed(), 12345
    y, r = emu.cuda_truncate_local_p1(x1, x2, key, nonce, 13)
    cy, cr = nat.truncate_local_p1(x1.numpy(), x2.numpy(), key, nonce, 13)
    record(gc, "device: truncate_local_p1 returns CudaBuffers", all(type(v).__name__ == "CudaBuffer" for v in (y, r)))
    gc.check("device: truncate_local_p1 vs CPU", np.stack([y.numpy(), r.numpy()]), np.stack([cy, cr]))
    k0, k1 = gc.seed(), gc.seed()
    z = emu.cuda_rss_mul(x1, x2, y, r, k0, 7, k1, 9)
    gc.check("device: rss_mul on chained CudaBuffers vs CPU", z.numpy(),
             nat.rss_mul(x1.numpy(), x2.numpy(), y.numpy(), r.numpy(), k0, 7, k1, 9))
    # narrow boolean words on the device
    ws = [emu.cuda_boolean_zero_share(gc.seed(), i, gc.seed(), i + 1, [77], "int16", device=True) for i in range(4)]
    record(gc, "device: int16 CudaBuffer typestr", ws[0].__cuda_array_interface__["typestr"] == "<i2"
           and ws[0].dtype == "int16")
    ga, gb = emu.cuda_kogge_stone_update(*ws)
    want = nat.kogge_stone_update(*(w.numpy() for w in ws))
    gc.check("device: kogge_stone_update int16 vs CPU", np.stack([ga.numpy(), gb.numpy()]), np.stack(want))
    out = emu.cuda_kogge_stone_round(*ws, k0, 3, k1, 4)
    want = nat.kogge_stone_round(*(w.numpy() for w in ws), k0, 3, k1, 4)
    for i, (g, c) in enumerate(zip(out, want)):
        gc.check(f"device: kogge_stone_round int16 output {i} vs CPU", g.numpy(), c)
    try:
        emu.cuda_rss_mul(x1.numpy(), x2, y, r, k0, 7, k1, 9)
        record(gc, "device: NumPy and device arrays mixed -> TypeError", False, "no error")
    except TypeError as e:
        record(gc, "device: NumPy and device arrays mixed -> TypeError", True, str(e))


def _same(gc, name, got, want):
    if isinstance(want, tuple):
        record(gc, f"{name}: same number of outputs", isinstance(got, tuple) and len(got) == len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            gc.check(f"{name} output {i} vs CPU", g, w)
    else:
        gc.check(f"{name} vs CPU", got, want)


def edge_shapes(gc, nat, emu):
    """Empty and 0-d operands through every elementwise entry point: the same outputs (shapes,
    dtypes, values) as the CPU functions."""
    ka, kb, kr = gc.seed(), gc.seed(), gc.seed()
    I64 = (-(2**63), 2**63 - 1)
    for shape in [(0,), (3, 0), ()]:
        x = [gc.rand_i64(shape) for _ in range(4)]
        tag = f"shape {shape}"
        both = lambda f, *a, **k: (getattr(emu, "cuda_" + f)(*a, **k), getattr(nat, f)(*a, **k))  # noqa: E731
        _same(gc, f"seeded_uniform {tag}", emu.cuda_seeded_uniform(list(shape), ka),
              nat.seeded_uniform(list(shape), ka, *I64))
        _same(gc, f"rss_mul {tag}", *both("rss_mul", *x, ka, 1, kb, 2))
        _same(gc, f"truncate_local_p0 {tag}", *both("truncate_local_p0", x[0], 5))
        _same(gc, f"truncate_local_p1 {tag}", *both("truncate_local_p1", x[0], x[1], ka, 3, 5))
        _same(gc, f"truncate_local_p2 {tag}", *both("truncate_local_p2", ka, 3, list(shape)))
        _same(gc, f"trunc_msb0_dealer {tag}", *both("trunc_msb0_dealer", ka, 1, kb, 2, kr, list(shape), 7, 3))
        _same(gc, f"trunc_msb0_mask_p0 {tag}", *both("trunc_msb0_mask_p0", x[0], x[1], ka, 1, 2**62))
        _same(gc, f"trunc_msb0_unmask_p0 {tag}", *both("trunc_msb0_unmask_p0", x[0], x[1], ka, 1, 7, 3))
        _same(gc, f"trunc_msb0_unmask_p1 {tag}", *both("trunc_msb0_unmask_p1", *x, kb, 2, 7))
        for dt in ["int64", "int32", "int16", "int8"]:
            _same(gc, f"boolean_zero_share {dt} {tag}", *both("boolean_zero_share", ka, 1, kb, 2, list(shape), dt))
            w = [v.astype(dt) for v in x]
            _same(gc, f"kogge_stone_round {dt} {tag}", *both("kogge_stone_round", *w, ka, 1, kb, 2))
            _same(gc, f"kogge_stone_update {dt} {tag}", *both("kogge_stone_update", *w))
        for party in range(3):
            _same(gc, f"bit_extract_setup P{party} {tag}", *both("bit_extract_setup", party, x[0], x[1], ka, 1, kb, 2))
            _same(gc, f"pivot_diff P{party} {tag}", *both("pivot_diff", party, x[0], x[1], gc.rand_i64((3,))))
        _same(gc, f"carry_setup_and {tag}", *both("carry_setup_and", *x, ka, 1, kb, 2))
        k = gc.rand_i64((3,))
        _same(gc, f"trunc_msb0_mask_scaled_p0 {tag}", *both("trunc_msb0_mask_scaled_p0", x[0], x[1], k, ka, 1, 2**62))
        _same(gc, f"trunc_msb0_mask_scaled_p1 {tag}",
              *both("trunc_msb0_mask_scaled_p1", x[0], k, gc.rand_i64((3,) + shape)))
        if shape != ():  # the piece/OT arrays carry a leading pivot / piece axis
            K = 3
            b = gc.RNG.integers(0, 2, size=(K,) + shape).astype(bool)
            f = [gc.rand_i64((K,) + shape) for _ in range(2)]
            for party in range(3):
                _same(gc, f"piece_select_and P{party} {tag}", *both("piece_select_and", party, b, b, ka, 1, kb, 2))
                c0 = gc.rand_i64((K,))
                _same(gc, f"mul_ab_step1 P{party} {tag}", *both("mul_ab_step1", party, *f, c0, b, b, ka, 1, kb, 2))
                one = lambda: gc.rand_i64((K,) + shape)  # noqa: E731
                pair = lambda: gc.rand_i64((2, K) + shape)  # noqa: E731
                kw = (dict(own=one(), own2=one(), m=pair(), wc=one(), m2=pair(), wc2=one()) if party == 2
                      else dict(own=one(), in1=one(), in2=one(), m=pair(), wc=one()))
                _same(gc, f"mul_ab_step2 P{party} {tag}", *both("mul_ab_step2", party, b, b, **kw))


def argument_errors(gc, nat, emu):
    """Bad arguments raise the same exception type from cuda_X as from the CPU X."""
    s = np.arange(8, dtype=np.int32)
    x, y = np.arange(10, dtype=np.int64), np.arange(11, dtype=np.int64)
    b = np.zeros((3, 4), bool)
    z34 = np.zeros((3, 4), np.int64)
    cases = {
        "rss_mul shapes": ("rss_mul", (x, x, x, y, s, 1, s, 2)),
        "rss_mul dtype": ("rss_mul", (x.astype(np.int32), x, x, x, s, 1, s, 2)),
        "rss_mul seed shape": ("rss_mul", (x, x, x, x, s[:7], 1, s, 2)),
        "rss_mul seed dtype": ("rss_mul", (x, x, x, x, s.astype(np.int64), 1, s, 2)),
        "truncate_local_p0 amount 0": ("truncate_local_p0", (x, 0)),
        "truncate_local_p0 amount 63": ("truncate_local_p0", (x, 63)),
        "truncate_local_p0 list": ("truncate_local_p0", ([1, 2], 3)),
        "truncate_local_p1 shapes": ("truncate_local_p1", (x, y, s, 1, 3)),
        "truncate_local_p2 negative shape": ("truncate_local_p2", (s, 1, [-1])),
        "seeded_uniform minval >= maxval": ("seeded_uniform", ([3], s, 5, 5)),
        "seeded_uniform negative shape": ("seeded_uniform", ([-2], s, 0, 5)),
        "boolean_zero_share dtype": ("boolean_zero_share", (s, 1, s, 2, [3], "uint8")),
        "kogge_stone_round mixed dtypes": ("kogge_stone_round", (x, x, x, x.astype(np.int32), s, 1, s, 2)),
        "kogge_stone_round uint8": ("kogge_stone_round", (*(x.astype(np.uint8),) * 4, s, 1, s, 2)),
        "kogge_stone_update shapes": ("kogge_stone_update", (x, x, x, y)),
        "bit_extract_setup party 3": ("bit_extract_setup", (3, x, x, s, 1, s, 2)),
        "carry_setup_and shapes": ("carry_setup_and", (x, x, x, y, s, 1, s, 2)),
        "pivot_diff no pivots": ("pivot_diff", (0, x, x, np.zeros(0, np.int64))),
        "pivot_diff 2-D pivots": ("pivot_diff", (0, x, x, np.zeros((2, 2), np.int64))),
        "piece_select_and int64 bits": ("piece_select_and", (0, z34, z34, s, 1, s, 2)),
        "piece_select_and shapes": ("piece_select_and", (0, b, b[:2], s, 1, s, 2)),
        "piece_select_and no rows": ("piece_select_and", (0, b[:0], b[:0], s, 1, s, 2)),
        "mul_ab_step1 c0 length": ("mul_ab_step1", (0, z34, z34, np.zeros(2, np.int64), b, b, s, 1, s, 2)),
        "mul_ab_step2 missing in1": ("mul_ab_step2", (0, b, b, z34)),
        "trunc_msb0_mask_scaled_p1 r1 shape": ("trunc_msb0_mask_scaled_p1",
                                               (x, np.zeros(3, np.int64), np.zeros((2, 10), np.int64))),
        "trunc_msb0_dealer amount 0": ("trunc_msb0_dealer", (s, 1, s, 2, s, [4], 0)),
        "trunc_msb0_unmask_p0 shapes": ("trunc_msb0_unmask_p0", (x, y, s, 1, 5)),
    }
    for name, (fn, args) in cases.items():
        got = []
        for f in (getattr(nat, fn), getattr(emu, "cuda_" + fn)):
            try:
                f(*args)
                got.append("no error")
            except Exception as e:  # noqa: BLE001
                got.append(type(e).__name__)
        record(gc, f"arguments: {name}: cuda_{fn} raises as {fn}", got[0] == got[1] and got[0] != "no error",
               f"CPU {got[0]}, emulated CUDA {got[1]}")


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype, _capsule_new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_capsule_ptr = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_ptr.restype, _capsule_ptr.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]


class HandMadeDlpack:
    """A DLPack producer built by hand (ctypes), independent of the glue's own export: `base` is a
    CudaBuffer holding the memory; the tensor views `shape` elements from `offset` elements in,
    with optional explicit strides (elements), dtype (code, bits), device (type, id)."""

    def __init__(self, base, shape, offset=0, strides=None, dtype=(0, 64), device=(2, 0)):
        self.base, self.device = base, device
        self._shape = (ctypes.c_int64 * len(shape))(*shape)
        self._strides = (ctypes.c_int64 * len(shape))(*strides) if strides is not None else None
        ptr = base.__cuda_array_interface__["data"][0]
        itemsize = dtype[1] // 8
        self._mt = _DLManagedTensor()
        t = self._mt.dl_tensor
        t.data, t.device, t.ndim = ptr, _DLDevice(*device), len(shape)
        t.dtype = _DLDataType(dtype[0], dtype[1], 1)
        t.shape = self._shape
        t.strides = self._strides if self._strides is not None else None
        t.byte_offset = offset * itemsize
        self._mt.manager_ctx, self._mt.deleter = None, None  # owned by this object

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, stream=None):
        return _capsule_new(ctypes.addressof(self._mt), b"dltensor", None)


def dlpack(gc, nat, emu):
    """DLPack in (producers other than __cuda_array_interface__ ones: JAX, TF, ...) and out
    (CudaBuffer.__dlpack__ for torch.from_dlpack / cupy.from_dlpack), with emulated device memory."""
    I64 = (-(2**63), 2**63 - 1)
    s = [gc.seed() for _ in range(4)]
    bufs = [emu.cuda_seeded_uniform([300, 7], si, device=True) for si in s]
    host = [b.numpy() for b in bufs]
    # export: a 'dltensor' capsule viewing the buffer in place
    cap = bufs[0].__dlpack__()
    mt = _DLManagedTensor.from_address(_capsule_ptr(cap, b"dltensor"))
    t = mt.dl_tensor
    record(gc, "dlpack export: capsule views the buffer in place",
           t.data == bufs[0].__cuda_array_interface__["data"][0] and t.ndim == 2
           and [t.shape[0], t.shape[1]] == [300, 7] and (t.dtype.code, t.dtype.bits, t.dtype.lanes) == (0, 64, 1)
           and (t.device.device_type, t.device.device_id) == (2, 0) and not t.strides and t.byte_offset == 0,
           f"data {t.data:#x} shape {[t.shape[i] for i in range(t.ndim)]}")
    record(gc, "dlpack export: __dlpack_device__ is (kDLCUDA, 0)", tuple(bufs[0].__dlpack_device__()) == (2, 0))
    del cap, mt, t  # an unconsumed capsule releases its reference to the buffer
    gc.check("dlpack export: buffer intact after the capsule is gone", bufs[0].numpy(), host[0])
    # import through the glue's own export (DLPack only) and mixed with __cuda_array_interface__
    k0, k1 = gc.seed(), gc.seed()
    want = nat.rss_mul(*host, k0, 5, k1, 6)
    z = emu.cuda_rss_mul(*(gc.DlpackOnly(b) for b in bufs), k0, 5, k1, 6)
    record(gc, "dlpack import: device-mode result is a CudaBuffer", type(z).__name__ == "CudaBuffer")
    gc.check("dlpack import: rss_mul of DLPack-only operands vs CPU", z.numpy(), want)
    z = emu.cuda_rss_mul(bufs[0], gc.DlpackOnly(bufs[1]), bufs[2], gc.DlpackOnly(bufs[3]), k0, 5, k1, 6)
    gc.check("dlpack import: DLPack and __cuda_array_interface__ operands mixed", z.numpy(), want)
    # a hand-made producer: byte offset and explicit (contiguous) strides
    big = emu.cuda_seeded_uniform([1000], s[0], device=True)
    bh = big.numpy()
    v = HandMadeDlpack(big, [10, 20], offset=37, strides=[20, 1])
    y = emu.cuda_truncate_local_p0(v, 9)
    gc.check("dlpack import: hand-made view (byte offset, strides) vs CPU", y.numpy(),
             nat.truncate_local_p0(bh[37:237].reshape(10, 20).copy(), 9))
    gc.check("dlpack import: the view's memory is untouched", big.numpy(), bh)
    # narrow and bool dtypes
    w = emu.cuda_boolean_zero_share(gc.seed(), 1, gc.seed(), 2, [64], "int16", device=True)
    ga, gb = emu.cuda_kogge_stone_update(*(gc.DlpackOnly(w) for _ in range(4)))
    want16 = nat.kogge_stone_update(*(w.numpy() for _ in range(4)))
    gc.check("dlpack import: int16 operands (kogge_stone_update) vs CPU", np.stack([ga.numpy(), gb.numpy()]),
             np.stack(want16))

    def raises(name, exc, call, needle):
        try:
            call()
            record(gc, f"dlpack error: {name}", False, "no error")
        except exc as e:
            record(gc, f"dlpack error: {name}", needle in str(e), f"{type(e).__name__}: {e}")

    raises("non-contiguous strides", ValueError,
           lambda: emu.cuda_truncate_local_p0(HandMadeDlpack(big, [10, 20], strides=[40, 2]), 9), "C-contiguous")
    raises("float64 dtype", TypeError,
           lambda: emu.cuda_truncate_local_p0(HandMadeDlpack(big, [10], dtype=(2, 64)), 9), "must have dtype int64")
    raises("another CUDA device", ValueError,
           lambda: emu.cuda_truncate_local_p0(HandMadeDlpack(big, [10], device=(2, 3)), 9), "CUDA device 3")
    raises("CPU DLPack producer is not a device array", TypeError,
           lambda: emu.cuda_truncate_local_p0(HandMadeDlpack(big, [10], device=(1, 0)), 9), "numpy")
    raises("NumPy mixed with DLPack", TypeError,
           lambda: emu.cuda_rss_mul(host[0], gc.DlpackOnly(bufs[1]), bufs[2], bufs[3], k0, 5, k1, 6), "all NumPy")
    del I64


def mma_self_test(gc, nat, emu):
    """The emulator's mma.sync.m16n8k32.row.col.s32.u8.u8.s32 against NumPy on single 16x8x32 tiles:
    D = A.B + C in int32 with wrap-around (checks the emulator's arithmetic and fragment bookkeeping;
    the GEMM sections check the kernel's own register packing)."""
    def ref(a, b, c):
        return ((a.astype(np.int64) @ b.astype(np.int64) + c) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)

    def run(name, a, b, c):
        d = np.array(emu.emulator_mma_tile(a.reshape(-1).tolist(), b.reshape(-1).tolist(), c.reshape(-1).tolist()),
                     dtype=np.int32).reshape(16, 8)
        gc.check(f"mma tile: {name}", d, ref(a, b, c))

    for i in range(8):
        a = gc.RNG.integers(0, 256, size=(16, 32), dtype=np.int64)
        b = gc.RNG.integers(0, 256, size=(32, 8), dtype=np.int64)
        c = gc.RNG.integers(-(2**31), 2**31, size=(16, 8), dtype=np.int64).astype(np.int32)
        run(f"random u8 operands, random C #{i}", a, b, c)
    full = np.full((16, 32), 255, np.int64), np.full((32, 8), 255, np.int64)
    run("all 255, C = 0", *full, np.zeros((16, 8), np.int32))
    run("all 255, C = 2^31 - 1 (wraps)", *full, np.full((16, 8), 2**31 - 1, np.int32))
    run("all 255, C = -2^31", *full, np.full((16, 8), -(2**31), np.int32))
    one = np.zeros((16, 32), np.int64)
    one[3, 17] = 1
    bb = np.arange(256, dtype=np.int64).reshape(32, 8)
    run("one-hot A picks one row of B", one, bb, np.zeros((16, 8), np.int32))


def gemm_extra(gc, nat, emu):
    """GEMM cases beyond gpu_check's lists: the limb accumulators at their worst case, GEMV with many K
    slices (atomicAdd across blocks), rss_matmul with M, N or K == 0, device-array chains, and the
    GEMM benchmark entry point."""
    m1 = lambda shape: np.full(shape, -1, np.int64)  # noqa: E731  every limb byte 255
    a, b = m1((64, 4100)), m1((4100, 64))
    want = gc.ref.ring_matmul(a, b)
    for algo in ["tensor_core", "simt"]:
        gc.guarded(f"ring_matmul[{algo}] all-ones bytes", lambda: gc.check(
            f"ring_matmul[{algo}] (64, 4100)x(4100, 64) every byte 255 (worst-case limb accumulators)",
            nat.cuda_ring_matmul(a, b, algo=algo), want))
    # (the long-K GEMV shapes only through the GEMV kernels: simt / tensor_core on N == 1 are covered by
    # gpu_check's (470, 1781) cases and would cost ~4 s each here)
    for ashape, bshape, ta, tb, note, algos in [
            ((2, 20000), (20000, 1), False, False, "GemvRowKernel, 20 K slices", ["gemv", "auto"]),
            ((20000, 2), (20000, 1), True, False, "GemvColKernel, 1250 K slices", ["gemv", "auto"]),
            ((1, 5000), (7, 5000), False, True, "GemvRowKernel M == 1, 5 K slices", ["gemv", "auto", "simt", "tensor_core"]),
            ((1, 0), (0, 5), False, False, "K == 0", ["gemv", "auto", "simt", "tensor_core"])]:
        x, y = gc.rand_i64(ashape), gc.rand_i64(bshape)
        want = gc.ref.ring_matmul(x, y, ta, tb)
        for algo in algos:
            gc.guarded(f"ring_matmul[{algo}] {ashape}x{bshape}", lambda: gc.check(
                f"ring_matmul[{algo}] {ashape}x{bshape} ta={ta} tb={tb} ({note})",
                nat.cuda_ring_matmul(x, y, transpose_a=ta, transpose_b=tb, algo=algo), want))
    for xs, ys in [((4, 0), (0, 3)), ((0, 5), (5, 3)), ((4, 5), (5, 0)), ((2, 3, 0, 4), (4, 6))]:
        x0, x1, y0, y1 = gc.rand_i64(xs), gc.rand_i64(xs), gc.rand_i64(ys), gc.rand_i64(ys)
        k0, k1 = gc.seed(), gc.seed()
        cpu = nat.rss_matmul(x0, x1, y0, y1, k0, k1, 5, 6)
        for algo in ["auto", "simt", "tensor_core"]:
            gc.guarded(f"rss_matmul[{algo}] {xs}x{ys}", lambda: gc.check(
                f"rss_matmul[{algo}] {xs}x{ys} vs CPU", nat.cuda_rss_matmul(x0, x1, y0, y1, k0, k1, 5, 6, algo=algo),
                cpu))
    # device arrays in and out: a chain of GEMMs on CudaBuffers
    x, y, w = gc.rand_i64((70, 130)), gc.rand_i64((130, 129)), gc.rand_i64((129, 1))
    for algo in ["simt", "tensor_core"]:
        xy = emu.cuda_ring_matmul(emu.cuda_ring_matmul(x, y, algo=algo), w, algo="gemv")
        gc.check(f"ring_matmul[{algo}] then [gemv] on NumPy", xy, gc.ref.ring_matmul(gc.ref.ring_matmul(x, y), w))
        bx = emu.cuda_seeded_uniform([70, 130], gc.seed(), device=True)
        by = emu.cuda_seeded_uniform([130, 129], gc.seed(), device=True)
        got = emu.cuda_ring_matmul(bx, by, algo=algo)
        ok = type(got).__name__ == "CudaBuffer"
        record(gc, f"ring_matmul[{algo}] on CudaBuffers returns a CudaBuffer", ok, type(got).__name__)
        gc.check(f"ring_matmul[{algo}] on CudaBuffers vs NumPy", got.numpy() if ok else got,
                 gc.ref.ring_matmul(bx.numpy(), by.numpy()))
    for (M, N, K), algo in [((70, 65, 33), "simt"), ((70, 65, 33), "tensor_core"), ((70, 1, 300), "gemv"),
                            ((130, 130, 64), "auto")]:
        d = emu.cuda_bench_ring_matmul(M, N, K, algo=algo, warmup=1, reps=2)
        want_algo = "tensor_core" if algo == "auto" else algo
        record(gc, f"bench_ring_matmul {M}x{N}x{K} [{algo}] runs and names the kernel",
               d["algo"] == want_algo and len(d["ms"]) == 2 and all(t >= 0 for t in d["ms"]), str(d))


def device_queries(gc, nat, emu):
    """The device queries describe the emulation (an sm_90 device), the copy benchmark times host copies."""
    record(gc, "cuda_available() in emulation", emu.cuda_available() is True)
    name = emu.cuda_device_name()
    record(gc, "cuda_device_name() names the emulation, sm_90",
           name.startswith("CPU emulation of the CUDA kernels") and "sm_90" in name, name)
    ms = emu.cuda_bench_copy(1 << 20, 3)
    record(gc, "cuda_bench_copy times host copies with emulated events", len(ms) == 3 and all(t >= 0 for t in ms),
           str(ms))


EXTRA = {f.__name__: f for f in [emulator_self_test, mma_self_test, device_arrays, dlpack, edge_shapes,
                                  argument_errors, gemm_extra, device_queries]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--module-dir", required=True, help="folder holding the _cuda_emu module")
    ap.add_argument("--out", required=True, help="results JSON")
    ap.add_argument("--sections", default=",".join(PLAN), help="comma-separated <geometry>/<section> keys")
    ap.add_argument("--seed", type=int, default=None, help="seed of gpu_check's RNG (default: fresh)")
    args = ap.parse_args()
    faulthandler.enable()
    sys.path.insert(0, args.module_dir)
    import _cuda_emu as emu  # noqa: E402
    from tfe_accel import _native  # noqa: E402

    gc = load_gpu_check()
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**63)
    gc.RNG = np.random.default_rng(seed)
    nat = Emulated(emu, _native)
    results = {"seed": seed, "device": emu.cuda_device_name(), "running": None, "sections": {}}

    def save():
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)

    for key in args.sections.split(","):
        geometry, section = key.split("/")
        if geometry not in GEOMETRIES or section not in GPU_CHECK_SECTIONS + EXTRA_SECTIONS + GEMM_SECTIONS:
            raise SystemExit(f"unknown section {key!r}")
        results["running"] = key
        save()
        print(f"\n== {key} (seed {seed})", flush=True)
        emu.set_geometry(geometry)
        n0, launches0, t0 = len(gc.CHECKS), emu.launch_count(), time.time()
        sw0, wo0 = emu.fiber_switch_count(), emu.warp_op_count()
        if section in EXTRA:
            gc.guarded(section, lambda: EXTRA[section](gc, nat, emu))
        else:
            fn = getattr(gc, section)
            gc.guarded(section, lambda: fn(nat))
        results["sections"][key] = {"checks": gc.CHECKS[n0:], "seconds": time.time() - t0,
                                    "launches": emu.launch_count() - launches0,
                                    "fiber_switches": emu.fiber_switch_count() - sw0,
                                    "warp_ops": emu.warp_op_count() - wo0}
        print(f"== {key}: {len(gc.CHECKS) - n0} checks in {time.time() - t0:.1f}s", flush=True)
    results["running"] = None
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
