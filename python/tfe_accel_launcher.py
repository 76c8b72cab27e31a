"""Console entry point of `tfe-accel`, outside the package so that a build made for another
TensorFlow (which `import tfe_accel` refuses) gives its one-paragraph message, not a traceback."""
import os
import sys


class _SkipOptionalJax:
    """Import finder that refuses ``jax`` while TensorFlow is imported by this command.

    TensorFlow 2.12 imports JAX (if installed; pip TF requires it) only for TFLite's
    ``experimental_from_jax`` converter, guarded by ``except ImportError``; no tfe-accel command uses
    it, and it costs ~0.3 s of every command's start. Removed right after the import, so JAX imports
    normally later. ``TFE_ACCEL_IMPORT_JAX=1`` keeps TensorFlow's import of it."""

    def find_spec(self, name, path=None, target=None):
        if name == "jax" or name.startswith("jax.") or name == "jaxlib" or name.startswith("jaxlib."):
            raise ImportError(f"{name} is not imported while tfe-accel starts (TFE_ACCEL_IMPORT_JAX=1 to allow)")
        return None


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    skip = None
    if os.environ.get("TFE_ACCEL_IMPORT_JAX", "0") in ("", "0") and "jax" not in sys.modules:
        skip = _SkipOptionalJax()
        sys.meta_path.insert(0, skip)
    try:
        from tfe_accel.cli import main as cli_main  # imports tfe_accel, hence TensorFlow
    except ImportError as exc:
        if type(exc).__name__ != "BuildMismatchError":
            raise
        print(f"tfe-accel: {exc}", file=sys.stderr)
        return 3
    finally:
        if skip is not None:
            sys.meta_path.remove(skip)
    # Every object alive now (TensorFlow's and TF Encrypted's modules) lives as long as the command:
    # keep the cyclic GC from walking them again on every collection.
    import gc

    gc.freeze()
    return cli_main()


def run() -> None:
    """The console script: ``main()``, then leave at once. Everything the command writes is flushed
    and closed by then; skipping the interpreter's teardown (TensorFlow's module and thread
    destructors) saves about a second per command. ``TFE_ACCEL_FULL_EXIT=1`` keeps the normal exit."""
    code = main()
    if os.environ.get("TFE_ACCEL_FULL_EXIT", "0") not in ("", "0"):
        raise SystemExit(code)
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


if __name__ == "__main__":
    run()
