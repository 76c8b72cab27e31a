"""GPU check of the CUDA kernels, for a machine with an NVIDIA GPU, numpy and the
`_native` module built with -DTFE_ACCEL_CUDA=ON (bench/gpu_check.sh builds it). No TensorFlow.

1. Correctness, bit for bit, on fresh random inputs (edge values included): every cuda_* entry
   point against a plain NumPy uint64 reference AND against the CPU kernels of the same module
   (_native.seeded_uniform, ring_matmul, rss_matmul, rss_mul, truncate_local_p*), every GEMM algorithm
   (simt, tensor_core, gemv, auto), transposes, broadcast batch dims, odd and empty shapes, K past
   the limb kernel's 4096 fold interval; the device-array (__cuda_array_interface__) path via CuPy
   when importable; 8192^3 tensor-core vs SIMT on the device plus rows against NumPy.
2. Timings with CUDA events (warm-up, medians): ring GEMM 4096^3 and 8192^3 per algorithm, the LR
   matrix-vector shapes (470 x 17814 @ 17814 x 1 and the transposed product), device copy bandwidth.
The NumPy references come from python/tfe_accel/reference.py (NumPy only), loaded by path: the
package's __init__ imports TensorFlow, which this machine does not have.
Prints a table; writes <out>/gpu_check.json. Exit status 1 if any check fails.
"""
import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time

import numpy as np


