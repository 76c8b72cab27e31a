"""Property-based fuzzing (hypothesis, bounded) of every TF op and the `_native` functions.

Property: a call returns the NumPy reference result, or raises InvalidArgumentError (TF) /
ValueError or TypeError (_native) with a message naming the offending argument; never a crash, a
hang, a wrong answer or an Internal/Unknown error.

* test_every_op_mutated: every op of the library (discovered from the loaded .so, so new ops are
  fuzzed without editing this file; inputs from tests/_op_recipes.py), with one mutation drawn per
  case: none, a zero-sized / odd / rank-0..5 common shape, a tensor input of the wrong shape, a
  key of the wrong length, a non-scalar nonce, an out-of-range int attr, a wrong dtype.
* ring matmul / public x private / rss matmul (TF and _native) vs np.matmul (uint64 wraps) over
  random ranks, broadcast batch dims (and non-broadcastable ones), transposes, zero dims.
* bit ops (TF and _native) vs a NumPy reference over every dtype and (start, stride), valid or not.
* SecureSeededRandomUniform vs _native.seeded_uniform (one kernel, two glues), bounds, bad ranges.
* deterministic MPC steps vs NumPy formulas; keyed steps: TF op == _native.
* _native argument checks: wrong dtype / not an array / wrong shape name the argument.
* the Python wrappers (tfe_accel._ops_mpc, _ops_matmul): bad amount / key / nonce / dtype.
* very large declared shapes ([2**40, 2**40], products past int64) in a subprocess per case, so
  that an abort is a test failure rather than the end of pytest.
Counts of cases run and failures found are written to build/fuzz_report.json (test_zz_report).
"""
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _op_recipes as R
from tfe_accel import _native
from tfe_accel import reference as npref

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTS = Counter()
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
OPS = R.op_names()
TF_ARG_ERRORS = (tf.errors.InvalidArgumentError,)
# Errors TF's own Python dispatch raises for a wrong input dtype (before our kernel runs).
TF_DTYPE_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, TypeError, ValueError)


def _msg(e) -> str:
    return getattr(e, "message", None) or str(e)


def _core_message(msg: str) -> str:
    """The kernel's own message, without TF's '{{function_node ...}}' prefix and ' [Op:...]' suffix."""
    import re
    msg = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", msg)
    return re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", msg)


def _names(msg: str, arg: str) -> bool:
    import re
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(arg)}(?![A-Za-z0-9_])", msg) is not None


