"""Outputs of ``tfe-accel bench``: results.json, PNG plots, the README section."""
from __future__ import annotations

import json
import math
import os
import re
from collections import OrderedDict

from . import runner

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def _clean(obj):
    """JSON-safe copy: NumPy scalars -> Python, non-finite floats -> None, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def write_json(results: dict, path: str) -> str:
    with open(path, "w") as f:
        json.dump(_clean(results), f, indent=2, allow_nan=False)
        f.write("\n")
    return path


# ------------------------------------------------------------------------------------------ plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _merged_line(merged) -> str:
    """Which sections an earlier run measured (grouped by run: time, machine, command)."""
    if not merged or not merged.get("sections"):
        return ""
    origins = merged.get("origins") or {n: {"timestamp_utc": merged.get("machine"), "command": merged.get("command")}
                                        for n in merged["sections"]}
    groups = {}
    for name in merged["sections"]:
        o = origins.get(name) or {}
        groups.setdefault((o.get("timestamp_utc"), o.get("cpu_model"), o.get("command")), []).append(name)
    parts = []
    for (ts, cpu, cmd), names in groups.items():
        parts.append(f"{', '.join(names)} from the run of {ts}" + (f" on {cpu}" if cpu else "")
                     + (f" (`{cmd}`)" if cmd else ""))
    return " Sections " + "; ".join(parts) + "."


def _machine_line(results) -> str:
    m = results.get("machine", {})
    return (f"{m.get('cpu_model', '?')}, {m.get('usable_cores', '?')} cores, "
            f"{m.get('isa_code_path', '?')}, TF {m.get('tensorflow', '?')}"
            + (" (quick)" if results.get("settings", {}).get("quick") else ""))


def plot_protocol_speedup(results: dict, path: str) -> str:
    plt = _plt()
    cases = [c for c in results.get("protocol", {}).get("cases", []) if c.get("status") == "ok"]
    groups = OrderedDict()
    for c in cases:
        groups.setdefault(c["op"], []).append(c)
    fig, ax = plt.subplots(figsize=(8, 5))
    for op, cs in groups.items():
        cs = sorted(cs, key=lambda c: c["size"])
        xs = [c["size"] for c in cs]
        ys = [c["speedup"] for c in cs]
        lo = [max(0.0, c["speedup"] - c["speedup_range"][0]) for c in cs]
        hi = [max(0.0, c["speedup_range"][1] - c["speedup"]) for c in cs]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=op)
        for c in cs:
            if c.get("target"):
                ax.scatter([c["size"]], [c["target"]["speedup"]], marker="_", s=300, color="k")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("size (matrix side n for n^3, elements, or m*k for LR shapes)")
    ax.set_ylabel("speedup over stock ABY3 (median; bars: IQR range)")
    ax.set_title("AcceleratedABY3 vs stock ABY3 (black dashes: issue targets)\n" + _machine_line(results),
                 fontsize=9)
    if groups:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no protocol results", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training_breakdown(results: dict, path: str) -> str:
    plt = _plt()
    step = results.get("training", {}).get("lr_step", {})
    fig, ax = plt.subplots(figsize=(7, 5))
    if step.get("status") == "ok" and "breakdown" in step.get("stock", {}):
        names = ["stock", "accelerated"]
        pieces = list(step["stock"]["breakdown"])
        left = [0.0, 0.0]
        for piece in pieces:
            vals = [max(0.0, step[n]["breakdown"][piece]["median_s"]) for n in names]
            ax.barh(names, vals, left=left, label=piece)
            left = [a + b for a, b in zip(left, vals)]
        for i, n in enumerate(names):
            ax.text(left[i], i, f"  step {runner.fmt_time(step[n]['median_s'])}", va="center",
                    fontsize=8)
        ax.set_xlabel("seconds (medians; parts timed alone, 'other' clamped at 0)")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
        ax.set_xlim(0, max(left) * 1.35 if max(left) > 0 else 1)
        ax.set_title(f"One LR gradient step, n={step['n']}, d={step['d']} "
                     f"(speedup {step['speedup']:.2f}x)\n" + _machine_line(results), fontsize=9)
    else:
        ax.text(0.5, 0.5, "no training-step results" + (f": {step.get('error')}" if step else ""),
                transform=ax.transAxes, ha="center", wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_kernels(results: dict, path: str) -> str:
    from .kernels import rows_of

    plt = _plt()
    pairs = rows_of(results.get("kernels", {}))
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.28 * len(pairs) + 1.2)))
    if pairs:
        ax.barh([p[0] for p in pairs][::-1], [p[1] for p in pairs][::-1])
        ax.axvline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("speedup over the TF-op sequence replaced (median)")
        ax.tick_params(axis="y", labelsize=7)
    else:
        ax.text(0.5, 0.5, "no kernel results (see results.json)", transform=ax.transAxes,
                ha="center")
    ax.set_title("Fused kernels\n" + _machine_line(results), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_train_cli(results: dict, path: str) -> str:
    """`tfe-accel train` wall time per protocol, split into what the user waits for."""
    plt = _plt()
    tc = results.get("training", {}).get("train_cli", {})
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if tc.get("status") == "ok":
        names = ["stock", "accelerated"]
        before = [tc[n].get("before_fit_s") or 0.0 for n in names]
        if any(before):
            ax.barh(names, before, label="process start, imports, data loading", color="darkgrey")
        left = list(before)
        for label, key in (("sharing + preprocessing (incl. tracing)", "sharing_and_preprocessing"),
                           ("epochs", "epochs"), ("reveal", "reveal")):
            vals = [tc[n]["phase_seconds"][key] for n in names]
            ax.barh(names, vals, left=left, label=label)
            left = [a + b for a, b in zip(left, vals)]
        rest = [max(0.0, tc[n]["wall_s"] - left[i]) for i, n in enumerate(names)]
        ax.barh(names, rest, left=left, label="float64 reference, metrics, report and plots"
                if any(before) else "process start, imports, data, float64 reference, report", color="lightgrey")
        for i, n in enumerate(names):
            ax.text(tc[n]["wall_s"], i, f"  {tc[n]['wall_s']:.1f} s, {tc[n]['peak_rss_bytes'] / 1e9:.2f} GB",
                    va="center", fontsize=8)
        ax.axvline(5.0, color="k", lw=0.8, ls="--")
        ax.set_xlim(0, max(tc[n]["wall_s"] for n in names) * 1.35)
        ax.set_xlabel("seconds from process start (medians); dashed: 5 s target")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2)
        shape = tc["shape"] if isinstance(tc["shape"], str) else "x".join(map(str, tc["shape"]))
        ax.set_title(f"tfe-accel train, {shape}, two owners, defaults\n" + _machine_line(results), fontsize=9)
    else:
        ax.text(0.5, 0.5, "no tfe-accel train results" + (f": {tc.get('error')}" if tc else ""),
                transform=ax.transAxes, ha="center", wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


PLOTS = {
    "protocol": ("protocol_speedup.png", plot_protocol_speedup),
    "training": ("training_step_breakdown.png", plot_training_breakdown),
    "training_cli": ("train_cli_phases.png", plot_train_cli),
    "kernels": ("kernels_speedup.png", plot_kernels),
}


def write_plots(results: dict, outdir: str) -> list:
    written = []
    for section, (fname, fn) in PLOTS.items():
        if section.split("_")[0] in results:
            written.append(fn(results, os.path.join(outdir, fname)))
    return written


# ------------------------------------------------------------------------------- README section


def _ms(s):
    return runner.fmt_time(s)


def _load(la):
    return "/".join(f"{v:.1f}" for v in la) if la else "?"


def markdown_section(results: dict) -> str:
    m = results.get("machine", {})
    st = results.get("settings", {})
    git = m.get("git") or {}
    lines = [
        "### Measured speedups (generated by `tfe-accel bench`)",
        "",
        f"Machine: {m.get('cpu_model', '?')}, {m.get('usable_cores', '?')} usable cores, "
        f"CPU code path `{m.get('isa_code_path', '?')}`, TensorFlow {m.get('tensorflow', '?')}, "
        f"TF Encrypted {m.get('tf_encrypted', '?')}, tfe-accel {m.get('tfe_accel', '?')}"
        + (f" (commit {git['commit'][:10]}{', dirty tree' if git.get('dirty') else ''})"
           if git.get("commit") else "") + ".",
        f"Run {m.get('timestamp_utc', '?')}, `{st.get('command', 'tfe-accel bench')}`"
        + (" (**quick mode: small sizes, not representative**)" if st.get("quick") else "")
        + f"; load average (1/5/15 min) at start {_load(m.get('load_average_start'))}, at end "
        f"{_load(st.get('load_average_end'))} (the machine may be shared: read the IQRs)."
        + _merged_line(st.get("merged_from")),
        "Stock = `tfe.protocol.ABY3()` on tfe-accel's PRG/bit ops; ours = `AcceleratedABY3()`; both in "
        "one process on `PartitionedLocalConfig`, graph mode, interleaved, medians (± IQR) per call. "
        "*stock (tfe.function)*: stock ABY3 through stock `tfe.function` (AutoGraph, nested arguments: what "
        "TFE users run today); *stock* and *accelerated*: through `tfe_accel.function` (no AutoGraph, flat "
        "calls; `tfe.function` takes it under AcceleratedABY3). *speedup* = stock / accelerated (like for "
        "like), *vs today* = stock (tfe.function) / accelerated. First calls include tracing (AutoGraph "
        "caches its conversions per process, so only the first traced op pays its full cost).",
        "",
    ]
    prot = results.get("protocol")
    if prot:
        lines += ["| op | stock (tfe.function) | stock | accelerated | speedup | vs today | first call: today / ours "
                  "| graph nodes (stock / ours) | messages | bytes | rounds | target |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in prot.get("cases", []):
            if c.get("status") != "ok":
                lines.append(f"| {c['label']} | failed: {c.get('error', '')[:80]} | | | | | | | | | | |")
                continue
            s, a = c["stock"], c["accelerated"]
            today = c.get("stock_tfe_function") or {}
            t = c.get("target")
            tcol = "" if not t else (f"≥ {t['speedup']:g}x" + (", ≥ 10x fewer nodes" if t.get("nodes_ratio")
                                                                  else "") + (": met" if t["met"] else ": **not met**"))
            if not c.get("routed"):
                tcol = (tcol + " (no tfe-accel op in the graph)").strip()
            lines.append(
                f"| {c['label']} | {_ms(today.get('median_s'))} | {_ms(s['median_s'])} ± {_ms(s['iqr_s'])} | "
                f"{_ms(a['median_s'])} ± {_ms(a['iqr_s'])} | **{c['speedup']:.2f}x** | "
                f"{c.get('speedup_vs_today', float('nan')):.2f}x | {_ms(today.get('first_call_s'))} / "
                f"{_ms(a.get('first_call_s'))} | {s['nodes']} / {a['nodes']} | "
                f"{s['messages']} / {a['messages']} | {s['bytes']:,} / {a['bytes']:,} | "
                f"{s['rounds']} / {a['rounds']} | {tcol} |")
        lines.append("")
    tr = results.get("training")
    if tr:
        lines += training_markdown(tr)
    k = results.get("kernels")
    if k:
        for key in ("matmul", "mpc_steps"):
            r = k.get(key, {})
            if r.get("status") != "ok":
                lines.append(f"Kernel benchmark `{key}`: {r.get('status')}: {r.get('error', '')}")
        lines.append("Kernel-level numbers: `results.json` (`kernels`) and `kernels_speedup.png`.")
        lines.append("")
    g = results.get("gpu")
    if g and g.get("status") != "ok":
        lines.append(f"GPU: {g.get('reason') or g.get('error')}.")
        lines.append("")
    lines.append("Plots: `bench/results/protocol_speedup.png`, `bench/results/training_step_breakdown.png`, "
                 "`bench/results/train_cli_phases.png`.")
    return "\n".join(lines) + "\n"


def _met(t):
    return "met" if t and t.get("met") else "**not met**"


def training_markdown(tr: dict) -> list:
    lines = ["| training | stock (tfe.function) | stock | accelerated (tfe.function) | accelerated | speedup "
             "| vs today | note |", "|---|---|---|---|---|---|---|---|"]
    step = tr.get("lr_step", {})
    if step.get("status") == "ok":
        t = step.get("target")
        lines.append(
            f"| one full-batch LR step, n={step['n']}, d={step['d']} | {_ms(step['stock_tfe_function']['median_s'])} | "
            f"{_ms(step['stock']['median_s'])} | {_ms(step['accelerated_tfe_function']['median_s'])} | "
            f"{_ms(step['accelerated']['median_s'])} | **{step['speedup']:.2f}x** | {step['speedup_vs_today']:.2f}x | "
            + (f"target ≥ 1.8x: {_met(t)}" if t else "") + " |")
        tt = step.get("trace_target")
        lines.append(
            f"| its first call (tracing included) | {_ms(step['stock_tfe_function']['first_call_s'])} | "
            f"{_ms(step['stock']['first_call_s'])} | {_ms(step['accelerated_tfe_function']['first_call_s'])} | "
            f"{_ms(step['accelerated']['first_call_s'])} | | | tracing alone (ours): "
            f"{_ms(step['accelerated']['trace_s'])}" + (f"; target ≤ 0.5 s: {_met(tt)}" if tt else "") + " |")
    for key, label in (("lr_iterations_d10_b128", "LR iterations/s, D=10, batch 128"),
                       ("lr_iterations_d10_b128_localconfig", "the same on `tfe.LocalConfig` (TFE's default)")):
        it = tr.get(key, {})
        if it.get("status") == "ok":
            lines.append(f"| {label} | {it['stock_tfe_function']['iterations_per_s']:.0f} it/s | "
                         f"{it['stock']['iterations_per_s']:.0f} it/s | "
                         f"{it['accelerated_tfe_function']['iterations_per_s']:.0f} it/s | "
                         f"{it['accelerated']['iterations_per_s']:.0f} it/s | **{it['speedup']:.2f}x** | "
                         f"{it['speedup_vs_today']:.2f}x | Hong et al.: ≥ 754 it/s; target ≥ 1,500 it/s and ≥ 5x "
                         f"today: {_met(it['target'])} |")
    for key, label in (("keras_dense_d10_b128", "TFE Keras `Dense(1, sigmoid)` train step, D=10, batch 128"),
                       ("keras_dense_d10_b128_localconfig", "the same on `tfe.LocalConfig` (TFE's default)")):
        k = tr.get(key, {})
        if k.get("status") == "ok":
            lines.append(f"| {label} | "
                         f"{k['stock']['iterations_per_s']:.0f} it/s | | "
                         f"{k['accelerated_tfe_function']['iterations_per_s']:.0f} it/s | "
                         f"{k['accelerated']['iterations_per_s']:.0f} it/s | **{k['speedup']:.2f}x** | | "
                         f"target ≥ 754 it/s: {_met(k['target'])} |")
    el = tr.get("epoch_loop_d10_b128", {})
    if el.get("status") == "ok":
        lines.append(f"| one epoch per call (trainer), D=10, batch 128, {el['steps_per_epoch']} batches | | "
                     f"{el['stock']['batches_per_s']:.0f} batches/s | | {el['accelerated']['batches_per_s']:.0f} "
                     f"batches/s | **{el['speedup']:.2f}x** | | all batches of an epoch in one graph |")
    ep = tr.get("epoch", {})
    if ep.get("status") == "ok":
        lines.append(f"| one epoch of the secure trainer, n={ep['n']}, d={ep['d']}, batch {ep['batch_size']} | | "
                     f"{_ms(ep['stock']['median_s'])} | | {_ms(ep['accelerated']['median_s'])} | "
                     f"**{ep['speedup']:.2f}x** | | {ep['steps_per_epoch']} steps |")
    tc = tr.get("train_cli", {})
    if tc.get("status") == "ok":
        s, a = tc["stock"], tc["accelerated"]
        shape = tc["shape"] if isinstance(tc["shape"], str) else "x".join(map(str, tc["shape"]))
        lines.append(
            f"| `tfe-accel train`, {shape}, two owners, defaults: wall from process start | | {s['wall_s']:.2f} s | | "
            f"{a['wall_s']:.2f} s | **{tc['speedup']:.2f}x** | | secure phases {s['secure_phases_s']:.2f} s / "
            f"{a['secure_phases_s']:.2f} s; peak RSS {s['peak_rss_bytes'] / 1e9:.2f} / {a['peak_rss_bytes'] / 1e9:.2f} GB; "
            f"target ≤ 5 s, ≤ 1.5 s, ≤ 1.5 GB: {_met(tc['target'])} |")
        for name in ("stock", "accelerated"):
            ph, trc = tc[name]["phase_seconds"], tc[name]["trace_seconds"]
            before = tc[name].get("before_fit_s")
            lines.append(f"| &nbsp;&nbsp;{name}: phases | | | | | | | "
                         + (f"start, imports and data {before:.2f} s; " if before else "")
                         + f"sharing + preprocessing {ph['sharing_and_preprocessing']:.2f} s (its tracing "
                         f"{trc['preprocessing']:.2f} s; the epoch graph's, {trc['epoch']:.2f} s, overlaps its run), "
                         f"20 epochs {ph['epochs']:.2f} s, reveal {ph['reveal']:.2f} s; "
                         f"rel. L2 to float64 ≤ {tc[name]['weights_relative_l2_max']:.1e} |")
        pc, a16 = tc.get("precision_cost"), tc.get("accelerated_f16")
        if pc and a16:
            lines.append(
                f"| &nbsp;&nbsp;accelerated at `--fractional-bits 16` (vs the envelope's choice, 21 here) | | | | "
                f"{a16['wall_s']:.2f} s | | | wall ratio (auto / 16 bits) {pc['wall_ratio']:.3f}, secure phases "
                f"{pc['secure_phases_ratio']:.3f}; worst rel. L2 {pc['weights_relative_l2_max']['auto']:.1e} "
                f"(auto) vs {pc['weights_relative_l2_max']['f16']:.1e} (16 bits) |")
    for key in ("lr_step", "lr_iterations_d10_b128", "lr_iterations_d10_b128_localconfig",
                "keras_dense_d10_b128", "keras_dense_d10_b128_localconfig", "epoch_loop_d10_b128", "epoch",
                "train_cli"):
        if tr.get(key, {}).get("status") == "failed":
            lines.append(f"| {key} | failed: {tr[key]['error'][:80]} | | | | | | |")
    lines.append("")
    return lines


def write_markdown(results: dict, path: str) -> str:
    with open(path, "w") as f:
        f.write(markdown_section(results))
    return path


def update_readme(readme_path: str = "README.md", section: str = "bench/results/README_section.md") -> bool:
    """Replace the text between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` in README.md with
    ``section`` (a path to a Markdown file, or the Markdown text itself). Returns True if the file
    changed. Raises ValueError if the markers are missing, duplicated or out of order."""
    text = section
    if os.path.exists(section):
        with open(section) as f:
            text = f.read()
    with open(readme_path) as f:
        readme = f.read()
    starts, ends = readme.count(README_START), readme.count(README_END)
    if starts != 1 or ends != 1 or readme.index(README_START) > readme.index(README_END):
        raise ValueError(f"{readme_path} must contain exactly one {README_START} followed by one "
                         f"{README_END} (found {starts} start and {ends} end markers)")
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    new = pattern.sub(lambda _m: f"{README_START}\n{text.rstrip()}\n{README_END}", readme)
    if new == readme:
        return False
    with open(readme_path, "w") as f:
        f.write(new)
    return True


def regenerate(outdir: str) -> list:
    """Rewrite the plots and README_section.md of ``outdir`` from its results.json."""
    with open(os.path.join(outdir, "results.json")) as f:
        results = json.load(f)
    files = write_plots(results, outdir)
    files.append(write_markdown(results, os.path.join(outdir, "README_section.md")))
    return files
