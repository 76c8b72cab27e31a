"""AcceleratedABY3 vs stock ABY3: same revealed results (within the fixed-point bound), identical
shares where the protocol is deterministic given keys and nonces, no more communication, and
every fused op reads only its own party's shares and keys."""
import logging

import numpy as np
import pytest
import tensorflow as tf
import tf_encrypted as tfe

import tfe_accel  # noqa: F401
from tfe_accel.accounting import communication, trace
from tfe_accel.config import PartitionedLocalConfig
from tfe_accel.protocol import AcceleratedABY3
from tfe_accel.reference import piecewise_linear

ULP = 2.0**-16


@pytest.fixture(scope="module", autouse=True)
def partitioned():
    tfe.set_config(PartitionedLocalConfig())
    yield


def _pair(**kwargs):
    """A stock and an accelerated protocol sharing the same keys and nonces."""
    stock = tfe.protocol.ABY3()
    acc = AcceleratedABY3(**kwargs)
    acc.pairwise_keys_ = stock.pairwise_keys_
    acc.pairwise_nonces_ = stock.pairwise_nonces_.copy()
    acc.b2a_keys_1_, acc.b2a_keys_2_ = stock.b2a_keys_1_, stock.b2a_keys_2_
    acc.b2a_nonce_ = stock.b2a_nonce_
    return stock, acc


def _shares(t):
    return [[t.unwrapped[i][j].value.numpy() for j in range(2)] for i in range(3)]


def _private(prot, value, scaled=True):
    tfe.set_protocol(prot)
    return tfe.define_private_variable(value, apply_scaling=scaled)


def _rand(shape, scale=3.0):
    return np.random.default_rng().uniform(-scale, scale, size=shape)


