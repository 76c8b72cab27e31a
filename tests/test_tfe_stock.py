"""Stock TF Encrypted ABY3, made to work on TF 2.12 by `import tfe_accel`: secure ops reveal the
NumPy result within the fixed-point bound, eagerly and under tfe.function, with secure randomness."""
import numpy as np
import pytest
import tf_encrypted as tfe

from conftest import run_python

# fixed64_heuristic: 16 fractional bits. A truncated product may be off by a few ulps.
ULP = 2.0**-16


def sigmoid_5piece(x):
    """TFE's `_sigmoid_private` 5-piece approximation (pivots -4, -1.5, 1.5, 4), in NumPy."""
    return np.select(
        [x < -4, x < -1.5, x < 1.5, x < 4],
        [np.full_like(x, 1e-4), 0.281 + 0.066 * x, 0.5 + 0.212 * x, 0.719 + 0.066 * x],
        1 - 1e-4,
    )


def _inputs(rng, shape, scale=4.0):
    x = rng.uniform(-scale, scale, size=shape)
    # keep away from the sigmoid pivots, where a 1-ulp difference changes the piece
    for p in (-4, -1.5, 1.5, 4):
        x[np.abs(x - p) < 1e-3] += 2e-3
    return x


@pytest.fixture
def data():
    rng = np.random.default_rng()
    return _inputs(rng, (5, 7)), _inputs(rng, (5, 7)), _inputs(rng, (7, 3))


def _reveal(t):
    return t.reveal().to_native().numpy()


def test_eager_add_mul_matmul_sigmoid_compare(aby3, data):
    a, b, c = data
    x = tfe.define_private_variable(a)
    y = tfe.define_private_variable(b)
    w = tfe.define_private_variable(c)
    np.testing.assert_allclose(_reveal(x + y), a + b, atol=2 * ULP)
    np.testing.assert_allclose(_reveal(x * y), a * b, atol=8 * ULP)
    np.testing.assert_allclose(_reveal(tfe.matmul(x, w)), a @ c, atol=7 * 8 * ULP)
    np.testing.assert_allclose(_reveal(tfe.sigmoid(x)), sigmoid_5piece(a), atol=16 * ULP)
    gt = (x > y).reveal().to_native().numpy()
    np.testing.assert_array_equal(gt.astype(bool), a > b)


def test_tfe_function_matches_numpy(aby3, data):
    a, b, c = data
    x = tfe.define_private_variable(a)
    y = tfe.define_private_variable(b)
    w = tfe.define_private_variable(c)

    @tfe.function
    def step(x, y, w):
        return tfe.sigmoid(tfe.matmul(x * y, w))

    out = _reveal(step(x, y, w))
    expected = sigmoid_5piece((a * b) @ c)
    # 2 truncations before the sigmoid: allow a few dozen ulps through the slope <= 0.212
    np.testing.assert_allclose(out, expected, atol=64 * ULP)


def test_private_input_from_owner_player():
    code = r'''
import numpy as np, tf_encrypted as tfe
import tfe_accel
players = ["server0", "server1", "server2", "owner"]
tfe.set_config(tfe.LocalConfig(players))
tfe.set_protocol(tfe.protocol.ABY3())
v = np.arange(6, dtype=np.float64).reshape(2, 3) / 8
x = tfe.define_private_input("owner", lambda: __import__("tensorflow").constant(v))
print("OK", np.abs(x.reveal().to_native().numpy() - v).max())
'''
    r = run_python(code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "OK 0.0" in r.stdout


def test_no_insecure_randomness_warning_is_logged():
    code = r'''
import logging, io
buf = io.StringIO()
h = logging.StreamHandler(buf); h.setLevel(logging.DEBUG)
logging.getLogger().addHandler(h); logging.getLogger().setLevel(logging.DEBUG)
import tfe_accel, tf_encrypted as tfe, numpy as np
from tf_encrypted.operations import secure_random
tfe.set_protocol(tfe.protocol.ABY3())
x = tfe.define_private_variable(np.ones((2, 2)))
(x * x).reveal()
print("SEEDED", secure_random.supports_seeded_randomness())
print("LOG<<" + buf.getvalue() + ">>LOG")
'''
    r = run_python(code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SEEDED True" in r.stdout
    everything = r.stdout + r.stderr
    assert "insecure randomness" not in everything.lower()
    assert "Could not find aux module" not in everything


def test_shares_are_random_not_constant(aby3):
    # The same secret shared twice must get different shares (fresh OS seeds each time).
    v = np.ones((4, 4))
    s1 = tfe.define_private_variable(v).unwrapped[0][0].read_value().value.numpy()
    s2 = tfe.define_private_variable(v).unwrapped[0][0].read_value().value.numpy()
    assert not np.array_equal(s1, s2)


def test_fresh_randomness_ops_are_stateful_and_seeded_draws_are_not():
    """Ops drawing fresh OS randomness must be stateful (never folded, deduplicated or cached);
    seeded draws are functions of their inputs and must not be (as in TFE's own op): a stateful
    seeded draw makes tf.function chain every party's draws with cross-party control edges."""
    import tfe_accel  # noqa: F401  (registers the ops)
    from tensorflow.python.framework import op_def_registry

    for name in ("SecureSeed", "SecureRandomUniform"):
        assert op_def_registry.get(name).is_stateful, name
    for name in ("SecureSeededRandomUniform", "TfeAccelRssMul"):
        assert not op_def_registry.get(name).is_stateful, name
