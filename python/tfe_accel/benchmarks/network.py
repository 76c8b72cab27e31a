"""`tfe-accel bench network`: secure ops over a shaped network, next to an analytic estimate.

The three compute servers run as `tfe-accel serve` processes, each in its own network namespace,
and the driver in its own process; every link goes through the link shaper (tfe_accel.network).
For each case, stock ABY3 and AcceleratedABY3 (both through tfe_accel.function) are timed side by
side, and each measurement is printed next to

    estimate = base time + call overhead + (rounds + 1) x RTT / 2 + busiest link's bytes / rate

where the base time is the same case measured on the same process-per-party cluster with the
shaper adding nothing (profile "loopback": TF's gRPC runtime, processes and the machine's own
loopback, no delay or cap), rounds and bytes come from the traced graph's accounting
(tfe_accel.accounting). A round costs a one-way delay (RTT / 2), not a round trip: TF's
receiver-pull RecvTensor sends every receive's request when the call starts, so a message goes out
as soon as it is produced; only the first one waits for its request to arrive (the extra half RTT).
The call overhead is measured, not modelled: a call with no protocol (an op on every server, the
driver fetching one result: ``network_driver.null_call``) on the shaped cluster minus the same on
the loopback cluster; it is the driver's dispatch of the call to the servers and its fetch of the
result (measured ~4 RTT on TF 2.12: 161-163 ms at 40 ms). The in-process time (PartitionedLocalConfig, no network at
all) is reported next to it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from .. import network
from ..config import SERVERS

DRIVER = [sys.executable, "-m", "tfe_accel.benchmarks.network_driver"]


def _run_driver(target: str, quick: bool, runs: int, env=None, timeout: float = 900) -> dict:
    cmd = DRIVER + [target, "--runs", str(runs)] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ if env is None else env, TF_CPP_MIN_LOG_LEVEL="2"))
    lines = [ln[7:] for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"network benchmark driver ({target}) printed no result (exit "
                           f"{proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(lines[-1])
    if "error" in out:
        raise RuntimeError(f"network benchmark driver ({target}): {out['error']}")
    return out


LOOPBACK = network.LinkProfile("loopback", 0.0, 0.0)


def estimate(local_s: float, rounds: int, busiest_bytes: int, link: network.LinkProfile,
             call_overhead_s: float = 0.0) -> float:
    """The module docstring's estimate of one call's time on `link` (seconds)."""
    t = local_s + call_overhead_s + ((rounds + 1) * link.rtt_s / 2 if rounds else 0.0)
    if link.rate_bytes_per_s > 0:
        t += busiest_bytes / link.rate_bytes_per_s
    return t


def measure_profile(link: network.LinkProfile, quick: bool, runs: int, local: dict, base: dict,
                    workdir, log=print) -> dict:
    shaped = _run_cluster(link, quick, runs, workdir, log)
    overhead = max(0.0, shaped["null_call"]["median_s"] - base["null_call"]["median_s"])
    rows = {}
    for name, res in shaped["cases"].items():
        row = {}
        for p in ("stock", "accelerated"):
            b = base["cases"][name][p]["median_s"]
            est = estimate(b, res[p]["rounds"], res[p]["busiest_link_bytes"], link, overhead)
            row[p] = {"measured_s": res[p]["median_s"], "q1_s": res[p]["q1_s"],
                      "q3_s": res[p]["q3_s"], "base_s": b, "in_process_s": local[name][p]["median_s"],
                      "rounds": res[p]["rounds"], "messages": res[p]["messages"],
                      "bytes": res[p]["bytes"], "busiest_link_bytes": res[p]["busiest_link_bytes"],
                      "estimate_s": est,
                      "estimate_error": (est - res[p]["median_s"]) / res[p]["median_s"]}
        row["speedup"] = row["stock"]["measured_s"] / row["accelerated"]["measured_s"]
        rows[name] = row
    return {"link": {"name": link.name, "rtt_s": link.rtt_s,
                     "rate_bits_per_s": link.rate_bits_per_s},
            "baseline_rtt_s": shaped["baseline_rtt_s"], "null_call_s": shaped["null_call"]["median_s"],
            "call_overhead_s": overhead, "cases": rows,
            "wire_bytes_per_route": shaped["wire_bytes_per_route"]}


def _run_cluster(link: network.LinkProfile, quick: bool, runs: int, workdir, log=print) -> dict:
    """The driver's measurements on a fresh shaped cluster of the three servers."""
    sc = network.ShapedCluster.create(list(SERVERS), Path(workdir) / link.name, link,
                                      compensate=link.rtt_s > 0, exit_with_parent=True)
    t0 = time.perf_counter()
    sc.up(timeout=120)
    log(f"  {link.describe()}: cluster up in {time.perf_counter() - t0:.1f} s" +
        (f" (machine's loopback RTT {sc.baseline_rtt_s * 1e6:.0f} us, subtracted)"
         if sc.compensate else ""))
    try:
        env = dict(os.environ, TFE_ACCEL_DRIVER_ADDRESS=sc.driver_address)
        shaped = _run_driver(str(sc.config_path), quick, runs, env=env)
        links = sc.link_stats()
    finally:
        sc.down()
    wire = {s["name"]: s["bytes_forward"] + s["bytes_backward"] for s in links}
    return {"cases": shaped["cases"], "null_call": shaped["null_call"],
            "baseline_rtt_s": sc.baseline_rtt_s, "wire_bytes_per_route": wire}


