"""Placement of each party's fused ops on its GPU or its CPU (tfe_accel.placement).

This machine has no GPU, so the GPU cases use fake device lists: `resolve` is checked on them, and
whole protocol graphs are traced (not run) with parties given fake GPUs, to check that each fused
op lands on its own party's GPU, everything else stays on the party's CPU device, and no op reads
another party's state except messages. Running on a real GPU is bench/gpu_check.sh's job (CUDA
kernels) and needs TF with a GPU for the TF kernels (not available to this project's machines)."""
import logging

import numpy as np
import pytest
import tensorflow as tf
import tf_encrypted as tfe

import tfe_accel  # noqa: F401
from tfe_accel import placement
from tfe_accel.accounting import trace
from tfe_accel.config import PartitionedLocalConfig
from tfe_accel.placement import PlacementError, resolve
from tfe_accel.protocol import AcceleratedABY3

LOCAL_CPUS = [f"/job:localhost/replica:0/task:0/device:CPU:{i}" for i in range(3)]
LOCAL_GPUS = [f"/job:localhost/replica:0/task:0/device:GPU:{i}" for i in range(3)]
REMOTE_CPUS = [f"/job:tfe/replica:0/task:{i}/device:CPU:0" for i in range(3)]


def _never():
    raise AssertionError("the local CUDA check must not run for remote parties")


CPU_ONLY = ("MpcPc",)  # the masked comparison's steps: no CUDA kernel (tests/test_gpu_registrations.py)


def _all_fused(op_type):
    """Every fused op with a GPU kernel in a GPU build (the CPU-only ones excluded, as in TF's registry)."""
    return op_type.startswith(("TfeAccel", "Mpc")) and not op_type.startswith(CPU_ONLY)


# ------------------------------------------------------------------------------ resolve


def test_cpu_policy_is_cpu_everywhere():
    p = resolve("cpu", LOCAL_CPUS, gpus=LOCAL_GPUS, build_gpu=True, local_cuda_ok=lambda: True)
    assert [p.device(i, "TfeAccelRssMatmul") for i in range(3)] == LOCAL_CPUS
    assert not any(p.on_gpu(i) for i in range(3))


def test_bad_policy_names_the_choices():
    with pytest.raises(PlacementError, match="auto.*cpu.*gpu"):
        resolve("tpu", LOCAL_CPUS)
    with pytest.raises(PlacementError, match="placement must be one of"):
        AcceleratedABY3(placement="fast")


def test_build_without_gpu_kernels():
    p = resolve("auto", LOCAL_CPUS, gpus=LOCAL_GPUS, build_gpu=False)
    assert [p.device(i, "TfeAccelRssMatmul") for i in range(3)] == LOCAL_CPUS
    assert all("no TF GPU kernels" in r for r in p.reasons)
    with pytest.raises(PlacementError, match="no TF GPU kernels"):
        resolve("gpu", LOCAL_CPUS, gpus=LOCAL_GPUS, build_gpu=False)


def test_local_gpus_dealt_round_robin():
    one = resolve("auto", LOCAL_CPUS, gpus=LOCAL_GPUS[:1], build_gpu=True, local_cuda_ok=lambda: True,
                  gpu_kernel=_all_fused)
    assert [one.device(i, "MpcPivotDiff") for i in range(3)] == [LOCAL_GPUS[0]] * 3
    two = resolve("gpu", LOCAL_CPUS, gpus=LOCAL_GPUS[:2], build_gpu=True, local_cuda_ok=lambda: True,
                  gpu_kernel=_all_fused)
    assert [two.device(i, "MpcPivotDiff") for i in range(3)] == [LOCAL_GPUS[0], LOCAL_GPUS[1], LOCAL_GPUS[0]]


def test_ops_without_gpu_kernel_stay_on_the_party_cpu(caplog):
    p = resolve("gpu", LOCAL_CPUS, gpus=LOCAL_GPUS, build_gpu=True, local_cuda_ok=lambda: True,
                gpu_kernel=lambda op: op == "TfeAccelRssMatmul")
    with caplog.at_level(logging.DEBUG, logger="tfe_accel"):
        assert p.device(1, "TfeAccelRssMatmul") == LOCAL_GPUS[1]
        assert p.device(1, "MpcPivotDiff") == LOCAL_CPUS[1]
        p.device(2, "MpcPivotDiff")
    logged = [r.getMessage() for r in caplog.records if "MpcPivotDiff" in r.getMessage()]
    assert len(logged) == 1 and "no GPU kernel" in logged[0]


