"""AcceleratedABY3: TF Encrypted's ABY3 with its hot path on tfe-accel's fused ops.

Drop-in: ``tfe.set_protocol(tfe_accel.protocol.AcceleratedABY3())``. Same constructor arguments,
tensor types, key/nonce bookkeeping and messages as ``tfe.protocol.ABY3``; each routed operation
runs as one fused op per party, placed on that party's device (its GPU or its CPU, see
``placement``), reading only that party's shares and keys. Operations (or cases, e.g. broadcasting) without a route fall through to stock ABY3;
each fall-through is logged once at DEBUG level by the `tfe_accel` logger with its reason.
"""
from __future__ import annotations

import logging
import weakref

import tensorflow as tf
import tf_encrypted as tfe
from tf_encrypted.protocol.aby3 import ABY3

from .. import placement as _placement
from ..fixedpoint import assert_encodable, check_encodable
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
    """

    def __init__(self, server_0=None, server_1=None, server_2=None, fixedpoint_config=None,
                 truncation: str = "heuristic", accelerate: bool = True,
                 fresh_randomness_per_call: bool = True, placement: str = "auto",
                 fast_function: bool = True, check_ranges: bool = True):
        if truncation not in TRUNCATION_METHODS:
            raise ValueError(f"truncation must be one of {TRUNCATION_METHODS}, got {truncation!r}")
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
        self._call_counters = None
        self._graph_keys = weakref.WeakKeyDictionary()  # FuncGraph -> per-call derived keys
        super().__init__(server_0, server_1, server_2, fixedpoint_config)
        self.placement = _placement.resolve(placement, [s.device_name for s in self.servers])
        _placement.log_placement(self.placement)
        if fresh_randomness_per_call:
            # Created now, outside any trace: a variable created while tracing makes tf.function
            # trace twice, and TFE's memoisation would then hand the second trace stale tensors.
            self._counters()

    # ---- per-call fresh correlated randomness in compiled functions --------------------------

    def _counters(self):
        if self._call_counters is None:
            self._call_counters = []
            for i, server in enumerate(self.servers):
                with tf.init_scope(), tf.device(server.device_name):
                    self._call_counters.append(
                        tf.Variable(0, dtype=tf.int64, trainable=False, name=f"call_counter_{i}"))
        return self._call_counters

    def _call_tweak(self, i):
        """Party i's per-call key tweak [t_lo, t_hi, 0, ...] in the function being traced."""
        graph = tf.compat.v1.get_default_graph()
        tweaks = self._graph_keys.setdefault(graph, {})
        if ("tweak", i) not in tweaks:
            with tf.device(self.servers[i].device_name), tf.name_scope(f"call-counter-{i}"):
                t = self._counters()[i].assign_add(1) - 1  # this call's index (0 on the first)
                words = tf.bitcast(t, tf.int32)  # [lo, hi] (little-endian)
                tweaks[("tweak", i)] = tf.concat([words, tf.zeros([6], tf.int32)], 0)
        return tweaks[("tweak", i)]

    def loop_tweaks(self):
        """Each party's call tweak in the function being traced (None without fresh randomness or
        outside a trace), to hand to :meth:`enter_loop_body` of a loop inside that function."""
        if not self._fresh():
            return None
        return [self._call_tweak(i) for i in range(3)]

    def enter_loop_body(self, outer_tweaks, iterations):
        """In a ``tf.while_loop`` body being traced: this iteration's per-party key tweak is the
        enclosing call's tweak with the party's own iteration number (>= 1, an int64 scalar on its
        device) in words 2-3, so each iteration of each call expands fresh correlated randomness.
        Every party counts identically (no message)."""
        if outer_tweaks is None:
            return
        graph = tf.compat.v1.get_default_graph()
        tweaks = self._graph_keys.setdefault(graph, {})
        for i, server in enumerate(self.servers):
            with tf.device(server.device_name), tf.name_scope(f"iteration-key-{i}"):
                words = tf.bitcast(tf.cast(iterations[i], tf.int64), tf.int32)  # [lo, hi]
                extra = tf.concat([tf.zeros([2], tf.int32), words, tf.zeros([4], tf.int32)], 0)
                tweaks[("tweak", i)] = tf.bitwise.bitwise_xor(outer_tweaks[i], extra)

    def _derived_key(self, table_name, table, i, j):
        graph = tf.compat.v1.get_default_graph()
        cache = self._graph_keys.setdefault(graph, {})
        key = (table_name, i, j)
        if key not in cache:
            base = table[i][j]
            if base is None:
                cache[key] = None
            else:
                tweak = self._call_tweak(i)
                with tf.device(self.servers[i].device_name), tf.name_scope("fresh-key"):
                    cache[key] = tf.bitwise.bitwise_xor(base, tweak)
        return cache[key]

    def _lazy_table(self, table_name, table):
        return _LazyKeyTable(self, table_name, table)

    def _setup_pairwise_randomness(self):
        super()._setup_pairwise_randomness()
        # ABY3 sends each key once, at set-up, to the other party of its pair. Stock TFE keeps the
        # only copy on the generating party, so a compiled function re-sends it on every call;
        # keep each party's copy on its own device instead (one message, now).
        self._localise(self.pairwise_keys_)

    def _setup_b2a_generator(self):
        super()._setup_b2a_generator()
        self._localise(self.b2a_keys_1_)
        self._localise(self.b2a_keys_2_)

    def _localise(self, table):
        for i, server in enumerate(self.servers):
            with tf.device(server.device_name):
                table[i] = [tf.identity(k) if k is not None else None for k in table[i]]

    def _fresh(self) -> bool:
        return self.fresh_randomness_per_call and tf.inside_function()

    def pairwise_keys(self):
        keys = super().pairwise_keys()
        return self._lazy_table("pairwise", keys) if self._fresh() else keys

    def b2a_keys_1(self):
        keys = super().b2a_keys_1()
        return self._lazy_table("b2a1", keys) if self._fresh() else keys

    def b2a_keys_2(self):
        keys = super().b2a_keys_2()
        return self._lazy_table("b2a2", keys) if self._fresh() else keys

    # ---- placement -------------------------------------------------------------------------------

    def fused_device(self, i: int, op_type: str) -> str:
        """Device of party i's fused op of type ``op_type`` (its GPU or its CPU device)."""
        return self.placement.device(i, op_type)

    # ---- routing ---------------------------------------------------------------------------------

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


class _LazyKeyTable:
    """keys[i][j] of a key table, derived for the current call on first access (on party i)."""

    def __init__(self, prot, name, table):
        self._prot, self._name, self._table = prot, name, table

    def __getitem__(self, i):
        return _LazyKeyRow(self, i)

    def __len__(self):
        return len(self._table)


class _LazyKeyRow:
    def __init__(self, table, i):
        self._t, self._i = table, i

    def __getitem__(self, j):
        t = self._t
        return t._prot._derived_key(t._name, t._table, self._i, j)

    def __len__(self):
        return len(self._t._table[self._i])

    def __iter__(self):
        return (self[j] for j in range(len(self)))


def routed_operations():
    """Names of the stock dispatch targets that AcceleratedABY3 replaces."""
    return sorted(n[1:] for n in dir(routes) if n.startswith("_") and not n.startswith("__")
                  and callable(getattr(routes, n)) and n.count("_") >= 2 and n[1] != "_"
                  and n not in routes.HELPERS)


__all__ = ["AcceleratedABY3", "routed_operations", "TRUNCATION_METHODS"]
