"""The C++ kernels under AddressSanitizer + UndefinedBehaviorSanitizer (make test-sanitize).

tests/sanitize/run.sh builds cc/kernels/*.cc and tests/sanitize/driver.cc with
-fsanitize=address,undefined (per-file ISA flags as CMakeLists.txt) and runs the driver once per
code path the CPU has; every kernel is checked against scalar references in the driver, and the
outputs of all code paths must be bit-identical. Known kernel bugs run as strict expected failures
(each must still reproduce). Incremental build under build/sanitize: about 1 to 3 minutes cold on
a 2-core machine, well under a minute of compile when warm.
"""
import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _have_sanitizers(cxx: str) -> bool:
    try:
        r = subprocess.run(
            [cxx, "-fsanitize=address,undefined", "-x", "c++", "-", "-o", os.devnull],
            input="int main(){return 0;}", capture_output=True, text=True, timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def test_kernels_under_asan_ubsan():
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None or not _have_sanitizers(cxx):
        pytest.skip(f"{cxx} with libasan/libubsan is not available")
    r = subprocess.run(
        ["bash", os.path.join(REPO, "tests", "sanitize", "run.sh")],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "[sanitize] OK" in out
    runs = re.findall(r"^CHECKS (\d+) FAILURES (\d+) DIGEST ([0-9a-f]+) PATH (\w+)$", out, re.M)
    assert runs, out[-3000:]
    assert {p for _, _, _, p in runs} >= {"portable"}
    assert all(int(f) == 0 and int(c) > 5000 for c, f, _, _ in runs), runs
    assert len({d for _, _, d, _ in runs}) == 1, runs  # code paths bit-identical
    # each known-bug reproducer still reproduces (or is skipped on a CPU without its path)
    assert "XPASS" not in out