def _load_reference():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "python", "tfe_accel",
                        "reference.py")
    spec = importlib.util.spec_from_file_location("tfe_accel_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_reference()
EDGE = ref.EDGE_INT64
I64 = (ref.INT64_MIN, ref.INT64_MAX)
RNG = np.random.default_rng()
CHECKS = []


def rand_i64(shape, edge=True):
    """Uniform int64 with 3 copies of each edge value at random positions (RNG read at call time)."""
    return ref.random_int64(RNG, shape, EDGE if edge else (), copies=3, spread=True)


def seed():
    return ref.random_key(RNG)


def ref_matmul(a, b, ta=False, tb=False):
    return ref.ring_matmul(a, b, ta, tb)


def check(name, got, want, extra=""):
    got = np.asarray(got)
    want = np.asarray(want)
    ok = got.shape == want.shape and got.dtype == want.dtype and np.array_equal(got, want)
    detail = "" if ok else f"shape {got.shape} vs {want.shape}, dtype {got.dtype} vs {want.dtype}"
    if not ok and got.shape == want.shape:
        detail += f", {int(np.count_nonzero(got != want))} mismatching elements"
    CHECKS.append({"name": name, "ok": bool(ok), "detail": (detail + " " + extra).strip()})
    print(f"  [{'ok' if ok else 'FAIL'}] {name} {detail}", flush=True)
    return ok


def guarded(name, fn):
    try:
        fn()
    except Exception as e:  # a crash is a failed check, not the end of the run
        CHECKS.append({"name": name, "ok": False, "detail": f"{type(e).__name__}: {e}"})
        print(f"  [FAIL] {name}: {type(e).__name__}: {e}", flush=True)


def check_prg(nat):
    for shape in [(0,), (1,), (7,), (9,), (1000003,), (3, 5, 7)]:
        s = seed()
        check(f"seeded_uniform default range {shape}", nat.cuda_seeded_uniform(list(shape), s),
              nat.seeded_uniform(list(shape), s, *I64))
    # Ranges whose rejection rate is high (range = 2^63 + 1 rejects ~half of the draws): the
    # redraw path in rounds 1, 2, ... must match the CPU exactly.
    for lo, hi in [(-5, 7), (0, 3), (-(2**62), 2**62 + 1), (2**62, 2**63 - 1)]:
        s = seed()
        check(f"seeded_uniform [{lo}, {hi})", nat.cuda_seeded_uniform([100003], s, lo, hi),
              nat.seeded_uniform([100003], s, lo, hi))
    s0, s1 = seed(), seed()
    check("zero_share vs CPU U(s0) - U(s1)", nat.cuda_zero_share([4099], s0, s1),
          ref.as_i64(ref.zero_share(nat.seeded_uniform, s0, 0, s1, 0, [4099])))


MATMUL_CASES = [
    # (a shape, b shape, transpose_a, transpose_b)
    ((1, 1), (1, 1), False, False),
    ((3, 5), (5, 2), False, False),
    ((67, 129), (129, 65), False, False),
    ((129, 67), (129, 65), True, False),
    ((67, 129), (65, 129), False, True),
    ((129, 67), (65, 129), True, True),
    ((2, 3, 70, 40), (40, 90), False, False),
    ((3, 1, 33, 20), (1, 4, 20, 17), False, False),
    ((0, 5), (5, 3), False, False),
    ((4, 0), (0, 3), False, False),
    ((130, 1), (1, 140), False, False),
    ((5, 9000), (9000, 70), False, False),   # K > 4096: several limb folds
    ((200, 300), (300, 1), False, False),
    ((300, 200), (300, 1), True, False),
    ((1, 300), (300, 200), False, False),
    ((1, 300), (200, 300), False, True),
    ((2, 150, 90), (2, 90, 1), False, False),
]


def check_ring_matmul(nat):
    for ashape, bshape, ta, tb in MATMUL_CASES:
        a, b = rand_i64(ashape), rand_i64(bshape)
        want = ref_matmul(a, b, ta, tb)
        cpu = nat.ring_matmul(a, b, transpose_a=ta, transpose_b=tb)
        check(f"CPU ring_matmul agrees with NumPy {ashape}x{bshape} ta={ta} tb={tb}", cpu, want)
        M = want.shape[-2] if want.ndim >= 2 else 0
        N = want.shape[-1] if want.ndim >= 2 else 0
        algos = ["auto", "simt", "tensor_core"] + (["gemv"] if (M == 1 or N == 1) else [])
        for algo in algos:
            guarded(f"ring_matmul[{algo}] {ashape}x{bshape}", lambda: check(
                f"ring_matmul[{algo}] {ashape}x{bshape} ta={ta} tb={tb}",
                nat.cuda_ring_matmul(a, b, transpose_a=ta, transpose_b=tb, algo=algo), want))


def check_rss_matmul(nat):
    cases = [((4, 6), (6, 3), False, False), ((65, 33), (33, 129), False, False),
             ((33, 65), (129, 33), True, True), ((2, 40, 50), (50, 30), False, False),
             ((470, 1781), (1781, 1), False, False), ((470, 1781), (470, 1), True, False),
             ((300, 300), (300, 300), False, False)]
    for xs, ys, ta, tb in cases:
        x0, x1, y0, y1 = rand_i64(xs), rand_i64(xs), rand_i64(ys), rand_i64(ys)
        k0, k1 = seed(), seed()
        n0, n1 = int(RNG.integers(0, 2**40)), int(RNG.integers(0, 2**40))
        cpu = nat.rss_matmul(x0, x1, y0, y1, k0, k1, n0, n1, transpose_a=ta, transpose_b=tb)
        shape = ref_matmul(x0, y0, ta, tb).shape
        want = ref.rss_matmul(x0, x1, y0, y1, ref.zero_share(nat.seeded_uniform, k0, n0, k1, n1, shape), ta, tb)
        check(f"CPU rss_matmul agrees with NumPy {xs}x{ys}", cpu, want)
        for algo in ["auto", "simt", "tensor_core"]:
            guarded(f"rss_matmul[{algo}] {xs}x{ys}", lambda: check(
                f"rss_matmul[{algo}] {xs}x{ys} ta={ta} tb={tb}",
                nat.cuda_rss_matmul(x0, x1, y0, y1, k0, k1, n0, n1, transpose_a=ta, transpose_b=tb, algo=algo), want))


def check_rss_mul(nat):
    for shape in [(0,), (1,), (7,), (9,), (1000003,), (3, 5, 7)]:
        x0, x1, y0, y1 = (rand_i64(shape) for _ in range(4))
        k0, k1 = seed(), seed()
        n0, n1 = int(RNG.integers(0, 2**40)), int(RNG.integers(0, 2**40))
        want = ref.rss_mul(x0, x1, y0, y1, ref.zero_share(nat.seeded_uniform, k0, n0, k1, n1, shape))
        check(f"CPU rss_mul agrees with NumPy {shape}", nat.rss_mul(x0, x1, y0, y1, k0, n0, k1, n1), want)
        guarded(f"rss_mul {shape}", lambda: check(
            f"rss_mul {shape}", nat.cuda_rss_mul(x0, x1, y0, y1, k0, n0, k1, n1), want))


def check_truncation(nat):
    for shape in [(0,), (1,), (13,), (1000, 17)]:
        x0, x1, x2 = rand_i64(shape), rand_i64(shape), rand_i64(shape)
        key, nonce, amount = seed(), int(RNG.integers(0, 2**40)), int(RNG.integers(1, 63))
        check(f"truncate_local_p0 {shape} d={amount}", nat.cuda_truncate_local_p0(x0, amount),
              ref.truncate_local_p0(x0, amount))
        check(f"truncate_local_p0 vs CPU {shape}", nat.cuda_truncate_local_p0(x0, amount), nat.truncate_local_p0(x0, amount))
        y1, r = nat.cuda_truncate_local_p1(x1, x2, key, nonce, amount)
        cy1, cr = nat.truncate_local_p1(x1, x2, key, nonce, amount)
        rr = ref.prg(nat.seeded_uniform, key, nonce, shape)
        check(f"truncate_local_p1 y1 {shape}", y1, ref.truncate_local_p1(x1, x2, rr, amount))
        check(f"truncate_local_p1 r {shape}", r, rr)
        check(f"truncate_local_p1 vs CPU {shape}", np.stack([y1, r]), np.stack([cy1, cr]))
        check(f"truncate_local_p2 vs CPU {shape}", nat.cuda_truncate_local_p2(key, nonce, list(shape)),
              nat.truncate_local_p2(key, nonce, list(shape)))


def msb0_chain(nat, prefix, x_shares, keys, nonces, r_seed, amount, lift, unlift):
    """The heuristic MSB-0 truncation for three parties chained by hand (as truncation.h)."""
    f = lambda name: getattr(nat, prefix + name)  # noqa: E731
    x0, x1, x2 = x_shares
    shape = list(x0.shape)
    r1, s1, m1, z20, z21 = f("trunc_msb0_dealer")(keys[0], nonces[2], keys[2], nonces[1], r_seed, shape, amount, unlift)
    c0 = f("trunc_msb0_mask_p0")(x0, x1, keys[0], nonces[2], lift)
    c1 = f("trunc_msb0_mask_p1")(x2, r1) if prefix else nat.trunc_msb0_mask_p1(x2, r1)
    yt0, z00 = f("trunc_msb0_unmask_p0")(c0, c1, keys[0], nonces[2], amount, unlift)
    yt1, z11 = f("trunc_msb0_unmask_p1")(c0, c1, s1, m1, keys[2], nonces[1], amount)
    z = f("trunc_msb0_combine")(yt0, yt1)
    return dict(r1=r1, s1=s1, rmsb1=m1, z20=z20, z21=z21, c0=c0, c1=c1, y_tilde0=yt0, z00=z00, y_tilde1=yt1,
                z11=z11, z=z)


def check_msb0(nat):
    for shape in [(1,), (13,), (1000, 7)]:
        amount = int(RNG.integers(1, 40))
        lift, unlift = 2**62, 2**(62 - amount)
        x = RNG.integers(-(2**61), 2**61, size=shape, dtype=np.int64)
        x0, x1 = rand_i64(shape, edge=False), rand_i64(shape, edge=False)
        with np.errstate(over="ignore"):
            x2 = (x.view(np.uint64) - x0.view(np.uint64) - x1.view(np.uint64)).view(np.int64)
        keys = [seed(), seed(), seed()]
        nonces = [int(v) for v in RNG.integers(0, 2**40, size=3)]
        r_seed = seed()
        cpu = msb0_chain(nat, "", (x0, x1, x2), keys, nonces, r_seed, amount, lift, unlift)
        gpu = msb0_chain(nat, "cuda_", (x0, x1, x2), keys, nonces, r_seed, amount, lift, unlift)
        for k in cpu:
            check(f"msb0 {k} vs CPU {shape} d={amount}", np.asarray(gpu[k] if not hasattr(gpu[k], "numpy") else gpu[k].numpy()), cpu[k])
        # NumPy reference of the dealer and P0's steps (tfe_accel/reference.py, written from truncation.h)
        U = lambda key, nonce, s: ref.prg_u64(nat.seeded_uniform, key, nonce, s)  # noqa: E731
        want = ref.trunc_msb0((x0, x1, x2), U(keys[0], nonces[2], (4,) + shape), U(keys[2], nonces[1], shape),
                              U(r_seed, 0, shape), amount, lift, unlift)
        for name, key, ref_key in [("dealer r1", "r1", "r1"), ("dealer s1", "s1", "s1"), ("dealer rmsb1", "rmsb1", "m1"),
                                   ("dealer z21", "z21", "z21"), ("mask_p0", "c0", "c0")]:
            check(f"msb0 {name} vs NumPy {shape}", gpu[key], ref.as_i64(want[ref_key]))
        with np.errstate(over="ignore"):
            zsum = (np.asarray(gpu["z00"]).view(np.uint64) + np.asarray(gpu["z"]).view(np.uint64)
                    + np.asarray(gpu["z11"]).view(np.uint64)).view(np.int64)
        err = np.abs(zsum - (x >> amount))
        ok = bool(err.max(initial=0) <= 1)
        CHECKS.append({"name": f"msb0 heuristic reveal within 1 ulp {shape} d={amount}", "ok": ok,
                       "detail": f"max error {int(err.max(initial=0))}"})
        print(f"  [{'ok' if ok else 'FAIL'}] msb0 heuristic reveal within 1 ulp {shape} (max error {int(err.max(initial=0))})")


def nonce_pair(top=False):
    """Two pairwise nonces; with top=True at the top of int64, so the steps' extra draws at nonce + k
    wrap as TF's int64 add does (a signed overflow in the glue or kernels would show here)."""
    if top:
        return 2**63 - 1, 2**63 - 2
    return tuple(int(v) for v in RNG.integers(0, 2**40, size=2))


def check_kogge_stone(nat):
    for shape in [(1,), (17,), (333, 5)]:
        ka, kb = seed(), seed()
        na, nb = nonce_pair(top=shape == (1,))
        for dt in ["int64", "int32", "int16", "int8"]:
            want = ref.boolean_zero_share(nat.seeded_uniform, ka, na, kb, nb, shape, dt)
            got = nat.cuda_boolean_zero_share(ka, na, kb, nb, list(shape), dt)
            check(f"boolean_zero_share {dt} {shape} vs NumPy", got, want)
            check(f"boolean_zero_share {dt} {shape} vs CPU", got, nat.boolean_zero_share(ka, na, kb, nb, list(shape), dt))
        xa, xb = rand_i64(shape), rand_i64(shape)
        for party in range(3):
            check(f"bit_extract_setup P{party} {shape} vs CPU",
                  nat.cuda_bit_extract_setup(party, xa, xb, ka, na, kb, nb),
                  nat.bit_extract_setup(party, xa, xb, ka, na, kb, nb))
        ops = [rand_i64(shape) for _ in range(4)]
        got = nat.cuda_carry_setup_and(*ops, ka, na, kb, nb)
        cpu = nat.carry_setup_and(*ops, ka, na, kb, nb)
        for name, g, c in zip(["z", "p_a", "p_b", "top_a", "top_b"], got, cpu):
            check(f"carry_setup_and {name} {shape} vs CPU", g, c)
        for dt in ["int64", "int32", "int16", "int8"]:
            info = np.iinfo(dt)
            g_a, g_b, p_a, p_b = (RNG.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True) for _ in range(4))
            got = nat.cuda_kogge_stone_round(g_a, g_b, p_a, p_b, ka, na, kb, nb)
            cpu = nat.kogge_stone_round(g_a, g_b, p_a, p_b, ka, na, kb, nb)
            for name, g, c in zip(["zg", "zp", "gs1_a", "gs1_b"], got, cpu):
                check(f"kogge_stone_round {dt} {name} {shape} vs CPU", g, c)
            # NumPy reference of the local AND terms (zero shares at nonce and nonce + 1)
            out = ref.HALF_DTYPE[dt]
            alpha = [ref.boolean_zero_share(nat.seeded_uniform, ka, na + j, kb, nb + j, shape, out) for j in (0, 1)]
            want = ref.kogge_stone_round(g_a, g_b, p_a, p_b, *alpha)
            for name, g, w in zip(["zg", "zp", "gs1_a"], got, want):
                check(f"kogge_stone_round {dt} {name} {shape} vs NumPy", g, w)
            a, b, zo, zr = (RNG.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True) for _ in range(4))
            got = nat.cuda_kogge_stone_update(a, b, zo, zr)
            check(f"kogge_stone_update {dt} {shape} vs NumPy", np.stack(got), np.stack([a ^ zo, b ^ zr]))
            check(f"kogge_stone_update {dt} {shape} vs CPU", np.stack(got), np.stack(nat.kogge_stone_update(a, b, zo, zr)))


