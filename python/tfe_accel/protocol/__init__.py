"""AcceleratedABY3: TF Encrypted's ABY3 with its hot path on tfe-accel's fused ops.

Drop-in: ``tfe.set_protocol(tfe_accel.protocol.AcceleratedABY3())``. Same constructor arguments,
tensor types, key/nonce bookkeeping and messages as ``tfe.protocol.ABY3``; each routed operation
runs as one fused op per party, placed on that party's device, reading only that party's shares
and keys. Operations (or cases, e.g. broadcasting) without a route fall through to stock ABY3;
each fall-through is logged once at DEBUG level by the `tfe_accel` logger with its reason.
"""
from __future__ import annotations

import logging

import tf_encrypted as tfe
from tf_encrypted.protocol.aby3 import ABY3

from . import routes

logger = logging.getLogger("tfe_accel")

TRUNCATION_METHODS = ("heuristic", "local")


class AcceleratedABY3(ABY3):
    """ABY3 with fused per-party kernels for matmul, mul, truncation and sigmoid.

    :param truncation: default truncation after fixed-point products: ``"heuristic"`` (TFE's
        default: lift + MSB-0 protocol, exact up to one ulp while |x| < 2^62) or ``"local"``
        (ABY3's non-interactive truncation: no extra round, small chance of a huge error per
        element, see docs/mpc_steps.md).
    :param accelerate: False routes nothing (stock behaviour, for comparisons).
    """

    def __init__(self, server_0=None, server_1=None, server_2=None, fixedpoint_config=None,
                 truncation: str = "heuristic", accelerate: bool = True):
        if truncation not in TRUNCATION_METHODS:
            raise ValueError(f"truncation must be one of {TRUNCATION_METHODS}, got {truncation!r}")
        self.truncation_method = truncation
        self.accelerate = accelerate
        self._fallbacks_logged = set()
        super().__init__(server_0, server_1, server_2, fixedpoint_config)

    def dispatch(self, base_name, *args, container=None, **kwargs):
        if container is None and self.accelerate:
            suffix = "_".join(a.dispatch_id for a in args if hasattr(a, "dispatch_id"))
            route = getattr(routes, f"_{base_name}_{suffix}", None)
            if route is not None:
                result = route(self, *args, **kwargs)
                if not isinstance(result, routes.Fallback):
                    return result
                self._log_fallback(base_name, suffix, result.reason)
        return super().dispatch(base_name, *args, container=container, **kwargs)

    def truncate(self, x, method=None, amount=None):
        return super().truncate(x, method or self.truncation_method, amount)

    def _log_fallback(self, base_name, suffix, reason):
        key = (base_name, suffix, reason)
        if key not in self._fallbacks_logged:
            self._fallbacks_logged.add(key)
            logger.debug("AcceleratedABY3: %s(%s) runs stock ABY3: %s", base_name, suffix, reason)


def routed_operations():
    """Names of the stock dispatch targets that AcceleratedABY3 replaces."""
    return sorted(n[1:] for n in dir(routes) if n.startswith("_") and not n.startswith("__")
                  and callable(getattr(routes, n)) and n.count("_") >= 2 and n[1] != "_"
                  and n not in routes.HELPERS)


__all__ = ["AcceleratedABY3", "routed_operations", "TRUNCATION_METHODS"]
