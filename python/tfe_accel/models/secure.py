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
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from .plaintext import SIGMOIDS, STANDARDIZE_EPS, batch_schedule, class_weights

SERVERS = ("server0", "server1", "server2")


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
    fractional_bits: int = 16  # fixed-point precision of the shares (TFE's default is 16)

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
        if not 12 <= self.fractional_bits <= 24:
            raise ValueError(f"fractional bits must be in [12, 24], got {self.fractional_bits}")
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
# MPC helpers


def mul_const(prot, x, c: float, mantissa_bits: int = 20, terms: int = 2):
    """x * c for a public constant c, with relative precision ~2^-(terms * mantissa_bits) even when
    c is tiny.

    Multiplying by a fixed-point constant would round c to 2^-16 (e.g. LR/n = 1e-4 loses ~10%);
    here c = M * 2^-s with an integer M of ``mantissa_bits`` bits: an exact local product by M, then
    one truncation by s bits. The rounding of c to M * 2^-s is the same for every element, so it
    would shift e.g. every per-gene mean the same way (the raw-space bias of a standardised model
    amplifies such a common shift by the sum of the means); a second term multiplies by that
    residual, leaving a relative error ~2^-40. |x| * M must stay below 2^46 (TFE's heuristic
    truncation bound); the callers' values are far below.
    """
    c = float(c)
    if c == 0.0:
        return x - x
    s = mantissa_bits - 1 - int(math.floor(math.log2(abs(c))))
    if s <= 0:  # |c| >= 2^(mantissa_bits - 1): the ordinary fixed-point product is exact enough
        return x * c
    # TFE's heuristic truncation of a scaled value needs amount <= 62 - f (its unlift is
    # 2^(62 - f - amount)); constants below 2^-(62 - f) contribute nothing representable anyway.
    max_shift = 62 - prot.fixedpoint_config.precision_fractional
    s = min(s, max_shift)
    m = int(round(c * 2.0 ** s))
    if m == 0:
        return x - x
    y = x * prot.define_constant(np.array(float(m)), apply_scaling=False)
    y = prot.truncate(y, amount=s)
    residual = c - m * 2.0 ** -s
    if terms > 1 and abs(residual) >= 2.0 ** -max_shift:
        y = y + mul_const(prot, x, residual, mantissa_bits, terms - 1)
    return y


def fixedpoint_config(fractional_bits: int = 16):
    """TFE's fixed64_heuristic with `fractional_bits` fractional bits (16 is TFE's default).

    More fractional bits shrink the per-operation rounding noise (2^-f); the heuristic truncation
    stays exact while products of two values stay below 2^(62 - 2f) in magnitude (2^22 at f = 20),
    far above logistic regression's intermediate values on standardised data."""
    from tf_encrypted.tensor.fixed import FixedpointConfig, fixed64_heuristic

    if fractional_bits == fixed64_heuristic.precision_fractional:
        return fixed64_heuristic
    return FixedpointConfig(
        scaling_base=2, nbits=64, precision_integral=fixed64_heuristic.precision_integral,
        precision_fractional=fractional_bits, matmul_threshold=fixed64_heuristic.matmul_threshold,
        truncation_gap=fixed64_heuristic.truncation_gap, use_noninteractive_truncation=False)


