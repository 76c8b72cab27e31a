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


HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"


def huge_pages_env(environ, libc_version: str, thp_setting: str):
    """The environment to re-execute this command in so that glibc's malloc asks the kernel for
    transparent huge pages (``madvise(MADV_HUGEPAGE)`` on its mappings), or None to run as is.

    Measured on this project's 2-core VM (THP ``madvise``), ``tfe-accel train`` at BC-TCGA shape:
    about a fifth of the process's CPU time was the kernel zeroing 4 KiB pages on first touch of
    freshly mapped tensor memory (the shares of the training matrix); with 2 MiB pages the sharing
    and preprocessing phase is ~0.3-0.4 s shorter. Only where it changes something: Linux, glibc
    >= 2.35 (the tunable's first release), THP in ``madvise`` mode (``always`` already gives huge
    pages, ``never`` none), the tunable not set already (by the user, or by this re-execution), and
    ``TFE_ACCEL_HUGEPAGES`` not ``0``."""
    if environ.get("TFE_ACCEL_HUGEPAGES", "1") in ("", "0"):
        return None
    tunables = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables:
        return None
    name, _, version = (libc_version or "").partition(" ")
    try:
        major_minor = tuple(int(v) for v in version.split(".")[:2])
    except ValueError:
        return None
    if name != "glibc" or major_minor < (2, 35) or "[madvise]" not in (thp_setting or ""):
        return None
    env = dict(environ)
    env["GLIBC_TUNABLES"] = f"{tunables}:{HUGE_PAGES_TUNABLE}" if tunables else HUGE_PAGES_TUNABLE
    return env


def _reexec_with_huge_pages() -> None:
    """Re-execute the console script once with :func:`huge_pages_env`'s environment (before
    TensorFlow is imported: glibc reads its tunables at process start). The party servers and
    workers this command starts inherit it."""
    if not sys.platform.startswith("linux") or not getattr(sys, "orig_argv", None):
        return
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            thp = f.read()
    except (OSError, ValueError):
        return
    env = huge_pages_env(os.environ, libc, thp)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, list(sys.orig_argv), env)
    except OSError:  # could not re-execute: run as is (only slower)
        return


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
    _reexec_with_huge_pages()
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
