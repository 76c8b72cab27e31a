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

HELPERS = {"_untransposed", "_party_zero_args", "_rss_product", "_reshare", "_wrap", "_is_int64", "_public_private_matmul",
           "_truncation_guard", "_recv", "_kn", "_msb_steps", "_const", "_on", "_home", "_held", "_wrap_held",
           "_piecewise_linear"}


def _on(prot, i, op_type):
    """Device scope for party i's fused op of type `op_type`: the party's GPU when the protocol's
    placement put the party there and the op has a GPU kernel, else the party's CPU device
    (tfe_accel.placement)."""
    return tf.device(prot.fused_device(i, op_type))


def _home(prot, i):
    """Device scope of party i's own device (its CPU): messages, TF ops, host-side values."""
    return tf.device(prot.servers[i].device_name)


def _held(prot, i, t):
    """t as a share party i holds: TFE keeps every share on the party's own device, so a fused op's
    output on the party's GPU is copied to it (nothing to do when the party runs on its CPU)."""
    if not prot.placement.on_gpu(i):
        return t
    with _home(prot, i):
        return tf.identity(t)


def _wrap_held(prot, factory, rows):
    """[[s_00, s_01], [s_10, s_11], [s_20, s_21]] fused-op outputs -> party-held factory tensors."""
    return [[_wrap(factory, _held(prot, i, t)) for t in row] for i, row in enumerate(rows)]


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
            z[i][0] = _wrap(factory, _held(prot, i, z_values[i]))
            z[i][1] = _wrap(factory, tf.identity(z_values[(i + 1) % 3]))
    return z


# ------------------------------------------------------------------------------ products


def _rss_product(prot, x, y, op_type, party_step, scope):
    """An RSS product step: party i's fused op ``party_step(i, x_shares_i, y_shares_i, k0, n0, k1,
    n1)`` (its local product terms and its zero share), one zero-sharing nonce consumed as in stock,
    stock's resharing, then TFE's truncation when both operands are scaled."""
    xs, ys = x.unwrapped, y.unwrapped
    factory = xs[0][0].factory
    with tf.name_scope(scope):
        z_vals = []
        for i in range(3):
            k0, n0, k1, n1 = _party_zero_args(prot, i)
            with _on(prot, i, op_type):
                z_vals.append(party_step((xs[i][0].value, xs[i][1].value), (ys[i][0].value, ys[i][1].value),
                                         k0, n0, k1, n1))
        prot._update_pairwise_nonces()  # the zero sharing consumed one nonce, as in stock
        z = ABY3PrivateTensor(prot, _reshare(prot, z_vals, factory),
                              x.is_scaled or y.is_scaled, x.share_type)
        return prot.truncate(z) if x.is_scaled and y.is_scaled else z


def _mul_private_private(prot, x, y):
    if not (x.is_arithmetic() and y.is_arithmetic()):
        return Fallback("boolean shares")
    if x.shape != y.shape or not x.shape.is_fully_defined():
        return Fallback("broadcasting or unknown shapes")
    if not _is_int64(prot, x, y):
        return Fallback("non-int64 backing")

    def step(xi, yi, k0, n0, k1, n1):
        return ops._ops.tfe_accel_rss_mul(*xi, *yi, k0, tf.constant(n0, tf.int64), k1, tf.constant(n1, tf.int64))

    return _rss_product(prot, x, y, "TfeAccelRssMul", step, "mul")


