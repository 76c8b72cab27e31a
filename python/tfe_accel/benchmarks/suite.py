"""``tfe-accel bench``: run the selected sections, print tables, write results.json, plots and the
README section."""
from __future__ import annotations

import os
import sys
import time

SECTIONS = ("kernels", "protocol", "training", "gpu")


def section_origin(results: dict, name: str) -> dict:
    """When, where and by which command a section of ``results`` was measured (through earlier merges)."""
    merged = results.get("settings", {}).get("merged_from") or {}
    if name in (merged.get("origins") or {}):
        return merged["origins"][name]
    if name in (merged.get("sections") or []):  # merged before origins were recorded: the timestamp only
        return {"timestamp_utc": merged.get("machine"), "command": merged.get("command"), "cpu_model": None}
    m = results.get("machine", {})
    return {"timestamp_utc": m.get("timestamp_utc"), "command": results.get("settings", {}).get("command"),
            "cpu_model": m.get("cpu_model")}


def run(section: str = "all", quick: bool = False, output: str = None, runs: int = None,
        warmup: int = None, threads=(1, 2), command: str = None, log=None, merge: bool = False) -> dict:
    from . import kernels, machine, protocol, report, training

    if section != "all" and section not in SECTIONS:
        raise ValueError(f"section must be one of {', '.join(SECTIONS)} or all, got {section!r}")
    if runs is not None and runs < 5:
        raise ValueError(f"--runs must be >= 5 (median and IQR need them), got {runs}")
    log = log or (lambda msg: print(msg, flush=True))
    chosen = SECTIONS if section == "all" else (section,)
    output = output or os.path.join("bench", "results")
    os.makedirs(output, exist_ok=True)

    t0 = time.perf_counter()
    log("tfe-accel bench: machine facts ...")
    results = {
        "schema": 1,
        "machine": machine.collect(quick=quick, repo=kernels.repo_root()),
        "settings": {"section": section, "quick": quick, "runs": runs, "warmup": warmup,
                     "threads": list(threads),
                     "command": command or ("tfe-accel bench " + section + (" --quick" if quick else ""))},
    }
    if merge:  # keep the other sections of an earlier results.json (each records when it ran)
        import json

        path = os.path.join(output, "results.json")
        if os.path.exists(path):
            with open(path) as f:
                earlier = json.load(f)
            for name in SECTIONS:
                if name not in chosen and name in earlier:
                    results[name] = earlier[name]
            kept = [n for n in SECTIONS if n not in chosen and n in earlier]
            results["settings"]["merged_from"] = {
                "sections": kept,
                "machine": earlier.get("machine", {}).get("timestamp_utc"),
                "command": earlier.get("settings", {}).get("command"),
                "origins": {n: section_origin(earlier, n) for n in kept}}
    tables = []
    for name in chosen:
        log(f"tfe-accel bench: {name} ...")
        ts = time.perf_counter()
        if name == "kernels":
            results[name] = kernels.run(quick=quick, threads=threads, log=log)
            tables.append(("kernels", kernels.format_table(results[name])))
        elif name == "protocol":
            results[name] = protocol.run(quick=quick, runs=runs, warmup=warmup, log=log)
            tables.append(("protocol: stock ABY3 vs AcceleratedABY3", protocol.format_table(results[name])))
        elif name == "training":
            results[name] = training.run(quick=quick, runs=runs, warmup=warmup, log=log)
            tables.append(("training: secure logistic regression", training.format_table(results[name])))
        elif name == "gpu":
            results[name] = kernels.run_gpu(quick=quick, log=log)
            tables.append(("gpu", kernels.format_table({"gpu": results[name]})))
        results[name]["seconds"] = time.perf_counter() - ts
    results["settings"]["load_average_end"] = machine.load_average()
    results["settings"]["total_seconds"] = time.perf_counter() - t0

    m = results["machine"]
    print(f"\nmachine: {m['cpu_model']}, {m['usable_cores']} usable cores, code path "
          f"{m['isa_code_path']}, TF {m['tensorflow']}, copy bandwidth "
          f"{m['memory_copy_bandwidth_gbs']} GB/s, load {m['load_average_start']} -> "
          f"{results['settings']['load_average_end']}")
    for title, table in tables:
        print(f"\n== {title}\n{table}")
    files = [report.write_json(results, os.path.join(output, "results.json"))]
    files += report.write_plots(results, output)
    files.append(report.write_markdown(results, os.path.join(output, "README_section.md")))
    print("\nwrote " + ", ".join(files))
    results["files"] = files
    return results


def failures(results: dict) -> list:
    """Sections or cases that failed (for the exit status)."""
    bad = []
    for name in SECTIONS:
        sec = results.get(name)
        if sec and sec.get("status") not in ("ok", "skipped"):
            bad.append(name)
    return bad


if __name__ == "__main__":  # pragma: no cover
    run(*(sys.argv[1:2] or ["all"]))
