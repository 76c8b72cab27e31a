"""A player's TLS gateway: TensorFlow in a network namespace of its own, only TLS facing the network.

TF 2.x's gRPC server has no authentication and no encryption and listens on every interface. In TLS
mode (``tfe-accel serve --tls-dir``, ``cluster.connect(..., tls_dir=...)``) a player's process is laid
out so that no TF port is reachable from outside it:

* the process's main thread moves into a fresh network namespace (``unshare(CLONE_NEWNET)``) before
  TF starts, so TF and every thread it creates live there; that namespace has only ``lo``;
* inside it, player *k* of the cluster file has the fixed address ``127.0.0.(10+k):(7400+k)`` and the
  driver ``127.0.0.9:7399``, whatever their public addresses (TF binds its port on every interface
  of the namespace, so fixed distinct ports keep two players that share a public port apart); TF's
  cluster spec uses these addresses;
* the gateway thread (this module) lives in the host's namespace. For every other player it listens
  at that player's inside address and carries each connection over TLS 1.3 to the player's public
  address, presenting this player's certificate and requiring the peer's to name the player dialed;
  on this player's public address it accepts TLS 1.3 only from a certificate of the consortium CA
  that names a player of the cluster, and carries the connection to TF inside the namespace.

The relay writes the bytes received on one socket of a link straight to the other from asyncio's
receive callback (:class:`_End`), with mutual flow control. A serving player runs the gateway as a
thread (:class:`Gateway`); the driver runs it in a child process (:class:`GatewayProcess`), because
TF's Python API holds the GIL while it connects to the cluster, which would stall a relay thread of
the same interpreter.

From another host, or from another process on this host, there is therefore no TF RPC to talk to:
the only listening socket outside the namespace is the TLS endpoint. Creating the namespace and
moving the gateway thread back needs CAP_SYS_ADMIN (root); see docs/deployment.md.
"""
from __future__ import annotations

import asyncio
import ctypes
import fcntl
import logging
import os
import socket
import struct
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from . import tls

logger = logging.getLogger("tfe_accel.gateway")

CLONE_NEWNET = 0x40000000
FIRST_HOST = 10        # player k is 127.0.0.(FIRST_HOST + k) inside every namespace
DRIVER_HOST = "127.0.0.9"
FIRST_PORT = 7400      # ... at port FIRST_PORT + k
DRIVER_PORT = 7399

_libc = ctypes.CDLL(None, use_errno=True)


class IsolationError(OSError):
    """The network namespace could not be created or entered."""


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise IsolationError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


def _thread_netns() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def _lo_up() -> None:
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _nodelay(sock) -> None:
    """TCP_NODELAY: asyncio sets it only on sockets whose proto is IPPROTO_TCP, not on those made
    with proto 0 or accepted from them; with Nagle on, TF's small messages wait for delayed ACKs
    (measured: 15x slower LR steps)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class Isolation:
    """Move the calling thread (call it from the main thread, before TF starts) into a new network
    namespace with ``lo`` up. Threads it creates afterwards start there too."""

    def __init__(self, fds: Optional[Tuple[int, int]] = None):
        self._lock = threading.Lock()
        if fds is not None:  # a gateway process: the namespaces its parent made
            self.host_fd, self.inner_fd = fds
            return
        self.host_fd = _thread_netns()
        if _libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            os.close(self.host_fd)
            raise IsolationError(
                err, f"cannot create a network namespace for TF (unshare: {os.strerror(err)}); "
                "TLS mode needs root or CAP_SYS_ADMIN")
        self.inner_fd = _thread_netns()
        _lo_up()

    def socket_inside(self, home_fd: int) -> socket.socket:
        """A TCP socket of the inner namespace, made from a thread whose namespace is `home_fd`."""
        with self._lock:
            _setns(self.inner_fd)
            try:
                return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                _setns(home_fd)


def inside_hostmap(hostmap: Dict[str, str]) -> Dict[str, str]:
    """{player: '127.0.0.(10+k):(7400+k)'}: the addresses TF uses inside every namespace."""
    return {p: f"127.0.0.{FIRST_HOST + k}:{FIRST_PORT + k}" for k, p in enumerate(hostmap)}


def inside_driver() -> str:
    """The driver's address inside every namespace."""
    return f"{DRIVER_HOST}:{DRIVER_PORT}"


