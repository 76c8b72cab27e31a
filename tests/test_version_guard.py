"""The TF-version guard: a build for another TF gives a clear ImportError, never a crash."""
import pytest

from conftest import BUILT_MINOR, BUILT_TF, OTHER_TF, run_python
from tfe_accel import _loader


def test_same_minor_is_accepted():
    _loader.check_tf_version(BUILT_TF, BUILT_MINOR + ".0")
    _loader.check_tf_version(BUILT_TF, BUILT_TF)
    _loader.check_tf_version("2.21.0", "2.21.3")


@pytest.mark.parametrize("built,running", [("2.12.1", "2.13.0"), ("2.12.1", "2.11.1"), ("2.12.1", "3.12.1"),
                                           ("2.21.0", "2.12.1"), ("2.16.2", "2.17.0")])
def test_mismatch_message_names_both_versions_and_the_fix(built, running):
    with pytest.raises(ImportError) as err:
        _loader.check_tf_version(built, running)
    msg = str(err.value)
    minor = ".".join(built.split(".")[:2])
    assert f"built for TensorFlow {built}, but TensorFlow {running} is installed" in msg
    assert f"tensorflow=={minor}.*" in msg and "make clean build" in msg


def test_import_under_a_different_tf_is_a_clean_import_error():
    # Simulate a mismatched TensorFlow before tfe_accel is imported: the guard must run before
    # tf.load_op_library and raise ImportError naming both versions (no segfault, no symbol trace).
    code = r'''
import tensorflow as tf
tf.__version__ = "%s"
try:
    import tfe_accel
except ImportError as e:
    print("IMPORTERROR:", e)
else:
    print("NO ERROR")
''' % OTHER_TF
    r = run_python(code)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "IMPORTERROR:" in r.stdout
    assert f"built for TensorFlow {BUILT_TF}" in r.stdout and f"{OTHER_TF} is installed" in r.stdout
    assert "undefined symbol" not in r.stdout + r.stderr


def test_missing_build_artifacts_are_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(_loader, "BUILD_INFO", tmp_path / "_build_info.json")
    with pytest.raises(ImportError, match="not built"):
        _loader.read_build_info()


def test_cli_under_a_different_tf_prints_the_message_without_traceback():
    code = r'''
import sys
import tensorflow as tf
tf.__version__ = "%s"
sys.argv = ["tfe-accel", "info"]
import tfe_accel_launcher
raise SystemExit(tfe_accel_launcher.main())
''' % OTHER_TF
    r = run_python(code)
    assert r.returncode == 3, (r.stdout, r.stderr[-2000:])
    assert f"built for TensorFlow {BUILT_TF}" in r.stderr and f"{OTHER_TF} is installed" in r.stderr
    assert "Traceback" not in r.stderr
