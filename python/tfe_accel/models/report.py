"""End-to-end API (``run_training``) and the report: metrics.json, model.json, report.md, PNG plots."""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Optional, Sequence

import numpy as np

from .metrics import classification_metrics, relative_l2, roc_curve
from .plaintext import sigmoid_exact, train_plaintext_variants
from .secure import SecureLogisticRegression, TrainConfig

# Targets of the issue, checked and printed in every report.
TARGET_AUC_DIFF = 0.01
TARGET_REL_L2 = 1e-2


def _concat_train_test(owners, split, test_fraction, seed):
    """Per-owner stratified hold-out (horizontal: each owner splits its own records; vertical: the
    label owner draws the split and announces the row indices). Returns (train owners, X/y train,
    X/y test) -- the pooled arrays are for the plaintext reference and evaluation only."""
    from ..data import OwnerData, stratified_split

    train_owners, xtr, ytr, xte, yte = [], [], [], [], []
    if split == "horizontal":
        for k, o in enumerate(owners):
            tr, te = stratified_split(o.y, test_fraction, seed + 7919 * k)
            train_owners.append(OwnerData(o.x[tr], o.y[tr], o.genes, o.source))
            xtr.append(o.x[tr]); ytr.append(o.y[tr]); xte.append(o.x[te]); yte.append(o.y[te])
        return train_owners, np.concatenate(xtr), np.concatenate(ytr), np.concatenate(xte), np.concatenate(yte)
    y = next(o.y for o in owners if o.y is not None)
    tr, te = stratified_split(y, test_fraction, seed)
    for o in owners:
        train_owners.append(OwnerData(o.x[tr], None if o.y is None else o.y[tr], o.genes, o.source))
    x = np.concatenate([o.x for o in owners], axis=1)
    return train_owners, x[tr], y[tr], x[te], y[te]