def check_sigmoid_pieces(nat):
    for shape in [(1,), (37,), (50, 21)]:
        ka, kb = seed(), seed()
        na, nb = nonce_pair(top=shape == (1,))
        C = 4
        K = C + 1
        pivots = rand_i64((C,))
        xa, xb = rand_i64(shape), rand_i64(shape)
        for party in range(3):
            got = nat.cuda_pivot_diff(party, xa, xb, pivots)
            cpu = nat.pivot_diff(party, xa, xb, pivots)
            check(f"pivot_diff P{party} {shape} vs NumPy", np.stack(got), np.stack(ref.pivot_diff(party, xa, xb, pivots)))
            check(f"pivot_diff P{party} {shape} vs CPU", np.stack(got), np.stack(cpu))
            msb_a = RNG.integers(0, 2, size=(C,) + shape).astype(bool)
            msb_b = RNG.integers(0, 2, size=(C,) + shape).astype(bool)
            check(f"piece_select_and P{party} {shape} vs CPU",
                  nat.cuda_piece_select_and(party, msb_a, msb_b, ka, na, kb, nb),
                  nat.piece_select_and(party, msb_a, msb_b, ka, na, kb, nb))
            f_a, f_b = rand_i64((K,) + shape), rand_i64((K,) + shape)
            c0 = rand_i64((K,))
            b_a = RNG.integers(0, 2, size=(K,) + shape).astype(bool)
            b_b = RNG.integers(0, 2, size=(K,) + shape).astype(bool)
            got = nat.cuda_mul_ab_step1(party, f_a, f_b, c0, b_a, b_b, ka, na, kb, nb)
            cpu = nat.mul_ab_step1(party, f_a, f_b, c0, b_a, b_b, ka, na, kb, nb)
            for idx, (g, c) in enumerate(zip(got, cpu)):
                check(f"mul_ab_step1 P{party} output {idx} {shape} vs CPU", g, c)
            pair = lambda: rand_i64((2, K) + shape)  # noqa: E731
            one = lambda: rand_i64((K,) + shape)  # noqa: E731
            if party == 2:
                kw = dict(own=one(), own2=one(), m=pair(), wc=one(), m2=pair(), wc2=one())
            else:
                kw = dict(own=one(), in1=one(), in2=one(), m=pair(), wc=one())
            check(f"mul_ab_step2 P{party} {shape} vs CPU", np.stack(nat.cuda_mul_ab_step2(party, b_a, b_b, **kw)),
                  np.stack(nat.mul_ab_step2(party, b_a, b_b, **kw)))
        k = rand_i64((3,))
        x0, x1, x2 = rand_i64(shape), rand_i64(shape), rand_i64(shape)
        lift = 2**62
        got = nat.cuda_trunc_msb0_mask_scaled_p0(x0, x1, k, ka, na, lift)
        r0 = ref.prg(nat.seeded_uniform, ka, na, (3,) + shape)
        check(f"trunc_msb0_mask_scaled_p0 {shape} vs NumPy", got, ref.trunc_msb0_mask_scaled_p0(x0, x1, k, r0, lift))
        check(f"trunc_msb0_mask_scaled_p0 {shape} vs CPU", got, nat.trunc_msb0_mask_scaled_p0(x0, x1, k, ka, na, lift))
        r1 = rand_i64((3,) + shape)
        got = nat.cuda_trunc_msb0_mask_scaled_p1(x2, k, r1)
        check(f"trunc_msb0_mask_scaled_p1 {shape} vs NumPy", got, ref.trunc_msb0_mask_scaled_p1(x2, k, r1))
        check(f"trunc_msb0_mask_scaled_p1 {shape} vs CPU", got, nat.trunc_msb0_mask_scaled_p1(x2, k, r1))


