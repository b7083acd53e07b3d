#!/usr/bin/env bash
# gated/vector and gated/rwkv6 forward on a GPU machine: build attnbench and kernels_tests, run the
# linear-family GPU tests (default kernels: the fused vector-gate forward), the vector/rwkv6 tiled
# forward tests again under ATTNBENCH_LIN_VEC=bulk and =late (the fused kernel's A/B variants) and
# ATTNBENCH_LIN_FWD=tile (chunk_fwd), time the four forwards in the same run (B=8 H=32 D=128, bf16;
# retention as the scalar-gate yardstick), a checked run at T=1024, Nsight Compute on one vector
# forward, and print the A/B table last. Stages are bounded by what is left of the budget.
#   scripts/vec-check.sh [OUT_DIR]     (default: $OUT on the device tool, else results/vec-check)
# Environment: VEC_CHECK_BUDGET_S (default 380), ATTNBENCH_CUDA_ARCH (default 90a).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-results/vec-check}}
res="$out/vec"
mkdir -p "$res"
budget=${VEC_CHECK_BUDGET_S:-380}
t0=$SECONDS
left() { echo $((budget - (SECONDS - t0))); }
log() { echo "[vec-check $((SECONDS - t0))s] $*" | tee -a "$res/run.log" >&2; }
bin=./build/gpu-vec/harness/attnbench
tests_bin=./build/gpu-vec/tests/kernels/kernels_tests
pack() { tar czf "$out/vec.tgz" -C "$out" vec; }
trap pack EXIT

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader >"$res/nvidia-smi.txt" 2>&1
log "configure + build"
cmake -S . -B build/gpu-vec -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${ATTNBENCH_CUDA_ARCH:-90a}" >"$res/build.log" 2>&1 || { tail -30 "$res/build.log"; exit 1; }
cmake --build build/gpu-vec -j 16 --target attnbench kernels_tests >>"$res/build.log" 2>&1 \
  || { grep -E "error|FAILED" -A5 "$res/build.log" | head -60; exit 1; }
log "built"

gtest() {  # gtest NAME ENV FILTER SECONDS
  local name=$1 envs=$2 filter=$3 secs=$4
  ((secs < 15)) && { log "skip tests $name"; echo "tests $name: skipped (no time left)" >>"$res/tests.txt"; return; }
  log "GPU tests $name (env '$envs', $filter, limit ${secs}s)"
  env $envs timeout "$secs" "$tests_bin" --gtest_filter="$filter" >"$res/tests_$name.log" 2>&1
  local rc=$? line passed failed
  grep -E "^\[  FAILED  \]" "$res/tests_$name.log" | head -20 >&2
  line=$(grep -E "^\[==========\] [0-9]+ tests" "$res/tests_$name.log" | tail -1)
  passed=$(grep -oE "^\[  PASSED  \] [0-9]+" "$res/tests_$name.log" | grep -oE "[0-9]+$")
  failed=$(grep -cE "^\[  FAILED  \] .*\(" "$res/tests_$name.log")
  echo "tests $name (env '$envs'): ${line:-? (cut short)}; passed ${passed:-0}, failed $failed (rc $rc)" | tee -a "$res/tests.txt" >&2
  gzip -f "$res/tests_$name.log"
}
sweep() {  # sweep NAME CSV SECONDS ARGS...
  local name=$1 csv=$2 secs=$3
  shift 3
  ((secs < 20)) && { log "skip $name"; return; }
  log "sweep $name (limit ${secs}s)"
  timeout "$secs" "$bin" run --dtype bf16 --budget-ms 60 --max-samples 30 "$@" --out "$res/$csv" >>"$res/sweep.log" 2>&1
  log "sweep $name rc $?"
}
cap() { local x=$(($(left) * $1 / 100)); echo $((x < $2 ? x : $2)); }
D="--impl tiled --B 8 --H 32 --D 128 --no-check --pass fwd"
: >"$res/tests.txt"
VF='*gated_vector_tiled_fwd*:*gated_rwkv6_tiled_fwd*'
gtest gated "" '*gated*' "$(cap 40 110)"
gtest bulk ATTNBENCH_LIN_VEC=bulk "$VF" "$(cap 30 40)"
gtest late ATTNBENCH_LIN_VEC=late "$VF" "$(cap 30 40)"
gtest tile ATTNBENCH_LIN_FWD=tile "$VF" "$(cap 30 40)"
ATTNBENCH_LIN_FWD=tile sweep tile tile.csv "$(cap 25 50)" --algo gated --variant vector,rwkv6 $D --T 1024,4096
sweep fused fused.csv "$(cap 25 50)" --algo gated --variant vector,rwkv6,retention $D --T 1024,4096
ATTNBENCH_LIN_VEC=bulk sweep bulk bulk.csv "$(cap 25 50)" --algo gated --variant vector,rwkv6 $D --T 1024,4096
ATTNBENCH_LIN_VEC=late sweep late late.csv "$(cap 25 50)" --algo gated --variant vector,rwkv6 $D --T 1024,4096
sweep fused-16k fused.csv "$(cap 25 60)" --algo gated --variant vector,rwkv6 $D --T 16384
sweep checked checked.csv "$(cap 40 40)" --algo gated --variant vector,rwkv6 --impl tiled --B 8 --H 32 --D 128 \
  --T 1024 --pass fwd
