"""ChaCha20 (RFC 8439) and the seeded PRG behind TFE's secure randomness."""
import struct

import numpy as np
import pytest
import tensorflow as tf

import tfe_accel  # noqa: F401
from tfe_accel import _native, ops

# ---------------------------------------------------------------- RFC 8439 test vectors


def _rfc_state(key: bytes, counter: int, nonce: bytes) -> np.ndarray:
    words = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    words += list(struct.unpack("<8I", key)) + [counter] + list(struct.unpack("<3I", nonce))
    return np.array(words, dtype=np.uint32)


def test_rfc8439_block_function_2_3_2():
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a00000000")
    out = _native.chacha20_block(_rfc_state(key, 1, nonce))
    expected = [
        0xE4E7F110, 0x15593BD1, 0x1FDD0F50, 0xC47120A3,
        0xC7F4D1C7, 0x0368C033, 0x9AAA2204, 0x4E6CD4C3,
        0x466482D2, 0x09AA9F07, 0x05D7C214, 0xA2028BD9,
        0xD19C12B5, 0xB94E16DE, 0xE883D0CB, 0x4E3C50A2,
    ]
    assert out.tolist() == expected


def test_rfc8439_appendix_a1_zero_key_keystream():
    out = _native.chacha20_xor(bytes(32), 0, bytes(12), bytes(64))
    assert out.hex() == (
        "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
        "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
    )


def test_rfc8439_encryption_2_4_2():
    key = bytes(range(32))
    nonce = bytes.fromhex("000000000000004a00000000")
    plaintext = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
        b"the future, sunscreen would be it."
    )
    expected = bytes.fromhex(
        "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
        "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
        "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
        "5af90bbf74a35be6b40b8eedf2785e42874d"
    )
    ct = _native.chacha20_xor(key, 1, nonce, plaintext)
    assert ct == expected
    assert _native.chacha20_xor(key, 1, nonce, ct) == plaintext


def test_chacha20_xor_rejects_bad_key_and_nonce():
    with pytest.raises(ValueError, match="key must be 32 bytes"):
        _native.chacha20_xor(bytes(31), 0, bytes(12), b"x")
    with pytest.raises(ValueError, match="nonce must be 12 bytes"):
        _native.chacha20_xor(bytes(32), 0, bytes(8), b"x")


# ---------------------------------------------------------------- the PRG stream layout


def _py_block(key_words, block, rnd):
    state = np.array(
        [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *key_words,
         block & 0xFFFFFFFF, block >> 32, rnd, 0x61656674],
        dtype=np.uint32,
    )
    return _native.chacha20_block(state)