class DlpackOnly:
    """Exposes only the DLPack protocol of `obj` (hides __cuda_array_interface__), as JAX / TF arrays do."""

    def __init__(self, obj):
        self._obj = obj

    def __dlpack_device__(self):
        return self._obj.__dlpack_device__()

    def __dlpack__(self, stream=None):
        return self._obj.__dlpack__(stream=stream)


def check_device_arrays(nat):
    try:
        import cupy as cp
    except Exception as e:  # noqa: BLE001
        CHECKS.append({"name": "device arrays via CuPy", "ok": True, "detail": f"skipped: cupy unavailable ({e})"})
        print(f"  [skip] device arrays: cupy unavailable ({e})")
        return
    a, b = rand_i64((300, 200)), rand_i64((200, 100))
    out = nat.cuda_ring_matmul(cp.asarray(a), cp.asarray(b))
    check("ring_matmul with CuPy inputs -> CudaBuffer -> cupy.asarray", cp.asarray(out).get(), ref_matmul(a, b))
    check("CudaBuffer.numpy()", out.numpy(), ref_matmul(a, b))
    x0, x1 = rand_i64((1000,)), rand_i64((1000,))
    key, nonce = seed(), 12345
    y1, r = nat.cuda_truncate_local_p1(cp.asarray(x0), cp.asarray(x1), key, nonce, 13)
    cy1, cr = nat.truncate_local_p1(x0, x1, key, nonce, 13)
    check("truncate_local_p1 with CuPy inputs", np.stack([cp.asarray(y1).get(), cp.asarray(r).get()]), np.stack([cy1, cr]))

    y1d, rd = nat.cuda_truncate_local_p1(DlpackOnly(cp.asarray(x0)), DlpackOnly(cp.asarray(x1)), key, nonce, 13)
    check("truncate_local_p1 with DLPack-only CuPy inputs", np.stack([y1d.numpy(), rd.numpy()]), np.stack([cy1, cr]))
    check("cupy.from_dlpack(CudaBuffer) in place", cp.from_dlpack(y1d).get(), cy1)
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        print(f"  [skip] torch.from_dlpack: torch unavailable ({e})")
        return
    check("torch.from_dlpack(CudaBuffer)", torch.from_dlpack(rd).cpu().numpy(), cr)


