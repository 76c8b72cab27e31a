"""Fused replacements of stock ABY3 dispatch targets, registered in the route table (registry.py).

Each route computes exactly what the stock function computes, party by party, with one fused op
per party placed on that party's device (inputs: that party's shares, its two PRG keys and the
nonces; outputs: its result shares and the messages it sends). Messages between parties are the
explicit graph edges written with ``recv`` (helpers.py). A route returns ``Fallback(reason)`` for
cases it does not cover; the protocol then runs the stock function.
"""
from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf
from tf_encrypted.protocol.aby3.aby3 import ABY3PrivateTensor, ShareType

from .. import ops
from .helpers import (Fallback, NonceCursor, arithmetic_guard, const, held, home, is_int64, on, recv, reshare,
                      untransposed, wrap, wrap_held)
from .registry import route

logger = logging.getLogger("tfe_accel")

__all__ = ["Fallback", "column_sum_squares", "mul_truncated", "weighted_piecewise"]

# Nonce steps (zero sharings) per step, as stock consumes them (docs/mpc_steps.md):
MSB_NONCE_STEPS = 14          # a2b set-up 1, first carry AND 1, six Kogge-Stone rounds x 2 (G and P)
PIECE_SELECT_OFFSET = 14      # piecewise: after the batched msb
PIECE_TRUNCATE_OFFSET = 15    # piecewise: the MSB-0 truncation of the scaled pieces
PIECE_MUL_AB_OFFSET = 16      # piecewise: mul_ab's four zero sharings (16 .. 19)
PIECEWISE_NONCE_STEPS = 20


# ------------------------------------------------------------------------------ products


def _rss_product(prot, x, y, op_type, party_step, scope, amount=None):
    """An RSS product step: party i's fused op ``party_step(i, x_shares_i, y_shares_i, k0, n0, k1,
    n1)`` (its local product terms and its zero share), one zero-sharing nonce consumed as in stock,
    then, when both operands are scaled (or an ``amount`` is given), TFE's heuristic truncation
    merged with the resharing (`_truncated_product`), else stock's resharing (and truncation)."""
    xs, ys = x.unwrapped, y.unwrapped
    factory = xs[0][0].factory
    cur = NonceCursor(prot)
    with tf.name_scope(scope):
        z_vals = []
        for i in range(3):
            with on(prot, i, op_type):
                z_vals.append(party_step(i, (xs[i][0].value, xs[i][1].value),
                                         (ys[i][0].value, ys[i][1].value), *cur.zero_share_ints(i)))
        cur.consume(1)
        if (amount is not None or (x.is_scaled and y.is_scaled)) and prot.truncation_method == "heuristic":
            return _truncated_product(prot, z_vals, factory, x.share_type, amount)
        z = ABY3PrivateTensor(prot, reshare(prot, z_vals, factory), x.is_scaled or y.is_scaled, x.share_type)
        return prot.truncate(z) if x.is_scaled and y.is_scaled else z


def _truncated_product(prot, z_vals, factory, share_type, amount=None):
    """TFE's heuristic (MSB-0) truncation of a product whose 3-out-of-3 shares z_i (local terms plus
    the zero share) are not reshared first: the masking round carries them. P0 sends c0 = z0 + lift
    + r0 to P1, P1 sends c1' = z1 + r1' to P0 (r1' from the P1-P2 key, so P1 waits for no dealer
    message), and P2 sends z2 + (r1 - r1') to both; P0 and P1 then hold c = z + lift + r, the very
    value stock's masking gives after the resharing, and unmask as stock does. Two rounds instead of
    three, and the first product of a step no longer waits for the dealer's r1 (one round and one
    message less), the same nonces and (for the same randomness) the same output shares. What P2
    sends is uniform to P0 (z2's zero share holds a stream of the P1-P2 key, and r is fresh) and to
    P1 (r is fresh); P1 now learns only z2 + r1, where it used to receive z2 and r1."""
    amount = prot.fixedpoint_config.precision_fractional if amount is None else amount
    cur = NonceCursor(prot)

    def mask_p0(key, nonce, lift):
        with on(prot, 0, "MpcTruncMsb0MaskP0"):
            return ops.trunc_msb0_mask_p0(z_vals[0], tf.zeros_like(z_vals[0]), key, nonce, lift)

    def mask_p1(r1):
        with on(prot, 1, "MpcTruncMsb0MaskP1"):
            return ops.trunc_msb0_mask_p1(z_vals[1], r1)

    with tf.name_scope("truncate-heuristic"):
        with home(prot, 2):
            shape = tf.shape(z_vals[2], out_type=tf.int64)
        with home(prot, 1):
            shape1 = tf.shape(z_vals[1], out_type=tf.int64)
        y = wrap_held(prot, factory, _msb0_truncate(prot, cur, shape, mask_p0, mask_p1, amount,
                                                    third=z_vals[2], p1_shape=shape1))
    cur.consume(1)
    return ABY3PrivateTensor(prot, y, True, share_type)


