"""Valid-looking inputs for every op in the tfe-accel op library, derived from its OpDef.

Used by tests/test_fuzz_ops.py (mutated from here) and tests/test_shape_inference.py. New ops are
picked up automatically: inputs are chosen from their declared dtype and, by name, their role
(key/seed: int32[8], nonce: int64 scalar, shape: a 1-D shape tensor, minval/maxval: scalars);
ops whose inputs have more structure get an explicit recipe in SPECIAL.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

from tfe_accel import _loader

_DT = {1: tf.float32, 2: tf.float64, 3: tf.int32, 4: tf.uint8, 5: tf.int16, 6: tf.int8, 7: tf.string,
       9: tf.int64, 10: tf.bool}


def ops_module():
    return _loader.load_ops()


def op_names() -> list[str]:
    """CamelCase names of every op the library registers."""
    return _loader.registered_op_names(ops_module())


def op_def(name: str):
    return op_def_registry.get(name)


def arg_names(name: str) -> list[str]:
    d = op_def(name)
    return [a.name for a in d.input_arg] + [a.name for a in d.attr]


def random_tensor(rng: np.random.Generator, dtype: tf.DType, shape) -> np.ndarray:
    shape = tuple(int(s) for s in shape)
    if dtype == tf.bool:
        return rng.integers(0, 2, size=shape).astype(bool)
    np_dt = dtype.as_numpy_dtype
    info = np.iinfo(np_dt)
    return rng.integers(info.min, info.max, size=shape, dtype=np_dt, endpoint=True)


def _role(arg_name: str, dtype) -> str:
    n = arg_name.lower()
    if ("key" in n or "seed" in n) and dtype == tf.int32:
        return "key"
    if "nonce" in n:
        return "nonce"
    if n == "shape":
        return "shape"
    if n in ("minval", "maxval"):
        return "scalar"
    return "tensor"


def default_attrs(name: str) -> dict:
    d = op_def(name)
    attrs = {}
    for a in d.attr:
        if a.type == "type":
            allowed = [_DT[t] for t in a.allowed_values.list.type if t in _DT]
            default = _DT.get(a.default_value.type) if a.HasField("default_value") else None
            attrs[a.name] = tf.int64 if tf.int64 in allowed and default is None else (default or allowed[0])
        elif a.type == "int":
            attrs[a.name] = {"amount": 16, "party": 0, "start": 0, "stride": 2}.get(
                a.name, a.default_value.i if a.HasField("default_value") else 0)
        elif a.type == "bool":
            attrs[a.name] = a.default_value.b if a.HasField("default_value") else False
    if name == "MpcKoggeStoneRound":
        attrs["Tin"], attrs["Tout"] = tf.int64, tf.int32
    if name in ("SecureSeededRandomUniform", "SecureRandomUniform"):
        attrs["dtype"], attrs["T"] = tf.int64, tf.int32
    return attrs


def input_dtype(name: str, arg, attrs: dict) -> tf.DType:
    if arg.type_attr:
        return attrs[arg.type_attr]
    return _DT[arg.type]


# Ops whose inputs are structured beyond one common shape: name -> function(rng, S) -> kwargs.
def _pivot_diff(rng, s):
    return {"x_a": random_tensor(rng, tf.int64, s), "x_b": random_tensor(rng, tf.int64, s),
            "pivots": random_tensor(rng, tf.int64, [3]), "party": 0}


def _shaped(name: str, shapes: dict):
    """A recipe: the generic one with per-argument tensor shapes (a function of S and K=2)."""
    def make(rng, s):
        kw = valid_inputs(name, rng, s, generic=True)
        for arg, f in shapes.items():
            kw[arg] = random_tensor(rng, tf.as_dtype(kw[arg].dtype), f(s))
        return kw
    return make


_K = 2
_KS = lambda s: [_K] + s  # noqa: E731
_PAIR = lambda s: [2, _K] + s  # noqa: E731
_VK = lambda s: [_K]  # noqa: E731
_MULAB1 = {"f_a": _KS, "f_b": _KS, "c0": _VK, "b_a": _KS, "b_b": _KS}
_MULAB2 = {
    "MpcMulAbStep2P0": {"s_r0_from_p1": 0, "s_r0_from_p2": 0, "s_r1": 0, "m_from_p1": 1, "wc_from_p2": 0},
    "MpcMulAbStep2P1": {"s_r0": 0, "s_r1_from_p0": 0, "s_r1_from_p2": 0, "m_from_p0": 1, "wc_from_p2": 0},
    "MpcMulAbStep2P2": {"s_r0": 0, "s_r1": 0, "m_from_p0": 1, "wc_from_p1": 0, "m_from_p1": 1,
                        "wc_from_p0": 0},
}

def _column_squares(rng, s):
    """x_i, x_next: a [rows, cols] matrix from S; m_i, m_next: one centre per column."""
    rows = s[0] if s else 1
    cols = int(np.prod(s[1:])) if len(s) > 1 else (s[0] if s else 1)
    kw = valid_inputs("TfeAccelRssColumnSquares", rng, [1], generic=True)
    for a in ("x_i", "x_next"):
        kw[a] = random_tensor(rng, tf.int64, [rows, cols])
    for a in ("m_i", "m_next"):
        kw[a] = random_tensor(rng, tf.int64, [1, cols])
    return kw


def _digits(name: str, shapes: dict):
    """A recipe: the generic one with Z_67 digit tensors of the given shapes."""
    def make(rng, s):
        kw = valid_inputs(name, rng, s, generic=True)
        for arg, f in shapes.items():
            kw[arg] = rng.integers(0, 67, size=f(s)).astype(np.uint8)
        return kw
    return make


SPECIAL = {
    "MpcPcMaskP1": _digits("MpcPcMaskP1", {"digits": lambda s: s + [63]}),
    "MpcPcResolve": _digits("MpcPcResolve", {"d0": lambda s: s + [64], "d1": lambda s: s + [64]}),
    "MpcPivotDiff": _pivot_diff,
    "TfeAccelRssColumnSquares": _column_squares,
    "MpcTruncMsb0MaskScaledP0": _shaped("MpcTruncMsb0MaskScaledP0", {"k": _VK}),
    "MpcTruncMsb0MaskScaledP1": _shaped("MpcTruncMsb0MaskScaledP1", {"k": _VK, "r1": _KS}),
    **{f"MpcMulAbStep1P{i}": _shaped(f"MpcMulAbStep1P{i}", _MULAB1) for i in range(3)},
    **{n: _shaped(n, {"b_a": _KS, "b_b": _KS, **{a: (_PAIR if p else _KS) for a, p in m.items()}})
       for n, m in _MULAB2.items()},
}


def valid_inputs(name: str, rng: np.random.Generator, shape=(3, 3), generic=False) -> dict:
    """Keyword arguments for calling op `name` (inputs and attrs) that should be accepted."""
    if name in SPECIAL and not generic:
        return SPECIAL[name](rng, list(shape))
    d = op_def(name)
    attrs = default_attrs(name)
    kw = {}
    for arg in d.input_arg:
        dt = input_dtype(name, arg, attrs)
        role = _role(arg.name, dt)
        if role == "key":
            kw[arg.name] = random_tensor(rng, tf.int32, [8])
        elif role == "nonce":
            kw[arg.name] = np.int64(rng.integers(-2**40, 2**40))
        elif role == "shape":
            kw[arg.name] = np.array(shape, dtype=dt.as_numpy_dtype)
        elif role == "scalar":
            kw[arg.name] = np.array(0 if arg.name == "minval" else 100, dtype=dt.as_numpy_dtype)
        else:
            kw[arg.name] = random_tensor(rng, dt, shape)
    for a in d.attr:
        if a.type in ("int", "bool") or (a.type == "type" and not _inferred(d, a.name)):
            kw[a.name] = attrs[a.name]
    return kw


def _inferred(d, attr_name: str) -> bool:
    """Type attrs that TF infers from inputs (passing them explicitly is an error)."""
    return any(a.type_attr == attr_name for a in d.input_arg)


def call(name: str, kw: dict):
    return getattr(ops_module(), name)(**kw)
