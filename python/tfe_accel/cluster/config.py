"""The cluster file: TF Encrypted's ``RemoteConfig`` JSON ``{player: "host:port"}``, validated
(player and host names, ports, duplicates), and the port helpers (free ports, waiting for ports)."""
from __future__ import annotations

import ipaddress
import json
import re
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .common import ClusterConfigError, ClusterError, JOB_NAME, PartyFailureError

#: the cluster file's reserved key for the driver's own address (not a player; see ClusterConfig)
DRIVER_KEY = "driver"
_PLAYER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*$")


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
    #: the driver's public address ("host:port", the file's optional "driver" entry): TLS mode
    #: needs it, since the parties' gateways route the links back to the driver (tfe_accel.gateway)
    driver_address: Optional[str] = None
    #: TLS mode, on the driver: the gateway (tfe_accel.gateway.Gateway) and the cluster file as
    #: written (this config then holds the addresses TF uses inside the driver's namespace)
    gateway: Optional[object] = field(default=None, repr=False, compare=False)
    public: Optional["ClusterConfig"] = field(default=None, repr=False, compare=False)

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
        data = OrderedDict(self.hostmap)
        if self.driver_address:
            data[DRIVER_KEY] = self.driver_address
        path.write_text(json.dumps(data, indent=2) + "\n")
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
    driver = hostmap.get(DRIVER_KEY)
    if driver is not None:
        parse_address(driver, DRIVER_KEY)
        seen[parse_address(driver, DRIVER_KEY)] = DRIVER_KEY
    for name, address in hostmap.items():
        if name == DRIVER_KEY:
            continue
        if not isinstance(name, str) or not _PLAYER_NAME.match(name):
            raise ClusterConfigError(
                f"{source}: bad player name {name!r} (letters, digits, '_', '-', '.')"
            )
        host, port = parse_address(address, name)
        for (h, p), other in seen.items():
            if p == port and _same_machine(h, host):
                raise ClusterConfigError(
                    f"{source}: duplicate port {port}: {other!r} ({hostmap[other]}) and "
                    f"{name!r} ({address}) are on the same host; give each player its own port"
                )
        seen[(host, port)] = name
        out[name] = address.strip()
    if not out:
        raise ClusterConfigError(f"{source}: no players (only the driver's address)")
    return ClusterConfig(out, driver_address=driver.strip() if driver else None)


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
