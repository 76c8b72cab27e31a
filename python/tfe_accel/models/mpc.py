"""MPC building blocks of the secure trainer, for any ABY3 protocol (stock or accelerated).

Each function emits TFE operations into the graph being traced (or runs them eagerly); where
AcceleratedABY3 has a fused step for it, that is used, else stock ABY3's operations.
"""
from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np

from .plaintext import SIGMOIDS


def fresh_op_cache():
    """Empty TFE's global memo cache (``protocol.nodes``). It is keyed by the operation and its
    arguments (objects by id), never cleared, and shared across graphs and protocols: a stale hit
    returns a tensor of another graph or an old reveal: a step that used it would
    train on stale values."""
    from tf_encrypted.protocol import protocol as _p

    _p.nodes.clear()


def fixedpoint_config(fractional_bits: int = 16):
    """TFE's fixed64_heuristic with `fractional_bits` fractional bits (16 is TFE's default).

    More fractional bits shrink the per-operation rounding noise (2^-f); the heuristic truncation
    stays exact while products of two values stay below 2^(62 - 2f) in magnitude (2^22 at f = 20),
    far above logistic regression's intermediate values on standardised data."""
    from tf_encrypted.tensor.fixed import FixedpointConfig, fixed64_heuristic

    if fractional_bits == fixed64_heuristic.precision_fractional:
        return fixed64_heuristic
    return FixedpointConfig(
        scaling_base=2, nbits=64, precision_integral=fixed64_heuristic.precision_integral,
        precision_fractional=fractional_bits, matmul_threshold=fixed64_heuristic.matmul_threshold,
        truncation_gap=fixed64_heuristic.truncation_gap, use_noninteractive_truncation=False)


def max_truncation(prot) -> int:
    """The largest amount TFE's heuristic truncation takes for a scaled value (its unlift constant is
    2^(62 - f - amount))."""
    return 62 - prot.fixedpoint_config.precision_fractional


def mul_const(prot, x, c: float, mantissa_bits: int = 20, terms: int = 2):
    """x * c for a public constant c, with relative precision ~2^-(terms * mantissa_bits) even when
    c is tiny.

    Multiplying by a fixed-point constant would round c to 2^-16 (e.g. LR/n = 1e-4 loses ~10%);
    here c = M * 2^-s with an integer M of ``mantissa_bits`` bits: an exact local product by M, then
    one truncation by s bits. The rounding of c to M * 2^-s is the same for every element, so it
    would shift e.g. every per-gene mean the same way (the raw-space bias of a standardised model
    amplifies such a common shift by the sum of the means); a second term multiplies by that
    residual, leaving a relative error ~2^-40. |x| * M must stay below 2^46 (TFE's heuristic
    truncation bound); the callers' values are far below.
    """
    c = float(c)
    if c == 0.0:
        return x - x
    s = mantissa_bits - 1 - int(math.floor(math.log2(abs(c))))
    if s <= 0:  # |c| >= 2^(mantissa_bits - 1): the ordinary fixed-point product is exact enough
        return x * c
    # constants below 2^-(62 - f) contribute nothing representable anyway.
    max_shift = max_truncation(prot)
    s = min(s, max_shift)
    m = int(round(c * 2.0 ** s))
    if m == 0:
        return x - x
    y = x * prot.define_constant(np.array(float(m)), apply_scaling=False)
    y = prot.truncate(y, amount=s)
    residual = c - m * 2.0 ** -s
    if terms > 1 and abs(residual) >= 2.0 ** -max_shift:
        y = y + mul_const(prot, x, residual, mantissa_bits, terms - 1)
    return y


def _routed(prot, name: str, *args):
    """``tfe_accel.protocol.routes.<name>(prot, *args)`` under AcceleratedABY3, or None (then the
    caller runs stock ABY3's composition): with another protocol, or when the route declines, which
    is logged with its reason as every fall-through is."""
    if not (getattr(prot, "accelerate", False) and hasattr(prot, "fused_device")):
        return None
    from ..protocol import routes

    out = getattr(routes, name)(prot, *args)
    if isinstance(out, routes.Fallback):
        prot._log_fallback(name, "private_private", out.reason)
        return None
    return out


