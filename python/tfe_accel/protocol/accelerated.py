"""AcceleratedABY3: TF Encrypted's ABY3 with its hot path on tfe-accel's fused ops.

Drop-in: ``tfe.set_protocol(tfe_accel.protocol.AcceleratedABY3())``. Same constructor arguments,
tensor types and key/nonce bookkeeping as ``tfe.protocol.ABY3``, fewer rounds and messages (a
product's truncation on its resharing, telescoped piecewise functions); each routed operation
runs as one fused op per party, placed on that party's device (its GPU or its CPU, see
``placement``), reading only that party's shares and keys. Operations (or cases, e.g. broadcasting) without a route fall through to stock ABY3;
each fall-through is logged once at DEBUG level by the `tfe_accel` logger with its reason.
"""
from __future__ import annotations

import logging

import tensorflow as tf
from tf_encrypted.protocol.aby3 import ABY3

from .. import placement as _placement
from ..fixedpoint import assert_encodable, check_encodable
from . import routes  # noqa: F401  (registers the routes)
from .fresh_keys import FreshKeys
from .helpers import Fallback
from .registry import lookup, routed_operations  # noqa: F401  (re-exported by the package)

logger = logging.getLogger("tfe_accel")

TRUNCATION_METHODS = ("heuristic", "local")
PIECE_METHODS = ("telescoped", "stock")
COMPARISON_METHODS = ("auto", "masked", "kogge-stone")


def check_comparison(comparison: str) -> str:
    """``comparison`` if it is one of COMPARISON_METHODS, else a ValueError naming them."""
    if comparison not in COMPARISON_METHODS:
        raise ValueError(f"comparison must be one of {COMPARISON_METHODS}, got {comparison!r}")
    return comparison


