"""`tfe-accel serve` (one party's TF server) and `tfe-accel cluster up|down|status` (one machine).

`serve` validates the cluster file and the player *before* importing TensorFlow (fast, clear
errors), then loads tfe-accel's op library (version guard included) so the TF server can run our
ops, configures devices, starts ``tf.distribute.Server`` as task ``index(player)`` of job ``tfe``
(exactly TFE's ``RemoteConfig.start_server``), prints one READY line and waits for SIGTERM/SIGINT.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

EXIT_CONFIG = 2
EXIT_BUILD = 3
EXIT_CLUSTER = 4


def _err(msg: str) -> None:
    sys.stderr.write(f"tfe-accel: error: {msg}\n")
    sys.stderr.flush()


def _log(msg: str) -> None:
    sys.stdout.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} tfe-accel serve: {msg}\n")
    sys.stdout.flush()


def _set_parent_death_signal() -> None:
    """Linux: get SIGTERM when the parent exits (used by launchers that must leave no orphans)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:  # pragma: no cover - non-Linux
        pass
    if os.getppid() == 1:  # the parent already died before prctl
        sys.exit(0)


def _configure_devices(tf, cpu_only: bool) -> str:
    """Hide the GPUs (--cpu-only) or let TF grow into them; says where this party's fused ops can run
    (the driver's AcceleratedABY3 places them: tfe_accel.placement)."""
    from ..placement import local_gpu_status

    gpus = tf.config.list_physical_devices("GPU")
    if cpu_only:
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return "CPU only (--cpu-only)" + (f"; {len(gpus)} GPU(s) hidden" if gpus else "")
    for g in gpus:
        tf.config.experimental.set_memory_growth(g, True)
    where = local_gpu_status(len(gpus))
    return f"{len(gpus)} GPU(s) visible, memory growth on; {where}" if gpus else f"CPU (no GPU found); {where}"


class _ServeError(Exception):
    def __init__(self, msg: str, code: int):
        super().__init__(msg)
        self.code = code


def _open_tls(cfg, args):
    """TLS mode: load this player's certificate, bind its TLS endpoint, move TF into a network
    namespace of its own and start the gateway (tfe_accel.gateway). Returns (gateway, inside
    hostmap, the driver's inside address)."""
    from .. import gateway, tls

    if not cfg.driver_address:
        raise _ServeError(
            f"{args.config}: TLS mode needs the driver's address in the cluster file (an entry "
            '"driver": "host:port", where the driver process accepts TLS from the parties)', EXIT_CONFIG)
    try:
        identity = tls.load_identity(args.tls_dir, args.player)
    except tls.TlsConfigError as exc:
        raise _ServeError(f"player {args.player!r}: {exc}", EXIT_CONFIG) from None
    try:
        return gateway.open_player(identity, cfg.hostmap, args.player, cfg.driver_address)
    except OSError as exc:  # IsolationError (no CAP_SYS_ADMIN) or the TLS port is taken
        raise _ServeError(f"player {args.player!r}: {exc.strerror or exc}", EXIT_CLUSTER) from None