OPS = {
    "mul": (lambda x, y: x * y, [(6, 5), (6, 5)]),
    "matmul": (lambda x, y: tfe.matmul(x, y), [(6, 5), (5, 4)]),
    "matmul_batched": (lambda x, y: tfe.matmul(x, y), [(2, 3, 5), (2, 5, 4)]),
    "matvec_lr": (lambda x, y: tfe.matmul(x, y), [(33, 70), (70, 1)]),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_identical_shares_given_identical_keys_and_nonces(name):
    # Unscaled integer inputs: no truncation, so the protocol is deterministic given the keys.
    fn, shapes = OPS[name]
    stock, acc = _pair()
    vals = [np.random.default_rng().integers(-1000, 1000, size=s).astype(np.float64) for s in shapes]
    xs = [_private(stock, v, scaled=False) for v in vals]
    tfe.set_protocol(stock)
    z_stock = fn(*xs)
    tfe.set_protocol(acc)
    # same input shares for both protocols: reuse the tensors, rebound to the accelerated protocol
    xs_acc = [type(x)(acc, x.unwrapped, x.is_scaled, x.share_type) for x in xs]
    acc.pairwise_nonces_ = stock.pairwise_nonces_.copy() - 1  # the nonce stock consumed
    z_acc = fn(*xs_acc)
    s1, s2 = _shares(z_stock), _shares(z_acc)
    for i in range(3):
        for j in range(2):
            np.testing.assert_array_equal(s1[i][j], s2[i][j], err_msg=f"share [{i}][{j}]")


def _reveal(t):
    return t.reveal().to_native().numpy()


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("compiled", [False, True])
def test_reveals_match_stock_and_numpy(name, compiled):
    fn, shapes = OPS[name]
    vals = [_rand(s) for s in shapes]
    expected = {"mul": lambda a, b: a * b}.get(name, lambda a, b: a @ b)(*vals)
    inner = shapes[0][-1]
    for prot in (tfe.protocol.ABY3(), AcceleratedABY3()):
        tfe.set_protocol(prot)
        xs = [tfe.define_private_variable(v) for v in vals]
        f = tfe.function(fn) if compiled else fn
        got = _reveal(f(*xs))
        np.testing.assert_allclose(got, expected, atol=(inner + 2) * 4 * ULP * 3)


@pytest.mark.parametrize("public_left", [True, False])
def test_public_private_matmul(public_left):
    a, b = _rand((4, 6)), _rand((6, 3))
    tfe.set_protocol(AcceleratedABY3())
    if public_left:
        z = tfe.matmul(tfe.define_public_variable(a), tfe.define_private_variable(b))
    else:
        z = tfe.matmul(tfe.define_private_variable(a), tfe.define_public_variable(b))
    np.testing.assert_allclose(_reveal(z), a @ b, atol=30 * ULP)


@pytest.mark.parametrize("name", sorted(OPS))
def test_communication_not_above_stock(name):
    fn, shapes = OPS[name]
    vals = [_rand(s) for s in shapes]
    stats = {}
    for label, prot in (("stock", tfe.protocol.ABY3()), ("acc", AcceleratedABY3())):
        tfe.set_protocol(prot)
        xs = [tfe.define_private_variable(v) for v in vals]
        stats[label] = communication(lambda: fn(*xs))
    s, a = stats["stock"], stats["acc"]
    assert a.messages <= s.messages and a.bytes <= s.bytes and a.rounds <= s.rounds, (s, a)
    assert a.nodes < s.nodes
    # no stateful op on two parties' chains: tf.function would order them with control edges
    assert s.control_messages == 0 and a.control_messages == 0, (s, a)


def test_accounting_counts_cross_party_control_edges():
    """A control edge between two parties' ops is a message TF sends (a dummy tensor) and a round
    on the latency path; tf.function adds them between stateful ops on different devices."""
    devs = [p.device_name for p in tfe.get_config().players[:2]]

    def chain(stateful):
        with tf.device(devs[0]):
            a = tf.random.uniform([4]) if stateful else tf.ones([4])
        with tf.device(devs[1]):
            with tf.control_dependencies([a]):
                b = tf.random.uniform([4]) if stateful else tf.ones([4])
        with tf.device(devs[0]):
            with tf.control_dependencies([b]):
                return tf.identity(a)

    for stateful in (False, True):
        st = communication(lambda: chain(stateful))
        assert (st.messages, st.bytes, st.control_messages, st.rounds) == (0, 0, 2, 2), (stateful, st)
        assert "(+2 control)" in str(st)
    st = communication(lambda: tf.identity(tf.ones([3])))
    assert (st.control_messages, st.rounds) == (0, 0) and "control" not in str(st)


def test_secure_sigmoid_graphs_have_no_cross_party_control_edges():
    x = _rand((50,), 6.0)
    for prot in (tfe.protocol.ABY3(), AcceleratedABY3()):
        t = _private(prot, x)
        st = communication(lambda: tfe.sigmoid(t))
        assert st.control_messages == 0, (type(prot).__name__, st)


def test_fused_ops_read_only_their_own_party():
    """Every fused op runs on a party's device and reads only (a) values on that party's device,
    (b) the pairwise keys that party holds, or (c) messages: outputs of another party's fused ops
    (the protocol messages). Never another party's shares (variables) or keys."""
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)
    x = tfe.define_private_variable(_rand((4, 5)))
    w = tfe.define_private_variable(_rand((5, 2)))
    concrete = trace(lambda: tfe.sigmoid(tfe.matmul(x * x, w)))
    graph = concrete.graph
    dev_party = {tf.DeviceSpec.from_string(s.device_name).to_string(): i
                 for i, s in enumerate(prot.servers)}
    key_ids = {}  # id of a key tensor -> parties allowed to read it
    for table in (prot.pairwise_keys_, prot.b2a_keys_1_, prot.b2a_keys_2_):
        for i in range(3):
            for k in table[i]:
                if k is not None:
                    key_ids.setdefault(id(k), set()).add(i)
    captured = {internal.op.name: external for external, internal in graph.captures}

    def party(op):
        if op.device:
            return dev_party.get(tf.DeviceSpec.from_string(op.device).to_string())
        ext = captured.get(op.name)
        dev = getattr(ext, "device", "") if ext is not None else ""
        return dev_party.get(tf.DeviceSpec.from_string(dev).to_string()) if dev else None

    def origin(t):
        """Follow Identity / key-derivation ops back to what the value really is."""
        op = t.op
        while op.type in ("Identity", "BitwiseXor") and op.name not in captured and (
                op.type == "Identity" or "fresh-key" in op.name):
            op = op.inputs[0].op
        return op

    fused = [op for op in graph.get_operations() if op.type.startswith(("TfeAccel", "Mpc"))]
    assert len(fused) > 20, "expected the routed ops in the traced graph"
    for op in fused:
        p = party(op)
        assert p is not None, f"fused op {op.name} is not placed on a party device"
        for t in op.inputs:
            src = origin(t)
            if src.name in captured:
                allowed = key_ids.get(id(captured[src.name]))
                if allowed is not None:
                    assert p in allowed, f"{op.name} (party {p}) reads a key of parties {allowed}"
                    continue
            q = party(src)
            if q == p or src.type == "Const":
                continue
            assert src.type.startswith(("TfeAccel", "Mpc", "SecureSeed")), (
                f"{op.name} on party {p} reads {t.name} ({src.type}) of party {q}: not a message")