def _rss_mul(prot, x, y, scope, amount=None):
    guard = arithmetic_guard(x, y)
    if guard is not None:
        return guard
    if x.shape != y.shape:
        return Fallback("broadcasting")

    def step(i, xi, yi, k0, n0, k1, n1):
        return ops.rss_mul(*xi, *yi, k0, k1, n0, n1)

    return _rss_product(prot, x, y, "TfeAccelRssMul", step, scope, amount=amount)


@route("mul", "private", "private")
def _mul_private_private(prot, x, y):
    return _rss_mul(prot, x, y, "mul")


def mul_truncated(prot, x, y, amount):
    """x * y (same shapes) truncated once by ``amount`` bits, the truncation merged with the
    resharing (2 rounds). Not a stock dispatch target (`tfe_accel.models.mpc.mul_shifted`)."""
    if prot.truncation_method != "heuristic":
        return Fallback("truncation method is not 'heuristic'")
    return _rss_mul(prot, x, y, "mul-truncated", amount=amount)


def column_sum_squares(prot, x, m):
    """sum_r (x[r, c] - m[c])^2 for a private matrix x [rows, cols] and private centres m [1, cols]:
    one TfeAccelRssColumnSquares per party (its local product terms summed over the rows, with its
    zero share), one resharing of `cols` values, then TFE's truncation. Not a stock dispatch target
    (the trainer's standardisation calls it; see tfe_accel.models.mpc.column_sum_squares)."""
    guard = arithmetic_guard(x, m, need_shape=False)
    if guard is not None:
        return guard
    if x.shape.rank != 2 or m.shape.rank != 2 or not (x.shape.is_fully_defined() and m.shape.is_fully_defined()):
        return Fallback("x must be a matrix and m a [1, cols] row of known shapes")
    if m.shape[0] != 1 or m.shape[1] != x.shape[1]:
        return Fallback(f"centres of shape {m.shape} for a matrix of shape {x.shape}")

    def step(i, xi, mi, k0, n0, k1, n1):
        return ops.rss_column_squares(*xi, *mi, k0, k1, n0, n1)

    return _rss_product(prot, x, m, "TfeAccelRssColumnSquares", step, "column-sum-squares")


@route("matmul", "private", "private")
def _matmul_private_private(prot, x, y):
    guard = arithmetic_guard(x, y)
    if guard is not None:
        return guard

    def step(i, xi, yi, k0, n0, k1, n1):
        (xa, xb), ta = untransposed(*xi)
        (ya, yb), tb = untransposed(*yi)
        return ops.rss_matmul(xa, xb, ya, yb, k0, k1, n0, n1, transpose_a=ta, transpose_b=tb)

    return _rss_product(prot, x, y, "TfeAccelRssMatmul", step, "matmul")


def _public_private_matmul(prot, pub, priv, public_left):
    if not is_int64(pub, priv):
        return Fallback("non-int64 backing")
    shares = priv.unwrapped
    pub_on = pub.unwrapped
    factory = shares[0][0].factory
    z = [[None, None], [None, None], [None, None]]
    with tf.name_scope("matmul"):
        for i in range(3):
            (p,), tp = untransposed(pub_on[i].value)
            (s0, s1), ts = untransposed(shares[i][0].value, shares[i][1].value)
            with on(prot, i, "TfeAccelPublicPrivateMatmul"):
                if public_left:
                    a, b = ops.public_private_matmul(p, s0, s1, transpose_a=tp, transpose_b=ts)
                else:
                    a, b = ops.private_public_matmul(s0, s1, p, transpose_a=ts, transpose_b=tp)
                z[i][0], z[i][1] = wrap(factory, held(prot, i, a)), wrap(factory, held(prot, i, b))
        z = ABY3PrivateTensor(prot, z, pub.is_scaled or priv.is_scaled, priv.share_type)
        return prot.truncate(z) if pub.is_scaled and priv.is_scaled else z


@route("matmul", "public", "private")
def _matmul_public_private(prot, x, y):
    return _public_private_matmul(prot, x, y, public_left=True)


