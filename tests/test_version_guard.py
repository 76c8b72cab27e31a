"""The TF-version guard: a build for another TF gives a clear ImportError, never a crash."""
import pytest

from conftest import run_python
from tfe_accel import _loader


def test_same_minor_is_accepted():
    _loader.check_tf_version("2.12.1", "2.12.0")
    _loader.check_tf_version("2.12.1", "2.12.1")


@pytest.mark.parametrize("running", ["2.13.0", "2.11.1", "3.12.1"])
def test_mismatch_message_names_both_versions_and_the_fix(running):
    with pytest.raises(ImportError) as err:
        _loader.check_tf_version("2.12.1", running)
    msg = str(err.value)
    assert "2.12.1" in msg and running in msg
    assert "tensorflow==2.12.*" in msg and "make clean build" in msg


def test_import_under_a_different_tf_is_a_clean_import_error():
    # Simulate a mismatched TensorFlow before tfe_accel is imported: the guard must run before
    # tf.load_op_library and raise ImportError naming both versions (no segfault, no symbol trace).
    code = r'''
import tensorflow as tf
tf.__version__ = "2.13.0"
try:
    import tfe_accel
except ImportError as e:
    print("IMPORTERROR:", e)
else:
    print("NO ERROR")
'''
    r = run_python(code)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "IMPORTERROR:" in r.stdout
    assert "built for TensorFlow 2.12" in r.stdout and "2.13.0 is installed" in r.stdout
    assert "undefined symbol" not in r.stdout + r.stderr


def test_missing_build_artifacts_are_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(_loader, "BUILD_INFO", tmp_path / "_build_info.json")
    with pytest.raises(ImportError, match="not built"):
        _loader.read_build_info()


def test_cli_under_a_different_tf_prints_the_message_without_traceback():
    code = r'''
import sys
import tensorflow as tf
tf.__version__ = "2.13.0"
sys.argv = ["tfe-accel", "info"]
import tfe_accel_launcher
raise SystemExit(tfe_accel_launcher.main())
'''
    r = run_python(code)
    assert r.returncode == 3, (r.stdout, r.stderr[-2000:])
    assert "built for TensorFlow 2.12" in r.stderr and "2.13.0 is installed" in r.stderr
    assert "Traceback" not in r.stderr
