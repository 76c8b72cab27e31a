"""AcceleratedABY3: TF Encrypted's ABY3 with its hot path on tfe-accel's fused ops.

Drop-in: ``tfe.set_protocol(tfe_accel.protocol.AcceleratedABY3())``. Modules:
``accelerated`` (the protocol class: routing, placement, fixed-point range checks),
``fresh_keys`` (fresh correlated randomness per compiled call), ``registry`` (the route table),
``routes`` (the fused replacements of stock dispatch targets), ``helpers`` (devices, messages,
held shares, the pairwise-nonce cursor).
"""
from .accelerated import TRUNCATION_METHODS, AcceleratedABY3
from .registry import routed_operations

__all__ = ["AcceleratedABY3", "routed_operations", "TRUNCATION_METHODS"]
