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


def test_huge_pages_env_only_where_it_changes_something():
    from tfe_accel_launcher import HUGE_PAGES_TUNABLE, huge_pages_env

    madvise = "always [madvise] never\n"
    env = huge_pages_env({"PATH": "/bin"}, "glibc 2.36", madvise)
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": HUGE_PAGES_TUNABLE}
    # the user's own tunables are kept, the new one appended
    env = huge_pages_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "glibc 2.35", madvise)
    assert env["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{HUGE_PAGES_TUNABLE}"
    for environ, libc, thp in [
        ({"GLIBC_TUNABLES": HUGE_PAGES_TUNABLE}, "glibc 2.36", madvise),  # already set: no loop
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "glibc 2.36", madvise),  # the user's choice
        ({"TFE_ACCEL_HUGEPAGES": "0"}, "glibc 2.36", madvise),  # opt-out
        ({}, "glibc 2.34", madvise),  # no such tunable before 2.35
        ({}, "musl 1.2", madvise), ({}, "", madvise), ({}, "glibc x.y", madvise),
        ({}, "glibc 2.36", "[always] madvise never"),  # huge pages already
        ({}, "glibc 2.36", "always madvise [never]"),  # none to be had
    ]:
        assert huge_pages_env(environ, libc, thp) is None, (environ, libc, thp)


def test_command_runs_with_huge_pages_where_available_and_opts_out():
    import json

    from tfe_accel_launcher import huge_pages_env

    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            thp = f.read()
        libc = os.confstr("CS_GNU_LIBC_VERSION")
    except (OSError, ValueError):
        thp, libc = "", ""
    clean = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "TFE_ACCEL_HUGEPAGES")}
    expect_on = huge_pages_env(clean, libc, thp) is not None
    for extra, on in (({}, expect_on), ({"TFE_ACCEL_HUGEPAGES": "0"}, False)):
        r = subprocess.run([BIN, "info", "--json"], capture_output=True, text=True, timeout=300,
                           env=dict(clean, TF_CPP_MIN_LOG_LEVEL="2", **extra))
        assert r.returncode == 0, r.stderr[-2000:]
        state = json.loads(r.stdout)["malloc_huge_pages"]
        assert state.startswith("on" if on else "off"), (extra, state)