def as_unscaled(prot, x):
    """The same shares flagged as an unscaled (integer) value, so a product with it is not truncated
    by TFE's automatic truncation (the caller truncates by the amount the scales call for)."""
    from tf_encrypted.protocol.aby3.aby3_tensors import ABY3PrivateTensor

    return ABY3PrivateTensor(prot, x.unwrapped, False, x.share_type)


def mul_shifted(prot, x, y, amount: int):
    """x * y truncated once by ``amount`` bits: for y holding a value pre-scaled by 2^(amount - f),
    so that a small factor keeps its precision (one secure product, one truncation)."""
    if not 0 < amount <= max_truncation(prot):
        raise ValueError(f"truncation amount must be in [1, {max_truncation(prot)}], got {amount}")
    out = _routed(prot, "mul_truncated", x, y, amount)  # the truncation merged with the resharing
    if out is not None:
        return out
    return prot.truncate(prot.mul(x, as_unscaled(prot, y)), amount=amount)


def column_sum_squares(prot, x, centre):
    """sum over rows of (x - centre)^2, per column, as a [1, cols] private tensor (f fractional bits).

    x: [rows, cols] private (scaled); centre: [1, cols] private (scaled). AcceleratedABY3: one fused op
    per party whose local product terms are summed before the resharing (ABY3's inner product: one
    message of `cols` values per party, one truncation of `cols` values); stock ABY3: the elementwise
    square of the centred matrix, then the column sums (one message and one truncation per element).
    """
    out = _routed(prot, "column_sum_squares", x, centre)
    if out is not None:
        return out
    return prot.reduce_sum(prot.square(x - centre), axis=0, keepdims=True)


# The first guess's pieces span this many octaves each; the Newton refinement takes as many
# iterations as the worst piece's error needs (reciprocal_pieces).
RECIPROCAL_OCTAVES = 2


def reciprocal_pieces(prot, domain=None, octaves: int = RECIPROCAL_OCTAVES):
    """Pivots and linear pieces of the first guess of 1/x, and the Newton iterations it needs.

    The domain: ``(lo, hi)``, public bounds on x (the trainer's: eps and 1/n below, L^2 + eps
    above), or by default the positive range of the fixed-point format, 2^-f < x <= 2^I (f
    fractional, I integral bits). It is cut at powers of two into intervals (a, k a] of ``octaves``
    octaves (k = 2^octaves); each piece is the chord of 1/x over its interval scaled by
    s = 8k / (4k + (k+1)^2), so that x * guess stays within [s, 2 - s] (k = 4: within 22%), or where
    the chord's slope would keep fewer than 8 bits in the fixed-point encoding, the constant
    2 / ((k+1) a) (k = 4: within 60%). The first piece also serves x below the domain, the last x
    above it. Newton's y <- y (2 - x y) squares the relative error e each iteration; the iterations
    are the fewest that bring the worst piece's e below 2^-(f+1).

    Returns (pivots, coeffs, iterations)."""
    cfg = prot.fixedpoint_config
    f, top = cfg.precision_fractional, cfg.precision_integral
    lo, hi = domain if domain is not None else (2.0 ** -f, 2.0 ** top)
    if not (0 < lo <= hi):
        raise ValueError(f"reciprocal domain must satisfy 0 < lo <= hi, got ({lo!r}, {hi!r})")
    j0, j1 = math.floor(math.log2(lo)), math.ceil(math.log2(hi))
    k = 2.0 ** octaves
    scale = 8.0 * k / (4.0 * k + (k + 1.0) ** 2)
    pivots, coeffs, worst = [], [], 0.0
    j = j0
    while True:
        a = 2.0 ** j
        slope = scale / (k * a * a)
        if slope * 2.0 ** f >= 2.0 ** 8:
            coeffs.append((scale * (k + 1.0) / (k * a), -slope))
            worst = max(worst, 1.0 - scale)
        else:
            coeffs.append((2.0 / ((k + 1.0) * a),))
            worst = max(worst, (k - 1.0) / (k + 1.0))
        j += octaves
        if j >= j1:
            break
        pivots.append(2.0 ** j)
    iterations, e = 0, worst
    while e > 2.0 ** -(f + 1):
        e, iterations = e * e, iterations + 1
    return pivots, coeffs, iterations


