"""Loaders for one data owner's records, and the checks across owners.

Formats (one owner each):
- iDASH: two genes x samples tables, a tumor file and a normal file (tab-separated; first row the
  sample ids, first column the gene names). Tumor samples get label 1, normal samples label 0.
- CSV/TSV: samples x genes with a header row and a label column (``label`` by default; 0/1). An
  optional first column of sample ids is recognised by an empty header cell or the name
  ``sample``/``sample_id``/``id``. ``.tsv``/``.txt`` are tab-separated, ``.csv`` comma-separated.
- ``.npz``: arrays ``x`` (samples x genes), ``y`` (optional, 0/1) and ``genes`` (optional).

Every problem raises :class:`DataError` naming the file, and the row and column where there is one
(rows are 1-based line numbers in the file).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

ID_COLUMN_NAMES = ("", "sample", "sample_id", "sampleid", "id")


class DataError(ValueError):
    """A data file is malformed; the message names the file, row and column."""


@dataclass
class OwnerData:
    """One owner's records: ``x`` samples x genes (float64), ``y`` 0/1 labels or None."""

    x: np.ndarray
    y: Optional[np.ndarray]
    genes: List[str]
    source: str
    sample_ids: List[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def d(self) -> int:
        return int(self.x.shape[1])


def _delimiter(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        return ","
    if ext in (".tsv", ".txt", ".tab"):
        return "\t"
    with open(path, newline="") as f:
        head = f.readline()
    return "\t" if head.count("\t") >= head.count(",") else ","


def _read_rows(path: str) -> List[List[str]]:
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: the file is empty")
    delim = _delimiter(path)
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=delim)]
    # Drop trailing blank lines only (a blank line in the middle is an error below).
    while rows and all(c.strip() == "" for c in rows[-1]):
        rows.pop()
    if not rows:
        raise DataError(f"{path}: the file is empty")
    return rows


def _parse_cell(text: str, path: str, row: int, col_name: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise DataError(
            f"{path}: row {row}, column '{col_name}': non-numeric value {text.strip()!r}"
        ) from None
    if not np.isfinite(v):
        raise DataError(f"{path}: row {row}, column '{col_name}': value {text.strip()!r} is not finite")
    return v


def _check_finite(x: np.ndarray, path: str, row_names: Sequence[str], col_names: Sequence[str],
                  row_offset: int = 0):
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        r, c = (int(v) for v in bad[0])
        raise DataError(
            f"{path}: row {row_names[r] if row_names else r + 1 + row_offset}, column "
            f"'{col_names[c]}': value {float(x[r, c])!r} is not finite"
        )


def _labels(values: np.ndarray, path: str, label_column: str, row_of) -> np.ndarray:
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}: row {row_of(i)}, column '{label_column}': label {float(values[i])!r} is not 0 or 1"
        )
    return values.astype(np.float64)


def load_table(path: str, label_column: Optional[str] = "label",
               require_label: bool = True) -> OwnerData:
    """CSV/TSV, samples x genes, header row, a 0/1 label column (optional with require_label=False)."""
    rows = _read_rows(path)
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    id_col = 0 if header and header[0].lower() in ID_COLUMN_NAMES else None
    if label_column is not None and label_column in header:
        label_idx = header.index(label_column)
    else:
        label_idx = None
        if require_label:
            raise DataError(
                f"{path}: row 1: no label column '{label_column}' in the header "
                f"(columns: {', '.join(header[:5])}{', ...' if len(header) > 5 else ''})"
            )
    gene_idx = [j for j in range(len(header)) if j != id_col and j != label_idx]
    if not gene_idx:
        raise DataError(f"{path}: row 1: no gene columns in the header")
    genes = [header[j] for j in gene_idx]
    seen = {}
    for j, g in zip(gene_idx, genes):
        if g == "":
            raise DataError(f"{path}: row 1, column {j + 1}: empty gene name")
        if g in seen:
            raise DataError(f"{path}: row 1, column {j + 1}: gene '{g}' appears twice")
        seen[g] = j
    x = np.empty((len(body), len(gene_idx)), dtype=np.float64)
    y = np.empty(len(body), dtype=np.float64) if label_idx is not None else None
    ids = []
    for i, r in enumerate(body):
        line = i + 2
        if len(r) != len(header):
            raise DataError(
                f"{path}: row {line}: {len(r)} cells, the header has {len(header)} columns"
            )
        for k, j in enumerate(gene_idx):
            x[i, k] = _parse_cell(r[j], path, line, header[j])
        if y is not None:
            y[i] = _parse_cell(r[label_idx], path, line, header[label_idx])
        ids.append(r[id_col] if id_col is not None else str(i))
    if y is not None:
        y = _labels(y, path, label_column, lambda i: i + 2)
    return OwnerData(x=x, y=y, genes=genes, source=path, sample_ids=ids)


