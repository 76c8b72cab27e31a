"""The link shaper (cc/net/link_shaper.h) and parties over a shaped network (tfe_accel.network).

Timing checks here have bounds wide enough for a loaded 2-core CI machine; the accuracy figures
of record come from `tfe-accel bench network` and the probe measurements in docs/network.md.
"""
import json
import os
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tfe_accel import _native, network

HERE = Path(__file__).resolve().parent
NETNS = network.netns_unavailable()
needs_netns = pytest.mark.skipif(NETNS is not None, reason=f"no network namespaces: {NETNS}")


@pytest.fixture
def probe():
    server = _native.ProbeServer("127.0.0.1", 0)
    yield server
    server.stop()


def _shaper(probe, delay_s=0.0, rate_bits=0.0, **kw):
    shape = {"delay_s": delay_s, "rate_bytes_per_s": rate_bits / 8}
    route = {"name": "a->b", "target_port": probe.port, "forward": dict(shape, link="a->b"),
             "backward": dict(shape, link="b->a")}
    s = _native.LinkShaper([route], **kw)
    s.start()
    return s


def _median_rtt(port, n):
    _native.probe_requests("127.0.0.1", port, 64, 64, 5, 10.0)  # warm up
    return statistics.median(_native.probe_requests("127.0.0.1", port, 64, 64, n, 10.0))


# ---- settings and errors ------------------------------------------------------------------------

@pytest.mark.parametrize("text,bits", [("1gbit", 1e9), ("100mbit", 1e8), ("250kbit", 2.5e5),
                                       ("100M", 1e8), ("2.5e8", 2.5e8), ("0", 0.0), ("none", 0.0),
                                       (1e6, 1e6)])
def test_parse_rate(text, bits):
    assert network.parse_rate(text) == bits


@pytest.mark.parametrize("bad", ["fast", "-1", "10 parsecs", ""])
def test_parse_rate_rejects_what_it_cannot_read(bad):
    with pytest.raises(ValueError, match="rate"):
        network.parse_rate(bad)


def test_profiles_and_presets():
    assert network.PRESETS["lan"].rtt_s == pytest.approx(0.2e-3)
    assert network.PRESETS["wan"].rate_bits_per_s == 100e6
    p = network.profile("wan", rtt_ms=10)
    assert (p.name, p.rtt_s, p.rate_bits_per_s) == ("custom", 0.01, 100e6)
    p = network.profile(None, rtt_ms=3, rate="10mbit")
    assert (p.rtt_s, p.rate_bits_per_s) == (0.003, 1e7)
    with pytest.raises(ValueError, match="unknown network preset 'moon'"):
        network.profile("moon")
    with pytest.raises(ValueError, match="RTT"):
        network.LinkProfile("x", -1.0, 0.0)
    with pytest.raises(ValueError, match="rate"):
        network.LinkProfile("x", 0.001, 100.0)


@pytest.mark.parametrize("host", ["10.0.0.1", "8.8.8.8", "example.org", "", "::2"])
def test_shaper_relays_on_loopback_only(host, probe):
    for key in ("listen_host", "target_host"):
        route = {"name": "x", "target_port": probe.port, key: host}
        with pytest.raises(_native.NetError, match="loopback"):
            _native.LinkShaper([route])


def test_shaper_argument_errors_name_the_problem(probe):
    with pytest.raises(ValueError, match="missing 'target_port'"):
        _native.LinkShaper([{"name": "x"}])
    with pytest.raises(TypeError, match="'delay_s' has the wrong type"):
        _native.LinkShaper([{"name": "x", "target_port": 1, "forward": {"delay_s": "1ms"}}])
    with pytest.raises(_native.NetError, match="delay must be in"):
        _native.LinkShaper([{"name": "x", "target_port": 1, "forward": {"delay_s": -1.0}}])
    with pytest.raises(_native.NetError, match="rate below 1000"):
        _native.LinkShaper([{"name": "x", "target_port": 1, "backward": {"rate_bytes_per_s": 5.0}}])
    with pytest.raises(_native.NetError, match="queue limit"):
        _native.LinkShaper([{"name": "x", "target_port": probe.port}], queue_limit_bytes=10)
    with pytest.raises(_native.NetError, match="no routes"):
        _native.LinkShaper([])
    with pytest.raises(_native.NetError, match="network namespace /nonexistent"):
        _native.LinkShaper([{"name": "x", "target_port": 1, "target_netns": "/nonexistent"}])
    busy = _native.LinkShaper([{"name": "first", "target_port": probe.port}])
    try:
        with pytest.raises(_native.NetError, match="route second.*cannot listen"):
            _native.LinkShaper([{"name": "second", "target_port": probe.port,
                                 "listen_port": busy.ports()[0]}])
    finally:
        busy.stop()