def test_compiled_functions_get_fresh_randomness_each_call():
    """Stock TFE bakes nonces into compiled functions: every call reuses the same zero sharing
    (identical output shares for identical inputs). AcceleratedABY3 mixes a per-call counter into
    the keys: fresh shares each call, same revealed value, stock keys on the first call."""
    v = np.full((4,), 3.0)  # unscaled integers: no truncation, deterministic given the keys
    results = {}
    for label, prot in (("stock", tfe.protocol.ABY3()), ("acc", AcceleratedABY3())):
        tfe.set_protocol(prot)
        x = tfe.define_private_variable(v, apply_scaling=False)
        f = tfe.function(lambda x: x * x)
        outs = [f(x) for _ in range(3)]
        results[label] = ([o.unwrapped[1][0].value.numpy() for o in outs],
                          [o.reveal().to_native().numpy() for o in outs])
    stock_shares, stock_vals = results["stock"]
    acc_shares, acc_vals = results["acc"]
    assert all(np.array_equal(stock_shares[0], s) for s in stock_shares[1:])  # the stock flaw
    assert not np.array_equal(acc_shares[0], acc_shares[1])
    assert not np.array_equal(acc_shares[1], acc_shares[2])
    for vals in (stock_vals, acc_vals):
        for got in vals:
            np.testing.assert_array_equal(got, v * v)


def test_fresh_randomness_is_opt_out():
    prot = AcceleratedABY3(fresh_randomness_per_call=False)
    tfe.set_protocol(prot)
    x = tfe.define_private_variable(np.ones(3), apply_scaling=False)
    f = tfe.function(lambda x: x * x)
    a, b = f(x), f(x)
    np.testing.assert_array_equal(a.unwrapped[0][0].value.numpy(), b.unwrapped[0][0].value.numpy())


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="truncation must be one of"):
        AcceleratedABY3(truncation="fast")


def test_stock_local_truncation_breaks_on_distinct_party_devices_ours_does_not():
    # Stock `_truncate_local_private` puts P1's y1 into P0's share slot without a transfer
    # (no .identity()), which only works when all players share one device (LocalConfig).
    x = _private(tfe.protocol.ABY3(), _rand((3,)))
    with pytest.raises(AssertionError, match="Shares device wrong"):
        tfe.get_protocol().truncate(x, method="local")
    acc = AcceleratedABY3(truncation="local")
    tfe.set_protocol(acc)
    x = tfe.define_private_variable(np.array([1.5, -2.25, 3.0]))
    z = x * x  # truncated with the local method
    assert z.unwrapped[0][1].device == acc.servers[0].device_name
    np.testing.assert_allclose(_reveal(z), [2.25, 5.0625, 9.0], atol=4 * ULP)


def test_local_truncation_identical_shares_to_stock():
    # Stock's local truncation needs a single shared device (see the test above).
    tfe.set_config(tfe.LocalConfig(["server0", "server1", "server2"]))
    try:
        _check_local_truncation_identical()
    finally:
        tfe.set_config(PartitionedLocalConfig())


