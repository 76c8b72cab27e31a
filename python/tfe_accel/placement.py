"""Where each party's fused ops run: its GPU or its CPU.

``AcceleratedABY3(placement=...)`` and ``tfe-accel train --placement`` take one of

* ``auto`` (default): a party's fused ops go on its GPU when the party has one visible to
  TensorFlow and this tfe-accel build has TF GPU kernels; otherwise on its CPU. The choice is
  logged once per party at INFO, with the reason when it is the CPU.
* ``cpu``: every fused op on its party's CPU device.
* ``gpu``: every party must have a GPU and the build must have TF GPU kernels, else a
  :class:`PlacementError` says which party or what is missing (nothing falls back silently).

Only fused ops with a registered GPU kernel go on the GPU (the op types are read from TF's kernel
registry); the rest of a GPU party's work (TFE's own ops, the few fused steps without a GPU
kernel) stays on that party's CPU device, and each such op type is logged once at DEBUG. A
party's GPU is a GPU device of the same TF task (job/replica/task) as the party's own device; in
one process (``PartitionedLocalConfig``) the local GPUs are dealt round-robin to the parties.
A party never uses another task's device, so no party's op reads another party's state.
"""
from __future__ import annotations

import functools
import json
import logging
import pathlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

logger = logging.getLogger("tfe_accel")

PLACEMENTS = ("auto", "cpu", "gpu")


class PlacementError(ValueError):
    """The requested placement cannot be honoured (no GPU at a party, no GPU kernels, ...)."""


def _task_key(device: str):
    import tensorflow as tf

    spec = tf.DeviceSpec.from_string(device)
    return (spec.job, spec.replica, spec.task)