def bind_public(host: str, port: int) -> socket.socket:
    """The TLS endpoint's socket, bound (not yet listening) in the current (host) namespace."""
    from .cluster.config import is_loopback

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bind_host = host if is_loopback(host) else ("::" if family == socket.AF_INET6 else "0.0.0.0")
    if bind_host == "localhost":
        bind_host = "127.0.0.1"
    try:
        s.bind((bind_host, port))
    except OSError as exc:
        s.close()
        raise OSError(exc.errno, f"cannot bind the TLS endpoint {bind_host}:{port}: {exc.strerror}") from None
    return s


@dataclass
class Route:
    """Outbound: TF's connections to `peer` (at its inside address) go over TLS to `public`."""

    peer: str
    inside: Tuple[str, int]
    public: Tuple[str, int]
    sock: Optional[socket.socket] = None


@dataclass
class Stats:
    accepted: Dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refused: List[str] = field(default_factory=list)
    dialed: Dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dial_failures: List[str] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0


class Gateway(threading.Thread):
    """The TLS gateway of player `identity.name` (see the module docstring).

    `public` is the bound socket of this player's TLS endpoint (None: the player accepts no
    connections, e.g. a driver that only dials); `tf_inside` is where TF listens inside the
    namespace; `allowed` are the names whose certificates may connect.
    """

    def __init__(self, identity: tls.Identity, isolation: Isolation, routes: Sequence[Route],
                 public: Optional[socket.socket], tf_inside: Optional[Tuple[str, int]],
                 allowed: Sequence[str], handshake_timeout: float = 10.0, listening: bool = False):
        super().__init__(name=f"tfe-accel-tls-{identity.name}", daemon=True)
        self.identity = identity
        self.isolation = isolation
        self.routes = list(routes)
        self.public = public
        self.tf_inside = tf_inside
        self.allowed = list(allowed)
        self.handshake_timeout = handshake_timeout
        self.stats = Stats()
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._tasks: set = set()
        self._listening = listening
        if public is not None:
            public.setblocking(False)
        self._server_ctx = identity.server_context()
        self._client_ctx = identity.client_context()
        for r in self.routes:  # the listeners at the peers' inside addresses: made in the inner namespace
            if r.sock is not None:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(r.inside)
            s.listen(64)
            r.sock = s

    # -- thread ------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "Gateway":
        super().start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the TLS gateway did not start")
        if self._error is not None:
            raise self._error
        return self

    def run(self) -> None:
        try:
            _setns(self.isolation.host_fd)  # this thread dials and accepts in the host namespace
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start() / logged
            self._error = exc
            self._ready.set()
            logger.error("TLS gateway of %s stopped: %s", self.identity.name, exc)

    def listen_public(self, backlog: int = 64) -> None:
        """Start accepting on the public endpoint (call once TF is up)."""
        if self.public is not None and not self._listening:
            self.public.listen(backlog)
            self._listening = True
            self._loop.call_soon_threadsafe(self._spawn, self._accept_public())

    def _spawn(self, coro) -> None:
        """Run `coro` as a task the gateway holds on to (the event loop keeps only weak references:
        an unreferenced task that waits on its sockets can be collected mid-link)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- links -------------------------------------------------------------------------------
    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        for r in self.routes:
            await loop.create_server(lambda r=r: _Outbound(self, r), sock=r.sock)
        if self.public is not None and self._listening:
            self._spawn(self._accept_public())
        self._ready.set()
        await asyncio.Event().wait()  # forever (daemon thread)

    async def _dial(self, route: Route, tf_end: "_End") -> None:
        """TF dialed `route.peer` at its inside address: carry the connection over TLS."""
        host, port = route.public
        loop = asyncio.get_running_loop()
        logger.debug("TF dials %s: TLS to %s:%d", route.peer, host, port)
        far = _End(self, "in")  # from the network, towards TF
        try:
            await asyncio.wait_for(loop.create_connection(
                lambda: far, host, port, ssl=self._client_ctx,
                server_hostname=route.peer), self.handshake_timeout)
        except BaseException as exc:  # noqa: BLE001
            why = tls.describe_error(exc) if not isinstance(exc, asyncio.TimeoutError) else "handshake timed out"
            msg = f"TLS link to {route.peer} ({host}:{port}) failed: {why}"
            if len(self.stats.dial_failures) < 100:
                self.stats.dial_failures.append(msg)
            logger.warning("%s", msg)
            tf_end.close()
            return
        self.stats.dialed[route.peer] += 1
        logger.debug("TLS link to %s (%s:%d) open", route.peer, host, port)
        _End.join(tf_end, far)

    async def _accept_public(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(self.public)
            except OSError as exc:  # e.g. EMFILE: keep serving the links that are open
                logger.warning("TLS endpoint of %s: accept failed: %s", self.identity.name, exc)
                await asyncio.sleep(0.1)
                continue
            self._spawn(self._inbound(conn, addr))

    async def _inbound(self, conn: socket.socket, addr) -> None:
        """One connection to the public endpoint: TLS server handshake on the accepted socket
        itself (no byte of it is read before the TLS layer sees it), then the peer's name, then a
        connection to TF inside the namespace."""
        loop = asyncio.get_running_loop()
        who = f"{addr[0]}:{addr[1]}" if addr else "?"
        _nodelay(conn)
        far = _End(self, "in")  # from the network, towards TF
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: far, conn, ssl=self._server_ctx,
                ssl_handshake_timeout=self.handshake_timeout)
        except BaseException as exc:  # noqa: BLE001
            why = tls.describe_error(exc) if not isinstance(exc, asyncio.TimeoutError) else "handshake timed out"
            self._refuse(who, why, quiet=isinstance(exc, (ConnectionResetError, BrokenPipeError)))
            conn.close()
            return
        transport.pause_reading()  # until TF's side is connected
        name, why = tls.peer_name(transport.get_extra_info("ssl_object"), self.allowed)
        if name is None:
            self._refuse(who, why)
            transport.close()
            return
        self.stats.accepted[name] += 1
        logger.debug("TLS link from %s (%s) accepted", name, who)
        s = self.isolation.socket_inside(self.isolation.host_fd)
        _nodelay(s)
        s.setblocking(False)
        try:
            await loop.sock_connect(s, self.tf_inside)
            tf_end = _End(self, "out")  # from TF, towards the network
            await loop.create_connection(lambda: tf_end, sock=s)
        except OSError as exc:
            s.close()
            logger.warning("TLS link from %s (%s): TF is not reachable inside the namespace: %s",
                           name, who, exc)
            transport.close()
            return
        _End.join(far, tf_end)

    def _refuse(self, who: str, why: str, quiet: bool = False) -> None:
        """Count and log a connection that did not become a link (`quiet`: closed before any TLS,
        e.g. a port probe: logged at debug level)."""
        msg = f"refused a TLS connection from {who}: {why}"
        if len(self.stats.refused) < 100:
            self.stats.refused.append(msg)
        logger.log(logging.DEBUG if quiet else logging.WARNING, "%s", msg)

    def summary(self) -> dict:
        s = self.stats
        return {"accepted": dict(s.accepted), "refused": len(s.refused), "dialed": dict(s.dialed),
                "dial_failures": len(s.dial_failures), "bytes_in": s.bytes_in, "bytes_out": s.bytes_out}


class _End(asyncio.Protocol):
    """One socket of a relayed link. Bytes received are written straight to the other end's
    transport from the callback (no coroutine, no future per chunk: the relay's cost per TF message
    is one callback per hop); the two ends apply each other's flow control (a full write buffer
    pauses reading on the other side) and pass on end of stream and close. `direction` names the
    byte counter that data received here adds to ("in": towards TF from the network, "out")."""

    def __init__(self, gateway: "Gateway", direction: str):
        self.gateway = gateway
        self.direction = direction
        self.transport = None
        self.other: Optional["_End"] = None
        self._early: List[bytes] = []   # received before the other end exists
        self._eof = False
        self._lost = False

    @staticmethod
    def join(a: "_End", b: "_End") -> None:
        a.other, b.other = b, a
        for end in (a, b):
            if end._lost:
                end.other.close()
                return
        for end in (a, b):
            for chunk in end._early:
                end.other.transport.write(chunk)
            end._early = []
            if end._eof:
                end.other._write_eof()
            end.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _write_eof(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if t.can_write_eof():
            t.write_eof()
        else:  # TLS: no half close
            t.close()

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        _nodelay(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        st = self.gateway.stats
        if self.direction == "in":
            st.bytes_in += len(data)
        else:
            st.bytes_out += len(data)
        if self.other is not None:
            self.other.transport.write(data)
        else:
            self._early.append(data)
            self.transport.pause_reading()

    def eof_received(self):
        if self.other is not None:
            self.other._write_eof()
        else:
            self._eof = True
        return self.transport.can_write_eof() if self.transport is not None else False

    def connection_lost(self, exc) -> None:
        self._lost = True
        if self.other is not None:
            self.other.close()

    def pause_writing(self) -> None:
        if self.other is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and not self.other.transport.is_closing():
            self.other.transport.resume_reading()


class _Outbound(_End):
    """TF's connection to a peer's inside address: dials the peer over TLS once accepted."""

    def __init__(self, gateway: "Gateway", route: Route):
        super().__init__(gateway, "out")
        self.route = route

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        transport.pause_reading()
        self.gateway._spawn(self.gateway._dial(self.route, self))


def _resolve(host: str, port: int, player: str) -> Tuple[str, int]:
    """The numeric address the gateway dials for `player` (resolved once, at start: the gateway's
    event loop then never waits on a resolver thread)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(exc.errno, f"cannot resolve player {player!r}'s host {host!r}: {exc.strerror}") from None
    infos.sort(key=lambda i: i[0] != socket.AF_INET)  # IPv4 first, like TF's own resolver
    return infos[0][4][0], port


