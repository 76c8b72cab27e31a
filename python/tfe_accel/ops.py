"""Python wrappers of tfe-accel's TensorFlow ops (snake_case, validated arguments)."""
from __future__ import annotations

import tensorflow as tf

from ._loader import load_ops

_ops = load_ops()

__all__ = [
    "secure_seed",
    "seeded_random_uniform",
    "random_uniform",
    "bit_gather",
    "bit_split_and_gather",
    "bit_reverse",
    "xor_indices",
    "build_info",
]


def _int_dtype(dtype):
    dtype = tf.as_dtype(dtype)
    if dtype not in (tf.int32, tf.int64):
        raise TypeError(f"dtype must be int32 or int64, got {dtype.name}")
    return dtype


def secure_seed(name=None) -> tf.Tensor:
    """A fresh int32[8] seed from the OS CSPRNG."""
    return _ops.secure_seed(name=name)


def seeded_random_uniform(shape, seed, minval, maxval, dtype=tf.int64, name=None) -> tf.Tensor:
    """Uniform integers in [minval, maxval) from the ChaCha20 stream keyed by `seed` (int32[8])."""
    dtype = _int_dtype(dtype)
    return _ops.secure_seeded_random_uniform(
        shape, seed, tf.constant(minval, dtype), tf.constant(maxval, dtype), name=name
    )


def random_uniform(shape, minval, maxval, dtype=tf.int64, name=None) -> tf.Tensor:
    """Uniform integers in [minval, maxval) from a fresh OS-seeded stream."""
    dtype = _int_dtype(dtype)
    return _ops.secure_random_uniform(
        shape, tf.constant(minval, dtype), tf.constant(maxval, dtype), name=name
    )


def bit_gather(x, start: int, stride: int, name=None) -> tf.Tensor:
    return _ops.bit_gather(x, start=start, stride=stride, name=name)


def bit_split_and_gather(x, stride: int, name=None) -> tf.Tensor:
    return _ops.bit_split_and_gather(x, stride=stride, name=name)


def bit_reverse(x, name=None) -> tf.Tensor:
    return _ops.bit_reverse(x, name=name)


def xor_indices(x, name=None) -> tf.Tensor:
    return _ops.xor_indices(x, name=name)


def build_info(name=None) -> tf.Tensor:
    """JSON string describing the tfe-accel build loaded where this op runs."""
    return _ops.tfe_accel_build_info(name=name)
from ._ops_matmul import *  # noqa: F401,F403
from ._ops_mpc import *  # noqa: F401,F403