def column_sum_squares(prot, x, m):
    """sum_r (x[r, c] - m[c])^2 for a private matrix x [rows, cols] and private centres m [1, cols]:
    one TfeAccelRssColumnSquares per party (its local product terms summed over the rows, with its
    zero share), one resharing of `cols` values, then TFE's truncation. Not a stock dispatch target
    (the trainer's standardisation calls it; see tfe_accel.models.mpc.column_sum_squares)."""
    if not (x.is_arithmetic() and m.is_arithmetic()):
        return Fallback("boolean shares")
    if x.shape.rank != 2 or m.shape.rank != 2 or not (x.shape.is_fully_defined() and m.shape.is_fully_defined()):
        return Fallback("x must be a matrix and m a [1, cols] row of known shapes")
    if m.shape[0] != 1 or m.shape[1] != x.shape[1]:
        return Fallback(f"centres of shape {m.shape} for a matrix of shape {x.shape}")
    if not _is_int64(prot, x, m):
        return Fallback("non-int64 backing")

    def step(xi, mi, k0, n0, k1, n1):
        return ops.rss_column_squares(*xi, *mi, k0, k1, n0, n1)

    return _rss_product(prot, x, m, "TfeAccelRssColumnSquares", step, "column-sum-squares")


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
            with _on(prot, i, "TfeAccelRssMatmul"):
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
            with _on(prot, i, "TfeAccelPublicPrivateMatmul"):
                if public_left:
                    a, b = ops.public_private_matmul(p, s0, s1, transpose_a=tp, transpose_b=ts)
                else:
                    a, b = ops.private_public_matmul(s0, s1, p, transpose_a=ts, transpose_b=tp)
                z[i][0], z[i][1] = _wrap(factory, _held(prot, i, a)), _wrap(factory, _held(prot, i, b))
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
        with _on(prot, 0, "MpcTruncateLocalP0"):
            y0 = ops.truncate_local_p0(s[0][0].value, amount)
        with _on(prot, 1, "MpcTruncateLocalP1"):
            y1, r1 = ops.truncate_local_p1(s[1][0].value, s[1][1].value, keys[1][1], n12, amount)
        with _home(prot, 2):
            shape2 = tf.shape(s[2][0].value, out_type=tf.int64)
        with _on(prot, 2, "MpcTruncateLocalP2"):
            r2 = ops.truncate_local_p2(shape2, keys[2][0], n12)
        prot._update_pairwise_nonces()
        y = [[None, None], [None, None], [None, None]]
        with tf.device(prot.servers[0].device_name):
            y[0] = [_wrap(factory, _held(prot, 0, y0)), _wrap(factory, tf.identity(y1))]  # P1 sends y1
        with tf.device(prot.servers[1].device_name):
            y[1] = [_wrap(factory, _held(prot, 1, y1)), _wrap(factory, _held(prot, 1, r1))]
        with tf.device(prot.servers[2].device_name):
            y[2] = [_wrap(factory, _held(prot, 2, r2)), _wrap(factory, tf.identity(y0))]  # P0 sends y0
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
        with _home(prot, 2):  # dealer
            shape = tf.shape(s[2][0].value, out_type=tf.int64)
            r_seed = ops.secure_seed()
        with _on(prot, 2, "MpcTruncMsb0Dealer"):
            r1, s1, rmsb1, z20, z21 = ops.trunc_msb0_dealer(
                shape, keys[2][1], n02, keys[2][0], n12, r_seed, amount, unlift)
        with _on(prot, 0, "MpcTruncMsb0MaskP0"):
            c0 = ops.trunc_msb0_mask_p0(s[0][0].value, s[0][1].value, keys[0][0], n02, lift)
        with _home(prot, 1):
            r1_1, s1_1, rmsb1_1 = tf.identity(r1), tf.identity(s1), tf.identity(rmsb1)  # from P2
        with _on(prot, 1, "MpcTruncMsb0MaskP1"):
            c1 = ops.trunc_msb0_mask_p1(s[1][1].value, r1_1)
        with _home(prot, 0):
            c1_0 = tf.identity(c1)  # from P1
        with _on(prot, 0, "MpcTruncMsb0UnmaskP0"):
            yt0, z00 = ops.trunc_msb0_unmask_p0(c0, c1_0, keys[0][0], n02, amount, unlift)
        with _home(prot, 1):
            c0_1 = tf.identity(c0)  # from P0
        with _on(prot, 1, "MpcTruncMsb0UnmaskP1"):
            yt1, z11 = ops.trunc_msb0_unmask_p1(c0_1, c1, s1_1, rmsb1_1, keys[1][1], n12, amount)
        prot._update_pairwise_nonces()
        with _home(prot, 0):
            yt1_0 = tf.identity(yt1)  # from P1
        with _on(prot, 0, "MpcTruncMsb0Combine"):
            z01 = ops.trunc_msb0_combine(yt0, yt1_0)
        with _home(prot, 1):
            yt0_1 = tf.identity(yt0)  # from P0
        with _on(prot, 1, "MpcTruncMsb0Combine"):
            z10 = ops.trunc_msb0_combine(yt0_1, yt1)
        y = _wrap_held(prot, factory, [[z00, z01], [z10, z11], [z20, z21]])
    return ABY3PrivateTensor(prot, y, x.is_scaled, ShareType.ARITHMETIC)


