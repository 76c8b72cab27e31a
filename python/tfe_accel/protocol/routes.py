"""Fused replacements of stock ABY3 dispatch targets (``_<op>_<dispatch ids>``).

Each route computes exactly what the stock function computes, party by party, with one fused op
per party placed on that party's device (inputs: that party's shares, its two PRG keys and the
nonces; outputs: its result shares and the messages it sends). Messages between parties stay
explicit ``identity`` edges on the receiver, as in stock ABY3. A route returns ``Fallback(reason)``
for cases it does not cover; the protocol then runs the stock function.
"""
from __future__ import annotations

import tensorflow as tf
from tf_encrypted.protocol.aby3.aby3 import ABY3PrivateTensor, ABY3PublicTensor, ShareType

from .. import ops

HELPERS = {"_untransposed", "_party_zero_args", "_reshare", "_wrap", "_is_int64", "_public_private_matmul",
           "_truncation_guard"}


class Fallback:
    def __init__(self, reason: str):
        self.reason = reason


def _is_int64(prot, *tensors) -> bool:
    return all(t.backing_dtype.native_type == tf.int64 for t in tensors)


def _party_zero_args(prot, i):
    """Keys and nonces of party i's share of `_gen_zero_sharing` at the current nonces."""
    keys, nonces = prot.pairwise_keys(), prot.pairwise_nonces()
    return keys[i][0], int(nonces[(i + 2) % 3]), keys[i][1], int(nonces[i])


def _untransposed(*tensors):
    """If every tensor is `tf.transpose` of a matrix (last two dims swapped) in the graph being
    traced, return their inputs and True, so the fused matmul reads them with a transpose flag
    instead of materialising the transposes (what Grappler does for tf.matmul, which it cannot
    do for our ops). Otherwise the tensors unchanged and False. Eager tensors are unchanged."""
    srcs = []
    for t in tensors:
        op = getattr(t, "op", None)
        if op is None or op.type != "Transpose" or t.shape.rank is None or t.shape.rank < 2:
            return list(tensors), False
        perm = tf.get_static_value(op.inputs[1])
        rank = t.shape.rank
        want = list(range(rank - 2)) + [rank - 1, rank - 2]
        if perm is None or list(perm) != want:
            return list(tensors), False
        srcs.append(op.inputs[0])
    return srcs, True


def _wrap(factory, value):
    return factory.tensor(value, encode=False)


def _reshare(prot, z_values, factory):
    """Stock ABY3's resharing: party i keeps z_i and receives z_{i+1} from P_{i+1}."""
    z = [[None, None], [None, None], [None, None]]
    for i in range(3):
        with tf.device(prot.servers[i].device_name):
            z[i][0] = _wrap(factory, z_values[i])
            z[i][1] = _wrap(factory, tf.identity(z_values[(i + 1) % 3]))
    return z


# ------------------------------------------------------------------------------ products


def _mul_private_private(prot, x, y):
    if not (x.is_arithmetic() and y.is_arithmetic()):
        return Fallback("boolean shares")
    if x.shape != y.shape or not x.shape.is_fully_defined():
        return Fallback("broadcasting or unknown shapes")
    if not _is_int64(prot, x, y):
        return Fallback("non-int64 backing")
    xs, ys = x.unwrapped, y.unwrapped
    factory = xs[0][0].factory
    with tf.name_scope("mul"):
        z_vals = []
        for i in range(3):
            k0, n0, k1, n1 = _party_zero_args(prot, i)
            with tf.device(prot.servers[i].device_name):
                z_vals.append(ops._ops.tfe_accel_rss_mul(
                    xs[i][0].value, xs[i][1].value, ys[i][0].value, ys[i][1].value,
                    k0, tf.constant(n0, tf.int64), k1, tf.constant(n1, tf.int64)))
        prot._update_pairwise_nonces()  # the zero sharing consumed one nonce, as in stock
        z = ABY3PrivateTensor(prot, _reshare(prot, z_vals, factory),
                              x.is_scaled or y.is_scaled, x.share_type)
        return prot.truncate(z) if x.is_scaled and y.is_scaled else z


def _matmul_private_private(prot, x, y):
    if not (x.is_arithmetic() and y.is_arithmetic()):
        return Fallback("boolean shares")
    if not (x.shape.is_fully_defined() and y.shape.is_fully_defined()):
        return Fallback("unknown shapes")
    if not _is_int64(prot, x, y):
        return Fallback("non-int64 backing")
    xs, ys = x.unwrapped, y.unwrapped
    factory = xs[0][0].factory
    with tf.name_scope("matmul"):
        z_vals = []
        for i in range(3):
            k0, n0, k1, n1 = _party_zero_args(prot, i)
            (xa, xb), ta = _untransposed(xs[i][0].value, xs[i][1].value)
            (ya, yb), tb = _untransposed(ys[i][0].value, ys[i][1].value)
            with tf.device(prot.servers[i].device_name):
                z_vals.append(ops.rss_matmul(xa, xb, ya, yb, k0, k1, n0, n1,
                                             transpose_a=ta, transpose_b=tb))
        prot._update_pairwise_nonces()
        z = ABY3PrivateTensor(prot, _reshare(prot, z_vals, factory),
                              x.is_scaled or y.is_scaled, x.share_type)
        return prot.truncate(z) if x.is_scaled and y.is_scaled else z


