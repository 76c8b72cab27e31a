"""The numeric envelope (tfe_accel.fixedpoint, tfe_accel.models.envelope): each limit at its edge.

Just inside a limit the secure step is correct after reveal; just outside, the envelope (or the owner's
check, or AcceleratedABY3's encoder) refuses it before anything is shared -- and, for the ring limits,
the secure step really is wrong well outside (the limit is not arbitrary). Small fractional-bit counts
(f = 24: products below 2^14) keep the edge cases small."""
import logging

import numpy as np
import pytest
import tensorflow as tf
import tf_encrypted as tfe

import tfe_accel
from tfe_accel.fixedpoint import (FixedPointRangeError, assert_encodable, check_encodable, operand_limit,
                                  product_limit, value_limit)
from tfe_accel.models import SecureLogisticRegression, TrainConfig, mpc, relative_l2, train_plaintext
from tfe_accel.models.envelope import (NumericRangeError, check_owner_values, check_revealed_model,
                                       choose_fractional_bits, envelope, failing, max_value_limit,
                                       owner_values)
from tfe_accel.protocol import AcceleratedABY3


@pytest.fixture(scope="module", autouse=True)
def partitioned(partitioned_config):
    yield


def _prot(f=16, **kw):
    prot = AcceleratedABY3(fixedpoint_config=mpc.fixedpoint_config(f), **kw)
    tfe.set_protocol(prot)
    return prot


def _reveal(t):
    return np.asarray(t.reveal().to_native())


# -- the fixed-point format's own limits ------------------------------------------------------------

def test_limits_of_the_format():
    assert value_limit(16) == 2.0**46 and product_limit(16) == 2.0**30 and operand_limit(16) == 2.0**15
    assert product_limit(20) == 2.0**22


@pytest.mark.parametrize("f", [16, 20])
def test_check_encodable_edges(f, caplog):
    top = value_limit(f)
    assert check_encodable(np.array([top * (1 - 2**-40), -1.0]), f, warn=False) > 0  # just inside
    for bad, msg in [(top, "does not fit"), (-top, "does not fit"), (np.nan, "NaN"), (np.inf, "infinite")]:
        with pytest.raises(FixedPointRangeError, match=msg):
            check_encodable(np.array([0.0, bad]), f, what="x")
    with caplog.at_level(logging.WARNING, logger="tfe_accel"):
        check_encodable(np.array([operand_limit(f) * 0.99]), f)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="tfe_accel"):
        check_encodable(np.array([operand_limit(f) * 1.01]), f, what="big")
    assert any("big" in r.getMessage() and f"2^{62 - 2 * f}" in r.getMessage() for r in caplog.records)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # the stock wrap
def test_accelerated_aby3_refuses_values_that_would_wrap():
    prot = _prot(16)
    top = value_limit(16)
    ok = prot.define_private_variable(np.array([[top / 4, -3.5]]), name="fine")
    np.testing.assert_allclose(_reveal(ok), [[top / 4, -3.5]])
    with pytest.raises(FixedPointRangeError, match="private variable 'w'.*does not fit"):
        prot.define_private_variable(np.array([[top * 1.5]]), name="w")
    with pytest.raises(FixedPointRangeError, match="constant.*NaN"):
        prot.define_constant(np.array([1.0, np.nan]))
    with pytest.raises(FixedPointRangeError, match="public variable"):
        prot.define_public_variable(np.array([-top]))
    # stock behaviour on request: the value wraps around silently
    raw = _prot(16, check_ranges=False)
    wrapped = _reveal(raw.define_private_variable(np.array([[top * 4]])))
    assert abs(wrapped[0, 0] - top * 4) > 1.0


def test_accelerated_aby3_warns_where_a_product_could_overflow(caplog):
    prot = _prot(16)
    with caplog.at_level(logging.WARNING, logger="tfe_accel"):
        prot.define_private_variable(np.array([[4e4]]), name="large")
    assert any("'large'" in r.getMessage() and "2^30" in r.getMessage() for r in caplog.records)


