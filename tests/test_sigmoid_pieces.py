"""The piecewise-linear sigmoids (tfe_accel.models.plaintext.SIGMOIDS): their error against the
sigmoid, the secure evaluation (stock ABY3 and AcceleratedABY3, after reveal) against the NumPy
reference, the rounds of the 8-piece one against TFE's 5-piece one, and training with it."""
import numpy as np
import pytest
import tf_encrypted as tfe

import tfe_accel
from tfe_accel.accounting import communication
from tfe_accel.data import split_owners, synthetic
from tfe_accel.models import SecureLogisticRegression, TrainConfig, relative_l2, train_plaintext
from tfe_accel.models.mpc import secure_sigmoid
from tfe_accel.models.plaintext import SIGMOIDS, sigmoid_exact, sigmoid_piecewise
from tfe_accel.protocol import AcceleratedABY3

ULP = 2.0**-16


@pytest.fixture(scope="module", autouse=True)
def partitioned(partitioned_config):
    yield


def _grid():
    return np.linspace(-10.0, 10.0, 2_000_001)


@pytest.mark.parametrize("name", sorted(SIGMOIDS))
def test_documented_max_error(name):
    z = _grid()
    err = np.abs(sigmoid_piecewise(z, name) - sigmoid_exact(z)).max()
    assert abs(err - SIGMOIDS[name]["max_error"]) < 1e-4, (name, err)


def test_8_piece_within_0_01_and_symmetric():
    z = _grid()
    s8 = sigmoid_piecewise(z, "8-piece")
    assert np.abs(s8 - sigmoid_exact(z)).max() <= 0.01
    assert np.abs(sigmoid_piecewise(z, "5-piece") - sigmoid_exact(z)).max() > 0.04
    # sigma(-z) = 1 - sigma(z) away from the pivots (where "<=" picks the left piece)
    spec = SIGMOIDS["8-piece"]
    away = np.min(np.abs(z[:, None] - np.array(spec["pivots"])[None, :]), axis=1) > 1e-6
    np.testing.assert_allclose(s8[away] + sigmoid_piecewise(-z[away], "8-piece"), 1.0, atol=2e-6)
    assert len(spec["coeffs"]) == len(spec["pivots"]) + 1


def _inputs(rng, name):
    """Values on the fixed-point grid, incl. 0.01, +-10, +-1e3, none within 1e-3 of a pivot (there the
    encoded pivot may differ from the real one by half an ulp)."""
    z = np.r_[rng.uniform(-8, 8, 197), 0.0 + 0.01, -10.0, 10.0, 1e3, -1e3]
    z = np.round(z / ULP) * ULP
    piv = np.array(SIGMOIDS[name]["pivots"])
    z = z[np.min(np.abs(z[:, None] - piv[None, :]), axis=1) > 1e-3]
    return z.reshape(-1, 1)


@pytest.mark.parametrize("protocol", ["stock", "accelerated"])
@pytest.mark.parametrize("name", sorted(SIGMOIDS))
def test_secure_sigmoid_matches_reference(protocol, name):
    rng = np.random.default_rng(abs(hash((protocol, name))) % 2**32)
    prot = AcceleratedABY3() if protocol == "accelerated" else tfe.protocol.ABY3()
    tfe.set_protocol(prot)
    z = _inputs(rng, name)
    x = prot.define_private_variable(z)
    got = np.asarray(tfe_accel.function(lambda t: secure_sigmoid(prot, t, name))(x).reveal().to_native())
    # one truncation of the slope product, the encoded coefficients: a few ulps
    np.testing.assert_allclose(got, sigmoid_piecewise(z, name), atol=3e-4)


def test_8_piece_has_the_rounds_of_the_5_piece():
    stats = {}
    for label, prot in (("stock", tfe.protocol.ABY3()), ("acc", AcceleratedABY3())):
        tfe.set_protocol(prot)
        x = prot.define_private_variable(np.linspace(-6, 6, 64).reshape(-1, 1))
        for name in ("5-piece", "8-piece"):
            stats[label, name] = communication(lambda: secure_sigmoid(prot, x, name))
    assert stats["acc", "8-piece"].rounds == stats["acc", "5-piece"].rounds
    assert stats["acc", "8-piece"].rounds <= stats["stock", "8-piece"].rounds
    assert stats["acc", "8-piece"].nodes < stats["stock", "8-piece"].nodes  # fused, not the fallback
    # messages grow with the pivots (7 vs 4), not the rounds
    assert stats["acc", "5-piece"].bytes < stats["acc", "8-piece"].bytes < 2.5 * stats["acc", "5-piece"].bytes


def test_unknown_sigmoid_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown sigmoid '9-piece'.*8-piece"):
        secure_sigmoid(None, None, "9-piece")
    with pytest.raises(ValueError, match="sigmoid must be one of"):
        TrainConfig(sigmoid="9-piece").validate()  # fit() validates first


def test_training_with_the_8_piece_sigmoid():
    x, y, g = synthetic((60, 40, 18), seed=2, informative=8, effect=1.0)
    owners = split_owners(x, y, g, 2, seed=0)
    cfg = TrainConfig(epochs=8, learning_rate=0.1, sigmoid="8-piece")
    res = SecureLogisticRegression(cfg, protocol="accelerated").fit(owners)
    X, Y = np.concatenate([o.x for o in owners]), np.concatenate([o.y for o in owners])
    kw = dict(epochs=8, learning_rate=0.1)
    ref8, ref5, exact = (train_plaintext(X, Y, sigmoid=s, **kw) for s in ("8-piece", "5-piece", "exact"))
    v = lambda m: np.r_[m.weights, m.bias]  # noqa: E731
    assert relative_l2(np.r_[res.weights, res.bias], v(ref8)) < 2e-3
    # the point of it: closer to the model an exact sigmoid would train
    assert relative_l2(v(ref8), v(exact)) < 0.5 * relative_l2(v(ref5), v(exact))