class GatewayProcess:
    """A :class:`Gateway` in a child process (the driver's: TF's Python API holds the GIL in calls
    that wait for the parties, e.g. connecting to the cluster, so the driver's links cannot be
    carried by a thread of its own interpreter). The child gets the two namespaces, the bound
    public socket and the inside listeners as inherited descriptors; it exits with its parent."""

    def __init__(self, identity: tls.Identity, isolation: Isolation, routes: Sequence[Route],
                 public: Optional[socket.socket], tf_inside: Optional[Tuple[str, int]],
                 allowed: Sequence[str], timeout: float = 30.0):
        import subprocess
        import sys
        import json

        self.identity = identity
        for r in routes:  # the listeners, made here (this thread is in the inner namespace)
            if r.sock is None:
                r.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                r.sock.bind(r.inside)
                r.sock.listen(64)
        fds = [isolation.host_fd, isolation.inner_fd] + [r.sock.fileno() for r in routes]
        if public is not None:
            public.listen(64)
            fds.append(public.fileno())
        spec = {
            # the identity as checked here: the child loads the files into its TLS contexts
            # without checking them again (that would import `cryptography`: slower start)
            "identity": {"name": identity.name, "directory": str(identity.directory),
                         "cert_file": str(identity.cert_file), "key_file": str(identity.key_file),
                         "ca_file": str(identity.ca_file), "not_after": identity.not_after.isoformat()},
            "netns": [isolation.host_fd, isolation.inner_fd],
            "routes": [[r.peer, list(r.inside), list(r.public), r.sock.fileno()] for r in routes],
            "public": public.fileno() if public is not None else None,
            "tf_inside": list(tf_inside) if tf_inside else None, "allowed": list(allowed),
            "level": logging.getLogger().getEffectiveLevel(),
        }
        pkg = os.path.dirname(os.path.abspath(__file__))
        boot = ("import sys, types; m = types.ModuleType('tfe_accel'); m.__path__ = [sys.argv[1]]; "
                "sys.modules['tfe_accel'] = m; from tfe_accel import gateway; gateway._child_main(sys.argv[2])")
        # -I -S: no site packages and no user environment (the child needs only the standard
        # library and this package's gateway and tls modules)
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", boot, pkg, json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=fds,
                                     text=True, bufsize=1)
        for r in routes:  # the child owns them now
            r.sock.close()
        if public is not None:
            public.close()
        line = self._read(timeout)
        if line != "READY":
            self.proc.kill()
            raise RuntimeError(f"the TLS gateway process did not start: {line or 'no answer'}")

    def _read(self, timeout: float) -> str:
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().strip() if ready else ""

    def summary(self) -> dict:
        import json

        if self.proc.poll() is not None:
            return {"error": f"gateway process exited ({self.proc.returncode})"}
        self.proc.stdin.write("stats\n")
        line = self._read(5.0)
        return json.loads(line) if line else {"error": "no answer"}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:  # noqa: BLE001
                self.proc.kill()


