"""Ring matmul family: ring_matmul, rss_matmul (ABY3 private x private local step with in-kernel
zero sharing), public x private products. Checked against plain NumPy uint64 references (wrapping
mod 2^64, tfe_accel.reference) on fresh random inputs each run, every code path, TF op == _native, and stock TFE's shares.
"""
import json
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf

import tfe_accel  # noqa: F401
from tfe_accel import _native, ops
from tfe_accel import reference as npref
from tfe_accel.reference import ring_matmul as ref_matmul

from conftest import run_python

SEED = np.random.SeedSequence().entropy  # fresh inputs every run; printed on failure
RNG = np.random.default_rng(SEED)
MSG = f"(random seed {SEED})"


def rand(shape, rng=RNG):
    """Uniform int64, each element an edge value with probability 0.2."""
    return npref.random_int64(rng, shape, fraction=0.2)


def rand_key(rng=RNG):
    return npref.random_key(rng)


def zero_share(shape, key0, nonce0, key1, nonce1):
    """U(key0 + nonce0) - U(key1 + nonce1), TFE's sample_seeded_uniform (TF's int32 add wraps)."""
    return npref.zero_share(_native.seeded_uniform, key0, nonce0, key1, nonce1, shape)


def ref_rss(xi, xn, yi, yn, key0, key1, nonce0, nonce1, ta=False, tb=False):
    alpha = zero_share(ref_matmul(xi, yi, ta, tb).shape, key0, nonce0, key1, nonce1)
    return npref.rss_matmul(xi, xn, yi, yn, alpha, ta, tb)


def test_numpy_uint64_matmul_wraps_like_python_ints():
    """The reference ring_matmul (integer matmul on uint64 wraps) against Python ints."""
    a, b = rand((4, 6, 5)), rand((5, 3))
    exact = np.empty((4, 6, 3), dtype=object)
    for t in range(4):
        for i in range(6):
            for j in range(3):
                s = sum(int(a.view(np.uint64)[t, i, k]) * int(b.view(np.uint64)[k, j]) for k in range(5))
                exact[t, i, j] = s % 2**64
    assert np.array_equal(ref_matmul(a, b).view(np.uint64), exact.astype(np.uint64)), MSG


# ------------------------------------------------------------------------ ring_matmul

# (a shape, b shape, transpose_a, transpose_b): odd, empty, batched/broadcast, blocked (crossing
# the cache blocks), and matrix-vector shapes (streaming kernels, both layouts, M == 1 and N == 1).
CASES = [
    ((1, 1), (1, 1), False, False),
    ((7, 13), (13, 5), False, False),
    ((13, 7), (5, 13), True, True),
    ((7, 13), (5, 13), False, True),
    ((13, 7), (13, 5), True, False),
    ((0, 4), (4, 3), False, False),
    ((3, 0), (0, 4), False, False),
    ((3, 4), (4, 0), False, False),
    ((2, 0, 3, 4), (4, 5), False, False),
    ((2, 3, 7, 13), (13, 5), False, False),
    ((2, 1, 7, 13), (3, 13, 5), False, False),
    ((4, 13, 7), (1, 5, 13), True, True),
    ((130, 300), (300, 530), False, False),
    ((300, 97), (531, 300), True, True),
    ((37, 1000), (1000, 1), False, False),
    ((1000, 37), (1000, 1), True, False),
    ((1, 1000), (1000, 45), False, False),
    ((1000, 1), (45, 1000), True, True),
    ((3, 37, 101), (101, 1), False, False),
    ((2, 101, 1), (3, 1, 101, 9), True, False),
    ((1, 1), (1, 9), False, False),
]