def _check_local_truncation_identical():
    stock, acc = _pair()
    x = _private(stock, _rand((7, 3)))
    tfe.set_protocol(stock)
    z_stock = stock.truncate(x, method="local")
    x_acc = type(x)(acc, x.unwrapped, x.is_scaled, x.share_type)
    acc.pairwise_nonces_ = stock.pairwise_nonces_.copy() - 1
    tfe.set_protocol(acc)
    z_acc = acc.truncate(x_acc, method="local")
    s1, s2 = _shares(z_stock), _shares(z_acc)
    for i in range(3):
        for j in range(2):
            np.testing.assert_array_equal(s1[i][j], s2[i][j], err_msg=f"share [{i}][{j}]")


@pytest.mark.parametrize("truncation", ["heuristic", "local"])
@pytest.mark.parametrize("compiled", [False, True])
def test_truncation_routes_reveal_correctly(truncation, compiled):
    a, b = _rand((50, 4), 30.0), _rand((50, 4), 30.0)
    # include edge values: zero, tiny, negative, large (|x| ~ 2^10 within 11 integral bits)
    a[0, :] = [0.0, 2.0**-16, -1.0, 1000.0]
    b[0, :] = [123.0, 1.0, -(2.0**-16), -1.5]
    prot = AcceleratedABY3(truncation=truncation)
    tfe.set_protocol(prot)
    x, y = tfe.define_private_variable(a), tfe.define_private_variable(b)
    f = tfe.function(lambda x, y: x * y) if compiled else (lambda x, y: x * y)
    got = _reveal(f(x, y))
    q = lambda v: np.trunc(v * 2**16) / 2**16  # noqa: E731  (TFE encodes by casting: truncation)
    np.testing.assert_allclose(got, q(a) * q(b), atol=2 * ULP)


def test_truncation_communication_below_stock():
    a = _rand((100,))
    stats = {}
    for label, prot in (("stock", tfe.protocol.ABY3()), ("acc", AcceleratedABY3())):
        tfe.set_protocol(prot)
        x = tfe.define_private_variable(a)
        stats[label] = communication(lambda: prot.truncate(x))
    s, a_ = stats["stock"], stats["acc"]
    assert a_.messages < s.messages and a_.bytes < s.bytes and a_.rounds <= s.rounds, (s, a_)


@pytest.mark.parametrize("kind", ["private", "public_left", "public_right"])
def test_transposed_operands_fold_into_the_fused_matmul(kind):
    # Under tfe.function the route reads tf.transpose's input with a transpose flag (no copy).
    a, v = _rand((9, 5)), _rand((9, 2))
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)
    if kind == "private":
        x, y = tfe.define_private_variable(a), tfe.define_private_variable(v)
        f = lambda x, y: tfe.matmul(tfe.transpose(x), y)  # noqa: E731
        want = a.T @ v
    elif kind == "public_left":
        x, y = tfe.define_public_variable(a), tfe.define_private_variable(v)
        f = lambda x, y: tfe.matmul(tfe.transpose(x), y)  # noqa: E731
        want = a.T @ v
    else:
        x, y = tfe.define_private_variable(v), tfe.define_public_variable(a)
        f = lambda x, y: tfe.matmul(tfe.transpose(x), y)  # noqa: E731
        want = v.T @ a
    for fn in (f, tfe.function(f)):
        np.testing.assert_allclose(_reveal(fn(x, y)), want, atol=40 * ULP)
    graph = trace(lambda: f(x, y)).graph
    fused = [op for op in graph.get_operations() if op.type.startswith("TfeAccel") and "Matmul" in op.type]
    assert fused and all(op.get_attr("transpose_a") for op in fused)


def _sig_ref(x, approx):
    return piecewise_linear(x, *tfe_accel.ops.SIGMOID_APPROX[approx])


