"""The driver of `tfe-accel bench network`: times secure ops, stock ABY3 and AcceleratedABY3 side by
side (both through tfe_accel.function), in one of two places:

    python -m tfe_accel.benchmarks.network_driver local   [--quick]   in-process (no network)
    python -m tfe_accel.benchmarks.network_driver CONFIG  [--quick]   on a cluster (shaped)

A TF process can connect to one cluster only, so each measurement is its own process. Prints one
line ``RESULT {json}``: ``cases``: per case and protocol the median seconds per call (each call
waits for its result on the driver, as a user's call does), and the traced graph's messages, bytes
(in all and on the busiest directed link) and rounds; ``null_call``: the timing of a call with no
protocol at all (each server adds one to a value of its own, the driver fetches server0's), what
TF's remote runtime costs per call before any message between the parties.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")



def cases(quick: bool):
    """(name, kind, parameters): what the network benchmark measures."""
    out = [("lr_step d=10 b=128", "lr_step", {"n": 128, "d": 10})]
    for n in ([32] if quick else [64, 256]):
        out.append((f"matmul {n}^3", "matmul", {"n": n}))
    for n in ([1000] if quick else [1000, 100_000]):
        out.append((f"sigmoid {n:.0e}", "sigmoid", {"n": n}))
    return out


def _build(prot, kind, params, seed):
    import numpy as np
    import tf_encrypted as tfe

    from . import training

    tfe.set_protocol(prot)
    rng = np.random.default_rng(seed)
    if kind == "lr_step":
        n, d = params["n"], params["d"]
        tensors = training._step_inputs(prot, n, d, seed)[:4]
        return (lambda x, y, w, b: training._lr_step(prot, x, y, w, b, n)), tensors
    if kind == "matmul":
        n = params["n"]
        tensors = [prot.define_private_variable(rng.uniform(-1, 1, size=(n, n))) for _ in range(2)]
        return (lambda x, y: prot.matmul(x, y)), tensors
    if kind == "sigmoid":
        tensors = [prot.define_private_variable(rng.uniform(-6, 6, size=(params["n"],)))]
        return (lambda x: prot.sigmoid(x, approx_type="5_piecewise_linear")), tensors
    raise ValueError(f"unknown case kind {kind!r}")


def null_call(runs: int, warmup: int) -> dict:
    """Timing of one call that runs an op on every server and waits for server0's result on the
    driver (as `_block` does), with no message between the servers."""
    import tensorflow as tf
    import tf_encrypted as tfe

    from ..config import SERVERS
    from . import runner

    devices = [tfe.get_config().get_player(p).device_name for p in SERVERS]
    values = []
    for d in devices:
        with tf.device(d):
            values.append(tf.Variable(tf.zeros([1], tf.int64)))

    @tf.function(autograph=False)
    def call():
        outs = []
        for d, v in zip(devices, values):
            with tf.device(d):
                outs.append(v + 1)
        return outs

    return runner.interleaved({"null": lambda: call()[0].numpy()}, runs=runs, warmup=warmup,
                              min_run_s=0.0, max_inner=1)["null"]


def measure(quick: bool, runs: int, warmup: int, seed: int = 99) -> dict:
    import tf_encrypted as tfe

    from ..accounting import graph_stats
    from ..protocol import AcceleratedABY3
    from . import runner
    from .tfe_graph import CompiledTFE, _block

    protocols = {"stock": tfe.protocol.ABY3(), "accelerated": AcceleratedABY3()}
    out = {}
    for name, kind, params in cases(quick):
        compiled, res = {}, {"kind": kind, "params": params}
        for pname, prot in protocols.items():
            fn, tensors = _build(prot, kind, params, seed)
            c = CompiledTFE(prot, fn, tensors, path="fast", name=f"net_{pname}_{kind}")
            s = graph_stats(c.concrete)
            res[pname] = {"messages": s.messages, "bytes": s.bytes, "rounds": s.rounds,
                          "busiest_link_bytes": s.busiest_link()[1],
                          "per_pair": s.per_pair, "first_call_s": c.first_call_s}
            compiled[pname] = c
        timing = runner.interleaved({p: (lambda c=c: _block(c())) for p, c in compiled.items()},
                                    runs=runs, warmup=warmup, min_run_s=0.0, max_inner=1)
        for pname in protocols:
            res[pname].update(timing[pname])
        out[name] = res
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tfe_accel.benchmarks.network_driver")
    ap.add_argument("config", help="cluster JSON, or 'local' (in-process)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)

    import tf_encrypted as tfe

    import tfe_accel  # noqa: F401
    from .. import cluster
    from ..config import SERVERS, PartitionedLocalConfig

    if args.config == "local":
        tfe.set_config(PartitionedLocalConfig(list(SERVERS)))
    else:
        try:
            tfe.set_config(cluster.connect(args.config, timeout=args.timeout))
        except cluster.ClusterError as exc:
            print("RESULT " + json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
            return 3
    result = {"cases": measure(args.quick, args.runs, args.warmup),
              "null_call": null_call(args.runs, args.warmup)}
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # TF's remote context has no clean shutdown; results are flushed


if __name__ == "__main__":
    sys.exit(main())
