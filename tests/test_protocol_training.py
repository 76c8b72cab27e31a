"""A 20-step logistic-regression training loop gives the same weights under stock ABY3 and
AcceleratedABY3 (within the fixed-point bound), compiled with tfe.function."""
import numpy as np
import pytest
import tf_encrypted as tfe

import tfe_accel  # noqa: F401
from tfe_accel.protocol import AcceleratedABY3


def _train(prot, X, y, steps=20, lr=0.5):
    tfe.set_protocol(prot)
    n, d = X.shape
    xs = tfe.define_private_variable(X)
    ys = tfe.define_private_variable(y)
    w = tfe.define_private_variable(np.zeros((d, 1)))

    @tfe.function
    def step(xs, ys):
        wv = w.read_value()  # the variable as it is now, never the snapshot taken at trace time
        p = prot.sigmoid(prot.matmul(xs, wv))
        g = prot.matmul(prot.transpose(xs), p - ys) * (lr / n)
        prot.assign(w, wv - g)
        return g

    for _ in range(steps):
        step(xs, ys)
    return w.read_value().reveal().to_native().numpy()


def _plain(X, y, steps=20, lr=0.5):
    def sig5(x):
        return np.select([x < -4, x < -1.5, x < 1.5, x < 4],
                         [np.full_like(x, 1e-4), 0.281 + 0.066 * x, 0.5 + 0.212 * x, 0.719 + 0.066 * x],
                         1 - 1e-4)
    w = np.zeros((X.shape[1], 1))
    for _ in range(steps):
        w = w - X.T @ (sig5(X @ w) - y) * (lr / len(X))
    return w


@pytest.mark.parametrize("truncation", ["heuristic", "local"])
def test_twenty_steps_same_weights(truncation):
    rng = np.random.default_rng()
    n, d = 48, 6
    X = rng.normal(size=(n, d))
    true_w = rng.normal(size=(d, 1))
    y = (X @ true_w + 0.3 * rng.normal(size=(n, 1)) > 0).astype(np.float64)
    w_stock = _train(tfe.protocol.ABY3(), X, y)
    w_acc = _train(AcceleratedABY3(truncation=truncation), X, y)
    w_plain = _plain(X, y)
    assert np.abs(w_plain).max() > 0.1  # training actually moved the weights
    # each step adds a few ulps of truncation error per weight; 20 steps stay far below 1e-2
    np.testing.assert_allclose(w_acc, w_stock, atol=5e-3)
    np.testing.assert_allclose(w_acc, w_plain, atol=5e-3)
