"""tfe_accel.function (the fast compiled path) against stock tfe.function: same results, traces only
on new signatures, structures in and out, variables, Python control flow (with and without
AutoGraph), the tfe.function dispatch under AcceleratedABY3 and its opt-outs, TFE's Keras API,
loops with fresh randomness per iteration, and the call-path fallbacks."""
import logging

import numpy as np
import pytest
import tensorflow as tf
import tf_encrypted as tfe

import tfe_accel
from conftest import run_python
from tfe_accel import _function as F
from tfe_accel.models import mpc
from tfe_accel.protocol import AcceleratedABY3

ULP = 2.0**-16


@pytest.fixture(scope="module", autouse=True)
def partitioned(partitioned_config):
    yield


def _reveal(t):
    return np.asarray(t.reveal().to_native())


def _lr_like(x, w):
    return tfe.sigmoid(tfe.matmul(x, w))


def _ref(x, w):
    z = x @ w
    from tfe_accel.models.plaintext import sigmoid_piecewise

    return sigmoid_piecewise(z, "5-piece")


@pytest.mark.parametrize("protocol", ["stock", "accelerated"])
def test_same_results_as_stock_tfe_function(protocol):
    prot = AcceleratedABY3() if protocol == "accelerated" else tfe.protocol.ABY3()
    tfe.set_protocol(prot)
    rng = np.random.default_rng()
    xv, wv = rng.uniform(-1, 1, (9, 5)), rng.uniform(-1, 1, (5, 2))
    x, w = tfe.define_private_variable(xv), tfe.define_private_variable(wv)
    fast = tfe_accel.function(_lr_like)
    stock = F.stock_tfe_function()(_lr_like)
    a, b = _reveal(fast(x, w)), _reveal(stock(x, w))
    np.testing.assert_allclose(a, _ref(xv, wv), atol=2e-3)
    np.testing.assert_allclose(a, b, atol=2e-3)
    assert fast.trace_count == 1
    # the graph has no AutoGraph conversion and the same kind of ops as stock's
    ops = {o.type for o in fast.concrete_functions[0].graph.get_operations()}
    assert "PartitionedCall" not in ops and "StatefulPartitionedCall" not in ops


def test_traces_once_per_signature():
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)
    f = tfe_accel.function(lambda x, k: x * k)
    x = tfe.define_private_variable(np.ones((3, 2)))
    y = tfe.define_private_variable(np.ones((3, 2)) * 2)
    for _ in range(3):
        f(x, 2.0)
    f(y, 2.0)  # same shapes: no retrace
    assert f.trace_count == 1
    f(x, 3.0)  # new Python value: retrace, as tf.function
    assert f.trace_count == 2
    z = tfe.define_private_variable(np.ones((4, 2)))
    np.testing.assert_allclose(_reveal(f(z, 3.0)), 3 * np.ones((4, 2)), atol=2 * ULP)
    assert f.trace_count == 3
    np.testing.assert_allclose(_reveal(f(y, 3.0)), 6 * np.ones((3, 2)), atol=2 * ULP)
    assert f.trace_count == 3


def test_structures_in_and_out():
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)
    x = tfe.define_private_variable(np.full((2, 2), 1.5))
    p = tfe.define_public_variable(np.full((2, 2), 2.0))

    @tfe_accel.function
    def f(args, opts, t, arr, flag=None):
        a, (b,) = args
        out = {"sum": a + b, "pub": p.read_value() * 1.0 if opts["pub"] else None,
               "tensor": t * 2, "arr": arr + 1, "n": 7, "flag": flag}
        return [out, (a * b,)]

    res = f((x, (x,)), {"pub": True}, tf.constant([1.0, 2.0]), np.arange(3.0), flag="yes")
    d, (prod,) = res
    np.testing.assert_allclose(_reveal(d["sum"]), 3.0, atol=2 * ULP)
    np.testing.assert_allclose(np.asarray(d["pub"].decode()), 2.0, atol=2 * ULP)
    np.testing.assert_allclose(d["tensor"].numpy(), [2.0, 4.0])
    np.testing.assert_allclose(d["arr"].numpy(), [1.0, 2.0, 3.0])
    assert d["n"] == 7 and d["flag"] == "yes"
    np.testing.assert_allclose(_reveal(prod), 2.25, atol=4 * ULP)
    # every output share sits on its party's device
    for i in range(3):
        for j in range(2):
            assert prod.unwrapped[i][j].value.device.endswith(f"CPU:{i}")


