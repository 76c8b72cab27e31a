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


if __name__ == "__main__":
    raise SystemExit(main())