def run_training(owners: Sequence, *, split: str = "horizontal", config: Optional[TrainConfig] = None,
                 test_fraction: float = 0.2, protocol: str = "auto", tfe_config=None,
                 output_dir: Optional[str] = None, progress: bool = False, dataset_name: str = "",
                 placement: str = "auto", comparison: str = "auto") -> dict:
    """Train securely on ``owners`` (list of OwnerData), next to the float64 references; evaluate on a
    stratified hold-out; write the report to ``output_dir`` if given. Returns the report dict."""
    from ..data import check_owners

    config = config or TrainConfig()
    check_owners(owners, split)
    train_owners, xtr, ytr, xte, yte = _concat_train_test(owners, split, test_fraction, config.seed)
    check_owners(train_owners, split)
    from ..cli import process_seconds

    trainer = SecureLogisticRegression(config, protocol=protocol, tfe_config=tfe_config, progress=progress,
                                       placement=placement, comparison=comparison)
    fit_start = process_seconds()
    t0 = time.perf_counter()
    sec = trainer.fit(train_owners, split)
    wall = time.perf_counter() - t0
    fit_end = process_seconds()
    # The plaintext references see what the secure trainer sees: the owners' transformed values
    # (log2(x + 1), / scale); models are compared and evaluated in the secure model's space.
    from .envelope import envelope_table, owner_values

    xtr = owner_values(xtr, config.log_transform, config.scale)
    xte = owner_values(xte, config.log_transform, 1.0)
    common = dict(epochs=config.epochs, learning_rate=config.learning_rate, batch_size=config.batch_size,
                  class_weight=config.class_weight, standardize=config.standardize, l2=config.l2,
                  seed=config.seed)
    variants = train_plaintext_variants(xtr, ytr, sigmoids=[config.sigmoid, "exact"], **common)
    plain, exact = variants[config.sigmoid], variants["exact"]
    if config.scale != 1.0:
        for v in (plain, exact):
            v.weights = v.weights / config.scale

    eval_x, eval_y, eval_on = (xte, yte, "held-out") if len(yte) else (xtr, ytr, "training (test fraction 0)")
    models = {
        "secure": (sec.weights, sec.bias),
        f"plaintext_{config.sigmoid}": (plain.weights, plain.bias),
        "plaintext_exact": (exact.weights, exact.bias),
    }
    metrics = {k: classification_metrics(eval_y, sigmoid_exact(eval_x @ w + b)) for k, (w, b) in models.items()}
    ref = f"plaintext_{config.sigmoid}"
    sec_vec = np.r_[sec.weights, sec.bias]
    rel = relative_l2(sec_vec, np.r_[plain.weights, plain.bias])
    rel_exact = relative_l2(sec_vec, np.r_[exact.weights, exact.bias])
    steady = sec.epoch_times[1:] if len(sec.epoch_times) > 1 else sec.epoch_times
    auc_diff = abs(metrics["secure"]["auc"] - metrics[ref]["auc"])
    genes = [g for o in owners for g in o.genes] if split == "vertical" else list(owners[0].genes)
    report = {
        "dataset": dataset_name or ", ".join(o.source for o in owners),
        "split": split,
        "owners": [{"source": o.source, "records": o.n, "genes": o.d} for o in owners],
        "n_train": int(len(ytr)), "n_eval": int(len(eval_y)), "evaluated_on": eval_on,
        "n_features": int(xtr.shape[1]),
        "protocol": sec.protocol,
        "placement": sec.placement,
        "comparison": sec.comparison,
        "placement_summary": sec.placement_summary,
        "config": dataclasses.asdict(config),
        "test_fraction": test_fraction,
        "metrics": metrics,
        "reference": ref,
        "weights_relative_l2": rel,
        "weights_relative_l2_vs_exact_sigmoid": rel_exact,
        "auc_abs_diff": auc_diff,
        "targets": {"auc_abs_diff": TARGET_AUC_DIFF, "weights_relative_l2": TARGET_REL_L2,
                    "met": bool(auc_diff <= TARGET_AUC_DIFF and rel <= TARGET_REL_L2)},
        "timing": {
            "secure_wall_seconds": wall,
            "setup_seconds": sec.setup_seconds,
            "train_seconds": sec.train_seconds,
            "first_epoch_seconds": sec.epoch_times[0] if sec.epoch_times else None,
            "seconds_per_epoch_median": float(np.median(steady)) if steady else None,
            "epochs_run": len(sec.epoch_times), "start_epoch": sec.start_epoch,
            "phase_seconds": sec.phase_seconds,
            "trace_seconds": sec.trace_seconds,
            "trace_counts": sec.trace_counts,
            "peak_rss_bytes": sec.peak_rss_bytes,
            # seconds since this process started, when the secure fit began and ended
            "process_seconds_at_fit": [fit_start, fit_end],
        },
        "numeric": {
            "fractional_bits": sec.fractional_bits,
            "fractional_bits_chosen": config.fractional_bits is None,
            "value_limit": config.value_limit, "log_transform": config.log_transform,
            "scale": config.scale,
            "envelope": envelope_table(len(ytr), config.value_limit, sec.fractional_bits,
                                       standardize=config.standardize, class_weight=config.class_weight),
        },
        "communication": sec.communication,
        "losses": {"secure": sec.losses, ref: plain.losses, "plaintext_exact": exact.losses}
        if config.reveal_loss else None,
        "leakage": _leakage(config),
    }
    model = {"weights": [float(v) for v in sec.weights], "bias": float(sec.bias), "genes": genes,
             "space": ("log2(x + 1) of the input values" if config.log_transform else "raw input values")
             + " (standardisation folded in)", "protocol": sec.protocol,
             "sigmoid_trained_with": config.sigmoid}
    report["_model"] = model
    report["_curves"] = {k: (eval_y, eval_x @ w + b) for k, (w, b) in models.items()}
    report["_plain_weights"] = plain.weights
    if output_dir:
        write_report(report, output_dir)
    return report


def _leakage(cfg: TrainConfig) -> str:
    parts = ["public: record and feature counts per owner, the final model"]
    if cfg.class_weight == "public":
        parts.append("class counts of every owner (--class-weight public)")
    if cfg.reveal_loss:
        parts.append("one training-loss scalar per epoch (--reveal-loss)")
    return "; ".join(parts)