def _child_main(spec_json: str) -> None:
    """Entry point of a GatewayProcess (runs without importing TF: tfe_accel is a bare package)."""
    import json
    import signal
    import sys

    spec = json.loads(spec_json)
    logging.basicConfig(level=spec["level"], format="%(asctime)s tfe-accel gateway: %(message)s")
    _libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: end with the driver
    import datetime
    from pathlib import Path

    i = spec["identity"]
    identity = tls.Identity(i["name"], Path(i["directory"]), Path(i["cert_file"]), Path(i["key_file"]),
                            Path(i["ca_file"]), datetime.datetime.fromisoformat(i["not_after"]))
    iso = Isolation(fds=tuple(spec["netns"]))
    routes = [Route(p, tuple(i), tuple(pub), socket.socket(fileno=fd)) for p, i, pub, fd in spec["routes"]]
    public = socket.socket(fileno=spec["public"]) if spec["public"] is not None else None
    gw = Gateway(identity, iso, routes, public, tuple(spec["tf_inside"]) if spec["tf_inside"] else None,
                 spec["allowed"], listening=True)
    gw.start()
    print("READY", flush=True)
    for line in sys.stdin:  # the parent's requests; EOF: the parent is gone
        if line.strip() == "stats":
            print(json.dumps(gw.summary()), flush=True)
    os._exit(0)