@pytest.mark.parametrize("approx", ["5_piecewise_linear", "3_piecewise_linear"])
@pytest.mark.parametrize("compiled", [False, True])
def test_sigmoid_route_reveals_like_stock(approx, compiled):
    a = _rand((3, 17), 7.0)
    a.reshape(-1)[:6] = [-4.0, -1.5, 0.0, 1.5, 4.0, 2.5]  # on the pivots
    q = np.trunc(a * 2**16) / 2**16
    protocols = (tfe.protocol.ABY3(), AcceleratedABY3(pieces="stock"), AcceleratedABY3())
    for prot in protocols:
        tfe.set_protocol(prot)
        x = tfe.define_private_variable(a)
        f = (lambda x: tfe.sigmoid(x, approx_type=approx))
        got = _reveal((tfe.function(f) if compiled else f)(x))
        # telescoped: up to K - 1 truncated summands instead of one
        tol = 4 if getattr(prot, "pieces", "stock") == "stock" else 8
        np.testing.assert_allclose(got, _sig_ref(q, approx), atol=tol * ULP,
                                   err_msg=f"{type(prot).__name__} {getattr(prot, 'pieces', '')}")


def test_telescoped_pieces_save_a_round_and_bytes():
    a = _rand((6, 11), 7.0)
    stats = {}
    for label, prot in (("stock", tfe.protocol.ABY3()), ("acc-stock", AcceleratedABY3(pieces="stock")),
                        ("acc", AcceleratedABY3(comparison="kogge-stone")), ("masked", AcceleratedABY3())):
        tfe.set_protocol(prot)
        x = _private(prot, a)
        stats[label] = communication(lambda: tfe.sigmoid(x))
    s, p, t, m = stats["stock"], stats["acc-stock"], stats["acc"], stats["masked"]
    print(s, p, t, m, sep="\n")
    assert p.rounds <= s.rounds and t.rounds == p.rounds - 1, (s, p, t)
    assert t.messages < p.messages and t.unknown_size_messages == p.unknown_size_messages == 0, (p, t)
    assert t.bytes < p.bytes, (p, t)
    # the masked comparison: three rounds for the a2b and Kogge-Stone's seven (its output share
    # reaches P1 while the pieces' OT runs: measured 4 rounds instead of 9 for the whole sigmoid)
    assert m.rounds <= t.rounds - 4 and m.messages < t.messages and m.unknown_size_messages == 0, (t, m)


def test_comparison_option_is_checked():
    with pytest.raises(ValueError, match="comparison must be one of"):
        AcceleratedABY3(comparison="fast")
    assert AcceleratedABY3().comparison == "auto"
    assert AcceleratedABY3(pieces="stock").comparison == "kogge-stone"
    assert AcceleratedABY3(pieces="stock", comparison="masked").comparison == "masked"
    for bad in (-1, 1.5, "100", True, None):
        with pytest.raises(ValueError, match="masked_max_values must be a non-negative int"):
            AcceleratedABY3(masked_max_values=bad)


def test_auto_comparison_is_masked_up_to_the_threshold(caplog):
    """"auto": the masked comparison for comparisons of at most masked_max_values values (4 rounds
    for a whole sigmoid), Kogge-Stone above (9, and a DEBUG line says so), with the same results."""
    rounds = {}
    for n, limit in ((30, 16384), (30, 100)):  # 30 values x 4 pivots = 120 comparisons
        prot = AcceleratedABY3(masked_max_values=limit)
        tfe.set_protocol(prot)
        a = _rand((n, 1), 6.0)
        x = _private(prot, a)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="tfe_accel"):
            rounds[limit] = communication(lambda: tfe.sigmoid(x)).rounds
        said = [r.getMessage() for r in caplog.records if "Kogge-Stone for a comparison" in r.getMessage()]
        assert bool(said) == (limit == 100), said
        if said:
            assert "of 120 values" in said[0] and "masked_max_values=100" in said[0], said
        q = np.trunc(a * 2**16) / 2**16
        np.testing.assert_allclose(_reveal(tfe.sigmoid(x)), _sig_ref(q, "5_piecewise_linear"), atol=8 * ULP)
    assert rounds[16384] <= rounds[100] - 4, rounds


