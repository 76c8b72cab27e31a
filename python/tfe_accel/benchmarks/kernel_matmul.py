"""Benchmark of the ring matmul family against the TF-op sequences they replace (not a test).

    tfe-accel bench kernels [--quick]                       (with the other kernel benchmarks)
    python -m tfe_accel.benchmarks.kernel_matmul [--quick] [--threads 1 2] [--output DIR]

Each thread count runs in its own subprocess (TF's intra-op pool size is fixed at start-up); in it,
ours and the baseline alternate (interleaved), medians of >= 5 runs after a warm-up:
  * ring_matmul (TF op, and _native) vs tf.matmul on int64, square shapes and the two
    matrix-vector shapes of logistic regression on BC-TCGA (470 x 17814);
  * rss_matmul (party 0's local step, zero share in-kernel) vs the stock sequence of TFE's
    _matmul_private_private: 3 tf.matmul + adds + _gen_zero_sharing's two SecureSeededRandomUniform
    and a subtraction (both as tf.function graphs);
  * public_private_matmul (both shares, one call) vs 2 tf.matmul.
Matrix-vector shapes also report GB/s and the floor time of reading the matrices once at the
measured memory copy bandwidth. The module's command line writes DIR/matmul_cpu.json (default
bench/results under the current directory); `tfe-accel bench` merges run(quick, threads) -> dict
into its results.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from ..info import cpu_model

DEFAULT_OUTPUT = Path("bench") / "results"
WORKER_MODULE = "tfe_accel.benchmarks.kernel_matmul"

LR_N, LR_D = 470, 17814  # BC-TCGA: 470 samples x 17,814 genes


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


CPU_TIMES: dict = {}


def _interleaved(fns: dict, reps: int) -> dict:
    """Warm up each callable, then time them round-robin `reps` times; medians of wall seconds.
    Medians of process CPU seconds go to CPU_TIMES (on a shared, oversubscribed machine wall
    time includes waiting for a CPU; CPU time includes TF's pool threads spinning)."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            c = time.process_time()
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    CPU_TIMES.clear()
    CPU_TIMES.update({k: _median(v) for k, v in cpu.items()})
    return {k: _median(v) for k, v in times.items()}


def _copy_bandwidth_gbs(np) -> float:
    """Memory traffic (read + write bytes per second) of a large single-threaded copy."""
    src = np.ones(32 * 1024 * 1024, dtype=np.int64)  # 256 MiB
    dst = np.empty_like(src)
    best = 0.0
    for _ in range(4):
        t = time.perf_counter()
        np.copyto(dst, src)
        dt = time.perf_counter() - t
        best = max(best, 2 * src.nbytes / dt / 1e9)
    return best


def _worker(quick: bool, threads: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() != threads:
        raise RuntimeError(f"the worker must start with TF's intra-op pool at {threads} thread(s), "
                           f"got {tf.config.threading.get_intra_op_parallelism_threads()}")
    from tfe_accel import _native, ops

    _native.set_num_threads(threads)
    rng = np.random.default_rng()
    reps = 5 if quick else 7

    def rand(*shape):
        return rng.integers(-(2**63), 2**63, size=shape, dtype=np.int64)

    bw = _copy_bandwidth_gbs(np)
    rows = []

    # ---------------------------------------------------------------- ring_matmul
    shapes = [(256, 256, 256), (512, 512, 512)] + ([] if quick else [(1024, 1024, 1024)])
    cases = [(f"{m}x{k} @ {k}x{n}", (m, k), (k, n), False, m, k, n) for m, k, n in shapes]
    cases += [
        (f"{LR_N}x{LR_D} @ {LR_D}x1", (LR_N, LR_D), (LR_D, 1), False, LR_N, LR_D, 1),
        (f"({LR_N}x{LR_D})^T @ {LR_N}x1", (LR_N, LR_D), (LR_N, 1), True, LR_D, LR_N, 1),
    ]
    for name, sa, sb, ta, m, k, n in cases:
        a, b = tf.constant(rand(*sa)), tf.constant(rand(*sb))
        an, bn = a.numpy(), b.numpy()
        ours = tf.function(autograph=False, func=lambda: ops.ring_matmul(a, b, transpose_a=ta))
        base = tf.function(autograph=False, func=lambda: tf.matmul(a, b, transpose_a=ta))
        assert np.array_equal(ours().numpy(), base().numpy()), "ring_matmul != tf.matmul"
        t = _interleaved({"ours": ours, "tf": base,
                          "native": lambda: _native.ring_matmul(an, bn, transpose_a=ta)}, reps)
        base_key = "tf"
        macs = m * k * n
        row = {"op": "ring_matmul", "shape": name, "threads": threads,
               "ours_s": t["ours"], "baseline_s": t["tf"], "native_s": t["native"],
               "speedup": t["tf"] / t["ours"],
               "ours_gmacs": macs / t["ours"] / 1e9, "baseline_gmacs": macs / t["tf"] / 1e9,
               "baseline": "tf.matmul int64"}
        if n == 1:
            nbytes = 8 * m * k
            row.update({"matrix_bytes": nbytes, "ours_gbs": nbytes / t["ours"] / 1e9,
                        "baseline_gbs": nbytes / t["tf"] / 1e9,
                        "floor_s": nbytes / (bw * 1e9)})
        row.update({"ours_cpu_s": CPU_TIMES["ours"], "baseline_cpu_s": CPU_TIMES[base_key]})
        rows.append(row)

    # ---------------------------------------------------------------- rss_matmul
    key0, key1 = ops.secure_seed(), ops.secure_seed()
    nonce0, nonce1 = tf.constant(np.int64(3)), tf.constant(np.int64(5))
    lo, hi = -(2**63), 2**63 - 1
    rss_cases = [
        (f"{LR_N}x{LR_D} @ {LR_D}x1", (LR_N, LR_D), (LR_D, 1), False, 2),
        (f"({LR_N}x{LR_D})^T @ {LR_N}x1", (LR_N, LR_D), (LR_N, 1), True, 2),
        ("512x512 @ 512x512", (512, 512), (512, 512), False, None),
    ]
    for name, sx, sy, ta, nmat in rss_cases:
        xi, xn, yi, yn = (tf.constant(rand(*s)) for s in (sx, sx, sy, sy))

        @tf.function
        def ours():
            return ops.rss_matmul(xi, xn, yi, yn, key0, key1, nonce0, nonce1, transpose_a=ta)

        @tf.function
        def stock():
            z = (tf.matmul(xi, yi, transpose_a=ta) + tf.matmul(xi, yn, transpose_a=ta)
                 + tf.matmul(xn, yi, transpose_a=ta))
            shape = tf.shape(z)
            f0 = ops.seeded_random_uniform(shape, key0 + tf.cast(nonce0, tf.int32), lo, hi)
            f1 = ops.seeded_random_uniform(shape, key1 + tf.cast(nonce1, tf.int32), lo, hi)
            return z + (f0 - f1)

        assert np.array_equal(ours().numpy(), stock().numpy()), "rss_matmul != stock sequence"
        t = _interleaved({"ours": ours, "stock": stock}, reps)
        base_key = "stock"
        m, k = (sx[1], sx[0]) if ta else sx
        n = sy[1]
        row = {"op": "rss_matmul", "shape": name, "threads": threads,
               "ours_s": t["ours"], "baseline_s": t["stock"], "speedup": t["stock"] / t["ours"],
               "ours_gmacs": 2 * m * k * n / t["ours"] / 1e9,
               "baseline": "3 tf.matmul + adds + zero sharing (2 SecureSeededRandomUniform)"}
        if nmat:
            nbytes = 8 * m * k * nmat  # x_i and x_next, each read once
            row.update({"matrix_bytes": nbytes, "ours_gbs": nbytes / t["ours"] / 1e9,
                        "floor_s": nbytes / (bw * 1e9)})
        row.update({"ours_cpu_s": CPU_TIMES["ours"], "baseline_cpu_s": CPU_TIMES[base_key]})
        rows.append(row)

    # ---------------------------------------------------------------- public x private
    p = tf.constant(rand(LR_N, LR_D))
    x0, x1 = tf.constant(rand(LR_D, 1)), tf.constant(rand(LR_D, 1))
    ours = tf.function(autograph=False, func=lambda: ops.public_private_matmul(p, x0, x1))
    base = tf.function(autograph=False, func=lambda: (tf.matmul(p, x0), tf.matmul(p, x1)))
    t = _interleaved({"ours": ours, "tf": base}, reps)
    nbytes = 8 * LR_N * LR_D
    rows.append({"op": "public_private_matmul", "shape": f"{LR_N}x{LR_D} @ {LR_D}x1 (2 shares)",
                 "threads": threads, "ours_s": t["ours"], "baseline_s": t["tf"],
                 "speedup": t["tf"] / t["ours"], "matrix_bytes": nbytes,
                 "ours_gbs": nbytes / t["ours"] / 1e9, "floor_s": nbytes / (bw * 1e9),
                 "baseline": "2 tf.matmul",
                 "ours_cpu_s": CPU_TIMES["ours"], "baseline_cpu_s": CPU_TIMES["tf"]})

    return {"threads": threads, "copy_bandwidth_gbs": bw, "code_path": _native.ring_gemm_path(),
            "cpu_features": _native.cpu_features(), "tf_version": tf.__version__,
            "reps": reps, "rows": rows}


def run(quick: bool, threads: list[int]) -> dict:
    """Run the benchmark (one subprocess per thread count); returns the result dict."""
    per_thread = []
    for th in threads:
        # TF's pools are sized when its context starts, and importing tfe_accel starts it: the
        # worker sets the thread counts first, then imports this module.
        boot = (f"import tensorflow as tf; tf.config.threading.set_intra_op_parallelism_threads({th}); "
                "tf.config.threading.set_inter_op_parallelism_threads(1); import sys; "
                f"from {WORKER_MODULE} import main; sys.exit(main(sys.argv[1:]))")
        cmd = [sys.executable, "-c", boot, "--worker", "--threads", str(th)]
        if quick:
            cmd.append("--quick")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"bench worker ({th} threads) failed:\n{proc.stderr[-4000:]}")
        per_thread.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {
        "benchmark": "matmul_cpu",
        "machine": {"cpu_model": cpu_model(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "quick": quick,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": per_thread,
    }


def format_table(res: dict) -> str:
    lines = [f"machine: {res['machine']['cpu_model']} ({res['machine']['cpus']} cpus)"]
    for r in res["results"]:
        lines.append(f"\n{r['threads']} thread(s); code path {r['code_path']}; TF {r['tf_version']}; "
                     f"copy bandwidth {r['copy_bandwidth_gbs']:.1f} GB/s (read+write); "
                     f"medians of {r['reps']} (x: wall-time ratio; cpu x: process CPU-time ratio)")
        lines.append(f"{'op':<22} {'shape':<30} {'ours ms':>9} {'base ms':>9} {'x':>6} "
                     f"{'GMAC/s':>7} {'GB/s':>6} {'floor ms':>8} {'cpu x':>6} {'_native ms':>10}")
        for row in r["rows"]:
            gbs = f"{row['ours_gbs']:.1f}" if "ours_gbs" in row else ""
            floor = f"{row['floor_s'] * 1e3:.2f}" if "floor_s" in row else ""
            gm = f"{row['ours_gmacs']:.1f}" if "ours_gmacs" in row else ""
            lines.append(f"{row['op']:<22} {row['shape']:<30} {row['ours_s'] * 1e3:9.2f} "
                         f"{row['baseline_s'] * 1e3:9.2f} {row['speedup']:6.2f} {gm:>7} {gbs:>6} "
                         f"{floor:>8} {row['baseline_cpu_s'] / row['ours_cpu_s']:6.2f} "
                         f"{(row['native_s'] * 1e3 if 'native_s' in row else float('nan')):10.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller shapes, 5 repetitions")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="directory for the JSON")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.quick, args.threads[0])))
        return 0
    res = run(args.quick, args.threads)
    print(format_table(res))
    args.output.mkdir(parents=True, exist_ok=True)
    out = args.output / "matmul_cpu.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