def write_report(report: dict, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump(report["_model"], f, indent=1)
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(public, f, indent=1, default=float)
    plots = _plots(report, out)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(markdown(report, plots))


_PRELOAD = None


def preload_plotting() -> None:
    """Import matplotlib's Agg canvas in a background thread (the plots are drawn at the end of a
    run; its import takes ~0.4 s, most of which then overlaps the data loading and the secure phases,
    whose TF execution releases the GIL). Idempotent; the plots wait for it."""
    global _PRELOAD
    if _PRELOAD is not None:
        return
    import threading

    def load():
        try:
            import matplotlib.backends.backend_agg  # noqa: F401
            import matplotlib.figure  # noqa: F401
        except ImportError:  # pragma: no cover - reported by _plots
            pass

    _PRELOAD = threading.Thread(target=load, name="tfe-accel-preload-matplotlib", daemon=True)
    _PRELOAD.start()


class _Figure:
    """A matplotlib Figure on the Agg canvas, without pyplot (no backend or figure manager set-up)."""

    def __init__(self, figsize):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=figsize)
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_subplot(1, 1, 1)

    def save(self, path):
        self.fig.tight_layout()
        self.fig.savefig(path, dpi=110)


def _plots(report, out):
    if _PRELOAD is not None:
        _PRELOAD.join()
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # pragma: no cover
        return []
    files = []
    f = _Figure((4.5, 4.5))
    ax = f.ax
    for name, (y, s) in report["_curves"].items():
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {report['metrics'][name]['auc']:.3f})",
                linestyle="-" if name == "secure" else "--")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlabel("false positive rate"); ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC ({report['evaluated_on']})"); ax.legend(fontsize=7)
    f.save(os.path.join(out, "roc.png"))
    files.append("roc.png")
    f = _Figure((4.5, 4.5))
    ax = f.ax
    pw, sw = report["_plain_weights"], np.asarray(report["_model"]["weights"])
    ax.scatter(pw, sw, s=3)
    lim = [min(pw.min(), sw.min()), max(pw.max(), sw.max())]
    ax.plot(lim, lim, color="grey", lw=0.5)
    ax.set_xlabel(f"plaintext weight ({report['reference']})"); ax.set_ylabel("secure weight")
    ax.set_title(f"weights, rel. L2 {report['weights_relative_l2']:.2e}")
    f.save(os.path.join(out, "weights.png"))
    files.append("weights.png")
    if report.get("losses") and report["losses"]["secure"]:
        f = _Figure((5, 3.5))
        ax = f.ax
        for name, ls in report["losses"].items():
            ax.plot(np.arange(1, len(ls) + 1) + (len(report["losses"][report["reference"]]) - len(ls)),
                    ls, label=name)
        ax.set_xlabel("epoch"); ax.set_ylabel("class-weighted Brier loss"); ax.legend(fontsize=7)
        f.save(os.path.join(out, "loss.png"))
        files.append("loss.png")
    return files


