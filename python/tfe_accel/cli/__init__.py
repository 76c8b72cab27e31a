"""The `tfe-accel` command line: info and demo here; train (cli/train.py), bench (cli/bench.py),
serve and cluster (cli/serve.py) in their modules, each with a ``register(subparsers)``."""
from __future__ import annotations

import argparse
import os
import sys
import time

_LOADED = time.perf_counter()


def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def process_seconds() -> float:
    """Wall-clock seconds since this process started (Linux /proc; else since this module loaded)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _LOADED


def cmd_info(args) -> int:
    _quiet_tf()
    from .. import info

    facts = info.collect_info()
    if getattr(args, "json", False):
        import json

        print(json.dumps(facts, indent=1, sort_keys=True))
    else:
        print(info.format_info(facts))
    return 0


def cmd_demo(args) -> int:
    _quiet_tf()
    from .. import demo

    return demo.main(size=args.size, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tfe-accel",
        description="Fast, secure TF Encrypted (ABY3) backend: info, demo, secure training, "
        "benchmarks and party servers.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sp = sub.add_parser("info", help="show build, TF versions, the stack and its TFE compatibility shims, "
                        "CPU code paths and registered ops")
    sp.add_argument("--json", action="store_true", help="print the facts as JSON")
    sp.set_defaults(func=cmd_info)
    sp = sub.add_parser("demo", help="three-party ABY3 demo: share, matmul, sigmoid, reveal, compare")
    sp.add_argument("--size", type=int, default=64, help="matrix side (default 64)")
    sp.add_argument("--seed", type=int, default=0, help="NumPy seed for the demo inputs")
    sp.set_defaults(func=cmd_demo)
    from . import bench, certs, serve, train  # each registers its verbs (serve: serve and cluster)

    for module in (train, bench, serve, certs):
        module.register(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