def test_target_down_is_counted_and_explained():
    from tfe_accel import cluster

    port = cluster.free_ports(1)[0]
    s = _native.LinkShaper([{"name": "x->down", "target_port": port}])
    s.start()
    try:
        with pytest.raises(_native.NetError, match="request 0 failed"):
            _native.probe_requests("127.0.0.1", s.ports()[0], 8, 8, 1, 5.0)
        st = s.stats()[0]
        assert st["failed_connects"] == 1 and st["connections"] == 0
        assert "Connection refused" in st["last_error"]
    finally:
        s.stop()


# ---- accuracy -------------------------------------------------------------------------------------

@pytest.mark.parametrize("rtt_ms", [2.0, 20.0])
def test_ping_pong_rtt_matches_the_setting(probe, rtt_ms):
    # The shaper must never deliver early (tight lower bound on every try). What it adds on top of
    # the setting is this machine's own loopback RTT and vCPU wake-up jitter (a busy CI VM once
    # gave 2.21 ms for 2 ms), which only ever adds time: the best of three tries, each with the
    # loopback RTT measured just before it and subtracted, must be within 10% of the setting.
    want = rtt_ms * 1e-3
    seen = []
    for _ in range(3):
        base = network.loopback_rtt(200)
        s = _shaper(probe, delay_s=rtt_ms / 2e3)
        try:
            rtt = _median_rtt(s.ports()[0], 60 if rtt_ms < 10 else 15)
        finally:
            s.stop()
        seen.append((rtt, base))
        assert rtt >= 0.98 * want, seen
        if rtt - base <= 1.10 * want:
            break
    assert min(r - b for r, b in seen) == pytest.approx(want, rel=0.10), seen


def test_lan_rtt_with_the_machines_own_loopback_subtracted(probe):
    # 0.2 ms is close to this machine's own vCPU wake-up jitter (a loopback RTT is a few us between
    # busy vCPUs, ~70 us when one has to wake), which only ever adds time: the shaper must never
    # deliver early (tight lower bound), and the best of three measurements, each with the loopback
    # RTT measured just before it, must be within the wider upper bound.
    seen = []
    for _ in range(3):
        base = network.loopback_rtt(200)
        s = _shaper(probe, delay_s=max(0.0, 0.1e-3 - base / 2))
        try:
            rtt = _median_rtt(s.ports()[0], 300)
        finally:
            s.stop()
        seen.append((rtt, base))
        assert rtt >= 0.9 * (0.2e-3 - base), seen
        if rtt <= 1.35 * 0.2e-3:
            break
    assert min(r for r, _ in seen) == pytest.approx(0.2e-3, rel=0.35), seen


@pytest.mark.parametrize("rate_bits", [100e6, 1e9])
def test_bulk_transfer_matches_the_rate(probe, rate_bits):
    s = _shaper(probe, delay_s=0.1e-3, rate_bits=rate_bits)
    try:
        port = s.ports()[0]
        small = statistics.median(_native.probe_requests("127.0.0.1", port, 16, 1, 9, 10.0))
        n = int(rate_bits / 8 * 0.4)  # 0.4 s at the set rate
        big = statistics.median(_native.probe_requests("127.0.0.1", port, n, 1, 3, 30.0))
        st = s.stats()[0]
    finally:
        s.stop()
    measured = n * 8 / (big - small)
    assert measured == pytest.approx(rate_bits, rel=0.10), measured
    assert st["max_queued_bytes"] <= (8 << 20) + 65536  # bounded by the queue limit (+ one chunk)


