"""The trainer's numeric envelope: the input range within which every secure step is correct.

Public quantities only: the record count n, the fractional bits f, and the public value limit L that
every owner checks its own values against (|x| <= L) before anything is shared. From them each secure
step of :class:`~tfe_accel.models.secure.SecureLogisticRegression` gets a worst-case magnitude and the
limit the fixed-point format puts on it (:mod:`tfe_accel.fixedpoint`: a value or sum of products to
truncate must stay below 2^62 in the ring, so below 2^(62 - 2f) for a product of two values with f
fractional bits each; a product with a public constant of M <= 2^20 (``mul_const``) below
2^(62 - f - 20)). The reciprocal's first guess covers 2^-(f-1) < x <= 2^I (I = 11 integral bits).

The worst cases, with R = 2L the widest spread of a gene:

- per-gene sum, before its scaling by 1/n: |sum x| <= n L;
- sum of squares of the centred gene: sum (x - mean)^2 = n var <= n R^2 / 4 = n L^2 (Popoviciu);
- variance, then 1/(var + eps): eps <= var + eps <= L^2 + eps;
- class-weight fractions n_pos / n in [1/n, 1 - 1/n];
- gradient (X - mean)^T r with r = c (p - y): the class weights c sum to n (balanced, public or none),
  |p - y| <= 1, so |g| <= R n, for any batch;
- the update g / (var + eps) (the per-gene step q = c' / (var + eps), c' < 1, carries f bits):
  |g| <= sqrt(sum (x - mean)^2) sqrt(sum r^2) <= sqrt(n var) n, so
  |g| / (var + eps) <= n^1.5 sd / (sd^2 + eps) <= n^1.5 / (2 sqrt(eps));
- logits z and the revealed raw-space bias b - mean . v depend on the trained model (not on the
  inputs alone): logits stay far below 2^(62 - 2f) for logistic regression (|z| ~ 10); the bias is
  checked after the reveal (public values).

:func:`choose_fractional_bits` picks the most fractional bits (at most 21) for which every bound holds;
:func:`check_owner_values` is each owner's local check; :func:`owner_values` applies the owner-side
remedies (log2(x + 1), a public scale).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from ..fixedpoint import TRUNCATION_BITS, product_limit
from .plaintext import STANDARDIZE_EPS

DEFAULT_VALUE_LIMIT = 32.0  # log2 expression is 0..20; standardised values rarely pass 10
MAX_AUTO_FRACTIONAL_BITS = 21
MIN_FRACTIONAL_BITS = 12
MAX_FRACTIONAL_BITS = 24
INTEGRAL_BITS = 11  # TFE's fixed64_heuristic: the reciprocal's first guess covers x <= 2^11
MUL_CONST_MANTISSA_BITS = 20  # tfe_accel.models.mpc.mul_const: public constants as M * 2^-s, M < 2^20

_log = logging.getLogger("tfe_accel")


class NumericRangeError(ValueError):
    """The public settings (records, fractional bits, value limit) leave a secure step outside the
    range in which the fixed-point format computes it correctly."""


@dataclass(frozen=True)
class Bound:
    step: str  # the secure step
    quantity: str  # the worst case, as a formula of the public values
    worst: float  # its value for this run
    limit: float  # exclusive, except the reciprocal's domain
    why: str  # where the limit comes from

    @property
    def ok(self) -> bool:
        return self.worst < self.limit

    @property
    def margin(self) -> float:
        return self.limit / self.worst if self.worst > 0 else math.inf


def envelope(n: int, value_limit: float, fractional_bits: int, *, standardize: bool = True,
             class_weight: str = "balanced", eps: float = STANDARDIZE_EPS) -> List[Bound]:
    """Every secure step's worst case and limit for n records, |x| <= value_limit, f fractional bits."""
    f = int(fractional_bits)
    L, n = float(value_limit), int(n)
    P = product_limit(f)
    C = 2.0 ** (TRUNCATION_BITS - f - MUL_CONST_MANTISSA_BITS)
    prod = f"2^{TRUNCATION_BITS - 2 * f} (a product of two {f}-bit values truncated below 2^62)"
    const = f"2^{TRUNCATION_BITS - f - MUL_CONST_MANTISSA_BITS} (times a 20-bit constant, truncated below 2^62)"
    out = [Bound("encoding (each owner)", "L", L, 2.0 ** (TRUNCATION_BITS - f),
                 f"2^{TRUNCATION_BITS - f} (round(x 2^f) truncated below 2^62)")]
    if standardize:
        out += [
            Bound("per-gene mean: sum x * (1/n)", "n L", n * L, C, const),
            Bound("sum of squares of the centred gene", "n L^2", n * L * L, P, prod),
            Bound("variance: sum of squares * (1/n)", "n L^2", n * L * L, C, const),
            Bound("reciprocal 1/(var + eps), domain top", "L^2 + eps", L * L + eps,
                  2.0 ** INTEGRAL_BITS, f"2^{INTEGRAL_BITS} (first guess's top piece; {INTEGRAL_BITS} integral bits)"),
            Bound("per-gene step q = c'/(var + eps)", "1/eps", 1.0 / eps, C, const),
        ]
    if class_weight == "balanced":
        out += [
            Bound("class fraction n_pos * (1/n)", "n", float(n), C, const),
            Bound("class-weight reciprocal, domain bottom", "2^-(f-1) n", n * 2.0 ** -(f - 1), 1.0,
                  "1/n above the reciprocal's bottom piece 2^-(f-1)"),
        ]
    spread = 2 * L if standardize else L
    out += [
        Bound("gradient (X - mean)^T c (p - y)" if standardize else "gradient X^T c (p - y)",
              "2 L n" if standardize else "L n", spread * n, P, prod),
        Bound("bias step sum c (p - y) * (LR/|B|)", "n", float(n), C, const),
    ]
    if standardize:
        out.append(Bound("update g * q (q ~ 1/(var + eps))", "n^1.5 / (2 sqrt(eps))",
                         n ** 1.5 / (2.0 * math.sqrt(eps)), P, prod))
    return out


