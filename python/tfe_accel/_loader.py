"""Loads the op library safely and installs tfe-accel's ops into TF Encrypted.

Order matters: the TF version guard runs *before* ``tf.load_op_library`` so that a build made for
another TensorFlow gives a clear ImportError instead of an undefined-symbol trace or a segfault.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger("tfe_accel")

PACKAGE_DIR = Path(__file__).resolve().parent
OP_LIBRARY = PACKAGE_DIR / "_tfe_accel_ops.so"
BUILD_INFO = PACKAGE_DIR / "_build_info.json"

REBUILD_HINT = (
    "This tfe-accel build supports TensorFlow {built_minor} only: install a matching TensorFlow "
    "(`pip install 'tensorflow=={built_minor}.*'`), or rebuild tfe-accel for the installed "
    "TensorFlow from a source checkout (`make clean build`, or "
    "`pip install --force-reinstall --no-build-isolation .`)."
)


def _hint(built: str = "2.12") -> str:
    return REBUILD_HINT.format(built_minor=".".join(str(built).split(".")[:2]))


class BuildMismatchError(ImportError):
    """tfe-accel was built for another TensorFlow (or its artifacts are missing)."""


def read_build_info() -> dict:
    if not BUILD_INFO.exists():
        raise BuildMismatchError(
            f"tfe-accel is not built: {BUILD_INFO} is missing. {_hint()}"
        )
    return json.loads(BUILD_INFO.read_text())


def check_tf_version(built: str, running: str) -> None:
    """Raise BuildMismatchError unless `running` TF has the same major.minor as `built`.

    TF keeps its C++ ABI within a minor release; across minors a custom-op library can fail to
    load (undefined symbols) or, worse, load and crash.
    """
    if built.split(".")[:2] != running.split(".")[:2]:
        raise BuildMismatchError(
            f"tfe-accel was built for TensorFlow {built}, but TensorFlow {running} is installed. "
            f"{_hint(built)}"
        )


_OPS = None


def load_ops():
    """Return the loaded op library module (loading it once), after the version guard."""
    global _OPS
    if _OPS is not None:
        return _OPS
    import tensorflow as tf

    info = read_build_info()
    if not info.get("tf_ops", True):
        raise BuildMismatchError(
            "this tfe-accel build has no TensorFlow op library (built with TFE_ACCEL_TF_OPS=OFF). "
            + _hint(info.get("tf_version", "2.12"))
        )
    check_tf_version(info["tf_version"], tf.__version__)
    if not OP_LIBRARY.exists():
        raise BuildMismatchError(f"tfe-accel's op library {OP_LIBRARY} is missing. {_hint(info['tf_version'])}")
    try:
        _OPS = tf.load_op_library(str(OP_LIBRARY))
    except Exception as exc:  # NotFoundError on undefined symbols, and friends
        raise BuildMismatchError(
            f"loading {OP_LIBRARY.name} failed under TensorFlow {tf.__version__} "
            f"(built for {info['tf_version']}): {exc}. {_hint(info['tf_version'])}"
        ) from exc
    return _OPS


def registered_op_names(library=None) -> list:
    """CamelCase names of the ops the op library registers, from its generated wrapper module.

    The module also holds what TF's op generator imports (``TypeVar``; ``Any``, ``List`` and
    ``Annotated`` from TF 2.1x on) and type variables (``TV_<Op>_<attr>``): an op is a name whose
    wrapper is defined in that module and which TF's op registry knows."""
    from tensorflow.python.framework import op_def_registry

    mod = library if library is not None else load_ops()
    return sorted(
        n for n in dir(mod)
        if n[:1].isupper() and getattr(getattr(mod, n), "__module__", None) == mod.__name__
        and op_def_registry.get(n) is not None
    )


# TFE 0.9.1 logs these at import because its .so files exist only for TF 2.9.1. The first two are
# replaced by ours right after import (so the fallback they announce never happens); the last two
# are not needed on ABY3's 64-bit paths, and the tf_i128 one wrongly speaks of randomness.
_REPLACED_MODULES = ("secure_random_module_tf_", "aux_module_tf_")
_UNUSED_MODULES = ("tf_i128_module_tf_", "tf_dataset_module_tf_")


class _ImportNoiseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(m in msg for m in _REPLACED_MODULES + _UNUSED_MODULES)


def _unsupported(name):
    def fn(*args, **kwargs):
        raise NotImplementedError(
            f"tf_encrypted.operations.{name} needs TFE's int128 ops, which tfe-accel does not "
            "provide: use the default 64-bit fixed-point config (fixed64_heuristic)."
        )

    return fn


DEFAULT_LOGICAL_CPUS = 8


def split_cpu_devices() -> None:
    """Give TF several logical CPU devices (one per party for PartitionedLocalConfig) while that is
    still possible, i.e. before TF's runtime initialises. They share TF's thread pools, so nothing
    else changes. TFE_ACCEL_LOGICAL_CPUS=N sets how many (0 leaves TF's default of one)."""
    import tensorflow as tf
    from tensorflow.python.eager import context

    n = int(os.environ.get("TFE_ACCEL_LOGICAL_CPUS", DEFAULT_LOGICAL_CPUS))
    if n <= 1 or context.context()._context_handle is not None:
        return
    cpus = tf.config.list_physical_devices("CPU")
    if cpus and tf.config.get_logical_device_configuration(cpus[0]) is None:
        set_logical_cpus(n)


def set_logical_cpus(n: int) -> None:
    """Split the first physical CPU into `n` logical devices (the one place that does it). TF raises
    RuntimeError once its runtime is initialised; callers decide what that means for them."""
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


def install_into_tfe(ops) -> None:
    """Make stock TF Encrypted use our secure randomness and bit ops. Idempotent."""
    import sys

    tfe_logger = logging.getLogger("tf_encrypted")
    noise = _ImportNoiseFilter()
    already = "tf_encrypted" in sys.modules
    tfe_logger.addFilter(noise)
    try:
        import tf_encrypted  # noqa: F401  (runs TFE's module loaders)
        from tf_encrypted.operations.aux import aux as tfe_aux
        from tf_encrypted.operations.secure_random import secure_random as tfe_sr
        from tf_encrypted.operations.tf_i128 import tf_i128 as tfe_i128
    finally:
        tfe_logger.removeFilter(noise)
    tfe_sr.secure_random_module = ops
    tfe_aux.aux_module = ops
    if getattr(tfe_i128, "i128_module", None) is None:
        for name in ("encode", "decode", "to_i128", "from_i128", "add", "sub", "mul", "matmul"):
            if hasattr(tfe_i128, name):
                setattr(tfe_i128, name, _unsupported(f"tf_i128.{name}"))
    if not tfe_sr.supports_seeded_randomness():
        raise ImportError("tfe-accel could not install its secure randomness into TF Encrypted")
    logger.debug(
        "tfe-accel: TFE secure randomness and bit ops installed (TFE imported before: %s); "
        "TFE's int128 and dataset ops are not provided (unused by 64-bit ABY3)",
        already,
    )
