"""Float64 logistic regression trained exactly like the secure trainer (same rule, schedule, weights).

The update rule (documented in docs/training.md; ``secure.py`` implements the same in MPC):
zero initial weights; for each batch B (the whole training set when full-batch)
``p = sigmoid(X_B w + b)``, ``r = c_B * (p - y_B)`` with ``c`` the per-sample class weight,
``w -= LR * (X_B^T r / |B| + l2 * w)``, ``b -= LR * sum(r) / |B|``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

# Piecewise-linear sigmoids: piece k applies for pivots[k-1] < z <= pivots[k]; each piece is
# (constant,) or (a0, a1). "3-piece" and "5-piece" are TFE's (tf_encrypted/protocol/aby3/aby3.py,
# _sigmoid_private; "tfe" names them there). "8-piece" is tfe-accel's: seven pivots placed to minimise
# the maximum error (Nelder-Mead over symmetric pivots), each linear piece the minimax line of the
# sigmoid on its interval (the chord shifted by half its largest deviation), the outer constants
# sigmoid(+-4.27) / 2 from 0 and 1. It is evaluated by the same one batched comparison over all
# pivots (TFE's polynomial_piecewise), so it has the rounds of the 5-piece one; its messages grow
# with the pivots (7 instead of 4), on the n logits only. "max_error": max |sigmoid - approx| on
# [-10, 10] (a grid of 2e6 points).
SIGMOIDS = {
    "3-piece": {
        "tfe": "3_piecewise_linear",
        "pivots": (-2.5, 2.5),
        "coeffs": ((1e-4,), (0.50, 0.17), (1 - 1e-4,)),
        "max_error": 0.0758,
    },
    "5-piece": {
        "tfe": "5_piecewise_linear",
        "pivots": (-4.0, -1.5, 1.5, 4.0),
        "coeffs": ((1e-4,), (0.281, 0.066), (0.5, 0.212), (0.719, 0.066), (1 - 1e-4,)),
        "max_error": 0.0403,
    },
    "8-piece": {
        "tfe": None,
        "pivots": (-4.27, -2.425, -1.282, 0.0, 1.282, 2.425, 4.27),
        "coeffs": ((0.006894,), (0.16311, 0.036584), (0.362761, 0.118919), (0.493107, 0.220585),
                   (0.506893, 0.220585), (0.637239, 0.118919), (0.83689, 0.036584), (0.993106,)),
        "max_error": 0.0069,
    },
}

# Variance floor of the standardisation (the same constant inside MPC): std = sqrt(var + EPS).
STANDARDIZE_EPS = 1e-3


def sigmoid_exact(z):
    z = np.asarray(z, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def sigmoid_piecewise(z, name: str):
    """The named piecewise approximation, piece boundaries exactly as TFE (``x <= pivot``)."""
    spec = SIGMOIDS[name]
    z = np.asarray(z, dtype=np.float64)
    out = np.zeros_like(z)
    lo = -np.inf
    for k, coeffs in enumerate(spec["coeffs"]):
        hi = spec["pivots"][k] if k < len(spec["pivots"]) else np.inf
        mask = (z > lo) & (z <= hi)
        val = sum(c * z ** j for j, c in enumerate(coeffs))
        out = np.where(mask, val, out)
        lo = hi
    return out


def sigmoid_fn(name: str):
    if name == "exact":
        return sigmoid_exact
    if name not in SIGMOIDS:
        raise ValueError(f"unknown sigmoid {name!r}; choose from exact, {', '.join(SIGMOIDS)}")
    return lambda z: sigmoid_piecewise(z, name)


def standardize_stats(x: np.ndarray, eps: float = STANDARDIZE_EPS):
    mean, inv_std, _ = _standardized(x, eps)
    return mean, inv_std


def _standardized(x: np.ndarray, eps: float = STANDARDIZE_EPS):
    """(mean, 1/sqrt(var + eps), the standardised records): one n x d allocation, no temporaries."""
    mean = x.mean(axis=0)
    xs = x - mean
    var = np.einsum("ij,ij->j", xs, xs) / x.shape[0]
    inv_std = 1.0 / np.sqrt(var + eps)
    xs *= inv_std
    return mean, inv_std, xs


def class_weights(y: np.ndarray, mode: str) -> np.ndarray:
    """Per-sample weights: balanced/public n/(2 n_c); none: 1."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if mode == "none":
        return np.ones_like(y)
    if mode not in ("balanced", "public"):
        raise ValueError(f"class weight must be balanced, public or none, got {mode!r}")
    n, n_pos = len(y), y.sum()
    return np.where(y == 1, n / (2.0 * n_pos), n / (2.0 * (n - n_pos)))