gtest rest "" '*linear*:*based*:GpuNaive.*' "$(cap 30 40)"
# Nsight Compute on one vector forward at T = 4096 (default kernel), where installed
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
if [[ -n $ncu_bin ]] && (($(left) > 50)); then
  log "ncu"
  timeout $(($(left) - 15)) "$ncu_bin" --clock-control none -k regex:fused_vec_fwd -c 1 --section SpeedOfLight \
    --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section SchedulerStats --section WarpStateStats \
    --section Occupancy --section LaunchStats "$bin" run --algo gated --variant vector --impl tiled --dtype bf16 --B 8 \
    --H 32 --D 128 --T 4096 --pass fwd --no-check --budget-ms 1 --out "$res/ncu_one.csv" >"$res/ncu_vector.txt" 2>&1
  log "ncu rc $?"
  rm -f "$res/ncu_one.csv"
fi
grep -iE "error|fail" "$res/sweep.log" | head -10 >&2

python3 - "$res/fused.csv" "$res/tile.csv" "$res/checked.csv" "$res/late.csv" "$res/bulk.csv" <<'EOF' | tee "$res/ab.md"
import csv, sys, os
def load(p):
    d = {}
    if os.path.exists(p):
        for r in csv.DictReader(open(p)):
            if r["pass"] == "fwd":
                d[(r["variant"], int(r["Tq"]))] = r
    return d
fused, tile, checked, late, blk = (load(p) for p in sys.argv[1:6])
c = lambda r: "%.4g (%.2f)" % (float(r["ms_median"]), float(r["ms_median"]) / float(r["floor_ms"])) if r and r["ms_median"] else ""
print("| gated/variant | T | fused ms (x floor) | fused bulk ms (x floor) | fused late ms (x floor) | tile ms (x floor) | tile / fused | checked T=1024 |")
print("|---|---|---|---|---|---|---|---|")
for k in sorted(set(fused) | set(tile) | set(late) | set(blk)):
    f, t = fused.get(k), tile.get(k)
    ratio = "%.2f" % (float(t["ms_median"]) / float(f["ms_median"])) if f and t and f["ms_median"] and t["ms_median"] else ""
    ch = checked.get(k)
    print("| %s | %d | %s | %s | %s | %s | %s | %s |" % (k[0], k[1], c(f), c(blk.get(k)), c(late.get(k)), c(t), ratio,
          (ch["status"] + " err %s base %s" % (ch["err"], ch["err_base"])) if ch else ""))
EOF
cat "$res/tests.txt"