def open_player(identity: tls.Identity, hostmap: Dict[str, str], me: str,
                driver_address: Optional[str], accept: bool = True,
                process: bool = False) -> Tuple[Gateway, Dict[str, str], str]:
    """Set up player `me` (a player of `hostmap`, or the driver): bind its public TLS endpoint, move
    this thread into a new namespace, start the gateway (a thread, or with `process` a
    :class:`GatewayProcess`). Returns (gateway, the inside hostmap, the driver's inside address).
    Call from the main thread before TF makes any connection."""
    from .cluster.config import parse_address

    inside = inside_hostmap(hostmap)
    d_inside = inside_driver() if driver_address else None
    public_of = {p: parse_address(a, p) for p, a in hostmap.items()}
    if driver_address:
        public_of[tls.DRIVER] = parse_address(driver_address, tls.DRIVER)
        inside[tls.DRIVER] = d_inside
    dial = {p: _resolve(h, port, p) for p, (h, port) in public_of.items() if p != me}
    sock = bind_public(*public_of[me]) if accept else None
    try:
        iso = Isolation()
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    routes = [Route(p, parse_address(inside[p], p), dial[p]) for p in inside if p != me]
    allowed = list(hostmap) + ([tls.DRIVER] if driver_address else [])
    tf_inside = parse_address(inside[me], me) if accept else None
    if process:
        gw = GatewayProcess(identity, iso, routes, sock, tf_inside, allowed)
    else:
        gw = Gateway(identity, iso, routes, sock, tf_inside, allowed)
        gw.start()
    return gw, inside_hostmap(hostmap), d_inside


def wait_listening(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