def test_connections_on_one_link_share_its_rate(probe):
    s = _shaper(probe, rate_bits=100e6)
    n = int(100e6 / 8 * 0.3)
    times = []

    def send():
        times.append(_native.probe_requests("127.0.0.1", s.ports()[0], n, 1, 1, 30.0)[0])

    try:
        threads = [threading.Thread(target=send) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        s.stop()
    # two connections of one link: 2n bytes at the link's rate take 0.6 s; per connection 0.3 s
    assert max(times) == pytest.approx(0.6, rel=0.15), times


def test_queue_limit_bounds_memory_with_a_slow_link(probe):
    s = _shaper(probe, rate_bits=10e6, queue_limit_bytes=256 * 1024)
    try:
        n = 1_000_000
        t = _native.probe_requests("127.0.0.1", s.ports()[0], n, 1, 1, 30.0)[0]
        st = s.stats()[0]
    finally:
        s.stop()
    assert st["max_queued_bytes"] <= 256 * 1024 + 65536
    assert t == pytest.approx(n * 8 / 10e6, rel=0.15)


# ---- parties over the shaped network ------------------------------------------------------------

PLAYERS = ["server0", "server1", "server2", "owner0", "owner1"]


def _driver(args, env, timeout=300):
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=dict(env, TF_CPP_MIN_LOG_LEVEL="2"))
    res = [ln[7:] for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert res, f"driver printed no result (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(res[-1])


@needs_netns
def test_shaped_cluster_computes_what_the_plaintext_does(tmp_path):
    sys.path.insert(0, str(HERE))
    try:
        import cluster_driver
        from test_cluster import ULP, _sigmoid5
    finally:
        sys.path.pop(0)
    sc = network.ShapedCluster.create(PLAYERS, tmp_path, network.PRESETS["lan"],
                                      exit_with_parent=True)
    sc.up(timeout=120)
    try:
        env = dict(os.environ, TFE_ACCEL_DRIVER_ADDRESS=sc.driver_address)
        out = _driver([HERE / "cluster_driver.py", "compute", sc.config_path, "--steps", 2], env)
        stats = {s["name"]: s for s in sc.link_stats()}
    finally:
        sc.down()
    a, b, x, y = cluster_driver.data()
    assert np.abs(np.array(out["matmul"]) - a @ b).max() < 8 * ULP * 5
    w = np.zeros((x.shape[1], 1))
    for _ in range(2):
        w = w - x.T @ (_sigmoid5(x @ w) - y) * (0.5 / len(x))
    assert np.abs(np.array(out["w"]) - w).max() < 1e-3
    # every server-to-server link carried the protocol's messages, and only through the shaper
    for s in ("server0", "server1", "server2"):
        for t in ("server0", "server1", "server2"):
            if s != t:
                assert stats[f"{s}->{t}"]["bytes_forward"] > 0, (s, t)


@needs_netns
def test_shaped_cluster_carries_tls_links(tmp_path):
    """`bench network --tls`'s cluster: the players in TLS mode behind the shaper compute what the
    plaintext cluster does, and their links (TLS) go through the shaper."""
    from tfe_accel import tls

    sys.path.insert(0, str(HERE))
    try:
        import cluster_driver
        from test_cluster import ULP
    finally:
        sys.path.pop(0)
    certs = tmp_path / "certs"
    tls.init(certs, PLAYERS + [tls.DRIVER], days=1)
    sc = network.ShapedCluster.create(PLAYERS, tmp_path / "c", network.PRESETS["lan"],
                                      exit_with_parent=True, tls_dir=certs)
    assert sc.config.driver_address == sc.driver_address  # the gateways dial the driver
    sc.up(timeout=120)
    try:
        out = _driver([HERE / "cluster_driver.py", "compute", sc.config_path, "--steps", 1,
                       "--tls-dir", certs], dict(os.environ))
        stats = {s["name"]: s for s in sc.link_stats()}
    finally:
        sc.down()
    a, b, _, _ = cluster_driver.data()
    assert np.abs(np.array(out["matmul"]) - a @ b).max() < 8 * ULP * 5
    for s in ("server0", "server1", "server2", "driver"):
        for t in ("server0", "server1", "server2"):
            if s != t:
                assert stats[f"{s}->{t}"]["bytes_forward"] > 0, (s, t)


@needs_netns
def test_shaped_cluster_time_and_accounting_agree_with_the_estimate(tmp_path):
    from tfe_accel.benchmarks import network as bench_network

    local = bench_network._run_driver("local", True, 5)["cases"]
    link = network.LinkProfile("test", 20e-3, 0.0)
    shaped = bench_network._run_cluster(link, True, 5, tmp_path)
    # a call with no protocol still pays the driver's dispatch and fetch: at least one RTT
    assert shaped["null_call"]["median_s"] >= link.rtt_s, shaped["null_call"]
    for name, res in shaped["cases"].items():
        for p in ("stock", "accelerated"):
            # the graph on the cluster is the one the accounting counted in-process
            for key in ("rounds", "messages", "bytes"):
                assert res[p][key] == local[name][p][key], (name, p, key)
            t, rounds = res[p]["median_s"], res[p]["rounds"]
            # every round is at least one one-way delay; the estimate is an order-of-magnitude
            # model here (the bench reports its error), so only a loose upper bound
            assert t >= rounds * link.rtt_s / 2, (name, p, t)
            assert t <= 4 * (local[name][p]["median_s"] + rounds * link.rtt_s) + 0.5, (name, p, t)
    assert shaped["wire_bytes_per_route"]["server0->server1"] > 0


def test_bench_network_cli_refuses_bad_settings(capsys):
    from tfe_accel import cli

    assert cli.main(["bench", "network", "--rtt", "-1"]) == 2
    assert "RTT must be in [0, 10] s" in capsys.readouterr().err
    assert cli.main(["bench", "network", "--rate", "fast"]) == 2
    assert "cannot read rate 'fast'" in capsys.readouterr().err
    assert cli.main(["bench", "protocol", "--preset", "wan"]) == 2
    assert "--preset/--rtt/--rate/--tls belong to the network section" in capsys.readouterr().err
    assert cli.main(["bench", "kernels", "--tls"]) == 2


def test_estimate_formula():
    from tfe_accel.benchmarks import network as bench_network

    link = network.LinkProfile("x", 0.01, 8e6)  # 10 ms, 1 MB/s
    # one-way per round plus the first receive's request: (3 + 1) x 5 ms
    assert bench_network.estimate(0.5, 3, 2_000_000, link) == pytest.approx(0.5 + 0.02 + 2.0)
    assert bench_network.estimate(0.5, 3, 2_000_000, network.LinkProfile("y", 0.01, 0.0)) == \
        pytest.approx(0.52)
    assert bench_network.estimate(0.5, 3, 0, link, call_overhead_s=0.03) == pytest.approx(0.55)
    assert bench_network.estimate(0.5, 0, 0, link, call_overhead_s=0.03) == pytest.approx(0.53)


@needs_netns
def test_train_cli_over_the_shaped_network(tmp_path):
    """`tfe-accel train --cluster` with owners and servers each in their own namespace: both
    protocols train a model close to float64 (what `bench network` times end to end)."""
    from tfe_accel.benchmarks import network as bench_network

    out = bench_network.training_benchmark([network.PRESETS["lan"]], (40, 300, 20), tmp_path,
                                           log=lambda *_: None)
    prof = out["profiles"][0]
    share_bytes = 41 * 300 * 8  # one share of the training matrix (40 records + the mean row)
    for protocol in ("stock", "accelerated"):
        r = prof[protocol]
        assert r["weights_relative_l2"] < 1e-2, (protocol, r["weights_relative_l2"])
        assert 0 < r["secure_wall_s"] < r["wall_s"]
        # No share of the data reaches the driver (the preprocessing's results stay on the
        # parties); what does is the revealed model and the calls' small replies.
        assert set(r["bytes_to_driver"]) >= {"server0", "server1", "server2"}
        for player, nbytes in r["bytes_to_driver"].items():
            assert nbytes < share_bytes, (protocol, player, nbytes)
    assert prof["speedup"] > 0
