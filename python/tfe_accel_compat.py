"""TF Encrypted 0.9.1 on newer TensorFlow, Python, setuptools and onnx: feature-detected shims.

TFE 0.9.1 was written for TF 2.9-2.12. On newer stacks its import fails (TF internals it imports are
gone, ``pkg_resources`` is no longer installed, ``onnx.mapping`` was removed) and graph-mode
``prot.while_loop`` reads a renamed FuncGraph attribute. Each :class:`Shim` here detects the missing
attribute or module itself (never a version string) and patches only what is missing, so on the
reference stack (Python 3.11, TF 2.12.1, setuptools < 81, onnx < 1.16) every shim is inactive and
nothing is touched.

The shims are applied by an import hook (:class:`_TfeImportHook`, a meta-path finder) around the
execution of the TFE modules that need them, whatever the program imports first:

- ``import tfe_accel`` installs the hook before it imports TFE;
- the ``tfe_accel_compat.pth`` file installed next to the package installs it at interpreter start,
  so ``import tf_encrypted`` alone works too (``TFE_ACCEL_NO_COMPAT=1`` disables that).

This module lives outside the ``tfe_accel`` package and imports only the standard library at import
time: the ``.pth`` file runs it in every interpreter of the environment, and ``import tfe_accel``
would load TensorFlow. ``tfe-accel info`` lists the active shims (:func:`active_shims`).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

TFE_ABY3 = "tf_encrypted.protocol.aby3.aby3"
TFE_CONVERT = "tf_encrypted.convert.convert"
TFE_ROOT = "tf_encrypted"


@dataclass
class Shim:
    """One compatibility fix: ``needed()`` detects the missing feature; ``before``/``after`` run
    around the execution of the TFE module ``target`` (``after`` also when that module was imported
    before the hook was installed)."""

    name: str
    reason: str
    target: str
    needed: Callable[[], bool]
    before: Optional[Callable[[], None]] = None
    after: Optional[Callable[[types.ModuleType], None]] = None
    applied: bool = field(default=False, init=False)

    @property
    def active(self) -> bool:
        """True when the feature is missing on this stack (whether or not TFE was imported yet)."""
        try:
            return bool(self.needed())
        except Exception:  # noqa: BLE001  (a detector must never break an import)
            return False


# ---- pkg_resources (setuptools >= 81, and Python 3.12+ venvs, no longer install it) ----------------
class _DistributionNotFound(Exception):
    pass


class _Distribution:
    def __init__(self, dist):
        self.version = dist.version
        self.location = str(dist.locate_file(""))
        self.project_name = dist.metadata["Name"]


def _get_distribution(name):
    import importlib.metadata

    try:
        return _Distribution(importlib.metadata.distribution(name))
    except importlib.metadata.PackageNotFoundError as exc:
        raise _DistributionNotFound(name) from exc


def _make_pkg_resources_stub() -> types.ModuleType:
    """The two names TFE's ``__init__`` imports, on importlib.metadata."""
    stub = types.ModuleType("pkg_resources")
    stub.__doc__ = "tfe-accel stub: only what TF Encrypted 0.9.1's __init__ imports (removed after)."
    stub.DistributionNotFound = _DistributionNotFound
    stub.get_distribution = _get_distribution
    stub._tfe_accel_stub = True
    return stub


def _pkg_resources_needed() -> bool:
    mod = sys.modules.get("pkg_resources")
    if mod is not None:
        return getattr(mod, "_tfe_accel_stub", False)
    return importlib.util.find_spec("pkg_resources") is None


def _pkg_resources_before() -> None:
    sys.modules["pkg_resources"] = _make_pkg_resources_stub()


def _pkg_resources_after(_module) -> None:
    if getattr(sys.modules.get("pkg_resources"), "_tfe_accel_stub", False):
        del sys.modules["pkg_resources"]  # scoped to TFE's import: nobody else sees the stub


# ---- while_v2.glob_stateful_parallelism and _build_while_op(stateful_parallelism=) (TF >= 2.13) --
def _while_v2():
    from tensorflow.python.ops import while_v2

    return while_v2


def _stateful_parallelism_needed() -> bool:
    import inspect

    build = _while_v2()._build_while_op
    return "stateful_parallelism" not in inspect.signature(build).parameters


def _stateful_parallelism_before() -> None:
    # TFE reads the flag once, to compute an argument the new _build_while_op no longer takes.
    while_v2 = _while_v2()
    if not hasattr(while_v2, "glob_stateful_parallelism"):
        while_v2.glob_stateful_parallelism = False


def _stateful_parallelism_after(aby3) -> None:
    build = getattr(aby3, "_build_while_op", None)
    if build is None or getattr(build, "_tfe_accel_shim", False):
        return

    def _build_while_op(*args, stateful_parallelism=None, **kwargs):
        return build(*args, **kwargs)

    _build_while_op._tfe_accel_shim = True
    _build_while_op.__wrapped__ = build
    aby3._build_while_op = _build_while_op  # TFE's binding only; TF's own while_v2 is unchanged


# ---- FuncGraph.control_captures -> function_captures.control (TF >= 2.13) ----------------------------
def _func_graph_class():
    from tensorflow.python.framework.func_graph import FuncGraph

    return FuncGraph


def _control_captures(self):
    return self.function_captures.control


_control_captures._tfe_accel_shim = True
_CONTROL_CAPTURES = property(_control_captures, doc="tfe-accel shim: function_captures.control")


