"""The driver side: :func:`connect` (wait for every player, connect TF's eager runtime, check that
every party runs the same tfe-accel build and TF version, start the watchdog), and turning a
party's failure into a clear :class:`PartyFailureError`."""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from typing import Callable, Dict, Optional

from .common import (BUILD_FIELDS, ClusterVersionError, DEFAULT_CONNECT_TIMEOUT,
                     DEFAULT_FAILURE_TIMEOUT, EXIT_PARTY_FAILURE, PartyFailureError)
from .config import ClusterConfig, load_config, parse_address, wait_for_ports
from .health import Watchdog, grpc_probe

logger = logging.getLogger("tfe_accel.cluster")

def local_build_info() -> dict:
    """The build this (driver) process runs, in the TfeAccelBuildInfo op's format."""
    from .. import ops

    return json.loads(ops.build_info().numpy().decode())


def compare_builds(expected: dict, remote: Dict[str, dict]) -> None:
    """Raise ClusterVersionError naming every party whose build differs from `expected`."""
    problems = []
    for player, info in remote.items():
        diffs = [
            f"{k} {info.get(k)!r} (driver: {expected.get(k)!r})"
            for k in BUILD_FIELDS
            if info.get(k) != expected.get(k)
        ]
        if diffs:
            problems.append(f"{player}: " + ", ".join(diffs))
    if problems:
        raise ClusterVersionError(
            "the parties do not all run the same tfe-accel build and TensorFlow: "
            + "; ".join(problems)
            + ". Install the same tfe-accel wheel (same TF version) on every party and restart them."
        )


def _with_deadline(fn, timeout: float, what: str):
    """Run fn() on a helper thread; raise PartyFailureError if it has not returned in `timeout` s."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name=f"tfe-accel-{what}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise PartyFailureError(f"{what} did not finish within {timeout:g} s (a party does not answer)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def remote_build_infos(cfg: ClusterConfig, timeout: float) -> Dict[str, dict]:
    """Run TfeAccelBuildInfo on every party's device; refuse parties without our op library."""
    import tensorflow as tf

    from .. import ops

    infos = {}
    for player in cfg.players:
        device = cfg.device_name(player)

        def run(device=device):
            with tf.device(device):
                return ops.build_info().numpy().decode()

        try:
            raw = _with_deadline(run, timeout, f"version handshake with {player!r}")
        except tf.errors.NotFoundError as exc:
            if "TfeAccelBuildInfo" in str(exc) or "not registered" in str(exc):
                raise ClusterVersionError(
                    f"party {player!r} ({cfg.hostmap[player]}) does not have tfe-accel's op library "
                    "loaded (it was probably started with `python -m tf_encrypted.player`); start "
                    "every party with `tfe-accel serve --config ... --player NAME`"
                ) from None
            raise
        except tf.errors.OpError as exc:
            raise PartyFailureError(
                f"version handshake with party {player!r} ({cfg.hostmap[player]}) failed: "
                f"{exc.message.splitlines()[0] if exc.message else exc}"
            ) from None
        infos[player] = json.loads(raw)
    return infos


