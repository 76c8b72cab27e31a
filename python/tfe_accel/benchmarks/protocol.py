"""Protocol benchmark: every routed secure op, stock ``tfe.protocol.ABY3`` vs ``AcceleratedABY3``.

Both protocols run in this process on ``PartitionedLocalConfig`` (one logical CPU device per
party, so messages are real cross-device edges), on the same inputs (fixed seeds). Each op is traced
once per protocol into a graph (``TracedTFE``) and timed per call after warm-up, stock and ours
interleaved. Graph nodes, messages, bytes and rounds come from ``tfe_accel.accounting`` on that
same graph. ``fused_ops`` says whether the accelerated graph contains tfe-accel ops at all (an op
without a route yet falls through to stock and shows a speedup of about 1).
"""
from __future__ import annotations

import dataclasses
import gc
import sys
import traceback
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from . import runner


@dataclasses.dataclass
class Case:
    op: str  # group (one plot line per op)
    label: str
    size: float  # x axis of the speedup plot
    size_label: str
    inputs: Sequence[Tuple[str, Tuple[int, ...], float]]  # (private|public, shape, value range)
    fn: Callable
    target_speedup: Optional[float] = None
    target_nodes_ratio: Optional[float] = None
    target_note: str = ""


def _matmul(prot, x, y):
    return prot.matmul(x, y)


def _mul(prot, x, y):
    return x * y  # both scaled: the product is truncated (heuristic method, TFE's default)


def _truncate(prot, x):
    return prot.truncate(x)


def _sigmoid5(prot, x):
    return prot.sigmoid(x, approx_type="5_piecewise_linear")


def cases(quick: bool) -> List[Case]:
    out: List[Case] = []
    square = [32, 64] if quick else [64, 128, 256, 512]
    for n in square:
        out.append(Case("matmul private x private", f"matmul {n}^3", n, f"{n}^3",
                        [("private", (n, n), 1.0), ("private", (n, n), 1.0)], _matmul,
                        target_speedup=4.0 if n == 512 else None,
                        target_note="issue 4: 512^3 >= 4x" if n == 512 else ""))
    m, k = (64, 1024) if quick else (386, 17814)
    out.append(Case("matmul LR shapes", f"matmul {m}x{k} @ {k}x1", m * k, f"{m}x{k}@{k}x1",
                    [("private", (m, k), 1.0), ("private", (k, 1), 0.1)], _matmul,
                    target_speedup=None if quick else 1.5,
                    target_note="" if quick else "issue 4: >= 1.5x (memory bound)"))
    out.append(Case("matmul LR shapes (transposed)", f"matmul {k}x{m} @ {m}x1", m * k,
                    f"{k}x{m}@{m}x1", [("private", (k, m), 1.0), ("private", (m, 1), 0.1)],
                    _matmul, target_speedup=None if quick else 1.5,
                    target_note="" if quick else "issue 4: >= 1.5x (memory bound)"))
    for n in ([32] if quick else [128, 512]):
        out.append(Case("matmul public x private", f"matmul pub {n}^3", n, f"{n}^3",
                        [("public", (n, n), 1.0), ("private", (n, n), 1.0)], _matmul))
    for n in ([32] if quick else [512]):
        out.append(Case("matmul private x public", f"matmul {n}^3 pub", n, f"{n}^3",
                        [("private", (n, n), 1.0), ("public", (n, n), 1.0)], _matmul))
    for n in ([1000] if quick else [10_000, 100_000, 1_000_000]):
        out.append(Case("mul + truncation", f"mul {n:.0e}", n, f"{n:.0e}",
                        [("private", (n,), 3.0), ("private", (n,), 3.0)], _mul,
                        target_speedup=2.0 if n == 1_000_000 else None,
                        target_note="issue 4: 1e6 >= 2x" if n == 1_000_000 else ""))
    for n in ([10000] if quick else [100_000, 1_000_000]):
        out.append(Case("truncation", f"truncate {n:.0e}", n, f"{n:.0e}",
                        [("private", (n,), 3.0)], _truncate))
    for n in ([1000] if quick else [1000, 10_000, 100_000]):
        tgt = {1000: 5.0, 100_000: 10.0}.get(n)
        out.append(Case("sigmoid (5-piece)", f"sigmoid {n:.0e}", n, f"{n:.0e}",
                        [("private", (n,), 6.0)], _sigmoid5, target_speedup=tgt,
                        target_nodes_ratio=10.0 if tgt else None,
                        target_note=(f"issue 4: >= {tgt:g}x and >= 10x fewer nodes" if tgt else "")))
    return out