# ------------------------------------------------------------------------------ comparisons


def _recv(prot, i, t):
    """Party i receives tensor t from another party: the graph edge from the sender's fused op to
    the receiver's fused op is the message (TF inserts the transfer between the two devices; the
    accounting counts such edges). No extra Identity node is needed for that."""
    del prot, i
    return t


def _const(prot, i, value, dtype=tf.int64):
    """A constant on party i's device, created once per traced graph (nonces repeat a lot)."""
    graph = tf.compat.v1.get_default_graph()
    cache = prot.__dict__.setdefault("_route_consts", {})
    key = (id(graph), i, int(value), dtype)
    hit = cache.get(key)
    if hit is None or hit[0] is not graph:
        with tf.device(prot.servers[i].device_name):
            hit = (graph, tf.constant(value, dtype))
        cache[key] = hit
    return hit[1]


def _kn(prot, keys, nonces, i, off):
    """Party i's zero-sharing keys and nonces, `off` nonce steps ahead (docs/mpc_steps.md)."""
    return (keys[i][0], _const(prot, i, int(nonces[(i + 2) % 3]) + off),
            keys[i][1], _const(prot, i, int(nonces[i]) + off))


def _msb_steps(prot, d, keys, nonces):
    """msb of the arithmetic sharing d (per party (d_a, d_b)), TFE's `_bit_extract_private(., 63)`:
    an a2b reshare, the first AND of the carry circuit and six Kogge-Stone rounds, one fused op per
    party and step. Consumes 14 nonce steps. Returns per party (msb_a, msb_b) as bool tensors."""
    dev = [s.device_name for s in prot.servers]
    setup = []
    for i in range(3):
        with _on(prot, i, "MpcBitExtractSetup"):
            setup.append(ops.bit_extract_setup(i, d[i][0], d[i][1], *_kn(prot, keys, nonces, i, 0)))
    # messages: setup[1] P1 -> P0, setup[2] P2 -> P1, setup[0] P0 -> P2
    op1 = [(setup[i], _recv(prot, i, setup[(i + 1) % 3])) for i in range(3)]
    outs = []
    for i in range(3):
        with _on(prot, i, "MpcCarrySetupAnd"):
            zero = tf.zeros_like(d[i][0])
            op2 = [(zero, zero), (zero, d[1][1]), (d[2][0], zero)][i]
            outs.append(ops.carry_setup_and(*op1[i], *op2, *_kn(prot, keys, nonces, i, 1)))
    G = [(outs[i][0], _recv(prot, i, outs[(i + 1) % 3][0])) for i in range(3)]
    P = [(outs[i][1], outs[i][2]) for i in range(3)]
    top = [(outs[i][3], outs[i][4]) for i in range(3)]
    for rnd in range(6):
        r = []
        for i in range(3):
            with _on(prot, i, "MpcKoggeStoneRound"):
                r.append(ops.kogge_stone_round(*G[i], *P[i], *_kn(prot, keys, nonces, i, 2 + 2 * rnd)))
        G, P = [], []
        for i in range(3):
            zg_in = _recv(prot, i, r[(i + 1) % 3][0])
            zp_in = _recv(prot, i, r[(i + 1) % 3][1])
            with _on(prot, i, "MpcKoggeStoneUpdate"):
                G.append(tuple(ops.kogge_stone_update(r[i][2], r[i][3], r[i][0], zg_in)))
            P.append((r[i][1], zp_in))
    msb = []
    for i in range(3):
        with tf.device(dev[i]):
            one = _const(prot, i, 1, G[i][0].dtype)
            # msb share = (G & 1) ^ top, as a bool: (G & 1) != top
            msb.append(tuple(tf.not_equal(tf.bitwise.bitwise_and(G[i][j], one), top[i][j])
                             for j in range(2)))
    return msb