def connect(
    path,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
    failure_timeout: Optional[float] = DEFAULT_FAILURE_TIMEOUT,
    on_failure: Optional[Callable[[str], None]] = None,
    excepthook: bool = True,
    driver_address: Optional[str] = None,
    tls_dir=None,
    tls_name: Optional[str] = None,
):
    """Connect this process (the driver) to the players of cluster file `path`.

    Waits (up to `timeout` s) until every player accepts connections, connects TF's eager runtime
    to them, checks that every party runs this process's tfe-accel build and TF version, and starts
    a :class:`Watchdog` (unless `failure_timeout` is None) that stops the driver with a clear error
    when a party is unresponsive for `failure_timeout` s. Returns a ``tfe.RemoteConfig``; pass it
    to ``tfe.set_config``. Its ``watchdog`` attribute is the watchdog (or None).

    With `excepthook` (default), an *uncaught* TF error caused by a lost party ends the process with
    the same clear message and exit status as the watchdog (see :func:`explain_failure`), instead
    of a TF traceback.

    `driver_address` ("host:port", default: $TFE_ACCEL_DRIVER_ADDRESS, else a free port on
    localhost) is where the parties reach this process's own TF server; a shaped network
    (tfe_accel.network) gives the driver a fixed address of its own.

    `tls_dir` (a directory from ``tfe-accel certs init``): the parties run ``tfe-accel serve
    --tls-dir``; every link is mutual TLS 1.3 and this process presents certificate `tls_name`
    (default: the driver's, ``tfe_accel.tls.DRIVER``).
    Each party's certificate is checked first (a bad, expired, wrong-CA or wrong-name certificate
    on either side is a :class:`TlsPeerError` naming the player and the reason); then this thread
    and TF move into a network namespace of their own whose only way out is the TLS gateway
    (tfe_accel.gateway), so call it from the main thread, and note that afterwards this thread
    reaches no other network address. Needs root/CAP_SYS_ADMIN. The driver's public address is
    `driver_address` or the cluster file's "driver" entry.
    """
    import tensorflow as tf

    import tfe_accel  # noqa: F401  (loads and version-checks our ops, installs them into TFE)

    cfg = path if isinstance(path, ClusterConfig) else load_config(path)
    driver_address = driver_address or os.environ.get("TFE_ACCEL_DRIVER_ADDRESS") or None
    if tls_dir is not None:
        from ..tls import DRIVER

        cfg, driver_address = _open_tls(cfg, tls_dir, tls_name or DRIVER,
                                        driver_address or cfg.driver_address, timeout)
    addresses = {p: cfg.address(p) for p in cfg.players}
    wait_for_ports(addresses, timeout)
    start = time.monotonic()

    if driver_address:
        parse_address(driver_address, "driver")

    def do_connect():
        if driver_address:
            tf.config.experimental_connect_to_cluster(tf.train.ClusterSpec(
                {cfg.job_name: cfg.hosts, "localhost": [driver_address]}))
        else:
            tf.config.experimental_connect_to_host(cfg.hosts, job_name=cfg.job_name)

    try:
        _with_deadline(do_connect, timeout, "connecting to the cluster")
    except PartyFailureError as exc:
        dead = dead_parties(cfg)
        raise PartyFailureError(
            f"{exc}; not answering: " + (", ".join(f"{p} ({r})" for p, r in dead.items()) or "none now")
        ) from None
    except tf.errors.OpError as exc:
        raise PartyFailureError(f"connecting to the cluster {cfg.hostmap} failed: {exc}") from None
    left = max(5.0, timeout - (time.monotonic() - start))
    expected = local_build_info()
    compare_builds(expected, remote_build_infos(cfg, left))
    logger.info(
        "connected to %d parties (%s); all run tfe-accel %s on TF %s",
        len(cfg.players), ", ".join(f"{p}={a}" for p, a in cfg.hostmap.items()),
        expected.get("version"), expected.get("tf_running"),
    )
    config = cfg.to_remote_config()
    config.watchdog = None
    config.cluster_config = cfg
    if excepthook:
        _install_excepthook(config)
    if failure_timeout is not None:
        wd = Watchdog(addresses, failure_timeout=failure_timeout, on_failure=on_failure)
        wd.start()
        config.watchdog = wd
    return config


