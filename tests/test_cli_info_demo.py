"""`tfe-accel info` and `tfe-accel demo` end to end (console script in the venv)."""
import os
import subprocess
import sys

BIN = os.path.join(os.path.dirname(sys.executable), "tfe-accel")


def _run(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_info_lists_versions_paths_and_ops():
    r = _run("info")
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    import tensorflow as tf

    from conftest import BUILT_TF

    assert f"TensorFlow (built for)  {BUILT_TF}" in out and f"TensorFlow (running)    {tf.__version__}" in out
    assert f"tensorflow {tf.__version__}" in out and "TFE compat shims" in out
    assert "CPU code path" in out
    for op in ("SecureSeededRandomUniform", "SecureSeed", "BitGather", "BitSplitAndGather",
               "BitReverse", "XorIndices", "TfeAccelBuildInfo"):
        assert op in out
    assert "CUDA kernels built" in out


def test_demo_prints_a_correct_secure_computation():
    r = _run("demo", "--size", "16")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "CORRECT" in r.stdout
    assert "private matmul" in r.stdout and "private sigmoid" in r.stdout


def test_no_command_prints_help_and_fails():
    r = _run()
    assert r.returncode == 2
    assert "usage" in r.stdout.lower()
