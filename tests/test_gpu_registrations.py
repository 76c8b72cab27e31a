"""DEVICE_GPU kernel registrations of the TF ops (cc/tf/tf_gpu.h), checked from TF's kernel registry
without a GPU: every op in GPU_OPS has CPU and GPU kernels (for the same type constraints), the GPU
kernels read keys, nonces, seeds and shapes from host memory and every other input from device
memory, and no other op of the library has a GPU kernel (so the table stays honest).

Skipped unless the build has the GPU kernels (_build_info.json "tf_gpu_kernels": a CUDA build of
TensorFlow with TFE_ACCEL_CUDA on)."""
import json
import pathlib

import pytest

import tfe_accel  # loads the op library

BUILD_INFO = json.loads((pathlib.Path(tfe_accel.__file__).parent / "_build_info.json").read_text())

pytestmark = pytest.mark.skipif(
    not BUILD_INFO.get("tf_gpu_kernels", False),
    reason="this build has no TF GPU kernels (_build_info.json tf_gpu_kernels is false: needs a CUDA "
    "build of TensorFlow and TFE_ACCEL_CUDA=ON/AUTO with nvcc)",
)

from tensorflow.python.framework import kernels, op_def_registry  # noqa: E402

# Ops with a DEVICE_GPU kernel.
GPU_OPS = [
    # commit 5ea250a: matmuls, elementwise product, both truncations
    "TfeAccelRingMatmul",
    "TfeAccelRssMatmul",
    "TfeAccelPublicPrivateMatmul",
    "TfeAccelRssMul",
    "MpcTruncateLocalP0",
    "MpcTruncateLocalP1",
    "MpcTruncateLocalP2",
    "MpcTruncMsb0Dealer",
    "MpcTruncMsb0MaskP0",
    "MpcTruncMsb0MaskP1",
    "MpcTruncMsb0UnmaskP0",
    "MpcTruncMsb0UnmaskP1",
    "MpcTruncMsb0Combine",
    # bit extraction / Kogge-Stone carry
    "MpcBitExtractSetup",
    "MpcCarrySetupAnd",
    "MpcKoggeStoneRound",
    "MpcKoggeStoneUpdate",
    # sigmoid piece evaluation
    "MpcPivotDiff",
    "MpcPieceSelectAnd",
    "MpcTruncMsb0MaskScaledP0",
    "MpcTruncMsb0MaskScaledP1",
    "MpcMulAbStep1P0",
    "MpcMulAbStep1P1",
    "MpcMulAbStep1P2",
    "MpcMulAbStep2P0",
    "MpcMulAbStep2P1",
    "MpcMulAbStep2P2",
]

# Ops of the library that stay CPU-only.
CPU_ONLY_OPS = [
    "BitGather",
    "BitSplitAndGather",
    "BitReverse",
    "XorIndices",
    "TfeAccelBuildInfo",
    "SecureSeededRandomUniform",
    "SecureRandomUniform",
    "SecureSeed",
    "TfeAccelRssColumnSquares",  # setup-only step (standardisation), no CUDA kernel
    # the masked-comparison msb (cc/kernels/private_compare.h): no CUDA kernel yet
    "MpcPcOpen",
    "MpcPcDealer",
    "MpcPcMaskP0",
    "MpcPcMaskP1",
    "MpcPcResolve",
]


def _kernels(op, device):
    return [k for k in kernels.get_registered_kernels_for_op(op).kernel if k.device_type == device]


def _constraints(kernel):
    """The kernel's type constraints as a comparable value."""
    return sorted(
        (c.name, tuple(sorted(c.allowed_values.list.type))) for c in kernel.constraint
    )


def _host_inputs(op):
    """Inputs read on the host: keys, nonces, seeds and shape tensors."""
    names = [a.name for a in op_def_registry.get(op).input_arg]
    host = {n for n in names if any(w in n for w in ("key", "nonce", "seed")) or n == "shape"}
    return names, host


def test_ops_known():
    for op in GPU_OPS + CPU_ONLY_OPS:
        assert op_def_registry.get(op) is not None, f"{op} is not registered (table out of date?)"
    assert len(set(GPU_OPS)) == len(GPU_OPS)


@pytest.mark.parametrize("op", GPU_OPS)
def test_gpu_kernel_registered(op):
    cpu, gpu = _kernels(op, "CPU"), _kernels(op, "GPU")
    assert cpu, f"{op} has no CPU kernel"
    assert gpu, f"{op} has no GPU kernel"
    # same type constraints (e.g. the boolean word widths of the Kogge-Stone steps)
    assert sorted(map(_constraints, gpu)) == sorted(map(_constraints, cpu)), op


@pytest.mark.parametrize("op", GPU_OPS)
def test_gpu_host_memory(op):
    names, host = _host_inputs(op)
    for k in _kernels(op, "GPU"):
        hm = set(k.host_memory_arg)
        assert hm <= set(names), f"{op}: host_memory_arg {sorted(hm - set(names))} are not inputs"
        assert hm == host, (
            f"{op} {_constraints(k)}: host memory {sorted(hm)}, expected keys/nonces/seeds/shapes "
            f"{sorted(host)}"
        )


@pytest.mark.parametrize("op", CPU_ONLY_OPS)
def test_no_gpu_kernel(op):
    assert _kernels(op, "CPU"), f"{op} has no CPU kernel"
    assert not _kernels(op, "GPU"), f"{op} has a GPU kernel: add it to GPU_OPS"


def test_every_op_classified():
    """Every kernel of the library's ops belongs to an op in GPU_OPS or CPU_ONLY_OPS."""
    ours = {
        k.op
        for k in kernels.get_all_registered_kernels().kernel
        if k.op.startswith(("Mpc", "TfeAccel", "Secure")) or k.op in CPU_ONLY_OPS
    }
    missing = ours - set(GPU_OPS) - set(CPU_ONLY_OPS)
    assert not missing, f"ops in neither table: {sorted(missing)}"
    assert set(GPU_OPS) <= ours
