"""Compiled TF Encrypted functions on a fast path: no AutoGraph, flat inputs, flat calls.

``tfe_accel.function`` is a drop-in for ``tfe.function``. Stock ``tfe.function`` wraps a
``tf.function`` with AutoGraph on, so tracing transpiles every line of TF Encrypted's Python (the
protocol, its tensors, the memoiser) before running it, and every call hands TF a nested structure of
``ABY3TensorBone`` extension types that it validates and flattens again, then re-wraps the outputs
with one eager ``tf.identity`` per share. Here:

- **No AutoGraph.** TF Encrypted is plain Python that emits graph ops; explicit ``tf.cond`` /
  ``tf.while_loop`` / ``prot.while_loop`` work as before. Python control flow on *Python* values
  (``for i in range(3)``, ``if training:``) is evaluated while tracing, exactly as under AutoGraph.
  What changes: Python control flow on a *tensor* (``if tf.reduce_sum(t) > 0:``), which AutoGraph
  would turn into ``tf.cond``, is refused by TensorFlow while tracing
  (``OperatorNotAllowedInGraphError``). Then the function is traced again with AutoGraph on, and
  that is logged once as a WARNING naming the function; pass ``autograph=True`` to ask for it
  (and silence the warning), or write ``tf.cond``.
- **Flat inputs.** Each call flattens its arguments once into the plain ``tf.Tensor`` list the graph
  takes (six shares per private tensor, three values per public tensor, tensors, NumPy arrays) plus
  a hashable signature (types, shapes, dtypes, share types, Python values). A new signature traces a
  new graph; a known one calls the traced graph directly with the flat list.
- **Flat calls.** The traced graph is called through TF's own function call on the flat list
  (``tfe_accel._function.CALL_PATH`` says which entry point this TF offers; see ``_select_caller``),
  and outputs are wrapped into TFE tensors without copies when they already sit on the right party's
  device.
- **TFE's memo cache** (``tf_encrypted.protocol.protocol.nodes``) is emptied at the start of every trace
  and restored afterwards, so a trace never reuses a tensor of an earlier graph or eager run.

Semantics are stock ``tfe.function``'s: a TFE tensor argument enters the graph by value (for a
private *variable* that is its value when it was created, as in stock TFE: read variables with
``.read_value()`` inside), Python values are part of the signature, ``tf.Variable`` arguments are
captured by reference, outputs come back as TFE tensors / tensors / Python values in the same
structure. Called while another function is being traced (e.g. from inside a ``tf.while_loop`` body),
the function is inlined into that trace.

``import tfe_accel`` also makes ``tfe.function`` itself (and so TFE's Keras ``fit``/``predict``/
``evaluate`` steps) take this path whenever the active protocol is an
:class:`~tfe_accel.protocol.AcceleratedABY3` (``fast_function=True``, the default); with any other
protocol ``tfe.function`` is stock. Opt out with ``AcceleratedABY3(fast_function=False)``,
:func:`use_fast_tfe_function(False) <use_fast_tfe_function>` or ``TFE_ACCEL_FAST_FUNCTION=0``.
"""
from __future__ import annotations

import functools
import gc
import logging
import os
import time
import weakref
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf

logger = logging.getLogger("tfe_accel")

_ENV = "TFE_ACCEL_FAST_FUNCTION"
_fast_tfe_function = os.environ.get(_ENV, "1").strip().lower() not in ("0", "false", "no", "off")

# ---------------------------------------------------------------------------------------------
# Calling a ConcreteFunction with a flat list of tensors


def _fn_signature(fn):
    """The OpDef signature of a ConcreteFunction's inference function: ``fn.signature`` on TF
    2.12-2.13 (``_EagerDefinedFunction``), ``fn.cached_definition.signature`` on TF >= 2.14
    (``AtomicFunction``)."""
    sig = getattr(fn, "signature", None)
    return sig if sig is not None else fn.cached_definition.signature


def _disabled_rewriter_config():
    """TF's serialized ConfigProto with the function-level rewriters off (what a function call passes
    when the context has none): in ``eager.polymorphic_function.function_utils`` until TF 2.15, in
    ``util.function_utils`` after."""
    try:
        from tensorflow.python.eager.polymorphic_function import function_utils
    except ImportError:
        from tensorflow.python.util import function_utils
    return function_utils.get_disabled_rewriter_config()


