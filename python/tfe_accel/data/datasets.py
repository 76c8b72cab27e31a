"""The embedded default data set, the synthetic generator with iDASH shapes, and data splits."""
from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import numpy as np

from .loaders import OwnerData

_HERE = os.path.dirname(os.path.abspath(__file__))

# name: (samples, genes, positives)  -- iDASH 2019 Track IV shapes
SYNTHETIC_SHAPES = {
    "bc-tcga": (470, 17814, 422),  # 422 tumor / 48 normal
    "gse2034": (225, 12634, 142),  # 142 recurrence / 83 non-recurrence
}


def load_golub() -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Golub et al. 1999 training set (38 x 3051; 11 AML = 1, 27 ALL = 0); see PROVENANCE.md."""
    with np.load(os.path.join(_HERE, "golub.npz"), allow_pickle=False) as z:
        x = z["x_int"].astype(np.float64) / float(z["scale"])
        y = z["y"].astype(np.float64)
        genes = [str(g) for g in z["genes"]]
    return x, y, genes


def synthetic(shape="bc-tcga", seed: int = 0, informative: int = 50, effect: float = 0.8,
              log_scale: bool = True):
    """Synthetic expression data with the iDASH shapes.

    ``shape``: ``"bc-tcga"`` (470 x 17814, 422/48), ``"gse2034"`` (225 x 12634, 142/83), or a tuple
    ``(n, d, n_pos)``. ``informative`` genes shift by ``effect`` standard deviations between classes;
    genes are mildly correlated through a few latent factors. With ``log_scale`` the values look like
    log2 expression (gene means 4..12, standard deviations 0.3..2); otherwise they are standardised.
    Returns ``(x, y, genes)``; the first ``n_pos`` rows are not grouped by class (shuffled).
    """
    if isinstance(shape, str):
        if shape not in SYNTHETIC_SHAPES:
            raise ValueError(f"unknown synthetic shape {shape!r}; known: {', '.join(SYNTHETIC_SHAPES)}")
        n, d, n_pos = SYNTHETIC_SHAPES[shape]
    else:
        n, d, n_pos = (int(v) for v in shape)
    if not (0 < n_pos < n) or d < 1:
        raise ValueError(f"synthetic shape needs 0 < n_pos < n and d >= 1, got {(n, d, n_pos)}")
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    y[:n_pos] = 1.0
    rng.shuffle(y)
    k = 5
    z = rng.standard_normal((n, k)).astype(np.float64)
    load = rng.standard_normal((k, d)) * 0.3
    x = rng.standard_normal((n, d)) + z @ load
    informative = min(informative, d)
    idx = rng.choice(d, size=informative, replace=False)
    sign = rng.choice([-1.0, 1.0], size=informative)
    x[:, idx] += np.outer(y - y.mean(), sign * effect)
    if log_scale:
        x = x * rng.uniform(0.3, 2.0, size=d) + rng.uniform(4.0, 12.0, size=d)
    else:
        x = (x - x.mean(axis=0)) / x.std(axis=0)
    genes = [f"gene{j}" for j in range(d)]
    return x, y, genes


def split_owners(x: np.ndarray, y: np.ndarray, genes: Sequence[str], n_owners: int,
                 split: str = "horizontal", seed: int = 0, name: str = "data") -> List[OwnerData]:
    """Partition one data set among ``n_owners``.

    horizontal: records shuffled with ``seed`` and dealt in contiguous, nearly equal blocks (each owner
    gets a share of both classes where possible: the shuffle is stratified); vertical: genes in
    contiguous blocks, every owner has all samples, labels at owner 0.
    """
    if n_owners < 1:
        raise ValueError("n_owners must be >= 1")
    genes = list(genes)
    if split == "horizontal":
        if n_owners > x.shape[0]:
            raise ValueError(f"{n_owners} owners for {x.shape[0]} records")
        rng = np.random.default_rng(seed)
        parts = [[] for _ in range(n_owners)]
        # Deal each class round-robin so every owner gets both classes when it can.
        offset = 0
        for c in (1.0, 0.0):
            idx = np.flatnonzero(y == c)
            rng.shuffle(idx)
            for t, i in enumerate(idx):
                parts[(t + offset) % n_owners].append(int(i))
            offset += len(idx)
        out = []
        for k, p in enumerate(parts):
            p = np.sort(np.asarray(p, dtype=np.int64))
            out.append(OwnerData(x=x[p], y=y[p], genes=genes, source=f"{name}[owner{k}]",
                                 sample_ids=[str(i) for i in p]))
        return out
    if split == "vertical":
        if n_owners > x.shape[1]:
            raise ValueError(f"{n_owners} owners for {x.shape[1]} genes")
        bounds = np.linspace(0, x.shape[1], n_owners + 1).astype(int)
        return [
            OwnerData(x=x[:, a:b], y=(y if k == 0 else None), genes=genes[a:b],
                      source=f"{name}[owner{k}]", sample_ids=[str(i) for i in range(x.shape[0])])
            for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
        ]
    raise ValueError(f"split must be 'horizontal' or 'vertical', got {split!r}")


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): ``round(test_fraction * n_c)`` of each class go to test (at least one
    of each class stays in training). ``test_fraction == 0`` keeps everything for training."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test fraction must be in [0, 1), got {test_fraction}")
    n = len(y)
    if test_fraction == 0.0:
        return np.arange(n), np.arange(0)
    rng = np.random.default_rng(seed)
    test = []
    for c in (0.0, 1.0):
        idx = np.flatnonzero(y == c)
        k = int(round(test_fraction * len(idx)))
        k = min(k, max(len(idx) - 1, 0))
        test.extend(rng.permutation(idx)[:k].tolist())
    test = np.sort(np.asarray(test, dtype=np.int64))
    train = np.setdiff1d(np.arange(n), test)
    return train, test
