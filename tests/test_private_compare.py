"""The masked-comparison msb (cc/kernels/private_compare.h): each party's kernel against a plain
NumPy reference (uint64 wrapping arithmetic, Z_67), TF op and _native bit for bit; the three
parties' steps chained against the plaintext msb on edge values and random sharings; what P2 sees
(the zero's presence and position, the masked shares) independent of the input; bad inputs."""
import numpy as np
import pytest
import tensorflow as tf

import tfe_accel  # noqa: F401
from tfe_accel import _native as nat
from tfe_accel import ops
from tfe_accel import reference as npref
from tfe_accel.reference import as_u64 as u
from tfe_accel.reference import random_key as rand_key
from tfe_accel.reference import seed_plus_nonce as seed
from test_mpc_step_kernels import rng  # noqa: F401  (the fixture)

U64 = np.uint64
P = 67
EDGE = np.array([0, 1, -1, 2**63 - 1, -(2**63), 2**62, -(2**62), 12345, -12345, 2**63 - 2,
                 -(2**63) + 1], dtype=np.int64)
SHAPES = [(0,), (1,), (7,), (3, 5), (2, 3, 0), (513,)]


def rand64(rng, shape, edge=True):
    return npref.random_int64(rng, shape, EDGE if edge else ())


# ----------------------------------------------------------------- NumPy references

def full64(key, nonce, n):
    return npref.prg_u64(nat.seeded_uniform, key, nonce, n)


def uniform32(key, nonce, n, hi):
    return nat.seeded_uniform([n], seed(key, nonce), 0, hi, dtype="int32").astype(np.int64)


