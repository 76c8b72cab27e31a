"""Building blocks of the fused routes (tfe_accel.protocol.routes): where a party's op runs, how a
message reaches its receiver, how result shares are wrapped, and the pairwise-nonce cursor.

Every route is written party by party: party i's fused op runs under ``on(prot, i, op_type)`` and
reads only party i's shares, keys and nonces; whatever another party computed reaches it through
``recv`` (the graph edge between two parties' devices is the message, which TF's runtime sends and
``tfe_accel.accounting`` counts).
"""
from __future__ import annotations

import tensorflow as tf


class Fallback:
    """Returned by a route for a case it does not cover: the protocol runs stock ABY3 and logs the
    reason once (DEBUG, logger ``tfe_accel``)."""

    def __init__(self, reason: str):
        self.reason = reason


# ---- devices ---------------------------------------------------------------------------------------


def on(prot, i, op_type):
    """Device scope for party i's fused op of type `op_type`: the party's GPU when the protocol's
    placement put the party there and the op has a GPU kernel, else the party's CPU device
    (tfe_accel.placement)."""
    return tf.device(prot.fused_device(i, op_type))


def home(prot, i):
    """Device scope of party i's own device (its CPU): TF ops and host-side values."""
    return tf.device(prot.servers[i].device_name)


# ---- messages and held shares ----------------------------------------------------------------------


def recv(prot, i, t, hold: bool = False):
    """Tensor t, computed by another party, as party i receives it: the one way a message is written.

    Without ``hold`` the edge from the sender's op to party i's next op is the message (TF inserts
    the transfer between the two devices). With ``hold=True`` the message becomes a share that party
    i keeps in TFE's tensors: an Identity on party i's own device, so the share lives there (TF
    sends it once, whoever uses it later)."""
    if not hold:
        return t
    with home(prot, i):
        return tf.identity(t)


def held(prot, i, t):
    """Party i's own fused-op output as a share it holds: TFE keeps every share on the party's own
    device, so an output on the party's GPU is copied there (nothing to do on its CPU)."""
    if not prot.placement.on_gpu(i):
        return t
    with home(prot, i):
        return tf.identity(t)


def wrap(factory, value):
    return factory.tensor(value, encode=False)


def wrap_held(prot, factory, rows):
    """[[s_00, s_01], [s_10, s_11], [s_20, s_21]] fused-op outputs -> party-held factory tensors."""
    return [[wrap(factory, held(prot, i, t)) for t in row] for i, row in enumerate(rows)]


def reshare(prot, z_values, factory):
    """Stock ABY3's resharing: party i keeps z_i and receives z_{i+1} from P_{i+1}."""
    return [[wrap(factory, held(prot, i, z_values[i])),
             wrap(factory, recv(prot, i, z_values[(i + 1) % 3], hold=True))] for i in range(3)]


# ---- argument checks shared by the routes ----------------------------------------------------------


def is_int64(*tensors) -> bool:
    return all(t.backing_dtype.native_type == tf.int64 for t in tensors)


def arithmetic_guard(*tensors, need_shape: bool = True):
    """Fallback when a tensor has boolean shares, an unknown shape or a non-int64 backing; else None."""
    if not all(t.is_arithmetic() for t in tensors):
        return Fallback("boolean shares")
    if need_shape and not all(t.shape.is_fully_defined() for t in tensors):
        return Fallback("unknown shapes")
    if not is_int64(*tensors):
        return Fallback("non-int64 backing")
    return None


def untransposed(*tensors):
    """If every tensor is `tf.transpose` of a matrix (last two dims swapped) in the graph being
    traced, return their inputs and True, so the fused matmul reads them with a transpose flag
    instead of materialising the transposes (what Grappler does for tf.matmul, which it cannot
    do for our ops). Otherwise the tensors unchanged and False. Eager tensors are unchanged."""
    srcs = []
    for t in tensors:
        op = getattr(t, "op", None)
        if op is None or op.type != "Transpose" or t.shape.rank is None or t.shape.rank < 2:
            return list(tensors), False
        perm = tf.get_static_value(op.inputs[1])
        rank = t.shape.rank
        want = list(range(rank - 2)) + [rank - 1, rank - 2]
        if perm is None or list(perm) != want:
            return list(tensors), False
        srcs.append(op.inputs[0])
    return srcs, True


def const(prot, i, value, dtype=tf.int64):
    """A constant on party i's device, created once per traced graph (nonces repeat a lot)."""
    graph = tf.compat.v1.get_default_graph()
    cache = prot.__dict__.setdefault("_route_consts", {})
    key = (id(graph), i, int(value), dtype)
    hit = cache.get(key)
    if hit is None or hit[0] is not graph:
        with tf.device(prot.servers[i].device_name):
            hit = (graph, tf.constant(value, dtype))
        cache[key] = hit
    return hit[1]


# ---- pairwise nonces -------------------------------------------------------------------------------


class NonceCursor:
    """The pairwise keys and nonces of one protocol step, and the nonce steps it consumes.

    Stock ABY3 advances every pairwise nonce by one per zero sharing (``_update_pairwise_nonces``).
    A fused step that does `n` zero sharings reads the nonces once, addresses sharing k as
    ``offset`` k (nonce + k), and then advances the protocol's nonces by `n` with :meth:`consume`:
    the same streams, in the same order, as stock's one-at-a-time updates.

    Party i's two zero-sharing streams use ``keys[i][0]`` with ``nonces[(i + 2) % 3]`` (shared with
    P_{i-1}) and ``keys[i][1]`` with ``nonces[i]`` (shared with P_{i+1}).
    """

    def __init__(self, prot):
        self.prot = prot
        self.keys = prot.pairwise_keys()
        self.nonces = [int(n) for n in prot.pairwise_nonces()]

    def zero_share(self, i, offset=0):
        """(key_a, nonce_a, key_b, nonce_b) of party i's zero share `offset` steps ahead, the nonces
        as int64 constants on party i's device."""
        return (self.keys[i][0], const(self.prot, i, self.nonces[(i + 2) % 3] + offset),
                self.keys[i][1], const(self.prot, i, self.nonces[i] + offset))

    def zero_share_ints(self, i, offset=0):
        """As :meth:`zero_share`, the nonces as Python ints (for ops that take them as attributes or
        make their own constants)."""
        return (self.keys[i][0], self.nonces[(i + 2) % 3] + offset,
                self.keys[i][1], self.nonces[i] + offset)

    def pair(self, owner, index, nonce_of, offset=0):
        """keys[owner][index] and the Python int nonce `nonce_of` (+ offset): one pairwise stream."""
        return self.keys[owner][index], self.nonces[nonce_of] + offset

    def consume(self, steps: int):
        """Advance the protocol's pairwise nonces by `steps` zero sharings, as stock does."""
        for _ in range(steps):
            self.prot._update_pairwise_nonces()