def test_variables_read_and_assigned_inside():
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)
    v = tfe.define_private_variable(np.zeros((3, 1)))
    one = tfe.define_private_variable(np.ones((3, 1)))

    @tfe_accel.function
    def step(inc):
        prot.assign(v, v.read_value() + inc)

    for _ in range(4):
        step(one)
    np.testing.assert_allclose(_reveal(v.read_value()), 4.0, atol=4 * ULP)
    assert step.trace_count == 1


def test_python_control_flow_on_python_values():
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)
    x = tfe.define_private_variable(np.full((2,), 2.0))

    def body(x, n, double):
        y = x
        for _ in range(n):  # unrolled while tracing, with or without AutoGraph
            y = y + x
        if double:
            y = y * 2.0
        return y

    fast, stock = tfe_accel.function(body), F.stock_tfe_function()(body)
    for n, double in ((2, False), (3, True)):
        np.testing.assert_allclose(_reveal(fast(x, n, double)), _reveal(stock(x, n, double)), atol=4 * ULP)


def test_tensor_control_flow_retraces_with_autograph_and_says_so(caplog):
    """`if` on a tensor: TF refuses it without AutoGraph; the function is traced again with AutoGraph
    (a WARNING names it) and gives stock's result. autograph=True asks for that directly. (TFE tensors
    cannot be tf.cond outputs under stock tfe.function either: the branches here compute plain
    tensors, as they must in TFE code.)"""
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)
    x = tfe.define_private_variable(np.full((2,), 2.0))

    def branchy(x, t):
        if tf.reduce_sum(t) > 0:
            k = t * 3.0
        else:
            k = t * 5.0
        return x * 2.0, k

    fast = tfe_accel.function(branchy)
    with caplog.at_level(logging.WARNING, logger="tfe_accel"):
        y_pos, k_pos = fast(x, tf.constant([1.0]))
    assert any("Python control flow on a tensor" in r.getMessage() and "branchy" in r.getMessage()
               for r in caplog.records)
    y_neg, k_neg = fast(x, tf.constant([-1.0]))  # same signature: the tf.cond graph, no retrace
    np.testing.assert_allclose(k_pos.numpy(), [3.0])
    np.testing.assert_allclose(k_neg.numpy(), [-5.0])
    np.testing.assert_allclose(_reveal(y_neg), 4.0, atol=4 * ULP)
    assert fast.trace_count == 1
    stock = F.stock_tfe_function()(branchy)
    np.testing.assert_allclose(stock(x, tf.constant([-1.0]))[1].numpy(), k_neg.numpy())
    caplog.clear()
    explicit = tfe_accel.function(branchy, autograph=True)
    with caplog.at_level(logging.WARNING, logger="tfe_accel"):
        np.testing.assert_allclose(explicit(x, tf.constant([1.0]))[1].numpy(), [3.0])
    assert not caplog.records