def test_local_cuda_runtime_unusable():
    p = resolve("auto", LOCAL_CPUS, gpus=LOCAL_GPUS, build_gpu=True, local_cuda_ok=lambda: False)
    assert not any(p.on_gpu(i) for i in range(3))
    assert "cuda_available() is False" in p.reasons[0]
    with pytest.raises(PlacementError, match="party 0"):
        resolve("gpu", LOCAL_CPUS, gpus=LOCAL_GPUS, build_gpu=True, local_cuda_ok=lambda: False)


def test_remote_parties_use_only_their_own_task_gpu():
    gpus = ["/job:tfe/replica:0/task:0/device:GPU:0", "/job:tfe/replica:0/task:2/device:GPU:0",
            "/job:tfe/replica:0/task:2/device:GPU:1"]
    p = resolve("auto", REMOTE_CPUS, gpus=gpus, build_gpu=True, local_cuda_ok=_never,
                gpu_kernel=_all_fused)
    assert p.device(0, "TfeAccelRssMul") == gpus[0]
    assert p.device(1, "TfeAccelRssMul") == REMOTE_CPUS[1]  # task 1 has no GPU: its CPU, not task 0's GPU
    assert p.device(2, "TfeAccelRssMul") == gpus[1]
    assert "no GPU visible" in p.reasons[1]
    with pytest.raises(PlacementError, match=r"party 1 \(/job:tfe/replica:0/task:1"):
        resolve("gpu", REMOTE_CPUS, gpus=gpus, build_gpu=True, local_cuda_ok=_never)


def test_this_machine_auto_resolves_to_cpu_and_logs_why(caplog):
    tfe.set_config(PartitionedLocalConfig())
    with caplog.at_level(logging.INFO, logger="tfe_accel"):
        prot = AcceleratedABY3()
    assert not any(prot.placement.on_gpu(i) for i in range(3))  # no GPU on the CI machines
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("placement:")]
    assert len(lines) == 3 and all("CPU" in line for line in lines)
    with pytest.raises(PlacementError, match="placement='gpu'"):
        AcceleratedABY3(placement="gpu")


def test_build_info_and_registry_agree():
    """The build says it has TF GPU kernels exactly when the registry holds some of ours."""
    assert placement.build_has_tf_gpu_kernels() == placement.has_gpu_kernel("TfeAccelRssMatmul")
    assert not placement.has_gpu_kernel("SecureSeed")  # PRG seeding stays on the host


