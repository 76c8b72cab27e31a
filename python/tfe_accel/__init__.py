"""tfe-accel: fast, trustworthy kernels for TF Encrypted's ABY3.

``import tfe_accel`` checks that the op library matches the installed TensorFlow, loads it, and
installs tfe-accel's ChaCha20 secure randomness and TFE's bit ops into TF Encrypted, so stock
``tfe.protocol.ABY3`` works securely on TF 2.12. ``tfe_accel.protocol.AcceleratedABY3`` routes
ABY3's hot path through fused ops; ``tfe_accel.function`` compiles TFE computations without
AutoGraph and calls them with flat inputs (``tfe.function`` does the same under AcceleratedABY3).

A build made without the TF op library (``-DTFE_ACCEL_TF_OPS=OFF``, e.g. on a GPU test machine
with no TensorFlow) exposes only ``tfe_accel._native`` and never imports TensorFlow.
"""
import importlib as _importlib

import tfe_accel_compat as _tfe_accel_compat

_tfe_accel_compat.install()  # before anything imports TF Encrypted (a no-op where no shim is needed)

from ._version import __version__  # noqa: E402
from ._loader import BuildMismatchError, install_into_tfe, load_ops, read_build_info, split_cpu_devices  # noqa: E402

if read_build_info().get("tf_ops", True):
    split_cpu_devices()  # first, while TF's runtime is not yet initialised (config.py)
    ops_library = load_ops()
    install_into_tfe(ops_library)
    from ._function import Function, PartyStore, function, use_fast_tfe_function  # noqa: E402

    from ._function import install_tfe_function as _install_tfe_function  # noqa: E402

    _install_tfe_function()
else:  # native-only build: NumPy/CuPy kernels, no TensorFlow
    ops_library = None

# Sub-packages importable as attributes after a bare ``import tfe_accel`` (loaded on first use).
_LAZY = ("compat", "protocol", "models", "data", "config", "accounting", "placement", "cluster", "ops")


def __getattr__(name):
    if name in _LAZY:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "BuildMismatchError", "ops_library", "read_build_info", "function",
           "Function", "PartyStore", "use_fast_tfe_function"]