class AcceleratedABY3(FreshKeys, ABY3):
    """ABY3 with fused per-party kernels for matmul, mul, truncation and sigmoid.

    :param truncation: default truncation after fixed-point products: ``"heuristic"`` (TFE's
        default: lift + MSB-0 protocol, exact up to one ulp while |x| < 2^62) or ``"local"``
        (ABY3's non-interactive truncation: no extra round, small chance of a huge error per
        element, see docs/mpc_steps.md).
    :param accelerate: False routes nothing (stock behaviour, for comparisons).
    :param fresh_randomness_per_call: stock TFE bakes its PRG nonces into a compiled function
        (``tfe.function``) as constants, so every call of that function reuses the same zero
        sharings and masks (e.g. every step of a training loop): the resharing messages of
        different calls then differ only by the parties' local products, which leaks. With this
        option (default) each party keeps a call counter (a variable on its own device, advanced
        once per call of each compiled function, identically at all parties) and mixes it into the
        PRG keys it uses in that call: ``key' = key ^ [t_lo, t_hi, 0, ...]``. The first call
        (t = 0) and eager execution use stock TFE's exact keys. No communication is added.
    :param placement: where each party's fused ops run: ``"auto"`` (its GPU when it has one and this
        build has TF GPU kernels, else its CPU; logged), ``"cpu"``, or ``"gpu"`` (a
        :class:`tfe_accel.placement.PlacementError` when a party has no GPU). See
        :mod:`tfe_accel.placement`.
    :param fast_function: ``tfe.function`` takes tfe-accel's fast path (:func:`tfe_accel.function`:
        no AutoGraph, flat calls) while this protocol is active (default); False keeps stock
        ``tfe.function`` (AutoGraph, nested arguments).
    :param check_ranges: values encoded into fixed point (constants, variables' initial values,
        private and public inputs) are refused with :class:`tfe_accel.fixedpoint.FixedPointRangeError`
        when NaN, infinite or |x| >= 2^(62 - f) (they would wrap around the ring), and a warning names
        the bound when |x| > 2^(31 - f) (a product with a value of that size overflows). Inputs fed as
        TF tensors are checked in the graph, on the input's own device (default True).
    :param pieces: how piecewise-linear functions (``sigmoid``, ``polynomial_piecewise``) combine
        their pieces after the batched comparison: ``"telescoped"`` (default: f_0 + sum_j [x > c_j]
        (f_{j+1} - f_j), one round, one AND and one piece product fewer than stock; results within a
        few ulps of stock's; used where consecutive slopes differ by at most 1, e.g. every sigmoid
        table, else stock's selection) or ``"stock"`` (TFE's one-hot piece selection: the same messages,
        rounds and, for the same randomness, the same shares as stock ABY3).
    :param comparison: how the msb of a comparison (``msb``, the pieces' comparisons of ``sigmoid``
        and ``polynomial_piecewise``) is computed: ``"masked"`` (a masked comparison with P2 as the
        comparing party: three rounds instead of seven, ~208 bytes per value instead of ~105;
        docs/mpc_steps.md), ``"kogge-stone"`` (TFE's a2b and Kogge-Stone carry circuit, TFE's
        shares) or ``"auto"`` (default): masked for comparisons of at most ``masked_max_values``
        values (static shapes), where the four rounds saved outweigh the extra bytes, Kogge-Stone
        for larger ones and always with ``pieces="stock"`` (stock's shares).
    :param masked_max_values: the ``"auto"`` threshold (default 16,384: at 100 Mbit/s, 103 extra
        bytes per value cost what four 40 ms round trips save at ~19,000 values).
    """

    def __init__(self, server_0=None, server_1=None, server_2=None, fixedpoint_config=None,
                 truncation: str = "heuristic", accelerate: bool = True,
                 fresh_randomness_per_call: bool = True, placement: str = "auto",
                 fast_function: bool = True, check_ranges: bool = True, pieces: str = "telescoped",
                 comparison: str = "auto", masked_max_values: int = 16384):
        if truncation not in TRUNCATION_METHODS:
            raise ValueError(f"truncation must be one of {TRUNCATION_METHODS}, got {truncation!r}")
        if pieces not in PIECE_METHODS:
            raise ValueError(f"pieces must be one of {PIECE_METHODS}, got {pieces!r}")
        self.pieces = pieces
        if check_comparison(comparison) == "auto" and pieces == "stock":
            comparison = "kogge-stone"
        self.comparison = comparison
        if (isinstance(masked_max_values, bool) or not isinstance(masked_max_values, int)
                or masked_max_values < 0):
            raise ValueError("masked_max_values must be a non-negative int (the most values a "
                             f"comparison takes masked under comparison='auto'), got "
                             f"{masked_max_values!r}")
        self.masked_max_values = masked_max_values
        if placement not in _placement.PLACEMENTS:
            raise _placement.PlacementError(
                f"placement must be one of {_placement.PLACEMENTS}, got {placement!r}")
        self.truncation_method = truncation
        self.accelerate = accelerate
        self.fresh_randomness_per_call = fresh_randomness_per_call
        self.fast_function = fast_function
        self.check_ranges = check_ranges
        self._encoding_what = None
        self._fallbacks_logged = set()
        self._init_fresh_keys()
        super().__init__(server_0, server_1, server_2, fixedpoint_config)
        self.placement = _placement.resolve(placement, [s.device_name for s in self.servers])
        _placement.log_placement(self.placement)
        if fresh_randomness_per_call:
            # Created now, outside any trace: a variable created while tracing makes tf.function
            # trace twice, and TFE's memoisation would then hand the second trace stale tensors.
            self._counters()

    # ---- placement -------------------------------------------------------------------------------

    def fused_device(self, i: int, op_type: str) -> str:
        """Device of party i's fused op of type ``op_type`` (its GPU or its CPU device)."""
        return self.placement.device(i, op_type)

    # ---- routing ---------------------------------------------------------------------------------

    def dispatch(self, base_name, *args, container=None, **kwargs):
        if container is None and self.accelerate:
            suffix = "_".join(a.dispatch_id for a in args if hasattr(a, "dispatch_id"))
            route = lookup(base_name, suffix)
            if route is not None:
                result = route(self, *args, **kwargs)
                if not isinstance(result, Fallback):
                    return result
                self._log_fallback(base_name, suffix, result.reason)
        return super().dispatch(base_name, *args, container=container, **kwargs)

    # ---- encoding: values the fixed-point format cannot hold are refused, never wrapped around ----

    def _encode(self, rationals, apply_scaling):
        if apply_scaling and self.check_ranges:
            f = self.fixedpoint_config.precision_fractional
            if isinstance(rationals, tf.Tensor):
                # TF tensors: only the user's inputs (TFE encodes its own constants 0/1 this way too,
                # on the hot path, and those need no check).
                if self._encoding_what is not None:
                    rationals = assert_encodable(rationals, f, self._encoding_what)
            elif not isinstance(rationals, (tf.Variable, tf.Operation)):
                check_encodable(rationals, f, self._encoding_what or "AcceleratedABY3: value to encode")
        return super()._encode(rationals, apply_scaling)

    def _checked(self, what, method, *args, **kwargs):
        outer, self._encoding_what = self._encoding_what, what
        try:
            return method(*args, **kwargs)
        finally:
            self._encoding_what = outer

    @staticmethod
    def _what(kind, name):
        return f"AcceleratedABY3: {kind}" + (f" {name!r}" if name else "")

    def define_constant(self, value, apply_scaling=True, name=None, factory=None):
        return self._checked(self._what("constant", name), super().define_constant, value, apply_scaling,
                             name, factory)

    def define_public_variable(self, initial_value, apply_scaling=True, name=None, factory=None):
        return self._checked(self._what("public variable", name), super().define_public_variable,
                             initial_value, apply_scaling, name, factory)

    def define_private_variable(self, initial_value, apply_scaling=True, *args, name=None, **kwargs):
        return self._checked(self._what("private variable", name), super().define_private_variable,
                             initial_value, apply_scaling, *args, name=name, **kwargs)

    def define_private_input(self, player, inputter_fn, apply_scaling=True, *args, **kwargs):
        who = getattr(player, "name", player)
        return self._checked(self._what(f"private input of {who}", kwargs.get("name_scope")),
                             super().define_private_input, player, inputter_fn, apply_scaling, *args,
                             **kwargs)

    def define_public_input(self, player, inputter_fn, apply_scaling=True, *args, **kwargs):
        who = getattr(player, "name", player)
        return self._checked(self._what(f"public input of {who}", kwargs.get("name_scope")),
                             super().define_public_input, player, inputter_fn, apply_scaling, *args,
                             **kwargs)

    def truncate(self, x, method=None, amount=None):
        return super().truncate(x, method or self.truncation_method, amount)

    def _log_fallback(self, base_name, suffix, reason):
        key = (base_name, suffix, reason)
        if key not in self._fallbacks_logged:
            self._fallbacks_logged.add(key)
            logger.debug("AcceleratedABY3: %s(%s) runs stock ABY3: %s", base_name, suffix, reason)
