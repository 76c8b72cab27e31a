"""Console entry point of `tfe-accel`, outside the package so that a build made for another
TensorFlow (which `import tfe_accel` refuses) gives its one-paragraph message, not a traceback."""
import os
import sys


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from tfe_accel.cli import main as cli_main
    except ImportError as exc:
        if type(exc).__name__ != "BuildMismatchError":
            raise
        print(f"tfe-accel: {exc}", file=sys.stderr)
        return 3
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
