"""What mutual TLS costs: process-per-party runs on loopback, plain vs TLS, side by side.

    python bench/tls_cost.py [--rounds 3] [--steps 50] [--epochs 20] [--output bench/results/tls_cost.json]

Starts two five-party clusters of `tfe-accel serve` processes on this machine (one plain, one with
--tls-dir), then alternates, `--rounds` times: (a) the secure LR step at D=10, batch 128 (median
over `--steps` steps after warm-up; tests/cluster_driver.py bench), (b) `tfe-accel train --cluster`
on the embedded Golub data (`--epochs` epochs; whole-process wall time and the training report's
phases). Medians over the rounds; the ratio TLS / plain. Needs root (TLS mode's network namespaces).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from tfe_accel import cluster, tls  # noqa: E402

PLAYERS = ["server0", "server1", "server2", "owner0", "owner1"]


def env():
    e = dict(os.environ)
    e["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return e


def make_cluster(tmp: Path, name: str, tls_dir):
    ports = cluster.free_ports(len(PLAYERS) + 1)
    hm = {p: f"127.0.0.1:{q}" for p, q in zip(PLAYERS, ports)}
    hm["driver"] = f"127.0.0.1:{ports[-1]}"
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(hm))
    lc = cluster.LocalCluster(path, exit_with_parent=True, env=env(), tls_dir=tls_dir)
    lc.up(timeout=120)
    return lc


def lr_step(lc, tls_dir, steps):
    cmd = [sys.executable, str(ROOT / "tests" / "cluster_driver.py"), "bench", str(lc.config_path),
           "--n", "128", "--d", "10", "--steps", str(steps)]
    if tls_dir:
        cmd += ["--tls-dir", str(tls_dir)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env())
    out = [l[7:] for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    if r.returncode or not out:
        raise RuntimeError(f"driver failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(out[-1])["median_step_s"]


def train(lc, tls_dir, epochs, out_dir):
    cmd = [sys.executable, "-m", "tfe_accel", "train", "--no-progress", "--cluster", str(lc.config_path),
           "--epochs", str(epochs), "--output", str(out_dir)]
    if tls_dir:
        cmd += ["--tls-dir", str(tls_dir)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env())
    wall = time.perf_counter() - t0
    if r.returncode:
        raise RuntimeError(f"train failed ({r.returncode}): {r.stderr[-2000:]}")
    return wall, json.loads((Path(out_dir) / "metrics.json").read_text())["timing"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "tls_cost.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tfe-accel-tls-cost-"))
    certs = tmp / "certs"
    tls.init(certs, PLAYERS + ["driver"])
    plain, secure = make_cluster(tmp, "plain", None), make_cluster(tmp, "tls", certs)
    metrics = ("step_s", "train_wall_s", "secure_wall_s", "epoch_s")
    rows = {k: {m: [] for m in metrics} for k in ("plain", "tls")}
    try:
        for i in range(args.rounds):
            for name, lc, d in (("plain", plain, None), ("tls", secure, certs)):
                rows[name]["step_s"].append(lr_step(lc, d, args.steps))
                wall, rep = train(lc, d, args.epochs, tmp / f"out-{name}-{i}")
                rows[name]["train_wall_s"].append(wall)
                rows[name]["secure_wall_s"].append(rep["secure_wall_seconds"])
                rows[name]["epoch_s"].append(rep["seconds_per_epoch_median"])
                print(f"round {i + 1} {name}: LR step {rows[name]['step_s'][-1] * 1e3:.2f} ms, "
                      f"train {wall:.2f} s (secure phases {rep['secure_wall_seconds']:.2f} s, "
                      f"{rep['seconds_per_epoch_median'] * 1e3:.1f} ms/epoch)", flush=True)
    finally:
        plain.down()
        secure.down()
    med = {k: {m: statistics.median(v) if v else None for m, v in r.items()} for k, r in rows.items()}
    ratio = {m: (med["tls"][m] / med["plain"][m]) if med["plain"][m] else None for m in med["plain"]}
    result = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "rounds": args.rounds,
              "lr_step": {"n": 128, "d": 10, "steps": args.steps}, "train": {"data": "golub (embedded)",
              "epochs": args.epochs}, "runs": rows, "median": med, "tls_over_plain": ratio}
    Path(args.output).write_text(json.dumps(result, indent=1))
    for m, r in ratio.items():
        if r is not None:
            print(f"{m}: plain {med['plain'][m]:.4f}, TLS {med['tls'][m]:.4f}, TLS/plain {r:.3f}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
