"""The fixed-point format's limits, in one place (TFE's fixed64 ring Z_2^64, f fractional bits).

A real x is held as the ring element round(x * 2^f). TFE's heuristic truncation (lift, the MSB-0
protocol, unlift; the ABY3 default and AcceleratedABY3's fused version) is exact up to one ulp while
the ring value to truncate is below 2^62 in magnitude, and wraps around (a huge error) above. So:

- a value that is ever truncated must satisfy |x| < 2^(62 - f)  (:func:`value_limit`);
- a product (or a sum of products: a matmul, a dot product) of two such values carries 2f fractional
  bits before its truncation: |x * y| < 2^(62 - 2f)  (:func:`product_limit`; 2^30 at f = 16, 2^22 at
  f = 20);
- so a value above 2^(31 - f) already breaks a product with a value of its own size
  (:func:`operand_limit`): accepted, with a warning naming the bound.

Values outside :func:`value_limit` (and NaN, infinity) are refused with :class:`FixedPointRangeError`
before anything is shared: a wrapped-around encoding would be silently wrong.
"""
from __future__ import annotations

import logging

import numpy as np

TRUNCATION_BITS = 62  # TFE's heuristic truncation: exact while |ring value| < 2^62

_log = logging.getLogger("tfe_accel")


class FixedPointRangeError(ValueError):
    """A value the fixed-point format cannot hold (it would wrap around the ring)."""


def value_limit(fractional_bits: int) -> float:
    """Largest magnitude (exclusive) of a value that is ever truncated: 2^(62 - f)."""
    return 2.0 ** (TRUNCATION_BITS - fractional_bits)


def product_limit(fractional_bits: int) -> float:
    """Largest magnitude (exclusive) of a product or sum of products before its truncation: 2^(62 - 2f)."""
    return 2.0 ** (TRUNCATION_BITS - 2 * fractional_bits)


def operand_limit(fractional_bits: int) -> float:
    """Above this magnitude, 2^(31 - f), a product of a value with one of its own size overflows."""
    return 2.0 ** ((TRUNCATION_BITS - 2 * fractional_bits) / 2.0)


def check_encodable(values, fractional_bits: int, what: str = "value", warn: bool = True) -> float:
    """Refuse (FixedPointRangeError) NaN, infinity and |x| >= 2^(62 - f); with ``warn``, log a warning
    when |x| > 2^(31 - f) (a product with a value of the same size would overflow). Returns max |x|."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return 0.0
    top = float(np.max(np.abs(x)))  # NaN propagates
    if not np.isfinite(top):
        bad = "NaN" if np.isnan(x).any() else "infinite"
        raise FixedPointRangeError(f"{what}: {bad} values cannot be encoded in fixed point")
    limit = value_limit(fractional_bits)
    if top >= limit:
        raise FixedPointRangeError(
            f"{what}: |value| {top:.6g} does not fit the fixed-point ring: with {fractional_bits} fractional "
            f"bits every value must satisfy |x| < 2^{TRUNCATION_BITS - fractional_bits} = {limit:.6g} (it "
            "would wrap around); rescale the values, or use fewer fractional bits")
    if warn and top > operand_limit(fractional_bits):
        _log.warning(
            "%s: |value| up to %.6g: a product with a value of the same size exceeds the truncation's "
            "bound |x * y| < 2^%d (%d fractional bits) and would wrap around; keep products below it",
            what, top, TRUNCATION_BITS - 2 * fractional_bits, fractional_bits)
    return top


def assert_encodable(tensor, fractional_bits: int, what: str = "input"):
    """``tensor`` with a graph-side check that every value is finite and |x| < 2^(62 - f); runs where
    the tensor is (an owner's device for a private input: the values never leave it). The error names
    the input and the limit, not the values."""
    import tensorflow as tf

    limit = value_limit(fractional_bits)
    x = tf.convert_to_tensor(tensor)
    if not x.dtype.is_floating:
        xf = tf.cast(x, tf.float64)
    else:
        xf = x
    ok = tf.reduce_all(tf.abs(xf) < tf.constant(limit, xf.dtype))  # False for NaN too
    check = tf.debugging.Assert(ok, [f"{what}: a value is NaN, infinite or outside the fixed-point range "
                                     f"|x| < 2^{TRUNCATION_BITS - fractional_bits} ({fractional_bits} "
                                     "fractional bits); it would wrap around the ring"])
    with tf.control_dependencies([check]):
        return tf.identity(x)


__all__ = ["FixedPointRangeError", "TRUNCATION_BITS", "value_limit", "product_limit", "operand_limit",
           "check_encodable", "assert_encodable"]
