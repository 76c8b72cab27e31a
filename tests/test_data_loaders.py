"""Loaders, validation errors (file, row, column), embedded and synthetic data, splits, metrics."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from tfe_accel.data import (
    DataError, OwnerData, check_owners, load_golub, load_idash, load_npz, load_owner, load_table,
    save_idash, save_table, split_owners, stratified_split, synthetic,
)
from tfe_accel.models import auc, classification_metrics, relative_l2, roc_curve, sigmoid_piecewise
from tfe_accel.models.plaintext import batch_schedule, class_weights


def _data(n=12, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = np.r_[np.ones(n // 3), np.zeros(n - n // 3)]
    return x, y, [f"G{j}" for j in range(d)]


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


# -- round trips -------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["csv", "tsv"])
def test_table_round_trip(tmp_path, ext):
    x, y, g = _data()
    p = str(tmp_path / f"a.{ext}")
    save_table(p, x, y, g)
    o = load_owner(p)
    np.testing.assert_array_equal(o.x, x)
    np.testing.assert_array_equal(o.y, y)
    assert o.genes == g and o.n == 12 and o.d == 5


def test_table_with_sample_id_column_and_custom_label(tmp_path):
    p = _write(tmp_path / "a.csv", "sample,G1,G2,status\ns1,1.5,2,1\ns2,-3,4e-1,0\n")
    o = load_table(p, label_column="status")
    np.testing.assert_array_equal(o.x, [[1.5, 2.0], [-3.0, 0.4]])
    np.testing.assert_array_equal(o.y, [1, 0])
    assert o.genes == ["G1", "G2"] and o.sample_ids == ["s1", "s2"]


def test_npz_round_trip(tmp_path):
    x, y, g = _data()
    p = str(tmp_path / "a.npz")
    np.savez(p, x=x, y=y, genes=np.array(g))
    o = load_owner(p)
    np.testing.assert_array_equal(o.x, x)
    np.testing.assert_array_equal(o.y, y)
    assert o.genes == g


def test_idash_round_trip(tmp_path):
    x, y, g = _data()
    t, n = str(tmp_path / "T.txt"), str(tmp_path / "N.txt")
    save_idash(t, n, x, y, g)
    o = load_owner(f"{t},{n}")
    order = np.r_[np.flatnonzero(y == 1), np.flatnonzero(y == 0)]
    np.testing.assert_array_equal(o.x, x[order])
    np.testing.assert_array_equal(o.y, y[order])
    assert o.genes == g


# -- every loader error names file, row and column ---------------------------------------------

def test_non_numeric_cell(tmp_path):
    p = _write(tmp_path / "a.csv", "G1,G2,label\n1,2,1\n3,abc,0\n")
    with pytest.raises(DataError, match=r"a\.csv: row 3, column 'G2': non-numeric value 'abc'"):
        load_table(p)


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity"])
def test_nan_inf_cell(tmp_path, bad):
    p = _write(tmp_path / "a.csv", f"G1,G2,label\n1,2,1\n{bad},1,0\n")
    with pytest.raises(DataError, match=r"a\.csv: row 3, column 'G1': value .* is not finite"):
        load_table(p)


def test_nan_in_npz(tmp_path):
    x, y, g = _data()
    x[4, 2] = np.nan
    p = str(tmp_path / "a.npz")
    np.savez(p, x=x, y=y, genes=np.array(g))
    with pytest.raises(DataError, match=r"a\.npz: row 5, column 'G2': value nan is not finite"):
        load_npz(p)


def test_nan_in_idash(tmp_path):
    t = _write(tmp_path / "T.txt", "ref\tS1\tS2\nG1\t1\tNA\nG2\t2\t3\n")
    n = _write(tmp_path / "N.txt", "ref\tS3\nG1\t1\nG2\t2\n")
    with pytest.raises(DataError, match=r"T\.txt: row 2, column 'S2': non-numeric value 'NA'"):
        load_idash(t, n)


@pytest.mark.parametrize("name,text,msg", [
    ("empty.csv", "", r"empty\.csv: the file is empty"),
    ("blank.csv", "\n\n", r"blank\.csv: the file is empty"),
    ("header.csv", "G1,G2,label\n", r"header\.csv: no data rows"),
    ("empty.npz", "", r"empty\.npz: the file is empty"),
])
def test_empty_files(tmp_path, name, text, msg):
    p = _write(tmp_path / name, text)
    with pytest.raises(DataError, match=msg):
        load_owner(p)


def test_empty_idash_file(tmp_path):
    t = _write(tmp_path / "T.txt", "")
    n = _write(tmp_path / "N.txt", "ref\tS3\nG1\t1\n")
    with pytest.raises(DataError, match=r"T\.txt: the file is empty"):
        load_owner(f"{t},{n}")


def test_ragged_row_and_bad_label_and_missing_label(tmp_path):
    p = _write(tmp_path / "a.csv", "G1,G2,label\n1,2,1\n3,0\n")
    with pytest.raises(DataError, match=r"a\.csv: row 3: 2 cells, the header has 3 columns"):
        load_table(p)
    p = _write(tmp_path / "b.csv", "G1,G2,label\n1,2,1\n3,0,2\n")
    with pytest.raises(DataError, match=r"b\.csv: row 3, column 'label': label 2\.0 is not 0 or 1"):
        load_table(p)
    p = _write(tmp_path / "c.csv", "G1,G2,y\n1,2,1\n")
    with pytest.raises(DataError, match=r"c\.csv: row 1: no label column 'label'"):
        load_table(p)
    p = _write(tmp_path / "d.csv", "G1,G1,label\n1,2,1\n")
    with pytest.raises(DataError, match=r"d\.csv: row 1, column 2: gene 'G1' appears twice"):
        load_table(p)


def test_mismatched_genes_across_owners(tmp_path):
    a = _write(tmp_path / "a.csv", "G1,G2,G3,label\n1,2,3,1\n")
    b = _write(tmp_path / "b.csv", "G1,GX,G3,label\n1,2,3,0\n")
    c = _write(tmp_path / "c.csv", "G1,G2,label\n1,2,0\n")
    with pytest.raises(DataError, match=r"b\.csv: column 2: gene 'GX' where .*a\.csv has 'G2'"):
        check_owners([load_owner(a), load_owner(b)])
    with pytest.raises(DataError, match=r"c\.csv: 2 genes, but .*a\.csv has 3"):
        check_owners([load_owner(a), load_owner(c)])


def test_mismatched_genes_tumor_vs_normal(tmp_path):
    t = _write(tmp_path / "T.txt", "ref\tS1\nG1\t1\nG2\t2\n")
    n = _write(tmp_path / "N.txt", "ref\tS3\nG1\t1\nG9\t2\n")
    with pytest.raises(DataError, match=r"N\.txt: row 3: gene 'G9' where .*T\.txt has 'G2'"):
        load_idash(t, n)


def test_single_class(tmp_path):
    a = _write(tmp_path / "a.csv", "G1,label\n1,1\n2,1\n")
    b = _write(tmp_path / "b.csv", "G1,label\n3,1\n")
    with pytest.raises(DataError, match=r"a\.csv, .*b\.csv: every label is 1 \(a single class\)"):
        check_owners([load_owner(a), load_owner(b)])
    # One owner holding a single class is fine when the union has both (the iDASH tumor/normal case).
    c = _write(tmp_path / "c.csv", "G1,label\n3,0\n")
    check_owners([load_owner(a), load_owner(c)])


def test_vertical_checks(tmp_path):
    x, y, g = _data()
    owners = split_owners(x, y, g, 2, "vertical")
    check_owners(owners, "vertical")
    short = OwnerData(x[:5, 3:], None, g[3:], "short.csv")
    with pytest.raises(DataError, match=r"short\.csv: 5 samples, but .* has 12"):
        check_owners([owners[0], short], "vertical")
    two = OwnerData(owners[1].x, y, owners[1].genes, "two.csv")
    with pytest.raises(DataError, match="exactly one owner holds the label column; found it in 2"):
        check_owners([owners[0], two], "vertical")
    dup = OwnerData(owners[0].x, None, owners[0].genes, "dup.csv")
    with pytest.raises(DataError, match=r"dup\.csv: column 1: gene 'G0' is also held by"):
        check_owners([owners[0], dup], "vertical")


# -- embedded and synthetic data, splits ---------------------------------------------------------

def test_golub_embedded():
    x, y, g = load_golub()
    assert x.shape == (38, 3051) and len(g) == 3051
    assert int(y.sum()) == 11 and int((1 - y).sum()) == 27
    assert np.isfinite(x).all() and g[0].startswith("AFFX")


@pytest.mark.parametrize("name,shape,n_pos", [("bc-tcga", (470, 17814), 422), ("gse2034", (225, 12634), 142)])
def test_synthetic_idash_shapes(name, shape, n_pos):
    x, y, g = synthetic(name, seed=1)
    assert x.shape == shape and int(y.sum()) == n_pos and len(g) == shape[1]
    assert np.isfinite(x).all() and 2 < x.mean() < 14  # log-expression-like
    x2, y2, _ = synthetic(name, seed=1)
    np.testing.assert_array_equal(x, x2)


def test_synthetic_standardised_and_errors():
    x, y, _ = synthetic((50, 20, 10), seed=0, log_scale=False)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-12)
    with pytest.raises(ValueError, match="unknown synthetic shape"):
        synthetic("nope")
    with pytest.raises(ValueError, match="0 < n_pos < n"):
        synthetic((10, 5, 10))


def test_split_owners_partitions():
    x, y, g = _data(n=21)
    hs = split_owners(x, y, g, 3, "horizontal", seed=2)
    idx = np.concatenate([[int(s) for s in o.sample_ids] for o in hs])
    assert sorted(idx.tolist()) == list(range(21))
    assert all(0 < o.y.sum() < o.n for o in hs)
    vs = split_owners(x, y, g, 2, "vertical")
    np.testing.assert_array_equal(np.concatenate([o.x for o in vs], axis=1), x)
    assert vs[0].y is not None and vs[1].y is None


def test_stratified_split():
    y = np.r_[np.ones(40), np.zeros(60)]
    tr, te = stratified_split(y, 0.25, seed=3)
    assert len(te) == 25 and y[te].sum() == 10
    assert sorted(np.r_[tr, te].tolist()) == list(range(100))
    tr, te = stratified_split(y, 0.0, seed=3)
    assert len(tr) == 100 and len(te) == 0
    with pytest.raises(ValueError, match="test fraction"):
        stratified_split(y, 1.0, 0)


# -- plaintext helpers and metrics ---------------------------------------------------------------

def test_piecewise_sigmoids_match_tfe_pieces():
    z = np.array([-10, -4, -3.9, -1.5, -1.4, 0, 1.5, 1.6, 4, 4.1])
    want5 = [1e-4, 1e-4, 0.281 + 0.066 * -3.9, 0.281 + 0.066 * -1.5, 0.5 + 0.212 * -1.4, 0.5,
             0.5 + 0.212 * 1.5, 0.719 + 0.066 * 1.6, 0.719 + 0.066 * 4, 1 - 1e-4]
    np.testing.assert_allclose(sigmoid_piecewise(z, "5-piece"), want5)
    z3 = np.array([-3, -2.5, -2.4, 2.5, 2.6])
    np.testing.assert_allclose(sigmoid_piecewise(z3, "3-piece"),
                               [1e-4, 1e-4, 0.5 + 0.17 * -2.4, 0.5 + 0.17 * 2.5, 1 - 1e-4])


def test_class_weights_and_batches():
    y = np.r_[np.ones(3), np.zeros(9)]
    c = class_weights(y, "balanced")
    np.testing.assert_allclose(c[:3], 12 / 6)
    np.testing.assert_allclose(c[3:], 12 / 18)
    np.testing.assert_allclose(class_weights(y, "none"), 1)
    bs = batch_schedule(10, 4, epoch=1, seed=0)
    assert len(bs) == 3 and all(len(b) == 4 for b in bs)
    assert set(np.concatenate(bs).tolist()) == set(range(10))
    assert [b.tolist() for b in bs] == [b.tolist() for b in batch_schedule(10, 4, 1, 0)]
    assert batch_schedule(10, None, 0, 0)[0].tolist() == list(range(10))


def test_metrics_against_brute_force():
    rng = np.random.default_rng(5)
    y = (rng.random(200) < 0.3).astype(float)
    s = np.round(rng.normal(size=200) + y, 1)  # ties on purpose
    pos, neg = s[y == 1], s[y == 0]
    brute = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert auc(y, s) == pytest.approx(brute, abs=1e-12)
    fpr, tpr = roc_curve(y, s)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # NumPy 2 renamed it
    assert trapezoid(tpr, fpr) == pytest.approx(brute, abs=1e-12)
    m = classification_metrics([1, 1, 0, 0, 0], [0.9, 0.2, 0.6, 0.1, 0.3])
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["balanced_accuracy"] == pytest.approx(0.5 * (0.5 + 2 / 3))
    assert m["f1"] == pytest.approx(0.5)
    assert relative_l2([1, 2], [1, 2]) == 0.0
    assert relative_l2([0, 0], [3, 4]) == pytest.approx(1.0)
