"""The NumPy reference module (python/tfe_accel/reference.py) that the kernel tests and
bench/gpu_check.py compare against: it loads by path with TensorFlow blocked (as on the GPU machine,
which has no TensorFlow) and needs nothing beyond NumPy and the standard library, and its functions
give hand-computed results on small cases with the edge values 0, 1, -1, 2^63 - 1, -2^63."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tfe_accel import reference as npref

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX, MIN = 2**63 - 1, -(2**63)
EDGE = [0, 1, -1, MAX, MIN]


def i64(values):
    return np.array(values, dtype=np.int64)


_BLOCKED_SCRIPT = r"""
import importlib.util, sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now raises ImportError
sys.modules["tf_encrypted"] = None
import numpy as np  # with its own extension modules, before the snapshot
before = set(sys.modules)

def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

ref = load("reference_by_path", sys.argv[1] + "/python/tfe_accel/reference.py")
extra = sorted(m for m in set(sys.modules) - before
               if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "numpy")
assert not extra, f"reference.py imported more than NumPy and the standard library: {extra}"
a = np.array([[2**63 - 1, -1], [1, 0]], dtype=np.int64)
b = np.array([[2], [-(2**63)]], dtype=np.int64)
assert ref.ring_matmul(a, b).tolist() == [[2**63 - 2], [2]]
assert ref.truncate_local_p0(np.array([-1, 2**63 - 1], np.int64), 1).tolist() == [-1, 2**62 - 1]
gc = load("gpu_check_by_path", sys.argv[1] + "/bench/gpu_check.py")  # its references come from ref
assert gc.ref_matmul(a, b).tolist() == [[2**63 - 2], [2]]
x = gc.rand_i64((40,))
assert x.dtype == np.int64 and all((x == e).sum() == 3 for e in gc.EDGE), x
print("REFERENCE OK without TensorFlow")
"""


def test_loads_by_path_without_tensorflow():
    """What bench/gpu_check.py does on the GPU machine: reference.py by path, TensorFlow absent."""
    proc = subprocess.run([sys.executable, "-c", _BLOCKED_SCRIPT, str(ROOT)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REFERENCE OK without TensorFlow" in proc.stdout


def test_views():
    assert npref.as_u64(EDGE).tolist() == [0, 1, 2**64 - 1, 2**63 - 1, 2**63]
    assert npref.as_i64(npref.as_u64(EDGE)).tolist() == EDGE


def test_ring_matmul_wraps_and_transposes():
    a = i64([[MAX, -1], [1, 0]])
    b = i64([[2], [MIN]])
    # (2^63 - 1) 2 + (-1)(-2^63) = 2^64 - 2 + 2^63 = 2^63 - 2 mod 2^64
    assert npref.ring_matmul(a, b).tolist() == [[2**63 - 2], [2]]
    assert npref.ring_matmul(a.T, b.T, transpose_a=True, transpose_b=True).tolist() == [[2**63 - 2], [2]]
    assert npref.ring_matmul(i64([[MIN]]), i64([[-1]])).tolist() == [[MIN]]  # -(-2^63) wraps to -2^63
    with pytest.raises(ValueError):
        npref.ring_matmul(i64([[1, 2]]), i64([[1, 2]]))


def test_rss_steps():
    # x_i y_i + x_i y_next + x_next y_i + alpha = -2 + (1 - 2^63) + 2 - 2^63 = 1 - 2^64 = 1 mod 2^64
    assert npref.rss_mul(i64([MAX]), i64([1]), i64([2]), i64([-1]), i64([MIN])).tolist() == [1]
    got = npref.rss_matmul(i64([[MAX]]), i64([[1]]), i64([[2]]), i64([[-1]]), i64([[MIN]]))
    assert got.tolist() == [[1]]
    assert npref.rss_mul(i64(1), i64(0), i64(MIN), i64(0), 0) == MIN  # 0-d operands


def test_truncation():
    assert npref.truncate_local_p0(i64(EDGE), 1).tolist() == [0, 0, -1, 2**62 - 1, -(2**62)]
    assert npref.truncate_local_p0(i64(EDGE), 62).tolist() == [0, 0, -1, 1, -2]
    # (2^63 - 1) + 1 wraps to -2^63 before the shift
    assert npref.truncate_local_p1(i64([MAX, MAX]), i64([1, 1]), i64([0, 1]), 1).tolist() == [-(2**62), -(2**62) - 1]
    assert npref.truncate_local_p1(i64([-1]), i64([-1]), i64([-1]), 1).tolist() == [0]
    assert npref.truncate_local_p1(i64([0]), i64([0]), i64([MIN]), 5).tolist() == [MIN]  # 0 - (-2^63) wraps


def test_trunc_msb0_reveals_the_truncated_value():
    """All-zero masks (R, y2 = 0) and r = 2^63: the dealer's and P0's outputs are hand-checkable, and
    with the heuristic's lift / unlift the three parties' z shares (z00 + mid + z11) reveal x >> amount."""
    amount, x = 4, i64([0, 1, -1, 2**40 + 16, -(2**40) - 16])
    lift, unlift = 2**62, 2**(62 - amount)
    xs = [x, np.zeros_like(x), np.zeros_like(x)]
    zero = np.zeros((4,) + x.shape, np.uint64)
    r = np.full(x.shape, 2**63, np.uint64)
    out = npref.trunc_msb0(xs, zero, zero[0], r, amount, lift, unlift)
    assert npref.as_i64(out["r1"]).tolist() == [MIN] * 5      # r - R[0]
    assert out["s1"].tolist() == [0] * 5                      # (r >> d) - (msb(r) >> d)
    assert out["m1"].tolist() == [1] * 5                      # msb(r)
    assert npref.as_i64(out["c0"]).tolist() == (x + lift).tolist()  # x0 + lift + x1 + R[0]
    assert npref.as_i64(out["z00"]).tolist() == [-unlift] * 5  # R[3] - unlift
    z = npref.as_i64(out["z00"] + out["mid"] + out["z11"])
    assert (z - (x >> amount)).tolist() == [0] * 5


def test_mask_scaled_and_pivot_diff():
    k = i64([2, -1])
    assert npref.trunc_msb0_mask_scaled_p0(i64([MAX]), i64([1]), k, i64([[0], [1]]), 0).tolist() == [[0], [2**63 + 1 - 2**64]]
    assert npref.trunc_msb0_mask_scaled_p1(i64([MIN]), k, i64([[1], [0]])).tolist() == [[1], [MIN]]
    da, db = npref.pivot_diff(0, i64([1]), i64([2]), i64([MIN, 0]))
    assert da.tolist() == [[MAX], [-1]] and db.tolist() == [[-2], [-2]]
    da, db = npref.pivot_diff(2, i64([1]), i64([2]), i64([MIN, 0]))
    assert da.tolist() == [[-1], [-1]] and db.tolist() == [[MAX - 1], [-2]]


def test_bit_ops():
    x = i64([0xAAAA, 0x425F32EA92])
    assert npref.bit_gather(x, 0, 2).tolist() == [0, 0x8F484]  # TFE's documented examples
    assert npref.bit_gather(x, 1, 2).tolist() == [0xFF, 0x135F9]
    assert npref.bit_gather(i64(EDGE), 1, 2).tolist() == [0, 0, 2**32 - 1, 2**31 - 1, 2**31]
    assert npref.bit_gather(np.array([-1, 0x55], np.int8), 0, 2).tolist() == [15, 15]
    assert npref.bit_gather(np.array([MIN], np.int64), 63, 64).tolist() == [1]
    assert npref.bit_reverse(i64(EDGE)).tolist() == [0, MIN, -1, -2, 1]
    # xor of 0..63 is 0, of 0..62 is 63
    assert npref.xor_indices(i64(EDGE + [6])).tolist() == [0, 0, 0, 63, 63, 3]


def test_kogge_stone_round():
    ga, gb, pa, pb = i64([1, -1]), i64([0, 0]), i64([2, -1]), i64([0, 0])
    alpha_g = np.array([-(2**31), 0], np.int32)
    alpha_p = np.array([0, 5], np.int32)
    zg, zp, s1a, s1b = npref.kogge_stone_round(ga, gb, pa, pb, alpha_g, alpha_p)
    assert {v.dtype for v in (zg, zp, s1a, s1b)} == {np.dtype(np.int32)}
    assert zg.tolist() == [1 - 2**31, -1]      # G0a & P1a ^ alpha_g
    assert zp.tolist() == [0, -1 ^ 5]          # P0a & P1a ^ alpha_p
    assert s1a.tolist() == [0, -1] and s1b.tolist() == [0, 0]
    small = npref.kogge_stone_round(*(np.array([-1], np.int8),) * 4, np.int8(0), np.int8(0))
    assert [v.dtype for v in small] == [np.dtype(np.int8)] * 4 and small[0].tolist() == [15]


def test_prg_plumbing():
    calls = []

    def fake(shape, seed, lo, hi, dtype):
        calls.append((shape, seed.tolist(), lo, hi, dtype))
        return np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)

    key = np.array([-1, 2**31 - 1, 0, 0, 0, 0, 0, 7], np.int32)
    assert npref.seed_plus_nonce(key, 1).tolist() == [0, -(2**31), 1, 1, 1, 1, 1, 8]
    assert npref.seed_plus_nonce(key, 2**32 + 3).tolist() == npref.seed_plus_nonce(key, 3).tolist()
    assert npref.seed_plus_nonce(key, MIN).tolist() == key.tolist()  # low 32 bits 0
    assert npref.seed_plus_nonce(key, -1).tolist() == (key.astype(np.int64) - 1).astype(np.int32).tolist()
    got = npref.prg(fake, key, 0, (2, 3), "int16")
    assert got.shape == (2, 3) and got.dtype == np.int16
    assert calls[-1] == ([2, 3], key.tolist(), -(2**15), 2**15 - 1, "int16")
    assert npref.prg_u64(fake, key, 0, 4).dtype == np.uint64 and calls[-1][2:] == (MIN, MAX, "int64")
    assert npref.zero_share(fake, key, 0, key, 5, 3).tolist() == [0, 0, 0]
    assert npref.boolean_zero_share(fake, key, 0, key, 1, 3, "int8").tolist() == [0, 0, 0]


def test_random_inputs():
    rng = np.random.default_rng(1)
    x = npref.random_int64(rng, (3, 4))
    assert x.dtype == np.int64 and x.reshape(-1)[:5].tolist() == EDGE
    x = npref.random_int64(rng, (40,), copies=3, spread=True)
    assert all((x == e).sum() >= 3 for e in EDGE)
    assert npref.random_int64(rng, (2,), npref.EDGE_INT64_WIDE).tolist() == [0, 1]
    assert npref.random_int64(rng, (0, 3)).shape == (0, 3)
    x = npref.random_int64(rng, (10000,), fraction=0.2)
    assert 0.15 < np.isin(x, EDGE).mean() < 0.25
    k = npref.random_key(rng)
    assert k.dtype == np.int32 and k.shape == (8,)


def test_piecewise_linear():
    pivots, coeffs = (-4, -1.5, 1.5, 4), ((1e-4,), (0.281, 0.066), (0.5, 0.212), (0.719, 0.066), (1 - 1e-4,))
    got = npref.piecewise_linear([-5.0, -4.0, 0.0, 4.0, 5.0], pivots, coeffs)
    np.testing.assert_allclose(got, [1e-4, 1e-4, 0.5, 0.719 + 0.066 * 4, 1 - 1e-4])
