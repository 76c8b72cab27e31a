"""Mutual TLS between the players (`tfe-accel certs`, `serve --tls-dir`, `connect(tls_dir=...)`).

Certificates: every way a certificate can be unusable is a clear TlsConfigError naming the player and
the reason. Cluster (loopback, five `tfe-accel serve --tls-dir` processes + a driver process): the
secure results equal the plaintext ones; a client without a certificate, with one from another CA,
an expired one or one naming no player gets no TF RPC (a raw gRPC WorkerService/GetStatus, which an
open TF port answers, fails), while the same call with a player's certificate is answered; a server
presenting another player's certificate is refused by the dialing side; no TCP port of a serve
process accepts a plain TF connection; on the wire (sniffed on lo) every link is TLS, no HTTP/2
preface in the clear; the watchdog still names a party killed mid-run.

Needs root/CAP_SYS_ADMIN (each party's TF runs in a network namespace of its own); skipped with the
reason otherwise.
"""
import datetime as dt
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tfe_accel import cluster, network, tls
from test_cluster import _sigmoid5  # the 5-piece sigmoid of the secure LR step

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "cluster_driver.py"
PLAYERS = ["server0", "server1", "server2", "owner0", "owner1"]
ULP = 2.0 ** -16
FAILURE_TIMEOUT = 4.0


def _env():
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


# --------------------------------------------------------------------------------------------------
# Certificates (no processes)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls") / "certs"
    tls.init(d, PLAYERS + ["driver"], days=30)
    # a certificate from the same CA that names no player of the cluster
    tls.issue(d, "mallory", days=30)
    return d


def test_init_writes_ca_and_one_identity_per_player(certs):
    for name in PLAYERS + ["driver"]:
        ident = tls.load_identity(certs, name)
        assert ident.name == name and 29 < ident.days_left() <= 30
        assert oct((certs / f"{name}.key").stat().st_mode & 0o777) == "0o600"
    assert (certs / "ca.pem").exists() and (certs / "ca.key").exists()
    with pytest.raises(tls.TlsConfigError, match="exists: a new CA would invalidate"):
        tls.init(certs, ["server0"])


def _copy(certs, dst):
    shutil.copytree(certs, dst)
    return dst