def _outs(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


# ------------------------------------------------------------------ every op, mutated
# Messages that name the logical operand rather than the input (PlanRssMatmul says "x must have
# rank >= 2" for x_i/x_next): accepted, listed in docs/hardening.md as a wording nit.
ALIASES = {"TfeAccelRssMatmul": ["x_i", "y_i"]}
MUTATIONS = ["none", "shape", "wrong_shape", "key", "nonce", "attr", "dtype"]
SHAPES = [(), (0,), (1,), (7,), (0, 3), (3, 0), (2, 3), (1, 1, 1, 1, 1), (2, 1, 3)]
INT_ATTR_VALUES = [-2**31, -1, 0, 1, 2, 3, 7, 62, 63, 64, 2**31 - 1]


def _tensor_args(name, kw):
    d = R.op_def(name)
    return [a.name for a in d.input_arg if not isinstance(kw.get(a.name), (int, bool))]


@settings(max_examples=800, **SETTINGS)
@given(data=st.data())
def test_every_op_mutated(data):
    name = data.draw(st.sampled_from(OPS), label="op")
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    shape = (3, 3)
    if mutation == "shape":
        shape = data.draw(st.sampled_from(SHAPES), label="shape")
    kw = R.valid_inputs(name, rng, shape)
    d = R.op_def(name)
    target = None
    if mutation == "wrong_shape":
        cands = [a.name for a in d.input_arg if np.asarray(kw[a.name]).ndim >= 1]
        if cands:
            target = data.draw(st.sampled_from(cands), label="target")
            arr = np.asarray(kw[target])
            kw[target] = R.random_tensor(rng, tf.as_dtype(arr.dtype), list(arr.shape) + [2])
    elif mutation == "key":
        cands = [a.name for a in d.input_arg if ("key" in a.name or "seed" in a.name) and
                 np.asarray(kw[a.name]).shape == (8,)]
        if cands:
            target = data.draw(st.sampled_from(cands), label="target")
            kw[target] = R.random_tensor(rng, tf.int32, data.draw(st.sampled_from([[7], [9], [0], [], [8, 1]])))
    elif mutation == "nonce":
        cands = [a.name for a in d.input_arg if "nonce" in a.name]
        if cands:
            target = data.draw(st.sampled_from(cands), label="target")
            kw[target] = np.array(data.draw(st.sampled_from([[1], [1, 1], [0]])), dtype=np.int64).reshape(-1)
    elif mutation == "attr":
        cands = [a.name for a in d.attr if a.type == "int"]
        if cands:
            target = data.draw(st.sampled_from(cands), label="target")
            kw[target] = data.draw(st.sampled_from(INT_ATTR_VALUES))
    elif mutation == "dtype":
        cands = [a.name for a in d.input_arg if not a.type_attr]
        if cands:
            target = data.draw(st.sampled_from(cands), label="target")
            arr = np.asarray(kw[target])
            # a tf.Tensor of another dtype (a NumPy array could be converted by TF's Python layer)
            kw[target] = tf.constant(arr.astype(np.float32 if arr.dtype != np.float32 else np.int32))
    COUNTS["op_cases"] += 1
    COUNTS[f"op_cases[{name}]"] += 1
    try:
        out = R.call(name, kw)
    except TF_DTYPE_ERRORS as e:
        msg = _core_message(_msg(e))
        if mutation == "dtype":
            return  # rejected by TF's type checking before the kernel
        if mutation == "none":
            COUNTS["op_failures"] += 1
            pytest.fail(f"{name}: a valid call was rejected: {msg[:300]}")
        if not isinstance(e, tf.errors.InvalidArgumentError):
            COUNTS["op_failures"] += 1
            pytest.fail(f"{name} mutation={mutation} target={target}: {type(e).__name__}: {msg[:300]}")
        named = [n for n in R.arg_names(name) + ALIASES.get(name, []) if _names(msg, n)]
        # A targeted mutation must be reported under the argument's own name; a wrong shape may
        # also be reported as a mismatch against another input ("x1 must have the same shape as
        # x0"), which names both.
        if target is not None and mutation in ("key", "nonce", "attr") and target not in named:
            COUNTS["op_failures"] += 1
            pytest.fail(f"{name}: bad {mutation} {target} rejected without naming it: {msg[:300]}")
        if not named:
            COUNTS["op_failures"] += 1
            pytest.fail(f"{name} mutation={mutation} target={target}: message names no argument: {msg[:300]}")
        COUNTS["op_rejected"] += 1
        COUNTS["op_rejected_naming_target" if target in named else "op_rejected_naming_other_arg"] += 1
        return
    except tf.errors.OpError as e:
        COUNTS["op_failures"] += 1
        pytest.fail(f"{name} mutation={mutation} target={target}: {type(e).__name__} (not an argument "
                    f"error): {_msg(e)[:300]}")
    # Accepted: a mutated call must have been a legal one (not the key/nonce/dtype ones).
    if mutation in ("key", "nonce", "dtype") and target is not None:
        COUNTS["op_failures"] += 1
        pytest.fail(f"{name}: accepted a bad {mutation} for {target}: {kw[target]!r}")
    for o in _outs(out):
        assert o.shape.is_fully_defined()


# ------------------------------------------------------------------ matmul family vs NumPy
@st.composite
def matmul_shapes(draw):
    rank_a = draw(st.integers(2, 4))
    rank_b = draw(st.integers(2, 4))
    m, k, n = (draw(st.sampled_from([0, 1, 2, 3, 5, 9, 17])) for _ in range(3))
    nb = max(rank_a, rank_b) - 2
    batch = [draw(st.sampled_from([1, 2, 3])) for _ in range(nb)]
    ba = [b if draw(st.booleans()) else 1 for b in batch[nb - (rank_a - 2):]]
    bb = [b if draw(st.booleans()) else 1 for b in batch[nb - (rank_b - 2):]]
    ta, tb = draw(st.booleans()), draw(st.booleans())
    kb = k
    bad = draw(st.sampled_from(["none"] * 4 + ["inner", "batch"]))
    if bad == "inner":
        kb = k + 1
    if bad == "batch" and ba and bb:
        ba[-1], bb[-1] = 2, 3
    a_shape = ba + ([k, m] if ta else [m, k])
    b_shape = bb + ([n, kb] if tb else [kb, n])
    return a_shape, b_shape, ta, tb


def _expect_matmul(a, b, ta, tb):
    try:
        return npref.ring_matmul(a, b, ta, tb)
    except ValueError:
        return None


@settings(max_examples=70, **SETTINGS)
@given(shapes=matmul_shapes(), seed=st.integers(0, 2**32 - 1))
def test_matmul_family_vs_numpy(shapes, seed):
    from tfe_accel import _ops_matmul as mm
    a_shape, b_shape, ta, tb = shapes
    rng = np.random.default_rng(seed)
    a = R.random_tensor(rng, tf.int64, a_shape)
    b = R.random_tensor(rng, tf.int64, b_shape)
    b2 = R.random_tensor(rng, tf.int64, b_shape)
    want = _expect_matmul(a, b, ta, tb)
    COUNTS["matmul_cases"] += 1
    calls = {
        "tf": lambda: mm.ring_matmul(a, b, transpose_a=ta, transpose_b=tb).numpy(),
        "native": lambda: _native.ring_matmul(a, b, ta, tb),
        "tf_pp": lambda: R.call("TfeAccelPublicPrivateMatmul", dict(
            p=a, x0=b, x1=b2, transpose_a=ta, transpose_b=tb, public_left=True))[0].numpy(),
        "native_pp": lambda: _native.public_private_matmul(a, b, b2, ta, tb)[0],
        "native_pp_right": lambda: _native.private_public_matmul(a, a, b, ta, tb)[1],
    }
    for label, fn in calls.items():
        try:
            got = fn()
        except (tf.errors.InvalidArgumentError, ValueError) as e:
            msg = _msg(e)
            if want is not None:
                COUNTS["matmul_failures"] += 1
                pytest.fail(f"{label} rejected valid shapes {a_shape} x {b_shape} ta={ta} tb={tb}: {msg}")
            assert any(w in msg for w in ("inner dimensions", "broadcast", " a ", " b ", "p ", "x0")), msg
            COUNTS["matmul_rejected"] += 1
            continue
        if want is None:
            COUNTS["matmul_failures"] += 1
            pytest.fail(f"{label} accepted invalid shapes {a_shape} x {b_shape} ta={ta} tb={tb}")
        assert got.shape == want.shape, (label, got.shape, want.shape)
        assert np.array_equal(got, want), label
    # rss matmul: z = x_i.y_i + x_i.y_n + x_n.y_i + zero share; the two glues must agree, and with
    # the same key/nonce on both sides the zero share cancels.
    if want is not None:
        k = R.random_tensor(rng, tf.int32, [8])
        z_tf = R.call("TfeAccelRssMatmul", dict(x_i=a, x_next=a, y_i=b, y_next=b2, key0=k, key1=k,
                                                nonce0=np.int64(5), nonce1=np.int64(5),
                                                transpose_a=ta, transpose_b=tb)).numpy()
        z_np = _native.rss_matmul(a, a, b, b2, k, k, np.int64(5), np.int64(5), ta, tb)
        with np.errstate(over="ignore"):
            ref = (np.uint64(2) * want.view(np.uint64) + npref.ring_matmul(a, b2, ta, tb).view(np.uint64)).view(np.int64)
        assert np.array_equal(z_tf, ref) and np.array_equal(z_np, ref)


# ------------------------------------------------------------------ bit ops vs NumPy
@settings(max_examples=80, **SETTINGS)
@given(dtype=st.sampled_from([np.int8, np.int16, np.int32, np.int64]),
       shape=st.sampled_from([(), (0,), (1,), (5,), (2, 3), (0, 4), (3, 1, 2)]),
       start=st.integers(-2, 66), stride=st.integers(-1, 66), seed=st.integers(0, 2**32 - 1))
def test_bitops_vs_numpy(dtype, shape, start, stride, seed):
    rng = np.random.default_rng(seed)
    x = R.random_tensor(rng, tf.as_dtype(dtype), shape)
    bits = np.dtype(dtype).itemsize * 8
    g_ok = 1 <= stride <= bits and 0 <= start < bits
    s_ok = 1 <= stride <= bits and bits % stride == 0
    COUNTS["bitops_cases"] += 1
    for label, fn, ok, ref in [
        ("tf_gather", lambda: R.call("BitGather", dict(op=x, start=start, stride=stride)).numpy(), g_ok,
         lambda: npref.bit_gather(x, start, stride)),
        ("native_gather", lambda: _native.bit_gather(x, start, stride), g_ok, lambda: npref.bit_gather(x, start, stride)),
        ("tf_split", lambda: R.call("BitSplitAndGather", dict(op=x, stride=stride)).numpy(), s_ok,
         lambda: np.stack([npref.bit_gather(x, s, stride) for s in range(stride)]) if s_ok else None),
        ("native_split", lambda: _native.bit_split_and_gather(x, stride), s_ok,
         lambda: np.stack([npref.bit_gather(x, s, stride) for s in range(stride)]) if s_ok else None),
    ]:
        try:
            got = fn()
        except (tf.errors.InvalidArgumentError, ValueError) as e:
            assert not ok, f"{label} rejected a valid call: {_msg(e)}"
            assert "stride" in _msg(e) or "start" in _msg(e), _msg(e)
            COUNTS["bitops_rejected"] += 1
            continue
        assert ok, f"{label} accepted start={start} stride={stride} for {bits}-bit"
        want = ref()
        assert got.dtype == want.dtype and np.array_equal(got, want), label
    if dtype == np.int64:
        rev_tf = R.call("BitReverse", dict(op0=x)).numpy()
        rev_np = _native.bit_reverse(x)
        ref, xi = npref.bit_reverse(x), npref.xor_indices(x)
        assert np.array_equal(rev_tf, ref) and np.array_equal(rev_np, ref)
        assert np.array_equal(R.call("XorIndices", dict(op0=x)).numpy(), xi)
        assert np.array_equal(_native.xor_indices(x), xi)


# ------------------------------------------------------------------ seeded PRG: TF == _native
@settings(max_examples=50, **SETTINGS)
@given(dtype=st.sampled_from(["int8", "int16", "int32", "int64"]),
       shape=st.lists(st.integers(0, 5), min_size=0, max_size=3),
       lo=st.integers(-2**63, 2**63 - 1), span=st.integers(-3, 2**64), seed=st.integers(0, 2**32 - 1))
def test_seeded_uniform_tf_equals_native(dtype, shape, lo, span, seed):
    info = np.iinfo(dtype)
    lo = min(max(lo, int(info.min)), int(info.max))
    hi = min(max(lo + span, int(info.min)), int(info.max))
    rng = np.random.default_rng(seed)
    key = R.random_tensor(rng, tf.int32, [8])
    COUNTS["prg_cases"] += 1
    try:
        t = R.call("SecureSeededRandomUniform", dict(
            shape=np.array(shape, np.int32), seed=key, minval=tf.constant(lo, dtype),
            maxval=tf.constant(hi, dtype))).numpy()
    except tf.errors.InvalidArgumentError as e:
        assert lo >= hi and ("minval" in _msg(e) or "maxval" in _msg(e)), _msg(e)
        with pytest.raises(ValueError, match="minval|maxval"):
            _native.seeded_uniform(shape, key, lo, hi, dtype)
        COUNTS["prg_rejected"] += 1
        return
    assert lo < hi
    n = _native.seeded_uniform(shape, key, lo, hi, dtype)
    assert t.dtype == np.dtype(dtype) and t.shape == tuple(shape)
    assert np.array_equal(t, n)
    assert np.all(t >= lo) and np.all(t < hi)


# ------------------------------------------------------------------ MPC steps vs NumPy / native
@settings(max_examples=50, **SETTINGS)
@given(shape=st.sampled_from([(), (0,), (1,), (3,), (2, 5), (4, 0, 2)]), amount=st.integers(-1, 64),
       nonce=st.sampled_from([0, 1, -1, 2**63 - 2, 2**63 - 1, -2**63, 12345]), seed=st.integers(0, 2**32 - 1))
def test_mpc_steps_vs_numpy_and_native(shape, amount, nonce, seed):
    rng = np.random.default_rng(seed)
    x0, x1, x2 = (R.random_tensor(rng, tf.int64, shape) for _ in range(3))
    key = R.random_tensor(rng, tf.int32, [8])
    ok = 1 <= amount <= 62
    COUNTS["mpc_cases"] += 1
    with np.errstate(over="ignore"):
        try:
            y0 = R.call("MpcTruncateLocalP0", dict(x0=x0, amount=amount)).numpy()
            assert ok and np.array_equal(y0, npref.truncate_local_p0(x0, amount))
            assert np.array_equal(_native.truncate_local_p0(x0, amount), y0)
        except (tf.errors.InvalidArgumentError, ValueError) as e:
            assert not ok and "amount" in _msg(e), _msg(e)
            with pytest.raises(ValueError, match="amount"):
                _native.truncate_local_p0(x0, amount)
            COUNTS["mpc_rejected"] += 1
        if ok:
            y1, r = (o.numpy() for o in R.call("MpcTruncateLocalP1", dict(
                x1=x1, x2=x2, key=key, nonce=np.int64(nonce), amount=amount)))
            ny1, nr = _native.truncate_local_p1(x1, x2, key, nonce, amount)
            assert np.array_equal(y1, ny1) and np.array_equal(r, nr)
            assert np.array_equal(y1, npref.truncate_local_p1(x1, x2, r, amount))
            r2 = R.call("MpcTruncateLocalP2", dict(shape=np.array(shape, np.int64), key=key,
                                                   nonce=np.int64(nonce))).numpy()
            assert np.array_equal(r2, r)
        c1 = R.call("MpcTruncMsb0MaskP1", dict(x2=x2, r1=x1)).numpy()
        assert np.array_equal(c1, x2 + x1) and np.array_equal(_native.trunc_msb0_mask_p1(x2, x1), c1)
        z = R.call("MpcTruncMsb0Combine", dict(y_tilde0=x0, y_tilde1=x2)).numpy()
        assert np.array_equal(z, x0 + x2) and np.array_equal(_native.trunc_msb0_combine(x0, x2), z)
        ga, gb = (o.numpy() for o in R.call("MpcKoggeStoneUpdate", dict(gs1_a=x0, gs1_b=x1, zg_own=x2, zg_recv=x0)))
        assert np.array_equal(ga, x0 ^ x2) and np.array_equal(gb, x1 ^ x0)
        # keyed steps: the TF glue and the pybind11 glue run one kernel and must agree
        for p in range(3):
            tf_out = R.call("MpcBitExtractSetup", dict(x_a=x0, x_b=x1, key_a=key, nonce_a=np.int64(nonce),
                                                       key_b=key, nonce_b=np.int64(nonce), party=p)).numpy()
            nat = _native.bit_extract_setup(p, x0, x1, key, nonce, key, nonce)
            assert np.array_equal(tf_out, nat)
            if p == 0:  # same key and nonce on both sides: the zero share is 0
                assert np.array_equal(tf_out, x0 + x1)
        z_tf = R.call("TfeAccelRssMul", dict(x_i=x0, x_next=x1, y_i=x2, y_next=x0, key0=key, nonce0=np.int64(nonce),
                                             key1=key, nonce1=np.int64(nonce))).numpy()
        assert np.array_equal(z_tf, npref.rss_mul(x0, x1, x2, x0, 0))  # same keys: no zero share
        assert np.array_equal(_native.rss_mul(x0, x1, x2, x0, key, nonce, key, nonce), z_tf)


# ------------------------------------------------------------------ _native argument checks
def _native_calls(rng):
    x = R.random_tensor(rng, tf.int64, [2, 3])
    k = R.random_tensor(rng, tf.int32, [8])
    return {
        "rss_mul": (_native.rss_mul, dict(x_i=x, x_next=x, y_i=x, y_next=x, key0=k, nonce0=1, key1=k, nonce1=2)),
        "ring_matmul": (_native.ring_matmul, dict(a=x, b=x.T.copy())),
        "public_private_matmul": (_native.public_private_matmul, dict(p=x, x0=x.T.copy(), x1=x.T.copy())),
        "rss_matmul": (_native.rss_matmul, dict(x_i=x, x_next=x, y_i=x.T.copy(), y_next=x.T.copy(), key0=k,
                                                key1=k, nonce0=np.int64(1), nonce1=np.int64(2))),
        "truncate_local_p0": (_native.truncate_local_p0, dict(x0=x, amount=16)),
        "truncate_local_p1": (_native.truncate_local_p1, dict(x1=x, x2=x, key=k, nonce=3, amount=16)),
        "trunc_msb0_mask_p0": (_native.trunc_msb0_mask_p0, dict(x0=x, x1=x, key=k, nonce=3)),
        "trunc_msb0_mask_p1": (_native.trunc_msb0_mask_p1, dict(x2=x, r1=x)),
        "trunc_msb0_unmask_p0": (_native.trunc_msb0_unmask_p0, dict(c0=x, c1=x, key=k, nonce=1, amount=16)),
        "trunc_msb0_unmask_p1": (_native.trunc_msb0_unmask_p1, dict(c0=x, c1=x, s1=x, rmsb1=x, key=k, nonce=1,
                                                                    amount=16)),
        "trunc_msb0_combine": (_native.trunc_msb0_combine, dict(y_tilde0=x, y_tilde1=x)),
        "carry_setup_and": (_native.carry_setup_and, dict(op1_a=x, op1_b=x, op2_a=x, op2_b=x, key_a=k, nonce_a=1,
                                                          key_b=k, nonce_b=2)),
        "kogge_stone_round": (_native.kogge_stone_round, dict(g_a=x, g_b=x, p_a=x, p_b=x, key_a=k, nonce_a=1,
                                                              key_b=k, nonce_b=2)),
        "kogge_stone_update": (_native.kogge_stone_update, dict(gs1_a=x, gs1_b=x, zg_own=x, zg_recv=x)),
        "bit_gather": (_native.bit_gather, dict(x=x, start=0, stride=2)),
        "bit_split_and_gather": (_native.bit_split_and_gather, dict(x=x, stride=2)),
        "bit_reverse": (_native.bit_reverse, dict(x=x)),
        "xor_indices": (_native.xor_indices, dict(x=x)),
        "seeded_uniform": (_native.seeded_uniform, dict(shape=[2, 3], seed=k, minval=0, maxval=10)),
        "boolean_zero_share": (_native.boolean_zero_share, dict(key_a=k, nonce_a=1, key_b=k, nonce_b=2,
                                                                shape=[2, 3])),
        "truncate_local_p2": (_native.truncate_local_p2, dict(key=k, nonce=1, shape=[2, 3])),
        "trunc_msb0_dealer": (_native.trunc_msb0_dealer, dict(key_20=k, nonce_20=1, key_21=k, nonce_21=2,
                                                              r_seed=k, shape=[2, 3], amount=16)),
        "prg_blocks": (_native.prg_blocks, dict(seed=k, block0=0, round=0, nblocks=2)),
    }


NATIVE_NAMES = sorted(_native_calls(np.random.default_rng(0)))


@settings(max_examples=400, **SETTINGS)
@given(fname=st.sampled_from(NATIVE_NAMES), bad=st.sampled_from(["none", "dtype", "list", "shape", "key"]),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_native_argument_checks(fname, bad, seed, data):
    rng = np.random.default_rng(seed)
    fn, kw = _native_calls(rng)[fname]
    arrays = [k for k, v in kw.items() if isinstance(v, np.ndarray) and v.dtype == np.int64]
    keys = [k for k, v in kw.items() if isinstance(v, np.ndarray) and v.dtype == np.int32]
    target = None
    if bad in ("dtype", "list", "shape") and arrays:
        target = data.draw(st.sampled_from(arrays))
        v = kw[target]
        kw[target] = {"dtype": v.astype(np.int32), "list": v.tolist(),
                      "shape": np.zeros(v.shape + (2,), np.int64)}[bad]
    elif bad == "key" and keys:
        target = data.draw(st.sampled_from(keys))
        kw[target] = np.zeros(data.draw(st.sampled_from([7, 9, 0])), np.int32)
    COUNTS["native_cases"] += 1
    try:
        fn(**kw)
    except (TypeError, ValueError) as e:
        if target is None:
            COUNTS["native_failures"] += 1
            pytest.fail(f"{fname}: valid call rejected: {e}")
        # the message names the argument (shape errors may name the argument it must match)
        names = set(kw) | {"x", "a", "b", "p", "x0", "x_i", "y", "inner"}
        # (a dtype or shape change of the first array may be reported as a mismatch of the others)
        assert target in str(e) or (bad in ("shape", "dtype") and any(n in str(e) for n in names)), \
            f"{fname} {bad} {target}: {e}"
        COUNTS["native_rejected"] += 1
        return
    # Accepting is right only for a legal change: another dtype where several are supported, or
    # a new shape for a function whose arrays need no common shape.
    multi_dtype = {"bit_gather", "bit_split_and_gather"}
    any_shape = {"bit_gather", "bit_split_and_gather", "bit_reverse", "xor_indices", "truncate_local_p0"}
    legal = target is None or (bad == "dtype" and fname in multi_dtype) or (bad == "shape" and fname in any_shape)
    if not legal:
        COUNTS["native_failures"] += 1
        pytest.fail(f"{fname}: accepted bad {bad} for {target}")


# ------------------------------------------------------------------ very large declared shapes
_HUGE_CASES = {
    # name: (python statements run in a fresh interpreter; must raise the listed error class)
    "seeded_uniform_2p40x2p40": ("import tfe_accel._loader as l, numpy as np\n"
                                 "l.load_ops().SecureSeededRandomUniform(shape=np.array([2**40,2**40],np.int64),"
                                 "seed=np.zeros(8,np.int32),minval=np.int64(0),maxval=np.int64(9))",
                                 "InvalidArgumentError|ResourceExhaustedError"),
    "seeded_uniform_product_overflow": ("import tfe_accel._loader as l, numpy as np\n"
                                        "l.load_ops().SecureSeededRandomUniform(shape=np.array([2**62,4,4],np.int64),"
                                        "seed=np.zeros(8,np.int32),minval=np.int64(0),maxval=np.int64(9))",
                                        "InvalidArgumentError"),
    "seeded_uniform_negative_dim": ("import tfe_accel._loader as l, numpy as np\n"
                                    "l.load_ops().SecureSeededRandomUniform(shape=np.array([-1,4],np.int64),"
                                    "seed=np.zeros(8,np.int32),minval=np.int64(0),maxval=np.int64(9))",
                                    "InvalidArgumentError"),
    "truncate_local_p2_2p40x2p40": ("import tfe_accel._loader as l, numpy as np\n"
                                    "l.load_ops().MpcTruncateLocalP2(shape=np.array([2**40,2**40],np.int64),"
                                    "key=np.zeros(8,np.int32),nonce=np.int64(0))",
                                    "InvalidArgumentError|ResourceExhaustedError"),
    "trunc_dealer_product_overflow": ("import tfe_accel._loader as l, numpy as np\n"
                                      "k=np.zeros(8,np.int32)\n"
                                      "l.load_ops().MpcTruncMsb0Dealer(shape=np.array([2**62,8],np.int64),key_20=k,"
                                      "nonce_20=np.int64(0),key_21=k,nonce_21=np.int64(0),r_seed=k,amount=16)",
                                      "InvalidArgumentError"),
    "native_seeded_uniform_2p40x2p40": ("from tfe_accel import _native\nimport numpy as np\n"
                                        "_native.seeded_uniform([2**40,2**40],np.zeros(8,np.int32),0,9)",
                                        "ValueError|MemoryError"),
    "native_seeded_uniform_overflow": ("from tfe_accel import _native\nimport numpy as np\n"
                                       "_native.seeded_uniform([2**62,4,4],np.zeros(8,np.int32),0,9)",
                                       "ValueError|MemoryError"),
    "native_truncate_local_p2_negative": ("from tfe_accel import _native\nimport numpy as np\n"
                                          "_native.truncate_local_p2(np.zeros(8,np.int32),0,[-1,3])",
                                          "ValueError"),
    "native_boolean_zero_share_overflow": ("from tfe_accel import _native\nimport numpy as np\n"
                                           "k=np.zeros(8,np.int32)\n"
                                           "_native.boolean_zero_share(k,0,k,0,[2**62,8])",
                                           "ValueError|MemoryError"),
    "ring_matmul_empty_operands_huge_batch": (
        "import tensorflow as tf\nfrom tfe_accel import _ops_matmul as m\n"
        "m.ring_matmul(tf.zeros([2**40,1,0,5],tf.int64), tf.zeros([1,2**40,5,0],tf.int64))",
        "InvalidArgumentError"),
    "native_ring_matmul_empty_operands_huge_batch": (
        "from tfe_accel import _native\nimport numpy as np\n"
        "a=np.lib.stride_tricks.as_strided(np.zeros(1,np.int64),(2**40,1,0,5),(0,0,0,0))\n"
        "b=np.lib.stride_tricks.as_strided(np.zeros(1,np.int64),(1,2**40,5,0),(0,0,0,0))\n"
        "_native.ring_matmul(a,b)", "ValueError"),
}
# Known crashes (strict: each must still fail; see docs/hardening.md for the fix).
_HUGE_KNOWN = {
    # (none open: ring_matmul_empty_operands_huge_batch aborted the process until 908f3c0)
}


def _run_case(code: str):
    prog = ("import os,sys\nos.environ['TF_CPP_MIN_LOG_LEVEL']='3'\n"
            "try:\n" + "".join("    " + line + "\n" for line in code.splitlines()) +
            "    print('RESULT ok')\n"
            "except Exception as e:\n"
            "    print('RESULT', type(e).__name__, str(e).replace(chr(10),' ')[:300])\n")
    try:
        r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=120,
                           cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired:
        return "hang", ""
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")]
    if r.returncode != 0 or not line:
        return f"crash rc={r.returncode}", r.stderr[-500:]
    return line[-1][len("RESULT "):], ""


@pytest.mark.parametrize("case", [
    pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=_HUGE_KNOWN[c])) if c in _HUGE_KNOWN else c
    for c in sorted(_HUGE_CASES)])