@route("matmul", "private", "public")
def _matmul_private_public(prot, x, y):
    return _public_private_matmul(prot, y, x, public_left=False)


# ------------------------------------------------------------------------------ truncation


@route("truncate_local", "private")
def _truncate_local_private(prot, x, amount):
    """ABY3 non-interactive truncation (stock `_truncate_local_private`), one fused op per party."""
    guard = arithmetic_guard(x)
    if guard is not None:
        return guard
    amount = prot.fixedpoint_config.precision_fractional if amount is None else amount
    s = x.unwrapped
    factory = s[0][0].factory
    cur = NonceCursor(prot)
    k11, n12 = cur.pair(1, 1, nonce_of=1)
    k20, _ = cur.pair(2, 0, nonce_of=1)
    with tf.name_scope("truncate-local"):
        with on(prot, 0, "MpcTruncateLocalP0"):
            y0 = ops.truncate_local_p0(s[0][0].value, amount)
        with on(prot, 1, "MpcTruncateLocalP1"):
            y1, r1 = ops.truncate_local_p1(s[1][0].value, s[1][1].value, k11, n12, amount)
        with home(prot, 2):
            shape2 = tf.shape(s[2][0].value, out_type=tf.int64)
        with on(prot, 2, "MpcTruncateLocalP2"):
            r2 = ops.truncate_local_p2(shape2, k20, n12)
        cur.consume(1)
        y = [[wrap(factory, held(prot, 0, y0)), wrap(factory, recv(prot, 0, y1, hold=True))],
             [wrap(factory, held(prot, 1, y1)), wrap(factory, held(prot, 1, r1))],
             [wrap(factory, held(prot, 2, r2)), wrap(factory, recv(prot, 2, y0, hold=True))]]
    return ABY3PrivateTensor(prot, y, x.is_scaled, x.share_type)


def _msb0_truncate(prot, cur, shape, mask_p0, mask_p1, amount, offset=0, third=None, p1_shape=None):
    """TFE's MSB-0 truncation (``_truncate_msb0_secureq8_private`` with dealer P2) of values whose
    masked shares the callers' steps compute: ``mask_p0(key, nonce, lift) -> c0`` on P0 and
    ``mask_p1(r1) -> c1`` on P1 (r1 received from the dealer). `shape` (on P2) is the shape of the
    values. Uses the pairwise streams at nonce `offset` (one zero sharing). Returns per party its
    two output shares [(z00, z01), (z10, z11), (z20, z21)] as fused-op outputs.

    Same messages as stock except two that stock sends needlessly: P2 already holds both of its
    output shares (y2 and y0 come from its PRG keys), so nothing is sent to P2 at the end.
    ``third``: P2's share of the masked sum when the values are not reshared (`_truncated_product`):
    sent to P0 and P1 with the masked shares and added to them. With it, P1 does not wait for the
    dealer's r1: it masks with r1' = U(P1-P2 key, the truncation's nonce), words n .. 2n - 1 of
    the stream whose first n words are y2 (``p1_shape``: the values' shape on P1), and P2 sends
    z2 + (r1 - r1') instead of z2, so P0 and P1 still add up c = z + lift + r (stock's value, the
    same output shares) and the step starts without the dealer's message: one round and one
    message less."""
    lift, unlift = ops.heuristic_lift(), ops.heuristic_unlift(amount)
    k20, n02 = cur.pair(2, 1, nonce_of=2, offset=offset)   # shared with P0
    k21, n12 = cur.pair(2, 0, nonce_of=1, offset=offset)   # shared with P1
    k00, _ = cur.pair(0, 0, nonce_of=2, offset=offset)
    k11, _ = cur.pair(1, 1, nonce_of=1, offset=offset)
    with home(prot, 2):
        r_seed = ops.secure_seed()
    with on(prot, 2, "MpcTruncMsb0Dealer"):
        r1, s1, m1, z20, z21 = ops.trunc_msb0_dealer(shape, k20, n02, k21, n12, r_seed, amount, unlift)
    c0 = mask_p0(k00, n02, lift)
    s1_1, m1_1 = recv(prot, 1, s1), recv(prot, 1, m1)
    if third is not None:  # r1' from the P1-P2 key on both sides; P2 folds r1 - r1' into z2
        with on(prot, 1, "MpcTruncateLocalP2"):
            r1_1 = ops.truncate_local_p2(tf.concat([[2], p1_shape], 0), k11, n12)[1]
        with on(prot, 2, "MpcTruncateLocalP2"):
            r1_2 = ops.truncate_local_p2(tf.concat([[2], shape], 0), k21, n12)[1]
        with home(prot, 2):
            third = third + (r1 - r1_2)
    else:
        r1_1 = recv(prot, 1, r1)
    c1 = mask_p1(r1_1)
    c1_0, c0_1 = recv(prot, 0, c1), recv(prot, 1, c0)
    if third is not None:
        with home(prot, 0):
            c1_0 = c1_0 + recv(prot, 0, third)
        with home(prot, 1):
            c0_1 = c0_1 + recv(prot, 1, third)
    with on(prot, 0, "MpcTruncMsb0UnmaskP0"):
        yt0, z00 = ops.trunc_msb0_unmask_p0(c0, c1_0, k00, n02, amount, unlift)
    with on(prot, 1, "MpcTruncMsb0UnmaskP1"):
        yt1, z11 = ops.trunc_msb0_unmask_p1(c0_1, c1, s1_1, m1_1, k11, n12, amount)
    with on(prot, 0, "MpcTruncMsb0Combine"):
        mid0 = ops.trunc_msb0_combine(yt0, recv(prot, 0, yt1))
    with on(prot, 1, "MpcTruncMsb0Combine"):
        mid1 = ops.trunc_msb0_combine(recv(prot, 1, yt0), yt1)
    return [(z00, mid0), (mid1, z11), (z20, z21)]


