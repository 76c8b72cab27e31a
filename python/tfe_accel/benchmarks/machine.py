"""Machine facts recorded with every benchmark result."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time

from ..info import cpu_model  # noqa: F401  (re-exported: one implementation)


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def copy_bandwidth_gbs(mbytes: int = 256, reps: int = 3) -> float:
    """Best-of-``reps`` NumPy array copy, counted as read + write (GB/s): the memory-bound floor."""
    import numpy as np

    a = np.ones(mbytes * (1 << 20) // 8, dtype=np.int64)
    b = np.empty_like(a)
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        np.copyto(b, a)
        dt = time.perf_counter() - t0
        best = max(best, 2 * a.nbytes / dt / 1e9)
    return best


def git_revision(repo: str):
    try:
        rev = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return {"commit": rev or None, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def collect(quick: bool = False, repo: str = None) -> dict:
    import tensorflow as tf
    import tf_encrypted as tfe

    from .. import __version__, _native, read_build_info
    from ..info import stack as info_stack

    facts = {
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "isa_code_path": _native.code_path(),
        "ring_gemm_path": _native.ring_gemm_path() if hasattr(_native, "ring_gemm_path") else None,
        "cpu_features": sorted(k for k, v in _native.cpu_features().items() if v),
        "tensorflow": tf.__version__,
        "tf_encrypted": getattr(tfe, "__version__", "unknown"),
        "tfe_accel": __version__,
        "build": read_build_info(),
        "python": platform.python_version(),
        "stack": info_stack(),
        "platform": platform.platform(),
        "threads": {
            "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "tf_note": "0 = TensorFlow's default (one thread per usable core)",
            "native_pool": _native.get_num_threads() if hasattr(_native, "get_num_threads") else None,
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                                "TF_NUM_INTEROP_THREADS", "TFE_ACCEL_NUM_THREADS")
                    if k in os.environ},
        },
        "load_average_start": load_average(),
        "memory_copy_bandwidth_gbs": round(copy_bandwidth_gbs(64 if quick else 256), 2),
    }
    if repo:
        facts["git"] = git_revision(repo)
    return facts