def test_tfe_function_dispatch_and_opt_outs():
    x_val = np.full((2, 2), 1.25)

    def f(x):
        return x * x

    g = tfe.function(f)  # decorated before any protocol is chosen, as in user code
    assert isinstance(g, F._TfeFunction)
    acc = AcceleratedABY3()
    tfe.set_protocol(acc)
    x = tfe.define_private_variable(x_val)
    np.testing.assert_allclose(_reveal(g(x)), x_val ** 2, atol=4 * ULP)
    assert g._fast is not None and g._fast.trace_count == 1 and g._stock is None
    # opt-out per protocol instance
    off = AcceleratedABY3(fast_function=False)
    tfe.set_protocol(off)
    x2 = tfe.define_private_variable(x_val)
    np.testing.assert_allclose(_reveal(g(x2)), x_val ** 2, atol=4 * ULP)
    assert g._stock is not None
    # process-wide opt-out
    h = tfe.function(f)
    tfe.set_protocol(acc)
    F.use_fast_tfe_function(False)
    try:
        h(x)
        assert h._fast is None and h._stock is not None
    finally:
        F.use_fast_tfe_function(True)
    # stock ABY3: stock tfe.function
    k = tfe.function(f)
    stock = tfe.protocol.ABY3()
    tfe.set_protocol(stock)
    k(tfe.define_private_variable(x_val))
    assert k._fast is None and k._stock is not None
    # every alias TFE's modules look up is the dispatching one
    from tf_encrypted import protocol as pkg
    from tf_encrypted.protocol import protocol as mod

    assert tfe.function is pkg.function is mod.function


def test_methods_and_nested_calls():
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)

    class Model:
        def __init__(self, k):
            self.k = k

        @tfe_accel.function
        def apply(self, x):
            return x * self.k

    x = tfe.define_private_variable(np.ones((2,)))
    m = Model(3.0)
    np.testing.assert_allclose(_reveal(m.apply(x)), 3.0, atol=2 * ULP)
    np.testing.assert_allclose(_reveal(m.apply(x)), 3.0, atol=2 * ULP)
    assert Model.apply.trace_count == 1
    inner = tfe_accel.function(lambda x: x + x)
    outer = tfe_accel.function(lambda x: inner(x) * 2.0)  # inner is inlined into outer's trace
    np.testing.assert_allclose(_reveal(outer(x)), 4.0, atol=4 * ULP)
    assert inner.trace_count == 0 and outer.trace_count == 1


def test_bad_uses():
    with pytest.raises(TypeError, match="callable"):
        tfe_accel.function(3)


def test_loop_iterations_get_fresh_randomness():
    """mpc.private_steps: the same product computed in iteration 1 and in iteration 2 of one loop.
    AcceleratedABY3: different shares (each iteration derives fresh keys), same value. Stock ABY3
    reuses its nonces in every iteration, as it does across calls: identical shares."""
    v = np.full((3,), 3.0)  # unscaled integers: no truncation, deterministic given the keys
    for label, prot in (("acc", AcceleratedABY3()), ("stock", tfe.protocol.ABY3())):
        tfe.set_protocol(prot)
        x = tfe.define_private_variable(v, apply_scaling=False)

        def run(x, prot=prot):
            # state [newest product, previous product]
            final, graph = mpc.private_steps(prot, 2, lambda k, s: [x * x, s[0]], [x, x])
            assert graph is not None
            return final

        newest, previous = tfe_accel.function(run)(x)
        np.testing.assert_array_equal(_reveal(newest), v * v)
        np.testing.assert_array_equal(_reveal(previous), v * v)
        same = all(np.array_equal(newest.unwrapped[i][j].value.numpy(), previous.unwrapped[i][j].value.numpy())
                   for i in range(3) for j in range(2))
        assert same == (label == "stock"), label


