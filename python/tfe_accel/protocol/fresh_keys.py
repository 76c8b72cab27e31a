"""Fresh correlated randomness per call of a compiled function (AcceleratedABY3's
``fresh_randomness_per_call``).

Stock TFE bakes its PRG nonces into a compiled function (``tfe.function``) as constants, so every
call of that function reuses the same zero sharings and masks. Here each party keeps a call
counter (a variable on its own device, advanced once per call of each compiled function,
identically at all parties) and mixes it into the PRG keys it uses in that call:
``key' = key ^ [t_lo, t_hi, 0, ...]``; inside a ``tf.while_loop`` body the iteration number goes
into words 2-3 (``enter_loop_body``). The first call (t = 0) and eager execution use stock TFE's
exact keys. No communication is added: every party derives its own keys from its own counter.
"""
from __future__ import annotations

import weakref

import tensorflow as tf


class FreshKeys:
    """Mixin for an ABY3 subclass: per-call derived pairwise and b2a keys. The subclass sets
    ``fresh_randomness_per_call`` and calls :meth:`_init_fresh_keys` before ABY3's set-up."""

    def _init_fresh_keys(self):
        self._call_counters = None
        self._graph_keys = weakref.WeakKeyDictionary()  # FuncGraph -> per-call derived keys

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
