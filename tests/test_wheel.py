"""Packaging: the sdist holds everything a source build needs (fast); the wheel built by
.ci/build_wheel.sh from a clean export of HEAD installs into a fresh venv and works there with no
compiler on PATH and no source tree: `tfe-accel info`, a secure matmul with stock ABY3 and with
AcceleratedABY3 under the default and the forced portable/avx2 CPU paths, and the TF version guard
(slow: builds the wheel unless dist/ holds one for HEAD, then installs TensorFlow into a venv)."""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import OTHER_TF

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
COMPILERS = ("cc", "c++", "gcc", "g++", "clang", "clang++", "cmake", "ninja", "make", "nvcc", "ld")


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def _have_git() -> bool:
    return shutil.which("git") is not None and (ROOT / ".git").exists()


# ---- fast: the sdist -----------------------------------------------------------------------------


@pytest.mark.skipif(not _have_git(), reason="needs the git checkout (the sdist is built from tracked files)")
def test_sdist_holds_everything_a_source_build_needs(tmp_path):
    # Build the sdist from a copy of the tracked files (what a clean clone has, with this tree's
    # edits), so the shared working tree gets no egg-info or build outputs.
    tracked = [p for p in _git("ls-files", "-z").split("\0") if p]
    src = tmp_path / "src"
    for rel in tracked:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    # build outputs a working tree may hold: none of them may reach the sdist
    (src / "python/tfe_accel/_build_info.json").write_text("{}")
    (src / "python/tfe_accel/_tfe_accel_ops.so").write_bytes(b"")
    (src / "build/cmake-py311").mkdir(parents=True)
    (src / "build/cmake-py311/CMakeCache.txt").write_text("")
    r = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path / "out"), "."],
        cwd=src, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (sdist,) = (tmp_path / "out").glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        pkg_info = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("/PKG-INFO")
                                        and m.name.count("/") == 1)).read().decode()
        requires = tar.extractfile(next(m for m in tar.getmembers()
                                        if m.name.endswith(".egg-info/requires.txt"))).read().decode()

    for must in ("CMakeLists.txt", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md"):
        assert must in names, f"{must} missing from the sdist"
    needed = [p for p in tracked if p.startswith(("cc/", "cmake/", "python/", "constraints/"))]
    assert any(p.startswith("cc/kernels/") for p in needed) and any(p.startswith("cc/tf/") for p in needed)
    missing = sorted(p for p in needed if p not in names)
    assert not missing, f"tracked build inputs missing from the sdist: {missing}"
    data = [p for p in tracked if p.startswith("python/tfe_accel/data/")]
    assert "python/tfe_accel/data/golub.npz" in data and set(data) <= names
    leaked = sorted(n for n in names if n.endswith((".so", ".o", ".pyc")) or n.startswith("build/")
                    or n.endswith("_build_info.json"))
    assert not leaked, f"build outputs in the sdist: {leaked}"
    # the sdist builds for any TF minor 2.12-2.21 (a wheel then requires the one it was built for)
    assert "tensorflow<2.22,>=2.12" in requires.splitlines(), requires
    assert "Requires-Python: >=3.11,<3.14" in pkg_info
    assert "+tf" not in pkg_info.split("Version:", 1)[1].splitlines()[0]


# ---- slow: the wheel in a fresh venv -----------------------------------------------------------------

CHECK_SCRIPT = r'''
"""Runs inside the fresh venv (cwd: a temp dir, no PYTHONPATH): prints one JSON line."""
import hashlib, json, os, shutil, sys
import numpy as np
import tfe_accel  # first, as documented: installs its ops into TF Encrypted
import tensorflow as tf
import tf_encrypted as tfe
from tf_encrypted.operations.secure_random import secure_random as tfe_sr
from tfe_accel import _native, ops as tfe_ops
from tfe_accel.protocol import AcceleratedABY3

out = {"tfe_accel_file": tfe_accel.__file__, "code_path": _native.code_path(),
       "ring_gemm_path": _native.ring_gemm_path(), "tf": tf.__version__,
       "tools_on_path": sorted(t for t in sys.argv[1].split(",") if shutil.which(t)),
       "tfe_uses_our_prg": tfe_sr.secure_random_module is tfe_accel.ops_library
                           and tfe_sr.supports_seeded_randomness()}

# kernels: wrapping uint64 ring matmul vs a NumPy reference (edge values included), PRG digest
rng = np.random.default_rng()
a = rng.integers(-2**63, 2**63, size=(37, 29), dtype=np.int64)
b = rng.integers(-2**63, 2**63, size=(29, 23), dtype=np.int64)
a[0, :5] = [0, 1, -1, 2**63 - 1, -2**63]
b[:5, 0] = [-2**63, 2**63 - 1, -1, 1, 0]
with np.errstate(over="ignore"):
    ref = (a.astype(np.uint64) @ b.astype(np.uint64)).view(np.int64)
out["ring_matmul_exact"] = bool(np.array_equal(_native.ring_matmul(a, b), ref))
seed = np.arange(8, dtype=np.int32) * 7919 - 5
prg = _native.seeded_uniform([1000], seed, -2**63, 2**63 - 1, "int64")
op_prg = tfe_ops.seeded_random_uniform([1000], tf.constant(seed), -2**63, 2**63 - 1).numpy()
out["prg_op_equals_native"] = bool(np.array_equal(prg, op_prg))
out["prg_digest"] = hashlib.sha256(prg.tobytes()).hexdigest()

# secure matmul: three parties in this process, reveal, compare with plaintext
x = rng.uniform(-3, 3, size=(12, 9))
y = rng.uniform(-3, 3, size=(9, 7))
tfe.set_config(tfe.LocalConfig(["server0", "server1", "server2", "input-provider"]))
for name, prot in (("stock_aby3", tfe.protocol.ABY3()), ("accelerated_aby3", AcceleratedABY3())):
    tfe.set_protocol(prot)
    xs = tfe.define_private_input("input-provider", lambda: tf.constant(x))
    ys = tfe.define_private_input("input-provider", lambda: tf.constant(y))
    z = tfe.matmul(xs, ys).reveal().to_native().numpy()
    out[name + "_max_err"] = float(np.abs(z - x @ y).max())
print("RESULT " + json.dumps(out))
'''

GUARD_SCRIPT = r'''
import tensorflow as tf
tf.__version__ = "%s"   # pretend the user upgraded TensorFlow
try:
    import tfe_accel
except ImportError as e:
    print("IMPORTERROR " + str(e))
else:
    print("NO ERROR")
'''


def _wheel_commit(whl: Path) -> str:
    with zipfile.ZipFile(whl) as z:
        return json.loads(z.read("tfe_accel/_build_info.json")).get("git_commit", "")


def _wheel_for_head() -> Path:
    """dist/'s wheel if it was built from HEAD, else build one (non-isolated: the venv holds the
    pinned build requirements, which saves installing TF a second time)."""
    head = _git("rev-parse", "HEAD").strip()
    wheels = sorted(DIST.glob("tfe_accel-*.whl"))
    if len(wheels) == 1 and _wheel_commit(wheels[0]) == head:
        return wheels[0]
    env = dict(os.environ, TFE_ACCEL_WHEEL_ISOLATION="0")
    r = subprocess.run(["bash", str(ROOT / ".ci/build_wheel.sh"), sys.executable], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    (whl,) = DIST.glob("tfe_accel-*.whl")
    assert _wheel_commit(whl) == head
    return whl


def _tools_dir(tmp: Path) -> Path:
    """A PATH entry with the few system tools a user's shell has, and no compiler or build tool."""
    d = tmp / "tools"
    d.mkdir()
    for tool in ("sh", "bash", "env", "uname", "ls", "cat", "ldconfig"):
        found = shutil.which(tool, path="/usr/bin:/bin:/usr/sbin:/sbin")
        if found:
            (d / tool).symlink_to(found)
    return d


@pytest.mark.slow
@pytest.mark.skipif(not _have_git(), reason="needs the git checkout (the wheel is built from HEAD)")
def test_wheel_installs_and_runs_without_compiler_or_source_tree(tmp_path):
    whl = _wheel_for_head()
    import tensorflow as tf

    minor = tf.__version__.split(".")[:2]
    py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    # the wheel names the TF minor its op library was built for (local version label) and requires it
    assert f"+tf{'.'.join(minor)}-{py}-{py}-manylinux_" in whl.name and whl.name.endswith("_x86_64.whl"), whl.name
    with zipfile.ZipFile(whl) as z:
        files = z.namelist()
        meta = z.read(next(n for n in files if n.endswith(".dist-info/METADATA"))).decode()
        built = json.loads(z.read("tfe_accel/_build_info.json"))
    assert {"tfe_accel/_tfe_accel_ops.so", f"tfe_accel/_native.cpython-{py[2:]}-x86_64-linux-gnu.so",
            "tfe_accel_compat.py", "tfe_accel_compat.pth",
            "tfe_accel/_build_info.json", "tfe_accel/data/golub.npz"} <= set(files)
    assert not [n for n in files if ".libs/" in n], "auditwheel bundled libraries (TF must stay excluded)"
    assert f"Requires-Dist: tensorflow<{minor[0]}.{int(minor[1]) + 1},>={'.'.join(minor)}" in meta, meta
    assert built["tf_version"] == tf.__version__ and built["cxx11_abi"] == "1"
    # TFE_ACCEL_CUDA=AUTO: the CUDA kernels and TF GPU kernels are in the wheel exactly when the
    # build machine had nvcc (pip's TF 2.12.1 is a CUDA build).
    nvcc = shutil.which("nvcc") is not None or os.path.exists("/usr/local/cuda/bin/nvcc")
    assert built["cuda"] is nvcc and built["tf_gpu_kernels"] is nvcc
    assert built["march_native"] is False and "-march" not in json.dumps(built["compile_flags"])

    # a fresh venv, outside the source tree; no compiler on PATH, no PYTHONPATH
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    vbin = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{vbin}:{_tools_dir(tmp_path)}", TF_CPP_MIN_LOG_LEVEL="2", VIRTUAL_ENV=str(venv))
    env.pop("TFE_ACCEL_FORCE_PATH", None)
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    def run(cmd, extra=None, timeout=900):
        return subprocess.run(cmd, cwd=run_dir, env=dict(env, **(extra or {})), capture_output=True,
                              text=True, timeout=timeout)

    for tool in COMPILERS:
        assert shutil.which(tool, path=env["PATH"]) is None, f"{tool} is on the test PATH"
    r = run([str(vbin / "python"), "-m", "pip", "install", "--quiet", str(whl)])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    r = run([str(vbin / "tfe-accel"), "info"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert built["tf_version"] in r.stdout and built["git_commit"][:12] in r.stdout, r.stdout
    assert "manylinux_" in r.stdout, r.stdout   # installed from the repaired wheel

    (run_dir / "check_wheel.py").write_text(CHECK_SCRIPT)
    results = {}
    for forced in (None, "portable", "avx2"):
        r = run([str(vbin / "python"), "check_wheel.py", ",".join(COMPILERS)],
                {"TFE_ACCEL_FORCE_PATH": forced} if forced else None)
        assert r.returncode == 0, f"forced={forced}\n" + r.stdout[-3000:] + r.stderr[-3000:]
        res = json.loads(r.stdout.split("RESULT ", 1)[1].splitlines()[0])
        results[forced or "default"] = res
        assert res["tfe_accel_file"].startswith(str(venv)), res["tfe_accel_file"]
        assert res["tools_on_path"] == [], res
        assert res["ring_matmul_exact"] and res["prg_op_equals_native"], res
        assert res["tfe_uses_our_prg"], res
        # fixed-point bound: 16 fractional bits, 9 products of |values| <= 3 each
        assert res["stock_aby3_max_err"] < 1e-3 and res["accelerated_aby3_max_err"] < 1e-3, res
    assert results["portable"]["code_path"] == "portable"
    assert results["portable"]["ring_gemm_path"] == "portable"
    assert results["avx2"]["code_path"] in ("avx2", "portable")  # never above what the CPU has
    assert len({res["prg_digest"] for res in results.values()}) == 1, "PRG differs between CPU paths"

    # `tfe-accel bench` from the wheel, outside the source tree: the kernel benchmarks are in the
    # package (no bench/ scripts needed); the GPU section says why it is skipped
    r = run([str(vbin / "tfe-accel"), "bench", "kernels", "--quick", "--output", str(run_dir / "bench")])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    kern = json.loads((run_dir / "bench" / "results.json").read_text())["kernels"]
    assert kern["matmul"]["status"] == "ok" and kern["mpc_steps"]["status"] == "ok", kern
    assert kern["matmul"]["module"] == "tfe_accel.benchmarks.kernel_matmul"
    r = run([str(vbin / "tfe-accel"), "bench", "gpu", "--output", str(run_dir / "bench_gpu")])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    gpu = json.loads((run_dir / "bench_gpu" / "results.json").read_text())["gpu"]
    if not built["cuda"]:
        assert gpu["status"] == "skipped" and "CUDA kernels not built" in gpu["reason"], gpu
    else:  # no GPU on a CI machine: a skip with the reason (GPU timings need bench/gpu_check.py)
        assert gpu["status"] == "skipped" and "no GPU usable" in gpu["reason"], gpu

    # the TF version guard works from the wheel: a clear ImportError naming both versions
    (run_dir / "guard.py").write_text(GUARD_SCRIPT % OTHER_TF)
    r = run([str(vbin / "python"), "guard.py"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert (f"IMPORTERROR tfe-accel was built for TensorFlow {built['tf_version']}, but TensorFlow "
            f"{OTHER_TF} is installed.") in r.stdout, r.stdout
    assert "undefined symbol" not in r.stdout + r.stderr
