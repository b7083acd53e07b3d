#!/usr/bin/env bash
# On the H200, from a tree with hyp-overlap.patch applied: the opt-in overlapped hyperbolic forward
# (ATTNBENCH_HYP_OVERLAP=1) in one time-boxed call.
#   bash notes/hyp-overlap-unmeasured/check.sh OUT_DIR
# 1. build attnbench + kernels_tests (build/gpu-tiled), SASS counts of both hyperbolic forwards
# 2. the hyperbolic tiled GPU tests with the knob on (ctest inherits the environment)
# 3. the numerics rule with the knob on where the defaults do not reach: c = 0.25, beta = 0.5 (far and
#    near path), c = 0.01, beta = 0.1 (near path, fp16, total attention); checked rows, fwd and bwd
#    (the backward's untimed forward also runs the overlapped kernel)
# 4. forward timing, FlagAttention shapes, bf16: per T, softmax, hyperbolic (default), hyperbolic
#    (knob) back to back, so a cut run still has whole triples; T order 1024, 4096, 16384, 2048, 8192
# Stages are boxed against CHECK_DEADLINE_S (default 570 s). Prints the tests, the check statuses and
# the two ratio tables (scripts/family_ratio.py) last.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:?OUT_DIR}
mkdir -p "$out"
deadline=${CHECK_DEADLINE_S:-570}
box() { local cap=$1 left=$((deadline - SECONDS - 10)); ((left < cap)) && cap=$left; ((cap < 5)) && cap=5; echo "$cap"; }
log() { echo "[hyp-overlap $(date -u +%H:%M:%S) +${SECONDS}s] $*" >&2; }
build=build/gpu-tiled
bench=$build/harness/attnbench
grep -q tiled_forward_overlap kernels/softmax/softmax_tiled_launch.cuh || { echo "hyp-overlap.patch is not applied"; exit 1; }

log "configure + build"
cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout "$(box 240)" cmake --build $build --target attnbench kernels_tests -j 16 >>"$out/build.log" 2>&1 ||
  { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; exit 1; }
grep -E "C75[0-9][0-9]" "$out/build.log" | cut -c1-220 >&2  # wgmma serialization warnings (expected: none)
obj=$build/kernels/CMakeFiles/attnbench_kernels.dir/softmax/softmax_tiled_hyperbolic.cu.o
cuobjdump -sass "$obj" | awk '
  /Function :/ {fn=$3} /^ +\/\*[0-9a-f]+\*\// {n[fn]++} /HGMMA/ {h[fn]++} /LDL|STL/ {l[fn]++}
  /MUFU/ {m[fn]++} /WARPGROUP.DEPBAR/ {w[fn]++}
  {gsub(/UR[0-9]+/, ""); while (match($0, /R[0-9]+/)) {r = substr($0, RSTART + 1, RLENGTH - 1) + 0; if (r > mr[fn]) mr[fn] = r;
                                 $0 = substr($0, RSTART + RLENGTH)}}
  END {for (k in n) if (k ~ /tiled_forward/ && k ~ /LorentzScoreILb1/)
         printf "%s instr=%d HGMMA=%d LDL/STL=%d MUFU=%d DEPBAR=%d maxreg=R%d\n", substr(k, 24, 90), n[k], h[k], l[k],
                m[k], w[k], mr[k]}' |
  sort >"$out/sass.txt"
cat "$out/sass.txt" >&2

log "hyperbolic tiled GPU tests, ATTNBENCH_HYP_OVERLAP=1"
ATTNBENCH_HYP_OVERLAP=1 timeout "$(box 120)" ctest --test-dir $build -R hyperbolic_tiled -j 8 --timeout 60 \
  --output-on-failure >"$out/tests.log" 2>&1
log "numerics rule off the defaults, knob on"
small=(--algo hyperbolic --impl tiled --pass fwd,bwd --T 1024 --B 2 --H 4 --D 64,128 --causal both --budget-ms 10
       --row-timeout 30 --out "$out/extra.csv")
ATTNBENCH_HYP_OVERLAP=1 timeout "$(box 50)" $bench run --curvature 0.25 --beta 0.5 --dtype bf16 "${small[@]}" \
  2>>"$out/extra.log" >/dev/null
ATTNBENCH_HYP_OVERLAP=1 timeout "$(box 50)" $bench run --curvature 0.01 --beta 0.1 --dtype fp16 --total-attention \
  "${small[@]}" 2>>"$out/extra.log" >/dev/null

log "forward timing"
fa=(--impl tiled --pass fwd --B 32768/T --H 2048/D --D 64,128 --causal both --dtype bf16 --budget-ms 60
    --row-timeout 30 --no-check)
for T in 1024 4096 16384 2048 8192; do
  timeout "$(box 40)" $bench run --algo softmax --T $T "${fa[@]}" --out "$out/softmax.csv" 2>>"$out/sweep.log" >/dev/null
  timeout "$(box 40)" $bench run --algo hyperbolic --T $T "${fa[@]}" --out "$out/hyp_default.csv" \
    2>>"$out/sweep.log" >/dev/null
  ATTNBENCH_HYP_OVERLAP=1 timeout "$(box 40)" $bench run --algo hyperbolic --T $T "${fa[@]}" \
    --out "$out/hyp_overlap.csv" 2>>"$out/sweep.log" >/dev/null
  log "T=$T done"
done

echo "== tests (knob on)"; grep -hE "tests passed|tests failed|\(Failed\)|\(Timeout\)" "$out/tests.log" | head -20
echo "== numerics rule, knob on (status counts)"
[[ -f $out/extra.csv ]] && python3 -c "
import csv,collections,sys
rows=list(csv.DictReader(open(sys.argv[1])))
c=collections.Counter((r['params'].split(';lse')[0],r['pass'],r['status']) for r in rows)
for k,v in sorted(c.items()): print(k,v)
" "$out/extra.csv"
echo "== SASS"; cat "$out/sass.txt"
echo "== hyperbolic / softmax, default forward"; python3 scripts/family_ratio.py "$out/softmax.csv" "$out/hyp_default.csv"
echo "== hyperbolic / softmax, ATTNBENCH_HYP_OVERLAP=1"; python3 scripts/family_ratio.py "$out/softmax.csv" "$out/hyp_overlap.csv"
log "done"
