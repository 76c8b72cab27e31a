"""TFE's bit ops (operations/aux) against plain NumPy references (tfe_accel.reference)."""
import numpy as np
import pytest
import tensorflow as tf

import tfe_accel  # noqa: F401
from tfe_accel import _native, ops
from tfe_accel import reference as npref

EDGE = [0, 1, -1, 2**63 - 1, -(2**63), 0xAAAA, 0x425F32EA92, 0x5555555555555555]


def _values(dtype, n=64):
    info = np.iinfo(dtype)
    rng = np.random.default_rng()
    x = rng.integers(info.min, info.max, size=n, dtype=dtype, endpoint=True)
    edges = [e for e in EDGE if info.min <= e <= info.max] + [info.min, info.max]
    x = x[: n - (n + len(edges)) % 6]  # total divisible by 2 and 3 for the reshapes below
    return np.concatenate([x, np.array(edges, dtype=dtype)])


def test_tfe_reference_examples():
    x = tf.constant([0xAAAA], dtype=tf.int64)
    assert ops.bit_gather(x, 0, 2).numpy().tolist() == [0]
    assert ops.bit_gather(x, 1, 2).numpy().tolist() == [0xFF]
    x = tf.constant([0x425F32EA92], dtype=tf.int64)
    assert ops.bit_gather(x, 0, 2).numpy().tolist() == [0x8F484]
    assert ops.bit_gather(x, 1, 2).numpy().tolist() == [0x135F9]
    y = ops.bit_split_and_gather(tf.constant([0xAAAA, 0x425F32EA92, 0x2], tf.int64), 2)
    np.testing.assert_array_equal(y, [[0, 0x8F484, 0], [0xFF, 0x135F9, 0x1]])


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("start,stride", [(0, 1), (0, 2), (1, 2), (3, 4), (5, 7)])
def test_bit_gather_matches_reference(dtype, start, stride):
    bits = np.dtype(dtype).itemsize * 8
    if start >= bits or stride > bits:
        pytest.skip("not valid for this width")
    x = _values(dtype).reshape(-1, 2)
    ref = npref.bit_gather(x, start, stride)
    np.testing.assert_array_equal(ops.bit_gather(tf.constant(x), start, stride).numpy(), ref)
    np.testing.assert_array_equal(_native.bit_gather(x, start, stride), ref)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("stride", [1, 2, 4, 8])
def test_bit_split_and_gather_matches_reference(dtype, stride):
    x = _values(dtype, 30).reshape(2, -1)
    ref = np.stack([npref.bit_gather(x, s, stride) for s in range(stride)])
    got_tf = ops.bit_split_and_gather(tf.constant(x), stride).numpy()
    assert got_tf.shape == (stride,) + x.shape
    np.testing.assert_array_equal(got_tf, ref)
    np.testing.assert_array_equal(_native.bit_split_and_gather(x, stride), ref)


def test_bit_reverse_and_xor_indices_match_reference():
    x = _values(np.int64, 200).reshape(-1, 3)
    rev, xi = npref.bit_reverse(x), npref.xor_indices(x)
    np.testing.assert_array_equal(ops.bit_reverse(tf.constant(x)).numpy(), rev)
    np.testing.assert_array_equal(_native.bit_reverse(x), rev)
    np.testing.assert_array_equal(ops.xor_indices(tf.constant(x)).numpy(), xi)
    np.testing.assert_array_equal(_native.xor_indices(x), xi)


def test_empty_and_odd_shapes():
    for shape in [(0,), (3, 0), (1, 1, 1), (7, 5, 3)]:
        x = np.random.default_rng().integers(-(2**63), 2**63 - 1, size=shape, dtype=np.int64)
        assert ops.bit_split_and_gather(tf.constant(x), 2).shape == (2,) + shape
        assert ops.bit_reverse(tf.constant(x)).shape == shape
        assert _native.xor_indices(x).shape == shape


def test_static_shape_inference_agrees_with_runtime():
    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.int64)])
    def f(x):
        y = ops.bit_split_and_gather(x, 4)
        assert y.shape.as_list() == [4, None, 5]
        return y

    assert f(tf.zeros([3, 5], tf.int64)).shape == (4, 3, 5)


def test_bad_inputs():
    with pytest.raises(tf.errors.InvalidArgumentError, match="stride must divide"):
        ops.bit_split_and_gather(tf.constant([1, 2], tf.int64), 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="stride must be"):
        ops.bit_gather(tf.constant([1], tf.int32), 0, 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="start must be"):
        ops.bit_gather(tf.constant([1], tf.int8), 9, 1)
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError)):
        ops.bit_reverse(tf.constant([1], tf.int32))
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError)):
        ops.bit_gather(tf.constant([1.0]), 0, 2)
    with pytest.raises(ValueError, match="stride must divide"):
        _native.bit_split_and_gather(np.array([1], np.int64), 3)
    with pytest.raises(TypeError, match="dtype"):
        _native.bit_gather(np.array([1.0]), 0, 2)
    with pytest.raises(TypeError, match="x must have dtype int64"):
        _native.bit_reverse(np.array([1], np.int32))
