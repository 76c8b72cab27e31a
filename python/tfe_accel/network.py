"""Parties over a shaped network: each player in its own network namespace, every link through
the user-space link shaper (``cc/net/link_shaper.h``) with a one-way delay and a rate cap.

This machine's kernel has no netem qdisc, so latency and bandwidth are added in user space. The
layout (Linux network namespaces; needs root / CAP_SYS_ADMIN, loopback only):

* player *k* gets address ``127.0.0.(10+k):port_k`` in every namespace, and its TF server runs in
  its own namespace (``unshare -n``), where it listens on ``[::]:port_k``;
* in the namespace of every other player (and of the driver, this process), the shaper listens on
  ``127.0.0.(10+k):port_k`` and forwards each connection into *k*'s namespace, shaping both
  directions; a player therefore reaches another player only through the shaper;
* the token bucket of a directed link (``a->b``) is shared by every connection from a to b and
  every reply from a on connections b opened, so a link's rate cap holds per link, not per
  connection.

The machine's own loopback round trip (about 70 us between idle vCPUs here, a few us when they
are busy) comes on top of the shaper's delay; with ``compensate=True`` (default) the shaper
subtracts the idle round trip measured at start, so that a ping-pong measures the configured RTT.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from . import cluster

FIRST_HOST = 10  # player k is 127.0.0.(FIRST_HOST + k)
DRIVER = "driver"


@dataclasses.dataclass(frozen=True)
class LinkProfile:
    """Every link of the cluster: round-trip time and rate per direction (0 = no cap)."""

    name: str
    rtt_s: float
    rate_bits_per_s: float

    def __post_init__(self):
        if not (self.rtt_s >= 0 and self.rtt_s <= 10):
            raise ValueError(f"RTT must be in [0, 10] s, got {self.rtt_s!r}")
        if not (self.rate_bits_per_s >= 0) or (0 < self.rate_bits_per_s < 8000):
            raise ValueError(f"rate must be 0 (no cap) or >= 8 kbit/s, got {self.rate_bits_per_s!r}")

    @property
    def rate_bytes_per_s(self) -> float:
        return self.rate_bits_per_s / 8.0

    def describe(self) -> str:
        rate = format_rate(self.rate_bits_per_s) if self.rate_bits_per_s else "no rate cap"
        return f"{self.name}: RTT {self.rtt_s * 1e3:g} ms, {rate}"


PRESETS = {
    "lan": LinkProfile("lan", 0.2e-3, 1e9),
    "wan": LinkProfile("wan", 40e-3, 100e6),
}

_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmg]?)(bit|bps|b)?(/s)?\s*$", re.I)


def parse_rate(text) -> float:
    """'1gbit', '100mbit', '100M', '2.5e8', '0' / 'none' (no cap) -> bits per second."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        t = str(text).strip().lower()
        if t in ("0", "none", "unlimited", "inf"):
            return 0.0
        m = _RATE.match(t)
        if not m:
            raise ValueError(f"cannot read rate {text!r}: use e.g. 1gbit, 100mbit, 250kbit or a "
                             "number of bits/s")
        value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    if value < 0:
        raise ValueError(f"rate must be >= 0, got {text!r}")
    return value


def format_rate(bits: float) -> str:
    for unit, div in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= div:
            return f"{bits / div:g} {unit}"
    return f"{bits:g} bit/s"


def profile(preset: Optional[str] = None, rtt_ms: Optional[float] = None,
            rate=None) -> LinkProfile:
    """A preset (lan, wan), optionally with its RTT and/or rate overridden."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown network preset {preset!r}: choose from {', '.join(PRESETS)}")
    base = PRESETS[preset or "lan"] if (preset or rtt_ms is None or rate is None) else None
    rtt = rtt_ms * 1e-3 if rtt_ms is not None else base.rtt_s
    bits = parse_rate(rate) if rate is not None else base.rate_bits_per_s
    name = preset if (preset and rtt_ms is None and rate is None) else "custom"
    return LinkProfile(name, rtt, bits)


def _native():
    from . import _native

    if "net" not in _native.families():
        raise RuntimeError("this tfe-accel build has no link shaper (_native family 'net')")
    return _native


def netns_unavailable() -> Optional[str]:
    """None when this process can put players into their own network namespaces, else why not."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"'{tool}' not found (util-linux / iproute2)"
    try:
        r = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -n failed: {exc}"
    if r.returncode != 0:
        return ("cannot create a network namespace (unshare -n: "
                f"{(r.stderr or r.stdout).strip() or 'exit ' + str(r.returncode)}); needs root or "
                "CAP_SYS_ADMIN")
    return None


def loopback_rtt(samples: int = 300) -> float:
    """Median round trip (s) of a 64-byte ping-pong through an unshaped relay on loopback."""
    n = _native()
    server = n.ProbeServer("127.0.0.1", 0)
    relay = n.LinkShaper([{"name": "calibration", "target_port": server.port}])
    try:
        relay.start()
        n.probe_requests("127.0.0.1", relay.ports()[0], 64, 64, 20, 10.0)  # warm up
        return statistics.median(n.probe_requests("127.0.0.1", relay.ports()[0], 64, 64,
                                                  samples, 10.0))
    finally:
        relay.stop()
        server.stop()


def _netns_of(pid: int, timeout: float = 30.0) -> str:
    """/proc/PID/ns/net once PID has left this process's network namespace."""
    mine = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + timeout
    path = f"/proc/{pid}/ns/net"
    while time.monotonic() < deadline:
        try:
            if os.readlink(path) != mine:
                return path
        except OSError:
            raise cluster.ClusterError(f"process {pid} exited before entering its network namespace")
        time.sleep(0.01)
    raise cluster.ClusterError(f"process {pid} did not enter a network namespace in {timeout:.0f} s")