def reciprocal_domain(n: int, value_limit: float, *, standardize: bool = True,
                      class_weight: str = "balanced", eps: float = STANDARDIZE_EPS):
    """Public bounds (lo, hi) on what the preprocessing's secure reciprocal is given: var + eps in
    [eps, L^2 + eps] (standardisation), the class fractions n_pos/n and n_neg/n in [1/n, 1 - 1/n]
    (balanced class weights); halved below and widened above for the fixed-point noise."""
    lows = ([eps] if standardize else []) + ([1.0 / n] if class_weight == "balanced" else [])
    if not lows:
        raise ValueError("no secure reciprocal without standardisation or balanced class weights")
    hi = max(value_limit ** 2 + eps if standardize else 1.0, 1.0)
    return 0.5 * min(lows), 1.01 * hi


def failing(bounds: Sequence[Bound]) -> List[Bound]:
    return [b for b in bounds if not b.ok]


def max_value_limit(n: int, fractional_bits: int, **kw) -> float:
    """The largest public value limit L (a power of two or the exact bound) the envelope accepts."""
    lo, hi = 0.0, 2.0 ** (TRUNCATION_BITS - fractional_bits)
    if failing(envelope(n, 0.0, fractional_bits, **kw)):
        return 0.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if failing(envelope(n, mid, fractional_bits, **kw)):
            hi = mid
        else:
            lo = mid
    return lo


def choose_fractional_bits(n: int, value_limit: float, requested: Optional[int] = None, *,
                           standardize: bool = True, class_weight: str = "balanced") -> int:
    """``requested`` when it is given and the envelope holds (else NumericRangeError naming the steps);
    otherwise the most fractional bits in [16, 21] for which it holds (more bits: less rounding noise)."""
    kw = dict(standardize=standardize, class_weight=class_weight)
    if requested is not None:
        bad = failing(envelope(n, value_limit, requested, **kw))
        if bad:
            raise NumericRangeError(_explain(bad, n, value_limit, requested, **kw))
        return int(requested)
    for f in range(MAX_AUTO_FRACTIONAL_BITS, 15, -1):
        if not failing(envelope(n, value_limit, f, **kw)):
            return f
    for f in range(15, MIN_FRACTIONAL_BITS - 1, -1):
        if not failing(envelope(n, value_limit, f, **kw)):
            _log.warning("numeric envelope: %d records with |x| <= %g fit only %d fractional bits "
                         "(rounding noise 2^-%d)", n, value_limit, f, f)
            return f
    # Nothing fits: explain the closest setting (fewest failing steps, then the most bits).
    f = min(range(MAX_AUTO_FRACTIONAL_BITS, MIN_FRACTIONAL_BITS - 1, -1),
            key=lambda b: len(failing(envelope(n, value_limit, b, **kw))))
    raise NumericRangeError(f"no fractional bits from {MIN_FRACTIONAL_BITS} to {MAX_AUTO_FRACTIONAL_BITS} "
                            f"hold every secure step; the closest, {f}: "
                            + _explain(failing(envelope(n, value_limit, f, **kw)), n, value_limit, f, **kw))


def _explain(bad, n, L, f, **kw) -> str:
    lines = [f"the fixed-point pipeline cannot hold {n} records with values |x| <= {L:g} at {f} fractional "
             "bits; these secure steps would overflow:"]
    for b in bad:
        lines.append(f"  - {b.step}: worst case {b.quantity} = {b.worst:.4g}, limit {b.limit:.4g} ({b.why})")
    top = max_value_limit(n, f, **kw)
    if top > 0:
        lines.append(f"with {n} records and {f} fractional bits the value limit can be at most {top:.4g}: "
                     "use --log-transform or --scale S so the values fit, or fewer --fractional-bits")
    else:
        lines.append("no value limit fits at these fractional bits: use fewer records per training run, or "
                     "--class-weight public or none (no secure reciprocal of the class fractions)")
    return "\n".join(lines)


