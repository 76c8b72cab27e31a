"""`tfe-accel bench [kernels|protocol|training|gpu|all] [--quick] [--output DIR]`."""
from __future__ import annotations

import os
import sys


def cmd_bench(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tfe_accel  # noqa: F401  (splits the CPU into party devices before TF initialises)

    from ..benchmarks import report, suite

    if args.section == "network":
        from ..benchmarks import network

        return network.cli(args)
    if args.preset or args.rtt is not None or args.rate is not None or getattr(args, "tls", False):
        print("tfe-accel bench: --preset/--rtt/--rate/--tls belong to the network section", file=sys.stderr)
        return 2

    threads = args.threads or ([1] if args.quick else [1, 2])
    command = "tfe-accel bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else None
    try:
        results = suite.run(args.section, quick=args.quick, output=args.output, runs=args.runs,
                            warmup=args.warmup, threads=tuple(threads), command=command,
                            merge=args.merge)
    except ValueError as exc:
        print(f"tfe-accel bench: {exc}", file=sys.stderr)
        return 2
    if args.update_readme:
        try:
            changed = report.update_readme(args.update_readme,
                                           os.path.join(args.output, "README_section.md"))
        except (OSError, ValueError) as exc:
            print(f"tfe-accel bench: cannot update {args.update_readme}: {exc}", file=sys.stderr)
            return 1
        print(f"{args.update_readme}: {'updated' if changed else 'unchanged'}")
    bad = suite.failures(results)
    if bad:
        print(f"tfe-accel bench: incomplete sections (see results.json): {', '.join(bad)}",
              file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    sp = subparsers.add_parser(
        "bench", help="op-level speedups over stock TF Encrypted: tables, results.json, plots",
        description="Benchmark tfe-accel against stock TF Encrypted ABY3: warm-up, >= 5 interleaved "
                    "runs, median and IQR, machine facts. Writes results.json, PNG plots and "
                    "README_section.md to --output.")
    sp.add_argument("section", nargs="?", default="all",
                    choices=["kernels", "protocol", "training", "gpu", "all", "network"],
                    help="what to run (default: all = kernels, protocol, training, gpu; network "
                         "runs only when named: it needs network namespaces, i.e. root)")
    sp.add_argument("--quick", action="store_true",
                    help="small sizes, 5 runs: a smoke run (under 2 minutes), not representative")
    sp.add_argument("--output", default=os.path.join("bench", "results"),
                    help="directory for results.json, plots and README_section.md "
                         "(default: bench/results)")
    sp.add_argument("--runs", type=int, default=None, help="timed runs per measurement (>= 5; "
                    "default 5 quick, 7 full)")
    sp.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 1 quick, 2 full)")
    sp.add_argument("--threads", type=int, nargs="+", default=None,
                    help="thread counts for the kernel benchmarks (default: 1 2; --quick: 1)")
    sp.add_argument("--merge", action="store_true",
                    help="keep the other sections of an existing OUTPUT/results.json (re-run one section)")
    sp.add_argument("--update-readme", metavar="README", default=None,
                    help="also replace the <!-- bench:start -->...<!-- bench:end --> block of README")
    sp.add_argument("--preset", choices=["lan", "wan"], default=None,
                    help="network: one link profile (LAN: 0.2 ms RTT, 1 Gbit/s; WAN: 40 ms, "
                         "100 Mbit/s); default: LAN, 5 ms and WAN (--quick: LAN)")
    sp.add_argument("--rtt", type=float, default=None, metavar="MS",
                    help="network: round-trip time per link in ms (overrides the preset's)")
    sp.add_argument("--rate", default=None,
                    help="network: rate per link and direction, e.g. 1gbit, 100mbit, 0 = no cap")
    sp.add_argument("--tls", action="store_true",
                    help="network: also train with every link in mutual TLS (serve --tls-dir) next "
                         "to the plaintext run, per link profile (with --quick: a 100 x 500 set)")
    sp.set_defaults(func=cmd_bench)
