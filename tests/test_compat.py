"""tfe_accel_compat: each TF Encrypted compatibility shim detects its own need, patches only what is
missing, and does nothing on a stack that does not need it."""
import sys
import types

import pytest

import tfe_accel_compat as C
from conftest import run_python


def test_every_shim_is_described_and_inactive_only_where_its_feature_exists():
    desc = C.describe()
    assert set(desc) == {"pkg_resources", "while_v2_stateful_parallelism", "func_graph_control_captures",
                         "onnx_mapping"}
    import inspect

    from tensorflow.python.framework.func_graph import FuncGraph
    from tensorflow.python.ops import while_v2

    has_sp = "stateful_parallelism" in inspect.signature(while_v2._build_while_op.__wrapped__
                                                         if hasattr(while_v2._build_while_op, "__wrapped__")
                                                         else while_v2._build_while_op).parameters
    assert desc["while_v2_stateful_parallelism"]["active"] is (not has_sp)
    assert desc["func_graph_control_captures"]["active"] is isinstance(
        FuncGraph.__dict__.get("function_captures"), property)
    for d in desc.values():  # a needed shim is applied once TFE is imported (conftest imports it)
        assert d["applied"] is d["active"] or not d["active"]


def test_reference_stack_needs_no_shim():
    import tensorflow as tf

    if tf.__version__.startswith("2.12."):
        assert C.active_shims() == [], [s.name for s in C.active_shims()]


def test_pkg_resources_stub_answers_what_tfe_asks():
    stub = C._make_pkg_resources_stub()
    assert stub.get_distribution("tf-encrypted").version == "0.9.1"
    with pytest.raises(stub.DistributionNotFound):
        stub.get_distribution("no-such-distribution-tfe-accel")


def test_pkg_resources_stub_is_scoped_to_tfes_import(monkeypatch):
    monkeypatch.delitem(sys.modules, "pkg_resources", raising=False)
    C._pkg_resources_before()
    assert getattr(sys.modules["pkg_resources"], "_tfe_accel_stub", False)
    C._pkg_resources_after(None)
    assert "pkg_resources" not in sys.modules


def test_stateful_parallelism_wrapper_drops_only_that_argument():
    calls = []
    fake = types.SimpleNamespace(_build_while_op=lambda *a, **k: calls.append((a, k)) or "op")
    C._stateful_parallelism_after(fake)
    assert fake._build_while_op(1, 2, stateful_parallelism=True, name="w") == "op"
    assert calls == [((1, 2), {"name": "w"})]
    wrapped = fake._build_while_op
    C._stateful_parallelism_after(fake)  # idempotent
    assert fake._build_while_op is wrapped


def test_control_captures_property_reads_function_captures():
    class Graph:
        function_captures = property(lambda self: types.SimpleNamespace(control={"op"}))

    assert C._CONTROL_CAPTURES.fget(Graph()) == {"op"}


def test_onnx_mapping_stub_matches_onnx_where_both_exist():
    onnx = pytest.importorskip("onnx")
    stub = C._make_onnx_mapping_stub()
    assert stub.TENSOR_TYPE_TO_NP_TYPE[onnx.TensorProto.FLOAT].name == "float32"
    assert stub.TENSOR_TYPE_TO_NP_TYPE[onnx.TensorProto.INT64].name == "int64"
    try:
        from onnx import mapping  # noqa: F401  (onnx < 1.19)
    except ImportError:
        return
    if getattr(mapping, "_tfe_accel_stub", False):
        return
    for code, dtype in mapping.TENSOR_TYPE_TO_NP_TYPE.items():
        if code in stub.TENSOR_TYPE_TO_NP_TYPE:
            assert stub.TENSOR_TYPE_TO_NP_TYPE[code] == dtype, code


def test_tf_encrypted_imported_first_works_and_runs_stock_aby3():
    """`import tf_encrypted` before tfe_accel (the .pth installs the shims at interpreter start),
    then graph-mode prot.while_loop (the control_captures shim) and a secure matmul."""
    code = (
        "import numpy as np, tf_encrypted as tfe, tensorflow as tf\n"
        "import tfe_accel\n"
        "tfe.set_protocol(tfe.protocol.ABY3())\n"
        "prot = tfe.get_protocol()\n"
        "x = tfe.define_private_variable(np.full((2, 2), 0.5))\n"
        "@tfe.function\n"
        "def loop(a):\n"
        "    i, out = prot.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a + a), [tf.constant(0), a])\n"
        "    return out\n"
        "print('LOOP', loop(x.read_value()).reveal().to_native().numpy().ravel().tolist())\n"
        "print('MATMUL', tfe.matmul(x, x).reveal().to_native().numpy().ravel().tolist())\n"
    )
    r = run_python(code)
    assert r.returncode == 0, r.stderr[-3000:]
    loop = eval(r.stdout.split("LOOP ", 1)[1].splitlines()[0])
    mm = eval(r.stdout.split("MATMUL ", 1)[1].splitlines()[0])
    assert max(abs(v - 4.0) for v in loop) < 1e-3 and max(abs(v - 0.5) for v in mm) < 1e-3


def test_no_compat_env_leaves_tfe_untouched():
    r = run_python("import sys, tfe_accel_compat as C; print('HOOK', C._HOOK is not None)",
                   env_extra={"TFE_ACCEL_NO_COMPAT": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "HOOK False" in r.stdout
