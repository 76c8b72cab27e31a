"""Protocol benchmark: every routed secure op, stock ``tfe.protocol.ABY3`` vs ``AcceleratedABY3``.

Both protocols run in this process on ``PartitionedLocalConfig`` (one logical CPU device per
party, so messages are real cross-device edges), on the same inputs (fixed seeds). Each op is
compiled once per protocol and path (``CompiledTFE``) and timed per call after warm-up, all
variants interleaved:

- ``stock_tfe_function``: stock ABY3 through stock ``tfe.function`` (what TFE users run today);
- ``stock``: stock ABY3 through ``tfe_accel.function`` (like for like);
- ``accelerated``: AcceleratedABY3 through ``tfe_accel.function`` (this project's path).

``speedup`` is like for like (stock / accelerated), ``speedup_vs_today`` is stock_tfe_function /
accelerated; every variant records its first call (tracing included). Graph nodes, messages, bytes
and rounds come from ``tfe_accel.accounting`` on the traced graphs. ``fused_ops`` says whether the
accelerated graph contains tfe-accel ops at all (an op without a route falls through to stock).
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
                        target_note="target: 512^3 >= 4x" if n == 512 else ""))
    m, k = (64, 1024) if quick else (386, 17814)
    out.append(Case("matmul LR shapes", f"matmul {m}x{k} @ {k}x1", m * k, f"{m}x{k}@{k}x1",
                    [("private", (m, k), 1.0), ("private", (k, 1), 0.1)], _matmul,
                    target_speedup=None if quick else 1.5,
                    target_note="" if quick else "target: >= 1.5x (memory bound)"))
    out.append(Case("matmul LR shapes (transposed)", f"matmul {k}x{m} @ {m}x1", m * k,
                    f"{k}x{m}@{m}x1", [("private", (k, m), 1.0), ("private", (m, 1), 0.1)],
                    _matmul, target_speedup=None if quick else 1.5,
                    target_note="" if quick else "target: >= 1.5x (memory bound)"))
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
                        target_note="target: 1e6 >= 2x" if n == 1_000_000 else ""))
    for n in ([10000] if quick else [100_000, 1_000_000]):
        out.append(Case("truncation", f"truncate {n:.0e}", n, f"{n:.0e}",
                        [("private", (n,), 3.0)], _truncate))
    for n in ([1000] if quick else [1000, 10_000, 100_000]):
        tgt = {1000: 5.0, 100_000: 10.0}.get(n)
        out.append(Case("sigmoid (5-piece)", f"sigmoid {n:.0e}", n, f"{n:.0e}",
                        [("private", (n,), 6.0)], _sigmoid5, target_speedup=tgt,
                        target_nodes_ratio=10.0 if tgt else None,
                        target_note=(f"target: >= {tgt:g}x and >= 10x fewer nodes" if tgt else "")))
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


VARIANTS = (("stock_tfe_function", "stock", "tfe_function"), ("stock", "stock", "fast"),
            ("accelerated", "accelerated", "fast"))


def run_case(case: Case, runs: int, warmup: int, seed: int) -> dict:
    import tf_encrypted as tfe

    from ..protocol import AcceleratedABY3
    from .tfe_graph import CompiledTFE

    protocols = {"stock": tfe.protocol.ABY3(), "accelerated": AcceleratedABY3()}
    inputs = {name: _define_inputs(prot, case, seed) for name, prot in protocols.items()}
    compiled, stats = {}, {}
    for label, pname, path in VARIANTS:
        prot = protocols[pname]
        compiled[label] = CompiledTFE(prot, lambda *a, p=prot: case.fn(p, *a), inputs[pname], path=path,
                                      name=f"{label}_{case.op.split()[0]}")
        if path == "fast":
            stats[pname] = compiled[label].stats()
    timing = runner.interleaved(compiled, runs=runs, warmup=warmup)
    res = {
        "op": case.op, "label": case.label, "size": case.size, "size_label": case.size_label,
        "inputs": [{"kind": k, "shape": list(s)} for k, s, _ in case.inputs],
        "status": "ok",
    }
    for label, pname, _path in VARIANTS:
        res[label] = {**stats[pname], **timing[label], **compiled[label].timing_extra()}
    s, a, t = res["stock"], res["accelerated"], res["stock_tfe_function"]
    res["speedup"] = s["median_s"] / a["median_s"]
    res["speedup_vs_today"] = t["median_s"] / a["median_s"]
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
        "method": (f"graph mode, PartitionedLocalConfig; stock ABY3 through stock tfe.function and "
                   f"through tfe_accel.function, AcceleratedABY3 through tfe_accel.function; "
                   f"{warmup} warm-up call(s), {runs} interleaved runs, median and IQR per call"),
        "runs": runs, "warmup": warmup, "seed": seed,
        "routed_operations": routed_operations(),
        "cases": results,
    }


def format_table(section: dict) -> str:
    rows = [("op", "stock (tfe.function)", "stock", "accelerated", "speedup", "vs today",
             "1st call s/a", "nodes s/a", "msgs s/a", "MB s/a", "rounds s/a", "target")]
    for r in section.get("cases", []):
        if r.get("status") != "ok":
            rows.append((r["label"], "FAILED", r.get("error", "")[:60], "", "", "", "", "", "", "", "",
                         ""))
            continue
        s, a, t = r["stock"], r["accelerated"], r["stock_tfe_function"]
        tgt = r.get("target")
        tcol = "" if not tgt else (f">= {tgt['speedup']:g}x " + ("met" if tgt["met"] else "NOT met"))
        if not r["routed"]:
            tcol = (tcol + " (no tfe-accel op)").strip()
        rows.append((
            r["label"],
            f"{runner.fmt_time(t['median_s'])}",
            f"{runner.fmt_time(s['median_s'])} ±{runner.fmt_time(s['iqr_s'])}",
            f"{runner.fmt_time(a['median_s'])} ±{runner.fmt_time(a['iqr_s'])}",
            f"{r['speedup']:.2f}x",
            f"{r['speedup_vs_today']:.2f}x",
            f"{runner.fmt_time(t['first_call_s'])}/{runner.fmt_time(a['first_call_s'])}",
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