@pytest.mark.parametrize("a_shape,b_shape,ta,tb", CASES)
def test_ring_matmul_native_and_tf_match_reference(a_shape, b_shape, ta, tb):
    a, b = rand(a_shape), rand(b_shape)
    want = ref_matmul(a, b, ta, tb)
    got = _native.ring_matmul(a, b, transpose_a=ta, transpose_b=tb)
    assert got.dtype == np.int64 and got.shape == want.shape, MSG
    assert np.array_equal(got, want), MSG
    tf_got = ops.ring_matmul(a, b, transpose_a=ta, transpose_b=tb)
    assert tf_got.dtype == tf.int64
    assert np.array_equal(tf_got.numpy(), want), MSG


def test_ring_matmul_tf_static_shapes_agree_with_runtime():
    a, b = rand((2, 1, 7, 13)), rand((3, 13, 5))
    f = tf.function(lambda x, y: ops.ring_matmul(x, y))
    full = f.get_concrete_function(tf.TensorSpec(a.shape, tf.int64), tf.TensorSpec(b.shape, tf.int64))
    assert full.structured_outputs.shape.as_list() == list(ref_matmul(a, b).shape)
    part = f.get_concrete_function(tf.TensorSpec([2, None, None, 13], tf.int64),
                                   tf.TensorSpec([3, 13, 5], tf.int64))
    assert part.structured_outputs.shape.as_list() == [2, 3, None, 5]
    g = tf.function(lambda x, y: ops.ring_matmul(x, y, transpose_a=True, transpose_b=True))
    t = g.get_concrete_function(tf.TensorSpec([4, 13, 7], tf.int64), tf.TensorSpec([5, 13], tf.int64))
    assert t.structured_outputs.shape.as_list() == [4, 7, 5]
    assert np.array_equal(f(a, b).numpy(), ref_matmul(a, b)), MSG
    with pytest.raises(ValueError, match="rank"):
        f.get_concrete_function(tf.TensorSpec([7], tf.int64), tf.TensorSpec([7, 3], tf.int64))
    with pytest.raises(ValueError, match="[Dd]imension"):
        f.get_concrete_function(tf.TensorSpec([2, 7], tf.int64), tf.TensorSpec([6, 3], tf.int64))
    h = tf.function(lambda x, y: ops.ring_matmul(x, y))
    unknown = h.get_concrete_function(tf.TensorSpec(None, tf.int64), tf.TensorSpec(None, tf.int64))
    assert unknown.structured_outputs.shape.rank is None
    assert np.array_equal(unknown(tf.constant(a), tf.constant(b)).numpy(), ref_matmul(a, b)), MSG


# ------------------------------------------------------------------------ public x private


PUB_CASES = [
    ((7, 13), (13, 5), False, False),
    ((13, 7), (5, 13), True, True),
    ((40, 300), (300, 1), False, False),   # p is the matrix, streamed once (dot form)
    ((300, 40), (300, 1), True, False),    # (axpy form)
    ((2, 9, 30), (30, 1), False, False),
]


@pytest.mark.parametrize("p_shape,x_shape,ta,tb", PUB_CASES)
def test_public_private_matmul(p_shape, x_shape, ta, tb):
    p, x0, x1 = rand(p_shape), rand(x_shape), rand(x_shape)
    z0, z1 = _native.public_private_matmul(p, x0, x1, transpose_a=ta, transpose_b=tb)
    assert np.array_equal(z0, ref_matmul(p, x0, ta, tb)), MSG
    assert np.array_equal(z1, ref_matmul(p, x1, ta, tb)), MSG
    t0, t1 = ops.public_private_matmul(p, x0, x1, transpose_a=ta, transpose_b=tb)
    assert np.array_equal(t0.numpy(), z0) and np.array_equal(t1.numpy(), z1), MSG
    # the mirror: x.p with the shapes swapped round (transposing both sides)
    q = np.swapaxes(p, -1, -2).copy()
    xs = [np.swapaxes(v, -1, -2).copy() for v in (x0, x1)]
    w0, w1 = _native.private_public_matmul(xs[0], xs[1], q, transpose_a=tb, transpose_b=ta)
    assert np.array_equal(w0, ref_matmul(xs[0], q, tb, ta)), MSG
    assert np.array_equal(w1, ref_matmul(xs[1], q, tb, ta)), MSG
    s0, s1 = ops.private_public_matmul(xs[0], xs[1], q, transpose_a=tb, transpose_b=ta)
    assert np.array_equal(s0.numpy(), w0) and np.array_equal(s1.numpy(), w1), MSG