def test_keras_dense_fit_takes_the_fast_path():
    """TFE's Keras API: a one-layer logistic regression's compiled train step runs through
    tfe_accel.function under AcceleratedABY3 (no code change) and trains as under stock (same
    initial weights, same predictions within fixed-point noise)."""
    rng = np.random.default_rng(7)
    xv = rng.normal(size=(64, 4))
    yv = (xv @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype(np.float64).reshape(-1, 1)
    preds = {}
    for label, prot in (("acc", AcceleratedABY3()), ("stock", tfe.protocol.ABY3())):
        tfe.set_protocol(prot)
        model = tfe.keras.Sequential([tfe.keras.layers.Dense(1, batch_input_shape=[16, 4], activation="sigmoid",
                                                             kernel_initializer="zeros")])
        model.compile(optimizer=tfe.keras.optimizers.SGD(learning_rate=0.5),
                      loss=tfe.keras.losses.BinaryCrossentropy())
        x = tfe.define_private_variable(xv)
        y = tfe.define_private_variable(yv)
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        if label == "acc":
            assert isinstance(model.train_function, F._TfeFunction)
            assert model.train_function._fast is not None and model.train_function._fast.trace_count == 1
        preds[label] = np.asarray(model.predict(x, batch_size=16)).reshape(-1)
    np.testing.assert_allclose(preds["acc"], preds["stock"], atol=1e-3)
    assert np.mean((preds["acc"] > 0.5) == (yv.reshape(-1) > 0.5)) >= 0.7


@pytest.mark.parametrize("caller", ["execute", "inference", "call_flat", "public"])
def test_call_path_fallbacks(caller):
    """Each entry point this TF offers gives the same results; the public fallback says so (WARNING);
    forcing one this TF lacks is a clear error naming the ones it has."""
    from tfe_accel import _function as F

    concrete = tf.function(lambda a: a + 1).get_concrete_function(tf.TensorSpec([2], tf.int64))
    if caller not in F.available_callers(concrete):
        res = run_python("import numpy as np, tfe_accel, tf_encrypted as tfe\n"
                         "from tfe_accel.protocol import AcceleratedABY3\n"
                         "tfe.set_protocol(AcceleratedABY3())\n"
                         "tfe_accel.function(lambda x: x * x)(tfe.define_private_variable(np.ones(2)))\n",
                         env_extra={"TFE_ACCEL_FUNCTION_CALLER": caller})
        assert res.returncode != 0
        assert f"TFE_ACCEL_FUNCTION_CALLER={caller}: TensorFlow {tf.__version__} does not offer" in res.stderr
        return
    code = (
        "import logging, numpy as np, tfe_accel, tf_encrypted as tfe\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "from tfe_accel.protocol import AcceleratedABY3\n"
        "from tfe_accel import _function as F\n"
        "tfe.set_protocol(AcceleratedABY3())\n"
        "x = tfe.define_private_variable(np.full((3,), 1.5))\n"
        "f = tfe_accel.function(lambda x: x * x + 1.0)\n"
        "for _ in range(3): r = f(x)\n"
        "print('RESULT', F.CALL_PATH, np.asarray(r.reveal().to_native()).tolist())\n"
    )
    res = run_python(code, env_extra={"TFE_ACCEL_FUNCTION_CALLER": caller})
    assert res.returncode == 0, res.stderr[-2000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][0]
    assert line.split()[1] == caller
    np.testing.assert_allclose(eval(line.split(" ", 2)[2]), [3.25] * 3, atol=4 * ULP)
    if caller == "public":
        assert "lacks the flat call entry points" in res.stderr


def test_readme_example_runs_after_a_bare_import():
    """The README's first example: `import tfe_accel`, then `tfe_accel.protocol.AcceleratedABY3()`
    (sub-packages are attributes of the package after a bare import)."""
    code = (
        "import numpy as np, tfe_accel, tf_encrypted as tfe\n"
        "tfe.set_protocol(tfe_accel.protocol.AcceleratedABY3())\n"
        "x = tfe.define_private_variable(np.full((4, 3), 0.5))\n"
        "w = tfe.define_private_variable(np.full((3, 1), 0.25))\n"
        "print('RESULT', np.asarray(tfe.sigmoid(tfe.matmul(x, w)).reveal().to_native()).ravel().tolist())\n"
    )
    res = run_python(code)
    assert res.returncode == 0, res.stderr[-2000:]
    got = eval([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][0].split(" ", 1)[1])
    np.testing.assert_allclose(got, [0.5 + 0.212 * 0.375] * 4, atol=1e-3)  # 5-piece sigmoid(0.375)


@pytest.mark.parametrize("allow", [False, True])
def test_launcher_skips_tensorflows_optional_jax_import(allow):
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (TensorFlow >= 2.1x no longer requires it): no import to skip")
    code = (
        "import sys\n"
        "sys.argv = ['tfe-accel', 'info']\n"
        "import tfe_accel_launcher as L\n"
        "rc = L.main()\n"
        "print('RC', rc, 'JAX', 'jax' in sys.modules)\n"
        "import jax  # imports normally once the command has started\n"
        "print('LATER', 'jax' in sys.modules)\n"
    )
    res = run_python(code, env_extra={"TFE_ACCEL_IMPORT_JAX": "1" if allow else "0"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"RC 0 JAX {allow}" in res.stdout
    assert "LATER True" in res.stdout


def test_party_store_keeps_results_on_the_parties():
    """A function that puts its private results in a PartyStore returns nothing (TF would send
    every returned share to the caller: on a cluster, the driver); get() reads them on each party,
    spec() traces another function ahead, and a later put overwrites the value while tensors got
    before keep theirs."""
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)
    rng = np.random.default_rng()
    xv = rng.uniform(-2, 2, (7, 3))
    x = tfe.define_private_variable(xv)
    store = tfe_accel.PartyStore(prot, ["y", "unused"])
    calls = []

    @tfe_accel.function
    def produce(x, k):
        calls.append(k)
        store.put("y", x * k)
        store.put("s", x.reduce_sum(axis=0, keepdims=True))  # not named: created while tracing

    assert "y" not in store
    produce.get_concrete_function(x, 2.0)
    assert "y" in store and "s" in store and "unused" not in store
    assert len(calls) == 2  # "s" was created inside the trace: tf.function traced it again
    assert produce.concrete_functions[0].outputs == []  # nothing leaves the graph
    spec = store.spec("y")
    assert [spec.shares[i][j].value.shape for i in range(3) for j in range(2)] == [tf.TensorShape([7, 3])] * 6

    @tfe_accel.function
    def consume(y):
        return y + 1.0

    consume.get_concrete_function(spec)  # traced before anything ran
    assert produce(x, 2.0) is None
    y = store.get("y")
    for i in range(3):
        for j in range(2):
            assert y.shares[i][j].value.device.endswith(f"CPU:{i}")
    np.testing.assert_allclose(_reveal(y), 2 * xv, atol=4 * ULP)
    np.testing.assert_allclose(_reveal(store.get("s")), xv.sum(axis=0, keepdims=True), atol=8 * ULP)
    np.testing.assert_allclose(_reveal(consume(y)), 2 * xv + 1, atol=4 * ULP)
    assert consume.trace_count == 1  # the stand-in's signature is the real one's
    produce(x, 3.0)
    np.testing.assert_allclose(_reveal(store.get("y")), 3 * xv, atol=4 * ULP)
    np.testing.assert_allclose(_reveal(y), 2 * xv, atol=4 * ULP)  # the earlier snapshot
    assert produce.trace_count == 2  # a new Python value (k): a new trace, the same slots
    assert calls == [2.0, 2.0, 3.0]  # every slot existed: one trace


def test_private_outputs_from_cluster_parties_are_warned_about(caplog, monkeypatch):
    """Returning private tensors whose shares sit on another process's device (a cluster) logs
    once what that costs and exposes, naming PartyStore; in-process devices do not."""
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)
    x = tfe.define_private_variable(np.ones((2, 2)))
    fn = tfe_accel.function(lambda t: t * 2.0, name="doubles")
    with caplog.at_level(logging.WARNING, logger="tfe_accel"):
        fn(x)
    assert not [r for r in caplog.records if "PartyStore" in r.getMessage()]
    assert F._is_remote("/job:tfe/replica:0/task:1/device:CPU:0")
    assert not F._is_remote("/job:localhost/replica:0/task:0/device:CPU:1") and not F._is_remote("")
    monkeypatch.setattr(F, "_is_remote", lambda device: True)
    fn2 = tfe_accel.function(lambda t: [t * 2.0, t + 1.0], name="two_outputs")
    with caplog.at_level(logging.WARNING, logger="tfe_accel"):
        fn2(x)
        fn2(tfe.define_private_variable(np.ones((3, 2))))  # a second trace: no second warning
    msgs = [r.getMessage() for r in caplog.records if "PartyStore" in r.getMessage()]
    assert len(msgs) == 1 and "two_outputs returns 2 private tensor(s)" in msgs[0]