def run(links: List[network.LinkProfile], quick: bool = False, runs: Optional[int] = None,
        log=print, tls: bool = False) -> dict:
    why = network.netns_unavailable()
    if why:
        raise RuntimeError(f"bench network needs network namespaces: {why}")
    runs = runs or (5 if quick else 7)
    log("network: in-process reference (PartitionedLocalConfig) ...")
    local = _run_driver("local", quick, runs)["cases"]
    out = {"quick": quick, "runs": runs, "in_process": local, "profiles": []}
    with tempfile.TemporaryDirectory(prefix="tfe-accel-net-") as tmp:
        log("network: the same cluster unshaped (the estimates' base) ...")
        base = _run_cluster(LOOPBACK, quick, runs, tmp, log)
        out["loopback"] = base
        for link in links:
            out["profiles"].append(measure_profile(link, quick, runs, local, base, tmp, log=log))
            log(format_profile(out["profiles"][-1]))
        if not quick or tls:  # end to end: training, owners and servers all shaped
            shape = QUICK_TRAIN_SHAPE if quick else "bc-tcga"
            label = "x".join(map(str, shape)) if quick else shape
            log(f"network: tfe-accel train --cluster ({label} shape, two owners, defaults"
                f"{', plain and TLS' if tls else ''}) ...")
            out["training"] = training_benchmark(links, shape, tmp, log=log, tls=tls, ablation=not quick)
            log(format_training(out["training"]))
    return out


TRAIN_PLAYERS = [*SERVERS, "owner0", "owner1"]
# --quick --tls: a small set (n, d, positives), so the TLS row fits the quick budget
QUICK_TRAIN_SHAPE = (100, 500, 40)