@pytest.mark.parametrize("compiled", [False, True])
def test_masked_comparison_msb_and_less_reveal_the_plaintext(compiled):
    """The msb route and TFE's comparisons on it (less, greater_equal) with the masked comparison,
    on fixed-point values, edge values of the encoding range included, over several fresh runs."""
    a = _rand((4, 33), 100.0)
    a.reshape(-1)[:8] = [0.0, 2.0**-16, -(2.0**-16), 1.0, -1.0, 2.0**40, -(2.0**40), 0.5]
    b = _rand((4, 33), 100.0)
    q = np.trunc(a * 2**16) / 2**16
    qb = np.trunc(b * 2**16) / 2**16
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)
    x, y = tfe.define_private_variable(a), tfe.define_private_variable(b)

    def f(x, y):
        return prot.msb(x), x < y

    g = tfe.function(f) if compiled else f
    for _ in range(3):
        msb, less = g(x, y)
        np.testing.assert_array_equal(_reveal(msb).astype(bool), q < 0)
        np.testing.assert_array_equal(_reveal(less).astype(bool), q < qb)


def test_pieces_option_is_checked():
    with pytest.raises(ValueError, match="pieces must be one of"):
        AcceleratedABY3(pieces="onehot")


def test_sigmoid_route_identical_shares_to_stock(monkeypatch):
    import tf_encrypted.tensor.native as tfe_native

    stock, acc = _pair(pieces="stock")
    a = _rand((2, 9), 6.0)
    x = _private(stock, a)
    seed = np.frombuffer(np.random.default_rng().bytes(32), np.int32).copy()
    # pin the truncation dealer's fresh seed (the only randomness without a pairwise key)
    monkeypatch.setattr(tfe_native.secure_random, "secure_seed", lambda *a_, **k: tf.constant(seed))
    monkeypatch.setattr(tfe_accel.ops, "secure_seed", lambda *a_, **k: tf.constant(seed))
    n0 = stock.pairwise_nonces_.copy()
    tfe.set_protocol(stock)
    z_stock = stock.sigmoid(x)
    assert list(stock.pairwise_nonces_ - n0) == [20, 20, 20]
    acc.pairwise_nonces_ = n0.copy()
    tfe.set_protocol(acc)
    z_acc = acc.sigmoid(type(x)(acc, x.unwrapped, x.is_scaled, x.share_type))
    assert list(acc.pairwise_nonces_ - n0) == [20, 20, 20]
    s1, s2 = _shares(z_stock), _shares(z_acc)
    for i in range(3):
        for j in range(2):
            np.testing.assert_array_equal(s1[i][j], s2[i][j], err_msg=f"share [{i}][{j}]")


def test_comparison_route_and_communication():
    a, b = _rand((40,)), _rand((40,))
    a[:3] = b[:3]  # ties
    stats = {}
    for label, prot in (("stock", tfe.protocol.ABY3()), ("acc", AcceleratedABY3())):
        tfe.set_protocol(prot)
        x, y = tfe.define_private_variable(a), tfe.define_private_variable(b)
        got = (x > y).reveal().to_native().numpy().astype(bool)
        np.testing.assert_array_equal(got, a > b)
        stats[label] = communication(lambda: tfe.sigmoid(x))
    s, a_ = stats["stock"], stats["acc"]
    # the masked comparison (the default at this size) trades bytes for rounds: 4 instead of 11
    assert a_.messages <= s.messages and a_.rounds <= s.rounds - 5, (s, a_)
    assert a_.bytes <= 1.25 * s.bytes, (s, a_)
    assert a_.nodes * 10 <= s.nodes, (s.nodes, a_.nodes)  # >= 10x fewer graph nodes


