"""`tfe-accel bench`: the quick suite finishes and writes sane files (never asserts speed); the
timing statistics and the README block replacement are right."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tfe_accel.benchmarks import report, runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _positive_finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    cli = os.path.join(os.path.dirname(sys.executable), "tfe-accel")
    proc = subprocess.run([cli, "bench", "all", "--quick", "--output", str(out)], capture_output=True,
                          text=True, env=env, cwd=str(out), timeout=900)  # not the checkout
    return proc, out


def test_quick_suite_writes_sane_files(quick_run):
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    for key in ("schema", "machine", "settings", "kernels", "protocol", "training", "gpu"):
        assert key in res, key
    m = res["machine"]
    for key in ("cpu_model", "usable_cores", "isa_code_path", "tensorflow", "threads"):
        assert m[key] not in (None, ""), key
    assert _positive_finite(m["memory_copy_bandwidth_gbs"])
    assert res["settings"]["quick"] is True

    prot = res["protocol"]
    assert prot["status"] == "ok", [c.get("error") for c in prot["cases"]]
    assert prot["runs"] >= 5 and len(prot["cases"]) >= 7
    ops = {c["op"] for c in prot["cases"]}
    assert {"matmul private x private", "mul + truncation", "sigmoid (5-piece)"} <= ops
    for c in prot["cases"]:
        for side in ("stock", "accelerated"):
            s = c[side]
            for key in ("median_s", "q1_s", "q3_s", "min_s"):
                assert _positive_finite(s[key]), (c["label"], side, key, s[key])
            assert s["q1_s"] <= s["median_s"] <= s["q3_s"]
            assert len(s["times_s"]) == s["runs"] >= 5
            assert s["nodes"] > 0 and s["messages"] > 0 and s["bytes"] > 0 and s["rounds"] > 0
        assert _positive_finite(c["speedup"]) and _positive_finite(c["speedup_vs_today"])
        assert isinstance(c["routed"], bool)
        for side in ("stock_tfe_function", "stock", "accelerated"):  # what users run today, like for like
            assert _positive_finite(c[side]["median_s"]) and _positive_finite(c[side]["first_call_s"])
        assert c["stock_tfe_function"]["path"] == "tfe_function" and c["accelerated"]["path"] == "fast"
        assert _positive_finite(c["accelerated"]["trace_s"])
    # something is routed today (matmul); the accelerated graph of a routed op holds fused ops
    assert any(c["routed"] for c in prot["cases"])

    tr = res["training"]
    for key in ("lr_step", "lr_iterations_d10_b128", "epoch"):
        assert tr[key]["status"] == "ok", tr[key].get("error")
        assert _positive_finite(tr[key]["stock"]["median_s"])
        assert _positive_finite(tr[key]["accelerated"]["median_s"])
    assert set(tr["lr_step"]["stock"]["breakdown"]) >= {"forward matmul", "sigmoid"}
    for key in ("stock_tfe_function", "accelerated_tfe_function"):
        assert _positive_finite(tr["lr_step"][key]["median_s"])
        assert _positive_finite(tr["lr_step"][key]["first_call_s"])
    assert _positive_finite(tr["lr_step"]["speedup_vs_today"]) and _positive_finite(tr["lr_step"]["fast_path_gain"])
    loc = tr["lr_iterations_d10_b128_localconfig"]
    assert loc["status"] == "ok" and loc["config"] == "localconfig" and loc["accelerated"]["messages"] is None
    k = tr["keras_dense_d10_b128"]
    assert k["status"] == "ok", k.get("error")
    assert all(_positive_finite(k[v]["iterations_per_s"]) for v in ("stock", "accelerated_tfe_function", "accelerated"))
    el = tr["epoch_loop_d10_b128"]
    assert el["status"] == "ok" and el["steps_per_epoch"] == 10 and _positive_finite(el["accelerated"]["batches_per_s"])
    tc = tr["train_cli"]
    assert tc["status"] == "ok", tc.get("error")
    for side in ("stock", "accelerated"):
        assert _positive_finite(tc[side]["wall_s"]) and tc[side]["peak_rss_bytes"] > 100e6
        assert set(tc[side]["phase_seconds"]) == {"sharing_and_preprocessing", "epochs", "reveal"}
        assert tc[side]["weights_relative_l2_max"] < 1e-2
    pc = tc["precision_cost"]  # the envelope's fractional bits (21 here) vs 16, side by side
    assert _positive_finite(tc["accelerated_f16"]["wall_s"]) and _positive_finite(pc["wall_ratio"])
    assert set(pc["weights_relative_l2_max"]) == {"auto", "f16"}
    assert tr["lr_iterations_d10_b128"]["hong_et_al_iterations_per_s"] == 754.0
    assert _positive_finite(tr["lr_iterations_d10_b128"]["accelerated"]["iterations_per_s"])

    for key in ("matmul", "mpc_steps"):  # modules of the package: they run from any directory
        k = res["kernels"][key]
        assert k["status"] == "ok", k.get("error")
        assert k["module"].startswith("tfe_accel.benchmarks.kernel_")
    assert res["kernels"]["matmul"]["result"]["results"][0]["rows"]
    assert res["kernels"]["mpc_steps"]["result"]["rows"]
    assert res["gpu"]["status"] in ("ok", "skipped", "missing", "failed")

    for png in ("protocol_speedup.png", "training_step_breakdown.png", "kernels_speedup.png",
                "train_cli_phases.png"):
        data = (out / png).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, png
    md = (out / "README_section.md").read_text()
    assert "Measured speedups" in md and "quick mode" in md and m["cpu_model"] in md
    assert "== protocol" in proc.stdout and "speedup" in proc.stdout


def test_summary_statistics_match_numpy():
    xs = list(np.random.default_rng().uniform(0.001, 1.0, size=9))
    s = runner.summarize(xs)
    assert s["median_s"] == pytest.approx(np.median(xs))
    assert s["q1_s"] == pytest.approx(np.percentile(xs, 25))
    assert s["q3_s"] == pytest.approx(np.percentile(xs, 75))
    assert s["iqr_s"] == pytest.approx(np.percentile(xs, 75) - np.percentile(xs, 25))


def test_interleaved_runs_each_candidate_and_refuses_fewer_than_five_runs():
    calls = []
    res = runner.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                             runs=5, warmup=1, min_run_s=0.0)
    assert res["a"]["runs"] == res["b"]["runs"] == 5
    assert calls == ["a", "b"] + ["a", "b"] * 5  # warm-up, then interleaved
    with pytest.raises(ValueError, match="runs must be >= 5"):
        runner.interleaved({"a": lambda: None}, runs=3)


def test_update_readme_replaces_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# title\nintro\n<!-- bench:start -->\nold numbers\n<!-- bench:end -->\ntail\n")
    section = tmp_path / "section.md"
    section.write_text("| new | table |\n")
    assert report.update_readme(str(readme), str(section)) is True
    assert readme.read_text() == ("# title\nintro\n<!-- bench:start -->\n| new | table |\n"
                                  "<!-- bench:end -->\ntail\n")
    assert report.update_readme(str(readme), str(section)) is False  # idempotent


@pytest.mark.parametrize("text", ["no markers\n", "<!-- bench:end -->\n<!-- bench:start -->\n",
                                  "<!-- bench:start -->\n<!-- bench:start -->\n<!-- bench:end -->\n"])
def test_update_readme_rejects_bad_markers(tmp_path, text):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(ValueError, match="bench:start"):
        report.update_readme(str(readme), "text")
    assert readme.read_text() == text


def test_json_is_strict():
    path = report.write_json({"a": float("nan"), "b": np.float64(2.5), "c": (1, np.int64(2))},
                             os.devnull)
    assert path == os.devnull
    assert report._clean({"a": float("inf"), "b": np.float64(2.5)}) == {"a": None, "b": 2.5}


def test_regenerate_rewrites_plots_and_section_from_results_json(quick_run):
    _, out = quick_run
    (out / "README_section.md").unlink()
    files = report.regenerate(str(out))
    assert len(files) == 5 and all(os.path.getsize(f) > 0 for f in files)  # 4 plots + the section
    assert "Measured speedups" in (out / "README_section.md").read_text()