def batch_schedule(n: int, batch_size: Optional[int], epoch: int, seed: int) -> List[np.ndarray]:
    """Batches of one epoch. Full batch: ``[arange(n)]``. Mini-batch B < n: a permutation drawn from
    ``(seed, epoch)``, cut into ceil(n/B) batches of exactly B rows (the last wraps to the start)."""
    if batch_size is None or batch_size >= n:
        return [np.arange(n)]
    perm = np.random.default_rng([int(seed), int(epoch)]).permutation(n)
    steps = math.ceil(n / batch_size)
    return [perm[(k * batch_size + np.arange(batch_size)) % n] for k in range(steps)]


@dataclass
class PlainModel:
    weights: np.ndarray  # raw (input) gene space, to apply to unstandardised data
    bias: float
    weights_std: np.ndarray  # standardised space (what training updates)
    bias_std: float
    losses: List[float] = field(default_factory=list)

    def decision(self, x):
        return np.asarray(x, dtype=np.float64) @ self.weights + self.bias

    def predict_proba(self, x):
        return sigmoid_exact(self.decision(x))


def train_plaintext(x, y, *, epochs: int, learning_rate: float, batch_size=None,
                    class_weight: str = "balanced", sigmoid: str = "5-piece",
                    standardize: bool = True, l2: float = 0.0, seed: int = 0) -> PlainModel:
    """Float64 reference trained exactly as the secure trainer; ``sigmoid='exact'`` for the ideal."""
    return train_plaintext_variants(x, y, sigmoids=[sigmoid], epochs=epochs, learning_rate=learning_rate,
                                    batch_size=batch_size, class_weight=class_weight,
                                    standardize=standardize, l2=l2, seed=seed)[sigmoid]


def train_plaintext_variants(x, y, *, sigmoids, epochs: int, learning_rate: float, batch_size=None,
                             class_weight: str = "balanced", standardize: bool = True, l2: float = 0.0,
                             seed: int = 0) -> dict:
    """:func:`train_plaintext` for several sigmoids (name -> PlainModel), standardising the records
    once for all of them."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n, d = x.shape
    if standardize:
        mean, inv_std, xs = _standardized(x)
    else:
        mean, inv_std = np.zeros(d), np.ones(d)
        xs = x
    c = class_weights(y, class_weight)
    return {name: _train_standardized(xs, y, c, mean, inv_std, sigmoid_fn(name), epochs=epochs,
                                      learning_rate=learning_rate, batch_size=batch_size, l2=l2, seed=seed)
            for name in sigmoids}


def _train_standardized(xs, y, c, mean, inv_std, sig, *, epochs, learning_rate, batch_size, l2, seed):
    n, d = xs.shape
    w = np.zeros(d)
    b = 0.0
    losses = []
    for epoch in range(epochs):
        epoch_loss = 0.0
        batches = batch_schedule(n, batch_size, epoch, seed)
        for idx in batches:
            if len(batches) == 1 and len(idx) == n and (idx == np.arange(n)).all():
                xb, yb, cb = xs, y, c  # the full batch in order: no copy of the records
            else:
                xb, yb, cb = xs[idx], y[idx], c[idx]
            m = len(idx)
            p = sig(xb @ w + b)
            r = cb * (p - yb)
            epoch_loss += float(np.sum(r * (p - yb)) / m)
            w = w - learning_rate * (xb.T @ r / m + l2 * w)
            b = b - learning_rate * float(np.sum(r)) / m
        losses.append(epoch_loss / len(batches))
    w_raw = w * inv_std
    b_raw = b - float(np.sum(w_raw * mean))
    return PlainModel(weights=w_raw, bias=b_raw, weights_std=w, bias_std=b, losses=losses)