def _caller_inference(concrete):
    """The ConcreteFunction's inference function called directly with the flat list (no structured
    argument checks, no tape bookkeeping: ring tensors are int64 and never differentiated):
    ``call(ctx, args)`` on TF 2.12-2.13, ``AtomicFunction.call_flat(*args)`` on TF >= 2.14."""
    from tensorflow.python.eager import context

    fn = concrete._inference_function  # noqa: SLF001  (guarded by _select_caller)
    captured = list(concrete.captured_inputs)
    if callable(getattr(fn, "call", None)):
        ctx = context.context()
        call = fn.call

        def run(flat):
            return call(ctx, flat + captured)
    else:
        call_flat = fn.call_flat

        def run(flat):
            return call_flat(*flat, *captured) or None

    return run


def _caller_execute(concrete):
    """TF's eager ``execute`` of the inference function's op, with the per-call options TF's own
    function call would pass (executor type, config proto), minus its bookkeeping: the handle-data
    copy it does for resource/variant outputs (this caller is not used when the function returns
    any) and the argument-count check (the flat list is built from the traced signature)."""
    from tensorflow.python.eager import context, execute

    fn = concrete._inference_function  # noqa: SLF001  (guarded by _select_caller)
    signature = _fn_signature(fn)
    op_name = str(signature.name)
    num_outputs = len(signature.output_arg)
    captured = list(concrete.captured_inputs)
    ctx = context.context()
    disabled = None

    def run(flat):
        nonlocal disabled
        opts = ctx.function_call_options
        config = opts.config_proto_serialized
        if config is None:
            if disabled is None:
                disabled = _disabled_rewriter_config()
            config = disabled
        attrs = ("executor_type", opts.executor_type or "", "config_proto", config)
        return execute.execute(op_name, num_outputs=num_outputs, inputs=flat + captured, attrs=attrs,
                               ctx=ctx) or None

    return run


def _caller_call_flat(concrete):
    """TF's ``ConcreteFunction._call_flat(args, captured_inputs)`` (TF 2.x internal)."""
    captured = list(concrete.captured_inputs)
    call = concrete._call_flat  # noqa: SLF001  (guarded by _select_caller)

    def run(flat):
        return call(flat, captured)

    return run


def _caller_public(concrete):
    """The public ``ConcreteFunction.__call__`` with the flat tensors (slowest, always there)."""

    def run(flat):
        return concrete(*flat)

    return run


_CALLERS = {"execute": _caller_execute, "inference": _caller_inference, "call_flat": _caller_call_flat,
            "public": _caller_public}


def _without_grappler(run):
    """``run`` with TF's graph optimiser (Grappler) off for this function's instantiation.

    Grappler rewrites a function graph when it is first instantiated; on the several-thousand-node
    graphs of a one-shot computation (the trainer's preprocessing) that costs more than running them.
    Done through the per-call ``FunctionCallOptions`` (config_proto attribute of the call), so other
    functions keep the process-wide setting. Where this TF lacks them, Grappler stays on (logged)."""
    try:
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.eager import context

        ctx = context.context()
        base = ctx.function_call_options
        cfg = config_pb2.ConfigProto()
        if base.config_proto_serialized:
            cfg.ParseFromString(base.config_proto_serialized)
        cfg.graph_options.rewrite_options.disable_meta_optimizer = True
        options = context.FunctionCallOptions(executor_type=base.executor_type, config_proto=cfg)
    except Exception as exc:  # noqa: BLE001 - any missing internal: keep Grappler, say so
        logger.info("tfe_accel.function: cannot switch Grappler off for one function on TF %s (%s); "
                    "it stays on", tf.__version__, exc)
        return run

    def wrapped(flat):
        saved = ctx.function_call_options
        ctx.function_call_options = options
        try:
            return run(flat)
        finally:
            ctx.function_call_options = saved

    return wrapped


CALL_PATH: Optional[str] = None  # the entry point chosen on first use (``_select_caller``)


def _execute_ok(concrete) -> bool:
    fn = getattr(concrete, "_inference_function", None)
    try:
        from tensorflow.python.eager import execute  # noqa: F401

        _disabled_rewriter_config()
        return bool(str(_fn_signature(fn).name)) and all(
            o.dtype not in (tf.resource, tf.variant) for o in concrete.outputs)
    except (AttributeError, ImportError):
        return False


def _inference_ok(concrete) -> bool:
    fn = getattr(concrete, "_inference_function", None)
    return (fn is not None and hasattr(concrete, "captured_inputs")
            and (callable(getattr(fn, "call", None)) or callable(getattr(fn, "call_flat", None))))


_AVAILABLE = {"execute": _execute_ok, "inference": _inference_ok,
              "call_flat": lambda c: callable(getattr(c, "_call_flat", None)), "public": callable}


def available_callers(concrete) -> List[str]:
    """The entry points this TF offers for ``concrete``, fastest first."""
    return [name for name in _CALLERS if _AVAILABLE[name](concrete)]


