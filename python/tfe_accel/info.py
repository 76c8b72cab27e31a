"""`tfe-accel info`: what is installed, what it was built against, what runs on this CPU."""
from __future__ import annotations

import json
import os
import platform


def collect_info() -> dict:
    import tensorflow as tf

    from . import __version__, _loader, _native, ops_library, read_build_info

    built = read_build_info()
    ops = _loader.registered_op_names(ops_library)
    feats = _native.cpu_features()
    return {
        "tfe_accel_version": __version__,
        "tf_built_for": built.get("tf_version"),
        "tf_running": tf.__version__,
        "cxx11_abi": built.get("cxx11_abi"),
        "compiler": built.get("compiler"),
        "cuda_built": bool(built.get("cuda")),
        "tf_gpu_kernels": bool(built.get("tf_gpu_kernels")),
        "cuda_device": _cuda_device(),
        "build_commit": built.get("git_commit"),
        "build_date": built.get("build_date"),
        "installed_as": _installed_as(),
        "cpu": cpu_model(),
        "cpu_code_path": _native.code_path(),
        "cpu_features": [k for k, v in feats.items() if v],
        "registered_ops": ops,
        "python": platform.python_version(),
        "stack": stack(),
        "malloc_huge_pages": _malloc_huge_pages(),
    }


def _malloc_huge_pages() -> str:
    """Whether this process's malloc asks for transparent huge pages (the `tfe-accel` command
    re-executes itself with glibc's tunable where that helps, see tfe_accel_launcher)."""
    if "glibc.malloc.hugetlb" in os.environ.get("GLIBC_TUNABLES", ""):
        return "on (GLIBC_TUNABLES=" + os.environ["GLIBC_TUNABLES"] + ")"
    if os.environ.get("TFE_ACCEL_HUGEPAGES", "1") in ("", "0"):
        return "off (TFE_ACCEL_HUGEPAGES=0)"
    return "off (not a `tfe-accel` command, or no glibc >= 2.35 with transparent huge pages in madvise mode)"


STACK_PACKAGES = ("tensorflow", "tf-encrypted", "numpy", "onnx", "keras", "tf_keras", "protobuf",
                  "ml-dtypes", "setuptools")


def stack() -> dict:
    """The software stack tfe-accel runs on: Python, the installed versions of the packages that
    decide which TF Encrypted compatibility shims are needed, and those shims (``tfe_accel_compat``:
    name -> active on this stack / applied in this process)."""
    import importlib.metadata as md

    import tfe_accel_compat

    versions = {}
    for name in STACK_PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    shims = {name: {"active": d["active"], "applied": d["applied"]}
             for name, d in tfe_accel_compat.describe().items()}
    return {"python": platform.python_version(), "packages": versions, "compat_shims": shims}


def format_stack(st: dict) -> tuple:
    """(packages line, shims line) for ``tfe-accel info``."""
    pk = ", ".join(f"{k} {v}" for k, v in st["packages"].items() if v)
    active = [n for n, d in st["compat_shims"].items() if d["active"]]
    shims = ("none needed on this stack" if not active else
             ", ".join(f"{n} ({'applied' if st['compat_shims'][n]['applied'] else 'pending: TFE not imported'})"
                       for n in active))
    return pk, shims


def _cuda_device() -> str:
    """The GPU tfe-accel's own CUDA kernels can use here, or why none."""
    from . import _native

    if "cuda" not in _native.families():
        return "none (CUDA kernels not built)"
    if not _native.cuda_available():
        return "none usable (no GPU, or a driver older than the CUDA these kernels were built with)"
    return _native.cuda_device_name()


def _installed_as() -> str:
    """How this tfe-accel was installed: the wheel's platform tag, editable, or a source tree."""
    import importlib.metadata as md

    try:
        dist = md.distribution("tfe-accel")
    except md.PackageNotFoundError:
        return "not installed (source tree on sys.path)"
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):
        return "editable install (make build)"
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    if not tags:
        return "unknown"
    built_here = all(t.endswith("-linux_x86_64") for t in tags)  # not auditwheel-repaired
    return "wheel " + ", ".join(tags) + (" (built from source on this machine)" if built_here else "")


def cpu_model() -> str:
    """The CPU model name (from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def format_info(info: dict) -> str:
    rows = [
        ("tfe-accel", info["tfe_accel_version"]),
        ("TensorFlow (built for)", info["tf_built_for"]),
        ("TensorFlow (running)", info["tf_running"]),
        ("C++11 ABI / compiler", f"{info['cxx11_abi']} / {info['compiler']}"),
        ("CUDA kernels built", "yes" if info["cuda_built"] else "no"),
        ("TF GPU kernels", "yes (DEVICE_GPU registrations of the fused ops)" if info["tf_gpu_kernels"] else "no"),
        ("CUDA device", info["cuda_device"]),
        ("Build commit / date", f"{info['build_commit']} / {info['build_date']}"
         if info["build_commit"] else "not recorded (source build; wheels record it)"),
        ("Installed as", info["installed_as"]),
        ("CPU", info["cpu"]),
        ("CPU code path", info["cpu_code_path"]),
        ("CPU features", ", ".join(info["cpu_features"]) or "none"),
        ("Python", info["python"]),
        ("Stack", format_stack(info["stack"])[0]),
        ("TFE compat shims", format_stack(info["stack"])[1]),
        ("malloc huge pages", info["malloc_huge_pages"]),
        ("Registered ops", f"{len(info['registered_ops'])}: " + ", ".join(info["registered_ops"])),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