def training_benchmark(links: List[network.LinkProfile], shape, workdir, seed: int = 7,
                       log=print, tls: bool = False, ablation: bool = False) -> dict:
    """`tfe-accel train --cluster` (two owners, defaults) on a shaped 5-player cluster per link
    profile, stock and accelerated: wall from process start, secure phases, rounds per epoch.
    With `tls`, also the accelerated run with every link in mutual TLS (`--tls-dir`, a second
    cluster on the same link profile) and its cost relative to the plaintext one. With `ablation`,
    also the accelerated run with TFE's Kogge-Stone comparison (``--comparison kogge-stone``, row
    ``accelerated_kogge_stone``): what the masked comparison's round cut gives on this link."""
    from . import training

    workdir = Path(workdir)
    paths = training._bc_tcga_files(str(workdir), shape, seed)
    label = shape if isinstance(shape, str) else "x".join(map(str, shape[:2]))
    out = {"shape": shape if isinstance(shape, str) else list(shape), "profiles": []}
    # TLS directory (None: plaintext) -> runs (protocol, row tag, extra CLI arguments)
    modes = {None: [("stock", "", ()), ("accelerated", "", ())]}
    if ablation:
        modes[None].append(("accelerated", "_kogge_stone", ("--comparison", "kogge-stone")))
    if tls:
        from .. import tls as tls_mod

        certs = workdir / "certs"
        tls_mod.init(certs, TRAIN_PLAYERS + [tls_mod.DRIVER], days=2)
        modes[certs] = [("accelerated", "_tls", ())]
    for link in links:
        rows = {}
        for tls_dir, runs in modes.items():  # one cluster per mode
            sc = network.ShapedCluster.create(TRAIN_PLAYERS, workdir / f"train-{link.name}{'_tls' if tls_dir else ''}", link,
                                              compensate=link.rtt_s > 0, exit_with_parent=True,
                                              tls_dir=tls_dir)
            sc.up(timeout=120)
            try:
                seen = _to_driver(sc.link_stats())
                for protocol, tag, args in runs:
                    extra = ("--cluster", str(sc.config_path), *args)
                    extra += ("--tls-dir", str(tls_dir)) if tls_dir else ()
                    r = training._run_cli(paths, protocol, str(workdir / f"out-{link.name}-{protocol}{tag}"),
                                          extra=extra,
                                          env_extra={"TFE_ACCEL_DRIVER_ADDRESS": sc.driver_address})
                    now = _to_driver(sc.link_stats())
                    # what each player sent to the driver in this run (the revealed model only:
                    # shares stay on the parties)
                    r["bytes_to_driver"] = {k: now[k] - seen.get(k, 0) for k in now}
                    seen = now
                    rows[protocol + tag] = r
                    log(f"  train {label} over {link.describe()}, {protocol}{tag.replace('_', ' ')}: "
                        f"{r['wall_s']:.2f} s wall, secure phases {r['secure_wall_s']:.2f} s, "
                        f"rel. L2 to float64 {r['weights_relative_l2']:.1e}")
            finally:
                sc.down()
        rows["speedup"] = rows["stock"]["wall_s"] / rows["accelerated"]["wall_s"]
        if tls:
            rows["tls_over_plain"] = {
                "wall": rows["accelerated_tls"]["wall_s"] / rows["accelerated"]["wall_s"],
                "secure_phases": (rows["accelerated_tls"]["secure_wall_s"]
                                  / rows["accelerated"]["secure_wall_s"])}
        out["profiles"].append({"link": dataclasses.asdict(link), **rows})
    return out


def _to_driver(link_stats) -> dict:
    """player -> bytes it sent to the driver so far, over either party's connections."""
    out = {}
    for s in link_stats:
        src, dst = s["name"].split("->")
        if dst == network.DRIVER:
            out[src] = out.get(src, 0) + s["bytes_forward"]
        elif src == network.DRIVER:
            out[dst] = out.get(dst, 0) + s["bytes_backward"]
    return out


