"""Compile a TFE computation once, the way a user would, and call it per timing run.

Two compiled paths are measured:

- ``fast``: :func:`tfe_accel.function` (no AutoGraph, flat inputs and calls: this project's path,
  what ``tfe.function`` does under AcceleratedABY3);
- ``tfe_function``: stock TF Encrypted's ``tfe.function`` (AutoGraph, the TFE tensors' "bones" as
  nested arguments): what TFE users run today.

TFE tensors enter as arguments, so the graph holds no stale captures. TFE's process-wide memo cache
(``protocol.nodes``) is emptied around the first (tracing) call, so a trace never reuses a tensor of
an earlier graph, and restored afterwards.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import tensorflow as tf

# Op types of tfe-accel's fused ops (cc/tf/): TfeAccel* (products, PRG) and Mpc* (protocol steps).
FUSED_OP_PREFIXES = ("TfeAccel", "Mpc")
PATHS = ("fast", "tfe_function")


def _block(out):
    """Wait for a call's results (eager ops may run asynchronously on remote devices)."""
    for t in tf.nest.flatten(out, expand_composites=False):
        v = getattr(t, "unwrapped", None)
        if v is not None:  # a TFE tensor: its first share
            first = v[0][0] if isinstance(v[0], (list, tuple)) else v[0]
            first.value.numpy()
            return
        if isinstance(t, tf.Tensor):
            t.numpy()
            return


class CompiledTFE:
    """``fn(*tensors)`` compiled on ``path`` (see the module docstring) for protocol ``prot``.

    ``self()`` runs one call (with ``prot`` active, so several protocols can be timed interleaved);
    ``first_call_s`` is the wall time of the first call (tracing included), ``trace_s`` the tracing
    part where the path reports it (fast path); ``concrete`` the traced graph (fast path only).
    """

    def __init__(self, prot, fn: Callable, tensors: Sequence, path: str = "fast", name: str = "bench"):
        import tf_encrypted as tfe
        from tf_encrypted.protocol import protocol as tfe_protocol

        from .._function import function, stock_tfe_function

        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        self.prot, self.path, self.name = prot, path, name
        self._tensors = list(tensors)
        if path == "fast":
            self.fn = function(fn, name=name)
        else:
            self.fn = stock_tfe_function()(fn)
        tfe.set_protocol(prot)
        saved = dict(tfe_protocol.nodes)
        tfe_protocol.nodes.clear()
        try:
            t0 = time.perf_counter()
            _block(self.fn(*self._tensors))
            self.first_call_s = time.perf_counter() - t0
        finally:
            tfe_protocol.nodes.clear()
            tfe_protocol.nodes.update(saved)
        self.trace_s = self.fn.trace_seconds if path == "fast" else None
        self.concrete = self.fn.concrete_functions[0] if path == "fast" else None

    def __call__(self):
        import tf_encrypted as tfe

        tfe.set_protocol(self.prot)
        return self.fn(*self._tensors)  # returns when the graph has run (local eager execution)

    def outputs(self):
        """Run once and return the TFE tensors."""
        out = self()
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def stats(self) -> dict:
        """Graph nodes, messages, bytes and rounds of the traced graph (fast path)."""
        from ..accounting import graph_stats

        if self.concrete is None:
            raise ValueError("graph statistics come from the fast path's traced graph")
        ops = self.concrete.graph.get_operations()
        fused = sorted({o.type for o in ops if o.type.startswith(FUSED_OP_PREFIXES)})
        try:
            s = graph_stats(self.concrete)
            comm = {"messages": s.messages, "bytes": s.bytes, "rounds": s.rounds,
                    "unknown_size_messages": s.unknown_size_messages}
        except ValueError as exc:  # every player on one device (tfe.LocalConfig): no messages to see
            comm = {"messages": None, "bytes": None, "rounds": None, "communication": str(exc)}
        return {
            "nodes": len(ops),
            **comm,
            "fused_op_types": fused,
            "fused_ops": sum(1 for o in ops if o.type.startswith(FUSED_OP_PREFIXES)),
            "traces": self.fn.trace_count,
        }

    def timing_extra(self) -> dict:
        return {"first_call_s": self.first_call_s, "trace_s": self.trace_s, "path": self.path}


# Kept for callers of the earlier name: the fast path.
def TracedTFE(prot, fn, tensors, name="bench"):  # noqa: N802
    return CompiledTFE(prot, fn, tensors, path="fast", name=name)