@route("truncate_heuristic", "private")
def _truncate_heuristic_private(prot, x, amount):
    """TFE's default truncation (lift, MSB-0 protocol with dealer P2, unlift) as fused steps."""
    guard = arithmetic_guard(x)
    if guard is not None:
        return guard
    amount = prot.fixedpoint_config.precision_fractional if amount is None else amount
    s = x.unwrapped
    factory = s[0][0].factory
    cur = NonceCursor(prot)

    def mask_p0(key, nonce, lift):
        with on(prot, 0, "MpcTruncMsb0MaskP0"):
            return ops.trunc_msb0_mask_p0(s[0][0].value, s[0][1].value, key, nonce, lift)

    def mask_p1(r1):
        with on(prot, 1, "MpcTruncMsb0MaskP1"):
            return ops.trunc_msb0_mask_p1(s[1][1].value, r1)

    with tf.name_scope("truncate-heuristic"):
        with home(prot, 2):
            shape = tf.shape(s[2][0].value, out_type=tf.int64)
        y = wrap_held(prot, factory, _msb0_truncate(prot, cur, shape, mask_p0, mask_p1, amount))
    cur.consume(1)
    return ABY3PrivateTensor(prot, y, x.is_scaled, ShareType.ARITHMETIC)


# ------------------------------------------------------------------------------ comparisons


