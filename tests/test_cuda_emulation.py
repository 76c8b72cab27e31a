"""The CUDA kernels EXECUTED on the CPU, unchanged, through the emulation build
(cc/cuda/emulator/emulation.h, cc/cuda/emulator/emulation_runtime.cc): prg_elementwise.cu,
truncation_msb0.cu, kogge_stone.cu, sigmoid_pieces.cu, ring_matmul.cu and the pybind11 glue
cc/python/native_cuda.cc are compiled by the host C++ compiler with -DTFE_ACCEL_CUDA_EMULATION
against the CUDA toolkit's headers into a test module `_cuda_emu` (tests/cuda_host/cuda_emu_module.cc). The threads of a block run as
fibers, so __syncthreads, __shfl_down_sync and mma.sync (fragment layouts from the PTX ISA) work.
bench/gpu_check.py's sections then compare every cuda_* entry point, bit for bit, with the CPU kernels
of `_native` and NumPy: the elementwise ones (check_prg, check_rss_mul, check_truncation, check_msb0,
check_kogge_stone, check_sigmoid_pieces) under three launch geometries: every thread of the real grid
in order ('full'), the same threads in reverse order ('reverse') and one thread for the whole launch
('single': the grid-stride loops alone must cover every element); the GEMM ones (check_ring_matmul,
check_rss_matmul: every algo, all of gpu_check's cases) under 'full' and 'reverse'. Further sections:
the emulator's self-tests (launches, memory checks, barriers, shuffles, dynamic shared memory limits,
the mma.sync emulation against NumPy), GEMM extras (worst-case limb accumulators, GEMV over many K
slices, empty rss_matmul shapes, device arrays, the GEMM benchmark entry point), the device-array and
DLPack paths, empty and 0-d shapes, argument errors raised like the CPU functions', device queries.

The emulated device memory ends at a guard page and is canary-checked, and the build uses UBSan
where the compiler has it, so out-of-bounds accesses and undefined behaviour in the kernels or the
glue fail these tests. The checks run in a worker process (tests/cuda_host/run_emulated_checks.py)
so that a fault fails them instead of killing pytest.

Not covered here (no GPU): real concurrency, the device memory model, timings, occupancy, nvcc's code
generation (check_large 8192^3 and the benchmarks); bench/gpu_check.sh runs everything on a GPU.
Skipped with a reason when nvcc / the CUDA headers, a host C++ compiler or pybind11 is missing."""
import concurrent.futures
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import time

import pytest

from test_cuda_compile import CUDA_GLUE, NVCC, ROOT, _cuda_include

CUDA_INCLUDE = _cuda_include() if NVCC else None
CXX = shutil.which("c++") or shutil.which("g++")
try:
    import pybind11
except ImportError:  # pragma: no cover
    pybind11 = None

_missing = [what for what, ok in [("nvcc / the CUDA toolkit headers", CUDA_INCLUDE is not None),
                                  ("a host C++ compiler", CXX is not None), ("pybind11", pybind11 is not None)]
            if not ok]
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"CUDA emulation not built: {', '.join(_missing)} not found")

CUDA_DIR = ROOT / "cc" / "cuda"
EMULATOR_DIR = CUDA_DIR / "emulator"
KERNELS_DIR = ROOT / "cc" / "kernels"
WORKER = ROOT / "tests" / "cuda_host" / "run_emulated_checks.py"
EMULATED_CU = ["prg_elementwise.cu", "truncation_msb0.cu", "kogge_stone.cu", "sigmoid_pieces.cu", "ring_matmul.cu"]
# The CPU kernel code native_cuda.cc calls (SeedPlusNonce, cc/kernels/chacha20.cc), with what
# chacha20.cc links against: its AVX2 / AVX-512 code paths (CMakeLists.txt's ISA flags; chosen at
# run time) and cpu_features.cc.
KERNEL_SOURCES = {
    "chacha20.cc": [],
    "cpu_features.cc": [],
    "chacha20_avx2.cc": ["-mavx2", "-mfma"],
    "chacha20_avx512.cc": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma", "-mbmi2"],
}
# The worker's section tables and run plan (one source): elementwise sections under every geometry,
# GEMM sections (cooperative kernels: barriers, warp shuffles, mma.sync) under 'full' and 'reverse'
# only ('single', one thread per launch, is for grid-stride kernels), extra sections under 'full'.
_spec = importlib.util.spec_from_file_location("run_emulated_checks", WORKER)
_worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_worker)
GPU_CHECK_SECTIONS, GEMM_SECTIONS, EXTRA_SECTIONS = (_worker.GPU_CHECK_SECTIONS, _worker.GEMM_SECTIONS,
                                                     _worker.EXTRA_SECTIONS)
GEOMETRIES, GEMM_GEOMETRIES, PLAN = _worker.GEOMETRIES, _worker.GEMM_GEOMETRIES, _worker.PLAN


def _compile(args):
    src, cmd = args
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return src, proc.returncode, proc.stdout + proc.stderr, time.time() - t0