# ------------------------------------------------------------------------ rss_matmul

RSS_CASES = [
    ((7, 13), (13, 5), False, False),
    ((1, 1), (1, 1), False, False),
    ((2, 13, 7), (2, 5, 13), True, True),
    ((2, 1, 9, 11), (3, 11, 4), False, False),
    ((100, 300), (300, 600), False, False),   # several output tiles: tile-wise zero share
    ((40, 700), (700, 1), False, False),      # matrix-vector (streaming + epilogue)
    ((700, 40), (700, 1), True, False),
    ((1, 300), (300, 33), False, False),
    ((3, 0), (0, 2), False, False),           # K = 0: z is the zero share alone
    ((0, 3), (3, 2), False, False),
]


@pytest.mark.parametrize("x_shape,y_shape,ta,tb", RSS_CASES)
def test_rss_matmul_matches_reference(x_shape, y_shape, ta, tb):
    xi, xn, yi, yn = rand(x_shape), rand(x_shape), rand(y_shape), rand(y_shape)
    k0, k1 = rand_key(), rand_key()
    n0, n1 = int(RNG.integers(0, 2**40)), int(RNG.integers(0, 2**40))
    want = ref_rss(xi, xn, yi, yn, k0, k1, n0, n1, ta, tb)
    got = _native.rss_matmul(xi, xn, yi, yn, k0, k1, n0, n1, transpose_a=ta, transpose_b=tb)
    assert np.array_equal(got, want), MSG
    tf_got = ops.rss_matmul(xi, xn, yi, yn, k0, k1, np.int64(n0), np.int64(n1),
                            transpose_a=ta, transpose_b=tb)
    assert np.array_equal(tf_got.numpy(), want), MSG


@pytest.mark.parametrize("shape", [(7,), (3, 5), (0, 4), (1, 1, 9)])
def test_rss_mul_wrapper_matches_reference(shape):
    """ops.rss_mul (the route's elementwise product step): z_i = x_i (y_i + y_next) + x_next y_i + a_i."""
    xi, xn, yi, yn = rand(shape), rand(shape), rand(shape), rand(shape)
    k0, k1 = rand_key(), rand_key()
    n0, n1 = int(RNG.integers(0, 2**40)), int(RNG.integers(0, 2**40))
    want = npref.rss_mul(xi, xn, yi, yn, zero_share(shape, k0, n0, k1, n1))
    got = ops.rss_mul(xi, xn, yi, yn, k0, k1, n0, n1)
    assert np.array_equal(got.numpy(), want), MSG
    with pytest.raises(tf.errors.InvalidArgumentError, match="key1 must"):
        ops.rss_mul(xi, xn, yi, yn, k0, k1[:4], n0, n1)


@pytest.mark.parametrize("x_shape,y_shape", [((6, 9), (9, 4)), ((2, 5, 7), (2, 7, 3)),
                                             ((30, 500), (500, 1))])
