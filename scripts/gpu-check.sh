#!/usr/bin/env bash
# On a GPU machine: configure, build, run every test (no GPU test may skip), run a smoke sweep of
# every CUDA implementation, and print a summary table last.
#   scripts/gpu-check.sh [OUT_DIR]     (default: results/gpu-check-<time>; $OUT on the device tool)
# Environment: ATTNBENCH_CUDA_ARCH (default 90a), ATTNBENCH_SMOKE_ARGS (extra `attnbench run` args),
# ATTNBENCH_TEST_FILTER (a ctest -R regex, default all), ATTNBENCH_TEST_JOBS (ctest -j, default nproc).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-results/gpu-check-$(date -u +%Y%m%d-%H%M%S)}}
mkdir -p "$out"
arch=${ATTNBENCH_CUDA_ARCH:-90a}
jobs=$(nproc)
log() { echo "[gpu-check $(date -u +%H:%M:%S)] $*" | tee -a "$out/gpu-check.log" >&2; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | tee "$out/nvidia-smi.txt"
log "configure + build (CUDA arch $arch, $jobs jobs)"
t0=$SECONDS
cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build/gpu -j "$jobs" >"$out/build.log" 2>&1 || { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; exit 1; }
build_s=$((SECONDS - t0))
log "built in ${build_s}s; running tests"
t0=$SECONDS
ctest --test-dir build/gpu -j "${ATTNBENCH_TEST_JOBS:-$jobs}" --output-on-failure ${ATTNBENCH_TEST_FILTER:+-R "$ATTNBENCH_TEST_FILTER"} \
  >"$out/ctest.log" 2>&1
test_rc=$?
test_s=$((SECONDS - t0))
total=$(grep -oE "tests passed.* out of [0-9]+" "$out/ctest.log" | grep -oE "[0-9]+$")
failed=$(grep -oE "[0-9]+ tests failed" "$out/ctest.log" | grep -oE "^[0-9]+"); failed=${failed:-0}
skipped=$(grep -c "(Skipped)" "$out/ctest.log")
gpu_skipped=$(grep "(Skipped)" "$out/ctest.log" | grep -c "Gpu")
grep -E "Failed|\(Skipped\)" "$out/ctest.log" | head -40 >&2
log "tests: ${total:-?} run, ${failed:-?} failed, $skipped skipped ($gpu_skipped GPU tests skipped) in ${test_s}s"

log "smoke sweep"
./build/gpu/harness/attnbench run --algo all --B 1 --H 4 --T 512,2048 --D 64,128 --dtype bf16 --pass fwd,bwd \
  --causal both --budget-ms 100 ${ATTNBENCH_SMOKE_ARGS:-} --out "$out/smoke.csv" 2>"$out/smoke.log"
smoke_rc=$?
tail -1 "$out/smoke.log" >&2

echo
echo "## gpu-check summary"
echo "build ${build_s}s; tests: ${total:-?} run, ${failed:-?} failed, $skipped skipped ($gpu_skipped GPU skipped), ${test_s}s"
python3 scripts/summarize.py "$out/smoke.csv" | grep -vE "\| (ref|emul) \|" >"$out/smoke.md"
echo "smoke sweep (every row: $out/smoke.md):"
python3 - "$out/smoke.csv" <<'PY'
import csv, sys
from collections import Counter, defaultdict
n = defaultdict(Counter)
for r in csv.DictReader(open(sys.argv[1])):
    st = r["status"]
    n[(r["algo"] + ("/" + r["variant"] if r["variant"] else ""), r["impl"])][st.split(":")[0]] += 1
print("| algo | impl | rows | pass | fail | skipped | error |")
print("|---|---|---:|---:|---:|---:|---:|")
for (a, i), c in sorted(n.items()):
    print(f"| {a} | {i} | {sum(c.values())} | {c['pass']} | {c['fail']} | {c['skipped']} | {c['error']} |")
PY
rc=0
[[ $test_rc -ne 0 || $gpu_skipped -ne 0 ]] && rc=1
[[ $smoke_rc -ne 0 ]] && rc=1
echo "gpu-check: $([[ $rc -eq 0 ]] && echo PASS || echo FAIL) (tests rc $test_rc, GPU skipped $gpu_skipped, smoke rc $smoke_rc)"
exit $rc