def test_private_input_checked_on_the_owners_device():
    prot = _prot(16)
    top = value_limit(16)
    good = prot.define_private_input("server0", lambda: tf.constant([[1.5, -2.0]], tf.float64))
    np.testing.assert_allclose(_reveal(good), [[1.5, -2.0]])
    for bad in (top * 2, np.nan):
        with pytest.raises(tf.errors.InvalidArgumentError, match="private input of server0.*fixed-point range"):
            x = prot.define_private_input("server0", lambda: tf.constant([[1.0, bad]], tf.float64))
            _reveal(x)


def test_assert_encodable_in_a_graph():
    f = tf.function(lambda t: assert_encodable(t, 20, "feature"))
    np.testing.assert_array_equal(f(tf.constant([1.0, -2.0])).numpy(), [1.0, -2.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="feature"):
        f(tf.constant([1.0, 2.0**43]))


# -- ring limits of the secure steps: inside correct, well outside wrong ------------------------------

def test_sum_of_products_limit_is_real():
    """A matmul (gradient, logits, sums of squares) whose result stays below 2^(62 - 2f) is exact to an
    ulp or two; at 4x the limit the truncation wraps around."""
    f = 24
    prot = _prot(f)
    P = product_limit(f)  # 16384
    a = np.full((1, 64), 16.0)
    inside = np.full((64, 1), 0.9 * P / (64 * 16.0))
    outside = np.full((64, 1), 4.0 * P / (64 * 16.0))
    mm = tfe_accel.function(lambda x, y: prot.matmul(x, y))
    xa = prot.define_private_variable(a)
    got_in = _reveal(mm(xa, prot.define_private_variable(inside)))
    np.testing.assert_allclose(got_in, a @ inside, rtol=1e-5)
    got_out = _reveal(mm(xa, prot.define_private_variable(outside)))
    assert abs(got_out[0, 0] - (a @ outside)[0, 0]) > 1.0


def test_column_sum_squares_edge():
    """n L^2 < 2^(62 - 2f): 16 records of +-30 (n L^2 = 14,400 < 16,384 at f = 24) are exact; the
    envelope refuses L = 33 for 16 records at f = 24 (17,424)."""
    f, n = 24, 16
    prot = _prot(f)
    xv = np.tile([[30.0], [-30.0]], (n // 2, 3))
    mv = np.zeros((1, 3))
    got = _reveal(tfe_accel.function(lambda x, m: mpc.column_sum_squares(prot, x, m))(
        prot.define_private_variable(xv), prot.define_private_variable(mv)))
    np.testing.assert_allclose(got, [[n * 900.0] * 3], rtol=1e-6)
    names = {b.step for b in failing(envelope(n, 33.0, f))}
    assert "sum of squares of the centred gene" in names
    assert "sum of squares of the centred gene" not in {b.step for b in failing(envelope(n, 30.0, f))}


def test_reciprocal_domain_edges():
    """1/(var + eps) is correct up to the top piece 2^11 (the envelope's L <= 45.25) and down to the
    class-weight fractions' 1/n > 2^-(f-1)."""
    prot = _prot(20)
    v = np.array([[45.25**2 + 1e-3, 2047.0, 1e-3, 2.0**-18, 1.0 / 5000]])
    got = _reveal(tfe_accel.function(lambda x: mpc.reciprocal(prot, x))(prot.define_private_variable(v)))
    # Correct over the whole domain, to the format's resolution: one ulp 2^-f of x relative to x
    # (near the bottom: the class weight of a class of k records is within ~ n 2^-f / k) and one ulp
    # of the result relative to 1/x (near the top: 2^-f x).
    rel = np.abs(got - 1.0 / v) / (1.0 / v)
    ulp = 2.0**-20
    assert (rel <= 1e-4 + 3 * ulp * (v + 1.0 / v)).all(), rel
    top = max_value_limit(470, 20)
    assert 45.2 < top < 45.26
    assert not failing(envelope(470, 45.25, 20)) and failing(envelope(470, 45.3, 20))
    assert any(b.step.startswith("class-weight reciprocal") for b in failing(envelope(2**19, 1.0, 20)))


def test_mul_const_limit():
    """x * (1/n) as M 2^-s (M < 2^20): exact while |x| < 2^(42 - f)."""
    f = 24
    prot = _prot(f)
    C = 2.0 ** (42 - f)
    xv = np.array([[0.9 * C, -0.5 * C, 3.0]])
    got = _reveal(tfe_accel.function(lambda x: mpc.mul_const(prot, x, 1.0 / 470))(prot.define_private_variable(xv)))
    np.testing.assert_allclose(got, xv / 470, rtol=1e-5)
    xo = np.array([[8.0 * C]])
    out = _reveal(tfe_accel.function(lambda x: mpc.mul_const(prot, x, 1.0 / 470))(prot.define_private_variable(xo)))
    assert abs(out[0, 0] - xo[0, 0] / 470) > 1.0


# -- choosing the fractional bits ---------------------------------------------------------------------

def test_choose_fractional_bits():
    assert choose_fractional_bits(470, 32.0) == 21  # BC-TCGA
    assert choose_fractional_bits(38, 32.0) == 21  # Golub
    assert choose_fractional_bits(5000, 32.0) == 19
    assert choose_fractional_bits(470, 32.0, requested=16) == 16
    with pytest.raises(NumericRangeError, match=r"(?s)sum of squares.*at most 45.25"):
        choose_fractional_bits(470, 100.0, requested=20)
    with pytest.raises(NumericRangeError, match="reciprocal"):
        choose_fractional_bits(470, 100.0)
    # without standardisation there is no variance and no reciprocal of it
    assert choose_fractional_bits(470, 100.0, standardize=False) == 21
    # too many records for any setting: the closest one is explained, with what would fit
    with pytest.raises(NumericRangeError, match=r"(?s)closest, 17.*variance.*value limit can be at most 28.9"):
        choose_fractional_bits(40000, 32.0)
    with pytest.raises(NumericRangeError, match=r"(?s)class-weight reciprocal.*--class-weight public"):
        choose_fractional_bits(200000, 32.0)
    assert choose_fractional_bits(200000, 32.0, class_weight="public") == 14  # with a warning
    for b in envelope(470, 32.0, 20):
        assert b.ok, b


# -- owner-side checks and remedies -------------------------------------------------------------------

def test_owner_check_names_file_gene_value_limit_and_remedy():
    x = np.abs(np.random.default_rng(0).normal(8, 1, size=(5, 4)))
    check_owner_values(x, 32.0, "owner0 (a.csv)", ["g1", "g2", "g3", "g4"])
    raw = np.exp2(x)
    raw[3, 2] = 2e4
    with pytest.raises(NumericRangeError) as e:
        check_owner_values(raw, 32.0, "owner1 (b.csv)", ["g1", "g2", "g3", "g4"], 20)
    msg = str(e.value)
    for part in ("owner1 (b.csv)", "'g3' (gene column 3 of", "record 4", "20000", "|x| <= 32", "--log-transform",
                 "--scale"):
        assert part in msg, (part, msg)
    neg = x.copy()
    neg[0, 1] = -50.0  # not unlogged-looking: no log hint
    with pytest.raises(NumericRangeError, match="'g2'.*-50") as e:
        check_owner_values(neg, 32.0, "owner0", ["g1", "g2", "g3", "g4"])
    assert "look unlogged" not in str(e.value)
    x[1, 0] = 32.0
    check_owner_values(x, 32.0, "owner0")  # on the limit: accepted


def test_owner_remedies():
    x = np.array([[0.0, 3.0], [7.0, 1e5]])
    np.testing.assert_allclose(owner_values(x, log_transform=True), np.log2(x + 1))
    np.testing.assert_allclose(owner_values(x, scale=1e4), x / 1e4)
    assert owner_values(x) is x
    with pytest.raises(NumericRangeError, match="x >= 0.*'b' \\(gene column 2 of.*-2"):
        owner_values(np.array([[1.0, -2.0]]), log_transform=True, genes=["a", "b"])


def test_revealed_model_check():
    check_revealed_model(np.full(100, 1e-3), 3.0, 32.0, 20)
    with pytest.raises(NumericRangeError, match="may be wrong"):
        check_revealed_model(np.full(1000, 200.0), 3.0, 32.0, 20)


# -- the trainer: refused before sharing; remedies give the plaintext model --------------------------

def _unlogged(seed=0, n=60, d=40):
    from tfe_accel.data import split_owners, synthetic

    x, y, g = synthetic((n, d, n // 3), seed=seed, informative=8, effect=1.5)
    return np.clip(np.exp2(x), 1.0, 2e4), y, g, split_owners


def test_trainer_refuses_unlogged_values_before_sharing(monkeypatch):
    xu, y, g, split = _unlogged()
    owners = split(xu, y, g, 2, seed=0)
    tr = SecureLogisticRegression(TrainConfig(epochs=2))

    def no_mpc(*a, **k):
        raise AssertionError("secure set-up reached")

    monkeypatch.setattr(tr, "_setup", no_mpc)
    with pytest.raises(NumericRangeError, match="owner0 .*gene.*--log-transform"):
        tr.fit(owners)


@pytest.mark.parametrize("remedy", [dict(log_transform=True), dict(scale=1000.0)])
def test_trainer_remedies_match_plaintext(remedy):
    xu, y, g, split = _unlogged(seed=1)
    owners = split(xu, y, g, 2, seed=0)
    cfg = TrainConfig(epochs=10, learning_rate=0.1, **remedy)
    res = SecureLogisticRegression(cfg, protocol="accelerated").fit(owners)
    assert res.fractional_bits == 21
    X = np.concatenate([o.x for o in owners])
    Y = np.concatenate([o.y for o in owners])
    ref = train_plaintext(owner_values(X, cfg.log_transform, cfg.scale), Y, epochs=cfg.epochs,
                          learning_rate=cfg.learning_rate)
    want = np.r_[ref.weights / cfg.scale, ref.bias]  # the model in the original units
    assert relative_l2(np.r_[res.weights, res.bias], want) < 2e-3


def test_trainer_high_variance_and_constant_genes_at_the_limit():
    """Genes at the public limit's worst case: +-32 alternating (variance 1024, half the reciprocal's
    top), a constant gene (variance 0: eps alone), next to ordinary log-scale genes."""
    from tfe_accel.data import split_owners, synthetic

    x, y, g = synthetic((80, 30, 30), seed=5, informative=6, effect=1.5)
    x[:, 0] = np.where(np.arange(80) % 2, 32.0, -32.0)
    x[:, 1] = 7.25
    owners = split_owners(x, y, g, 2, seed=0)
    cfg = TrainConfig(epochs=10, learning_rate=0.1)
    res = SecureLogisticRegression(cfg, protocol="accelerated").fit(owners)
    X = np.concatenate([o.x for o in owners])
    Y = np.concatenate([o.y for o in owners])
    ref = train_plaintext(X, Y, epochs=cfg.epochs, learning_rate=cfg.learning_rate)
    assert relative_l2(np.r_[res.weights, res.bias], np.r_[ref.weights, ref.bias]) < 2e-3


def test_cli_refuses_unlogged_file_and_accepts_the_remedy(tmp_path):
    from conftest import run_python

    xu, y, g, _ = _unlogged(n=40, d=12)
    path = tmp_path / "raw.npz"
    np.savez(path, x=xu, y=y, genes=np.array(g))
    code = ("import sys; from tfe_accel.cli import main; "
            f"sys.exit(main(['train', '--data', {str(path)!r}, '--epochs', '2', '--no-progress', "
            f"'--test-fraction', '0', '--output', {str(tmp_path / 'out')!r}] + sys.argv[1:]))")
    r = run_python(code)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "error: owner0 (" in r.stderr and "--log-transform" in r.stderr
    r = run_python(code.replace("+ sys.argv[1:]", "+ ['--log-transform']"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "21 fractional bits (chosen by the numeric envelope)" in r.stdout
    assert "owners shared log2(x + 1)" in r.stdout
