"""Secure logistic regression in TF Encrypted's ABY3 (the iDASH'19 Track IV system).

Players: three compute servers ``server0..2`` and one player per data owner ``owner0..K-1``. Each
owner reads its records on its own device and secret-shares them into the servers
(``define_private_input``); nothing but the record/feature counts leaves an owner in the clear.
Inside MPC: per-gene standardisation (mean and 1/sqrt(var + eps) computed on shares), balanced class
weights (n_pos is a sum of shares, then one secure reciprocal), and the training loop, one compiled
(``tfe.function``) step per batch. Only the final model is revealed (and, with ``reveal_loss``, one
loss scalar per epoch). Checkpoints: every compute party writes its own two shares of the model on its
own device; ``resume`` reloads them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from .envelope import (DEFAULT_VALUE_LIMIT, MAX_FRACTIONAL_BITS, MIN_FRACTIONAL_BITS, check_owner_values,
                       check_revealed_model, choose_fractional_bits, owner_values, reciprocal_domain)
from .plaintext import SIGMOIDS, STANDARDIZE_EPS, batch_schedule, class_weights

from ..config import SERVERS  # noqa: E402  (re-exported: models.secure.SERVERS)


@dataclass
class TrainConfig:
    """Hyper-parameters; the CLI flags map one to one onto these fields."""

    epochs: int = 20
    learning_rate: float = 0.05
    batch_size: Optional[int] = None  # None: full batch
    class_weight: str = "balanced"  # balanced (in MPC) | public (owners disclose counts) | none
    sigmoid: str = "5-piece"
    standardize: bool = True
    l2: float = 0.0
    seed: int = 0
    reveal_loss: bool = False
    checkpoint_every: int = 0
    checkpoint_dir: Optional[str] = None
    resume: bool = False
    # Fixed-point precision of the shares: None picks the most bits (<= 20) the numeric envelope
    # allows for the record count and value_limit (models/envelope.py); TFE's default is 16.
    fractional_bits: Optional[int] = None
    value_limit: float = DEFAULT_VALUE_LIMIT  # public bound |x| <= value_limit every owner checks
    log_transform: bool = False  # each owner shares log2(x + 1) of its values (raw intensities, counts)
    scale: float = 1.0  # each owner shares x / scale; the model is reported in the original units

    def validate(self):
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be > 0, got {self.learning_rate}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1 or full, got {self.batch_size}")
        if self.class_weight not in ("balanced", "public", "none"):
            raise ValueError(f"class weight must be balanced, public or none, got {self.class_weight!r}")
        if self.sigmoid not in SIGMOIDS:
            raise ValueError(f"sigmoid must be one of {', '.join(SIGMOIDS)}, got {self.sigmoid!r}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        if self.fractional_bits is not None and not (
                MIN_FRACTIONAL_BITS <= self.fractional_bits <= MAX_FRACTIONAL_BITS):
            raise ValueError(f"fractional bits must be in [{MIN_FRACTIONAL_BITS}, {MAX_FRACTIONAL_BITS}] "
                             f"or auto, got {self.fractional_bits}")
        if not (math.isfinite(self.value_limit) and self.value_limit > 0):
            raise ValueError(f"value limit must be a positive number, got {self.value_limit}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be a positive number, got {self.scale}")
        if (self.checkpoint_every or self.resume) and not self.checkpoint_dir:
            raise ValueError("checkpoints and resume need a checkpoint directory")


@dataclass
class SecureResult:
    weights: np.ndarray  # raw gene space, revealed at the end
    bias: float
    losses: List[float] = field(default_factory=list)  # only with reveal_loss
    epoch_times: List[float] = field(default_factory=list)
    setup_seconds: float = 0.0  # sharing + preprocessing in MPC
    train_seconds: float = 0.0  # all epochs run in this call (incl. the first, traced one)
    start_epoch: int = 0
    protocol: str = ""
    n_train: int = 0
    n_features: int = 0
    communication: Optional[dict] = None  # per epoch: messages, bytes, rounds (None: not measured)
    placement: List[str] = field(default_factory=list)  # per party: where its fused ops ran, and why
    placement_summary: str = ""
    comparison: str = "kogge-stone"  # the protocol's msb (AcceleratedABY3.comparison; stock: TFE's circuit)
    trace_seconds: dict = field(default_factory=dict)  # per compiled function: time spent tracing it
    trace_counts: dict = field(default_factory=dict)  # per compiled function: how often it was traced (1 each)
    phase_seconds: dict = field(default_factory=dict)  # sharing + preprocessing, epochs, reveal
    peak_rss_bytes: Optional[int] = None  # this process's peak resident set size after training
    fractional_bits: int = 0  # the precision the shares used (TrainConfig's, or the envelope's choice)

    def decision(self, x):
        return np.asarray(x, dtype=np.float64) @ self.weights + self.bias


# ---------------------------------------------------------------------------------------------
# Protocol selection


class ProtocolUnavailable(RuntimeError):
    pass


def accelerated_available() -> bool:
    try:
        from tfe_accel.protocol import AcceleratedABY3  # noqa: F401
    except ImportError:
        return False
    return True


def protocol_class(name: str = "auto"):
    """``accelerated`` (tfe_accel.protocol.AcceleratedABY3), ``stock`` (tfe.protocol.ABY3), or
    ``auto`` (accelerated when importable, else stock). Returns (class, resolved name)."""
    import tf_encrypted as tfe

    if name in ("auto", None):
        name = "accelerated" if accelerated_available() else "stock"
    if name == "stock":
        return tfe.protocol.ABY3, "stock"
    if name == "accelerated":
        try:
            from tfe_accel.protocol import AcceleratedABY3
        except ImportError as exc:
            raise ProtocolUnavailable(
                "the accelerated protocol (tfe_accel.protocol.AcceleratedABY3) is not available in this "
                f"build ({exc}); use --protocol stock"
            ) from None
        return AcceleratedABY3, "accelerated"
    raise ValueError(f"protocol must be accelerated, stock or auto, got {name!r}")


# ---------------------------------------------------------------------------------------------
# MPC helpers (tfe_accel.models.mpc; re-exported here for existing callers)

from .mpc import (  # noqa: E402,F401
    column_sum_squares, encode_fixed_point, fixedpoint_config, fresh_op_cache, max_truncation, reciprocal,
    mul_const, mul_shifted, private_steps, secure_sigmoid, share_encoded,
)


# Per-step scalings (LR/|B|, LR*l2, 1/|B|) need no residual term: their 2^-20 relative rounding changes
# the step size by ~1e-6, far below the fixed-point noise; the residual (a second truncation, seven
# more messages) is kept for the per-gene means, where a common rounding is amplified ~1e5-fold.
STEP_TERMS = 1

# What the secure preprocessing leaves on the parties (a PartyStore) for the epochs and the reveal.
# It is never a function output: TF returns a compiled function's outputs to the caller, so on a
# cluster every share of the training matrix would cross to the driver (time, and the driver would
# hold all six shares of the owners' records).
PREPROCESSED = ("X", "y", "c", "cw", "q", "neg_mean")


def _comm_summary(stats) -> dict:
    link, nbytes = stats.busiest_link()
    return {"messages": stats.messages, "bytes": stats.bytes, "rounds": stats.rounds,
            "control_messages": stats.control_messages, "busiest_link": link,
            "busiest_link_bytes": nbytes}


def peak_rss_bytes() -> Optional[int]:
    """This process's peak resident set size: ``VmHWM`` of /proc/self/status on Linux (the high-water
    mark of this program's own address space; ``getrusage``'s ``ru_maxrss`` also counts a parent's
    pages when the process was started by fork + exec from a large one), else ``getrusage``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except (ImportError, OSError):  # pragma: no cover
        return None


