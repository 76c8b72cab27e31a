"""The protocol's building blocks: the route table, the pairwise-nonce cursor and the message
helper (tfe_accel.protocol.registry / helpers). The routes' results are checked against stock in
test_protocol_equivalence.py."""
import numpy as np
import pytest
import tensorflow as tf
import tf_encrypted as tfe

import tfe_accel  # noqa: F401
from tfe_accel.config import PartitionedLocalConfig
from tfe_accel.protocol import AcceleratedABY3, registry, routed_operations, routes
from tfe_accel.protocol.helpers import NonceCursor, recv


@pytest.fixture(scope="module", autouse=True)
def partitioned():
    tfe.set_config(PartitionedLocalConfig())
    yield


def test_every_registered_route_replaces_a_stock_dispatch_target():
    from tf_encrypted.protocol.aby3 import aby3 as stock

    names = routed_operations()
    assert names == sorted(names) and len(names) == len(set(names)) >= 9
    for name in names:
        # stock ABY3 dispatches prot.<op>(...) to aby3._<op>_<ids>: the replaced function exists
        assert callable(getattr(stock, f"_{name}", None)), name
    assert {"matmul_private_private", "mul_private_private", "truncate_heuristic_private",
            "sigmoid_private", "msb_private"} <= set(names)


def test_a_second_route_for_the_same_target_is_refused():
    with pytest.raises(ValueError, match=r"a route for mul\(private_private\) is already registered"):
        registry.route("mul", "private", "private")(lambda prot, x, y: None)
    assert registry.lookup("mul", "private_private") is routes._mul_private_private
    assert registry.lookup("mul", "public_private") is None


def test_nonce_cursor_addresses_and_consumes_the_stock_streams():
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)
    start = [int(n) for n in prot.pairwise_nonces()]
    saved = prot.pairwise_nonces_.copy()
    cur = NonceCursor(prot)
    for i in range(3):
        k_a, n_a, k_b, n_b = cur.zero_share_ints(i, offset=5)
        assert (n_a, n_b) == (start[(i + 2) % 3] + 5, start[i] + 5)
        assert k_a is prot.pairwise_keys()[i][0] and k_b is prot.pairwise_keys()[i][1]
        consts = cur.zero_share(i, offset=5)
        assert [int(consts[1].numpy()), int(consts[3].numpy())] == [n_a, n_b]
        assert consts[1].dtype == tf.int64
    assert cur.pair(2, 1, nonce_of=2, offset=3)[1] == start[2] + 3
    cur.consume(7)
    # the same as stock's one-at-a-time updates
    ref = AcceleratedABY3()
    ref.pairwise_nonces_ = saved
    for _ in range(7):
        ref._update_pairwise_nonces()
    assert [int(n) for n in prot.pairwise_nonces()] == [int(n) for n in ref.pairwise_nonces()]
    assert [int(n) for n in prot.pairwise_nonces()] != start


def test_recv_is_the_edge_or_a_held_copy_on_the_receiver():
    prot = AcceleratedABY3()
    tfe.set_protocol(prot)

    @tf.function(autograph=False)
    def f():
        with tf.device(prot.servers[1].device_name):
            t = tf.constant([1, 2], tf.int64) * 3
        edge = recv(prot, 0, t)
        kept = recv(prot, 0, t, hold=True)
        assert edge is t  # the edge to the receiver's next op is the message
        assert kept.op.type == "Identity" and kept.device == prot.servers[0].device_name, kept.device
        return kept

    np.testing.assert_array_equal(f().numpy(), [3, 6])
