"""Timing method shared by every benchmark section.

Each callable is warmed up, then the candidates are timed *interleaved* (stock, ours, stock, ours,
...) so that load from other processes hits both alike. A "run" times ``inner`` back-to-back calls
and divides (``inner`` is calibrated from the warm-up so one run lasts at least ``min_run_s``), so
that very fast ops are not dominated by timer resolution and a run measures sustained calls (as a
training loop makes them). Reported: median and inter-quartile range
of the per-call times of >= 5 runs.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Dict, List

MIN_RUNS = 5


def quantile(xs: List[float], q: float) -> float:
    """Linear-interpolated quantile (NumPy's default method)."""
    s = sorted(xs)
    if not s:
        raise ValueError("quantile of an empty list")
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(times: List[float], inner: int = 1) -> dict:
    """median, q1, q3, iqr, min, max (seconds per call) and the raw per-call times."""
    if len(times) < 1:
        raise ValueError("no timings")
    return {
        "median_s": statistics.median(times),
        "q1_s": quantile(times, 0.25),
        "q3_s": quantile(times, 0.75),
        "iqr_s": quantile(times, 0.75) - quantile(times, 0.25),
        "min_s": min(times),
        "max_s": max(times),
        "runs": len(times),
        "calls_per_run": inner,
        "times_s": list(times),
    }


def interleaved(fns: Dict[str, Callable[[], object]], runs: int = MIN_RUNS, warmup: int = 1,
                min_run_s: float = 0.2, max_inner: int = 1000) -> Dict[str, dict]:
    """Time each zero-argument callable ``runs`` times, interleaved; returns name -> summarize()."""
    if runs < MIN_RUNS:
        raise ValueError(f"runs must be >= {MIN_RUNS} (median and IQR need them), got {runs}")
    inner = {}
    for name, fn in fns.items():
        t_first = None
        for _ in range(max(1, warmup)):
            t0 = time.perf_counter()
            fn()
            t_first = time.perf_counter() - t0
        inner[name] = int(min(max_inner, max(1, math.ceil(min_run_s / max(t_first, 1e-9)))))
    times = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            k = inner[name]
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            times[name].append((time.perf_counter() - t0) / k)
    return {name: summarize(ts, inner[name]) for name, ts in times.items()}


def fmt_time(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"