def tfe_function(fn, name, grappler=True):
    """The trainer's compiled functions: tfe_accel.function (no AutoGraph, flat calls), for the
    stock protocol too (the comparison is then protocol against protocol). The one-shot graphs
    (preprocessing, final reveal) run without Grappler: rewriting them costs more than it saves."""
    from .._function import function

    return function(fn, name=name, grappler=grappler)


# ---------------------------------------------------------------------------------------------
# The trainer


class SecureLogisticRegression:
    """Train on secret-shared data from several owners; see the module docstring.

    ``owners``: list of :class:`tfe_accel.data.OwnerData` (training records only), one per owner
    player ``owner{k}``. ``split``: ``horizontal`` (same genes, different samples) or ``vertical``
    (same samples, different genes, labels at exactly one owner). ``tfe_config``: a TFE config
    (e.g. ``tfe_accel.cluster.connect(path)`` for remote players); default a ``LocalConfig`` with
    ``server0..2`` and the owners. ``placement``: where the accelerated protocol runs each party's
    fused ops (``auto``, ``cpu``, ``gpu``; :mod:`tfe_accel.placement`); the stock protocol has no
    fused ops and accepts only ``auto`` or ``cpu``. ``comparison``: the accelerated protocol's msb
    (``AcceleratedABY3(comparison=...)``: ``auto``, ``masked``, ``kogge-stone``); stock: ``auto`` only.
    """

    def __init__(self, config: TrainConfig, protocol: str = "auto", tfe_config=None, progress=False,
                 placement: str = "auto", comparison: str = "auto"):
        config.validate()
        from ..placement import PLACEMENTS
        from ..protocol.accelerated import check_comparison

        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        check_comparison(comparison)
        self.placement = placement
        self.comparison = comparison
        self.config = config
        self.protocol_name = protocol
        self.tfe_config = tfe_config
        self.progress = progress

    # -- set-up -------------------------------------------------------------------------------
    def _setup(self, n_owners):
        import tf_encrypted as tfe

        cls, self.resolved_protocol = protocol_class(self.protocol_name)
        players = list(SERVERS) + [f"owner{k}" for k in range(n_owners)]
        cfg = self.tfe_config
        if cfg is None:
            # One logical CPU device per player, so messages between parties are real transfers
            # that the accounting can count (results are identical to tfe.LocalConfig).
            from ..config import PartitionedLocalConfig

            try:
                cfg = PartitionedLocalConfig(players)
            except RuntimeError as exc:
                logging.getLogger("tfe_accel").warning(
                    "using tfe.LocalConfig (all players on one device; communication will not be "
                    "measured): %s", exc)
                cfg = tfe.LocalConfig(players)
        else:
            names = {p.name for p in getattr(cfg, "players", [])}
            missing = [p for p in players if names and p not in names]
            if missing:
                raise ValueError(
                    f"the TFE config has no player(s) {', '.join(missing)}; it needs server0..2 and one "
                    f"owner player per data owner (owner0..owner{n_owners - 1})"
                )
        tfe.set_config(cfg)
        fresh_op_cache()
        kwargs = {}
        if self.resolved_protocol == "accelerated":
            kwargs["placement"] = self.placement
            kwargs["comparison"] = self.comparison
        elif self.comparison != "auto":
            raise ValueError(f"comparison {self.comparison!r} needs the accelerated protocol (stock ABY3 "
                             "always uses TFE's Kogge-Stone circuit); use --protocol accelerated")
        elif self.placement == "gpu":
            raise ValueError("placement 'gpu' needs the accelerated protocol (stock ABY3 has no fused ops "
                             "to place); use --protocol accelerated")
        prot = cls(fixedpoint_config=fixedpoint_config(self.fractional_bits), **kwargs)
        tfe.set_protocol(prot)
        return tfe, prot

    def _owner_values(self, owners):
        """Each owner's own step before anything is shared: the remedies (log2(x + 1), a public
        scale), then its values checked against the public limit (local: nothing leaves the owner;
        an out-of-range value is an error naming the owner's file, the gene and the remedy)."""
        cfg = self.config
        out = []
        for k, o in enumerate(owners):
            what = f"owner{k} ({o.source or 'data'})"
            x = owner_values(o.x, cfg.log_transform, cfg.scale, what=what, genes=o.genes)
            check_owner_values(x, cfg.value_limit, what, o.genes, self.fractional_bits)
            out.append(x)
        return out

    def _owner_inputs(self, prot, owners, values):
        """Each owner encodes its own values on the fixed-point grid (round(x * 2^f), int64) and
        places them on its own device: what enters the sharing graph (nothing leaves the owner
        unshared)."""
        import tensorflow as tf
        import tf_encrypted as tfe

        f = self.fractional_bits
        xs, ys = [], []
        for k, (o, x) in enumerate(zip(owners, values)):
            dev = tfe.get_config().get_player(f"owner{k}").device_name
            xk = encode_fixed_point(x, f, what=f"owner{k} ({o.source or 'data'})")
            with tf.device(dev):
                xs.append(tf.convert_to_tensor(xk))
                if o.y is not None:
                    yk = encode_fixed_point(np.asarray(o.y, dtype=np.float64).reshape(-1, 1), f,
                                            what=f"owner{k} labels")
                    ys.append(tf.convert_to_tensor(yk))
                else:
                    ys.append(None)
        return xs, ys

    def _preprocess_fn(self, prot, n, split, pub_w, store):
        """The secure preprocessing, traced as one graph: sharing, standardisation statistics, class
        weights, the training matrix. It returns nothing: its private results stay on the parties,
        in ``store`` (a :class:`tfe_accel.PartyStore`; a returned share would travel to the driver,
        see ``PREPROCESSED``), under these names (absent where unused):

        - ``X``: the records [n, d], with standardisation one more row, ``-mean`` ([n + 1, d]): the
          model is trained in the raw gene space, v = inv_std * w (w: the standardised-space
          weights), so ``X_b v - mean . v = ((X_b - mean) * inv_std) w`` needs no standardised copy of
          the records and ``X^T [r; sum(r)] = (X - mean)^T r`` is the centred gradient;
        - ``q`` [d, 1]: c' / (var + eps) with c' = LR/|B| * 2^k (the per-gene step, pre-scaled by 2^k so
          that it keeps its precision; the update truncates by f + k);
        - ``neg_mean`` [1, d]; ``y``; ``c`` the per-sample class weights; ``cw`` [n/(2 n_pos),
          n/(2 n_neg)] (balanced only).
        """
        cfg = self.config
        shift = self._shift

        def preprocess(x_parts, y_parts):
            fresh_op_cache()
            xs = [share_encoded(prot, f"owner{k}", x, name=f"x-owner{k}") for k, x in enumerate(x_parts)]
            ys = [share_encoded(prot, f"owner{k}", y, name=f"y-owner{k}")
                  for k, y in enumerate(y_parts) if y is not None]
            y = ys[0] if len(ys) == 1 or split == "vertical" else prot.concat(ys, axis=0)
            out = dict(X=None, y=y, c=None, cw=None, q=None, neg_mean=None)
            # Every secure reciprocal of the preprocessing in one call (one batched comparison,
            # whatever the number of values): 1 / (var + eps) per gene and 1 / [n_pos/n, n_neg/n].
            recip_in, recip_cols = [], []
            if cfg.standardize:
                if split == "horizontal":
                    total = xs[0].reduce_sum(axis=0, keepdims=True)
                    for part in xs[1:]:
                        total = total + part.reduce_sum(axis=0, keepdims=True)
                    mean = mul_const(prot, total, 1.0 / n)
                    ss = column_sum_squares(prot, xs[0], mean)
                    for part in xs[1:]:
                        ss = ss + column_sum_squares(prot, part, mean)
                    neg_mean = -mean
                    X = prot.concat(xs + [neg_mean], axis=0)
                else:
                    means = [mul_const(prot, part.reduce_sum(axis=0, keepdims=True), 1.0 / n) for part in xs]
                    ss = prot.concat([column_sum_squares(prot, p, m) for p, m in zip(xs, means)], axis=1)
                    neg_mean = -(means[0] if len(means) == 1 else prot.concat(means, axis=1))
                    X = prot.concat([xs[0] if len(xs) == 1 else prot.concat(xs, axis=1), neg_mean], axis=0)
                var = mul_const(prot, ss, 1.0 / n)
                recip_in.append(var + STANDARDIZE_EPS)
                recip_cols.append(int(var.shape[1]))
                out["neg_mean"] = neg_mean
            else:
                X = xs[0] if len(xs) == 1 else prot.concat(xs, axis=0 if split == "horizontal" else 1)
            out["X"] = X
            if cfg.class_weight == "balanced":
                # n_pos / n as a sum of shares; its reciprocal and that of 1 - n_pos/n.
                frac = mul_const(prot, prot.reduce_sum(y, axis=0, keepdims=True), 1.0 / n)
                recip_in.append(prot.concat([frac, 1.0 - frac], axis=1))
                recip_cols.append(2)
            if recip_in:
                both = recip_in[0] if len(recip_in) == 1 else prot.concat(recip_in, axis=1)
                inv = reciprocal(prot, both, domain=reciprocal_domain(
                    n, cfg.value_limit, standardize=cfg.standardize, class_weight=cfg.class_weight))
                pos = 0
                parts = []
                for w in recip_cols:
                    parts.append(inv[:, pos:pos + w])
                    pos += w
                if cfg.standardize:
                    out["q"] = prot.transpose(mul_const(prot, parts[0], shift["c"]))  # [d, 1] like v
                if cfg.class_weight == "balanced":
                    cw = prot.transpose(parts[-1] * 0.5)  # [[n/(2 n_pos)], [n/(2 n_neg)]]
                    c_pos = prot.gather(cw, [0], axis=0)
                    c_neg = prot.gather(cw, [1], axis=0)
                    out["c"], out["cw"] = c_neg + y * (c_pos - c_neg), cw
            if cfg.class_weight == "public":
                c_pos, c_neg = pub_w
                out["c"] = mul_const(prot, y, c_pos - c_neg) + c_neg
            for key, value in out.items():
                if value is not None:
                    store.put(key, value)

        return tfe_function(preprocess, name="secure_preprocessing", grappler=False)

    def _update_shift(self, prot):
        """The per-gene step LR/|B| / (var + eps) is tiny: it is carried as c' / (var + eps) with
        c' = LR/|B| * 2^k in [0.5, 1) (k as large as TFE's truncation allows) and the update's
        product is truncated once by f + k."""
        f = prot.fixedpoint_config.precision_fractional
        step = self.config.learning_rate / self._m
        k = max(0, -int(math.floor(math.log2(step))) - 1)
        k = min(k, max_truncation(prot) - f)
        return {"k": k, "c": step * 2.0 ** k, "amount": f + k}

    def _step(self, prot, Xb, yb, cb, q, vv, bv, with_row: bool):
        """One gradient step on batch rows Xb (with the -mean row last when standardising)."""
        cfg = self.config
        m = self._m
        lr, l2 = cfg.learning_rate, cfg.l2
        za = prot.matmul(Xb, vv)
        z = (za[:m] + za[m:m + 1] if with_row else za) + bv
        if cb is not None and not cfg.reveal_loss:
            # c (p - y) as c p - c y: c p is weighted inside the sigmoid (no round of its own), c y
            # is computed while the forward product runs
            diff = None
            r = secure_sigmoid(prot, z, cfg.sigmoid, weight=cb) - yb * cb
        else:
            diff = secure_sigmoid(prot, z, cfg.sigmoid) - yb
            r = diff * cb if cb is not None else diff
        rs = prot.reduce_sum(r, axis=0, keepdims=True)
        g = prot.matmul(prot.transpose(Xb), prot.concat([r, rs], axis=0) if with_row else r)
        if with_row:  # raw-space weights v: v -= LR/|B| (X - mean)^T r / (var + eps)
            u = mul_shifted(prot, g, q, self._shift["amount"])
        else:
            u = mul_const(prot, g, lr / m, terms=STEP_TERMS)
        if l2 > 0:  # the penalty l2 * w of the standardised model is l2 * v in the raw space
            u = u + mul_const(prot, vv, lr * l2, terms=STEP_TERMS)
        v_new = vv - u
        b_new = bv - mul_const(prot, rs, lr / m, terms=STEP_TERMS)
        loss = (mul_const(prot, prot.reduce_sum(r * diff, axis=0, keepdims=True), 1.0 / m, terms=STEP_TERMS)
                if cfg.reveal_loss else None)
        return v_new, b_new, loss

    def _epoch_fn(self, prot, v, b, n, full: bool):
        """One epoch as one compiled call: every batch of the epoch in one graph (a tf.while_loop over
        the batch schedule for mini-batches), the model variables read once and assigned once."""
        import tensorflow as tf

        cfg = self.config
        with_row = cfg.standardize
        info = {}

        def epoch(X, y, c, q, idx):
            fresh_op_cache()
            v0, b0 = v.read_value(), b.read_value()
            if full:
                v1, b1, loss = self._step(prot, X, y, c, q, v0, b0, with_row)
                info["step_graph"] = None
            else:
                steps = int(idx.shape[0])
                row = tf.constant([n], tf.int32)

                def body(k, state):
                    vv, bv = state[0], state[1]
                    rows = idx[k]
                    Xb = prot.gather(X, tf.concat([rows, row], 0) if with_row else rows, axis=0)
                    yb = prot.gather(y, rows, axis=0)
                    cb = prot.gather(c, rows, axis=0) if c is not None else None
                    v2, b2, l2_ = self._step(prot, Xb, yb, cb, q, vv, bv, with_row)
                    return [v2, b2] + ([state[2] + l2_] if cfg.reveal_loss else [])

                init = [v0, b0] + ([b0 - b0] if cfg.reveal_loss else [])
                final, graph = private_steps(prot, steps, body, init, name="batches")
                v1, b1 = final[0], final[1]
                loss = final[2] if cfg.reveal_loss else None
                info["step_graph"] = graph
            prot.assign(v, v1)
            prot.assign(b, b1)
            if loss is not None:
                return loss.reveal().to_native()
            # No output: the call returns when every party's part has run (TF's function call is
            # synchronous), and on a cluster an output would cost two more round trips (measured:
            # a call with no output 2 RTT, with a scalar output 4 RTT) and a share read 3 RTT.
            return None

        # Grappler: measured on this project's 2-core machine, it speeds a mini-batch epoch's loop up by
        # ~10% but only costs ~0.09 s at the first call of a full-batch epoch (one step, no loop).
        return tfe_function(epoch, name="secure_epoch", grappler=not full), info

    def _public_class_weights(self, owners):
        # Explicit opt-in: every owner discloses its class counts; the weights become public.
        y = np.concatenate([np.asarray(o.y).reshape(-1) for o in owners if o.y is not None])
        c = class_weights(y, "public")
        return float(c[y == 1][0]), float(c[y == 0][0])

    # -- training ---------------------------------------------------------------------------
    def fit(self, owners: Sequence, split: str = "horizontal") -> SecureResult:
        import tensorflow as tf

        cfg = self.config
        from ..data import check_owners

        check_owners(owners, split)  # gene lists, record counts, labels, both classes
        n = owners[0].n if split == "vertical" else sum(o.n for o in owners)
        d = sum(o.d for o in owners) if split == "vertical" else owners[0].d
        full = cfg.batch_size is None or cfg.batch_size >= n
        self._m = n if full else cfg.batch_size
        # The numeric envelope (public: n, the value limit): the fractional bits, then every owner's
        # own check of its values, all before anything is shared.
        self.fractional_bits = choose_fractional_bits(n, cfg.value_limit, cfg.fractional_bits,
                                                      standardize=cfg.standardize,
                                                      class_weight=cfg.class_weight)
        values = self._owner_values(owners)
        tfe, prot = self._setup(len(owners))
        self._shift = self._update_shift(prot)

        t0 = time.perf_counter()
        x_parts, y_parts = self._owner_inputs(prot, owners, values)
        del values
        pub_w = self._public_class_weights(owners) if cfg.class_weight == "public" else None
        from .._function import PartyStore

        store = PartyStore(prot, PREPROCESSED)  # named up front: one trace (see PartyStore)
        prep_fn = self._preprocess_fn(prot, n, split, pub_w, store)
        prep_fn.get_concrete_function(x_parts, y_parts)  # traces the preprocessing graph
        spec = {k: store.spec(k) if k in store else None for k in PREPROCESSED}

        v = prot.define_private_variable(np.zeros((d, 1)), name="w")
        b = prot.define_private_variable(np.zeros((1, 1)), name="b")
        self._w, self._b = v, b
        epoch_fn, info = self._epoch_fn(prot, v, b, n, full)
        reveal_fn = self._reveal_fn(prot, v, b)
        steps = 1 if full else len(batch_schedule(n, cfg.batch_size, 0, cfg.seed))
        idx_spec = None if full else tf.TensorSpec([steps, self._m], tf.int32)
        # The preprocessing graph runs (TF releases the GIL) while the epoch and reveal graphs are
        # traced from the preprocessing's output signature (Python): the two overlap.
        box = {}

        def run_preprocessing(xp, yp):
            try:
                prep_fn(xp, yp)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=run_preprocessing, args=(x_parts, y_parts),
                                  name="tfe-accel-preprocessing")
        worker.start()
        try:
            epoch_fn.get_concrete_function(spec["X"], spec["y"], spec["c"], spec["q"], idx_spec)
            reveal_fn.get_concrete_function(spec["neg_mean"])
        finally:
            worker.join()
        if "error" in box:
            raise box["error"]
        sh = {k: store.get(k) if k in store else None for k in PREPROCESSED}
        del x_parts, y_parts, spec  # the owners' encoded copies: only the shares are needed from here on
        self._shared = sh
        self._class_weights = sh["cw"]
        setup_seconds = time.perf_counter() - t0

        start_epoch = 0
        if cfg.resume:
            start_epoch = self._restore(prot, v, b, n, d, split)

        losses, epoch_times = [], []
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.epochs, initial=min(start_epoch, cfg.epochs), unit="epoch",
                       desc=f"secure training ({self.resolved_protocol})", leave=True)
        t_train = time.perf_counter()
        steps = 1
        for epoch in range(start_epoch, cfg.epochs):
            te = time.perf_counter()
            if full:
                idx = None
            else:
                batches = batch_schedule(n, cfg.batch_size, epoch, cfg.seed)
                steps = len(batches)
                idx = tf.constant(np.stack(batches).astype(np.int32))
            out = epoch_fn(sh["X"], sh["y"], sh["c"], sh["q"], idx)
            if cfg.reveal_loss:
                losses.append(float(np.asarray(out).reshape(-1)[0]) / steps)
            # else: the call has returned, so this epoch's updates are done
            dt = time.perf_counter() - te
            epoch_times.append(dt)
            if bar is not None:
                bar.set_postfix(records_per_s=f"{steps * self._m / dt:,.0f}")
                bar.update(1)
            if cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0:
                self._save(prot, v, b, epoch + 1, n, d, split)
        if bar is not None:
            bar.close()
        train_seconds = time.perf_counter() - t_train

        comm = self._epoch_communication(epoch_fn, info, steps, full, prep_fn)
        t_rev = time.perf_counter()
        weights, bias = self._reveal_model(reveal_fn, sh["neg_mean"])
        check_revealed_model(weights, bias, cfg.value_limit, self.fractional_bits, cfg.standardize)
        if cfg.scale != 1.0:  # trained on x / scale: the same model on x
            weights = weights / cfg.scale
        reveal_seconds = time.perf_counter() - t_rev
        return SecureResult(weights=weights, bias=bias, losses=losses, epoch_times=epoch_times,
                            setup_seconds=setup_seconds, train_seconds=train_seconds,
                            start_epoch=start_epoch, protocol=self.resolved_protocol,
                            n_train=n, n_features=d, communication=comm,
                            placement=prot.placement.describe() if hasattr(prot, "placement") else [],
                            placement_summary=prot.placement.summary() if hasattr(prot, "placement") else "",
                            comparison=getattr(prot, "comparison", "kogge-stone"),
                            trace_seconds={"preprocessing": prep_fn.trace_seconds,
                                           "epoch": epoch_fn.trace_seconds,
                                           "reveal": reveal_fn.trace_seconds},
                            trace_counts={"preprocessing": prep_fn.trace_count, "epoch": epoch_fn.trace_count,
                                          "reveal": reveal_fn.trace_count},
                            phase_seconds={"sharing_and_preprocessing": setup_seconds,
                                           "epochs": train_seconds, "reveal": reveal_seconds},
                            peak_rss_bytes=peak_rss_bytes(), fractional_bits=self.fractional_bits)

    def _epoch_communication(self, epoch_fn, info, steps, full, prep_fn=None):
        """Messages, bytes and rounds of one epoch, read from the traced epoch graph (and, for
        mini-batches, its loop body: one batch step); and of the sharing and preprocessing graph
        (with the bytes of its busiest directed link, what bounds it on a slow network)."""
        from ..accounting import graph_stats, party_devices

        try:
            party_devices()
        except ValueError as exc:  # players share a device: parties cannot be told apart
            return {"measured": False, "reason": str(exc)}
        stats = graph_stats(epoch_fn.concrete_functions[0] if full else info["step_graph"])
        return {
            "measured": True,
            "per_step": {"messages": stats.messages, "bytes": stats.bytes, "rounds": stats.rounds,
                         "graph_nodes": stats.nodes},
            "steps_per_epoch": steps,
            "per_epoch": {"messages": stats.messages * steps, "bytes": stats.bytes * steps,
                          "rounds": stats.rounds * steps},
            **({"preprocessing": _comm_summary(graph_stats(prep_fn.concrete_functions[0]))}
               if prep_fn is not None and prep_fn.concrete_functions else {}),
        }

    def _reveal_fn(self, prot, v, b):
        """The only reveal by default: the final model in the raw gene space (v, and
        b_raw = b - mean . v computed inside MPC), so the scaling statistics stay secret."""

        def final(neg_mean):
            fresh_op_cache()
            vv, bv = v.read_value(), b.read_value()
            if neg_mean is not None:
                bv = bv + prot.matmul(neg_mean, vv)
            return [vv.reveal().to_native(), bv.reveal().to_native()]

        return tfe_function(final, name="secure_reveal_model", grappler=False)

    @staticmethod
    def _reveal_model(reveal_fn, neg_mean):
        wv, bv = reveal_fn(neg_mean)
        weights = np.asarray(wv, dtype=np.float64).reshape(-1)
        bias = float(np.asarray(bv).reshape(-1)[0])
        return weights, bias

    def reveal_class_weights(self):
        """[n/(2 n_pos), n/(2 n_neg)] from inside MPC (for tests and debugging only: it reveals the
        class counts)."""
        if self._class_weights is None:
            raise RuntimeError("class weights are computed in MPC only with class_weight='balanced'")
        fresh_op_cache()
        return np.asarray(self._class_weights.reveal().to_native(), dtype=np.float64).reshape(-1)

    # -- checkpoints: every party writes and reads only its own shares, on its own device ---------
    def _fingerprint(self, n, d, split):
        cfg = dataclasses.asdict(self.config)
        for k in ("epochs", "checkpoint_every", "checkpoint_dir", "resume", "reveal_loss"):
            cfg.pop(k)
        # format 2: the model is trained in the raw gene space (v = inv_std * w)
        cfg.update(n=n, d=d, split=split, parametrisation="raw-space weights")
        return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16], cfg

    def _share_paths(self, epoch):
        root = self.config.checkpoint_dir
        return {(i, name, j): os.path.join(root, f"party{i}", f"epoch{epoch}", f"{name}_{j}.tfshare")
                for i in range(3) for name in ("w", "b") for j in range(2)}

    def _save(self, prot, w, b, epoch, n, d, split):
        import tensorflow as tf

        root = self.config.checkpoint_dir
        for i in range(3):
            os.makedirs(os.path.join(root, f"party{i}", f"epoch{epoch}"), exist_ok=True)
        paths = self._share_paths(epoch)
        for (i, name, j), path in paths.items():
            var = (w if name == "w" else b).unwrapped[i][j].variable
            # Runs on server i's device: in a remote deployment the file lands on party i's host.
            with tf.device(prot.servers[i].device_name):
                tf.io.write_file(path, tf.io.serialize_tensor(var.read_value()))
        # Remote eager ops are asynchronous: wait until every party has written its files before
        # recording the checkpoint as complete (a party lost in between must not leave a
        # checkpoint.json naming missing files).
        from ..cluster import barrier

        barrier()
        fp, cfg = self._fingerprint(n, d, split)
        meta = {"epoch": epoch, "fingerprint": fp, "config": cfg, "format": 1}
        tmp = os.path.join(root, "checkpoint.json.tmp")
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=1)
        prev = self._read_meta()
        os.replace(tmp, os.path.join(root, "checkpoint.json"))
        if prev and prev.get("epoch") != epoch:
            for i in range(3):
                shutil.rmtree(os.path.join(root, f"party{i}", f"epoch{prev['epoch']}"), ignore_errors=True)

    def _read_meta(self):
        path = os.path.join(self.config.checkpoint_dir, "checkpoint.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def _restore(self, prot, w, b, n, d, split) -> int:
        import tensorflow as tf

        meta = self._read_meta()
        if meta is None:
            raise FileNotFoundError(
                f"--resume: no checkpoint in {self.config.checkpoint_dir} (checkpoint.json missing)"
            )
        fp, cfg = self._fingerprint(n, d, split)
        if meta["fingerprint"] != fp:
            diff = {k: (meta["config"].get(k), v) for k, v in cfg.items() if meta["config"].get(k) != v}
            raise ValueError(f"--resume: the checkpoint was made with other settings or data: {diff}")
        epoch = int(meta["epoch"])
        for (i, name, j), path in self._share_paths(epoch).items():
            var = (w if name == "w" else b).unwrapped[i][j].variable
            with tf.device(prot.servers[i].device_name):
                var.assign(tf.io.parse_tensor(tf.io.read_file(path), out_type=var.dtype))
        return epoch