@pytest.mark.parametrize("name", ["5-piece", "8-piece"])
def test_weighted_sigmoid_costs_at_most_one_round_of_its_own(name):
    from tfe_accel.models.mpc import secure_sigmoid
    from tfe_accel.models.plaintext import sigmoid_piecewise

    a = _rand((24, 1), 6.0)
    a[:4, 0] = [-4.0, -1.5, 1.5, 4.0]  # on the 5-piece pivots
    wv = np.random.default_rng().uniform(0.5, 5.0, size=a.shape)  # class weights n / (2 n_class)
    q, qw = np.trunc(a * 2**16) / 2**16, np.trunc(wv * 2**16) / 2**16
    stats = {}
    for label, prot in (("stock", tfe.protocol.ABY3()), ("acc", AcceleratedABY3(comparison="kogge-stone")),
                        ("masked", AcceleratedABY3())):
        x, w = _private(prot, a), _private(prot, wv)
        got = _reveal(secure_sigmoid(prot, x, name, weight=w))
        # the reference uses the float coefficients: their 2^-16 encoding error times w (<= 5) and
        # |x w| (<= 30), plus one truncation per summand (up to K - 1 of them): below 1e-3
        np.testing.assert_allclose(got, qw * sigmoid_piecewise(q, name), atol=1e-3, err_msg=label)
        stats[label, "weighted"] = communication(lambda: secure_sigmoid(prot, x, name, weight=w))
        stats[label, "plain"] = communication(lambda: secure_sigmoid(prot, x, name))
    assert stats["acc", "weighted"].rounds == stats["acc", "plain"].rounds, stats
    assert stats["stock", "weighted"].rounds > stats["stock", "plain"].rounds, stats  # one product more
    assert stats["acc", "weighted"].rounds < stats["stock", "weighted"].rounds, stats
    # the masked comparison is shorter than the product x * w and its truncation: one round more
    assert stats["masked", "weighted"].rounds <= stats["masked", "plain"].rounds + 1, stats
    assert stats["masked", "weighted"].rounds < stats["acc", "weighted"].rounds, stats


@pytest.mark.parametrize("op", ["mul", "matmul"])
def test_product_truncation_merged_with_the_resharing(op, monkeypatch):
    """The heuristic truncation of a product masks the unreshared shares: one round and one message
    fewer than stock, and (for the same randomness) stock's shares."""
    import tf_encrypted.tensor.native as tfe_native

    a, b = _rand((5, 7)), _rand((5, 7) if op == "mul" else (7, 3))
    seed = np.frombuffer(np.random.default_rng().bytes(32), np.int32).copy()
    monkeypatch.setattr(tfe_native.secure_random, "secure_seed", lambda *a_, **k: tf.constant(seed))
    monkeypatch.setattr(tfe_accel.ops, "secure_seed", lambda *a_, **k: tf.constant(seed))
    stock, acc = _pair()
    x, y = _private(stock, a), _private(stock, b)
    f = (lambda p, u, v: p.mul(u, v)) if op == "mul" else (lambda p, u, v: p.matmul(u, v))
    n0 = stock.pairwise_nonces_.copy()
    tfe.set_protocol(stock)
    z_stock = f(stock, x, y)
    acc.pairwise_nonces_ = n0.copy()
    tfe.set_protocol(acc)
    z_acc = f(acc, *(type(t)(acc, t.unwrapped, t.is_scaled, t.share_type) for t in (x, y)))
    assert list(acc.pairwise_nonces_ - n0) == list(stock.pairwise_nonces_ - n0)
    s1, s2 = _shares(z_stock), _shares(z_acc)
    for i in range(3):
        for j in range(2):
            np.testing.assert_array_equal(s1[i][j], s2[i][j], err_msg=f"share [{i}][{j}]")
    # Two chained products: the second one's dealer message (input-independent) is sent while the
    # first runs, as in a training step; each product then costs 2 rounds instead of stock's 3.
    c = _rand((5, 7) if op == "mul" else (3, 3))
    stats = {}
    for label, prot in (("stock", stock), ("acc", acc)):
        tfe.set_protocol(prot)
        u, v, w = _private(prot, a), _private(prot, b), _private(prot, c)
        stats[label] = communication(lambda: f(prot, f(prot, u, v), w))
        stats[label, 1] = communication(lambda: f(prot, u, v))
    s, t = stats["stock"], stats["acc"]
    # the second product: 3 more rounds for stock, 2 for ours; the first product pays, in stock,
    # for the dealer's message that nothing runs in parallel with, in ours not (P1 masks with r1'
    # from its key shared with P2): 2 rounds alone, 4 for the chain
    assert s.rounds - stats["stock", 1].rounds == 3 and t.rounds - stats["acc", 1].rounds == 2, stats
    assert stats["acc", 1].messages < stats["stock", 1].messages, stats
    # with its own keys (the pair above shares stock's, which reach P2 as messages), a single
    # product is 2 rounds: P1's mask waits for no dealer message
    fresh = AcceleratedABY3()
    u, v = _private(fresh, a), _private(fresh, b)
    assert communication(lambda: f(fresh, u, v)).rounds == 2
    assert t.messages < s.messages and t.bytes < s.bytes and t.unknown_size_messages == 0, (s, t)