def digits_ref(k02, n02, n):
    """D0: two Z_67 digits per 32-bit draw of U32[0, 67^2)(k02, N02 + 1), 63 per value."""
    v = uniform32(k02, n02 + 1, 32 * n, P * P).reshape(n, 32)
    d = np.stack([v % P, v // P], axis=2).reshape(n, 64)[:, :63]
    return d


def bits_of(x):
    return ((u(x)[:, None] >> np.arange(64, dtype=U64)) & U64(1)).astype(np.int64)


def dealer_ref(k02, n02, k12, n12, n):
    with np.errstate(over="ignore"):
        r = full64(k02, n02, n) + full64(k12, n12, n)
    d1 = (bits_of(r)[:, :63] - digits_ref(k02, n02, n)) % P
    return d1.astype(np.uint8), (r >> U64(63)).astype(bool)


def mask_ref(party, a_own, a_recv, digits, k02, n02, k01, n01):
    n = a_own.size
    with np.errstate(over="ignore"):
        c = u(a_own).reshape(-1) + u(a_recv).reshape(-1)
    coin = uniform32(k01, n01, n, 128)
    beta, rot = coin & 1, coin >> 1
    sm = uniform32(k01, n01 + 1, 64 * n, 66 * P).reshape(n, 64)
    s_k, m_k = 1 + sm // P, sm % P
    r = np.zeros((n, 64), np.int64)
    r[:, :63] = digits_ref(k02, n02, n) if party == 0 else digits.reshape(n, 63)
    t = (c & U64(2**63 - 1)) + beta.astype(U64)
    tb = bits_of(t.view(np.int64))
    lead = 1 if party == 0 else 0
    w = np.where(tb == 1, lead - r, r)                                      # shares of r_k ^ t_k
    above = np.cumsum(w[:, ::-1], axis=1)[:, ::-1] - w                      # sum over l > k
    lin = np.where(beta[:, None] == 1, r + lead * (1 - tb), lead * (tb + 1) - r)
    e = (lin + above) % P
    masked = (s_k * e + (m_k if party == 0 else -m_k)) % P
    out = np.zeros_like(masked)
    pos = (np.arange(64)[None, :] + rot[:, None]) % 64
    np.put_along_axis(out, pos, masked, axis=1)
    s1 = ((c >> U64(63)).astype(np.int64) ^ beta).astype(bool)
    s0 = uniform32(k02, n02 + 2, n, 2).astype(bool) if party == 0 else None
    return out.astype(np.uint8), s1, s0


def resolve_ref(d0, d1, r_top, k02, n02):
    zero = ((d0.astype(np.int64) + d1) % P == 0).any(axis=-1)
    s0 = uniform32(k02, n02 + 2, r_top.size, 2).astype(bool).reshape(r_top.shape)
    return (r_top ^ zero) ^ s0, s0


# ----------------------------------------------------------------- the kernels

def _setting(rng):
    return dict(k01=rand_key(rng), k02=rand_key(rng), k12=rand_key(rng), n01=int(rng.integers(0, 2**31)),
                n02=int(rng.integers(0, 2**31)), n12=int(rng.integers(0, 2**31)))


def _three_parties(x0, x1, x2, k, use_tf):
    """The three parties' steps chained by hand; returns every intermediate and the output shares."""
    shape = list(x0.shape)
    if use_tf:
        d1, top = (t.numpy() for t in ops.pc_dealer(shape, k["k02"], k["n02"], k["k12"], k["n12"]))
        a0 = ops.pc_open(0, x0, x1, k["k02"], k["n02"]).numpy()
        a1 = ops.pc_open(1, x2, x2, k["k12"], k["n12"]).numpy()
        v0, s1_0, s0_0 = (t.numpy() for t in ops.pc_mask_p0(a0, a1, k["k02"], k["n02"], k["k01"], k["n01"]))
        v1, s1_1 = (t.numpy() for t in ops.pc_mask_p1(a1, a0, d1, k["k01"], k["n01"]))
        s2, s0_2 = (t.numpy() for t in ops.pc_resolve(v0, v1, top, k["k02"], k["n02"]))
    else:
        d1, top = nat.pc_dealer(k["k02"], k["n02"], k["k12"], k["n12"], shape)
        a0 = nat.pc_open(0, x0, x1, k["k02"], k["n02"])
        a1 = nat.pc_open(1, x2, x2, k["k12"], k["n12"])
        v0, s1_0, s0_0 = nat.pc_mask(0, a0, a1, None, k["k02"], k["n02"], k["k01"], k["n01"])
        v1, s1_1, _ = nat.pc_mask(1, a1, a0, d1, None, 0, k["k01"], k["n01"])
        s2, s0_2 = nat.pc_resolve(v0, v1, top, k["k02"], k["n02"])
    return dict(d1=d1, top=top, a0=a0, a1=a1, v0=v0, v1=v1, s1_0=s1_0, s1_1=s1_1, s0_0=s0_0, s2=s2,
                s0_2=s0_2)


def _sharing(rng, x):
    x0, x1 = rand64(rng, x.shape, edge=False), rand64(rng, x.shape, edge=False)
    with np.errstate(over="ignore"):
        x2 = (u(x) - u(x0) - u(x1)).view(np.int64)
    return x0, x1, x2


@pytest.mark.parametrize("shape", SHAPES)
def test_each_party_against_numpy_and_tf(rng, shape):
    k = _setting(rng)
    x0, x1, x2 = rand64(rng, shape), rand64(rng, shape), rand64(rng, shape)
    n = x0.size
    got = _three_parties(x0, x1, x2, k, use_tf=False)
    # dealer
    d1, top = dealer_ref(k["k02"], k["n02"], k["k12"], k["n12"], n)
    np.testing.assert_array_equal(got["d1"], d1.reshape(shape + (63,)))
    np.testing.assert_array_equal(got["top"], top.reshape(shape))
    # open
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(u(got["a0"]).reshape(-1), u(x0).reshape(-1) + u(x1).reshape(-1)
                                      + full64(k["k02"], k["n02"], n))
        np.testing.assert_array_equal(u(got["a1"]).reshape(-1), u(x2).reshape(-1) + full64(k["k12"], k["n12"], n))
    # mask, both parties
    v0, s1_0, s0_0 = mask_ref(0, got["a0"], got["a1"], None, k["k02"], k["n02"], k["k01"], k["n01"])
    v1, s1_1, _ = mask_ref(1, got["a1"], got["a0"], got["d1"], k["k02"], k["n02"], k["k01"], k["n01"])
    np.testing.assert_array_equal(got["v0"].reshape(n, 64), v0)
    np.testing.assert_array_equal(got["v1"].reshape(n, 64), v1)
    np.testing.assert_array_equal(got["s1_0"].reshape(-1), s1_0)
    np.testing.assert_array_equal(got["s1_1"].reshape(-1), s1_1)
    np.testing.assert_array_equal(got["s0_0"].reshape(-1), s0_0)
    # resolve
    s2, s0 = resolve_ref(got["v0"].reshape(n, 64), got["v1"].reshape(n, 64), got["top"].reshape(-1),
                         k["k02"], k["n02"])
    np.testing.assert_array_equal(got["s2"].reshape(-1), s2)
    np.testing.assert_array_equal(got["s0_2"].reshape(-1), s0)
    # the TF ops, bit for bit
    got_tf = _three_parties(x0, x1, x2, k, use_tf=True)
    for name, value in got.items():
        np.testing.assert_array_equal(got_tf[name], value, err_msg=name)


@pytest.mark.parametrize("use_tf", [False, True])
def test_msb_of_random_sharings_is_the_plaintext_msb(rng, use_tf):
    for _ in range(3):
        x = np.concatenate([EDGE, rand64(rng, (2000,), edge=False),
                            rng.integers(-2**20, 2**20, size=1000).astype(np.int64)])
        got = _three_parties(*_sharing(rng, x), _setting(rng), use_tf)
        np.testing.assert_array_equal(got["s1_0"], got["s1_1"])   # P0 and P1 hold the same s1
        np.testing.assert_array_equal(got["s0_0"], got["s0_2"])   # P0 and P2 hold the same s0
        msb = got["s0_0"] ^ got["s1_0"] ^ got["s2"]
        np.testing.assert_array_equal(msb, x < 0)


def test_what_p2_sees_does_not_depend_on_the_input(rng):
    """For every input (here all zeros, all -1, all 2^63 - 1), over fresh keys: the masked vectors
    P2 receives have a zero in half of the values (beta), at a uniform position, and P0's vector is
    uniform on Z_67 (the masks m_k)."""
    n = 20000
    for value in (0, -1, 2**63 - 1, -(2**63)):
        x = np.full(n, value, np.int64)
        got = _three_parties(*_sharing(rng, x), _setting(rng), use_tf=False)
        total = (got["v0"].astype(np.int64) + got["v1"]) % P
        zeros = total == 0
        assert zeros.sum(axis=1).max() <= 1  # at most one zero per value
        frac = zeros.any(axis=1).mean()
        assert abs(frac - 0.5) < 5 * 0.5 / np.sqrt(n), (value, frac)
        pos = np.bincount(np.argmax(zeros[zeros.any(axis=1)], axis=1), minlength=64)
        expect = zeros.any(axis=1).sum() / 64
        assert np.abs(pos - expect).max() < 6 * np.sqrt(expect), (value, pos)
        hist = np.bincount(got["v0"].reshape(-1), minlength=P)
        assert hist.size == P
        mean = got["v0"].size / P
        assert np.abs(hist - mean).max() < 6 * np.sqrt(mean), (value, hist)
        nonzero = total[~zeros]
        hist_nz = np.bincount(nonzero, minlength=P)
        assert hist_nz[0] == 0
        mean_nz = nonzero.size / (P - 1)
        assert np.abs(hist_nz[1:] - mean_nz).max() < 6 * np.sqrt(mean_nz), (value, hist_nz)


def test_bad_inputs(rng):
    k = _setting(rng)
    x = rand64(rng, (5,))
    with pytest.raises(TypeError, match="x_a must have dtype int64"):
        ops.pc_open(0, x.astype(np.int32), x, k["k02"], k["n02"])
    with pytest.raises(ValueError, match="party must be 0 or 1"):
        ops.pc_open(2, x, x, k["k02"], k["n02"])
    with pytest.raises(ValueError, match="party must be 0 or 1"):
        nat.pc_open(2, x, x, k["k02"], k["n02"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="same shape"):
        ops.pc_open(0, x, rand64(rng, (4,)), k["k02"], k["n02"])
    with pytest.raises(TypeError, match="digits must have dtype uint8"):
        ops.pc_mask_p1(x, x, np.zeros((5, 63), np.int32), k["k01"], k["n01"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"digits must have shape \[5,63\]"):
        ops.pc_mask_p1(x, x, np.zeros((5, 64), np.uint8), k["k01"], k["n01"])
    with pytest.raises(ValueError, match="digits must have shape"):
        nat.pc_mask(1, x, x, np.zeros((5, 64), np.uint8), None, 0, k["k01"], k["n01"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"d0 must have shape \[5,64\]"):
        ops.pc_resolve(np.zeros((5, 63), np.uint8), np.zeros((5, 63), np.uint8), np.zeros(5, bool),
                       k["k02"], k["n02"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"digits must hold values in \[0, 67\), got 67"):
        ops.pc_mask_p1(x, x, np.full((5, 63), 67, np.uint8), k["k01"], k["n01"])
    with pytest.raises(ValueError, match=r"d1 must hold values in \[0, 67\)"):
        nat.pc_resolve(np.zeros((5, 64), np.uint8), np.full((5, 64), 200, np.uint8), np.zeros(5, bool),
                       k["k02"], k["n02"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="key"):
        ops.pc_open(0, x, x, np.zeros(7, np.int32), k["n02"])