def _ubsan_available(tmp):
    probe = tmp / "ubsan_probe.cc"
    probe.write_text("int f(int a) { return a + 1; }\n")
    proc = subprocess.run([CXX, "-fsanitize=undefined", "-fPIC", "-shared", str(probe), "-o", str(tmp / "probe.so")],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode == 0


@pytest.fixture(scope="module")
def emulation_module(tmp_path_factory):
    """Builds _cuda_emu into a temporary folder: one compiler run per source, in parallel, -O1."""
    out = tmp_path_factory.mktemp("cuda_emu")
    ubsan = ["-fsanitize=undefined"] if _ubsan_available(out) else []
    common = [CXX, "-std=gnu++17", "-O1", "-fPIC", "-fvisibility=hidden", "-pthread", *ubsan,
              "-DTFE_ACCEL_CUDA_EMULATION", "-I", str(CUDA_INCLUDE), "-I", str(CUDA_DIR),
              "-I", pybind11.get_include(), "-I", sysconfig.get_paths()["include"]]
    strict = ["-Wall", "-Werror", "-Wno-unknown-pragmas"]  # the CUDA sources keep their #pragma unroll
    jobs = []
    # -fno-strict-aliasing: the kernels read shared memory bytes through u32 / uint4 pointers, which CUDA
    # defines; the host compiler must not assume otherwise.
    for name in EMULATED_CU:
        jobs.append((name, [*common, *strict, "-fno-strict-aliasing", "-x", "c++", "-c", str(CUDA_DIR / name),
                            "-o", str(out / f"{name}.o")]))
    for src in [CUDA_GLUE, EMULATOR_DIR / "emulation_runtime.cc",
                ROOT / "tests" / "cuda_host" / "cuda_emu_module.cc"]:
        opt = ["-O2"] if src.name == "emulation_runtime.cc" else []  # the mma.sync arithmetic and fiber switches
        jobs.append((src.name, [*common, *strict, *opt, "-c", str(src), "-o", str(out / f"{src.name}.o")]))
    for name, isa in KERNEL_SOURCES.items():  # another team's code: its warnings are not errors here
        jobs.append((name, [*common, "-Wall", *isa, "-c", str(KERNELS_DIR / name), "-o", str(out / f"{name}.o")]))
    jobs.sort(key=lambda j: j[0] != "native_cuda.cc")  # the longest first
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(_compile, jobs))
    failures = [f"{src} rc={rc}\n{log}" for src, rc, log, _ in results if rc != 0]
    assert not failures, "emulation build failed:\n\n" + "\n\n".join(failures)
    so = out / f"_cuda_emu{sysconfig.get_config_var('EXT_SUFFIX')}"
    link = [CXX, "-shared", "-pthread", *ubsan, "-o", str(so), *(str(out / f"{src}.o") for src, _ in jobs)]
    proc = subprocess.run(link, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    took = time.time() - t0
    slowest = ", ".join(f"{src} {t:.1f}s" for src, _, _, t in sorted(results, key=lambda r: -r[3])[:3])
    print(f"\n[cuda emulation] built {so.name} from {len(jobs)} sources in {took:.1f}s on {os.cpu_count()} cores "
          f"(UBSan {'on' if ubsan else 'off: not available'}; slowest: {slowest})")
    return {"dir": out, "ubsan": bool(ubsan)}


@pytest.fixture(scope="module")
def emulated_run(emulation_module):
    """Runs every section in a worker process; when the worker dies (a fault), the section it was
    running is recorded as crashed and a fresh worker runs the sections still to do."""
    plan = list(PLAN)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    sections, crashed, runs, seed = {}, {}, [], None
    t0 = time.time()
    while plan and len(runs) < 6:
        out = emulation_module["dir"] / f"results{len(runs)}.json"
        cmd = [sys.executable, str(WORKER), "--module-dir", str(emulation_module["dir"]), "--out", str(out),
               "--sections", ",".join(plan)]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=str(ROOT))
        runs.append(proc)
        res = json.loads(out.read_text()) if out.exists() else {"sections": {}, "running": None}
        seed = res.get("seed", seed)
        sections.update(res["sections"])
        done = set(res["sections"])
        stopped = res.get("running")
        if stopped is not None or proc.returncode != 0:
            crashed[stopped or plan[0]] = proc
            done.add(stopped or plan[0])
        plan = [k for k in plan if k not in done]
    nchecks = sum(len(s["checks"]) for s in sections.values())
    print(f"\n[cuda emulation] {len(sections)} sections, {nchecks} checks in {time.time() - t0:.1f}s, "
          f"{len(runs)} worker run(s), {len(crashed)} crashed (gpu_check RNG seed {seed})")
    return {"sections": sections, "crashed": crashed, "not_run": plan, "runs": runs, "seed": seed,
            "device": res.get("device", "")}