def fresh_op_cache():
    """Empty TFE's global memo cache (``protocol.nodes``). It is keyed by the operation and its
    arguments (objects by id), never cleared, and shared across graphs and protocols: a stale hit
    returns a tensor of another graph or an old reveal (SPEC §7). Called at the start of every traced
    function and before every reveal."""
    from tf_encrypted.protocol import protocol as _p

    _p.nodes.clear()


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
    fused ops and accepts only ``auto`` or ``cpu``.
    """

    def __init__(self, config: TrainConfig, protocol: str = "auto", tfe_config=None, progress=False,
                 placement: str = "auto"):
        config.validate()
        from ..placement import PLACEMENTS

        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        self.placement = placement
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
        elif self.placement == "gpu":
            raise ValueError("placement 'gpu' needs the accelerated protocol (stock ABY3 has no fused ops "
                             "to place); use --protocol accelerated")
        prot = cls(fixedpoint_config=fixedpoint_config(self.config.fractional_bits), **kwargs)
        tfe.set_protocol(prot)
        return tfe, prot

    def _share_inputs(self, prot, owners, split):
        import tensorflow as tf

        xs, ys = [], []
        for k, o in enumerate(owners):
            player = f"owner{k}"
            # The owner rounds its own values to the fixed-point grid first: TFE's encoder casts
            # (truncates toward zero), which shifts every positive value by -1/2 ulp on average,
            # and the raw-space bias b - mean . w_raw amplifies such a common shift of the
            # per-gene means ~10^5-fold on BC-TCGA shapes. Rounded values encode exactly.
            scale = float(2 ** self.config.fractional_bits)
            xk = np.ascontiguousarray(np.round(np.asarray(o.x, dtype=np.float64) * scale) / scale)
            # The inputter runs on the owner's device: the plaintext never leaves it unshared.
            xs.append(prot.define_private_input(player, lambda a=xk: tf.constant(a),
                                                name_scope=f"x-owner{k}"))
            if o.y is not None:
                yk = np.asarray(o.y, dtype=np.float64).reshape(-1, 1)
                ys.append(prot.define_private_input(player, lambda a=yk: tf.constant(a),
                                                    name_scope=f"y-owner{k}"))
        if split == "horizontal":
            x = xs[0] if len(xs) == 1 else prot.concat(xs, axis=0)
            y = ys[0] if len(ys) == 1 else prot.concat(ys, axis=0)
        else:
            x = xs[0] if len(xs) == 1 else prot.concat(xs, axis=1)
            y = ys[0]
        return x, y

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
        tfe, prot = self._setup(len(owners))

        t0 = time.perf_counter()
        x, y = self._share_inputs(prot, owners, split)
        pub_w = self._public_class_weights(owners) if cfg.class_weight == "public" else None

        # Run once, eagerly: tracing inv_sqrt/reciprocal into a graph costs ~20x more than running them.
        def preprocess(x, y):
            fresh_op_cache()
            if cfg.standardize:
                mean = mul_const(prot, prot.reduce_sum(x, axis=0, keepdims=True), 1.0 / n)
                xc = x - mean
                var = mul_const(prot, prot.reduce_sum(prot.square(xc), axis=0, keepdims=True), 1.0 / n)
                inv_std = prot.inv_sqrt(var + STANDARDIZE_EPS)
                xs = xc * inv_std
            else:
                mean = inv_std = None
                xs = x
            if cfg.class_weight == "balanced":
                # n_pos / n as a sum of shares; one secure reciprocal of [n_pos/n, 1 - n_pos/n].
                frac = mul_const(prot, prot.reduce_sum(y, axis=0, keepdims=True), 1.0 / n)
                inv = prot.reciprocal(prot.concat([frac, 1.0 - frac], axis=0), nonsigned=True)
                cw = inv * 0.5  # [[n/(2 n_pos)], [n/(2 n_neg)]]
                c_pos = prot.gather(cw, [0], axis=0)
                c_neg = prot.gather(cw, [1], axis=0)
                c = c_neg + y * (c_pos - c_neg)
            elif cfg.class_weight == "public":
                c_pos, c_neg = pub_w
                c = mul_const(prot, y, c_pos - c_neg) + c_neg
                cw = None
            else:
                c = cw = None
            return [t for t in (xs, c, cw, mean, inv_std) if t is not None]

        outs = preprocess(x, y)
        it = iter(outs)
        xs = next(it)
        c = next(it) if cfg.class_weight != "none" else None
        self._class_weights = next(it) if cfg.class_weight == "balanced" else None
        mean, inv_std = (next(it), next(it)) if cfg.standardize else (None, None)
        self._shared = dict(x=xs, y=y, c=c, mean=mean, inv_std=inv_std)

        w = prot.define_private_variable(np.zeros((d, 1)), name="w")
        b = prot.define_private_variable(np.zeros((1, 1)), name="b")
        self._w, self._b = w, b
        setup_seconds = time.perf_counter() - t0

        start_epoch = 0
        if cfg.resume:
            start_epoch = self._restore(prot, w, b, n, d, split)

        full = cfg.batch_size is None or cfg.batch_size >= n
        m = n if full else cfg.batch_size
        lr, l2 = cfg.learning_rate, cfg.l2
        approx = SIGMOIDS[cfg.sigmoid]["tfe"]
        with_c = c is not None

        def _step(xb, yb, cb):
            fresh_op_cache()
            wv = w.read_value()  # SPEC §7: read inside tfe.function, never the captured snapshot
            bv = b.read_value()
            z = prot.matmul(xb, wv) + bv
            p = prot.sigmoid(z, approx_type=approx)
            diff = p - yb
            r = diff * cb if with_c else diff
            gw = mul_const(prot, prot.matmul(prot.transpose(xb), r), lr / m)
            if l2 > 0:
                gw = gw + mul_const(prot, wv, lr * l2)
            gb = mul_const(prot, prot.reduce_sum(r, axis=0, keepdims=True), lr / m)
            prot.assign(w, wv - gw)
            prot.assign(b, bv - gb)
            if cfg.reveal_loss:
                return mul_const(prot, prot.reduce_sum(r * diff, axis=0, keepdims=True), 1.0 / m)
            return None

        if full:
            @tfe.function
            def step_full(xb, yb, cb):
                return _step(xb, yb, cb)

            def run_batch(idx):
                return step_full(xs, y, c if with_c else 0)
        else:
            @tfe.function
            def step_mini(xf, yf, cf, idx):
                xb = prot.gather(xf, idx, axis=0)
                yb = prot.gather(yf, idx, axis=0)
                cb = prot.gather(cf, idx, axis=0) if with_c else None
                return _step(xb, yb, cb)

            def run_batch(idx):
                return step_mini(xs, y, c if with_c else 0, tf.constant(idx, dtype=tf.int32))

        losses, epoch_times = [], []
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.epochs, initial=min(start_epoch, cfg.epochs), unit="epoch",
                       desc=f"secure training ({self.resolved_protocol})", leave=True)
        t_train = time.perf_counter()
        for epoch in range(start_epoch, cfg.epochs):
            te = time.perf_counter()
            batches = batch_schedule(n, None if full else cfg.batch_size, epoch, cfg.seed)
            epoch_loss = 0.0
            for idx in batches:
                out = run_batch(idx)
                if cfg.reveal_loss:
                    fresh_op_cache()
                    epoch_loss += float(np.asarray(out.reveal().to_native()).reshape(-1)[0])
            if not cfg.reveal_loss:
                # Wait for this epoch's updates (no reveal: a local read on server0's device).
                _ = w.unwrapped[0][0].variable.read_value().numpy()
            else:
                losses.append(epoch_loss / len(batches))
            dt = time.perf_counter() - te
            epoch_times.append(dt)
            if bar is not None:
                bar.set_postfix(records_per_s=f"{len(batches) * m / dt:,.0f}")
                bar.update(1)
            if cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0:
                self._save(prot, w, b, epoch + 1, n, d, split)
        if bar is not None:
            bar.close()
        train_seconds = time.perf_counter() - t_train

        comm = self._epoch_communication(
            lambda: _step(xs, y, c) if full else _step(
                prot.gather(xs, list(range(m)), axis=0), prot.gather(y, list(range(m)), axis=0),
                prot.gather(c, list(range(m)), axis=0) if with_c else None),
            len(batch_schedule(n, None if full else cfg.batch_size, 0, cfg.seed)))
        weights, bias = self._reveal_model(prot, w, b, mean, inv_std)
        return SecureResult(weights=weights, bias=bias, losses=losses, epoch_times=epoch_times,
                            setup_seconds=setup_seconds, train_seconds=train_seconds,
                            start_epoch=start_epoch, protocol=self.resolved_protocol,
                            n_train=n, n_features=d, communication=comm,
                            placement=prot.placement.describe() if hasattr(prot, "placement") else [],
                            placement_summary=prot.placement.summary() if hasattr(prot, "placement") else "")

    @staticmethod
    def _epoch_communication(step_body, batches_per_epoch):
        """Messages, bytes and rounds of one epoch, read from a traced training step."""
        from ..accounting import communication

        try:
            stats = communication(step_body)
        except ValueError as exc:  # players share a device: parties cannot be told apart
            return {"measured": False, "reason": str(exc)}
        return {
            "measured": True,
            "per_step": {"messages": stats.messages, "bytes": stats.bytes, "rounds": stats.rounds,
                         "graph_nodes": stats.nodes},
            "steps_per_epoch": batches_per_epoch,
            "per_epoch": {"messages": stats.messages * batches_per_epoch,
                          "bytes": stats.bytes * batches_per_epoch,
                          "rounds": stats.rounds * batches_per_epoch},
        }

    def _reveal_model(self, prot, w, b, mean, inv_std):
        """The only reveal by default: the final model, mapped to the raw gene space inside MPC
        (w_raw = w / std, b_raw = b - sum(w_raw * mean)) so the scaling statistics stay secret."""
        import tf_encrypted as tfe

        @tfe.function
        def final(mean, inv_std):
            fresh_op_cache()
            wv, bv = w.read_value(), b.read_value()
            if mean is None:
                return [wv, bv]
            w_raw = wv * prot.transpose(inv_std)
            b_raw = bv - prot.matmul(mean, w_raw)
            return [w_raw, b_raw]

        if mean is None:
            wv, bv = w.read_value(), b.read_value()
        else:
            wv, bv = final(mean, inv_std)
        fresh_op_cache()
        weights = np.asarray(wv.reveal().to_native(), dtype=np.float64).reshape(-1)
        bias = float(np.asarray(bv.reveal().to_native()).reshape(-1)[0])
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
        cfg.update(n=n, d=d, split=split)
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
