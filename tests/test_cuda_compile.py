"""CI guard for the CUDA sources: compile every cc/cuda/*.cu for sm_80 and sm_90
(compile-only, no GPU needed) and syntax-check the pybind11 glue cc/python/native_cuda.cc with the
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
CUDA_GLUE = ROOT / "cc" / "python" / "native_cuda.cc"
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


def _compile(src, tmp):
    """One nvcc run per file producing SASS for every arch in ARCHS (the host pass runs once);
    ptxas warnings (register spills included) are errors."""
    out = tmp / f"{src.stem}.o"
    gencode = []
    for arch in ARCHS:
        cc = arch.split("_")[1]
        gencode += ["-gencode", f"arch=compute_{cc},code=sm_{cc}"]
    cmd = [NVCC, "-std=c++17", *gencode, "-c", str(src), "-o", str(out), "-Xptxas", "-warn-spills",
           "-Werror", "all-warnings"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return src.name, proc.returncode, proc.stdout + proc.stderr


def test_cuda_sources_exist():
    assert CU_SOURCES, "no .cu files under cc/cuda"
    assert CUDA_GLUE.exists()


def test_every_cu_compiles_for_sm80_and_sm90(tmp_path):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda src: _compile(src, tmp_path), CU_SOURCES))
    failures = [f"{name} {ARCHS} rc={rc}\n{log}" for name, rc, log in results if rc != 0]
    assert not failures, "\n\n".join(failures)
    assert len(results) == len(CU_SOURCES)
    for name, _, _ in results:
        obj = (tmp_path / f"{pathlib.Path(name).stem}.o").read_bytes()
        for arch in ARCHS:  # the fatbinary names each SASS target
            assert arch.encode() in obj, f"{name}: no {arch} code in the object"


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
           f"-I{sysconfig.get_paths()['include']}", f"-I{inc}", str(CUDA_GLUE)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
