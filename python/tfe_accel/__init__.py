"""tfe-accel: fast, trustworthy kernels for TF Encrypted's ABY3.

``import tfe_accel`` checks that the op library matches the installed TensorFlow, loads it, and
installs tfe-accel's ChaCha20 secure randomness and TFE's bit ops into TF Encrypted, so stock
``tfe.protocol.ABY3`` works securely on TF 2.12. ``tfe_accel.protocol.AcceleratedABY3`` routes
ABY3's hot path through fused ops.

A build made without the TF op library (``-DTFE_ACCEL_TF_OPS=OFF``, e.g. on a GPU test machine
with no TensorFlow) exposes only ``tfe_accel._native`` and never imports TensorFlow.
"""
from ._version import __version__
from ._loader import BuildMismatchError, install_into_tfe, load_ops, read_build_info, split_cpu_devices

if read_build_info().get("tf_ops", True):
    split_cpu_devices()  # first, while TF's runtime is not yet initialised (config.py)
    ops_library = load_ops()
    install_into_tfe(ops_library)
else:  # native-only build: NumPy/CuPy kernels, no TensorFlow
    ops_library = None

__all__ = ["__version__", "BuildMismatchError", "ops_library", "read_build_info"]