def _define_inputs(prot, case: Case, seed: int):
    import tf_encrypted as tfe

    tfe.set_protocol(prot)
    rng = np.random.default_rng(seed)
    tensors = []
    for kind, shape, scale in case.inputs:
        v = rng.uniform(-scale, scale, size=shape)
        if kind == "private":
            tensors.append(prot.define_private_variable(v))
        else:
            tensors.append(prot.define_public_variable(v))
    return tensors


def run_case(case: Case, runs: int, warmup: int, seed: int) -> dict:
    import tf_encrypted as tfe

    from ..protocol import AcceleratedABY3
    from .tfe_graph import TracedTFE

    protocols = {"stock": tfe.protocol.ABY3(), "accelerated": AcceleratedABY3()}
    traced, stats = {}, {}
    for name, prot in protocols.items():
        tensors = _define_inputs(prot, case, seed)
        tfe.set_protocol(prot)
        traced[name] = TracedTFE(prot, lambda *a, p=prot: case.fn(p, *a), tensors,
                                 name=f"{name}_{case.op.split()[0]}")
        stats[name] = traced[name].stats()
    timing = runner.interleaved({k: v for k, v in traced.items()}, runs=runs, warmup=warmup)
    res = {
        "op": case.op, "label": case.label, "size": case.size, "size_label": case.size_label,
        "inputs": [{"kind": k, "shape": list(s)} for k, s, _ in case.inputs],
        "status": "ok",
    }
    for name in protocols:
        res[name] = {**stats[name], **timing[name]}
    s, a = res["stock"], res["accelerated"]
    res["speedup"] = s["median_s"] / a["median_s"]
    # conservative spread of the ratio: stock's q1 over ours' q3 .. stock's q3 over ours' q1
    res["speedup_range"] = [s["q1_s"] / a["q3_s"], s["q3_s"] / a["q1_s"]]
    res["nodes_ratio"] = s["nodes"] / max(1, a["nodes"])
    res["routed"] = a["fused_ops"] > 0
    if case.target_speedup is not None:
        met = res["speedup"] >= case.target_speedup
        if case.target_nodes_ratio is not None:
            met = met and res["nodes_ratio"] >= case.target_nodes_ratio
        res["target"] = {"speedup": case.target_speedup, "nodes_ratio": case.target_nodes_ratio,
                         "note": case.target_note, "met": bool(met)}
    return res


def run(quick: bool = False, runs: int = None, warmup: int = None, seed: int = 1234,
        log=print) -> dict:
    import tf_encrypted as tfe

    from ..config import PartitionedLocalConfig
    from ..protocol import routed_operations

    runs = runs or (5 if quick else 7)
    warmup = warmup if warmup is not None else (1 if quick else 2)
    tfe.set_config(PartitionedLocalConfig())
    results = []
    for i, case in enumerate(cases(quick)):
        log(f"  protocol: {case.label} ...")
        try:
            results.append(run_case(case, runs, warmup, seed + i))
        except Exception as exc:  # record and go on: one broken op must not hide the others
            print(f"  protocol: {case.label} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            results.append({"op": case.op, "label": case.label, "size": case.size,
                            "size_label": case.size_label, "status": "failed",
                            "error": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc(limit=8)})
        gc.collect()
    return {
        "status": "ok" if all(r["status"] == "ok" for r in results) else "partial",
        "method": (f"graph mode (each op traced once with tf.function), PartitionedLocalConfig, "
                   f"{warmup} warm-up call(s), {runs} interleaved runs, median and IQR per call"),
        "runs": runs, "warmup": warmup, "seed": seed,
        "routed_operations": routed_operations(),
        "cases": results,
    }


def format_table(section: dict) -> str:
    rows = [("op", "stock", "accelerated", "speedup", "nodes s/a", "msgs s/a", "MB s/a",
             "rounds s/a", "target")]
    for r in section.get("cases", []):
        if r.get("status") != "ok":
            rows.append((r["label"], "FAILED", r.get("error", "")[:60], "", "", "", "", "", ""))
            continue
        s, a = r["stock"], r["accelerated"]
        tgt = r.get("target")
        tcol = "" if not tgt else (f">= {tgt['speedup']:g}x " + ("met" if tgt["met"] else "NOT met"))
        if not r["routed"]:
            tcol = (tcol + " (no tfe-accel op)").strip()
        rows.append((
            r["label"],
            f"{runner.fmt_time(s['median_s'])} ±{runner.fmt_time(s['iqr_s'])}",
            f"{runner.fmt_time(a['median_s'])} ±{runner.fmt_time(a['iqr_s'])}",
            f"{r['speedup']:.2f}x",
            f"{s['nodes']}/{a['nodes']}",
            f"{s['messages']}/{a['messages']}",
            f"{s['bytes'] / 1e6:.2f}/{a['bytes'] / 1e6:.2f}",
            f"{s['rounds']}/{a['rounds']}",
            tcol,
        ))
    return _table(rows)


def _table(rows) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
