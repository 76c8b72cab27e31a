#!/usr/bin/env bash
# make test-sanitize: build every kernel in cc/kernels/ plus tests/sanitize/driver.cc with
# AddressSanitizer + UndefinedBehaviorSanitizer and run the driver once per code path the CPU has
# (TFE_ACCEL_FORCE_PATH=portable|avx2|avx512), halting on the first sanitizer finding. The outputs
# of all code paths must be bit-identical (the driver prints a digest of every kernel output).
# Then the known-bug reproducers (driver --case NAME) run one per process as strict expected
# failures: each must still fail; one that passes has been fixed and must move to the main suite.
#
# Usage: bash tests/sanitize/run.sh [PYTHON]   (PYTHON unused: the driver needs no Python)
# Env:   CXX (default g++), SANITIZE_BUILD_DIR (default build/sanitize), SANITIZE_JOBS (default 2)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CXX="${CXX:-g++}"
OUT="${SANITIZE_BUILD_DIR:-$ROOT/build/sanitize}"
JOBS="${SANITIZE_JOBS:-2}"
mkdir -p "$OUT"

# recoverable + halt_on_error=1: every finding still stops the run, but ubsan.supp can name the
# known bugs (their reproducers run separately, unsuppressed).
SAN="-fsanitize=address,undefined -fsanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
BASE="-std=gnu++17 -pthread -I$ROOT/cc/kernels $SAN"
AVX2="-mavx2 -mfma"
AVX512="-mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx512ifma -mavx512vnni -mavx2 -mfma -mbmi2"

# ---- build (incremental: an object is rebuilt when its source or any kernel header is newer)
srcs=("$ROOT"/cc/kernels/*.cc "$ROOT/tests/sanitize/driver.cc")
newest_header=$(ls -t "$ROOT"/cc/kernels/*.h | head -1)
objs=()
pids=()
for src in "${srcs[@]}"; do
  base=$(basename "$src" .cc)
  obj="$OUT/$base.o"
  objs+=("$obj")
  flags="$BASE"
  [[ "$base" == driver ]] && flags="$flags -Wall -Wextra"
  case "$base" in
    *_avx512) flags="$flags $AVX512" ;;
    *_avx2) flags="$flags $AVX2" ;;
  esac
  if [[ ! -f "$obj" || "$src" -nt "$obj" || "$newest_header" -nt "$obj" || "$0" -nt "$obj" ]]; then
    echo "[sanitize] compile $(basename "$src")"
    $CXX $flags -c "$src" -o "$obj" &
    pids+=($!)
    if (( ${#pids[@]} >= JOBS )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
$CXX $SAN -pthread "${objs[@]}" -o "$OUT/driver"

export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
UBSAN_BASE="halt_on_error=1:print_stacktrace=1"
export UBSAN_OPTIONS="$UBSAN_BASE:suppressions=$ROOT/tests/sanitize/ubsan.supp"

# ---- which code paths this CPU has (the driver reports the path it actually ran)
paths=(portable)
flags_line=$(grep -m1 '^flags' /proc/cpuinfo || true)
if [[ " $flags_line " == *" avx2 "* ]]; then paths+=(avx2); fi
if [[ " $flags_line " == *" avx512f "* && " $flags_line " == *" avx512ifma "* ]]; then paths+=(avx512); fi

status=0
declare -A digests
for p in "${paths[@]}"; do
  echo "[sanitize] TFE_ACCEL_FORCE_PATH=$p"
  log="$OUT/run_$p.log"
  if ! TFE_ACCEL_FORCE_PATH="$p" "$OUT/driver" >"$log" 2>&1; then
    cat "$log"
    echo "[sanitize] FAILED on code path $p"
    status=1
    continue
  fi
  cat "$log"
  line=$(grep '^CHECKS' "$log")
  ran=$(awk '{print $8}' <<<"$line")
  digests[$ran]=$(awk '{print $6}' <<<"$line")
done
if (( status == 0 )); then
  uniq_digests=$(printf '%s\n' "${digests[@]}" | sort -u | wc -l)
  if (( uniq_digests != 1 )); then
    echo "[sanitize] FAILED: code paths disagree: $(for k in "${!digests[@]}"; do printf '%s=%s ' "$k" "${digests[$k]}"; done)"
    status=1
  else
    echo "[sanitize] code paths agree (${!digests[*]}): digest ${digests[*]:0:1}"
  fi
fi

# ---- known bugs: strict expected failures, one process each
for c in $("$OUT/driver" --list-cases); do
  log="$OUT/case_$c.log"
  rc=0
  UBSAN_OPTIONS="$UBSAN_BASE" "$OUT/driver" --case "$c" >"$log" 2>&1 || rc=$?
  if (( rc == 77 )); then
    echo "[sanitize] skip known bug '$c': $(tail -1 "$log")"
  elif (( rc == 0 )); then
    echo "[sanitize] XPASS known bug '$c' no longer reproduces: move it into the main suite"
    status=1
  else
    echo "[sanitize] xfail known bug '$c' (still reproduces): $(grep -m1 -E 'runtime error|ERROR: AddressSanitizer|FAIL' "$log" || tail -1 "$log")"
  fi
done

if (( status == 0 )); then echo "[sanitize] OK"; fi
exit $status
