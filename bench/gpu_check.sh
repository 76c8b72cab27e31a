#!/usr/bin/env bash
# tfe-accel GPU check: ONE script for an H100/H200 machine with Python 3, numpy,
# pybind11, cmake and nvcc (CuPy optional), no TensorFlow, no package registry.
#   bash bench/gpu_check.sh OUTDIR
# Builds _native with CUDA and without the TF op library into $BUILD_DIR (default build-gpu/),
# then runs bench/gpu_check.py: bit-exact checks of every CUDA kernel against NumPy (the references
# of python/tfe_accel/reference.py, loaded by path) and the CPU kernels, ring GEMM / matrix-vector
# timings, copy bandwidth. Writes OUTDIR/gpu_check.json and OUTDIR/gpu_check.log.
# Budget: ~2-3 min build + < 5 min checks and timings.
set -euo pipefail
OUT="${1:?usage: bash bench/gpu_check.sh OUTDIR}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$(command -v "${PYTHON:-python3}")"
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
export PATH="$PATH:/usr/local/cuda/bin"
{
  echo "== $(date -u +%FT%TZ) gpu_check on $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  nvcc --version | tail -2
  "$PY" --version
  start=$(date +%s)
  cmake -S "$ROOT" -B "$BUILD" -DTFE_ACCEL_TF_OPS=OFF -DTFE_ACCEL_CUDA=ON \
        -DPython_EXECUTABLE="$PY" -DTFE_ACCEL_OUTPUT_DIR="$BUILD/out" -DCMAKE_BUILD_TYPE=Release
  cmake --build "$BUILD" -j"$(nproc)"
  echo "== build took $(( $(date +%s) - start )) s"
  timeout 420 "$PY" "$ROOT/bench/gpu_check.py" --module-dir "$BUILD/out" --out "$OUT"
} 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
