#!/usr/bin/env bash
# Where the gated vector-gate kernels spend their time, on a GPU machine (measurement only: the
# ablated kernels compute wrong results and are never checked):
#   1. the wgmma forward fused_vec_wg_fwd with parts skipped (ATTNBENCH_LIN_VEC=abl<N>, bits in
#      kernels/linear/linear_family_tiled_fused_launch.h), bf16 vector, B=8 H=32 D=128, one process
#      per N, T = LIN_ABL_T (default 4096) -> vec_abl.csv, vec_abl.md (ms and x floor);
#   2. the backward's launches timed apart and gated_bwd_chunk2 with phases skipped
#      (ATTNBENCH_LIN_GBWD=abl+prof: the gbwd-prof and gbwd-abl lines) -> gbwd_abl.txt.
#   scripts/lin-abl.sh OUT_DIR [BUILD_DIR]   (BUILD_DIR default build/gpu; configured and built here)
# Environment: LIN_ABL_T (T list, default 4096), LIN_ABL_LIST (the words of step 1: default or
# abl<N>, each optionally with :<variants>; default "default abl1 abl2 abl16 abl4 abl8 abl32 abl7
# abl39"; "default" times vector and rwkv6, abl<N> vector; e.g. abl768:rwkv6), LIN_ABL_GBWD (0 skips step 2), LIN_ABL_TESTS (a gtest filter: kernels_tests is built and
# run with it first -> tests.txt).
set -uo pipefail
cd "$(dirname "$0")/.."
out=$1
bdir=${2:-build/gpu}
mkdir -p "$out"
log() { echo "[lin-abl $SECONDS s] $*" >&2; }
cmake -S . -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${ATTNBENCH_CUDA_ARCH:-90a}" >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
cmake --build "$bdir" -j 16 --target attnbench ${LIN_ABL_TESTS:+kernels_tests} >>"$out/build.log" 2>&1 \
  || { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; exit 1; }
log "built"
if [[ -n ${LIN_ABL_TESTS:-} ]]; then
  timeout 300 ./$bdir/tests/kernels/kernels_tests --gtest_filter="$LIN_ABL_TESTS" >"$out/tests.txt" 2>&1
  log "tests rc $?: $(grep -E '^\[  PASSED|^\[  FAILED|^\[  SKIPPED' "$out/tests.txt" | tr '\n' ' ')"
fi
bin=./$bdir/harness/attnbench
T=${LIN_ABL_T:-4096}
rm -f "$out/vec_abl.csv"
for word in ${LIN_ABL_LIST:-default abl1 abl2 abl16 abl4 abl8 abl32 abl7 abl39}; do
  n=${word%%:*}
  vars=$([[ $n == default ]] && echo vector,rwkv6 || echo vector)
  [[ $word == *:* ]] && vars=${word#*:}
  env ATTNBENCH_LIN_VEC=$([[ $n == default ]] && echo wg || echo $n) timeout 200 "$bin" run --algo gated --impl tiled \
    --dtype bf16 --B 8 --H 32 --D 128 --T "$T" --no-check --budget-ms 60 --max-samples 30 --variant "$vars" --pass fwd \
    --out "$out/one.csv" >>"$out/run.log" 2>&1 || log "vec $n failed"
  [[ -f $out/one.csv ]] && python3 - "$out/one.csv" "$out/vec_abl.csv" "$n" <<'EOF'
import csv, os, sys
src, dst, label = sys.argv[1:]
rows = list(csv.DictReader(open(src)))
new = not os.path.exists(dst)
with open(dst, "a", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["abl"] + list(rows[0].keys()))
    if new: w.writeheader()
    for r in rows: w.writerow({"abl": label, **r})
EOF
  rm -f "$out/one.csv"
done
[[ ${LIN_ABL_GBWD:-1} != 0 ]] && log "gbwd abl+prof" &&
ATTNBENCH_LIN_GBWD=abl+prof timeout 120 "$bin" run --algo gated --impl tiled --dtype bf16 --B 8 --H 32 --D 128 \
  --T "$T" --no-check --budget-ms 10 --min-samples 5 --max-samples 5 --variant vector,rwkv6 --pass bwd \
  --out "$out/gbwd.csv" 2>&1 | grep -E "gbwd-(abl|prof)" | tail -8 >"$out/gbwd_abl.txt"
python3 - "$out/vec_abl.csv" <<'EOF' | tee "$out/vec_abl.md"
import csv, sys
print("| ATTNBENCH_LIN_VEC | variant | T | ms | x floor |")
print("|---|---|---|---|---|")
for r in csv.DictReader(open(sys.argv[1])):
    if r["ms_median"]:
        print(f"| {r['abl']} | {r['variant']} | {r['Tq']} | {float(r['ms_median']):.4f} | {float(r['ms_median']) / float(r['floor_ms']):.2f} |")
EOF
cat "$out/gbwd_abl.txt" 2>/dev/null