def _control_captures_needed() -> bool:
    # TF <= 2.12 sets control_captures on each instance in __init__ (no class attribute, no
    # function_captures); TF >= 2.13 has the function_captures property and no control_captures.
    cls = _func_graph_class()
    prop = cls.__dict__.get("control_captures")
    if prop is _CONTROL_CAPTURES:
        return True
    return prop is None and isinstance(cls.__dict__.get("function_captures"), property)


def _control_captures_after(_aby3) -> None:
    cls = _func_graph_class()
    if "control_captures" not in cls.__dict__:
        cls.control_captures = _CONTROL_CAPTURES


# ---- onnx.mapping (removed in onnx 1.19; TFE's converter imports TENSOR_TYPE_TO_NP_TYPE) ------------
def _onnx_mapping_needed() -> bool:
    mod = sys.modules.get("onnx.mapping")
    if mod is not None:
        return getattr(mod, "_tfe_accel_stub", False)
    if importlib.util.find_spec("onnx") is None:
        return False
    return importlib.util.find_spec("onnx.mapping") is None


def _make_onnx_mapping_stub() -> types.ModuleType:
    """``TENSOR_TYPE_TO_NP_TYPE`` as onnx.mapping had it, from onnx.helper."""
    import onnx
    from onnx import helper

    table = {}
    for code in onnx.TensorProto.DataType.values():
        try:
            table[int(code)] = helper.tensor_dtype_to_np_dtype(code)
        except Exception:  # noqa: BLE001  (UNDEFINED, and types NumPy has no dtype for)
            pass
    stub = types.ModuleType("onnx.mapping")
    stub.__doc__ = "tfe-accel stub: only TENSOR_TYPE_TO_NP_TYPE, for TF Encrypted 0.9.1's converter."
    stub.TENSOR_TYPE_TO_NP_TYPE = table
    stub._tfe_accel_stub = True
    return stub


def _onnx_mapping_before() -> None:
    sys.modules["onnx.mapping"] = _make_onnx_mapping_stub()


def _onnx_mapping_after(_module) -> None:
    if getattr(sys.modules.get("onnx.mapping"), "_tfe_accel_stub", False):
        del sys.modules["onnx.mapping"]


SHIMS: List[Shim] = [
    Shim("pkg_resources", "TFE's __init__ imports pkg_resources, absent with setuptools >= 81 and "
         "in Python 3.12+ venvs: a stub on importlib.metadata during TFE's import", TFE_ROOT,
         _pkg_resources_needed, _pkg_resources_before, _pkg_resources_after),
    Shim("while_v2_stateful_parallelism", "TFE's aby3 imports while_v2.glob_stateful_parallelism and "
         "passes stateful_parallelism= to _build_while_op, both removed in TF 2.13", TFE_ABY3,
         _stateful_parallelism_needed, _stateful_parallelism_before, _stateful_parallelism_after),
    Shim("func_graph_control_captures", "TFE's graph-mode while_loop reads FuncGraph.control_captures, "
         "now function_captures.control (TF 2.13)", TFE_ABY3, _control_captures_needed,
         None, _control_captures_after),
    Shim("onnx_mapping", "TFE's converter imports onnx.mapping.TENSOR_TYPE_TO_NP_TYPE, removed in "
         "onnx 1.19: rebuilt from onnx.helper during the converter's import", TFE_CONVERT,
         _onnx_mapping_needed, _onnx_mapping_before, _onnx_mapping_after),
]


def active_shims() -> List[Shim]:
    """The shims this stack needs (detection may import TensorFlow and onnx)."""
    return [s for s in SHIMS if s.active]


def _shims_for(target: str) -> List[Shim]:
    return [s for s in SHIMS if s.target == target]


def _run_before(shims: List[Shim]) -> List[Shim]:
    """Run the ``before`` steps of the needed shims; return the needed ones."""
    needed = [s for s in shims if s.active]
    for s in needed:
        if s.before is not None:
            s.before()
    return needed


def _run_after(shims: List[Shim], module) -> None:
    for s in shims:
        if s.after is not None:
            s.after(module)
        s.applied = True


class _PatchingLoader(importlib.abc.Loader):
    """Wraps a TFE module's loader: the shims' ``before`` steps, its code, their ``after`` steps."""

    def __init__(self, loader, shims: List[Shim]):
        self._loader = loader
        self._shims = shims

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        needed = _run_before(self._shims)
        try:
            self._loader.exec_module(module)
        finally:
            _run_after(needed, module)

    def __getattr__(self, name):  # get_source, get_resource_reader, ... of the real loader
        return getattr(self._loader, name)


class _TfeImportHook(importlib.abc.MetaPathFinder):
    """Finds the TFE modules some shim targets with the other finders and wraps their loaders."""

    def find_spec(self, fullname, path=None, target=None):
        shims = _shims_for(fullname)
        if not shims:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, shims)
        return spec


_HOOK: Optional[_TfeImportHook] = None


def install() -> None:
    """Install the import hook (idempotent). TFE modules already imported get the ``after`` steps
    of their needed shims now (TFE's import itself can only have succeeded where the ``before``
    steps were not needed)."""
    global _HOOK
    if _HOOK is None:
        _HOOK = _TfeImportHook()
        sys.meta_path.insert(0, _HOOK)
    for target in (TFE_ROOT, TFE_ABY3, TFE_CONVERT):
        module = sys.modules.get(target)
        if module is not None:
            pending = [s for s in _shims_for(target) if not s.applied and s.active]
            _run_after(pending, module)


def describe() -> Dict[str, object]:
    """Name, reason, active and applied of every shim (for ``tfe-accel info``)."""
    return {s.name: {"reason": s.reason, "active": s.active, "applied": s.applied} for s in SHIMS}


if os.environ.get("TFE_ACCEL_NO_COMPAT", "0") in ("", "0"):
    install()