def test_expired_certificate_is_named(certs, tmp_path):
    d = _copy(certs, tmp_path / "c")
    tls.issue(d, "server1", days=1, not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    with pytest.raises(tls.TlsConfigError) as e:
        tls.load_identity(d, "server1")
    assert "player 'server1'" in str(e.value) and "expired on" in str(e.value)


def test_certificate_of_another_ca_is_named(certs, tmp_path):
    other = tmp_path / "other"
    tls.init(other, ["server1"])
    d = _copy(certs, tmp_path / "c")
    for ext in ("pem", "key"):
        shutil.copy(other / f"server1.{ext}", d / f"server1.{ext}")
    with pytest.raises(tls.TlsConfigError) as e:
        tls.load_identity(d, "server1")
    assert "player 'server1'" in str(e.value) and "not signed by the consortium CA" in str(e.value)


def test_certificate_of_another_player_is_named(certs, tmp_path):
    d = _copy(certs, tmp_path / "c")
    for ext in ("pem", "key"):
        shutil.copy(d / f"owner0.{ext}", d / f"server1.{ext}")
    with pytest.raises(tls.TlsConfigError) as e:
        tls.load_identity(d, "server1")
    assert "is issued to owner0, not to 'server1'" in str(e.value)


def test_key_that_does_not_match_is_named(certs, tmp_path):
    d = _copy(certs, tmp_path / "c")
    shutil.copy(d / "owner0.key", d / "server1.key")
    with pytest.raises(tls.TlsConfigError) as e:
        tls.load_identity(d, "server1")
    assert "server1.key does not belong to" in str(e.value)


def test_missing_and_malformed_files_are_named(certs, tmp_path):
    with pytest.raises(tls.TlsConfigError, match="TLS directory .* not found"):
        tls.load_identity(tmp_path / "nope", "server0")
    d = _copy(certs, tmp_path / "c")
    os.unlink(d / "server2.key")
    with pytest.raises(tls.TlsConfigError, match=r"player 'server2': .*server2.key not found"):
        tls.load_identity(d, "server2")
    (d / "server1.pem").write_text("not a certificate\n")
    with pytest.raises(tls.TlsConfigError, match="server1.pem is not a PEM certificate"):
        tls.load_identity(d, "server1")


@pytest.mark.parametrize("bad", ["", "a b", "-x", "x/y", "ca"])
def test_bad_player_names_are_refused(tmp_path, bad):
    with pytest.raises(tls.TlsConfigError):
        tls.init(tmp_path / "c", ["server0", bad])


def test_certs_cli(tmp_path):
    from tfe_accel.cli import main

    d = tmp_path / "c"
    assert main(["certs", "init", str(d), "--players", "server0,driver", "--days", "10"]) == 0
    assert main(["certs", "show", str(d)]) == 0
    assert main(["certs", "issue", str(d), "owner0"]) == 0
    assert tls.load_identity(d, "owner0").name == "owner0"
    assert main(["certs", "init", str(d), "--players", "server0"]) == 2  # CA exists, no --force
    os.unlink(d / "owner0.key")
    assert main(["certs", "show", str(d)]) == 1


def _docs_openssl_block() -> str:
    """The openssl commands of docs/deployment.md ("Your organisation's own CA"), verbatim."""
    text = (HERE.parent / "docs" / "deployment.md").read_text()
    start = text.index("cd tls/\n")
    end = text.index("tfe-accel certs show .", start)
    return text[start + len("cd tls/\n"):end]


def _handshake(server: "tls.Identity", client: "tls.Identity") -> str:
    """One mutual TLS handshake from `client` to a listener presenting `server`; returns the name
    the listener reads from the client's certificate."""
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    got = {}

    def serve():
        conn, _ = lsock.accept()
        with server.server_context().wrap_socket(conn, server_side=True) as s:
            got["name"] = tls.peer_name(s, PLAYERS + ["driver"])
            time.sleep(1.5)  # hold the link: check_peer's read times out, i.e. accepted

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        tls.check_peer(client, server.name, "127.0.0.1", port, timeout=5.0)
    finally:
        t.join(10)
        lsock.close()
    return got["name"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_an_organisations_own_ca_made_with_the_documented_openssl_commands(tmp_path):
    d = tmp_path / "tls"
    d.mkdir()
    r = subprocess.run(["bash", "-e", "-c", _docs_openssl_block()], cwd=d, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ids = {p: tls.load_identity(d, p) for p in PLAYERS + ["driver"]}
    assert all(ids[p].name == p for p in ids)
    assert _handshake(ids["server1"], ids["driver"]) == ("driver", "")
    assert (d / "server1.key").stat().st_mode & 0o077 == 0
    # the same files, mixed with another consortium's, are refused by name
    other = tmp_path / "other"
    tls.init(other, ["server1"], days=5)
    shutil.copy(other / "server1.pem", d / "server1.pem")
    shutil.copy(other / "server1.key", d / "server1.key")
    with pytest.raises(tls.TlsConfigError, match="player 'server1'"):
        tls.load_identity(d, "server1")


# --------------------------------------------------------------------------------------------------
# A TLS cluster: five serve processes, drivers in their own interpreters

NETNS = network.netns_unavailable()
needs_netns = pytest.mark.skipif(NETNS is not None, reason=f"TLS mode needs network namespaces: {NETNS}")


def _hostmap():
    ports = cluster.free_ports(len(PLAYERS) + 1)
    hm = {p: f"127.0.0.1:{port}" for p, port in zip(PLAYERS, ports)}
    hm["driver"] = f"127.0.0.1:{ports[-1]}"
    return hm


def run_driver(*args, timeout=240):
    proc = subprocess.run([sys.executable, str(DRIVER), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=_env())
    results = [line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert results, f"driver printed no result (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.returncode, json.loads(results[-1]), proc.stderr


class Sniffer(threading.Thread):
    """TCP payloads on lo (AF_PACKET): {(src_port, dst_port): first bytes} for the given ports."""

    def __init__(self, ports):
        super().__init__(daemon=True)
        self.ports = set(ports)
        self.first = {}
        self.payload_bytes = 0
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)

    def run(self):
        while not self.stop.is_set():
            try:
                frame, meta = self.sock.recvfrom(1 << 17)
            except socket.timeout:
                continue
            if meta[2] == socket.PACKET_OUTGOING:  # lo shows every frame twice
                continue
            if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue
            ihl = (frame[14] & 0x0F) * 4
            tcp = 14 + ihl
            sport, dport = struct.unpack("!HH", frame[tcp:tcp + 4])
            if sport not in self.ports and dport not in self.ports:
                continue
            data = frame[tcp + (frame[tcp + 12] >> 4) * 4:]
            if data:
                self.payload_bytes += len(data)
                self.first.setdefault((sport, dport), data[:24])


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory, certs):
    if NETNS is not None:
        pytest.skip(f"TLS mode needs network namespaces: {NETNS}")
    tmp = tmp_path_factory.mktemp("tlscluster")
    path = tmp / "cluster.json"
    hm = _hostmap()
    path.write_text(json.dumps(hm))
    lc = cluster.LocalCluster(path, exit_with_parent=True, env=_env(), tls_dir=certs)
    lc.hostmap = hm
    lc.up(timeout=120)
    try:
        yield lc
    finally:
        lc.down(grace=10)


@pytest.fixture(scope="module")
def tls_run(tls_cluster, certs):
    """One TLS driver: secure matmul + 3 LR steps, the lo traffic sniffed meanwhile."""
    ports = [int(a.rsplit(":", 1)[1]) for a in tls_cluster.hostmap.values()]
    sniffer = Sniffer(ports)
    sniffer.start()
    try:
        rc, out, err = run_driver("compute", tls_cluster.config_path, "--steps", 3, "--tls-dir", certs)
        # a plaintext gRPC client meanwhile: its HTTP/2 preface must show up in the capture
        host, port = tls_cluster.config.address("server0")
        probe = cluster.grpc_probe(host, port, 2.0)
        time.sleep(0.5)
    finally:
        sniffer.stop.set()
        sniffer.join(5)
    assert rc == 0, (out, err[-3000:])
    return out, sniffer, probe


@needs_netns
def test_tls_cluster_matches_plaintext_and_in_process(tls_run):
    import tf_encrypted as tfe

    out, _, _ = tls_run
    sys.path.insert(0, str(HERE))
    try:
        import cluster_driver
    finally:
        sys.path.pop(0)
    a, b, x, y = cluster_driver.data()
    previous = tfe.get_config()
    try:
        local = cluster_driver.compute(tfe.LocalConfig(PLAYERS), 3)
    finally:
        tfe.set_config(previous)
    mm = np.array(out["matmul"])
    assert np.abs(mm - a @ b).max() < 8 * ULP * 5
    assert np.abs(mm - np.array(local["matmul"])).max() <= 2 * ULP
    w = np.zeros((x.shape[1], 1))
    for _ in range(3):
        w = w - x.T @ (_sigmoid5(x @ w) - y) * (0.5 / len(x))
    assert np.abs(np.array(out["w"]) - w).max() < 1e-3
    assert np.abs(np.array(out["w"]) - np.array(local["w"])).max() < 1e-3
    assert out["mismatch"] and "9.9.9" in out["mismatch"]  # the build handshake ran over TLS


@needs_netns
def test_wire_carries_only_tls(tls_run):
    _, sniffer, probe = tls_run
    assert probe is not None  # the plaintext probe got no RPC answer from the TLS endpoint
    preface = b"PRI * HTTP/2.0"
    plain = {k: v for k, v in sniffer.first.items() if v.startswith(preface)}
    # exactly the plaintext probe's flow shows the preface (the capture would see it)...
    assert len(plain) == 1, sniffer.first
    links = {k: v for k, v in sniffer.first.items() if k not in plain}
    # ...and every other flow (dozens of links, both directions) opens with a TLS record
    assert len(links) >= 10 and sniffer.payload_bytes > 10_000
    for flow, first in links.items():
        assert first[:2] in (b"\x16\x03", b"\x17\x03", b"\x14\x03", b"\x15\x03"), (flow, first)


def _grpc_get_status(host, port, ca=None, cert=None, key=None, name="server0", timeout=3.0):
    """A raw WorkerService/GetStatus over TLS (or plaintext without `ca`): None when answered."""
    import grpc

    target = f"{host}:{port}"
    if ca is None:
        channel = grpc.insecure_channel(target)
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(ca).read_bytes(),
            private_key=Path(key).read_bytes() if key else None,
            certificate_chain=Path(cert).read_bytes() if cert else None)
        channel = grpc.secure_channel(target, creds, options=[("grpc.ssl_target_name_override", name)])
    try:
        channel.unary_unary("/tensorflow.WorkerService/GetStatus", request_serializer=lambda b: b,
                            response_deserializer=lambda b: b)(b"", timeout=timeout)
        return None
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    finally:
        channel.close()


@needs_netns
def test_no_rpc_without_a_valid_player_certificate(tls_cluster, certs, tmp_path):
    host, port = tls_cluster.config.address("server0")
    ca = certs / "ca.pem"
    # positive control: a player's certificate through the same client gets the RPC answered
    assert _grpc_get_status(host, port, ca, certs / "owner0.pem", certs / "owner0.key") is None
    other = tmp_path / "other"
    tls.init(other, ["owner0"])
    expired = _copy(certs, tmp_path / "expired")
    tls.issue(expired, "owner0", days=1, not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    clients = {
        "plaintext": dict(),
        "TLS without a certificate": dict(ca=ca),
        "a certificate of another CA": dict(ca=ca, cert=other / "owner0.pem", key=other / "owner0.key"),
        "an expired certificate": dict(ca=ca, cert=expired / "owner0.pem", key=expired / "owner0.key"),
        "a certificate naming no player": dict(ca=ca, cert=certs / "mallory.pem", key=certs / "mallory.key"),
    }
    for what, kw in clients.items():
        assert _grpc_get_status(host, port, **kw) is not None, f"{what}: an RPC was served"
    log = tls_cluster.log_path("server0").read_text()
    for reason in ("a plaintext connection", "peer did not return a certificate",
                   "certificate signature failure (not issued by this consortium's CA)",
                   "certificate has expired",
                   "certificate names mallory, which is not one player of this cluster"):
        assert reason in log, (reason, log[-3000:])
    # TF itself is not on this host's network: its inside address answers nothing here
    assert cluster.grpc_probe("127.0.0.10", 7400, 2.0) is not None


def _listening_ports(pid):
    """TCP ports `pid` listens on in this (the host's) network namespace."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


@needs_netns
def test_no_port_of_a_tls_server_accepts_plain_tf(tls_cluster):
    for p in PLAYERS:
        pid = tls_cluster.pids[p]
        ports = _listening_ports(pid)
        assert ports == {tls_cluster.config.address(p)[1]}, (p, ports)  # only the TLS endpoint
        for port in ports:
            assert cluster.grpc_probe("127.0.0.1", port, 2.0) is not None


@needs_netns
def test_server_with_another_players_certificate_is_refused(tls_cluster, certs):
    ident = tls.load_identity(certs, "driver")
    host, port = tls_cluster.config.address("server0")
    tls.check_peer(ident, "server0", host, port)  # the right name passes
    with pytest.raises(tls.TlsPeerError) as e:
        tls.check_peer(ident, "server1", host, port)  # server0's endpoint, dialed as server1
    assert "player 'server1'" in str(e.value) and "hostname mismatch" in str(e.value).lower()


@needs_netns
def test_driver_with_a_certificate_of_another_ca_is_refused(tls_cluster, tmp_path):
    other = tmp_path / "other"
    tls.init(other, ["driver"])
    rc, out, err = run_driver("connect", tls_cluster.config_path, "--tls-dir", other, "--timeout", 20)
    assert rc == 3 and out["error"] == "TlsPeerError", (out, err[-2000:])
    assert "player 'server0'" in out["message"] and "not issued by this consortium's CA" in out["message"]


@needs_netns
def test_serve_refuses_an_expired_certificate(tls_cluster, certs, tmp_path):
    d = _copy(certs, tmp_path / "c")
    tls.issue(d, "server1", days=1, not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    hm = _hostmap()
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(hm))
    r = subprocess.run([sys.executable, "-m", "tfe_accel", "serve", "--config", str(cfg), "--player",
                        "server1", "--tls-dir", str(d)], capture_output=True, text=True, timeout=60,
                       env=_env())
    assert r.returncode == 2 and "player 'server1'" in r.stderr and "expired on" in r.stderr, r.stderr
    del hm["driver"]
    cfg.write_text(json.dumps(hm))
    r = subprocess.run([sys.executable, "-m", "tfe_accel", "serve", "--config", str(cfg), "--player",
                        "server1", "--tls-dir", str(certs)], capture_output=True, text=True, timeout=60,
                       env=_env())
    assert r.returncode == 2 and "needs the driver's address" in r.stderr, r.stderr


@needs_netns
def test_status_checks_tls_endpoints(tls_cluster, certs):
    r = subprocess.run([sys.executable, "-m", "tfe_accel", "cluster", "status", "--config",
                        str(tls_cluster.config_path), "--tls-dir", str(certs)], capture_output=True,
                       text=True, timeout=120, env=_env())
    assert r.returncode == 0, r.stdout + r.stderr
    for p in PLAYERS:
        assert f"{p}: {tls_cluster.hostmap[p]} answers TLS (certificate checked)" in r.stdout


@needs_netns
def test_train_checkpoints_and_resumes_over_tls(tls_cluster, certs, tmp_path):
    """`tfe-accel train --cluster --tls-dir`: the parties write their checkpoint shares and read
    them back on --resume, over TLS."""
    out = tmp_path / "out"

    def train(*extra):
        return subprocess.run(
            [sys.executable, "-m", "tfe_accel", "train", "--no-progress", "--cluster",
             str(tls_cluster.config_path), "--tls-dir", str(certs), "--checkpoint-every", "3",
             "--output", str(out), *extra], capture_output=True, text=True, timeout=400, env=_env())

    first = train("--epochs", "6")
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((out / "checkpoints" / "checkpoint.json").read_text())["epoch"] == 6
    resumed = train("--epochs", "9", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    timing = json.loads((out / "metrics.json").read_text())["timing"]
    assert timing["start_epoch"] == 6 and timing["epochs_run"] == 3, timing
    assert np.isfinite(json.loads((out / "model.json").read_text())["weights"]).all()


@needs_netns
def test_watchdog_names_a_killed_party_over_tls(tls_cluster, certs, tls_run):
    driver = subprocess.Popen(
        [sys.executable, str(DRIVER), "loop", str(tls_cluster.config_path), "--failure-timeout",
         str(FAILURE_TIMEOUT), "--tls-dir", str(certs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        steps, deadline = 0, time.monotonic() + 150
        while steps < 3:
            line = driver.stdout.readline()
            assert line, f"driver ended early: {driver.wait()} {driver.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline
            steps += line.startswith("STEP ")
        tls_cluster.kill("server1", signal.SIGKILL)
        t0 = time.monotonic()
        rc = driver.wait(timeout=FAILURE_TIMEOUT + 60)
        err = driver.stderr.read()
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.wait(10)
    assert rc == cluster.EXIT_PARTY_FAILURE, err[-3000:]
    assert "party 'server1'" in err and "--resume" in err
    assert time.monotonic() - t0 < FAILURE_TIMEOUT + 30
