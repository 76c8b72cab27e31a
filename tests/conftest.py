"""Shared test set-up: quiet TF logs; helpers for fresh TFE protocol instances."""
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

# Import tfe_accel before anything touches TF's runtime: it splits the CPU into logical devices
# (one per party for PartitionedLocalConfig) and installs its ops into TFE.
import tfe_accel  # noqa: E402,F401

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Version strings come from the running stack, never from this file (the suite runs on TF 2.12-2.21).
BUILT_TF = tfe_accel.read_build_info()["tf_version"]          # e.g. "2.12.1"
BUILT_MINOR = ".".join(BUILT_TF.split(".")[:2])               # e.g. "2.12"
OTHER_TF = f"2.{int(BUILT_TF.split('.')[1]) + 1}.0"           # a TF minor this build refuses


def run_python(code: str, env_extra=None, timeout=300):
    """Run `code` in a fresh interpreter of this venv; returns CompletedProcess (text)."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if env_extra:
        env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


@pytest.fixture
def aby3():
    """A fresh stock ABY3 protocol (after `import tfe_accel`), set as TFE's current protocol."""
    import tf_encrypted as tfe

    import tfe_accel  # noqa: F401

    prot = tfe.protocol.ABY3()
    tfe.set_protocol(prot)
    yield prot


@pytest.fixture(scope="module")
def partitioned_config():
    """One logical CPU device per party (tfe_accel.config.PartitionedLocalConfig) for a module's tests;
    TFE's previous config is restored afterwards (other modules build tensors on its devices)."""
    import tf_encrypted as tfe

    from tfe_accel.config import PartitionedLocalConfig

    before = tfe.get_config()
    tfe.set_config(PartitionedLocalConfig())
    yield
    tfe.set_config(before)