def _load_genes_by_samples(path: str):
    rows = _read_rows(path)
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise DataError(f"{path}: no gene rows after the header")
    samples = header[1:]
    if not samples:
        raise DataError(f"{path}: row 1: no sample columns in the header")
    genes = []
    x = np.empty((len(body), len(samples)), dtype=np.float64)
    for i, r in enumerate(body):
        line = i + 2
        if len(r) != len(header):
            raise DataError(f"{path}: row {line}: {len(r)} cells, the header has {len(header)} columns")
        genes.append(r[0].strip())
        for j in range(len(samples)):
            x[i, j] = _parse_cell(r[j + 1], path, line, samples[j])
    return genes, samples, x.T


def load_idash(tumor_path: str, normal_path: str) -> OwnerData:
    """iDASH'19 format: genes x samples tables, tumor (label 1) and normal (label 0) files."""
    g_t, s_t, x_t = _load_genes_by_samples(tumor_path)
    g_n, s_n, x_n = _load_genes_by_samples(normal_path)
    _compare_genes([(tumor_path, g_t), (normal_path, g_n)], axis_word="row", offset=2)
    x = np.concatenate([x_t, x_n], axis=0)
    y = np.concatenate([np.ones(len(s_t)), np.zeros(len(s_n))])
    return OwnerData(x=x, y=y, genes=g_t, source=f"{tumor_path},{normal_path}",
                     sample_ids=list(s_t) + list(s_n))