def _section(run, key):
    if key in run["crashed"]:
        proc = run["crashed"][key]
        pytest.fail(f"{key}: the worker process died in this section (rc {proc.returncode}; a fault on the emulated "
                    f"device memory's guard page is an out-of-bounds access)\n--- worker stderr (tail) ---\n"
                    f"{proc.stderr[-6000:]}\n--- stdout (tail) ---\n{proc.stdout[-3000:]}")
    if key not in run["sections"]:
        pytest.fail(f"{key} did not run (too many worker crashes: {sorted(run['crashed'])})")
    return run["sections"][key]


def _assert_all_ok(run, key):
    sec = _section(run, key)
    checks = sec["checks"]
    failed = [c for c in checks if not c["ok"]]
    if failed:
        print(f"{key}: {len(failed)} of {len(checks)} checks FAILED (gpu_check RNG seed {run['seed']}):")
        for c in failed:
            print(f"  FAIL {c['name']}: {c['detail']}")
    assert checks, f"{key} added no checks"
    assert not failed, f"{key}: failed checks: " + "; ".join(f"{c['name']} ({c['detail']})" for c in failed[:20])
    return sec


@pytest.mark.parametrize("section", GPU_CHECK_SECTIONS)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_gpu_check_section(emulated_run, geometry, section):
    """bench/gpu_check.py's section on the emulated CUDA kernels: every check passes."""
    sec = _assert_all_ok(emulated_run, f"{geometry}/{section}")
    if section != "check_prg" or geometry == "full":
        assert sec["launches"] > 0, "no kernel was launched in emulation"


@pytest.mark.parametrize("section", GEMM_SECTIONS)
@pytest.mark.parametrize("geometry", GEMM_GEOMETRIES)
def test_gpu_check_gemm_section(emulated_run, geometry, section):
    """bench/gpu_check.py's GEMM section (every algo: auto, simt, tensor_core, gemv where valid) on the
    emulated ring_matmul.cu: every check passes, and the cooperative kernels really ran."""
    sec = _assert_all_ok(emulated_run, f"{geometry}/{section}")
    assert sec["launches"] > 0 and sec["warp_ops"] > 0 and sec["fiber_switches"] > 0, sec


@pytest.mark.parametrize("section", EXTRA_SECTIONS)
def test_emulation_section(emulated_run, section):
    _assert_all_ok(emulated_run, f"full/{section}")


def test_worker_finished_without_undefined_behaviour(emulation_module, emulated_run):
    assert not emulated_run["crashed"], f"the worker died in {sorted(emulated_run['crashed'])}"
    assert all(p.returncode == 0 for p in emulated_run["runs"])
    assert emulated_run["device"].startswith("CPU emulation of the CUDA kernels"), emulated_run["device"]
    if not emulation_module["ubsan"]:
        pytest.skip("the compiler has no UBSan: undefined behaviour not checked")
    reports = [line for p in emulated_run["runs"] for line in (p.stdout + p.stderr).splitlines()
               if "runtime error:" in line]
    assert not reports, "UBSan reports from the emulated kernels / glue:\n" + "\n".join(reports[:40])


@pytest.mark.slow
def test_gpu_check_under_numpy2(emulation_module, tmp_path):
    """The GPU machine's NumPy may be 2.x (NEP 50 scalar promotion, new overflow errors), while this
    project pins TF 2.12's NumPy 1.x: every gpu_check section also passes under NumPy >= 2, run by the
    same worker on the same emulated kernels from a throwaway venv (numpy from PyPI, nothing else)."""
    venv = tmp_path / "np2-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "numpy>=2"], capture_output=True,
                         text=True, timeout=600)
    if pip.returncode != 0:
        pytest.skip(f"could not install numpy>=2 from the package index: {pip.stderr[-500:]}")
    version = subprocess.run([str(py), "-c", "import numpy; print(numpy.__version__)"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert int(version.split(".")[0]) >= 2, version
    # The worker compares against the CPU kernels of tfe_accel._native; give it just that module (the
    # package's __init__ would import TensorFlow, which needs NumPy 1.x).
    from tfe_accel import _native

    pkg = tmp_path / "pkg" / "tfe_accel"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / pathlib.Path(_native.__file__).name).symlink_to(_native.__file__)
    out = tmp_path / "np2.json"
    env = dict(os.environ, PYTHONPATH=str(pkg.parent))
    proc = subprocess.run([str(py), str(WORKER), "--module-dir", str(emulation_module["dir"]), "--out", str(out)],
                          capture_output=True, text=True, timeout=1200, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, f"worker under NumPy {version} failed:\n{proc.stderr[-6000:]}\n{proc.stdout[-3000:]}"
    res = json.loads(out.read_text())
    assert set(res["sections"]) == set(PLAN), sorted(set(PLAN) - set(res["sections"]))
    checks = [c for s in res["sections"].values() for c in s["checks"]]
    failed = [c for c in checks if not c["ok"]]
    assert len(checks) > 1000 and not failed, (version, failed[:10])
    print(f"\n[cuda emulation] NumPy {version}: {len(checks)} checks passed")
