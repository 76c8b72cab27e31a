"""Driver process for tests/test_cluster.py (a TF process can connect to one cluster only, so every
driver runs in its own interpreter). Prints one JSON line prefixed with RESULT.

    python cluster_driver.py compute CONFIG|local [--steps N]   secure matmul + LR steps
    python cluster_driver.py loop CONFIG --failure-timeout S       LR steps forever (kill tests)
    python cluster_driver.py connect CONFIG [--expect-version V]   connect + handshake only
    python cluster_driver.py bench CONFIG|local --n 128 --d 10 --steps 50 [--pids PIDFILE]
        median secure LR step time; with --pids, TCP bytes sent per step by the parties and the
        driver (from `ss -ti` bytes_sent of their sockets)
"""
import re
import statistics
import subprocess
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfe_accel  # noqa: E402,F401
import tf_encrypted as tfe  # noqa: E402
from tfe_accel import cluster  # noqa: E402

SERVERS = ("server0", "server1", "server2")
_SIZE = {}


def tcp_bytes_sent(pids):
    """Sum of bytes_sent over the TCP sockets of `pids` (Linux `ss -tipn`)."""
    out = subprocess.run(["ss", "-tipnH"], capture_output=True, text=True, check=True).stdout
    total, owner = 0, None
    for line in out.splitlines():
        if not line.startswith(("\t", " ")):
            m = re.search(r"pid=(\d+)", line)
            owner = int(m.group(1)) if m else None
            continue
        m = re.search(r"bytes_sent:(\d+)", line)
        if m and owner in pids:
            total += int(m.group(1))
    return total


def data(seed=7, n=32, d=4):
    n, d = _SIZE.get("n", n), _SIZE.get("d", d)
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(8, 5))
    b = rng.normal(size=(5, 3))
    x = rng.normal(size=(n, d))
    y = (x @ rng.normal(size=(d, 1)) > 0).astype(np.float64)
    return a, b, x, y


def build(tfe_config, lr=0.5, cheap=False):
    """Shares the inputs from the owners; returns (matmul result, LR step function, x, y, w0)."""
    tfe.set_config(tfe_config)
    prot = tfe.protocol.ABY3()
    tfe.set_protocol(prot)
    a, b, x, y = data()
    n = x.shape[0]
    pa = tfe.define_private_input("owner0", lambda: tf.constant(a))
    pb = tfe.define_private_input("owner1", lambda: tf.constant(b))
    px = tfe.define_private_input("owner0", lambda: tf.constant(x))
    py = tfe.define_private_input("owner1", lambda: tf.constant(y))
    w0 = tfe.define_private_input("owner0", lambda: tf.zeros((x.shape[1], 1), tf.float64))

    @tfe.function
    def lr_step(xs, ys, w):
        p = tfe.sigmoid(tfe.matmul(xs, w))
        g = tfe.matmul(tfe.transpose(xs), p - ys)
        return w - g * (lr / n)

    @tfe.function
    def lin_step(xs, ys, w):  # cheap to trace (no sigmoid): the kill/stop tests' step
        g = tfe.matmul(tfe.transpose(xs), tfe.matmul(xs, w) - ys)
        return w - g * (lr / n)

    @tfe.function
    def reveal(v):
        return v.reveal().to_native()

    step = lin_step if cheap else lr_step
    return reveal(tfe.matmul(pa, pb)).numpy(), step, reveal, px, py, w0


def compute(tfe_config, steps):
    """Secure matmul + `steps` secure LR steps; revealed results and per-step seconds."""
    mm, lr_step, reveal, px, py, w = build(tfe_config)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        w = lr_step(px, py, w)
        reveal(w)  # one synchronisation point per step
        times.append(time.perf_counter() - t)
    return {"matmul": mm.tolist(), "w": reveal(w).numpy().tolist(), "step_s": times}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("compute", "loop", "connect", "bench"))
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--d", type=int, default=4)
    ap.add_argument("--pids", help="pid file of the servers (bench: count their bytes)")
    ap.add_argument("config")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--failure-timeout", type=float, default=cluster.DEFAULT_FAILURE_TIMEOUT)
    ap.add_argument("--expect-version")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--tls-dir", help="connect over mutual TLS with the driver's certificate")
    args = ap.parse_args()

    if args.expect_version:  # pretend the driver runs another build (mismatch test)
        real = cluster.local_build_info
        cluster.local_build_info = lambda: dict(real(), version=args.expect_version)

    _SIZE.update(n=args.n, d=args.d)
    t0 = time.monotonic()
    if args.config == "local":
        cfg = tfe.LocalConfig(list(SERVERS) + ["owner0", "owner1"])
    else:
        try:
            cfg = cluster.connect(args.config, timeout=args.timeout, failure_timeout=args.failure_timeout,
                                  tls_dir=args.tls_dir)
        except (cluster.ClusterError, ConnectionError, ValueError) as exc:  # TlsPeerError, TlsConfigError
            print("RESULT " + json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
            return 3
    connect_s = time.monotonic() - t0
    if args.mode == "connect":
        print("RESULT " + json.dumps({"connected": True, "seconds": connect_s}), flush=True)
        return 0

    if args.mode == "compute":
        out = compute(cfg, args.steps)
        if args.config != "local":
            # The handshake of connect() against a driver that pretends to be another build: the
            # same remote TfeAccelBuildInfo round trip, without a second driver process.
            try:
                cluster.compare_builds(
                    dict(cluster.local_build_info(), version="9.9.9"),
                    cluster.remote_build_infos(cfg.cluster_config, 60),
                )
                out["mismatch"] = None
            except cluster.ClusterVersionError as exc:
                out["mismatch"] = str(exc)
        print("RESULT " + json.dumps(out), flush=True)
        return 0
    if args.mode == "bench":
        mm, lr_step, reveal, px, py, w = build(cfg)
        for _ in range(3):  # trace + warm up
            w = lr_step(px, py, w)
            reveal(w)
        pids = {os.getpid()}
        if args.pids:
            pids |= {e["pid"] for e in json.load(open(args.pids))["players"].values()}
        d0 = tcp_bytes_sent({os.getpid()})
        b0 = tcp_bytes_sent(pids)
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            w = lr_step(px, py, w)
            reveal(w)
            times.append(time.perf_counter() - t)
        sent = tcp_bytes_sent(pids) - b0
        driver_sent = tcp_bytes_sent({os.getpid()}) - d0
        print("RESULT " + json.dumps({
            "n": args.n, "d": args.d, "steps": args.steps, "median_step_s": statistics.median(times),
            "min_step_s": min(times), "bytes_per_step": sent / args.steps if args.pids else None,
            "driver_bytes_per_step": driver_sent / args.steps if args.pids else None,
        }), flush=True)
        return 0
    mm, lr_step, reveal, px, py, w = build(cfg, cheap=True)

    i = 0
    start = time.monotonic()
    while True:
        try:
            with cluster.guard(cfg):
                w = lr_step(px, py, w)
                reveal(w)
        except cluster.PartyFailureError as exc:
            print(f"tfe-accel: error: {exc}", file=sys.stderr, flush=True)
            return cluster.EXIT_PARTY_FAILURE
        i += 1
        print(f"STEP {i} {time.monotonic() - start:.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