def reciprocal(prot, x, domain=None, iterations: int = None):
    """1/x for a private x > 0 in ``domain`` (public bounds ``(lo, hi)``; by default the positive
    range of the fixed-point format, 2^-f < x <= 2^I): a piecewise-linear first guess
    (:func:`reciprocal_pieces`; TFE's parallel ``polynomial_piecewise``: one batched comparison with
    all pivots, fused by AcceleratedABY3) refined by Newton's y <- y (2 - x y), each iteration
    squaring the relative error, until it is below the fixed-point resolution. The comparison's
    bytes grow with the number of pivots and dominate at the trainer's sizes (17,816 values), so
    the pieces are wide and a tight public domain keeps them few; each Newton iteration is two
    products of x's size. Far fewer operations than TFE's bit-decomposition reciprocal."""
    pivots, coeffs, needed = reciprocal_pieces(prot, domain)
    y = prot.polynomial_piecewise(x, pivots, coeffs)
    for _ in range(needed if iterations is None else iterations):
        y = y * (2.0 - x * y)
    return y


def secure_sigmoid(prot, z, name: str = "5-piece", weight=None):
    """The named piecewise-linear sigmoid (:data:`tfe_accel.models.plaintext.SIGMOIDS`) of a private
    z: TFE's own tables through ``prot.sigmoid``, the others through ``prot.polynomial_piecewise``
    (the same one batched comparison over all pivots; AcceleratedABY3 fuses both).

    With a private ``weight`` (z's shape): weight * sigmoid(z). AcceleratedABY3 (telescoped pieces)
    weights the pieces while the comparison runs, so the product costs no round of its own
    (``routes.weighted_piecewise``); otherwise, logged, one secure product after the sigmoid."""
    if name not in SIGMOIDS:
        raise ValueError(f"unknown sigmoid {name!r}; choose from {', '.join(SIGMOIDS)}")
    spec = SIGMOIDS[name]
    if weight is not None:
        from ..ops import SIGMOID_APPROX

        c, coeffs = SIGMOID_APPROX[spec["tfe"]] if spec["tfe"] else (spec["pivots"], spec["coeffs"])
        out = _routed(prot, "weighted_piecewise", z, weight, list(c), [tuple(cf) for cf in coeffs])
        if out is not None:
            return out
        return secure_sigmoid(prot, z, name) * weight
    if spec["tfe"]:
        return prot.sigmoid(z, approx_type=spec["tfe"])
    return prot.polynomial_piecewise(z, list(spec["pivots"]), [tuple(c) for c in spec["coeffs"]])


def share_encoded(prot, player, encoded, name: str = "input"):
    """Secret-share an owner's already-encoded ring values (int64, ``round(x * 2^f)``) from the
    owner's device: the owner draws two shares from fresh seeds and sends the seeds and the third
    share (TFE's ``_share``, as ``define_private_input`` does after encoding). Returns a scaled
    ABY3PrivateTensor."""
    import tensorflow as tf
    from tf_encrypted.protocol.aby3.aby3_tensors import ShareType

    if isinstance(player, str):
        import tf_encrypted as tfe

        player = tfe.get_config().get_player(player)
    with tf.name_scope(f"private-input-{name}"), tf.device(player.device_name):
        v = prot.default_factory.tensor(tf.identity(encoded), encode=False)
        return prot._share_and_wrap(v, True, ShareType.ARITHMETIC, player)


