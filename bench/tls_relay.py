"""The TLS gateway's relay cost on its own: ping-pong through two gateways vs. a direct TCP link.

    python bench/tls_relay.py [--size 300] [--n 2000] [--rounds 3] [--megabytes 64]

A client process sends `--size` bytes and waits for the echo, `--n` times, (a) straight to an echo
process, (b) through two TLS gateway processes (the path of one TF RPC between two TLS-mode
players: client -> gateway A's inside listener -> TLS 1.3 -> gateway B's public endpoint -> echo),
all on loopback in one network namespace. Prints median round-trip times and the relay's added cost
per round trip, and the throughput of a bulk transfer echoed back. Needs no root (the gateways are
given this namespace as both "host" and "inner").
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from tfe_accel import tls  # noqa: E402
from tfe_accel import gateway as G  # noqa: E402

ECHO = r'''
import socket, sys
s = socket.create_server(("127.0.0.1", 0)); print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        d = c.recv(1 << 16)
        if not d: break
        c.sendall(d)
    c.close()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pingpong(port: int, size: int, n: int) -> float:
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = os.urandom(size)
    times = []
    for i in range(n + 50):
        t0 = time.perf_counter()
        c.sendall(msg)
        got = 0
        while got < size:
            got += len(c.recv(1 << 16))
        if i >= 50:
            times.append(time.perf_counter() - t0)
    c.close()
    return statistics.median(times)


def bulk(port: int, megabytes: int) -> float:
    """MB/s of a `megabytes` transfer echoed back (both directions of the link loaded)."""
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    total = megabytes << 20
    block = os.urandom(1 << 20)

    def send():
        for _ in range(megabytes):
            c.sendall(block)

    import threading

    t = threading.Thread(target=send)
    t0 = time.perf_counter()
    t.start()
    got = 0
    while got < total:
        got += len(c.recv(1 << 20))
    dt = time.perf_counter() - t0
    t.join()
    c.close()
    return megabytes / dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--megabytes", type=int, default=64, help="bulk transfer size (echoed back)")
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="tfe-accel-relay-"))
    tls.init(d, ["a", "b"])
    echo = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
    echo_port = int(echo.stdout.readline())
    ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    iso = G.Isolation(fds=(ns, ns))
    port_b = free_port()
    b = G.GatewayProcess(tls.load_identity(d, "b"), iso, [], G.bind_public("127.0.0.1", port_b),
                         ("127.0.0.1", echo_port), ["a"])
    inside = ("127.0.0.1", free_port())
    t0 = time.perf_counter()
    a = G.GatewayProcess(tls.load_identity(d, "a"), iso, [G.Route("b", inside, ("127.0.0.1", port_b))],
                         None, None, ["b"])
    print(f"a gateway process starts in {(time.perf_counter() - t0) * 1e3:.0f} ms")
    try:
        direct, relayed = [], []
        for _ in range(args.rounds):
            direct.append(pingpong(echo_port, args.size, args.n))
            relayed.append(pingpong(inside[1], args.size, args.n))
        md, mr = statistics.median(direct), statistics.median(relayed)
        print(f"{args.size}-byte ping-pong, median RTT: direct {md * 1e6:.0f} us, through two TLS "
              f"gateways {mr * 1e6:.0f} us: the relay adds {(mr - md) * 1e6:.0f} us per round trip")
        bd = statistics.median(bulk(echo_port, args.megabytes) for _ in range(args.rounds))
        br = statistics.median(bulk(inside[1], args.megabytes) for _ in range(args.rounds))
        print(f"{args.megabytes} MB echoed: direct {bd:.0f} MB/s, through two TLS gateways {br:.0f} MB/s")
        print("gateway A:", a.summary())
    finally:
        a.stop()
        b.stop()
        echo.kill()


if __name__ == "__main__":
    main()