def _msb_steps(prot, d, cur, offset=0, holder=0):
    """msb of the arithmetic sharing d (per party (d_a, d_b)), TFE's `_bit_extract_private(., 63)`:
    an a2b reshare, the first AND of the carry circuit and six Kogge-Stone rounds, one fused op per
    party and step, at nonces offset .. offset + MSB_NONCE_STEPS - 1 (the caller consumes them).
    Returns per party (msb_a, msb_b) as bool tensors.

    The a2b writes x = d0 + d1 + d2 as the sum of two boolean-shared operands: one party reshares
    the sum of its two shares, the remaining share is shared trivially by the two parties that
    hold it. ``holder=0`` is TFE's: P0 reshares d0 + d1, op2 = d2 (P1, P2). ``holder=2``: P2 reshares
    d2 + d0 and op2 = d1 (P0, P1); P0's and P1's part of the reshare is then their zero-share
    randomness only. After a truncation (MSB-0 with a dealer) d2 and d0 are P2's dealt shares,
    known before the data, so the reshare runs at the start of the step, off the critical path: the
    comparison costs one round less. Same nonces, same security (the reshared value is masked by
    P2's zero share exactly as P0's is); the boolean shares differ from TFE's."""
    dev = [s.device_name for s in prot.servers]
    setup = []
    for i in range(3):
        with on(prot, i, "MpcBitExtractSetup"):
            if holder == 0:
                setup.append(ops.bit_extract_setup(i, d[i][0], d[i][1], *cur.zero_share(i, offset)))
            elif i == 2:  # the kernel's holder role (party 0's): adds x_a + x_b to its zero share
                setup.append(ops.bit_extract_setup(0, d[2][0], d[2][1], *cur.zero_share(2, offset)))
            else:  # zero-share randomness only: no input of this party's shares (no data edge)
                zero = tf.zeros(d[i][0].shape, d[i][0].dtype)
                setup.append(ops.bit_extract_setup(1, zero, zero, *cur.zero_share(i, offset)))
    # messages: setup[1] P1 -> P0, setup[2] P2 -> P1, setup[0] P0 -> P2
    op1 = [(setup[i], recv(prot, i, setup[(i + 1) % 3])) for i in range(3)]
    outs = []
    for i in range(3):
        with on(prot, i, "MpcCarrySetupAnd"):
            zero = tf.zeros_like(d[i][0])
            if holder == 0:
                op2 = [(zero, zero), (zero, d[1][1]), (d[2][0], zero)][i]
            else:
                op2 = [(zero, d[0][1]), (d[1][0], zero), (zero, zero)][i]
            outs.append(ops.carry_setup_and(*op1[i], *op2, *cur.zero_share(i, offset + 1)))
    G = [(outs[i][0], recv(prot, i, outs[(i + 1) % 3][0])) for i in range(3)]
    P = [(outs[i][1], outs[i][2]) for i in range(3)]
    top = [(outs[i][3], outs[i][4]) for i in range(3)]
    for rnd in range(6):
        r = []
        for i in range(3):
            with on(prot, i, "MpcKoggeStoneRound"):
                r.append(ops.kogge_stone_round(*G[i], *P[i], *cur.zero_share(i, offset + 2 + 2 * rnd)))
        G, P = [], []
        for i in range(3):
            zg_in = recv(prot, i, r[(i + 1) % 3][0])
            zp_in = recv(prot, i, r[(i + 1) % 3][1])
            with on(prot, i, "MpcKoggeStoneUpdate"):
                G.append(tuple(ops.kogge_stone_update(r[i][2], r[i][3], r[i][0], zg_in)))
            P.append((r[i][1], zp_in))
    msb = []
    for i in range(3):
        with tf.device(dev[i]):
            one = const(prot, i, 1, G[i][0].dtype)
            # msb share = (G & 1) ^ top, as a bool: (G & 1) != top
            msb.append(tuple(tf.not_equal(tf.bitwise.bitwise_and(G[i][j], one), top[i][j])
                             for j in range(2)))
    return msb


def _msb_masked(prot, d, cur, offset=0):
    """msb of the arithmetic sharing d (per party (d_a, d_b)) by the masked comparison of
    cc/kernels/private_compare.h, in three rounds: P0 and P1 open c = d + r (r known to P2 only),
    send P2 their re-randomised, multiplied and rotated Z_67 vectors of the comparison of c with r,
    and P2 sends P1 its output share. The dealer's message to P1 does not depend on d: it travels
    while d is computed. Streams: the P0-P1, P0-P2 and P1-P2 keys at nonce offsets offset ..
    offset + 2 (within the MSB_NONCE_STEPS the caller consumes). Returns per party (msb_a, msb_b)
    as bool tensors, a boolean sharing as `_msb_steps` returns (other shares than TFE's)."""
    k01_0, n01 = cur.pair(0, 1, nonce_of=0, offset=offset)
    k01_1, _ = cur.pair(1, 0, nonce_of=0, offset=offset)
    k02_0, n02 = cur.pair(0, 0, nonce_of=2, offset=offset)
    k02_2, _ = cur.pair(2, 1, nonce_of=2, offset=offset)
    k12_1, n12 = cur.pair(1, 1, nonce_of=1, offset=offset)
    k12_2, _ = cur.pair(2, 0, nonce_of=1, offset=offset)
    with home(prot, 2):  # a static shape keeps the dealer free of any data edge
        static = d[2][0].shape
        shape = (tf.constant(static.as_list(), tf.int64) if static.is_fully_defined()
                 else tf.shape(d[2][0], out_type=tf.int64))
    with on(prot, 2, "MpcPcDealer"):
        digits1, r_top = ops.pc_dealer(shape, k02_2, n02, k12_2, n12)
    with on(prot, 0, "MpcPcOpen"):
        a0 = ops.pc_open(0, d[0][0], d[0][1], k02_0, n02)
    with on(prot, 1, "MpcPcOpen"):  # P1 opens x2 alone (its x_a input is not read)
        a1 = ops.pc_open(1, d[1][1], d[1][1], k12_1, n12)
    with on(prot, 0, "MpcPcMaskP0"):
        v0, s1_0, s0_0 = ops.pc_mask_p0(a0, recv(prot, 0, a1), k02_0, n02, k01_0, n01)
    with on(prot, 1, "MpcPcMaskP1"):
        v1, s1_1 = ops.pc_mask_p1(a1, recv(prot, 1, a0), recv(prot, 1, digits1), k01_1, n01)
    with on(prot, 2, "MpcPcResolve"):
        s2, s0_2 = ops.pc_resolve(recv(prot, 2, v0), recv(prot, 2, v1), r_top, k02_2, n02)
    return [(s0_0, s1_0), (s1_1, recv(prot, 1, s2)), (s2, s0_2)]


