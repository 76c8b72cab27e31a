"""`tfe-accel certs init|issue|show`: the consortium CA and the players' certificates (tfe_accel.tls)."""
from __future__ import annotations

import sys

from ..tls import DEFAULT_DAYS

EXIT_CONFIG = 2


def cmd_certs(args) -> int:
    from .. import tls

    try:
        if args.action == "init":
            players = [p.strip() for p in (args.players or "").split(",") if p.strip()]
            if not players:
                raise tls.TlsConfigError("--players is required: e.g. server0,server1,server2,"
                                         "owner0,owner1,driver")
            files = tls.init(args.dir, players, days=args.days, ca_days=args.ca_days, force=args.force)
            print(f"consortium CA: {files[0]} (keep {files[1]} offline: only `certs issue` needs it)")
            for name in players:
                print(f"{name}: {args.dir}/{name}.pem + {name}.key (valid {args.days:g} days; "
                      f"give {name} these two files and ca.pem)")
            return 0
        if args.action == "issue":
            for name in args.names:
                pem, key = tls.issue(args.dir, name, days=args.days)
                print(f"{name}: {pem} + {key} (valid {args.days:g} days)")
            return 0
        # show: every player certificate of the directory, checked as load_identity checks it
        bad = 0
        names = args.names or tls.player_names(args.dir)
        for name in names:
            try:
                ident = tls.load_identity(args.dir, name)
                print(f"{name}: ok, {ident.days_left():.0f} days left")
            except tls.TlsConfigError as exc:
                print(f"{name}: {exc}")
                bad = 1
        return bad
    except tls.TlsConfigError as exc:
        sys.stderr.write(f"tfe-accel: error: {exc}\n")
        return EXIT_CONFIG


def register(subparsers) -> None:
    sp = subparsers.add_parser(
        "certs",
        help="make the consortium CA and the players' certificates for --tls-dir",
        description="init: a new consortium CA in DIR and one certificate + key per player "
        "(DIR/ca.pem, DIR/ca.key, DIR/NAME.pem, DIR/NAME.key). issue: (re-)issue certificates for "
        "NAMES from DIR's CA. show: check each certificate (CA, name, validity, key). "
        "docs/deployment.md shows the same with an organisation's own CA (openssl).",
    )
    sp.add_argument("action", choices=("init", "issue", "show"))
    sp.add_argument("dir", help="the TLS directory")
    sp.add_argument("names", nargs="*", help="players (issue, show)")
    sp.add_argument("--players", help="init: comma-separated player names, the driver included")
    sp.add_argument("--days", type=float, default=DEFAULT_DAYS,
                    help=f"validity of the player certificates in days (default {DEFAULT_DAYS})")
    sp.add_argument("--ca-days", type=float, default=3650, help="validity of the CA (default 3650)")
    sp.add_argument("--force", action="store_true", help="init: replace an existing CA")
    sp.set_defaults(func=cmd_certs)
