"""``tfe-accel train``: secure collaborative logistic regression (the iDASH'19 system).

No ``--data``: the embedded Golub leukemia set, split between two owners (horizontal).
"""
from __future__ import annotations

import argparse
import os
import sys


def _batch(text: str):
    if text == "full":
        return None
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch size must be an integer or 'full', got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"batch size must be >= 1, got {v}")
    return v


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _fractional_bits(text: str):
    if text == "auto":
        return None
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"fractional bits must be auto or an integer, got {text!r}") from None
    if not 12 <= v <= 24:
        raise argparse.ArgumentTypeError(f"fractional bits must be auto or in [12, 24], got {v}")
    return v


def register(subparsers) -> None:
    from ..models.envelope import DEFAULT_VALUE_LIMIT
    from ..models.plaintext import SIGMOIDS

    p = subparsers.add_parser(
        "train",
        help="secure logistic regression over several data owners (iDASH'19 Track IV)",
        description="Each --data is one data owner (a TFE player that secret-shares its records into the "
        "three ABY3 servers). A --data is a CSV/TSV (samples x genes, label column), a .npz (x, y, genes) "
        "or an iDASH pair TUMOR_FILE,NORMAL_FILE (genes x samples). Without --data: the embedded Golub "
        "set split between two owners. Only the final model is revealed (see docs/training.md).",
    )
    p.add_argument("--data", action="append", default=[], metavar="PATH",
                   help="one data owner's file(s); repeat once per owner")
    p.add_argument("--split", choices=["horizontal", "vertical"], default="horizontal",
                   help="horizontal: owners hold different samples of the same genes (default); vertical: "
                   "different genes of the same samples, labels at one owner")
    p.add_argument("--label-column", default="label", help="label column name in CSV/TSV (default label)")
    p.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    p.add_argument("--learning-rate", type=float, default=0.05, help="learning rate (default 0.05)")
    p.add_argument("--batch-size", type=_batch, default=None, metavar="B|full",
                   help="mini-batch size or 'full' (default full)")
    p.add_argument("--class-weight", choices=["balanced", "public", "none"], default="balanced",
                   help="balanced: n/(2 n_c) computed inside MPC (default); public: owners disclose their "
                   "class counts; none")
    p.add_argument("--sigmoid", choices=sorted(SIGMOIDS), default="5-piece",
                   help="piecewise-linear sigmoid approximation (default 5-piece, TFE's; 8-piece takes its "
                   "rounds), max |error| on [-10, 10]: "
                   + ", ".join(f"{k} {v['max_error']:.2g}" for k, v in sorted(SIGMOIDS.items())))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--standardize", dest="standardize", action="store_true", default=True,
                   help="per-gene standardisation inside MPC (default)")
    g.add_argument("--no-standardize", dest="standardize", action="store_false")
    p.add_argument("--l2", type=float, default=0.0, help="L2 penalty on the weights (default 0)")
    p.add_argument("--log-transform", action="store_true",
                   help="each owner shares log2(x + 1) of its values (raw intensities or counts; the model "
                   "is then in log2(x + 1) space)")
    p.add_argument("--scale", type=_positive, default=1.0, metavar="S",
                   help="each owner shares x / S (a public scale); the model is reported in the original units")
    p.add_argument("--value-limit", type=_positive, default=None, metavar="L",
                   help=f"public bound |x| <= L every owner checks before sharing (default {DEFAULT_VALUE_LIMIT:g}; "
                   "the numeric envelope says how large it may be)")
    p.add_argument("--fractional-bits", type=_fractional_bits, default=None, metavar="auto|N",
                   help="fixed-point fractional bits of the shares: auto (default: the most, up to 20, "
                   "that the numeric envelope allows for the record count and value limit) or 12..24")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="stratified held-out fraction (default 0.2; 0 trains on every record)")
    p.add_argument("--seed", type=int, default=0, help="split and mini-batch seed (default 0)")
    p.add_argument("--protocol", choices=["accelerated", "stock"], default=None,
                   help="accelerated (tfe_accel.protocol.AcceleratedABY3; the default when it is available) "
                   "or stock (tfe.protocol.ABY3)")
    p.add_argument("--output", default="tfe-accel-train-out", metavar="DIR",
                   help="report directory (model.json, metrics.json, report.md, plots; default "
                   "./tfe-accel-train-out)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K",
                   help="every K epochs each compute party saves its own shares under DIR/checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in DIR/checkpoints")
    p.add_argument("--reveal-loss", action="store_true",
                   help="DEBUG: reveal the class-weighted training loss after every epoch (leaks one scalar "
                   "per epoch about the data and the intermediate model)")
    p.add_argument("--cluster", metavar="PATH", default=None,
                   help="run the parties on remote servers described by PATH (tfe_accel.cluster.connect)")
    p.add_argument("--tls-dir", metavar="DIR", default=None,
                   help="with --cluster: mutual TLS 1.3 to the parties (started with `tfe-accel serve "
                   "--tls-dir`), presenting DIR/driver.pem; the cluster file names the driver's "
                   "address (needs root/CAP_SYS_ADMIN; docs/deployment.md)")
    p.add_argument("--placement", choices=["auto", "cpu", "gpu"], default="auto",
                   help="where each party's fused ops run: auto (its GPU when it has one and this build "
                   "has TF GPU kernels, else its CPU), cpu, or gpu (error if a party has none); default auto")
    p.add_argument("--comparison", choices=["auto", "masked", "kogge-stone"], default="auto",
                   help="the accelerated protocol's comparisons (the sigmoid's pieces): masked (3 rounds, "
                   "~208 bytes per value), kogge-stone (TFE's circuit, 7 rounds, ~105 bytes) or auto "
                   "(default: masked up to 16,384 values per comparison; docs/mpc_steps.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tfe_accel  # noqa: F401  (installs the secure ops into TFE)
    from . import process_seconds
    from ..data import DataError, load_golub, load_owner, split_owners
    from ..models import ProtocolUnavailable, TrainConfig, accelerated_available
    from ..models.envelope import DEFAULT_VALUE_LIMIT
    from ..models.report import run_training, summary_table


    from ..models.report import preload_plotting

    preload_plotting()  # matplotlib's import (~0.4 s) overlaps loading and the secure phases
    protocol = args.protocol or ("accelerated" if accelerated_available() else "stock")
    tfe_config = None
    if args.tls_dir and not args.cluster:
        print("error: --tls-dir needs --cluster (the TLS links are to the cluster's parties)", file=sys.stderr)
        return 2
    if args.cluster:
        from .. import cluster

        from ..tls import TlsConfigError, TlsPeerError

        try:
            tfe_config = cluster.connect(args.cluster, tls_dir=args.tls_dir)
        except (cluster.ClusterError, cluster.ClusterConfigError, TlsConfigError, TlsPeerError,
                OSError) as exc:
            print(f"error: cannot use cluster {args.cluster}: {exc}", file=sys.stderr)
            return 2
    try:
        if args.data:
            owners = [load_owner(s, args.label_column, require_label=(args.split == "horizontal"))
                      for s in args.data]
            name = ", ".join(args.data)
        else:
            x, y, genes = load_golub()
            owners = split_owners(x, y, genes, 2, args.split, seed=args.seed, name="golub")
            name = "Golub et al. 1999 leukemia (embedded, 38 x 3051, ALL 27 / AML 11)"
        cfg = TrainConfig(
            epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
            class_weight=args.class_weight, sigmoid=args.sigmoid, standardize=args.standardize,
            l2=args.l2, seed=args.seed, reveal_loss=args.reveal_loss,
            fractional_bits=args.fractional_bits,
            log_transform=args.log_transform, scale=args.scale,
            value_limit=args.value_limit if args.value_limit is not None else DEFAULT_VALUE_LIMIT,
            checkpoint_every=args.checkpoint_every,
            checkpoint_dir=os.path.join(args.output, "checkpoints")
            if (args.checkpoint_every or args.resume) else None,
            resume=args.resume,
        )
        if args.reveal_loss:
            print("warning: --reveal-loss reveals one training-loss scalar per epoch to everyone "
                  "(debugging only)", file=sys.stderr)
        report = run_training(owners, split=args.split, config=cfg, test_fraction=args.test_fraction,
                              protocol=protocol, tfe_config=tfe_config, output_dir=args.output,
                              progress=not args.no_progress, dataset_name=name,
                              placement=args.placement, comparison=args.comparison)
    except (DataError, ProtocolUnavailable, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(report))
    print(f"\nwrote {args.output}/model.json, metrics.json, report.md and plots "
          f"({process_seconds():.1f} s since tfe-accel started)")
    return 0