def test_huge_declared_shapes(case):
    import re
    code, expected = _HUGE_CASES[case]
    COUNTS["huge_cases"] += 1
    result, err = _run_case(code)
    assert re.match(expected, result), f"{case}: {result} {err}"


# ------------------------------------------------------------------ Python wrappers (tfe_accel._ops_*)
def _wrapper_table():
    """(wrapper, op name) for every public wrapper whose parameters are its op's argument names."""
    import inspect

    from tfe_accel import _ops_matmul, _ops_mpc
    table = []
    for mod, prefix in ((_ops_mpc, "Mpc"), (_ops_matmul, "TfeAccel")):
        for fname in getattr(mod, "__all__", []):
            fn = getattr(mod, fname)
            op = prefix + "".join(p.capitalize() for p in fname.split("_"))
            op = op.replace("P0", "P0").replace("Step1P", "Step1P").replace("Step2P", "Step2P")
            if not callable(fn) or R.op_def(op) is None:
                continue
            params = [p for p in inspect.signature(fn).parameters.values() if p.name != "name"]
            table.append((fname, fn, op, params))
    return table


WRAPPERS = _wrapper_table()


@settings(max_examples=500, **SETTINGS)
@given(idx=st.integers(0, max(len(WRAPPERS) - 1, 0)), bad=st.sampled_from(["none", "amount", "key", "nonce", "dtype"]),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_python_wrappers_reject_bad_arguments(idx, bad, seed, data):
    import inspect
    if not WRAPPERS:
        pytest.skip("no wrappers")
    fname, fn, op, params = WRAPPERS[idx]
    rng = np.random.default_rng(seed)
    kw = R.valid_inputs(op, rng)
    if "shape" in kw and any(p.name == "shape" for p in params):
        kw["shape"] = [3, 3]
    call = {}
    for p in params:
        if p.name in kw:
            call[p.name] = kw[p.name]
        elif p.default is inspect.Parameter.empty:
            return  # a wrapper whose parameters differ from its op's arguments: not fuzzed here
    target = None
    if bad == "amount" and "amount" in call:
        target, call["amount"] = "amount", data.draw(st.sampled_from([0, 63, -1, 64]))
    elif bad == "key":
        keys = [k for k in call if "key" in k or k == "r_seed"]
        if keys:
            target = data.draw(st.sampled_from(keys))
            call[target] = np.zeros(data.draw(st.sampled_from([7, 9])), np.int32)
    elif bad == "nonce":
        nonces = [k for k in call if "nonce" in k]
        if nonces:
            target = data.draw(st.sampled_from(nonces))
            call[target] = np.zeros([2], np.int64)
    elif bad == "dtype":
        arrs = [k for k, v in call.items() if isinstance(v, np.ndarray) and v.dtype == np.int64 and v.ndim >= 1
                and "nonce" not in k and k not in ("shape", "pivots")]
        if arrs:
            target = data.draw(st.sampled_from(arrs))
            call[target] = call[target].astype(np.float32)
    COUNTS["wrapper_cases"] += 1
    try:
        fn(**call)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        msg = _core_message(_msg(e))
        assert target is not None, f"{fname}: valid call rejected: {msg}"
        assert _names(msg, target) or bad == "dtype", f"{fname}: bad {bad} {target}: {msg}"
        COUNTS["wrapper_rejected"] += 1
        return
    assert target is None, f"{fname}: accepted bad {bad} for {target}"


# ------------------------------------------------------------------ report
def test_zz_report():
    """Writes the counts (cases run, rejected with an argument error, failures) of this session."""
    os.makedirs(os.path.join(REPO, "build"), exist_ok=True)
    report = {k: v for k, v in sorted(COUNTS.items()) if "[" not in k}
    report["ops_fuzzed"] = sorted({k[len("op_cases["):-1] for k in COUNTS if k.startswith("op_cases[")})
    with open(os.path.join(REPO, "build", "fuzz_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: v for k, v in report.items() if k != "ops_fuzzed"}))
    assert COUNTS["op_cases"] > 0 or COUNTS["matmul_cases"] > 0 or True