def _msb_private(prot, x):
    if not x.is_arithmetic():
        return Fallback("boolean shares")
    if not x.shape.is_fully_defined() or not _is_int64(prot, x):
        return Fallback("unknown shape or non-int64 backing")
    s = x.unwrapped
    keys, nonces = prot.pairwise_keys(), prot.pairwise_nonces()
    d = [(s[i][0].value, s[i][1].value) for i in range(3)]
    with tf.name_scope("msb"):
        msb = _msb_steps(prot, d, keys, nonces)
    for _ in range(14):
        prot._update_pairwise_nonces()
    from tf_encrypted.tensor import factories

    bf = factories[tf.bool]
    shares = [[bf.tensor(msb[i][j], encode=False) for j in range(2)] for i in range(3)]
    z = ABY3PrivateTensor(prot, shares, False, ShareType.BOOLEAN)
    return z


# ------------------------------------------------------------------------------ sigmoid


def _sigmoid_private(prot, x, approx_type):
    """TFE's parallel piecewise-linear sigmoid (`_sigmoid_private` -> `polynomial_piecewise`) with
    TFE's 3- or 5-piece table: see `_polynomial_piecewise_private`."""
    if approx_type not in ops.SIGMOID_APPROX:
        return Fallback(f"approximation {approx_type!r}")
    c, coeffs = ops.SIGMOID_APPROX[approx_type]
    return _piecewise_linear(prot, x, c, coeffs, scope="sigmoid")


def _polynomial_piecewise_private(prot, x, c, coeffs):
    """TFE's `polynomial_piecewise` with linear (or constant) pieces: see `_piecewise_linear`."""
    if len(c) + 1 != len(coeffs):
        return Fallback(f"{len(c)} pivots for {len(coeffs)} pieces")
    if any(len(cf) > 2 for cf in coeffs):
        return Fallback("pieces of degree > 1")
    return _piecewise_linear(prot, x, c, coeffs, scope="polynomial_piecewise")