def _masked(prot, d) -> bool:
    """Whether the msb of d takes the masked comparison (``prot.comparison``; "auto": at most
    ``prot.masked_max_values`` values, known statically)."""
    if prot.comparison != "auto":
        return prot.comparison == "masked"
    n = d[0][0].shape.num_elements()
    masked = n is not None and n <= prot.masked_max_values
    if not masked:
        logger.debug("comparison='auto': Kogge-Stone for a comparison of %s values (masked up to "
                     "masked_max_values=%d, static shapes only)",
                     "an unknown number of" if n is None else n, prot.masked_max_values)
    return masked


def _msb(prot, d, cur, offset=0):
    """The protocol's msb: the masked comparison (`_masked`), or TFE's Kogge-Stone circuit with P2
    resharing in the a2b (its shares are known early after a truncation) except where stock's
    shares are kept or a shape is not static (a zero operand needs no data edge)."""
    if _masked(prot, d):
        return _msb_masked(prot, d, cur, offset)
    early = prot.pieces != "stock" and all(t.shape.is_fully_defined() for t in d[0] + d[1])
    return _msb_steps(prot, d, cur, offset, holder=2 if early else 0)


@route("msb", "private")
def _msb_private(prot, x):
    guard = arithmetic_guard(x)
    if guard is not None:
        return guard
    s = x.unwrapped
    cur = NonceCursor(prot)
    d = [(s[i][0].value, s[i][1].value) for i in range(3)]
    with tf.name_scope("msb"):
        if _masked(prot, d):
            msb = _msb_masked(prot, d, cur)
            msb[1] = (msb[1][0], recv(prot, 1, msb[1][1], hold=True))  # P1 keeps P2's s2 as its share
        else:  # TFE's reshare holder (P0), TFE's shares
            msb = _msb_steps(prot, d, cur)
    cur.consume(MSB_NONCE_STEPS)
    from tf_encrypted.tensor import factories

    bf = factories[tf.bool]
    shares = [[bf.tensor(msb[i][j], encode=False) for j in range(2)] for i in range(3)]
    return ABY3PrivateTensor(prot, shares, False, ShareType.BOOLEAN)


# ------------------------------------------------------------------------------ sigmoid


@route("sigmoid", "private")
def _sigmoid_private(prot, x, approx_type):
    """TFE's parallel piecewise-linear sigmoid (`_sigmoid_private` -> `polynomial_piecewise`) with
    TFE's 3- or 5-piece table: see `_piecewise_linear`."""
    if approx_type not in ops.SIGMOID_APPROX:
        return Fallback(f"approximation {approx_type!r}")
    c, coeffs = ops.SIGMOID_APPROX[approx_type]
    return _piecewise_linear(prot, x, c, coeffs, scope="sigmoid")


@route("polynomial_piecewise", "private")
def _polynomial_piecewise_private(prot, x, c, coeffs):
    """TFE's `polynomial_piecewise` with linear (or constant) pieces: see `_piecewise_linear`."""
    if len(c) + 1 != len(coeffs):
        return Fallback(f"{len(c)} pivots for {len(coeffs)} pieces")
    if any(len(cf) > 2 for cf in coeffs):
        return Fallback("pieces of degree > 1")
    return _piecewise_linear(prot, x, c, coeffs, scope="polynomial_piecewise")


def weighted_piecewise(prot, x, w, c, coeffs):
    """w * f(x) for the piecewise-linear f of `polynomial_piecewise` and a private w of x's shape, in
    the rounds of f alone: x * w is computed while the comparison runs, the weighted pieces
    c0_k w + c1_k (x w) are truncated once, and the telescoped sum multiplies them with the
    comparison bits (see `_piecewise_linear`). Needs ``prot.pieces == "telescoped"``."""
    _, _, c1 = ops.piecewise_constants(c, coeffs, scaling_factor=prot.fixedpoint_config.scaling_factor)
    if not _telescopes(prot, c1):
        return Fallback("pieces='stock' or slopes differing by more than 1")
    if not (w.is_arithmetic() and w.is_scaled) or w.shape.as_list() != x.shape.as_list():
        return Fallback("weight not a scaled arithmetic tensor of x's shape")
    xw = prot.mul(x, w)  # before the cursor below: this product takes its own nonces
    return _piecewise_linear(prot, x, c, coeffs, scope="weighted_piecewise", weight=(w, xw))


