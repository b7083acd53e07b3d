#!/usr/bin/env bash
# On the H200: build the harness and the GPU tests, run the GPU tests of the tiled softmax-family
# kernels, time them on the FlagAttention sweep next to PyTorch SDPA (flash and cuDNN backends) in
# one CSV, and print the summary table last.
#   scripts/tiled-check.sh [OUT_DIR]      (default $OUT, else results/tiled-check-<time>)
# Environment:
#   TILED_TESTS=0          skip the GPU tests
#   TILED_SWEEP=...        extra `attnbench run` arguments for the timed (unchecked) part of the sweep
#   TILED_FULL=1           piecewise and hyperbolic backward too (default: their forward only)
#   TILED_ALGOS=...        the members timed next to softmax (default piecewise,hyperbolic)
#   TILED_SOFTMAX_PASSES=  softmax's passes (default fwd,bwd)
#   TILED_TEST_RE=...      ctest -R filter of the GPU tests (default: the three tiled impls)
#   TILED_STAGE_S=...      time box of each sweep stage in seconds (default 600)
#   TILED_CHECK=0          time softmax T=1024 too, unchecked (default: checked)
#   TILED_NO_SWEEP=1       build, tests and SASS only
#   TILED_PEERS=0          skip the SDPA peers
#   TILED_SASS=1           also summarize the SASS of the tiled kernels (HGMMA, local memory)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-results/tiled-check-$(date -u +%Y%m%d-%H%M%S)}}
mkdir -p "$out"
build=build/gpu-tiled
log() { echo "[tiled-check $(date -u +%H:%M:%S)] $*" >&2; }
t_start=$SECONDS

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader >&2
log "configure + build ($build)"
cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 300 cmake --build $build --target attnbench kernels_tests -j 16 >>"$out/build.log" 2>&1 ||
  { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; exit 1; }
log "built in $((SECONDS - t_start))s"

if [[ ${TILED_SASS:-0} == 1 ]] && command -v cuobjdump >/dev/null; then
  for o in $build/kernels/CMakeFiles/attnbench_kernels.dir/softmax/softmax_tiled*.o; do
    cuobjdump -sass "$o" | awk -v f="$(basename "$o")" '
      /Function :/ {fn=$3} /HGMMA/ {h[fn]++} /LDL|STL/ {l[fn]++} /MUFU/ {m[fn]++}
      END {for (k in h) printf "%s %s HGMMA=%d LDL/STL=%d MUFU=%d\n", f, substr(k,1,90), h[k], l[k], m[k]}'
  done >"$out/sass.txt" 2>&1
  sort "$out/sass.txt" | head -40 >&2
fi

if [[ ${TILED_TESTS:-1} == 1 ]]; then
  log "GPU tests of the tiled impls"
  timeout 300 ctest --test-dir $build -R "${TILED_TEST_RE:-(softmax|piecewise|hyperbolic)_tiled}" -j 8 --timeout 60 \
    --output-on-failure >"$out/tests.log" 2>&1
  grep -E "tests passed|tests failed" "$out/tests.log" >&2
  grep -E "\*\*\*Failed|\*\*\*Timeout|Exception|\(Failed\)|\(Timeout\)" "$out/tests.log" | head -30 >&2
  log "tests done at $((SECONDS - t_start))s"
fi

[[ ${TILED_NO_SWEEP:-0} == 1 ]] && exit 0
common=(--B 32768/T --H 2048/D --D 64,128 --causal both --dtype bf16 --budget-ms 60 --row-timeout 30
        --out "$out/tiled.csv")
bench=$build/harness/attnbench
box="timeout ${TILED_STAGE_S:-600}"
sm_pass=${TILED_SOFTMAX_PASSES:-fwd,bwd}
log "tiled sweep: softmax T=1024 checked (naive fp32 oracle, naive same-precision base), the rest timed"
check_1024=()
[[ ${TILED_CHECK:-1} == 0 ]] && check_1024=(--no-check)
$box $bench run --algo softmax --impl tiled --pass $sm_pass --T 1024 "${check_1024[@]}" "${common[@]}" \
  2>>"$out/sweep.log" >/dev/null
$box $bench run --algo softmax --impl tiled --pass $sm_pass --T 2048:16384:x2 --no-check "${common[@]}" ${TILED_SWEEP:-} \
  2>>"$out/sweep.log" >/dev/null
others=fwd
[[ ${TILED_FULL:-0} == 1 ]] && others=fwd,bwd
$box $bench run --algo ${TILED_ALGOS:-piecewise,hyperbolic} --impl tiled --pass $others --T 1024:16384:x2 --no-check \
  "${common[@]}" ${TILED_SWEEP:-} 2>>"$out/sweep.log" >/dev/null
grep -E "^done" "$out/sweep.log" >&2
log "sweep done at $((SECONDS - t_start))s"

if [[ ${TILED_PEERS:-1} == 1 ]]; then
  log "peers (SDPA flash, cuDNN)"
  PYTHONUNBUFFERED=1 timeout 200 python3 scripts/peers.py --T 1024:16384:x2 --B 32768/T --H 2048/D --D 64,128 \
    --causal both --pass fwd,bwd --dtype bf16 --budget-ms 60 --out "$out/tiled.csv" >>"$out/sweep.log" 2>&1
  log "peers done at $((SECONDS - t_start))s"
fi

python3 scripts/family_ratio.py "$out/tiled.csv" >"$out/family_ratio.md"
echo
# algo, pass, B, T, D, causal, status, ms, TFLOP/s, vs sdpa_cudnn, vs sdpa_flash (the ratio is peer ms / ours)
python3 scripts/summarize.py "$out/tiled.csv" | tee "$out/summary.md" |
  awk -F'|' '{printf "|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", $2, $4, $6, $8, $9, $10, $11, $12, $13, $16, $17}' |
  sed 's/ //g' 