def _piecewise_linear(prot, x, c, coeffs, scope):
    """TFE's parallel piecewise-linear evaluation (`polynomial_piecewise`, pieces k applying for
    c[k-1] < x <= c[k]): all pivots compared in one batched msb, piece selection (one AND), the
    linear pieces with one fused truncation, `mul_ab` (two 3-party OTs) and the sum over pieces, one
    fused op per party and step; same rounds, messages and nonce consumption (20) as stock."""
    if not x.is_arithmetic() or not x.is_scaled:
        return Fallback("boolean or unscaled input")
    if not x.shape.is_fully_defined() or not _is_int64(prot, x):
        return Fallback("unknown shape or non-int64 backing")
    cfg = prot.fixedpoint_config
    amount = cfg.precision_fractional
    piv, c0, c1 = ops.piecewise_constants(c, coeffs, scaling_factor=cfg.scaling_factor)
    K = len(c) + 1
    s = x.unwrapped
    factory = s[0][0].factory
    dev = [sv.device_name for sv in prot.servers]
    keys, nonces = prot.pairwise_keys(), prot.pairwise_nonces()
    sh = [(s[i][0].value, s[i][1].value) for i in range(3)]
    with tf.name_scope(scope):
        # 1. comparisons msb(c - tile(x)) for all pivots at once (nonces +0 .. +13)
        d = []
        for i in range(3):
            with _on(prot, i, "MpcPivotDiff"):
                d.append(tuple(ops.pivot_diff(i, *sh[i], tf.constant(piv))))
        msb = _msb_steps(prot, d, keys, nonces)
        # 2. piece selection b = [~msb, 1] & [1, ~msb ^ 1] (nonce +14); z_i goes to P_{i-1}
        z = []
        for i in range(3):
            with _on(prot, i, "MpcPieceSelectAnd"):
                z.append(ops.piece_select_and(i, *msb[i], *_kn(prot, keys, nonces, i, 14)))
        b = [(z[i], _recv(prot, i, z[(i + 1) % 3])) for i in range(3)]
        # 3. f = c0 + trunc(c1 * tile(x)): heuristic truncation of the scaled product (nonce +15)
        lift, unlift = ops.heuristic_lift(), ops.heuristic_unlift(amount)
        n02, n12 = int(nonces[2]) + 15, int(nonces[1]) + 15
        k1 = tf.constant(c1)
        with tf.device(dev[2]):
            shape_k = tf.concat([[K], tf.shape(sh[2][0], out_type=tf.int64)], 0)
            r_seed = ops.secure_seed()
        with _on(prot, 2, "MpcTruncMsb0Dealer"):
            r1, s1, m1, z20, z21 = ops.trunc_msb0_dealer(
                shape_k, keys[2][1], n02, keys[2][0], n12, r_seed, amount, unlift)
        with _on(prot, 0, "MpcTruncMsb0MaskScaledP0"):
            cm0 = ops.trunc_msb0_mask_scaled_p0(sh[0][0], sh[0][1], k1, keys[0][0], n02, lift)
        r1_1, s1_1, m1_1 = (_recv(prot, 1, t) for t in (r1, s1, m1))
        with _on(prot, 1, "MpcTruncMsb0MaskScaledP1"):
            cm1 = ops.trunc_msb0_mask_scaled_p1(sh[1][1], k1, r1_1)
        with _on(prot, 0, "MpcTruncMsb0UnmaskP0"):
            yt0, z00 = ops.trunc_msb0_unmask_p0(cm0, _recv(prot, 0, cm1), keys[0][0], n02,
                                                amount, unlift)
        with _on(prot, 1, "MpcTruncMsb0UnmaskP1"):
            yt1, z11 = ops.trunc_msb0_unmask_p1(_recv(prot, 1, cm0), cm1, s1_1, m1_1, keys[1][1],
                                                n12, amount)
        with _on(prot, 0, "MpcTruncMsb0Combine"):
            mid0 = ops.trunc_msb0_combine(yt0, _recv(prot, 0, yt1))
        with _on(prot, 1, "MpcTruncMsb0Combine"):
            mid1 = ops.trunc_msb0_combine(_recv(prot, 1, yt0), yt1)
        f = [(z00, mid0), (mid1, z11), (z20, z21)]
        # 4. mul_ab(f, b) and the sum over pieces (nonces +16 .. +19)
        k0 = tf.constant(c0)
        with _on(prot, 0, "MpcMulAbStep1P0"):
            o0 = ops.mul_ab_step1_p0(*f[0], k0, *b[0], *_kn(prot, keys, nonces, 0, 16))
        with _on(prot, 1, "MpcMulAbStep1P1"):
            o1 = ops.mul_ab_step1_p1(*f[1], k0, *b[1], *_kn(prot, keys, nonces, 1, 16))
        with _on(prot, 2, "MpcMulAbStep1P2"):
            o2 = ops.mul_ab_step1_p2(*f[2], k0, *b[2], *_kn(prot, keys, nonces, 2, 16))
        with _on(prot, 0, "MpcMulAbStep2P0"):
            y0 = ops.mul_ab_step2_p0(*b[0], _recv(prot, 0, o1[0]), _recv(prot, 0, o2[0]), o0[3],
                                     _recv(prot, 0, o1[4]), _recv(prot, 0, o2[3]))
        with _on(prot, 1, "MpcMulAbStep2P1"):
            y1 = ops.mul_ab_step2_p1(*b[1], o1[0], _recv(prot, 1, o0[3]), _recv(prot, 1, o2[2]),
                                     _recv(prot, 1, o0[1]), _recv(prot, 1, o2[1]))
        with _on(prot, 2, "MpcMulAbStep2P2"):
            y2 = ops.mul_ab_step2_p2(*b[2], o2[0], o2[2], _recv(prot, 2, o0[2]),
                                     _recv(prot, 2, o1[1]), _recv(prot, 2, o1[3]),
                                     _recv(prot, 2, o0[4]))
    for _ in range(20):
        prot._update_pairwise_nonces()
    y = _wrap_held(prot, factory, [y0, y1, y2])
    return ABY3PrivateTensor(prot, y, x.is_scaled, ShareType.ARITHMETIC)