def _piecewise_linear(prot, x, c, coeffs, scope, weight=None):
    """TFE's parallel piecewise-linear evaluation (`polynomial_piecewise`, pieces k applying for
    c[k-1] < x <= c[k]): all pivots compared in one batched msb, the linear pieces with one fused
    truncation, `mul_ab` (two 3-party OTs) and the sum over pieces, one fused op per party and step.

    ``prot.pieces == "stock"``: TFE's piece selection, one-hot indicators b = [~msb, 1] & [1, ~msb ^ 1]
    (one AND, one round) multiplied with the K pieces; the same rounds, messages, nonces (20) and
    shares as stock. ``"telescoped"`` (default): f(x) = f_0(x) + sum_j [x > c_j] (f_{j+1} - f_j)(x),
    the msb bits [x > c_j] used as they are: no AND, one round less, K - 1 products instead of K,
    same nonce consumption; the pieces' differences are taken on the encoded coefficients, so the
    result differs from stock's by the truncation of up to K - 1 summands (a few ulps)."""
    if not x.is_arithmetic() or not x.is_scaled:
        return Fallback("boolean or unscaled input")
    guard = arithmetic_guard(x)
    if guard is not None:
        return guard
    cfg = prot.fixedpoint_config
    amount = cfg.precision_fractional
    piv, c0, c1 = ops.piecewise_constants(c, coeffs, scaling_factor=cfg.scaling_factor)
    K = len(c) + 1
    s = x.unwrapped
    factory = s[0][0].factory
    cur = NonceCursor(prot)
    sh = [(s[i][0].value, s[i][1].value) for i in range(3)]
    with tf.name_scope(scope):
        # 1. comparisons msb(c - tile(x)) for all pivots at once
        d = []
        for i in range(3):
            with on(prot, i, "MpcPivotDiff"):
                d.append(tuple(ops.pivot_diff(i, *sh[i], tf.constant(piv))))
        msb = _msb(prot, d, cur)
        telescoped = _telescopes(prot, c1)  # always, with a weight (weighted_piecewise checks)
        if telescoped:  # 2. the indicators [x > c_j] are the msb bits; pieces as differences
            b = msb
            c0, c1 = _differences(c0), _differences(c1)
        else:  # 2. piece selection b = [~msb, 1] & [1, ~msb ^ 1]; z_i goes to P_{i-1}
            z = []
            for i in range(3):
                with on(prot, i, "MpcPieceSelectAnd"):
                    z.append(ops.piece_select_and(i, *msb[i], *cur.zero_share(i, PIECE_SELECT_OFFSET)))
            b = [(z[i], recv(prot, i, z[(i + 1) % 3])) for i in range(3)]
        if weight is None:  # 3. f = c0 + trunc(c1 * tile(x)): MSB-0 truncation of the scaled products
            k1 = tf.constant(c1)

            def mask_p0(key, nonce, lift):
                with on(prot, 0, "MpcTruncMsb0MaskScaledP0"):
                    return ops.trunc_msb0_mask_scaled_p0(sh[0][0], sh[0][1], k1, key, nonce, lift)

            def mask_p1(r1):
                with on(prot, 1, "MpcTruncMsb0MaskScaledP1"):
                    return ops.trunc_msb0_mask_scaled_p1(sh[1][1], k1, r1)
        else:  # 3'. f = trunc(c0 w + c1 (x w)): the constants are weighted too
            w_sh, xw_sh = weight[0].unwrapped, weight[1].unwrapped
            col = [K] + [1] * len(x.shape)
            g = {}
            for i, j in ((0, 0), (0, 1), (1, 1)):
                with home(prot, i):
                    g[i, j] = (tf.constant(np.reshape(c1, col)) * xw_sh[i][j].value[None]
                               + tf.constant(np.reshape(c0, col)) * w_sh[i][j].value[None])
            c0 = np.zeros_like(c0)

            def mask_p0(key, nonce, lift):
                with on(prot, 0, "MpcTruncMsb0MaskP0"):
                    return ops.trunc_msb0_mask_p0(g[0, 0], g[0, 1], key, nonce, lift)

            def mask_p1(r1):
                with on(prot, 1, "MpcTruncMsb0MaskP1"):
                    return ops.trunc_msb0_mask_p1(g[1, 1], r1)

        with home(prot, 2):
            shape_k = tf.concat([[K], tf.shape(sh[2][0], out_type=tf.int64)], 0)
        f = _msb0_truncate(prot, cur, shape_k, mask_p0, mask_p1, amount, offset=PIECE_TRUNCATE_OFFSET)
        if telescoped:  # f_0 is added to the sum, the differences are multiplied with [x > c_j]
            base, f = _split_first_piece(prot, f, c0[0])
            c0 = c0[1:]
        # 4. mul_ab(f, b) and the sum over pieces
        k0 = tf.constant(c0)
        step1 = (ops.mul_ab_step1_p0, ops.mul_ab_step1_p1, ops.mul_ab_step1_p2)
        o = []
        for i in range(3):
            with on(prot, i, f"MpcMulAbStep1P{i}"):
                o.append(step1[i](*f[i], k0, *b[i], *cur.zero_share(i, PIECE_MUL_AB_OFFSET)))
        o0, o1, o2 = o
        with on(prot, 0, "MpcMulAbStep2P0"):
            y0 = ops.mul_ab_step2_p0(*b[0], recv(prot, 0, o1[0]), recv(prot, 0, o2[0]), o0[3],
                                     recv(prot, 0, o1[4]), recv(prot, 0, o2[3]))
        with on(prot, 1, "MpcMulAbStep2P1"):
            y1 = ops.mul_ab_step2_p1(*b[1], o1[0], recv(prot, 1, o0[3]), recv(prot, 1, o2[2]),
                                     recv(prot, 1, o0[1]), recv(prot, 1, o2[1]))
        with on(prot, 2, "MpcMulAbStep2P2"):
            y2 = ops.mul_ab_step2_p2(*b[2], o2[0], o2[2], recv(prot, 2, o0[2]),
                                     recv(prot, 2, o1[1]), recv(prot, 2, o1[3]),
                                     recv(prot, 2, o0[4]))
        y = [y0, y1, y2]
        if telescoped:
            y = [_add_pairs(prot, i, y[i], base[i]) for i in range(3)]
    cur.consume(PIECEWISE_NONCE_STEPS)
    y = wrap_held(prot, factory, y)
    return ABY3PrivateTensor(prot, y, x.is_scaled, ShareType.ARITHMETIC)


