"""CI guard for the CUDA sources (issue 7): compile every cc/cuda/*.cu for sm_80 and sm_90
(compile-only, no GPU needed) and syntax-check the pybind11 glue cc/cuda/native_cuda.cc with the
host compiler against the CUDA headers. Skipped with a reason when nvcc is absent.
Nothing here runs CUDA code: kernel results are checked on a GPU by bench/gpu_check.sh."""
import concurrent.futures
import os
import pathlib
import shutil
import subprocess
import sysconfig

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CUDA_DIR = ROOT / "cc" / "cuda"
CU_SOURCES = sorted(CUDA_DIR.glob("*.cu"))
ARCHS = ("sm_80", "sm_90")


def _nvcc():
    found = shutil.which("nvcc")
    if found:
        return found
    for cand in ("/usr/local/cuda/bin/nvcc", os.path.join(os.environ.get("CUDA_HOME", "/nonexistent"), "bin", "nvcc")):
        if os.path.exists(cand):
            return cand
    return None


NVCC = _nvcc()
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found (CUDA toolkit absent): CUDA sources not compiled")


def _compile(src, arch, tmp):
    out = tmp / f"{src.stem}_{arch}.o"
    cmd = [NVCC, "-std=c++17", f"-arch={arch}", "-c", str(src), "-o", str(out), "-Xptxas", "-warn-spills",
           "-Werror", "all-warnings"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return src.name, arch, proc.returncode, proc.stdout + proc.stderr


def test_cuda_sources_exist():
    assert CU_SOURCES, "no .cu files under cc/cuda"
    assert (CUDA_DIR / "native_cuda.cc").exists()


def test_every_cu_compiles_for_sm80_and_sm90(tmp_path):
    jobs = [(src, arch) for src in CU_SOURCES for arch in ARCHS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda j: _compile(j[0], j[1], tmp_path), jobs))
    failures = [f"{name} [{arch}] rc={rc}\n{log}" for name, arch, rc, log in results if rc != 0]
    assert not failures, "\n\n".join(failures)
    assert len(results) == 2 * len(CU_SOURCES)
    for name, arch, _, _ in results:
        assert (tmp_path / f"{pathlib.Path(name).stem}_{arch}.o").stat().st_size > 0


def _cuda_include():
    nvcc_dir = pathlib.Path(NVCC).resolve().parent.parent
    for cand in (nvcc_dir / "include", pathlib.Path("/usr/local/cuda/include")):
        if (cand / "cuda_runtime_api.h").exists():
            return cand
    return None


def test_host_glue_syntax():
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no host C++ compiler")
    pybind11 = pytest.importorskip("pybind11")
    inc = _cuda_include()
    if inc is None:
        pytest.skip("CUDA headers not found next to nvcc")
    cmd = [cxx, "-std=gnu++17", "-fsyntax-only", "-Wall", "-Werror", f"-I{pybind11.get_include()}",
           f"-I{sysconfig.get_paths()['include']}", f"-I{inc}", str(CUDA_DIR / "native_cuda.cc")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