def _select_caller(concrete) -> str:
    """The fastest entry point this TF offers for ``concrete``.

    Feature-detected, never by version string alone: TF's eager ``execute`` of the inference
    function's op (not for functions returning resources or variants), else the inference
    function's flat call, else ``_call_flat(args, captured)``, else the public call. The process-wide choice (``CALL_PATH``) is logged once (a WARNING for the public fallback).
    ``TFE_ACCEL_FUNCTION_CALLER=execute|inference|call_flat|public`` forces one (tests); one this TF
    does not offer is a ValueError naming those it does."""
    global CALL_PATH
    if CALL_PATH is None:
        forced = os.environ.get("TFE_ACCEL_FUNCTION_CALLER")
        if forced:
            if forced not in _CALLERS:
                raise ValueError(f"TFE_ACCEL_FUNCTION_CALLER must be one of {sorted(_CALLERS)}, got {forced!r}")
            if not _AVAILABLE[forced](concrete):
                raise ValueError(f"TFE_ACCEL_FUNCTION_CALLER={forced}: TensorFlow {tf.__version__} does not "
                                 f"offer that entry point (available here: {available_callers(concrete)})")
            CALL_PATH = forced
        elif _inference_ok(concrete):
            CALL_PATH = "execute" if _execute_ok(concrete) else "inference"
        elif _AVAILABLE["call_flat"](concrete):
            CALL_PATH = "call_flat"
        else:
            CALL_PATH = "public"
        log = logger.warning if CALL_PATH == "public" else logger.debug
        log("tfe_accel.function: calling traced graphs through %s (TensorFlow %s)%s", CALL_PATH,
            tf.__version__,
            "; this TF lacks the flat call entry points, calls are slower" if CALL_PATH == "public" else "")
    if CALL_PATH == "execute" and not _execute_ok(concrete):
        return "inference"  # this function returns a resource or variant: TF's call copies handle data
    return CALL_PATH


# ---------------------------------------------------------------------------------------------
# Flattening arguments and outputs

_PRIV, _PUB, _TENSOR, _NDARRAY, _VAR, _PY, _OBJ, _LIST, _TUPLE, _DICT, _NONE = range(11)


_CLASSES = None


def _tfe_classes():
    """(ABY3PrivateTensor, ABY3PublicTensor), imported once (TF Encrypted loads after this module)."""
    global _CLASSES
    if _CLASSES is None:
        from tf_encrypted.protocol.aby3.aby3_tensors import ABY3PrivateTensor, ABY3PublicTensor

        _CLASSES = (ABY3PrivateTensor, ABY3PublicTensor)
    return _CLASSES


