"""TF Encrypted compatibility shims for newer TF / Python / setuptools / onnx (see
:mod:`tfe_accel_compat`, which holds them outside this package so that its ``.pth`` file can install
them at interpreter start without importing TensorFlow)."""
from tfe_accel_compat import SHIMS, Shim, active_shims, describe, install

__all__ = ["SHIMS", "Shim", "active_shims", "describe", "install"]
