"""TfeAccelRssColumnSquares (column sums of squares of a centred private matrix, one party's local
step): against a plain NumPy uint64 reference on fresh random inputs with edge values and odd shapes,
the three parties' outputs summing to sum_r (x - m)^2 mod 2^64, and bad inputs."""
import numpy as np
import pytest
import tensorflow as tf

import tfe_accel  # noqa: F401
from tfe_accel import _native as nat
from tfe_accel import ops
from tfe_accel import reference as npref
from tfe_accel.reference import as_u64 as u

U64 = np.uint64
SHAPES = [(0, 5), (1, 1), (3, 0), (7, 3), (2, 513), (5, 1031), (1, 8), (33, 17)]


@pytest.fixture
def rng():
    return np.random.default_rng()


def rand64(rng, shape):
    return npref.random_int64(rng, shape, rng.permutation(npref.EDGE_INT64_WIDE))


def reference(x_i, x_next, m_i, m_next, k0, n0, k1, n1):
    """z_i[c] = sum_r a (a + 2 b) + (U(k0 + n0) - U(k1 + n1))[c], a = x_i - m_i, b = x_next - m_next."""
    with np.errstate(over="ignore"):
        a = u(x_i) - u(m_i)
        b = u(x_next) - u(m_next)
        terms = a * (a + b) + b * a
        z = terms.sum(axis=0, dtype=U64).reshape(1, -1)
        cols = z.shape[1]
        return (z + npref.zero_share(nat.seeded_uniform, k0, n0, k1, n1, cols)).view(np.int64)


def _keys(rng):
    return [npref.random_key(rng) for _ in range(2)]


@pytest.mark.parametrize("shape", SHAPES)
def test_against_numpy(rng, shape):
    rows, cols = shape
    x_i, x_next = rand64(rng, shape), rand64(rng, shape)
    m_i, m_next = rand64(rng, (1, cols)), rand64(rng, (1, cols))
    k0, k1 = _keys(rng)
    n0, n1 = (int(v) for v in rng.integers(-(2**62), 2**62, size=2))
    got = ops.rss_column_squares(x_i, x_next, m_i, m_next, k0, k1, n0, n1).numpy()
    assert got.shape == (1, cols) and got.dtype == np.int64
    np.testing.assert_array_equal(got, reference(x_i, x_next, m_i, m_next, k0, n0, k1, n1))


@pytest.mark.parametrize("shape", [(4, 9), (40, 600), (1, 1)])
def test_three_parties_sum_to_centred_squares(rng, shape):
    """Replicated shares of x and m, each party's keys as TFE's zero sharing: the sum of the three
    outputs is sum_r (x - m)^2 (mod 2^64), the zero shares cancelling."""
    rows, cols = shape
    xs = [rand64(rng, shape) for _ in range(3)]
    ms = [rand64(rng, (1, cols)) for _ in range(3)]
    seeds = [npref.random_key(rng) for _ in range(3)]
    nonces = [int(v) for v in rng.integers(0, 2**40, size=3)]
    total = np.zeros((1, cols), dtype=U64)
    for i in range(3):
        j = (i + 1) % 3
        # party i holds keys[i] = (seed_i, seed_{i+1}); TFE's share uses nonces[(i+2)%3], nonces[i]
        z = ops.rss_column_squares(xs[i], xs[j], ms[i], ms[j], seeds[i], seeds[j],
                                   nonces[(i + 2) % 3], nonces[i]).numpy()
        total += u(z)
    with np.errstate(over="ignore"):
        x = u(xs[0]) + u(xs[1]) + u(xs[2])
        m = u(ms[0]) + u(ms[1]) + u(ms[2])
        want = ((x - m) * (x - m)).sum(axis=0, dtype=U64).reshape(1, -1)
    # the zero share of party i is U(s_i + n_{i-1}) - U(s_{i+1} + n_i): the terms cancel pairwise
    np.testing.assert_array_equal(total, want)


def test_bad_inputs(rng):
    k0, k1 = _keys(rng)
    x = rand64(rng, (3, 4))
    m = rand64(rng, (1, 4))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="matrix|rank"):
        ops.rss_column_squares(x.reshape(-1), x.reshape(-1), m, m, k0, k1, 0, 0)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=r"\[1, 4\]|shape"):
        ops.rss_column_squares(x, x, m.reshape(-1), m.reshape(-1), k0, k1, 0, 0)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="x_next|shape"):
        ops.rss_column_squares(x, x[:2], m, m, k0, k1, 0, 0)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="int64"):
        ops.rss_column_squares(x.astype(np.int32), x, m, m, k0, k1, 0, 0)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="key"):
        ops.rss_column_squares(x, x, m, m, k0[:7], k1, 0, 0)