def test_train_cli_rejects_gpu_placement_here(tmp_path, capsys):
    from tfe_accel import cli

    rc = cli.main(["train", "--epochs", "1", "--placement", "gpu", "--no-progress",
                   "--output", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "placement='gpu'" in err


# ------------------------------------------------------------------------------ traced graphs


def _graph_with_fake_gpus(fn, gpu_kernel=_all_fused, truncation="heuristic", comparison="auto"):
    tfe.set_config(PartitionedLocalConfig())
    prot = AcceleratedABY3(truncation=truncation, comparison=comparison)
    prot.placement = resolve("gpu", [s.device_name for s in prot.servers], gpus=LOCAL_GPUS,
                             build_gpu=True, local_cuda_ok=lambda: True, gpu_kernel=gpu_kernel)
    tfe.set_protocol(prot)
    rng = np.random.default_rng()
    x = tfe.define_private_variable(rng.uniform(-2, 2, (4, 5)))
    w = tfe.define_private_variable(rng.uniform(-2, 2, (5, 2)))
    return prot, trace(lambda: fn(x, w)).graph


def _norm(dev):
    return tf.DeviceSpec.from_string(dev).to_string() if dev else ""


@pytest.mark.parametrize("truncation,comparison", [("heuristic", "kogge-stone"), ("local", "kogge-stone"),
                                                   ("heuristic", "masked")])
def test_fused_ops_on_their_party_gpu_everything_else_on_its_cpu(truncation, comparison):
    prot, graph = _graph_with_fake_gpus(lambda x, w: tfe.sigmoid(tfe.matmul(x * x, w)),
                                        truncation=truncation, comparison=comparison)
    gpu_party = {_norm(g): i for i, g in enumerate(LOCAL_GPUS)}
    cpu_party = {_norm(s.device_name): i for i, s in enumerate(prot.servers)}
    fused = [op for op in graph.get_operations() if op.type.startswith(("TfeAccel", "Mpc"))]
    assert len(fused) > 20
    types = {op.type for op in fused}
    step = "MpcKoggeStoneRound" if comparison == "kogge-stone" else "MpcPcMaskP0"
    assert {"TfeAccelRssMul", "TfeAccelRssMatmul", "MpcPivotDiff", step} <= types
    for op in fused:  # CPU-only steps stay on their party's CPU
        where = gpu_party if _all_fused(op.type) else cpu_party
        assert _norm(op.device) in where, f"{op.name} ({op.type}) on {op.device!r}, not its party's device"
    on_gpu = [op for op in fused if _all_fused(op.type)]
    per_party = {i: {op.type for op in on_gpu if gpu_party[_norm(op.device)] == i} for i in range(3)}
    assert all(per_party[i] for i in range(3)), per_party
    # Host-side work stays on the party's CPU: PRG seeding and the received messages' copies.
    for op in graph.get_operations():
        if op.type in ("SecureSeed", "Identity") and op.device:
            assert _norm(op.device) in cpu_party, f"{op.name} ({op.type}) left its party's CPU: {op.device}"
    # A fused op of party p reads values of party p (its CPU or GPU), constants, or messages (the
    # outputs of other parties' fused ops / their Identity copies); never another party's state.
    party_of = {**gpu_party, **cpu_party}
    captured = {internal.op.name: external for external, internal in graph.captures}
    for op in fused:
        p = party_of[_norm(op.device)]
        for t in op.inputs:
            src = t.op
            while src.type == "Identity" and src.inputs:
                src = src.inputs[0].op
            dev = src.device or getattr(captured.get(src.name), "device", "")
            q = party_of.get(_norm(dev)) if dev else None
            if q is None or q == p or src.type == "Const":
                continue
            assert src.type.startswith(("TfeAccel", "Mpc", "SecureSeed")), (
                f"{op.name} (party {p}) reads {t.name} ({src.type}) of party {q}: not a message")


def test_only_ops_with_gpu_kernels_move():
    matmul_only = {"TfeAccelRssMatmul"}
    prot, graph = _graph_with_fake_gpus(lambda x, w: tfe.matmul(x * x, w),
                                        gpu_kernel=matmul_only.__contains__)
    cpus = {_norm(s.device_name) for s in prot.servers}
    gpus = {_norm(g) for g in LOCAL_GPUS}
    for op in graph.get_operations():
        if op.type.startswith(("TfeAccel", "Mpc")):
            want = gpus if op.type in matmul_only else cpus
            assert _norm(op.device) in want, f"{op.type} on {op.device}"


def test_summary_groups_parties_by_device_and_reason():
    gpus = ["/job:tfe/replica:0/task:0/device:GPU:0", "/job:tfe/replica:0/task:2/device:GPU:0"]
    p = resolve("auto", REMOTE_CPUS, gpus=gpus, build_gpu=True, local_cuda_ok=_never, gpu_kernel=_all_fused)
    s = p.summary()
    assert "GPU for parties 0, 2" in s and "CPU for party 1 (no GPU visible" in s, s
    assert len(p.describe()) == 3 and p.describe()[1].startswith("party 1: /job:tfe/replica:0/task:1/device:CPU:0")


def test_training_report_records_the_placement(tmp_path):
    from tfe_accel import cli

    out = tmp_path / "out"
    assert cli.main(["train", "--epochs", "1", "--placement", "cpu", "--no-progress", "--output", str(out)]) == 0
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["placement_summary"] == "CPU for parties 0, 1, 2 (placement='cpu')"
    assert len(metrics["placement"]) == 3
    assert "fused ops: CPU for parties 0, 1, 2" in (out / "report.md").read_text()