def check_large(nat):
    n = 8192
    try:
        import cupy as cp
    except Exception:  # noqa: BLE001
        cp = None
    a, b = rand_i64((n, n)), rand_i64((n, n))
    t0 = time.time()
    tc = nat.cuda_ring_matmul(a, b, algo="tensor_core")
    simt = nat.cuda_ring_matmul(a, b, algo="simt")
    check(f"8192^3 tensor_core == simt (bit for bit)", tc, simt, f"({time.time() - t0:.1f}s incl. copies)")
    rows = RNG.choice(n, size=4, replace=False)
    check("8192^3 tensor_core rows vs NumPy", tc[rows], ref_matmul(a[rows], b))
    del cp


def median_ms(d):
    return statistics.median(d["ms"])


def bench(nat, results):
    # copy bandwidth: a device-to-device copy reads and writes nbytes each
    nbytes = 1 << 30
    ms = nat.cuda_bench_copy(nbytes, 10)
    copy_gbs = 2 * nbytes / (statistics.median(ms) * 1e-3) / 1e9
    results["copy_bandwidth_gb_s"] = copy_gbs
    print(f"\n  device copy bandwidth (read+write): {copy_gbs:8.1f} GB/s")
    print(f"\n  {'shape':<28}{'algo':<13}{'median ms':>11}{'T int64-MAC/s':>15}")
    gemm = []
    for size in (4096, 8192):
        for algo in ("simt", "tensor_core"):
            try:
                d = nat.cuda_bench_ring_matmul(size, size, size, algo=algo, warmup=2, reps=5)
            except Exception as e:  # noqa: BLE001
                gemm.append({"M": size, "N": size, "K": size, "algo": algo, "error": str(e)})
                print(f"  {size}^3 {algo}: {e}")
                continue
            med = median_ms(d)
            tmac = size**3 / (med * 1e-3) / 1e12
            gemm.append({"M": size, "N": size, "K": size, "algo": d["algo"], "median_ms": med,
                         "all_ms": d["ms"], "ring_gemm_tmac_per_s": tmac})
            print(f"  {f'{size}^3':<28}{d['algo']:<13}{med:11.3f}{tmac:15.3f}")
    results["ring_gemm"] = gemm
    mv = []
    for name, (M, N, K, ta) in {"470x17814 @ 17814x1": (470, 1, 17814, False),
                                "(470x17814)^T @ 470x1": (17814, 1, 470, True)}.items():
        d = nat.cuda_bench_ring_matmul(M, N, K, transpose_a=ta, algo="gemv", warmup=3, reps=20)
        med = median_ms(d)
        nbytes = 8 * (M * K + K + M)
        gbs = nbytes / (med * 1e-3) / 1e9
        frac = gbs / copy_gbs
        mv.append({"shape": name, "M": M, "N": N, "K": K, "transpose_a": ta, "algo": d["algo"], "median_ms": med,
                   "bytes": nbytes, "gb_s": gbs, "fraction_of_copy_bandwidth": frac,
                   "ring_gemm_tmac_per_s": M * N * K / (med * 1e-3) / 1e12})
        print(f"  {name:<28}{d['algo']:<13}{med:11.4f}   {gbs:7.1f} GB/s = {100 * frac:5.1f}% of copy bw")
    results["matvec"] = mv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--module-dir", required=True, help="folder holding the CUDA-enabled _native*.so")
    ap.add_argument("--out", required=True, help="output folder for gpu_check.json")
    ap.add_argument("--skip-bench", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.module_dir))
    import _native as nat  # noqa: E402  (the module built by gpu_check.sh, not an installed package)

    results = {"tool": "bench/gpu_check.py", "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "host": platform.node(), "python": platform.python_version(), "numpy": np.__version__}
    if "cuda" not in nat.families() or not nat.cuda_available():
        print("no CUDA family or no usable GPU in this _native build", file=sys.stderr)
        results["error"] = "no CUDA device"
        json.dump(results, open(os.path.join(args.out, "gpu_check.json"), "w"), indent=1)
        return 2
    results["card"] = nat.cuda_device_name()
    print(f"card: {results['card']}")
    path = os.path.join(args.out, "gpu_check.json")

    def save():  # after every section, so a hang or a crash still leaves the results so far
        results["checks"] = CHECKS
        results["all_correct"] = all(c["ok"] for c in CHECKS)
        with open(path, "w") as f:
            json.dump(results, f, indent=1)

    t0 = time.time()
    for title, fn in [("PRG and zero sharing", check_prg), ("ring_matmul", check_ring_matmul),
                      ("rss_matmul", check_rss_matmul),
                      ("rss_mul (elementwise)", check_rss_mul), ("truncation (ABY3 local)", check_truncation),
                      ("truncation (MSB-0 / heuristic)", check_msb0),
                      ("bit extraction / Kogge-Stone", check_kogge_stone),
                      ("sigmoid piece evaluation", check_sigmoid_pieces),
                      ("device arrays", check_device_arrays), ("large GEMM", check_large)]:
        print(f"\n== {title}", flush=True)
        guarded(title, lambda: fn(nat))
        save()
    results["check_seconds"] = time.time() - t0
    if not args.skip_bench:
        print("\n== timings (CUDA events, medians after warm-up)")
        guarded("benchmarks", lambda: bench(nat, results))
    save()
    nfail = sum(1 for c in CHECKS if not c["ok"])
    print(f"\n{len(CHECKS) - nfail}/{len(CHECKS)} checks passed; card {results['card']}")
    print(f"wrote {path}")
    return 0 if nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
