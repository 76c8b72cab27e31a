"""TF op wrappers for tfe-accel's ring products (int64 = Z_2^64, wrapping).

* ``ring_matmul(a, b)``: C = A.B mod 2^64 with tf.matmul's batch dims and transposes.
* ``rss_matmul(...)``: party i's local step of ABY3's private x private matmul (TFE
  ``_matmul_private_private``) with the zero share of ``_gen_zero_sharing`` expanded in-kernel.
* ``public_private_matmul`` / ``private_public_matmul``: both shares of one party times a public
  matrix in one call.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from ._loader import load_ops

_ops = load_ops()

__all__ = [
    "ring_matmul",
    "rss_matmul",
    "rss_matmul_party_args",
    "rss_column_squares",
    "rss_mul",
    "public_private_matmul",
    "private_public_matmul",
]


def _invalid(message: str) -> tf.errors.InvalidArgumentError:
    return tf.errors.InvalidArgumentError(None, None, message)


def _convert(x, hint) -> tf.Tensor:
    # Arrays and tensors keep their dtype (no silent casts); Python scalars/lists take the hint.
    if isinstance(x, (tf.Tensor, tf.Variable, np.ndarray, np.generic)):
        return tf.convert_to_tensor(x)
    return tf.convert_to_tensor(x, dtype_hint=hint)


def _int64(x, name: str) -> tf.Tensor:
    t = _convert(x, tf.int64)
    if t.dtype != tf.int64:
        raise _invalid(f"{name} must be an int64 tensor (a ring Z_2^64 value), got dtype {t.dtype.name}")
    return t


def _key(x, name: str) -> tf.Tensor:
    t = _convert(x, tf.int32)
    if t.dtype != tf.int32:
        raise _invalid(f"{name} must be an int32[8] PRG key, got dtype {t.dtype.name}")
    if t.shape.rank is not None and t.shape.as_list() != [8]:
        raise _invalid(f"{name} must have shape [8] (an int32[8] PRG key), got shape {t.shape}")
    return t


def _nonce(x, name: str) -> tf.Tensor:
    t = _convert(x, tf.int64)
    if not t.dtype.is_integer:
        raise _invalid(f"{name} must be an integer scalar (int64 nonce), got dtype {t.dtype.name}")
    if t.shape.rank is not None and t.shape.rank != 0:
        raise _invalid(f"{name} must be a scalar, got shape {t.shape}")
    return tf.cast(t, tf.int64)


def ring_matmul(a, b, transpose_a: bool = False, transpose_b: bool = False, name=None) -> tf.Tensor:
    """C = A.B mod 2^64 for int64 tensors (rank >= 2, broadcast batch dims, like tf.matmul)."""
    return _ops.tfe_accel_ring_matmul(
        _int64(a, "a"), _int64(b, "b"), transpose_a=bool(transpose_a),
        transpose_b=bool(transpose_b), name=name,
    )


def rss_matmul(x_i, x_next, y_i, y_next, key0, key1, nonce0, nonce1,
               transpose_a: bool = False, transpose_b: bool = False, name=None) -> tf.Tensor:
    """Party i's ABY3 private x private matmul step (not truncated):

    z_i = x_i.(y_i + y_next) + x_next.y_i + a_i,  a_i = U(key0 + nonce0) - U(key1 + nonce1).

    For stock TFE's share of party i use ``rss_matmul_party_args(prot, i)`` for the keys and nonces.
    """
    return _ops.tfe_accel_rss_matmul(
        _int64(x_i, "x_i"), _int64(x_next, "x_next"), _int64(y_i, "y_i"), _int64(y_next, "y_next"),
        _key(key0, "key0"), _key(key1, "key1"), _nonce(nonce0, "nonce0"), _nonce(nonce1, "nonce1"),
        transpose_a=bool(transpose_a), transpose_b=bool(transpose_b), name=name,
    )


def rss_column_squares(x_i, x_next, m_i, m_next, key0, key1, nonce0, nonce1, name=None) -> tf.Tensor:
    """Party i's ABY3 column sums of squares of a centred private matrix (not truncated):

    z_i[0, c] = sum_r a (a + 2 b) + a_i[c],  a = x_i - m_i, b = x_next - m_next (m broadcast over rows),

    party i's 3-out-of-3 share of sum_r (x[r, c] - m[c])^2 (the local products are summed before the
    resharing, ABY3's inner product). x_i, x_next: [rows, cols]; m_i, m_next: [1, cols]; keys and nonces
    as :func:`rss_matmul`.
    """
    return _ops.tfe_accel_rss_column_squares(
        _int64(x_i, "x_i"), _int64(x_next, "x_next"), _int64(m_i, "m_i"), _int64(m_next, "m_next"),
        _key(key0, "key0"), _nonce(nonce0, "nonce0"), _key(key1, "key1"), _nonce(nonce1, "nonce1"),
        name=name,
    )


def rss_mul(x_i, x_next, y_i, y_next, key0, key1, nonce0, nonce1, name=None) -> tf.Tensor:
    """Party i's ABY3 private x private elementwise product step (not truncated), same shapes:

    z_i = x_i * (y_i + y_next) + x_next * y_i + a_i, keys and nonces as :func:`rss_matmul`.
    """
    return _ops.tfe_accel_rss_mul(
        _int64(x_i, "x_i"), _int64(x_next, "x_next"), _int64(y_i, "y_i"), _int64(y_next, "y_next"),
        _key(key0, "key0"), _nonce(nonce0, "nonce0"), _key(key1, "key1"), _nonce(nonce1, "nonce1"),
        name=name,
    )


def rss_matmul_party_args(prot, i: int) -> dict:
    """key0/key1/nonce0/nonce1 reproducing TFE's ``_gen_zero_sharing`` share a_i of party i
    (read at the protocol's current nonces; TFE advances them after each zero sharing)."""
    if i not in (0, 1, 2):
        raise ValueError(f"party index must be 0, 1 or 2, got {i}")
    keys, nonces = prot.pairwise_keys(), prot.pairwise_nonces()
    return {
        "key0": keys[i][0], "key1": keys[i][1],
        "nonce0": nonces[(i + 2) % 3], "nonce1": nonces[i],
    }


def public_private_matmul(p, x0, x1, transpose_a: bool = False, transpose_b: bool = False,
                          name=None):
    """(p.x0, p.x1) mod 2^64: a public matrix times both shares of one party, one call."""
    return tuple(_ops.tfe_accel_public_private_matmul(
        _int64(p, "p"), _int64(x0, "x0"), _int64(x1, "x1"), transpose_a=bool(transpose_a),
        transpose_b=bool(transpose_b), public_left=True, name=name,
    ))


def private_public_matmul(x0, x1, p, transpose_a: bool = False, transpose_b: bool = False,
                          name=None):
    """(x0.p, x1.p) mod 2^64: both shares of one party times a public matrix, one call."""
    return tuple(_ops.tfe_accel_public_private_matmul(
        _int64(p, "p"), _int64(x0, "x0"), _int64(x1, "x1"), transpose_a=bool(transpose_a),
        transpose_b=bool(transpose_b), public_left=False, name=name,
    ))
