"""Communication accounting for any traced TF Encrypted computation.

A *message* is a tensor produced on one party's device and consumed on another's (TF sends it
once per destination device). *Bytes* are what TF transfers for those tensors (static shape x
dtype size). *Rounds* are the longest chain of messages through the graph (the latency-bound part).
A control edge between two parties' ops is a message too (TF's partitioner sends a dummy tensor
for it): it is counted in ``control_messages`` (no bytes) and in the rounds. tf.function adds such
edges between *stateful* ops in program order, so a stateful op on every party's chain can cost
rounds no data edge shows.
Parties are told apart by device, so use ``tfe_accel.config.PartitionedLocalConfig`` (in-process)
or a ``tfe.RemoteConfig``; with stock ``tfe.LocalConfig`` every player shares one device and no
message can be seen (an error says so).
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Callable, Dict, Optional

import tensorflow as tf


@dataclasses.dataclass
class CommStats:
    messages: int
    bytes: int
    rounds: int
    nodes: int
    per_pair: Dict[str, int]  # "src->dst": bytes
    unknown_size_messages: int = 0
    control_messages: int = 0  # cross-party control edges (op, destination party): no bytes

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def busiest_link(self):
        """("src->dst", bytes) of the directed link that carries the most bytes (("", 0) if none):
        what bounds the computation on a slow network."""
        return max(self.per_pair.items(), key=lambda kv: kv[1], default=("", 0))

    def __str__(self) -> str:
        control = f" (+{self.control_messages} control)" if self.control_messages else ""
        return (f"{self.messages} messages{control}, {self.bytes} bytes, {self.rounds} rounds, "
                f"{self.nodes} graph nodes")


def _norm(device: str) -> str:
    if not device:
        return ""
    spec = tf.DeviceSpec.from_string(device)
    return spec.replace(device_type=(spec.device_type or "CPU").upper()).to_string()


def party_devices(config=None) -> Dict[str, str]:
    """device string -> player name for the current (or given) TFE config."""
    import tf_encrypted as tfe

    config = config or tfe.get_config()
    mapping = {}
    for player in config.players:
        dev = _norm(player.device_name)
        if dev in mapping:
            raise ValueError(
                f"players {mapping[dev]!r} and {player.name!r} share device {dev}: parties cannot be "
                "told apart. Use tfe_accel.config.PartitionedLocalConfig or a RemoteConfig."
            )
        mapping[dev] = player.name
    return mapping


def trace(func: Callable, *args, **kwargs):
    """Trace `func(*args, **kwargs)` (TFE code) into a ConcreteFunction without running it."""
    from tf_encrypted.protocol import protocol as tfe_protocol

    @tf.function(autograph=False)  # TFE code emits graph ops itself (tfe_accel.function)
    def graph_fn():
        tfe_protocol.nodes.clear()  # a retrace must not reuse tensors of an earlier trace
        return tfe_protocol.unwrap_func(func(*args, **kwargs))

    # TFE memoises protocol calls in a process-wide dict keyed by the Python arguments: start the
    # trace with it empty (or eager results would be reused and nothing traced) and restore it
    # afterwards (or later eager calls would get this graph's tensors).
    saved = dict(tfe_protocol.nodes)
    tfe_protocol.nodes.clear()
    try:
        return graph_fn.get_concrete_function()
    finally:
        tfe_protocol.nodes.clear()
        tfe_protocol.nodes.update(saved)


def graph_stats(concrete, config=None) -> CommStats:
    """Messages, bytes, rounds and node count of a traced ConcreteFunction (or of a FuncGraph, e.g.
    a loop body: one iteration)."""
    parties = party_devices(config)
    graph = getattr(concrete, "graph", concrete)
    # Captured tensors enter as placeholders: give them the device of the outside tensor.
    capture_device = {}
    for external, internal in graph.captures:
        dev = getattr(external, "device", "") or ""
        capture_device[internal.op.name] = _norm(dev)

    def party_of(op) -> Optional[str]:
        dev = _norm(op.device) if op.device else capture_device.get(op.name, "")
        return parties.get(dev)

    ops = graph.get_operations()
    sent = {}  # (tensor name, dst party) -> bytes or None
    control = set()  # (op name, dst party)
    depth = {}
    for op in ops:  # get_operations() is in creation order, which is topological
        dst = party_of(op)
        d = 0
        # data inputs (tensor t) and control inputs (t None): both cross parties as messages
        for src_op, t in [(t.op, t) for t in op.inputs] + [(c, None) for c in op.control_inputs]:
            src = party_of(src_op)
            crossing = src is not None and dst is not None and src != dst
            d = max(d, depth.get(src_op.name, 0) + (1 if crossing else 0))
            if crossing and t is None:
                control.add((src_op.name, dst))
            elif crossing and (t.name, dst) not in sent:
                shape = t.shape
                if shape.is_fully_defined() and t.dtype != tf.resource:
                    sent[(t.name, dst)] = (src, int(shape.num_elements()) * t.dtype.size)
                else:
                    sent[(t.name, dst)] = (src, None)
        depth[op.name] = d
    per_pair = defaultdict(int)
    unknown = 0
    total = 0
    for (tname, dst), (src, nbytes) in sent.items():
        if nbytes is None:
            unknown += 1
            continue
        per_pair[f"{src}->{dst}"] += nbytes
        total += nbytes
    return CommStats(
        messages=len(sent),
        bytes=total,
        rounds=max(depth.values(), default=0),
        nodes=len(ops),
        per_pair=dict(per_pair),
        unknown_size_messages=unknown,
        control_messages=len(control),
    )


def communication(func: Callable, *args, config=None, **kwargs) -> CommStats:
    """Trace a TFE computation and count its messages, bytes, rounds and graph nodes per call.

    Example::

        stats = tfe_accel.accounting.communication(lambda: tfe.sigmoid(x))
        print(stats)   # 130 messages, 52,224 bytes, 14 rounds, 2,319 graph nodes
    """
    return graph_stats(trace(func, *args, **kwargs), config)
