"""Running the ABY3 parties as separate processes on TensorFlow's distributed runtime.

The cluster file is TF Encrypted's ``RemoteConfig`` JSON: an ordered object ``{player: "host:port"}``.
Player ``i`` (in file order) is task ``i`` of the TF job ``tfe`` (what ``RemoteConfig`` uses), so its
device is ``/job:tfe/replica:0/task:i/device:CPU:0``. Each player is one ``tfe-accel serve`` process
(:mod:`tfe_accel.serve_cli`), which loads tfe-accel's op library *before* its TF server starts.

The driver side is :func:`connect`: it waits for every player's port, connects TF's eager runtime to
them, checks that every party runs the same tfe-accel build and TF version (by running the
``TfeAccelBuildInfo`` op on each party's device), and starts a :class:`Watchdog` that aborts the driver
with a clear error when a party dies or stops answering, instead of letting a TF remote call block
forever.

:class:`LocalCluster` starts and stops the players of one machine as child processes (``tfe-accel
cluster up|down|status``).
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

logger = logging.getLogger("tfe_accel.cluster")

JOB_NAME = "tfe"  # TF Encrypted's RemoteConfig default job name
DEFAULT_CONNECT_TIMEOUT = 60.0  # seconds to wait for every player's port + the handshake
DEFAULT_FAILURE_TIMEOUT = 20.0  # seconds a party may stay unresponsive before the driver aborts
EXIT_PARTY_FAILURE = 75  # exit status of a driver aborted by the watchdog (EX_TEMPFAIL: retry later)

# Build fields that must agree between the driver and every party. Whether CUDA kernels are built
# may differ (a GPU party and a CPU-only driver run the same op definitions); placement reads it.
BUILD_FIELDS = ("version", "tf_version", "tf_running", "cxx11_abi", "compiler")

_PLAYER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*$")


class ClusterConfigError(ValueError):
    """The cluster file (or a player name / address in it) is invalid."""


class ClusterError(RuntimeError):
    """Connecting to, or running on, the cluster failed."""


class PartyFailureError(ClusterError):
    """A party died or stopped answering."""


class ClusterVersionError(ClusterError):
    """The parties do not all run the same tfe-accel build and TF version (or lack our ops)."""


# --------------------------------------------------------------------------------------------------
# Configuration


def parse_address(address, player: str = "?") -> Tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) and validate both parts."""
    where = f"player {player!r}"
    if not isinstance(address, str) or not address.strip():
        raise ClusterConfigError(f"{where}: address must be a 'host:port' string, got {address!r}")
    address = address.strip()
    if "://" in address:
        raise ClusterConfigError(
            f"{where}: bad address {address!r}: give 'host:port' without a scheme (no grpc://)"
        )
    if address.startswith("["):
        m = re.match(r"^\[([0-9A-Fa-f:.]+)\]:(\d+)$", address)
        if not m:
            raise ClusterConfigError(f"{where}: bad address {address!r}: expected '[ipv6]:port'")
        host, port_s = m.group(1), m.group(2)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ClusterConfigError(f"{where}: bad address {address!r}: {host!r} is not IPv6") from None
    else:
        host, sep, port_s = address.rpartition(":")
        if not sep or not host:
            raise ClusterConfigError(f"{where}: bad address {address!r}: expected 'host:port'")
        if ":" in host:
            raise ClusterConfigError(
                f"{where}: bad address {address!r}: write IPv6 addresses as '[addr]:port'"
            )
        if not _HOST_NAME.match(host):
            raise ClusterConfigError(f"{where}: bad address {address!r}: invalid host name {host!r}")
    if not port_s.isdigit():
        raise ClusterConfigError(f"{where}: bad address {address!r}: port {port_s!r} is not a number")
    port = int(port_s)
    if not 1 <= port <= 65535:
        raise ClusterConfigError(f"{where}: bad address {address!r}: port {port} not in 1..65535")
    return host, port


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_local_host(host: str) -> bool:
    """True when `host` names this machine (loopback, our host name, or one of our addresses)."""
    if is_loopback(host):
        return True
    names = {socket.gethostname(), socket.getfqdn()}
    if host in names:
        return True
    try:
        ours = {socket.gethostbyname(n) for n in names}
        return socket.gethostbyname(host) in ours
    except OSError:
        return False