def owner_values(x: np.ndarray, log_transform: bool = False, scale: float = 1.0, what: str = "data",
                 genes: Optional[Sequence[str]] = None) -> np.ndarray:
    """The remedies, applied by each owner to its own values before the checks and the sharing:
    log2(x + 1) (x >= 0 needed), then division by a public scale. Returns ``x`` itself when neither."""
    if not log_transform and scale == 1.0:
        return x
    x = np.asarray(x, dtype=np.float64)
    if log_transform:
        neg = np.flatnonzero((x < 0).any(axis=0)) if x.ndim == 2 else []
        if len(neg):
            j = int(neg[0])
            i = int(np.flatnonzero(x[:, j] < 0)[0])
            gene = (f"gene {genes[j]!r} (gene column {j + 1} of {x.shape[1]})" if genes is not None
                    else f"gene column {j + 1}")
            raise NumericRangeError(
                f"{what}: --log-transform computes log2(x + 1), which needs x >= 0; {gene} has {x[i, j]:g} "
                f"in record {i + 1} (already log-scale? then drop --log-transform)")
        x = np.log2(x + 1.0)
    if scale != 1.0:
        x = x / scale
    return x


def looks_unlogged(x: np.ndarray) -> bool:
    """Raw intensities or counts: no negative value and a large maximum."""
    return bool(x.size) and float(np.min(x)) >= 0.0 and float(np.max(x)) > 64.0


def check_owner_values(x: np.ndarray, limit: float, what: str, genes: Optional[Sequence[str]] = None,
                       fractional_bits: Optional[int] = None) -> None:
    """One owner's check of its own values against the public limit |x| <= limit (local: nothing
    leaves the owner). The error names the owner's file, the gene, the value, the limit and the remedy."""
    x = np.asarray(x)
    if x.size == 0:
        return
    col = np.max(np.abs(x), axis=0) if x.ndim == 2 else np.abs(x).reshape(1, -1).max(axis=1)
    bad = np.flatnonzero(~(col <= limit))  # NaN counts as bad
    if not len(bad):
        return
    j = int(bad[np.argmax(np.nan_to_num(col[bad], nan=np.inf))])
    column = x[:, j] if x.ndim == 2 else x.reshape(-1)
    i = int(np.nanargmax(np.abs(column))) if np.isfinite(col[j]) else int(np.flatnonzero(~np.isfinite(column))[0])
    gene = (f"gene {genes[j]!r} (gene column {j + 1} of {x.shape[-1]})" if genes is not None and j < len(genes)
            else f"gene column {j + 1}")
    bits = f" with {fractional_bits} fractional bits" if fractional_bits is not None else ""
    remedy = ("the values look unlogged (raw intensities or counts): use --log-transform (log2(x + 1) at "
              "each owner before sharing; API: TrainConfig(log_transform=True))" if looks_unlogged(x) else
              "rescale the values")
    raise NumericRangeError(
        f"{what}: {gene}, record {i + 1}: value {column[i]:.6g} is outside the public limit |x| <= {limit:g} "
        f"of the secure pipeline{bits} (docs/training.md, 'Numeric envelope'); {remedy}, or divide every "
        f"value by a public scale (--scale S / TrainConfig(scale=S): the model is reported in the original "
        f"units), or raise --value-limit if the envelope allows it")


def check_revealed_model(weights: np.ndarray, bias: float, value_limit: float, fractional_bits: int,
                         standardize: bool = True) -> None:
    """After the reveal (public values): the raw-space bias b - mean . v was a sum of products inside
    MPC; if its worst case |b| + L sum |v| reached 2^(62 - 2f) it may have wrapped around."""
    if not standardize:
        return
    worst = abs(float(bias)) + float(value_limit) * float(np.sum(np.abs(weights)))
    if not np.isfinite(worst) or worst >= product_limit(fractional_bits):
        raise NumericRangeError(
            f"the revealed model may be wrong: its raw-space bias is a sum of products whose worst case "
            f"|b| + L sum|v| = {worst:.4g} reaches the fixed-point limit {product_limit(fractional_bits):.4g} "
            f"(2^{TRUNCATION_BITS - 2 * fractional_bits}, {fractional_bits} fractional bits); use fewer "
            "fractional bits or a smaller value range")


def envelope_table(n: int, value_limit: float, fractional_bits: int, **kw) -> str:
    """The envelope as a Markdown table (for the report and the docs)."""
    rows = ["| secure step | worst case | value | limit | margin |", "|---|---|---|---|---|"]
    for b in envelope(n, value_limit, fractional_bits, **kw):
        rows.append(f"| {b.step} | {b.quantity} | {b.worst:.4g} | {b.limit:.4g} | "
                    f"{'%.3gx' % b.margin if b.ok else 'FAILS'} |")
    return "\n".join(rows)


__all__ = ["DEFAULT_VALUE_LIMIT", "NumericRangeError", "Bound", "envelope", "failing", "max_value_limit",
           "reciprocal_domain", "choose_fractional_bits", "owner_values", "check_owner_values", "check_revealed_model",
           "envelope_table", "looks_unlogged"]