def test_rss_matmul_reproduces_stock_tfe_shares(aby3, x_shape, y_shape):
    prot = aby3
    x = [rand(x_shape) for _ in range(3)]  # x = x0 + x1 + x2; party i holds (x_i, x_{i+1})
    y = [rand(y_shape) for _ in range(3)]
    args = [ops.rss_matmul_party_args(prot, i) for i in range(3)]  # before TFE advances the nonces
    out_shape = (*x_shape[:-1], y_shape[-1])
    a = prot._gen_zero_sharing(out_shape)  # stock TFE's zero sharing (and nonce update)
    zs = []
    for i in range(3):
        j = (i + 1) % 3
        X_i, X_j, Y_i, Y_j = (tf.constant(v) for v in (x[i], x[j], y[i], y[j]))
        stock = tf.matmul(X_i, Y_i) + tf.matmul(X_i, Y_j) + tf.matmul(X_j, Y_i) + a[i].value
        ours = ops.rss_matmul(X_i, X_j, Y_i, Y_j, **args[i])
        assert np.array_equal(ours.numpy(), stock.numpy()), f"party {i} {MSG}"
        nat = _native.rss_matmul(x[i], x[j], y[i], y[j], args[i]["key0"].numpy(),
                                 args[i]["key1"].numpy(), args[i]["nonce0"], args[i]["nonce1"])
        assert np.array_equal(nat, stock.numpy()), f"party {i} {MSG}"
        zs.append(nat.view(np.uint64))
    X = (x[0].view(np.uint64) + x[1].view(np.uint64) + x[2].view(np.uint64)).view(np.int64)
    Y = (y[0].view(np.uint64) + y[1].view(np.uint64) + y[2].view(np.uint64)).view(np.int64)
    assert np.array_equal((zs[0] + zs[1] + zs[2]).view(np.int64), ref_matmul(X, Y)), MSG


# ------------------------------------------------------------------------ every code path

_PATH_SCRIPT = r"""
import json, sys, numpy as np
from tfe_accel import _native
d = np.load(sys.argv[1] if len(sys.argv) > 1 else {path!r})
out = {{}}
for i in range({ncases}):
    a, b = d[f"a{{i}}"], d[f"b{{i}}"]
    ta, tb = bool(d[f"t{{i}}"][0]), bool(d[f"t{{i}}"][1])
    out[f"c{{i}}"] = _native.ring_matmul(a, b, transpose_a=ta, transpose_b=tb)
    out[f"r{{i}}"] = _native.rss_matmul(a, a, b, b, d["k0"], d["k1"], 5, 7, transpose_a=ta, transpose_b=tb)
    out[f"p{{i}}"] = np.stack(_native.public_private_matmul(a, b, b, transpose_a=ta, transpose_b=tb))
np.savez({outp!r}, **out)
print(json.dumps({{"path": _native.ring_gemm_path()}}))
"""


def _paths():
    feats = _native.cpu_features()
    paths = ["portable"]
    if feats.get("avx2"):
        paths.append("avx2")
    if feats.get("avx512f") and feats.get("avx512dq"):
        paths.append("avx512")
    return paths


@pytest.mark.parametrize("path", ["portable", "avx2", "avx512"])
def test_every_code_path_is_bit_identical(path):
    if path not in _paths():
        pytest.skip(f"this CPU has no {path}")
    cases = [c for c in CASES if min(min(c[0]), min(c[1])) > 0][:12] + [
        ((130, 300), (300, 530), False, False), ((37, 1000), (1000, 1), False, False),
        ((1000, 37), (1000, 1), True, False), ((1, 1000), (1000, 45), False, False),
        ((1000, 1), (45, 1000), True, True)]
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        data = {"k0": rand_key(), "k1": rand_key()}
        for i, (sa, sb, ta, tb) in enumerate(cases):
            data[f"a{i}"], data[f"b{i}"] = rand(sa), rand(sb)
            data[f"t{i}"] = np.array([ta, tb])
        np.savez(inp, **data)
        proc = run_python(_PATH_SCRIPT.format(path=inp, ncases=len(cases), outp=outp),
                          env_extra={"TFE_ACCEL_FORCE_PATH": path})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout.strip().splitlines()[-1])["path"] == path
        got = np.load(outp)
        for i, (sa, sb, ta, tb) in enumerate(cases):
            a, b = data[f"a{i}"], data[f"b{i}"]
            want = ref_matmul(a, b, ta, tb)
            assert np.array_equal(got[f"c{i}"], want), f"{path} case {i} {MSG}"
            want_r = ref_rss(a, a, b, b, data["k0"], data["k1"], 5, 7, ta, tb)
            assert np.array_equal(got[f"r{i}"], want_r), f"{path} rss case {i} {MSG}"
            assert np.array_equal(got[f"p{i}"], np.stack([want, want])), f"{path} pub case {i} {MSG}"