def _same_machine(a: str, b: str) -> bool:
    return a == b or (is_loopback(a) and is_loopback(b))


@dataclass
class ClusterConfig:
    """A validated cluster file: players in order, each with its address."""

    hostmap: "OrderedDict[str, str]"
    path: Optional[Path] = None
    job_name: str = JOB_NAME

    @property
    def players(self) -> List[str]:
        return list(self.hostmap)

    @property
    def hosts(self) -> List[str]:
        return list(self.hostmap.values())

    def address(self, player: str) -> Tuple[str, int]:
        return parse_address(self.hostmap[self.check_player(player)], player)

    def index(self, player: str) -> int:
        return self.players.index(self.check_player(player))

    def device_name(self, player: str) -> str:
        return f"/job:{self.job_name}/replica:0/task:{self.index(player)}/device:CPU:0"

    def check_player(self, player: str) -> str:
        if player not in self.hostmap:
            where = f" in {self.path}" if self.path else ""
            raise ClusterConfigError(
                f"unknown player {player!r}: the players{where} are {', '.join(self.players)}"
            )
        return player

    def to_remote_config(self):
        import tf_encrypted as tfe

        return tfe.RemoteConfig(OrderedDict(self.hostmap), job_name=self.job_name)

    def save(self, path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.hostmap, indent=2) + "\n")
        self.path = path
        return path


def validate_hostmap(hostmap, source: str = "cluster config") -> ClusterConfig:
    if not isinstance(hostmap, dict):
        raise ClusterConfigError(
            f"{source}: expected a JSON object {{player: 'host:port'}}, got {type(hostmap).__name__}"
        )
    if not hostmap:
        raise ClusterConfigError(f"{source}: no players")
    seen: Dict[Tuple[str, int], str] = {}
    out: "OrderedDict[str, str]" = OrderedDict()
    for name, address in hostmap.items():
        if not isinstance(name, str) or not _PLAYER_NAME.match(name):
            raise ClusterConfigError(
                f"{source}: bad player name {name!r} (letters, digits, '_', '-', '.')"
            )
        host, port = parse_address(address, name)
        for (h, p), other in seen.items():
            if p == port and _same_machine(h, host):
                raise ClusterConfigError(
                    f"{source}: duplicate port {port}: players {other!r} ({hostmap[other]}) and "
                    f"{name!r} ({address}) are on the same host; give each player its own port"
                )
        seen[(host, port)] = name
        out[name] = address.strip()
    return ClusterConfig(out)


def load_config(path) -> ClusterConfig:
    """Read and validate a TFE RemoteConfig JSON hostmap."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ClusterConfigError(f"cluster config {path} not found") from None
    except OSError as exc:
        raise ClusterConfigError(f"cannot read cluster config {path}: {exc}") from None

    def pairs(items):
        d = OrderedDict()
        for k, v in items:
            if k in d:
                raise ClusterConfigError(f"{path}: player {k!r} appears twice")
            d[k] = v
        return d

    try:
        hostmap = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise ClusterConfigError(f"{path} is not valid JSON: {exc}") from None
    cfg = validate_hostmap(hostmap, source=str(path))
    cfg.path = path
    return cfg


def free_ports(n: int, host: str = "127.0.0.1") -> List[int]:
    """n distinct ports that are free right now (the OS picks them)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def make_local_config(players: Sequence[str], host: str = "localhost") -> ClusterConfig:
    """A loopback cluster with free ports, one per player."""
    ports = free_ports(len(players))
    return validate_hostmap(OrderedDict((p, f"{host}:{port}") for p, port in zip(players, ports)))


def port_accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_port_free(player: str, host: str, port: int) -> None:
    """Raise ClusterConfigError when something already listens on `port` of this machine.

    TF's gRPC server listens on every interface ([::]:port), so the check binds the wildcard address.
    """
    if port_accepts(host, port, timeout=0.5):
        raise ClusterConfigError(
            f"player {player!r}: port {port} on {host} is in use (something already accepts "
            "connections there: another player, or a server left running; `tfe-accel cluster status`)"
        )
    for family, addr in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            s = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
        except OSError as exc:
            raise ClusterConfigError(f"player {player!r}: port {port} is in use ({exc.strerror})") from None
        finally:
            s.close()
        return