def cmd_serve(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .. import cluster

    if args.exit_with_parent:
        _set_parent_death_signal()
    stop = threading.Event()
    got = {}

    def on_signal(signum, frame):
        got["sig"] = signum
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        cfg = cluster.load_config(args.config)
        cfg.check_player(args.player)
        host, port = cfg.address(args.player)
        if cluster.is_local_host(host):
            cluster.check_port_free(args.player, host, port)
        else:
            _log(f"warning: {host} does not look like this machine; TF will still listen on port {port}")
    except cluster.ClusterConfigError as exc:
        _err(str(exc))
        return EXIT_CONFIG

    gw = None
    hosts = cfg.hosts
    if args.tls_dir:  # before TF starts: TF must live in the namespace the gateway opens
        try:
            gw, inside, driver_inside = _open_tls(cfg, args)
        except _ServeError as exc:
            _err(str(exc))
            return exc.code
        hosts = [inside[p] for p in cfg.players]

    import tensorflow as tf

    try:
        import tfe_accel
        from tfe_accel import ops
    except ImportError as exc:  # BuildMismatchError included
        _err(f"refusing to serve player {args.player!r}: {exc}")
        return EXIT_BUILD
    devices = _configure_devices(tf, args.cpu_only)
    info = json.loads(ops.build_info().numpy().decode())
    if stop.is_set():
        return 0
    try:
        server = tf.distribute.Server(
            tf.train.ClusterSpec({cfg.job_name: hosts}),
            job_name=cfg.job_name,
            task_index=cfg.index(args.player),
            start=True,
        )
    except (tf.errors.OpError, ValueError, RuntimeError) as exc:
        _err(f"could not start the TF server for player {args.player!r} on port {port}: {exc}")
        return EXIT_CLUSTER
    if gw is not None:
        gw.listen_public()
    tls_s = (f"tls=on (TLS 1.3, mutual; TF at {inside[args.player]} in its own network namespace; "
             f"certificate {gw.identity.name!r}, {gw.identity.days_left():.0f} days left)"
             if gw is not None else "tls=off")
    _log(
        f"READY player={args.player} address={cfg.hostmap[args.player]} "
        f"device={cfg.device_name(args.player)} target={server.target} pid={os.getpid()} "
        f"tfe-accel={info.get('version')} tf={tf.__version__} {tls_s} devices: {devices}"
    )
    if gw is None:
        _log(
            f"WARNING: TF's gRPC server listens on all interfaces ([::]:{port}) with no "
            "authentication and no encryption: anyone who can reach this port can run any TF op "
            "in this process (read its shares and files, write files) and read the shares on the "
            "wire. Run with --tls-dir (mutual TLS, no open TF port; docs/deployment.md) or keep "
            "this port on a private network."
        )
    while not stop.wait(0.5):
        pass
    name = signal.Signals(got.get("sig", signal.SIGTERM)).name
    if gw is not None:
        _log(f"TLS links: {json.dumps(gw.summary())}")
    _log(f"{name} received: stopping player {args.player} (pid {os.getpid()})")
    del server
    sys.stdout.flush()
    sys.stderr.flush()
    # TF 2.x servers cannot be stopped in-process (GrpcServer::Stop is unimplemented); exiting
    # without running TF's static destructors is the clean way out.
    os._exit(0)


def _load(args):
    from .. import cluster

    return cluster.LocalCluster(
        args.config,
        players=[p.strip() for p in args.players.split(",")] if args.players else None,
        pid_file=args.pid_file,
        log_dir=args.log_dir,
        cpu_only=args.cpu_only,
        tls_dir=args.tls_dir,
    )


def cmd_cluster(args) -> int:
    from .. import cluster

    try:
        if args.action == "up":
            lc = _load(args)
            pids = lc.up(timeout=args.timeout)
            for p, pid in pids.items():
                print(f"{p}: pid {pid} listening on {lc.config.hostmap[p]} (log {lc.log_path(p)})")
            print(f"pid file: {lc.pid_file}; stop with `tfe-accel cluster down --config {args.config}`")
            return 0
        pid_file = args.pid_file or cluster.default_pid_file(args.config)
        if args.action == "down":
            entries = cluster.read_pid_file(pid_file)
            result = cluster.stop_pids({p: e["pid"] for p, e in entries.items()}, grace=args.grace)
            for p, what in result.items():
                print(f"{p}: pid {entries[p]['pid']} {what}")
            os.unlink(pid_file)
            return 0
        # status
        cfg = cluster.load_config(args.config)
        entries = {}
        if os.path.exists(pid_file):
            entries = cluster.read_pid_file(pid_file)
        worst = 0
        identity = None
        if args.tls_dir:
            from .. import tls

            try:
                identity = tls.load_identity(args.tls_dir, tls.DRIVER)
            except tls.TlsConfigError as exc:
                _err(str(exc))
                return EXIT_CONFIG
        for p in cfg.players:
            host, port = cfg.address(p)
            up = cluster.port_accepts(host, port, timeout=1.0)
            pid = entries.get(p, {}).get("pid")
            if pid is not None:
                state = "running" if cluster.pid_alive(pid) and cluster.is_our_server(pid, p) else "gone"
                pid_s = f"pid {pid} {state}"
            else:
                pid_s = "not started here"
            if not up:
                answer = "port closed"
            elif identity is not None:  # a TLS endpoint: one mutual-TLS handshake as the driver
                try:
                    tls.check_peer(identity, p, host, port, timeout=3.0)
                    answer = None
                except tls.TlsPeerError as exc:
                    answer = str(exc)
            else:
                answer = cluster.grpc_probe(host, port, 2.0)
            ok = "answers TLS (certificate checked)" if identity is not None else "answers"
            print(f"{p}: {cfg.hostmap[p]} {ok if answer is None else answer}; {pid_s}")
            worst = worst if answer is None else 1
        return worst
    except (cluster.ClusterConfigError,) as exc:
        _err(str(exc))
        return EXIT_CONFIG
    except cluster.ClusterError as exc:
        _err(str(exc))
        return EXIT_CLUSTER


def register(subparsers) -> None:
    sp = subparsers.add_parser(
        "serve",
        help="run one party's TF server (with tfe-accel's ops) from a TFE RemoteConfig JSON",
        description="Run one party (player) of a TFE RemoteConfig cluster as a TF server that can "
        "execute tfe-accel's ops. Stops cleanly on SIGTERM/SIGINT.",
    )
    sp.add_argument("--config", required=True, help="cluster JSON: {player: 'host:port', ...}")
    sp.add_argument("--player", required=True, help="which player of the config this process is")
    sp.add_argument("--cpu-only", action="store_true", help="hide GPUs from TF (pin to CPU)")
    sp.add_argument("--tls-dir", metavar="DIR",
                    help="mutual TLS 1.3 between players (certificates from `tfe-accel certs "
                    "init`); TF runs in a network namespace of its own and only the TLS endpoint "
                    "listens (needs root/CAP_SYS_ADMIN)")
    sp.add_argument("--exit-with-parent", action="store_true",
                    help="exit when the parent process exits (launchers; Linux)")
    sp.set_defaults(func=cmd_serve)

    cp = subparsers.add_parser(
        "cluster",
        help="start/stop/inspect the players of one machine as child processes",
        description="Start the players of a cluster JSON that live on this machine as background "
        "`tfe-accel serve` processes (pids in a pid file), stop exactly those, or show status.",
    )
    cp.add_argument("action", choices=("up", "down", "status"))
    cp.add_argument("--config", required=True, help="cluster JSON: {player: 'host:port', ...}")
    cp.add_argument("--players", help="comma-separated players to start (default: all)")
    cp.add_argument("--pid-file", help="where to record the pids (default: .<config>.pids.json "
                    "next to the config)")
    cp.add_argument("--log-dir", help="server logs (default: <config>-logs next to the config)")
    cp.add_argument("--timeout", type=float, default=60.0,
                    help="seconds to wait for every port to accept connections (up; default 60)")
    cp.add_argument("--grace", type=float, default=10.0,
                    help="seconds between SIGTERM and SIGKILL (down; default 10)")
    cp.add_argument("--tls-dir", metavar="DIR",
                    help="start the servers in TLS mode (`tfe-accel serve --tls-dir`); status "
                    "then checks each party's TLS endpoint with the driver's certificate")
    cp.add_argument("--gpu", dest="cpu_only", action="store_false",
                    help="let the servers use GPUs (default: CPU only, since all share one machine)")
    cp.set_defaults(func=cmd_cluster, cpu_only=True)