def build_has_tf_gpu_kernels() -> bool:
    """Whether this tfe-accel build registered TF DEVICE_GPU kernels (its _build_info.json)."""
    path = pathlib.Path(__file__).resolve().parent / "_build_info.json"
    try:
        return bool(json.loads(path.read_text()).get("tf_gpu_kernels"))
    except (OSError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def has_gpu_kernel(op_type: str) -> bool:
    """Whether TF's kernel registry holds a DEVICE_GPU kernel for ``op_type``."""
    from tensorflow.python.framework import kernels

    return any(k.device_type == "GPU" for k in kernels.get_registered_kernels_for_op(op_type).kernel)


def visible_gpus() -> list:
    """Names of every GPU device TensorFlow sees (remote tasks' ones too, once connected)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices("GPU")]


@dataclass
class Placement:
    """The resolved placement: per party, the device of its fused ops (GPU or CPU) and why."""

    policy: str
    cpu_devices: list
    gpu_devices: list                 # per party: its GPU device, or None when it runs on the CPU
    reasons: list                     # per party: why (for the log and `describe`)
    gpu_kernel: Callable[[str], bool] = has_gpu_kernel
    _cpu_logged: set = field(default_factory=set)

    def on_gpu(self, i: int) -> bool:
        return self.gpu_devices[i] is not None

    def device(self, i: int, op_type: str) -> str:
        """The device for party i's fused op of type ``op_type``."""
        gpu = self.gpu_devices[i]
        if gpu is None:
            return self.cpu_devices[i]
        if self.gpu_kernel(op_type):
            return gpu
        if op_type not in self._cpu_logged:
            self._cpu_logged.add(op_type)
            logger.debug("placement: %s has no GPU kernel in this build; it runs on the party's CPU",
                         op_type)
        return self.cpu_devices[i]

    def summary(self) -> str:
        """One line: where the parties' fused ops run, grouped by device kind and reason."""
        groups = {}
        for i in range(len(self.cpu_devices)):
            kind = "GPU" if self.on_gpu(i) else "CPU"
            groups.setdefault((kind, self.reasons[i]), []).append(i)
        return "; ".join(f"{kind} for part{'ies' if len(ps) > 1 else 'y'} {', '.join(map(str, ps))} ({why})"
                         for (kind, why), ps in groups.items())

    def describe(self) -> list:
        return [f"party {i}: {self.gpu_devices[i] or self.cpu_devices[i]} ({self.reasons[i]})"
                for i in range(len(self.cpu_devices))]


def resolve(policy: str, party_devices: Sequence[str], *, gpus: Optional[Iterable[str]] = None,
            build_gpu: Optional[bool] = None, gpu_kernel: Optional[Callable[[str], bool]] = None,
            local_cuda_ok: Optional[Callable[[], bool]] = None) -> Placement:
    """Resolve ``policy`` for parties whose home devices are ``party_devices`` (their CPU devices).

    ``gpus``, ``build_gpu``, ``gpu_kernel`` and ``local_cuda_ok`` default to what TF and this
    build report; tests pass their own. ``local_cuda_ok`` tells whether tfe-accel's own CUDA runtime
    can use this process's GPUs (it may need a newer driver than TF's): when it says no, local GPUs
    are not used (``auto``) or refused (``gpu``)."""
    if policy not in PLACEMENTS:
        raise PlacementError(f"placement must be one of {PLACEMENTS}, got {policy!r}")
    n = len(party_devices)
    cpus = list(party_devices)
    if policy == "cpu":
        return Placement(policy, cpus, [None] * n, ["placement='cpu'"] * n)
    if build_gpu is None:
        build_gpu = build_has_tf_gpu_kernels()
    if not build_gpu:
        reason = ("this tfe-accel build has no TF GPU kernels (build it with nvcc present and a CUDA "
                  "build of TensorFlow, or TFE_ACCEL_CUDA=ON)")
        if policy == "gpu":
            raise PlacementError(f"placement='gpu': {reason}")
        return Placement(policy, cpus, [None] * n, [reason] * n)
    gpus = list(visible_gpus() if gpus is None else gpus)
    by_task = {}
    for g in gpus:
        by_task.setdefault(_task_key(g), []).append(g)
    rank_in_task = {}
    chosen, reasons = [], []
    local_ok = None
    for i, dev in enumerate(cpus):
        key = _task_key(dev)
        r = rank_in_task.get(key, 0)
        rank_in_task[key] = r + 1
        mine = by_task.get(key, [])
        if not mine:
            reason = f"no GPU visible to TensorFlow on task {key[0]}/{key[1]}/{key[2]}"
            if policy == "gpu":
                raise PlacementError(f"placement='gpu' but party {i} ({dev}) has no GPU: {reason}")
            chosen.append(None)
            reasons.append(reason)
            continue
        if key[0] == "localhost":  # this process's own GPUs: can tfe-accel's CUDA runtime use them?
            if local_ok is None:
                local_ok = (local_cuda_ok or _local_cuda_ok)()
            if not local_ok:
                reason = ("TensorFlow sees a GPU but tfe-accel's CUDA kernels cannot use it here "
                          "(tfe_accel._native.cuda_available() is False: driver too old for the CUDA "
                          "version tfe-accel was built with?)")
                if policy == "gpu":
                    raise PlacementError(f"placement='gpu' but party {i}: {reason}")
                chosen.append(None)
                reasons.append(reason)
                continue
        chosen.append(mine[r % len(mine)])
        reasons.append(f"placement={policy!r}: GPU of its task")
    return Placement(policy, cpus, chosen, reasons, gpu_kernel or has_gpu_kernel)


def _local_cuda_ok() -> bool:
    try:
        from . import _native
    except ImportError:
        return False
    return "cuda" in _native.families() and bool(_native.cuda_available())


def local_gpu_status(n_gpus: int) -> str:
    """One line for a party server's log: can this process run fused ops on its GPUs?"""
    if n_gpus == 0:
        return "fused ops run on the CPU (no GPU)"
    if not build_has_tf_gpu_kernels():
        return ("fused ops run on the CPU: this tfe-accel build has no TF GPU kernels (rebuild with nvcc "
                "and a CUDA build of TensorFlow)")
    if not _local_cuda_ok():
        return ("fused ops run on the CPU: tfe-accel's CUDA kernels cannot use this GPU "
                "(driver older than the CUDA version tfe-accel was built with?)")
    return "fused ops can run on the GPU (driver placement 'auto' or 'gpu')"


def log_placement(placement: Placement) -> None:
    for line in placement.describe():
        logger.info("placement: fused ops of %s", line)


__all__ = ["local_gpu_status", "PLACEMENTS", "Placement", "PlacementError", "resolve", "has_gpu_kernel",
           "build_has_tf_gpu_kernels", "visible_gpus", "log_placement"]