# ------------------------------------------------------------------------ bad inputs


def test_native_bad_inputs_raise_naming_the_problem():
    a, b = rand((3, 4)), rand((4, 2))
    with pytest.raises(TypeError, match="a must have dtype int64"):
        _native.ring_matmul(a.astype(np.int32), b)
    with pytest.raises(TypeError, match="b must"):
        _native.ring_matmul(a, [[1, 2]])
    with pytest.raises(ValueError, match="a must have rank >= 2"):
        _native.ring_matmul(a[0], b)
    with pytest.raises(ValueError, match="inner dimensions of a and b do not match"):
        _native.ring_matmul(a, rand((5, 2)))
    with pytest.raises(ValueError, match="not broadcastable"):
        _native.ring_matmul(rand((2, 3, 4)), rand((3, 4, 2)))
    k = rand_key()
    with pytest.raises(ValueError, match="key0 must have shape"):
        _native.rss_matmul(a, a, b, b, k[:7], k, 0, 0)
    with pytest.raises(TypeError, match="key1 must have dtype int32"):
        _native.rss_matmul(a, a, b, b, k, k.astype(np.int64), 0, 0)
    with pytest.raises(TypeError, match="nonce0"):
        _native.rss_matmul(a, a, b, b, k, k, 1.5, 0)
    with pytest.raises(ValueError, match="x_i and x_next"):
        _native.rss_matmul(a, rand((3, 5)), b, b, k, k, 0, 0)
    with pytest.raises(ValueError, match="inner dimensions of x_i and y_i"):
        _native.rss_matmul(a, a, rand((5, 2)), rand((5, 2)), k, k, 0, 0)
    with pytest.raises(ValueError, match="x0 and x1"):
        _native.public_private_matmul(a, b, rand((4, 3)))


def test_tf_bad_inputs_raise_invalid_argument():
    a, b = rand((3, 4)), rand((4, 2))
    err = tf.errors.InvalidArgumentError
    with pytest.raises(err, match="a must be an int64"):
        ops.ring_matmul(a.astype(np.int32), b)
    with pytest.raises(err, match="rank"):
        ops.ring_matmul(a[0], b)
    with pytest.raises(err, match="inner dimensions of a and b"):
        ops.ring_matmul(a, rand((5, 2)))
    with pytest.raises(err, match="not broadcastable"):
        ops.ring_matmul(rand((2, 3, 4)), rand((3, 4, 2)))
    k = rand_key()
    with pytest.raises(err, match="key0 must have shape"):
        ops.rss_matmul(a, a, b, b, k[:7], k, 0, 0)
    with pytest.raises(err, match="key1 must be an int32"):
        ops.rss_matmul(a, a, b, b, k, k.astype(np.int64), 0, 0)
    raw = tfe_accel.ops_library
    with pytest.raises(err, match="key0 must have shape"):  # the kernel's own check
        raw.tfe_accel_rss_matmul(a, a, b, b, k[:7], k, np.int64(0), np.int64(0))
    with pytest.raises(err, match="nonce1 must be a scalar"):
        raw.tfe_accel_rss_matmul(a, a, b, b, k, k, np.int64(0), np.zeros(2, np.int64))
    with pytest.raises(err, match="x_i and x_next"):
        ops.rss_matmul(a, rand((3, 5)), b, b, k, k, 0, 0)
    with pytest.raises(err, match="x0 and x1"):
        ops.public_private_matmul(a, b, rand((4, 3)))
