"""Kernel and GPU benchmarks.

The kernel benchmarks are modules of this package, so they run from an installed wheel:
``kernel_matmul.run(quick, threads) -> dict`` (ring GEMM, RSS matmul vs the TF-op sequences they
replace, GMAC/s, GB/s and the copy-bandwidth floor) and ``kernel_steps.run(quick) -> dict``
(truncation and sigmoid steps). A failing benchmark is recorded with its reason (status
``failed``) and the suite goes on. The GPU timings come from ``bench/gpu_check.py`` in a source
checkout (that script also runs alone on a GPU machine without TensorFlow).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback

MODULES = {
    "matmul": ("kernel_matmul", lambda mod, quick, threads: mod.run(quick=quick, threads=threads)),
    "mpc_steps": ("kernel_steps", lambda mod, quick, threads: mod.run(quick=quick)),
}


def bench_dir(repo: str = None) -> str:
    return os.path.join(repo or repo_root(), "bench")


def repo_root() -> str:
    """The source tree of an editable install (python/tfe_accel -> repo), else the cwd."""
    here = os.path.dirname(os.path.abspath(__file__))
    cand = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    if os.path.isdir(os.path.join(cand, "bench")) and os.path.isdir(os.path.join(cand, "python")):
        return cand
    return os.getcwd()


def load_script(path: str, name: str):
    spec = importlib.util.spec_from_file_location(f"tfe_accel_bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_module(key, module, call, quick, threads, log):
    name = f"{__package__}.{module}"
    log(f"  kernels: {name} ...")
    try:
        mod = importlib.import_module(name)
        res = call(mod, quick, threads)
        table = None
        if hasattr(mod, "format_table"):
            try:
                table = mod.format_table(res)
            except Exception as exc:  # the numbers are still valid without the module's table
                table = f"(format_table failed: {type(exc).__name__}: {exc})"
        return {"status": "ok", "module": name, "result": res, "table": table}
    except Exception as exc:
        print(f"  kernels: {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return {"status": "failed", "module": name, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8)}


def run(quick: bool = False, threads=(1, 2), log=print) -> dict:
    out = {"threads": list(threads)}
    for key, (module, call) in MODULES.items():
        out[key] = _run_module(key, module, call, quick, list(threads), log)
    out["status"] = "ok" if all(out[k]["status"] == "ok" for k in MODULES) else "partial"
    return out


def run_gpu(quick: bool = False, log=print) -> dict:
    """GPU timings of the CUDA kernels (bench/gpu_check.py's `bench`: copy bandwidth, ring GEMM
    4096^3 / 8192^3, the LR matrix-vector shapes) when this installation has them and a usable GPU;
    otherwise a skip with the reason. bench/gpu_check.sh adds the bit-exact checks."""
    from .. import read_build_info

    if not read_build_info().get("cuda"):
        msg = "CUDA kernels not built in this installation (build info: cuda = false); skipped"
        log(f"  gpu: {msg}")
        return {"status": "skipped", "reason": msg}
    from .. import _native

    if not _native.cuda_available():
        msg = "CUDA kernels built, but no GPU usable by them here (_native.cuda_available() is False); skipped"
        log(f"  gpu: {msg}")
        return {"status": "skipped", "reason": msg}
    path = os.path.join(bench_dir(), "gpu_check.py")
    if not os.path.exists(path):
        msg = (f"{path} not found: the GPU timings need a source checkout (run tfe-accel bench from "
               "it, or bash bench/gpu_check.sh there); GPU benchmark not run")
        print(f"  gpu: {msg}", file=sys.stderr)
        return {"status": "missing", "error": msg}
    log(f"  gpu: {_native.cuda_device_name()} (bench/gpu_check.py timings) ...")
    try:
        mod = load_script(path, "gpu")
        res = {"card": _native.cuda_device_name()}
        mod.bench(_native, res)
        return {"status": "ok", "script": path, "result": res, "table": None}
    except Exception as exc:  # a failed GPU run is reported, the CPU results stand
        print(f"  gpu: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return {"status": "failed", "script": path, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8)}


def rows_of(section: dict):
    """(label, speedup) pairs from the scripts' results, for the summary plot (best effort)."""
    pairs = []
    m = section.get("matmul", {})
    if m.get("status") == "ok":
        for per in m["result"].get("results", []):
            for row in per.get("rows", []):
                if "speedup" in row:
                    pairs.append((f"{row.get('op')} {row.get('shape')} ({per.get('threads')}t)",
                                  float(row["speedup"])))
    s = section.get("mpc_steps", {})
    if s.get("status") == "ok":
        for row in s["result"].get("rows", []):
            if "speedup" in row:
                pairs.append((f"{row.get('case')} n={row.get('elements')}", float(row["speedup"])))
    return pairs


def format_table(section: dict) -> str:
    lines = []
    for key in list(MODULES) + ["gpu"]:
        r = section.get(key)
        if r is None:
            continue
        lines.append(f"[{key}] {r['status']}")
        if r["status"] == "ok":
            if r.get("table"):
                lines.append(r["table"])
            else:
                for row in r["result"].get("rows", []):
                    lines.append("  " + ", ".join(f"{k}={v}" for k, v in row.items()
                                                  if not isinstance(v, (list, dict))))
        else:
            lines.append("  " + (r.get("error") or r.get("reason") or ""))
    return "\n".join(lines)