def on_parties(prot, tensors, factory, is_scaled, share_type):
    """A TFE tensor from graph tensors that carry no device (placeholders, loop variables): six shares
    party by party ([x00, x01, x10, x11, x20, x21]) make a private tensor, three values a public one;
    each enters its party's device through an Identity there (as stock's ``from_bone`` does)."""
    priv, pub = _tfe_classes()
    placed = []
    for k, t in enumerate(tensors):
        with tf.device(prot.servers[k * 3 // len(tensors)].device_name):
            placed.append(factory.tensor(tf.identity(t), encode=False))
    if len(tensors) == 6:
        return priv(prot, [placed[0:2], placed[2:4], placed[4:6]], is_scaled, share_type)
    return pub(prot, placed, is_scaled)


class _Flattener:
    """Turns a call's (args, kwargs) into (flat tensors, hashable signature, objects to keep).

    A TFE tensor's shares never change after construction (a private variable's ``.value`` is its
    creation snapshot too), so its signature and tensors are computed once per object and kept in a
    small cache keyed by ``id`` (checked against a weak reference, so a recycled id never hits)."""

    def __init__(self):
        self._priv, self._pub = _tfe_classes()
        self._leaves: Dict[int, tuple] = {}

    def _leaf(self, value):
        hit = self._leaves.get(id(value))
        if hit is not None and hit[0]() is value:
            return hit[1], hit[2]
        if isinstance(value, self._priv):
            s0, s1, s2 = value.shares
            a = s0[0].value
            tensors = (a, s0[1].value, s1[0].value, s1[1].value, s2[0].value, s2[1].value)
            sig = (_PRIV, value.is_scaled, value.share_type, s0[0].factory, tuple(a.shape.as_list()), a.dtype)
        else:
            v0, v1, v2 = value.values
            a = v0.value
            tensors = (a, v1.value, v2.value)
            sig = (_PUB, value.is_scaled, v0.factory, tuple(a.shape.as_list()), a.dtype)
        if len(self._leaves) > 4096:  # bound the cache: forget everything, it refills as needed
            self._leaves.clear()
        try:
            self._leaves[id(value)] = (weakref.ref(value), sig, tensors)
        except TypeError:  # not weak-referenceable: no caching
            pass
        return sig, tensors

    def __call__(self, value, flat: list, keep: list):
        if isinstance(value, (self._priv, self._pub)):
            sig, tensors = self._leaf(value)
            flat += tensors
            return sig
        if isinstance(value, (tf.Tensor, tf.TensorSpec)):  # a spec: tracing ahead (output_specs)
            flat.append(value)
            return (_TENSOR, tuple(value.shape.as_list()), value.dtype)
        if isinstance(value, (list, tuple)):
            kind = _LIST if isinstance(value, list) else _TUPLE
            if kind == _TUPLE and hasattr(value, "_fields"):  # namedtuple: an opaque Python object
                keep.append(value)
                return (_OBJ, id(value))
            return (kind, tuple(self(v, flat, keep) for v in value))
        if isinstance(value, dict):
            items = sorted(value.items(), key=lambda kv: repr(kv[0]))
            return (_DICT, tuple((k, self(v, flat, keep)) for k, v in items))
        if value is None:
            return (_NONE,)
        if isinstance(value, tf.Variable):
            keep.append(value)
            return (_VAR, id(value))
        if isinstance(value, np.ndarray):
            t = tf.convert_to_tensor(value)
            flat.append(t)
            return (_NDARRAY, tuple(t.shape.as_list()), t.dtype)
        if isinstance(value, (bool, int, float, str, bytes, complex)):
            return (_PY, type(value), value)
        try:
            hash(value)
        except TypeError:
            keep.append(value)
            return (_OBJ, id(value))
        return (_PY, type(value), value)


def _rebuild(sig, flat_in: list, pos: List[int], prot, objects: Dict[int, Any]):
    """Inside the trace: the argument described by ``sig`` with placeholders from ``flat_in``."""
    kind = sig[0]
    if kind in (_PRIV, _PUB):
        width = 6 if kind == _PRIV else 3
        p = pos[0]
        pos[0] += width
        if kind == _PRIV:
            _, is_scaled, share_type, factory, _shape, _dtype = sig
        else:
            _, is_scaled, factory, _shape, _dtype = sig
            share_type = None
        return on_parties(prot, flat_in[p:p + width], factory, is_scaled, share_type)
    if kind in (_TENSOR, _NDARRAY):
        t = flat_in[pos[0]]
        pos[0] += 1
        return t
    if kind == _LIST:
        return [_rebuild(s, flat_in, pos, prot, objects) for s in sig[1]]
    if kind == _TUPLE:
        return tuple(_rebuild(s, flat_in, pos, prot, objects) for s in sig[1])
    if kind == _DICT:
        return {k: _rebuild(s, flat_in, pos, prot, objects) for k, s in sig[1]}
    if kind == _NONE:
        return None
    if kind in (_VAR, _OBJ):
        return objects[sig[1]]
    return sig[2]  # _PY


def _flatten_outputs(value, flat: list):
    """Inside the trace: (output signature, graph tensors appended to ``flat``)."""
    priv, pub = _tfe_classes()
    if isinstance(value, priv):
        s = value.shares
        flat += [s[i][j].value for i in range(3) for j in range(2)]
        return (_PRIV, value.is_scaled, value.share_type, s[0][0].factory)
    if isinstance(value, pub):
        flat += [v.value for v in value.values]
        return (_PUB, value.is_scaled, value.values[0].factory)
    if isinstance(value, (tf.Tensor, tf.Variable)):
        flat.append(tf.convert_to_tensor(value))
        return (_TENSOR,)
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return (_LIST if isinstance(value, list) else _TUPLE,
                tuple(_flatten_outputs(v, flat) for v in value))
    if isinstance(value, dict):
        return (_DICT, tuple((k, _flatten_outputs(v, flat)) for k, v in value.items()))
    if isinstance(value, np.ndarray):
        flat.append(tf.constant(value))
        return (_TENSOR,)
    return (_PY, value)  # None and other Python values come back as they are


def _on_device(t, device: str, cache: dict):
    """``t`` placed on ``device`` (an eager tensor elsewhere is copied there, as stock's from_bone)."""
    dev = t.device
    ok = cache.get((dev, device))
    if ok is None:
        ok = cache[(dev, device)] = tf.DeviceSpec.from_string(dev or "") == tf.DeviceSpec.from_string(device)
    if ok:
        return t
    with tf.device(device):
        return tf.identity(t)


_TENSOR_ATTRS = {"prot", "is_scaled", "share_type", "shares"}


def _direct_private(prot, values, is_scaled, share_type, factory):
    """A private TFE tensor from six share tensors (or specs) already on their parties' devices,
    built without TFE's constructor checks (the attributes it would set: ``_TENSOR_ATTRS``)."""
    priv, _ = _tfe_classes()
    t = factory.tensor
    obj = priv.__new__(priv)
    obj.prot, obj.is_scaled, obj.share_type = prot, is_scaled, share_type
    obj.shares = [[t(values[0], encode=False), t(values[1], encode=False)],
                  [t(values[2], encode=False), t(values[3], encode=False)],
                  [t(values[4], encode=False), t(values[5], encode=False)]]
    return obj


class _Wrapper:
    """Builds a call's outputs (TFE tensors, tensors, Python values) from its flat results.

    The first call of a traced signature builds private tensors with TFE's constructor, which checks
    every share's shape and device (and copies a share that is not on its party's device). When that
    found everything in place, later calls build them directly: the shapes and devices of a traced
    graph's outputs do not change between calls."""

    def __init__(self, sig, prot):
        self.sig, self.prot = sig, prot
        self.devcache = {}
        self.checked = False

    def specs(self, specs):
        """The output structure with ``tf.TensorSpec`` shares (stand-ins for tracing ahead)."""
        return self._build(self.sig, specs, [0], True)

    def __call__(self, outs):
        if self.checked:
            return self._build(self.sig, outs, [0], True)
        out = self._build(self.sig, outs, [0], False)
        self.checked = all(self.devcache.values()) and self._plain(out)
        return out

    @staticmethod
    def _plain(out) -> bool:
        """Whether TFE's private tensors carry exactly the attributes the direct build sets."""
        priv, _ = _tfe_classes()
        return all(set(vars(v)) == _TENSOR_ATTRS for v in _private_leaves(out) if type(v) is priv)

    def _build(self, sig, outs, pos, fast):
        kind = sig[0]
        prot = self.prot
        if kind == _PRIV:
            _, is_scaled, share_type, factory = sig
            p = pos[0]
            pos[0] += 6
            priv, _ = _tfe_classes()
            if fast:
                return _direct_private(prot, outs[p:p + 6], is_scaled, share_type, factory)
            shares = [[factory.tensor(_on_device(outs[p + 2 * i + j], prot.servers[i].device_name, self.devcache),
                                      encode=False) for j in range(2)] for i in range(3)]
            return priv(prot, shares, is_scaled, share_type)
        if kind == _PUB:
            _, is_scaled, factory = sig
            p = pos[0]
            pos[0] += 3
            _, pub = _tfe_classes()
            if fast and isinstance(outs[p], tf.TensorSpec):
                obj = pub.__new__(pub)
                obj.prot, obj.is_scaled, obj.share_type = prot, is_scaled, "PUBLIC"
                obj.values = [factory.tensor(outs[p + i], encode=False) for i in range(3)]
                return obj
            values = [factory.tensor(_on_device(outs[p + i], prot.servers[i].device_name, self.devcache),
                                     encode=False) for i in range(3)]
            return pub(prot, values, is_scaled)
        if kind == _TENSOR:
            t = outs[pos[0]]
            pos[0] += 1
            return t
        if kind == _LIST:
            return [self._build(s, outs, pos, fast) for s in sig[1]]
        if kind == _TUPLE:
            return tuple(self._build(s, outs, pos, fast) for s in sig[1])
        if kind == _DICT:
            return {k: self._build(s, outs, pos, fast) for k, s in sig[1]}
        return sig[1]


def _is_remote(device: str) -> bool:
    job = tf.DeviceSpec.from_string(device or "").job
    return job not in (None, "localhost")


def _private_leaves(value):
    """The private TFE tensors in a nested structure of lists, tuples and dicts."""
    priv, _ = _tfe_classes()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, priv):
            yield v


def _remote_private_outputs(result) -> int:
    """How many private tensors in a traced function's result have shares on another process's
    device (a cluster's party)."""
    return sum(any(_is_remote(v.shares[i][j].value.device) for i in range(3) for j in range(2))
               for v in _private_leaves(result))


class PartyStore:
    """Private tensors kept on their parties' devices between compiled calls.

    TensorFlow returns a compiled function's outputs to its caller. On a cluster
    (``tfe_accel.cluster.connect``) every output share is therefore sent from its party to the
    driver's process, even when its handle keeps naming the party's device: it costs the share's
    bytes on each party->driver link (the trainer's preprocessing returned 400 MB of shares: ~20 s
    at 100 Mbit/s), and the driver then holds all six shares, so it could reconstruct the value.
    Inside a traced function, ``store.put(name, x)`` instead assigns each share of ``x`` to a
    variable on its own party's device (created on first use, outside the graph; no copy in the
    graph, no output); outside, ``store.get(name)`` returns the private tensor read there (a local
    read on each party: nothing crosses a link) and ``store.spec(name)`` a stand-in to trace another
    function with ahead of time (see :meth:`Function.output_specs`).

    Each ``put`` overwrites the name's previous value: ``get`` it after the call that put it (the
    tensors ``get`` returned before keep their own snapshot).

    Name the slots when creating the store (``PartyStore(prot, names)``): a slot first used inside
    a trace creates its variables there, and ``tf.function`` then traces the function a second time
    (it re-traces whenever a trace created variables)."""

    def __init__(self, prot, names=()):
        self.prot = prot
        self._vars: Dict[str, list] = {}
        self._meta: Dict[str, tuple] = {}  # name -> (share shapes, is_scaled, share_type), once put
        for name in names:
            self._create(name, prot.default_factory.native_type)

    def _create(self, name: str, dtype) -> list:
        # Eagerly on the parties (tf.init_scope leaves a trace); the shape is left open, so no
        # placeholder value of the full size is ever allocated.
        with tf.init_scope():
            slots = []
            for k in range(6):
                with tf.device(self.prot.servers[k // 2].device_name):
                    slots.append(tf.Variable(tf.zeros([], dtype), shape=tf.TensorShape(None),
                                             trainable=False, name=f"{name}_{k // 2}{k % 2}"))
        self._vars[name] = slots
        return slots

    def put(self, name: str, x) -> None:
        shares = [x.shares[i][j].value for i in range(3) for j in range(2)]
        slots = self._vars.get(name) or self._create(name, shares[0].dtype)
        self._meta[name] = ([t.shape for t in shares], x.is_scaled, x.share_type)
        for k, (v, t) in enumerate(zip(slots, shares)):
            with tf.device(self.prot.servers[k // 2].device_name):
                v.assign(t, read_value=False)

    def __contains__(self, name: str) -> bool:
        """Whether a traced function put ``name`` (a slot created but never put does not count)."""
        return name in self._meta

    def _private(self, name: str, values):
        _, is_scaled, share_type = self._meta[name]
        return _direct_private(self.prot, values, is_scaled, share_type, self.prot.default_factory)

    def get(self, name: str):
        """The private tensor last put under ``name``, read on each party's own device."""
        shapes = self._meta[name][0]
        values = []
        for k, (v, shape) in enumerate(zip(self._vars[name], shapes)):
            with tf.device(self.prot.servers[k // 2].device_name):
                t = v.read_value()
            if tf.inside_function():
                t.set_shape(shape)
            values.append(t)
        return self._private(name, values)

    def spec(self, name: str):
        """A stand-in for ``get(name)`` whose shares are ``tf.TensorSpec``s (for tracing ahead)."""
        shapes = self._meta[name][0]
        return self._private(name, [tf.TensorSpec(s, v.dtype) for v, s in zip(self._vars[name], shapes)])


# ---------------------------------------------------------------------------------------------
# The function


class _Trace:
    """One traced signature: the ConcreteFunction, how to call it and how to wrap its outputs."""

    __slots__ = ("concrete", "run", "out_sig", "n_out", "prot", "keep", "wrap", "autograph")

    def __call__(self, flat):
        outs = self.run(flat)
        if self.n_out == 0:
            outs = ()
        elif not isinstance(outs, (list, tuple)):
            outs = (outs,)
        return self.wrap(outs)


class Function:
    """A TFE computation compiled on tfe-accel's fast path (see the module docstring).

    ``fn(*args, **kwargs)`` runs it; ``fn.get_concrete_function(*args, **kwargs)`` returns the traced
    ``tf.types.experimental.ConcreteFunction`` for those arguments (tracing if needed);
    ``fn.trace_count`` counts traces, ``fn.trace_seconds`` their wall time; ``fn.python_function`` is
    the undecorated function.
    """

    def __init__(self, func: Callable, autograph: bool = False, name: Optional[str] = None,
                 grappler: bool = True):
        if not callable(func):
            raise TypeError(f"tfe_accel.function needs a callable, got {type(func).__name__}")
        self.python_function = func
        self.autograph = bool(autograph)
        self.grappler = bool(grappler)
        self._name = name or getattr(func, "__name__", "tfe_function")
        self._cache: Dict[Any, _Trace] = {}
        self._flatten = None
        self._warned_autograph = False
        self._warned_outputs = False
        self.trace_count = 0
        self.trace_seconds = 0.0  # wall time spent tracing, all signatures together
        functools.update_wrapper(self, func)

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        bound = self.__dict__.setdefault("_bound", weakref.WeakKeyDictionary())
        try:
            fn = bound.get(obj)
        except TypeError:  # unhashable / not weak-referenceable instances: bind afresh each time
            return functools.partial(self.__call__, obj)
        if fn is None:
            fn = functools.partial(self.__call__, obj)
            bound[obj] = fn
        return fn

    # -- calling --------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        import tf_encrypted as tfe

        if tfe.get_config().debug or tf.inside_function():
            # TFE's debug mode runs eagerly; inside another trace the body is inlined there.
            return self.python_function(*args, **kwargs)
        flat: list = []
        return self._entry(args, kwargs, flat)(flat)

    def get_concrete_function(self, *args, **kwargs):
        """The traced graph for these arguments (tracing it if needed). TFE tensors and tensors may be
        stand-ins holding ``tf.TensorSpec``s (see :meth:`output_specs`)."""
        return self._entry(args, kwargs).concrete

    def output_specs(self, *args, **kwargs):
        """The outputs this function returns for these arguments (tracing it if needed), as stand-ins
        whose shares are ``tf.TensorSpec``s: pass them to another ``tfe_accel.function``'s
        ``get_concrete_function`` to trace it before this one has run (e.g. while it runs)."""
        entry = self._entry(args, kwargs)
        outs = [tf.TensorSpec(t.shape, t.dtype) for t in entry.concrete.outputs]
        return _Wrapper(entry.out_sig, entry.prot).specs(outs)

    def _entry(self, args, kwargs, flat=None) -> "_Trace":
        """The trace for this call's signature (traced now if new); ``flat`` receives the inputs."""
        import tf_encrypted as tfe

        prot = tfe.get_protocol()
        flat = [] if flat is None else flat
        keep: list = []
        if self._flatten is None:
            self._flatten = _Flattener()
        sig = (id(prot), self._flatten(args, flat, keep), self._flatten(kwargs, flat, keep))
        return self._cache.get(sig) or self._trace(sig, prot, keep, args, kwargs, flat)

    @property
    def concrete_functions(self) -> list:
        return [e.concrete for e in self._cache.values()]

    # -- tracing --------------------------------------------------------------------------------
    def _trace(self, sig, prot, keep, args, kwargs, flat) -> _Trace:
        from tf_encrypted.protocol import protocol as tfe_protocol

        if not hasattr(prot, "servers") or len(getattr(prot, "servers", ())) != 3:
            raise TypeError(f"tfe_accel.function supports ABY3 protocols; the active protocol is "
                            f"{type(prot).__name__}")
        objects = {id(o): o for o in keep}
        _, args_sig, kwargs_sig = sig
        out_box = {}

        def graph_fn(*flat_in):
            saved = dict(tfe_protocol.nodes)
            tfe_protocol.nodes.clear()
            try:
                pos = [0]
                a = _rebuild(args_sig, list(flat_in), pos, prot, objects)
                k = _rebuild(kwargs_sig, list(flat_in), pos, prot, objects)
                result = self.python_function(*a, **k)
                outs: list = []
                out_box["sig"] = _flatten_outputs(result, outs)
                out_box["remote_private"] = _remote_private_outputs(result)
                return outs
            finally:
                tfe_protocol.nodes.clear()
                tfe_protocol.nodes.update(saved)

        graph_fn.__name__ = f"tfe_accel_{self._name}"
        specs = [tf.TensorSpec(t.shape, t.dtype) for t in flat]
        autograph = self.autograph
        t0 = time.perf_counter()
        # Tracing allocates hundreds of thousands of short-lived Python objects; the cyclic GC would
        # walk every live object (TF's and TFE's modules included) many times over (~10% of a trace).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            concrete = tf.function(graph_fn, autograph=autograph).get_concrete_function(*specs)
        except tf.errors.OperatorNotAllowedInGraphError as exc:
            if autograph:
                raise
            if not self._warned_autograph:
                self._warned_autograph = True
                logger.warning(
                    "tfe_accel.function: %s uses Python control flow on a tensor (%s); tracing it "
                    "with AutoGraph instead (slower to trace). Pass autograph=True to ask for that, "
                    "or use tf.cond / tf.while_loop.", self._name, str(exc).split("\n")[0])
            autograph = True
            concrete = tf.function(graph_fn, autograph=True).get_concrete_function(*specs)
        finally:
            if gc_was_enabled:
                gc.enable()
        self.trace_count += 1
        self.trace_seconds += time.perf_counter() - t0
        if out_box["remote_private"] and not self._warned_outputs:
            self._warned_outputs = True
            logger.warning(
                "tfe_accel.function: %s returns %d private tensor(s) whose shares live on cluster "
                "parties. TensorFlow sends a compiled function's outputs to the calling process, so "
                "every share crosses to this driver (its bytes on each party->driver link) and this "
                "process then holds all six shares. Keep results on the parties with "
                "tfe_accel.PartyStore (put inside the function, get outside) unless this process "
                "is meant to see them.", self._name, out_box["remote_private"])
        entry = _Trace()
        entry.concrete = concrete
        entry.run = _CALLERS[_select_caller(concrete)](concrete)
        if not self.grappler:
            entry.run = _without_grappler(entry.run)
        entry.out_sig = out_box["sig"]
        entry.n_out = len(concrete.outputs)
        entry.prot = prot
        entry.keep = keep  # objects keyed by id in the signature stay alive with the entry
        entry.wrap = _Wrapper(entry.out_sig, prot)
        entry.autograph = autograph
        self._cache[sig] = entry
        return entry

    def __repr__(self):
        return f"tfe_accel.function({self._name}, traces={self.trace_count})"


def function(func: Optional[Callable] = None, *, autograph: bool = False, name: Optional[str] = None,
             grappler: bool = True):
    """Compile a TFE computation on the fast path; usable as ``@function`` or ``@function(autograph=True)``.

    :param autograph: trace with AutoGraph (TF's Python-to-graph transpiler), as stock ``tfe.function``
        does: only needed for Python control flow on tensors (module docstring).
    :param grappler: let TF's graph optimiser rewrite the graph when it is first run (default). False
        for a large graph that runs once or twice, where the rewrite costs more than it saves.
    """
    if func is None:
        return lambda f: Function(f, autograph=autograph, name=name, grappler=grappler)
    return Function(func, autograph=autograph, name=name, grappler=grappler)


# ---------------------------------------------------------------------------------------------
# tfe.function: the fast path under AcceleratedABY3


def use_fast_tfe_function(enabled: bool = True) -> None:
    """Whether ``tfe.function`` takes the fast path when the active protocol is AcceleratedABY3
    (default True; ``TFE_ACCEL_FAST_FUNCTION=0`` sets the default to False)."""
    global _fast_tfe_function
    _fast_tfe_function = bool(enabled)


def fast_tfe_function_enabled() -> bool:
    return _fast_tfe_function


_ACCELERATED = None


def _wants_fast(prot) -> bool:
    global _ACCELERATED
    if not _fast_tfe_function:
        return False
    if _ACCELERATED is None:
        from .protocol import AcceleratedABY3

        _ACCELERATED = AcceleratedABY3
    return isinstance(prot, _ACCELERATED) and getattr(prot, "fast_function", True)


class _TfeFunction:
    """What ``tfe.function(func)`` returns after ``import tfe_accel``: per call, the fast path when
    the active protocol is an AcceleratedABY3 that wants it, else stock ``tfe.function``."""

    def __init__(self, func, stock_function):
        self.python_function = func
        self._stock_function = stock_function
        self._stock = None
        self._fast = None
        functools.update_wrapper(self, func)

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)

    def __call__(self, *args, **kwargs):
        import tf_encrypted as tfe

        if _wants_fast(tfe.get_protocol()):
            if self._fast is None:
                self._fast = Function(self.python_function)
            return self._fast(*args, **kwargs)
        if self._stock is None:
            self._stock = self._stock_function(self.python_function)
        return self._stock(*args, **kwargs)


_STOCK_TFE_FUNCTION = None


def install_tfe_function() -> None:
    """Make ``tfe.function`` (and the ``tf_encrypted.protocol[.protocol].function`` aliases TFE's own
    modules look up at call time) dispatch per call. Idempotent."""
    global _STOCK_TFE_FUNCTION
    import tf_encrypted as tfe
    from tf_encrypted import protocol as tfe_protocol_pkg
    from tf_encrypted.protocol import protocol as tfe_protocol

    current = tfe_protocol.function
    if getattr(current, "_tfe_accel_dispatch", False):
        return
    _STOCK_TFE_FUNCTION = current

    @functools.wraps(current)
    def tfe_function(func):
        return _TfeFunction(func, _STOCK_TFE_FUNCTION)

    tfe_function._tfe_accel_dispatch = True
    tfe_function.__doc__ = (current.__doc__ or "") + (
        "\n    After ``import tfe_accel``: when the active protocol is a tfe_accel AcceleratedABY3, the "
        "function runs on tfe_accel.function's fast path (no AutoGraph, flat calls).\n")
    for mod in (tfe, tfe_protocol_pkg, tfe_protocol):
        if getattr(mod, "function", None) is current:
            mod.function = tfe_function


def stock_tfe_function():
    """TFE's own ``tfe.function`` (before tfe-accel's dispatch was installed)."""
    if _STOCK_TFE_FUNCTION is None:
        from tf_encrypted.protocol import protocol as tfe_protocol

        return tfe_protocol.function
    return _STOCK_TFE_FUNCTION


__all__ = ["Function", "PartyStore", "function", "use_fast_tfe_function", "fast_tfe_function_enabled",
           "install_tfe_function", "stock_tfe_function", "CALL_PATH"]
