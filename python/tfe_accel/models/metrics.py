"""Binary classification metrics in NumPy (no scikit-learn)."""
from __future__ import annotations

import numpy as np


def _check(y, s):
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    return y, s


def auc(y, scores) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted 1/2); NaN with a single class."""
    y, s = _check(y, scores)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    r_pos = ranks[y == 1].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def roc_curve(y, scores):
    """(fpr, tpr) at every distinct threshold, from (0, 0) to (1, 1)."""
    y, s = _check(y, scores)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    p, n = max(y.sum(), 1), max(len(y) - y.sum(), 1)
    return np.r_[0.0, fps / n], np.r_[0.0, tps / p]


def classification_metrics(y, proba, threshold: float = 0.5) -> dict:
    y, p = _check(y, proba)
    pred = (p >= threshold).astype(np.float64)
    tp = float(np.sum((pred == 1) & (y == 1)))
    tn = float(np.sum((pred == 0) & (y == 0)))
    fp = float(np.sum((pred == 1) & (y == 0)))
    fn = float(np.sum((pred == 0) & (y == 1)))
    n = len(y)
    tpr = tp / (tp + fn) if tp + fn else float("nan")
    tnr = tn / (tn + fp) if tn + fp else float("nan")
    prec = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * prec * tpr / (prec + tpr) if (prec + tpr) and not np.isnan(tpr) else 0.0
    return {
        "n": n,
        "accuracy": (tp + tn) / n if n else float("nan"),
        "balanced_accuracy": 0.5 * (tpr + tnr),
        "auc": auc(y, p),
        "f1": f1,
        "tp": tp, "tn": tn, "fp": fp, "fn": fn,
    }


def relative_l2(a, b) -> float:
    """||a - b|| / ||b|| over weights and bias together (b the reference)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / nb) if nb > 0 else float(np.linalg.norm(a - b))