def encode_fixed_point(values: np.ndarray, fractional_bits: int, what: str = "values") -> np.ndarray:
    """An owner's values on the fixed-point grid as ring elements: round(x * 2^f) as int64.

    Rounding (TFE's encoder truncates toward zero) keeps the per-gene means unbiased: a common shift
    of every mean by -1/2 ulp is amplified ~10^5-fold in the raw-space bias on BC-TCGA shapes."""
    x = np.asarray(values, dtype=np.float64)
    scale = float(2 ** fractional_bits)
    limit = 2.0 ** (62 - fractional_bits)
    if x.size and not np.isfinite(x).all():
        raise ValueError(f"{what}: NaN or infinite values cannot be secret-shared")
    if x.size and np.abs(x).max() >= limit:
        raise ValueError(f"{what}: |value| {np.abs(x).max():.6g} does not fit the fixed-point ring "
                         f"(must be < 2^{62 - fractional_bits} with {fractional_bits} fractional bits)")
    scaled = np.multiply(x, scale)  # one float64 temporary, rounded in place
    np.rint(scaled, out=scaled)
    return np.ascontiguousarray(scaled.astype(np.int64))


def private_shares(x) -> List:
    """The six share tensors of a private tensor, party by party: [x00, x01, x10, x11, x20, x21]."""
    return [x.unwrapped[i][j].value for i in range(3) for j in range(2)]


def private_from_shares(prot, shares: Sequence, is_scaled: bool = True, share_type=None):
    """An ABY3PrivateTensor from six share tensors (each placed on its party's device)."""
    from tf_encrypted.protocol.aby3.aby3_tensors import ShareType

    from .._function import on_parties

    return on_parties(prot, list(shares), prot.default_factory, is_scaled, share_type or ShareType.ARITHMETIC)


def private_steps(prot, steps: int, body, state: Sequence, parallel_iterations: int = 2,
                  name: str = "steps"):
    """Run ``state = body(k, state)`` for k = 0 .. steps-1 as one ``tf.while_loop`` in the graph being
    traced; ``state`` is a list of private tensors (scaled, arithmetic), ``k`` an int32 scalar.

    With AcceleratedABY3's fresh randomness per call, every iteration derives its PRG keys from the
    enclosing call's tweak and the iteration number, counted by each party on its own device (no
    message), so no two iterations (or calls) reuse correlated randomness. Stock ABY3 reuses its
    nonces in every iteration, as it does across calls of a compiled function.

    Returns (final state, the loop body's FuncGraph (for communication accounting)).
    """
    import tensorflow as tf

    n = len(state)
    scaled = [s.is_scaled for s in state]
    outer_tweaks = prot.loop_tweaks() if hasattr(prot, "loop_tweaks") else None
    counters = []
    for i in range(3):
        with tf.device(prot.servers[i].device_name):
            counters.append(tf.constant(0, tf.int64, name=f"iteration-{i}"))
    init = [tf.constant(0, tf.int32)] + counters + [t for s in state for t in private_shares(s)]
    box = {}

    def cond(k, *rest):
        return k < steps

    def loop_body(k, c0, c1, c2, *flat):
        box["graph"] = tf.compat.v1.get_default_graph()
        fresh_op_cache()
        cs = []
        for i, c in enumerate((c0, c1, c2)):
            with tf.device(prot.servers[i].device_name):
                cs.append(c + 1)
        if outer_tweaks is not None:
            prot.enter_loop_body(outer_tweaks, cs)
        cur = [private_from_shares(prot, flat[6 * j:6 * j + 6], scaled[j]) for j in range(n)]
        new = body(k, cur)
        if len(new) != n:
            raise ValueError(f"the loop body must return {n} private tensors, got {len(new)}")
        out = [t for s in new for t in private_shares(s)]
        return [k + 1] + cs + out

    with tf.name_scope(name):
        res = tf.while_loop(cond, loop_body, init, parallel_iterations=parallel_iterations,
                            maximum_iterations=steps)
    flat = res[4:]
    final = [private_from_shares(prot, flat[6 * j:6 * j + 6], scaled[j]) for j in range(n)]
    return final, box.get("graph")


__all__ = ["fresh_op_cache", "fixedpoint_config", "max_truncation", "mul_const", "as_unscaled",
           "mul_shifted", "column_sum_squares", "reciprocal_pieces", "reciprocal", "share_encoded", "encode_fixed_point",
           "private_shares", "private_from_shares", "private_steps"]