def wait_for_ports(
    addresses: Dict[str, Tuple[str, int]],
    timeout: float,
    alive: Optional[Callable[[], Optional[str]]] = None,
) -> None:
    """Wait until every (player -> (host, port)) accepts TCP connections.

    `alive` (optional) returns an error message when a watched process has died, to fail early.
    """
    deadline = time.monotonic() + timeout
    pending = dict(addresses)
    while pending:
        for name, (host, port) in list(pending.items()):
            if port_accepts(host, port, timeout=0.5):
                del pending[name]
        if not pending:
            return
        if alive is not None:
            msg = alive()
            if msg:
                raise ClusterError(msg)
        if time.monotonic() > deadline:
            raise PartyFailureError(
                "timed out after {:.0f} s waiting for {} to accept connections: {}".format(
                    timeout,
                    "player" if len(pending) == 1 else "players",
                    ", ".join(f"{n} ({h}:{p})" for n, (h, p) in pending.items()),
                )
            )
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------------
# Health probes


def grpc_probe(host: str, port: int, timeout: float) -> Optional[str]:
    """None when the TF server at host:port answers a WorkerService.GetStatus RPC in time.

    This is an application-level check: a process that is stopped or wedged still has its port
    accepted by the kernel, but does not answer the RPC. Returns a short reason otherwise.
    """
    import grpc

    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    channel = grpc.insecure_channel(target)
    try:
        call = channel.unary_unary(
            "/tensorflow.WorkerService/GetStatus",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        call(b"", timeout=timeout)  # GetStatusRequest has no fields: its encoding is empty
        return None
    except grpc.RpcError as exc:
        code = exc.code()
        return f"{code.name.lower() if code else 'error'}: {exc.details()}"
    except Exception as exc:  # pragma: no cover - defensive
        return str(exc)
    finally:
        channel.close()


class Watchdog(threading.Thread):
    """Probes every party; aborts the driver when one stays unresponsive for `failure_timeout` s.

    TF's eager remote calls have no deadline: when a party dies or becomes unreachable in the
    middle of a step, the driver can block forever inside C++ where Python cannot interrupt it. The
    watchdog therefore ends the process (``os._exit(EXIT_PARTY_FAILURE)``) after logging which party
    failed and since when. Checkpoints are never torn: use :meth:`critical` around a checkpoint write
    and the abort waits for it (up to `failure_timeout`).

    ``on_failure(message)`` replaces the exit (tests, embedding); it runs once, on the watchdog thread.
    """

    def __init__(
        self,
        addresses: Dict[str, Tuple[str, int]],
        failure_timeout: float = DEFAULT_FAILURE_TIMEOUT,
        interval: Optional[float] = None,
        on_failure: Optional[Callable[[str], None]] = None,
    ):
        super().__init__(name="tfe-accel-watchdog", daemon=True)
        if failure_timeout <= 0:
            raise ValueError("failure_timeout must be > 0 seconds")
        self.addresses = dict(addresses)
        self.failure_timeout = float(failure_timeout)
        self.interval = interval if interval is not None else min(1.0, self.failure_timeout / 5)
        self.probe_timeout = max(0.2, min(5.0, self.failure_timeout / 3))
        self.on_failure = on_failure
        self.failure: Optional[str] = None
        self._halt = threading.Event()
        self._critical = threading.Lock()
        self._failing_since: Dict[str, float] = {}
        self._reasons: Dict[str, str] = {}

    def stop(self) -> None:
        self._halt.set()

    def critical(self):
        """Context manager: the watchdog does not abort the process while it is held."""
        return self._critical

    def check_once(self) -> Optional[str]:
        """Probe every party once; return a failure message once one is past the timeout."""
        now = time.monotonic()
        for name, (host, port) in self.addresses.items():
            reason = grpc_probe(host, port, self.probe_timeout)
            if reason is None:
                self._failing_since.pop(name, None)
                continue
            since = self._failing_since.setdefault(name, now)
            self._reasons[name] = reason
            if now - since >= self.failure_timeout:
                return (
                    f"party {name!r} at {host}:{port} has not answered for {now - since:.1f} s "
                    f"(failure timeout {self.failure_timeout:g} s; last probe: {reason}). It died or "
                    "became unreachable; stopping the driver instead of waiting forever. "
                    "Restart the party and rerun with --resume to continue from the last checkpoint."
                )
        return None

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            msg = self.check_once()
            if msg is None:
                continue
            self.failure = msg
            if self._halt.is_set():
                return
            logger.error("%s", msg)
            if self.on_failure is not None:
                self.on_failure(msg)
                return
            # Let a checkpoint being written finish (bounded), then end the process.
            self._critical.acquire(timeout=self.failure_timeout)
            try:
                sys.stderr.write(f"tfe-accel: error: {msg}\n")
                sys.stderr.flush()
                sys.stdout.flush()
            finally:
                os._exit(EXIT_PARTY_FAILURE)


# --------------------------------------------------------------------------------------------------
# Driver: connect + version handshake


def local_build_info() -> dict:
    """The build this (driver) process runs, in the TfeAccelBuildInfo op's format."""
    from . import ops

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

    from . import ops

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
    """
    import tensorflow as tf

    import tfe_accel  # noqa: F401  (loads and version-checks our ops, installs them into TFE)

    cfg = path if isinstance(path, ClusterConfig) else load_config(path)
    addresses = {p: cfg.address(p) for p in cfg.players}
    wait_for_ports(addresses, timeout)
    start = time.monotonic()

    driver_address = driver_address or os.environ.get("TFE_ACCEL_DRIVER_ADDRESS") or None
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


# --------------------------------------------------------------------------------------------------
# Launcher: the players of one machine as child processes


def serve_command(config_path, player: str, cpu_only: bool = True, exit_with_parent: bool = False,
                  python: Optional[str] = None) -> List[str]:
    cmd = [python or sys.executable, "-m", "tfe_accel", "serve", "--config", str(config_path),
           "--player", player]
    if cpu_only:
        cmd.append("--cpu-only")
    if exit_with_parent:
        cmd.append("--exit-with-parent")
    return cmd


def default_pid_file(config_path) -> Path:
    p = Path(config_path).resolve()
    return p.with_name(f".{p.stem}.pids.json")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def is_our_server(pid: int, player: str) -> bool:
    """Whether `pid` is still the `tfe-accel serve --player <player>` we started (not a reused pid)."""
    args = _cmdline(pid)
    return "serve" in args and "--player" in args and player in args


def _tail(path: Optional[Path], n: int = 15) -> str:
    if not path or not Path(path).exists():
        return ""
    lines = Path(path).read_text(errors="replace").splitlines()
    return "\n".join("    " + line for line in lines[-n:])


@dataclass
class LocalCluster:
    """The players of one machine as child processes (`tfe-accel cluster up`).

    ``exit_with_parent=True`` ties the servers' lifetime to this process (Linux parent-death
    signal), so that a crashed test or launcher cannot leave them behind.
    """

    config_path: Path
    players: Optional[Sequence[str]] = None
    pid_file: Optional[Path] = None
    log_dir: Optional[Path] = None
    cpu_only: bool = True
    exit_with_parent: bool = False
    env: Optional[Dict[str, str]] = None
    commands: Dict[str, List[str]] = field(default_factory=dict)  # player -> override command
    procs: Dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self):
        self.config_path = Path(self.config_path).resolve()
        self.config = load_config(self.config_path)
        self.players = list(self.players or self.config.players)
        for p in self.players:
            self.config.check_player(p)
        if self.pid_file is None:
            self.pid_file = default_pid_file(self.config_path)
        self.pid_file = Path(self.pid_file)
        if self.log_dir is None:
            self.log_dir = self.pid_file.parent / f"{self.config_path.stem}-logs"
        self.log_dir = Path(self.log_dir)

    def log_path(self, player: str) -> Path:
        return self.log_dir / f"{player}.log"

    def up(self, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> Dict[str, int]:
        """Start the players, wait until all accept connections; on any failure stop them all."""
        self._others = {}
        if self.pid_file.exists():
            alive = {p: e for p, e in read_pid_file(self.pid_file).items()
                     if pid_alive(e["pid"]) and is_our_server(e["pid"], p)}
            running = {p: e["pid"] for p, e in alive.items() if p in self.players}
            # players started earlier and still running stay in the pid file (restart one party)
            self._others = {p: e for p, e in alive.items() if p not in self.players}
            if running:
                raise ClusterError(
                    f"{self.pid_file} lists running servers ({', '.join(f'{p}: pid {q}' for p, q in running.items())}); "
                    "run `tfe-accel cluster down` first"
                )
        for p in self.players:
            host, port = self.config.address(p)
            if not is_local_host(host):
                raise ClusterConfigError(
                    f"player {p!r} is on {host}, not this machine: start it there with "
                    f"`tfe-accel serve`, or pass --players with this machine's players"
                )
            check_port_free(p, host, port)
        try:
            self._spawn_all()
            wait_for_ports(
                {p: self.config.address(p) for p in self.players}, timeout, alive=self._dead_message
            )
        except BaseException:
            self.down()
            raise
        return self.pids

    def _spawn_all(self) -> None:
        """Start every player (fresh logs) and record the pids."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for p in self.players:
            self.log_path(p).write_text("")
            self._spawn(p)
        self._write_pid_file()

    def _spawn(self, p: str) -> None:
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        cmd = self.commands.get(p) or serve_command(
            self.config_path, p, cpu_only=self.cpu_only, exit_with_parent=self.exit_with_parent
        )
        with open(self.log_path(p), "a") as log:
            self.procs[p] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=not self.exit_with_parent, close_fds=True,
            )

    def restart(self, player: str, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> int:
        """Start `player` again (after it died or was stopped); wait until its port accepts."""
        old = self.procs.get(player)
        if old is not None and old.poll() is None:
            stop_pids({player: old.pid}, procs={player: old})
        self._spawn(player)
        self._write_pid_file()
        wait_for_ports({player: self.config.address(player)}, timeout, alive=self._dead_message)
        return self.procs[player].pid

    @property
    def pids(self) -> Dict[str, int]:
        return {p: proc.pid for p, proc in self.procs.items()}

    def _dead_message(self) -> Optional[str]:
        for p, proc in self.procs.items():
            rc = proc.poll()
            if rc is not None:
                return (
                    f"player {p!r} exited with status {rc} while starting; its log "
                    f"({self.log_path(p)}) ends with:\n{_tail(self.log_path(p))}"
                )
        return None

    def _write_pid_file(self) -> None:
        players = dict(getattr(self, "_others", {}))
        players.update({
            p: {"pid": proc.pid, "address": self.config.hostmap[p], "log": str(self.log_path(p))}
            for p, proc in self.procs.items()
        })
        data = {"config": str(self.config_path), "players": players}
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.pid_file)

    def kill(self, player: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one player (tests: a party failing mid-run)."""
        self.procs[player].send_signal(sig)

    def down(self, grace: float = 10.0) -> Dict[str, str]:
        """Stop exactly the processes we started (SIGTERM, then SIGKILL after `grace` s)."""
        result = stop_pids({p: proc.pid for p, proc in self.procs.items()}, grace, procs=self.procs)
        self.procs.clear()
        others = getattr(self, "_others", {})
        if others:
            self._write_pid_file()
        elif self.pid_file.exists():
            self.pid_file.unlink()
        return result

    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *exc):
        self.down()


def read_pid_file(path) -> Dict[str, dict]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ClusterError(f"no pid file {path}: no cluster was started with this config") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ClusterError(f"cannot read pid file {path}: {exc}") from None
    return data.get("players", {})


def stop_pids(pids: Dict[str, int], grace: float = 10.0, procs=None) -> Dict[str, str]:
    """SIGTERM each still-running server we started, SIGKILL after `grace` s; reap our children."""
    procs = procs or {}
    result = {}
    targets = {}
    for p, pid in pids.items():
        proc = procs.get(p)
        if proc is not None and proc.poll() is not None:
            result[p] = f"already exited ({proc.returncode})"
        elif proc is None and not (pid_alive(pid) and is_our_server(pid, p)):
            result[p] = "not running"
        else:
            try:
                os.kill(pid, signal.SIGTERM)
                targets[p] = pid
            except ProcessLookupError:
                result[p] = "not running"

    def gone(p, pid):
        proc = procs.get(p)
        if proc is not None:
            return proc.poll() is not None
        return not pid_alive(pid)

    deadline = time.monotonic() + grace
    while targets and time.monotonic() < deadline:
        for p, pid in list(targets.items()):
            if gone(p, pid):
                result[p] = "stopped"
                del targets[p]
        time.sleep(0.1)
    for p, pid in targets.items():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if p in procs:
            procs[p].wait(timeout=10)
        result[p] = "killed (did not stop within {:g} s)".format(grace)
    return result