def summary_table(report: dict) -> str:
    names = list(report["metrics"])
    rows = [("model", "accuracy", "bal. acc.", "AUC", "F1")]
    for k in names:
        m = report["metrics"][k]
        rows.append((k, f"{m['accuracy']:.4f}", f"{m['balanced_accuracy']:.4f}", f"{m['auc']:.4f}", f"{m['f1']:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    t = report["timing"]
    tg = report["targets"]
    lines += [
        "",
        f"evaluated on: {report['evaluated_on']} ({report['n_eval']} records); trained on {report['n_train']} "
        f"records x {report['n_features']} genes, {report['split']} split, {len(report['owners'])} owners",
        f"weights relative L2 vs {report['reference']}: {report['weights_relative_l2']:.3e} "
        f"(target <= {tg['weights_relative_l2']:g}); vs exact sigmoid: "
        f"{report['weights_relative_l2_vs_exact_sigmoid']:.3e}",
        f"|AUC secure - AUC {report['reference']}|: {report['auc_abs_diff']:.4f} (target <= {tg['auc_abs_diff']:g})"
        f" -> targets {'met' if tg['met'] else 'NOT met'}",
        f"protocol {report['protocol']}: setup (sharing + preprocessing in MPC) {t['setup_seconds']:.2f} s; "
        f"{t['epochs_run']} epochs in {t['train_seconds']:.2f} s (first, incl. graph tracing, "
        f"{(t['first_epoch_seconds'] or 0):.2f} s; then {(t['seconds_per_epoch_median'] or 0):.4f} s/epoch median)",
        _phases_line(t),
        _numeric_line(report.get("numeric")),
        _communication_line(report.get("communication")),
        *([f"fused ops: {report['placement_summary']}"] if report.get("placement_summary") else []),
        *([f"comparisons: {report['comparison']} (AcceleratedABY3(comparison=...), docs/mpc_steps.md)"]
          if report.get("protocol") == "accelerated" else []),
        f"revealed: {report['leakage']}",
    ]
    return "\n".join(lines)


def _numeric_line(num) -> str:
    if not num:
        return "numeric envelope: not recorded"
    how = "chosen by the numeric envelope" if num.get("fractional_bits_chosen") else "as configured"
    extra = "".join([", owners shared log2(x + 1)" if num.get("log_transform") else "",
                     f", owners shared x / {num['scale']:g}" if num.get("scale", 1.0) != 1.0 else ""])
    return (f"fixed point: {num['fractional_bits']} fractional bits ({how}); every owner checked "
            f"|x| <= {num['value_limit']:g} before sharing{extra}")


def _phases_line(t) -> str:
    ph, tr = t.get("phase_seconds") or {}, t.get("trace_seconds") or {}
    if not ph:
        return "secure phases: not recorded"
    total = sum(ph.values())
    rss = t.get("peak_rss_bytes")
    return (f"secure phases {total:.2f} s: sharing + preprocessing {ph.get('sharing_and_preprocessing', 0):.2f} s "
            f"(tracing it {tr.get('preprocessing', 0):.2f} s; the epoch and reveal graphs, "
            f"{tr.get('epoch', 0) + tr.get('reveal', 0):.2f} s, are traced while it runs), epochs "
            f"{ph.get('epochs', 0):.2f} s, reveal {ph.get('reveal', 0):.2f} s"
            + (f"; peak RSS {rss / 2**30:.2f} GiB" if rss else ""))


def _communication_line(comm) -> str:
    if not comm or not comm.get("measured"):
        reason = (comm or {}).get("reason", "not measured")
        return f"communication: not measured ({reason})"
    e, s = comm["per_epoch"], comm["per_step"]
    line = (f"communication per epoch ({comm['steps_per_epoch']} step(s)): {e['messages']:,} messages, "
            f"{e['bytes'] / 1e6:,.2f} MB, {e['rounds']:,} rounds; per step {s['graph_nodes']:,} graph nodes")
    p = comm.get("preprocessing")
    if p:
        line += (f"; sharing + preprocessing: {p['messages']:,} messages, {p['bytes'] / 1e6:,.1f} MB "
                 f"({p['busiest_link_bytes'] / 1e6:,.1f} MB on the busiest link, {p['busiest_link']}), "
                 f"{p['rounds']:,} rounds")
    return line


def markdown(report: dict, plots=()) -> str:
    c = report["config"]
    out = [
        f"# Secure logistic regression: {report['dataset']}",
        "",
        f"Protocol **{report['protocol']}** ABY3, {report['split']} split over {len(report['owners'])} owners; "
        f"{c['epochs']} epochs, learning rate {c['learning_rate']}, batch "
        f"{c['batch_size'] or 'full'}, class weights {c['class_weight']}, sigmoid {c['sigmoid']}, "
        f"standardise {c['standardize']}, l2 {c['l2']}, seed {c['seed']}.",
        "",
        "```",
        summary_table(report),
        "```",
        "",
    ]
    num = report.get("numeric")
    if num:
        out += ["## Numeric envelope", "",
                f"Every secure step's worst case for these public settings ({report['n_train']} records, "
                f"|x| <= {num['value_limit']:g}, {num['fractional_bits']} fractional bits) against the "
                "limit of the fixed-point format (docs/training.md, 'Numeric envelope'):", "",
                num["envelope"], ""]
    out += [f"![{p}]({p})" for p in plots]
    return "\n".join(out) + "\n"