def _ms(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def format_training(section: dict) -> str:
    tls = any("accelerated_tls" in p for p in section["profiles"])
    ks = any("accelerated_kogge_stone" in p for p in section["profiles"])
    head = ("| `tfe-accel train --cluster`, " + str(section["shape"]) + " | stock: wall (secure) | "
            "accelerated: wall (secure) | speedup |")
    lines = [head + (" accelerated + TLS: wall (secure) | TLS / plain (wall) |" if tls else "")
             + (" accelerated, Kogge-Stone comparison: wall (secure) | rounds per epoch (masked / KS) |"
                if ks else ""),
             "|---|---|---|---|" + ("---|---|" if tls else "") + ("---|---|" if ks else "")]
    for p in section["profiles"]:
        s, a = p["stock"], p["accelerated"]
        line = (f"| {network.LinkProfile(**p['link']).describe()} | {s['wall_s']:.2f} s "
                f"({s['secure_wall_s']:.2f} s) | {a['wall_s']:.2f} s ({a['secure_wall_s']:.2f} s) "
                f"| {p['speedup']:.2f}x |")
        if tls:
            t = p["accelerated_tls"]
            line += (f" {t['wall_s']:.2f} s ({t['secure_wall_s']:.2f} s) | "
                     f"{p['tls_over_plain']['wall']:.3f} |")
        if ks:
            k = p["accelerated_kogge_stone"]
            rounds = [(r.get("communication_per_epoch") or {}).get("rounds", "?") for r in (a, k)]
            line += f" {k['wall_s']:.2f} s ({k['secure_wall_s']:.2f} s) | {rounds[0]} / {rounds[1]} |"
        lines.append(line)
    return "\n".join(lines)


def format_profile(prof: dict) -> str:
    link = network.LinkProfile(**prof["link"])
    lines = [f"| {link.describe()} | stock: measured / estimate | accelerated: measured / estimate "
             "| speedup | rounds (stock / ours) |", "|---|---|---|---|---|"]
    for name, row in prof["cases"].items():
        s, a = row["stock"], row["accelerated"]
        lines.append(
            f"| {name} | {_ms(s['measured_s'])} / {_ms(s['estimate_s'])} ({s['estimate_error']:+.0%}) "
            f"| {_ms(a['measured_s'])} / {_ms(a['estimate_s'])} ({a['estimate_error']:+.0%}) "
            f"| {row['speedup']:.2f}x | {s['rounds']} / {a['rounds']} |")
    if "call_overhead_s" in prof:
        lines.append(f"(call overhead in the estimates: {_ms(prof['call_overhead_s'])}, a call with no "
                     "protocol on this link minus the same unshaped)")
    return "\n".join(lines)


def plot(result: dict, path) -> Optional[Path]:
    """Seconds per call vs RTT, one line per case and protocol (needs >= 2 shaped profiles)."""
    profs = sorted(result["profiles"], key=lambda p: p["link"]["rtt_s"])
    if len({p["link"]["rtt_s"] for p in profs}) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    rtts = [p["link"]["rtt_s"] * 1e3 for p in profs]
    for i, name in enumerate(profs[0]["cases"]):
        for p, style in (("stock", "--"), ("accelerated", "-")):
            ax.plot(rtts, [q["cases"][name][p]["measured_s"] for q in profs], style, marker="o",
                    color=f"C{i}", label=f"{name}, {p}")
            ax.plot(rtts, [q["cases"][name][p]["estimate_s"] for q in profs], ":", color=f"C{i}",
                    alpha=0.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("round-trip time per link (ms)")
    ax.set_ylabel("seconds per call (median)")
    ax.set_title("Secure ops over a shaped network (dotted: analytic estimate)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def cli(args) -> int:
    """`tfe-accel bench network` (see tfe_accel.cli.bench)."""
    try:
        if args.rtt is not None or args.rate is not None:
            links = [network.profile(args.preset, args.rtt, args.rate)]
        elif args.preset:
            links = [network.PRESETS[args.preset]]
        elif args.quick:
            links = [network.PRESETS["lan"]]
        else:
            links = [network.PRESETS["lan"], network.LinkProfile("rtt-5ms", 5e-3, 1e9),
                     network.PRESETS["wan"]]
    except ValueError as exc:
        print(f"tfe-accel bench network: {exc}", file=sys.stderr)
        return 2
    try:
        result = run(links, quick=args.quick, runs=args.runs, tls=getattr(args, "tls", False))
    except RuntimeError as exc:
        print(f"tfe-accel bench network: {exc}", file=sys.stderr)
        return 1
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    data = {}
    if results_path.exists():
        try:
            data = json.loads(results_path.read_text())
        except ValueError:
            data = {}
    from . import machine

    result["machine"] = machine.collect(quick=True)
    result["command"] = "tfe-accel bench " + " ".join(sys.argv[2:])
    data["network"] = result
    results_path.write_text(json.dumps(data, indent=2) + "\n")
    png = plot(result, out / "network_rtt.png")
    print(f"network section written to {results_path}" + (f"; plot {png}" if png else ""))
    return 0