def _public_private_matmul(prot, pub, priv, public_left):
    if not _is_int64(prot, pub, priv):
        return Fallback("non-int64 backing")
    shares = priv.unwrapped
    pub_on = pub.unwrapped
    factory = shares[0][0].factory
    z = [[None, None], [None, None], [None, None]]
    with tf.name_scope("matmul"):
        for i in range(3):
            (p,), tp = _untransposed(pub_on[i].value)
            (s0, s1), ts = _untransposed(shares[i][0].value, shares[i][1].value)
            with tf.device(prot.servers[i].device_name):
                if public_left:
                    a, b = ops.public_private_matmul(p, s0, s1, transpose_a=tp, transpose_b=ts)
                else:
                    a, b = ops.private_public_matmul(s0, s1, p, transpose_a=ts, transpose_b=tp)
                z[i][0], z[i][1] = _wrap(factory, a), _wrap(factory, b)
        z = ABY3PrivateTensor(prot, z, pub.is_scaled or priv.is_scaled, priv.share_type)
        return prot.truncate(z) if pub.is_scaled and priv.is_scaled else z


def _matmul_public_private(prot, x, y):
    return _public_private_matmul(prot, x, y, public_left=True)


def _matmul_private_public(prot, x, y):
    return _public_private_matmul(prot, y, x, public_left=False)


# ------------------------------------------------------------------------------ truncation


def _truncation_guard(prot, x):
    if not x.is_arithmetic():
        return Fallback("boolean shares")
    if not x.shape.is_fully_defined():
        return Fallback("unknown shape")
    if not _is_int64(prot, x):
        return Fallback("non-int64 backing")
    return None


def _truncate_local_private(prot, x, amount):
    """ABY3 non-interactive truncation (stock `_truncate_local_private`), one fused op per party."""
    guard = _truncation_guard(prot, x)
    if guard is not None:
        return guard
    amount = prot.fixedpoint_config.precision_fractional if amount is None else amount
    s = x.unwrapped
    factory = s[0][0].factory
    keys, nonces = prot.pairwise_keys(), prot.pairwise_nonces()
    n12 = int(nonces[1])
    with tf.name_scope("truncate-local"):
        with tf.device(prot.servers[0].device_name):
            y0 = ops.truncate_local_p0(s[0][0].value, amount)
        with tf.device(prot.servers[1].device_name):
            y1, r1 = ops.truncate_local_p1(s[1][0].value, s[1][1].value, keys[1][1], n12, amount)
        with tf.device(prot.servers[2].device_name):
            r2 = ops.truncate_local_p2(tf.shape(s[2][0].value, out_type=tf.int64), keys[2][0], n12)
        prot._update_pairwise_nonces()
        y = [[None, None], [None, None], [None, None]]
        with tf.device(prot.servers[0].device_name):
            y[0] = [_wrap(factory, y0), _wrap(factory, tf.identity(y1))]  # P1 sends y1
        with tf.device(prot.servers[1].device_name):
            y[1] = [_wrap(factory, y1), _wrap(factory, r1)]
        with tf.device(prot.servers[2].device_name):
            y[2] = [_wrap(factory, r2), _wrap(factory, tf.identity(y0))]  # P0 sends y0
    return ABY3PrivateTensor(prot, y, x.is_scaled, x.share_type)


def _truncate_heuristic_private(prot, x, amount):
    """TFE's default truncation (lift, MSB-0 protocol with dealer P2, unlift) as fused steps.

    Same messages as stock except two that stock sends needlessly: P2 already holds both of its
    output shares (y2 and y0 come from its PRG keys), so nothing is sent to P2 at the end.
    """
    guard = _truncation_guard(prot, x)
    if guard is not None:
        return guard
    amount = prot.fixedpoint_config.precision_fractional if amount is None else amount
    lift, unlift = ops.heuristic_lift(), ops.heuristic_unlift(amount)
    s = x.unwrapped
    factory = s[0][0].factory
    keys, nonces = prot.pairwise_keys(), prot.pairwise_nonces()
    n02, n12 = int(nonces[2]), int(nonces[1])
    with tf.name_scope("truncate-heuristic"):
        with tf.device(prot.servers[2].device_name):  # dealer
            shape = tf.shape(s[2][0].value, out_type=tf.int64)
            r1, s1, rmsb1, z20, z21 = ops.trunc_msb0_dealer(
                shape, keys[2][1], n02, keys[2][0], n12, ops.secure_seed(), amount, unlift)
        with tf.device(prot.servers[0].device_name):
            c0 = ops.trunc_msb0_mask_p0(s[0][0].value, s[0][1].value, keys[0][0], n02, lift)
        with tf.device(prot.servers[1].device_name):
            r1_1, s1_1, rmsb1_1 = tf.identity(r1), tf.identity(s1), tf.identity(rmsb1)  # from P2
            c1 = ops.trunc_msb0_mask_p1(s[1][1].value, r1_1)
        with tf.device(prot.servers[0].device_name):
            yt0, z00 = ops.trunc_msb0_unmask_p0(c0, tf.identity(c1), keys[0][0], n02, amount, unlift)
        with tf.device(prot.servers[1].device_name):
            yt1, z11 = ops.trunc_msb0_unmask_p1(tf.identity(c0), c1, s1_1, rmsb1_1, keys[1][1], n12,
                                                amount)
        prot._update_pairwise_nonces()
        with tf.device(prot.servers[0].device_name):
            z01 = ops.trunc_msb0_combine(yt0, tf.identity(yt1))
        with tf.device(prot.servers[1].device_name):
            z10 = ops.trunc_msb0_combine(tf.identity(yt0), yt1)
        y = [[_wrap(factory, z00), _wrap(factory, z01)],
             [_wrap(factory, z10), _wrap(factory, z11)],
             [_wrap(factory, z20), _wrap(factory, z21)]]
    return ABY3PrivateTensor(prot, y, x.is_scaled, ShareType.ARITHMETIC)