def _telescopes(prot, c1):
    """Whether `_piecewise_linear` telescopes the pieces with encoded slopes c1: ``prot.pieces`` is
    "telescoped" and consecutive slopes differ by at most 1. Telescoping adds f_{j+1} - f_j for every
    pivot below x, so each difference must be exact for every x (|dc1 x| <= |x|, as exact as x
    itself). Steeper pieces (e.g. the reciprocal's first guess) are garbage far outside their
    interval, which stock's one-hot selection discards: they keep it."""
    return (getattr(prot, "pieces", "stock") == "telescoped"
            and int(np.max(np.abs(_differences(c1)))) <= prot.fixedpoint_config.scaling_factor)


def _differences(v):
    """[v_0, v_1 - v_0, ..., v_{K-1} - v_{K-2}] of encoded (int64) coefficients, wrapping."""
    v = np.asarray(v, np.int64)
    with np.errstate(over="ignore"):
        return np.concatenate([v[:1], v[1:] - v[:-1]])


def _split_first_piece(prot, f, c0_first):
    """Per party: (its two shares of piece 0 = trunc(c1_0 x) + c0_0, its shares of the other rows).
    The public constant goes into share 0 (P0's first share, P2's second)."""
    base, rest = [], []
    for i in range(3):
        with tf.device(prot.servers[i].device_name):
            parts = [tf.split(f[i][j], [1, -1], axis=0) for j in range(2)]
            first = [tf.squeeze(p[0], axis=0) for p in parts]
            j = {0: 0, 2: 1}.get(i)
            if c0_first and j is not None:
                first[j] = first[j] + tf.constant(c0_first, tf.int64)
            base.append(tuple(first))
            rest.append(tuple(p[1] for p in parts))
    return base, rest


def _add_pairs(prot, i, a, b):
    with tf.device(prot.servers[i].device_name):
        return tuple(a[j] + b[j] for j in range(2))