def _reference_uniform64(seed, lo, hi, n):
    """Plain reference of the documented stream layout + Lemire's unbiased reduction."""
    key = [int(w) & 0xFFFFFFFF for w in seed]
    rng = (hi - lo) % 2**64
    thresh = (2**64 - rng) % rng
    out = []
    for i in range(n):
        rnd = 0
        while True:
            blk = _py_block(key, i // 8, rnd)
            j = i % 8
            u = int(blk[2 * j]) | (int(blk[2 * j + 1]) << 32)
            m = u * rng
            if m % 2**64 >= thresh:
                break
            rnd += 1
        out.append(lo + (m >> 64))
    return out


def _reference_uniform32(seed, lo, hi, n):
    key = [int(w) & 0xFFFFFFFF for w in seed]
    rng = (hi - lo) % 2**32
    thresh = (2**32 - rng) % rng
    out = []
    for i in range(n):
        rnd = 0
        while True:
            u = int(_py_block(key, i // 16, rnd)[i % 16])
            m = u * rng
            if m % 2**32 >= thresh:
                break
            rnd += 1
        out.append(lo + (m >> 32))
    return out


def _seed():
    return np.frombuffer(np.random.default_rng().bytes(32), dtype=np.int32).copy()


@pytest.mark.parametrize(
    "lo,hi", [(-(2**63), 2**63 - 1), (0, 10), (-5, 3), (0, 2**63 + 1 - 2**63 + 2**62 + 1), (7, 8)]
)
def test_seeded_uniform_int64_matches_reference_layout(lo, hi):
    seed = _seed()
    n = 37
    got = _native.seeded_uniform([n], seed, lo, hi, "int64")
    assert got.tolist() == _reference_uniform64(seed, lo, hi, n)


def test_rejection_path_is_exercised_and_matches_reference():
    # range 2^63 + 1: about half of all draws are rejected, so rounds >= 1 are used.
    lo, hi = -(2**62), 2**62 + 1
    seed = _seed()
    n = 40
    got = _native.seeded_uniform([n], seed, lo, hi, "int64")
    assert got.tolist() == _reference_uniform64(seed, lo, hi, n)


@pytest.mark.parametrize("lo,hi", [(0, 2), (-10000, 10000), (-(2**31), 2**31 - 1), (0, 1129)])
def test_seeded_uniform_int32_matches_reference_layout(lo, hi):
    seed = _seed()
    got = _native.seeded_uniform([41], seed, lo, hi, "int32")
    assert got.tolist() == _reference_uniform32(seed, lo, hi, 41)


def test_tf_op_and_native_bit_identical_all_dtypes():
    seed = _seed()
    for dtype, lo, hi in [
        (tf.int64, -(2**63), 2**63 - 1),
        (tf.int32, -1000, 1000),
        (tf.int16, -(2**15), 2**15 - 1),
        (tf.int8, 0, 2),
    ]:
        got_tf = ops._ops.secure_seeded_random_uniform(
            [5, 7, 3], seed, tf.constant(lo, dtype), tf.constant(hi, dtype)
        ).numpy()
        got_np = _native.seeded_uniform([5, 7, 3], seed, lo, hi, dtype.name)
        assert got_tf.dtype == got_np.dtype
        np.testing.assert_array_equal(got_tf, got_np)


def test_same_seed_same_values_eager_graph_and_calls():
    seed = tf.constant(_seed())
    eager1 = ops.seeded_random_uniform([100], seed, -(2**63), 2**63 - 1)
    eager2 = ops.seeded_random_uniform([100], seed, -(2**63), 2**63 - 1)

    @tf.function
    def graph():
        return ops.seeded_random_uniform([100], seed, -(2**63), 2**63 - 1)

    np.testing.assert_array_equal(eager1, eager2)
    np.testing.assert_array_equal(eager1, graph())
    np.testing.assert_array_equal(eager1, graph())


def test_different_seeds_differ_and_prefix_stable():
    a = _native.seeded_uniform([1000], _seed(), 0, 2**62, "int64")
    b = _native.seeded_uniform([1000], _seed(), 0, 2**62, "int64")
    assert (a != b).mean() > 0.99
    seed = _seed()
    long = _native.seeded_uniform([1000], seed, 0, 2**40, "int64")
    short = _native.seeded_uniform([10], seed, 0, 2**40, "int64")
    np.testing.assert_array_equal(long[:10], short)


def test_multithreaded_equals_single_threaded():
    seed = _seed()
    old = _native.get_num_threads()
    try:
        _native.set_num_threads(1)
        one = _native.seeded_uniform([300_001], seed, -3, 2**62 + 5, "int64")
        _native.set_num_threads(2)
        two = _native.seeded_uniform([300_001], seed, -3, 2**62 + 5, "int64")
    finally:
        _native.set_num_threads(old)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize(
    "lo,hi,dtype",
    [
        (-(2**63), 2**63 - 1, "int64"),
        (0, 1, "int64"),
        (0, 2, "int64"),
        (-3, 4, "int64"),
        (2**63 - 2, 2**63 - 1, "int64"),
        (-(2**63), -(2**63) + 3, "int64"),
        (0, 2**63 - 1, "int64"),
        (-(2**31), 2**31 - 1, "int32"),
        (-1, 0, "int32"),
        (100, 103, "int16"),
        (-128, 127, "int8"),
    ],
)
def test_bounds_respected(lo, hi, dtype):
    x = _native.seeded_uniform([20000], _seed(), lo, hi, dtype)
    assert x.min() >= lo and x.max() < hi
    if hi - lo <= 8:
        assert set(np.unique(x).tolist()) == set(range(lo, hi))


def test_chi_square_uniformity_1e6_samples():
    from scipy import stats

    k = 97
    x = _native.seeded_uniform([1_000_000], _seed(), 0, k, "int64")
    counts = np.bincount(x, minlength=k)
    chi2, p = stats.chisquare(counts)
    assert p > 1e-4, (chi2, p)
    # top bits of the full-range stream too
    y = _native.seeded_uniform([1_000_000], _seed(), -(2**63), 2**63 - 1, "int64")
    top = (y.view(np.uint64) >> np.uint64(58)).astype(np.int64)
    chi2, p = stats.chisquare(np.bincount(top, minlength=64))
    assert p > 1e-4, (chi2, p)


def test_secure_seed_fresh_each_call():
    seeds = [ops.secure_seed().numpy() for _ in range(5)] + [_native.secure_seed() for _ in range(5)]
    assert len({s.tobytes() for s in seeds}) == 10
    assert all(s.shape == (8,) and s.dtype == np.int32 for s in seeds)

    @tf.function
    def two_seeds():
        return ops.secure_seed(), ops.secure_seed()

    a, b = two_seeds()
    c, _ = two_seeds()
    assert len({a.numpy().tobytes(), b.numpy().tobytes(), c.numpy().tobytes()}) == 3


def test_unseeded_random_uniform_fresh_and_bounded():
    a = ops.random_uniform([1000], -50, 50).numpy()
    b = ops.random_uniform([1000], -50, 50).numpy()
    assert a.min() >= -50 and a.max() < 50
    assert (a != b).any()


# ---------------------------------------------------------------- bad input


def test_bad_inputs_give_invalid_argument_naming_problem():
    seed = _seed()
    prg = ops._ops
    with pytest.raises(tf.errors.InvalidArgumentError, match="minval must be less than maxval"):
        prg.secure_seeded_random_uniform([3], seed, tf.constant(5, tf.int64), tf.constant(5, tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="minval must be less than maxval"):
        prg.secure_random_uniform([3], tf.constant(9, tf.int32), tf.constant(1, tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="seed"):
        prg.secure_seeded_random_uniform([3], seed[:4], tf.constant(0, tf.int64), tf.constant(5, tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="negative"):
        prg.secure_seeded_random_uniform([3, -1], seed, tf.constant(0, tf.int64), tf.constant(5, tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="scalar|rank"):
        prg.secure_seeded_random_uniform([3], seed, tf.constant([0, 1], tf.int64), tf.constant(5, tf.int64))
    # TFE issue #900: mixed dtypes of minval/maxval must be an error, never a constant.
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError)):
        prg.secure_seeded_random_uniform([3], seed, tf.constant(0, tf.int32), tf.constant(5, tf.int64))
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError)):
        prg.secure_seeded_random_uniform(
            [3], tf.constant(seed, tf.int64), tf.constant(0, tf.int64), tf.constant(5, tf.int64)
        )
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError)):
        prg.secure_seeded_random_uniform([3], seed, tf.constant(0.0), tf.constant(5.0))
    with pytest.raises(TypeError, match="int32 or int64"):
        ops.seeded_random_uniform([3], seed, 0, 1, dtype=tf.float32)


def test_bad_inputs_native():
    with pytest.raises(ValueError, match="minval must be less than maxval"):
        _native.seeded_uniform([3], _seed(), 5, 5, "int64")
    with pytest.raises(ValueError, match="seed must have shape"):
        _native.seeded_uniform([3], _seed()[:3], 0, 5, "int64")
    with pytest.raises(TypeError, match="seed must have dtype int32"):
        _native.seeded_uniform([3], _seed().astype(np.int64), 0, 5, "int64")
    with pytest.raises(ValueError, match="negative"):
        _native.seeded_uniform([-3], _seed(), 0, 5, "int64")
    with pytest.raises(TypeError, match="dtype must be"):
        _native.seeded_uniform([3], _seed(), 0, 5, "float32")


def test_zero_sized_shapes_are_fine():
    assert _native.seeded_uniform([0, 5], _seed(), 0, 5, "int64").shape == (0, 5)
    out = ops.seeded_random_uniform([4, 0], _seed(), 0, 5)
    assert out.shape == (4, 0)