@pytest.mark.parametrize("holder", [0, 2])
def test_msb_a2b_with_either_reshare_holder(holder):
    """The comparison's a2b with P0 (TFE's) or P2 resharing the sum of its two shares: the msb of
    the ring value for fresh random sharings, edge values included (0, 1, -1, 2^63 - 1, -2^63)."""
    from tfe_accel.protocol import routes
    from tfe_accel.protocol.helpers import NonceCursor

    rng = np.random.default_rng()
    edges = np.array([0, 1, -1, 2**63 - 1, -2**63, 2**62, -2**62], dtype=np.int64)
    vals = np.concatenate([edges, rng.integers(-2**63, 2**63 - 1, size=93, dtype=np.int64)]).reshape(4, 25)
    sh = [rng.integers(-2**63, 2**63 - 1, size=vals.shape, dtype=np.int64) for _ in range(2)]
    third = (vals.astype(np.uint64) - sh[0].astype(np.uint64) - sh[1].astype(np.uint64)).astype(np.int64)
    x = [sh[0], sh[1], third]  # x = x0 + x1 + x2 mod 2^64
    acc = AcceleratedABY3()
    tfe.set_protocol(acc)
    d = []
    for i in range(3):
        with tf.device(acc.servers[i].device_name):
            d.append((tf.constant(x[i]), tf.constant(x[(i + 1) % 3])))
    msb = routes._msb_steps(acc, d, NonceCursor(acc), holder=holder)
    got = msb[0][0].numpy() ^ msb[0][1].numpy() ^ msb[1][1].numpy()  # b0 ^ b1 ^ b2
    np.testing.assert_array_equal(got, vals < 0)
    # the replicated shares agree: party i's second share is party i+1's first
    for i in range(3):
        np.testing.assert_array_equal(msb[i][1].numpy(), msb[(i + 1) % 3][0].numpy())


def test_a2b_reshare_by_p2_saves_a_round_after_a_product():
    """After a product's truncation, P2's two shares are its dealt ones, known before the data: its
    a2b reshare runs while the product does, so product + sigmoid costs one round less than with
    P0 resharing (pieces="stock" keeps TFE's holder), for the same messages and bytes."""
    a, b = _rand((6, 11)), _rand((11, 1))
    stats = {}
    for mode in ("telescoped", "stock"):
        prot = AcceleratedABY3(pieces=mode, comparison="kogge-stone")
        x, w = _private(prot, a), _private(prot, b)
        stats[mode, "chain"] = communication(lambda: prot.sigmoid(prot.matmul(x, w), approx_type="5_piecewise_linear"))
        stats[mode, "sigmoid"] = communication(lambda: prot.sigmoid(x, approx_type="5_piecewise_linear"))
        stats[mode, "matmul"] = communication(lambda: prot.matmul(x, w))
    for mode, saved in (("telescoped", 1), ("stock", 0)):
        chain, parts = stats[mode, "chain"].rounds, stats[mode, "sigmoid"].rounds + stats[mode, "matmul"].rounds
        assert chain == parts - saved, (mode, stats)