def check_tls_peers(cfg: ClusterConfig, identity, timeout: float) -> None:
    """Open one TLS link to every party's endpoint as `identity`; wait (up to `timeout` s) for
    parties that do not accept connections yet; raise TlsPeerError at once on a certificate
    problem (ours refused, or theirs not from the CA / not naming the player)."""
    from ..tls import TlsPeerError, check_peer

    deadline = time.monotonic() + timeout
    for p in cfg.players:
        host, port = cfg.address(p)
        while True:
            try:
                check_peer(identity, p, host, port, timeout=min(5.0, timeout))
                break
            except TlsPeerError as exc:
                if not exc.unreachable or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def _open_tls(cfg: ClusterConfig, tls_dir, name: str, public: Optional[str], timeout: float):
    """Check the parties' TLS endpoints, then move this thread into its own network namespace
    behind a TLS gateway. Returns (the cluster as TF sees it inside, the driver's inside address)."""
    from .. import gateway, tls
    from .common import ClusterConfigError
    from .config import validate_hostmap

    if not public:
        raise ClusterConfigError(
            "TLS mode needs the driver's address: a \"driver\": \"host:port\" entry in the cluster "
            "file (the parties' gateways dial it) or driver_address=")
    identity = tls.load_identity(tls_dir, name)
    check_tls_peers(cfg, identity, timeout)
    gw, inside, driver_inside = gateway.open_player(identity, cfg.hostmap, tls.DRIVER, public, process=True)
    logger.info("TLS gateway of %r up: TF is in its own network namespace (%s)", name, driver_inside)
    inner = validate_hostmap(inside, "the TLS gateway's inside addresses")
    inner.gateway = gw
    inner.public = cfg
    return inner, driver_inside


def dead_parties(cfg: ClusterConfig, timeout: float = 2.0) -> Dict[str, str]:
    """{player: reason} for every party that does not answer a health probe right now."""
    out = {}
    for p in cfg.players:
        host, port = cfg.address(p)
        reason = grpc_probe(host, port, timeout)
        if reason is not None:
            out[p] = reason
    return out


def explain_failure(exc: BaseException, config) -> Optional[PartyFailureError]:
    """A PartyFailureError naming the failed party when TF error `exc` comes from a lost party.

    TF reports a dead peer as UNAVAILABLE / CANCELLED / ABORTED with gRPC details; this probes
    every party to say which one is gone. None when `exc` is not such an error.
    """
    import tensorflow as tf

    if not isinstance(exc, tf.errors.OpError):
        return None
    cfg = getattr(config, "cluster_config", config)
    dead = dead_parties(cfg)
    transport = isinstance(
        exc, (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.AbortedError,
              tf.errors.DeadlineExceededError)
    )
    if not dead and not transport:
        return None
    if not dead:
        tasks = sorted({int(t) for t in re.findall(rf"/job:{cfg.job_name}/replica:0/task:(\d+)", str(exc))})
        names = [cfg.players[t] for t in tasks if t < len(cfg.players)]
        who = ("party " + ", ".join(repr(n) for n in names)) if names else "a party"
        detail = "it answers again now"
    else:
        who = ("party " if len(dead) == 1 else "parties ") + ", ".join(
            f"{p!r} ({cfg.hostmap[p]})" for p in dead
        )
        detail = "; ".join(f"{p}: {r}" for p, r in dead.items())
    text = exc.message or str(exc)
    m = re.search(r"(UNAVAILABLE|CANCELLED|ABORTED|DEADLINE_EXCEEDED):[^\n]*", text)
    first = m.group(0).strip() if m else next((l for l in text.splitlines() if l.strip()), "")
    return PartyFailureError(
        f"{who} failed during the run ({type(exc).__name__}: {first}; "
        f"probe: {detail}). Restart the party and rerun with --resume to continue from the last "
        "checkpoint."
    )


class guard:
    """``with cluster.guard(config): step()`` turns a lost-party TF error into PartyFailureError."""

    def __init__(self, config):
        self.config = config

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        err = explain_failure(exc, self.config)
        if err is None:
            return False
        raise err from exc


def barrier() -> None:
    """Wait until every op this driver has enqueued on the parties has run.

    TF's eager ops on remote devices are asynchronous: ``tf.io.write_file`` on a party's device
    returns before the file exists (measured: ten 1500^3 matmuls + writes enqueue in 12 ms and
    finish 2.8 s later). Call this after writing shares and before recording a checkpoint as
    complete, or a party lost in between leaves a checkpoint that names missing files.
    """
    from tensorflow.python.eager import context

    context.async_wait()


def _install_excepthook(config) -> None:
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        try:
            err = explain_failure(exc, config)
        except Exception:  # noqa: BLE001 - never hide the original error
            err = None
        if err is None:
            return previous(exc_type, exc, tb)
        sys.stderr.write(f"tfe-accel: error: {err}\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(EXIT_PARTY_FAILURE)

    sys.excepthook = hook
