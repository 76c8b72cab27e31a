"""Trace a TFE computation once into a graph and call it per timing run.

TFE tensors enter as arguments (their "bones"), so the graph holds no stale captures, and TFE's
process-wide memo cache (``protocol.nodes``) is emptied at the start of each trace: without that a
re-trace (tf.function re-traces a function that creates state on its first trace) is served tensors
of the previous trace's graph.
"""
from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf

# Op types of tfe-accel's fused ops (cc/tf/): TfeAccel* (products, PRG) and Mpc* (protocol steps).
FUSED_OP_PREFIXES = ("TfeAccel", "Mpc")


class TracedTFE:
    """``fn(*tfe_tensors)`` traced once; ``self()`` runs the graph; ``self.concrete`` is the graph."""

    def __init__(self, prot, fn: Callable, tensors: Sequence, name: str = "bench"):
        from tf_encrypted.protocol import protocol as tfe_protocol

        self.prot = prot
        self.traces = 0
        bones = [t.bone for t in tensors]

        def graph_fn(*bones_in):
            self.traces += 1
            tfe_protocol.nodes.clear()
            args = [prot.from_bone(b) for b in bones_in]
            out = fn(*args)
            outs = out if isinstance(out, (list, tuple)) else [out]
            return [tfe_protocol.unwrap_func(o) for o in outs]

        graph_fn.__name__ = f"tfe_bench_{name}"
        saved = dict(tfe_protocol.nodes)
        try:
            self.concrete = tf.function(graph_fn).get_concrete_function(*bones)
        finally:
            tfe_protocol.nodes.clear()
            tfe_protocol.nodes.update(saved)
        self._bones = bones

    def __call__(self):
        return self.concrete(*self._bones)

    def outputs(self):
        """Run once and wrap the results back into TFE tensors."""
        return [self.prot.from_bone(b) for b in self()]

    def stats(self) -> dict:
        from ..accounting import graph_stats

        s = graph_stats(self.concrete)
        ops = self.concrete.graph.get_operations()
        fused = sorted({o.type for o in ops if o.type.startswith(FUSED_OP_PREFIXES)})
        return {
            "nodes": s.nodes,
            "messages": s.messages,
            "bytes": s.bytes,
            "rounds": s.rounds,
            "unknown_size_messages": s.unknown_size_messages,
            "fused_op_types": fused,
            "fused_ops": sum(1 for o in ops if o.type.startswith(FUSED_OP_PREFIXES)),
            "traces": self.traces,
        }