class ShapedCluster(cluster.LocalCluster):
    """The players of a cluster file as `tfe-accel serve` processes, each in its own network
    namespace, and this process (the driver) in its own: every link goes through the shaper.

    ``with ShapedCluster.create(players, workdir, profile) as sc: config = sc.connect()``.
    """

    @classmethod
    def create(cls, players: Sequence[str], workdir, link: LinkProfile, compensate: bool = True,
               **kw) -> "ShapedCluster":
        """`tls_dir=` (a `tfe-accel certs init` directory): the players run `serve --tls-dir`
        and the shaper carries their TLS links (the cluster file then names the driver too)."""
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        ports = cluster.free_ports(len(players) + 1)
        hostmap = OrderedDict(
            (p, f"127.0.0.{FIRST_HOST + k}:{ports[k]}") for k, p in enumerate(players))
        driver_address = f"127.0.0.{FIRST_HOST + len(players)}:{ports[-1]}"
        if kw.get("tls_dir"):
            hostmap[DRIVER] = driver_address
        cfg = cluster.validate_hostmap(hostmap)
        path = cfg.save(workdir / "cluster.json")
        sc = cls(config_path=path, **kw)
        sc.link = link
        sc.compensate = compensate
        sc.driver_address = driver_address
        return sc

    def __post_init__(self):
        super().__post_init__()
        self.link = PRESETS["lan"]
        self.compensate = True
        self.driver_address = None
        self.shaper = None
        self.netns: Dict[str, str] = {}
        self.baseline_rtt_s = 0.0

    def _serve_command(self, p: str) -> List[str]:
        inner = cluster.serve_command(self.config_path, p, cpu_only=self.cpu_only,
                                      exit_with_parent=True, tls_dir=self.tls_dir)
        return ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"'] + inner

    def routes(self) -> List[dict]:
        """One route per (source, destination) pair: a listener in the source's namespace at the
        destination's address, forwarding to that address in the destination's namespace (where
        TF listens on every address, or, in TLS mode, the player's TLS endpoint on its own)."""
        delay = self.link.rtt_s / 2
        if self.compensate:
            delay = max(0.0, delay - self.baseline_rtt_s / 2)
        shape = {"delay_s": delay, "rate_bytes_per_s": self.link.rate_bytes_per_s}
        dhost, dport = cluster.parse_address(self.driver_address, DRIVER)
        where = {p: (self.netns[p],) + self.config.address(p) for p in self.players}
        where[DRIVER] = ("", dhost, dport)
        out = []
        for src, (src_ns, _, _) in where.items():
            for dst, (dst_ns, host, port) in where.items():
                if src == dst:
                    continue
                out.append({
                    "name": f"{src}->{dst}", "listen_netns": src_ns, "listen_host": host,
                    "listen_port": port, "target_netns": dst_ns, "target_host": host,
                    "target_port": port, "forward": dict(shape, link=f"{src}->{dst}"),
                    "backward": dict(shape, link=f"{dst}->{src}"),
                })
        return out

    def up(self, timeout: float = cluster.DEFAULT_CONNECT_TIMEOUT) -> Dict[str, int]:
        why = netns_unavailable()
        if why:
            raise cluster.ClusterError(f"cannot shape the network: {why}")
        if self.compensate:
            self.baseline_rtt_s = loopback_rtt()
        self.commands = {p: self._serve_command(p) for p in self.players}
        try:
            self._spawn_all()
            self.netns = {p: _netns_of(self.procs[p].pid) for p in self.players}
            self.shaper = _native().LinkShaper(self.routes())
            self.shaper.start()
            self._wait_ready(timeout)
        except BaseException:
            self.down()
            raise
        return self.pids

    def _probe(self):
        """A function (host, port, player) -> None when the player answers through the shaper,
        else why not: a gRPC health probe, or in TLS mode a TLS handshake as the driver."""
        if not self.tls_dir:
            return lambda host, port, p: cluster.grpc_probe(host, port, timeout=2.0)
        from . import tls

        identity = tls.load_identity(self.tls_dir, tls.DRIVER)

        def probe(host, port, p):
            try:
                tls.check_peer(identity, p, host, port, timeout=2.0)
            except tls.TlsPeerError as exc:
                return str(exc)
            return None
        return probe

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.players)
        probe = self._probe()
        why = {}
        while pending:
            for p in list(pending):
                host, port = self.config.address(p)
                why[p] = probe(host, port, p)
                if why[p] is None:
                    pending.remove(p)
            msg = self._dead_message()
            if msg:
                raise cluster.ClusterError(msg)
            if pending and time.monotonic() > deadline:
                raise cluster.PartyFailureError(
                    f"timed out after {timeout:.0f} s waiting for {', '.join(pending)} to answer "
                    "through the shaper (" + "; ".join(f"{p}: {why[p]}" for p in pending) + ")")
            if pending:
                time.sleep(0.2)

    def connect(self, **kw):
        """cluster.connect() for this cluster, with the driver at its shaped address."""
        return cluster.connect(self.config, driver_address=self.driver_address,
                               tls_dir=self.tls_dir, **kw)

    def link_stats(self) -> List[dict]:
        return self.shaper.stats() if self.shaper is not None else []

    def down(self, grace: float = 10.0) -> Dict[str, str]:
        result = super().down(grace)
        if self.shaper is not None:
            self.shaper.stop()
            self.shaper = None
        return result

    def describe(self) -> dict:
        return {"link": dataclasses.asdict(self.link), "baseline_rtt_s": self.baseline_rtt_s,
                "compensate": self.compensate, "players": self.players,
                "driver_address": self.driver_address, "config": json.loads(
                    Path(self.config_path).read_text())}