def load_npz(path: str, label_column: Optional[str] = "label", require_label: bool = True) -> OwnerData:
    """``x`` (samples x genes), ``y`` (0/1, optional), ``genes`` (optional) arrays."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: the file is empty")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile / format errors
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    if "x" not in z:
        raise DataError(f"{path}: no array 'x' (samples x genes); arrays: {', '.join(z.files)}")
    x = np.asarray(z["x"])
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{path}: array 'x' must be a non-empty 2-D samples x genes array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: array 'x' is not numeric (dtype {x.dtype})")
    x = np.asarray(x, dtype=np.float64)  # no copy when the file already holds float64
    genes = [str(g) for g in z["genes"]] if "genes" in z else [f"g{j}" for j in range(x.shape[1])]
    if len(genes) != x.shape[1]:
        raise DataError(f"{path}: 'genes' has {len(genes)} names for {x.shape[1]} columns of 'x'")
    _check_finite(x, path, [], genes)
    y = None
    if "y" in z:
        y = np.asarray(z["y"], dtype=np.float64).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{path}: 'y' has {y.shape[0]} labels for {x.shape[0]} rows of 'x'")
        y = _labels(y, path, "y", lambda i: i + 1)
    elif require_label:
        raise DataError(f"{path}: no array 'y' (labels)")
    return OwnerData(x=x, y=y, genes=genes, source=path, sample_ids=[str(i) for i in range(x.shape[0])])


def load_owner(spec: str, label_column: Optional[str] = "label", require_label: bool = True) -> OwnerData:
    """One ``--data`` argument: ``TUMOR,NORMAL`` (iDASH pair), a ``.npz`` file, or a CSV/TSV table."""
    if "," in spec:
        parts = spec.split(",")
        if len(parts) != 2 or not all(parts):
            raise DataError(f"{spec}: an iDASH owner is given as TUMOR_FILE,NORMAL_FILE")
        return load_idash(parts[0], parts[1])
    if spec.lower().endswith(".npz"):
        return load_npz(spec, label_column, require_label)
    return load_table(spec, label_column, require_label)


def _compare_genes(named_lists, axis_word="column", offset=1):
    ref_path, ref = named_lists[0]
    for path, genes in named_lists[1:]:
        if genes == ref:
            continue
        if len(genes) != len(ref):
            raise DataError(
                f"{path}: {len(genes)} genes, but {ref_path} has {len(ref)}: owners must hold the same "
                "genes in the same order"
            )
        k = next(i for i, (a, b) in enumerate(zip(ref, genes)) if a != b)
        raise DataError(
            f"{path}: {axis_word} {k + offset}: gene '{genes[k]}' where {ref_path} has '{ref[k]}': "
            "owners must hold the same genes in the same order"
        )


def check_owners(owners: Sequence[OwnerData], split: str = "horizontal") -> None:
    """Checks across owners: genes, record counts, labels, both classes present."""
    if not owners:
        raise DataError("no data owners")
    if split == "horizontal":
        _compare_genes([(o.source, o.genes) for o in owners])
        for o in owners:
            if o.y is None:
                raise DataError(f"{o.source}: no labels; in a horizontal split every owner holds labels")
        y = np.concatenate([o.y for o in owners])
        where = ", ".join(o.source for o in owners)
    elif split == "vertical":
        n0 = owners[0].n
        for o in owners[1:]:
            if o.n != n0:
                raise DataError(
                    f"{o.source}: {o.n} samples, but {owners[0].source} has {n0}: in a vertical split "
                    "owners hold different genes of the same samples, row by row"
                )
        holders = [o for o in owners if o.y is not None]
        if len(holders) != 1:
            raise DataError(
                "in a vertical split exactly one owner holds the label column; found it in "
                f"{len(holders)} of: {', '.join(o.source for o in owners)}"
            )
        seen = {}
        for o in owners:
            for j, g in enumerate(o.genes):
                if g in seen:
                    raise DataError(f"{o.source}: column {j + 1}: gene '{g}' is also held by {seen[g]}")
                seen[g] = o.source
        y = holders[0].y
        where = holders[0].source
    else:
        raise ValueError(f"split must be 'horizontal' or 'vertical', got {split!r}")
    for o in owners:
        if o.n == 0:
            raise DataError(f"{o.source}: no samples")
        _check_finite(o.x, o.source, [], o.genes)
    classes = np.unique(y)
    if classes.size < 2:
        raise DataError(
            f"{where}: every label is {int(classes[0])} (a single class); logistic regression "
            "needs both classes"
        )


def save_table(path: str, x: np.ndarray, y: Optional[np.ndarray], genes: Sequence[str],
               label_column: str = "label") -> None:
    """Write samples x genes (+ label column) as CSV/TSV (by extension)."""
    delim = "\t" if path.lower().endswith((".tsv", ".txt")) else ","
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delim)
        w.writerow(list(genes) + ([label_column] if y is not None else []))
        for i in range(x.shape[0]):
            w.writerow([repr(float(v)) for v in x[i]] + ([int(y[i])] if y is not None else []))


def save_idash(tumor_path: str, normal_path: str, x: np.ndarray, y: np.ndarray,
               genes: Sequence[str]) -> None:
    """Write one owner's data in the iDASH format (genes x samples, tab-separated)."""
    for path, label in ((tumor_path, 1), (normal_path, 0)):
        idx = np.flatnonzero(y == label)
        with open(path, "w", newline="") as f:
            w = csv.writer(f, delimiter="\t")
            w.writerow(["Hybridization REF"] + [f"S{i}" for i in idx])
            for j, g in enumerate(genes):
                w.writerow([g] + [repr(float(v)) for v in x[idx, j]])
