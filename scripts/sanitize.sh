#!/usr/bin/env bash
# compute-sanitizer over every CUDA implementation at awkward shapes, on a GPU machine:
#   memcheck   out-of-bounds and misaligned accesses, invalid frees, API errors
#   racecheck  shared-memory data races (slow: the smallest shapes)
#   synccheck  invalid __syncthreads / barrier use
# Each run is `attnbench run --no-isolate --no-time` for one algo/impl (every variant, fwd and bwd,
# causal and not) under one tool, bounded by a timeout. Prints a table of errors per tool per
# implementation (rows run / skipped as the CSV says; zero errors expected) and exits 0 only when
# every run finished with zero errors.
#
#   scripts/sanitize.sh [options] [OUT_DIR]        (default OUT_DIR: results/sanitize-<time>; $OUT)
#     --build DIR        build folder with harness/attnbench (default build/gpu; configured and built
#                        there, as scripts/gpu-check.sh does, when the binary is missing)
#     --tools LIST       comma-separated subset of memcheck,racecheck,synccheck
#     --impl LIST        algo/impl pairs (default: every `cuda` line of `attnbench list`); a pair
#                        may carry environment settings after '+', e.g. bidir/tiled+ATTNBENCH_BIDIR_FWD=two
#                        (by default bidir/tiled also runs under ATTNBENCH_BIDIR_FWD=two and =fused:
#                        the two-launch forward, which the plan takes for large problems with poorly
#                        filled waves, and the cp.async one-launch forward, the fallback of the TMA one)
#     --dry-run          print the commands, run nothing under the sanitizer
# Environment: COMPUTE_SANITIZER (its path), ATTNBENCH_SANITIZE_TIMEOUT (seconds per run, default
# 300), ATTNBENCH_SANITIZE_BUDGET (seconds for all runs, default 540: later runs are listed as
# "not run (budget)" and the result is INCOMPLETE), ATTNBENCH_CUDA_ARCH (default 90a, for a build).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

build=build/gpu tools=memcheck,racecheck,synccheck impls="" dry=0 out=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    --impl) impls=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "sanitize.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
out=${out:-${OUT:-results/sanitize-$(date -u +%Y%m%d-%H%M%S)}}
limit=${ATTNBENCH_SANITIZE_TIMEOUT:-300}
budget=${ATTNBENCH_SANITIZE_BUDGET:-540}
for t in ${tools//,/ }; do
  case $t in memcheck|racecheck|synccheck) ;; *) echo "sanitize.sh: --tools: unknown tool '$t'" >&2; exit 2 ;; esac
done
mkdir -p "$out" || exit 2
unset ATTNBENCH_TEST_IMPLS  # the implementations that fault on purpose are not under test here

bin=${ATTNBENCH_BIN:-$build/harness/attnbench}
if [[ ! -x $bin ]]; then
  arch=${ATTNBENCH_CUDA_ARCH:-90a}
  echo "sanitize.sh: building $build (CUDA arch $arch)" >&2
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    >"$out/configure.log" 2>&1 || { tail -20 "$out/configure.log" >&2; exit 2; }
  cmake --build "$build" -j "$(nproc)" --target attnbench >"$out/build.log" 2>&1 ||
    { grep -E "error|FAILED" -A3 "$out/build.log" | head -40 >&2; exit 2; }
fi

san=${COMPUTE_SANITIZER:-}
if [[ -z $san ]]; then
  for c in "$(command -v compute-sanitizer 2>/dev/null)" /usr/local/cuda/bin/compute-sanitizer \
           /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    [[ -n $c && -x $c ]] && { san=$c; break; }
  done
fi
if [[ -z $san && $dry -eq 0 ]]; then
  echo "sanitize.sh: compute-sanitizer not found (set COMPUTE_SANITIZER or add it to PATH)" >&2
  exit 2
fi
san=${san:-compute-sanitizer}

if [[ -z $impls ]]; then
  impls=$("$bin" list | awk '$2 == "cuda" { print $1 }' | paste -sd, -)
  if [[ -z $impls ]]; then
    echo "sanitize.sh: '$bin list' shows no CUDA implementation (a CPU-only build, or no usable GPU):" >&2
    "$bin" list | tail -1 >&2
    exit 2
  fi
  [[ ,$impls, == *,bidir/tiled,* ]] && impls+=",bidir/tiled+ATTNBENCH_BIDIR_FWD=two,bidir/tiled+ATTNBENCH_BIDIR_FWD=fused"
fi

# Awkward shapes: odd lengths, a partial last tile, Tk != Tq and grouped heads in the softmax
# family. Racecheck tracks every shared-memory access: one head, one short sequence.
shape_args() {  # tool algo
  local family=linear extra="" dims="--D 64"
  case $2 in softmax|piecewise|hyperbolic) family=softmax ;; esac
  [[ $2 == bidir ]] && extra=" --feature-map all"  # each map is its own code path (focused: a shared-memory pass)
  [[ $2 == based ]] && dims="--Dk 16,64 --Dv 64"  # Dk <= 16: the fused forward; 64: the quadratic form
  if [[ $1 == racecheck ]]; then
    echo "--B 1 --H 1 --T 63 $dims --dtype bf16,fp32$extra"
  elif [[ $family == softmax ]]; then
    echo "--B 1 --H 4 --Hkv 2 --T 63 --Tk 63,130 $dims --dtype bf16,fp16,fp32"
  else
    echo "--B 1 --H 2 --T 63,130 $dims --dtype bf16,fp16,fp32$extra"
  fi
}

summary="$out/summary.md"
{
  echo "| tool | impl | rows run | skipped | check failed | sanitizer errors | result | seconds |"
  echo "|---|---|---:|---:|---:|---:|---|---:|"
} >"$summary"
bad=0 incomplete=0 start=$SECONDS
for tool in ${tools//,/ }; do
  for ai in ${impls//,/ }; do
    envs=()
    [[ $ai == *+* ]] && IFS=+ read -ra envs <<<"${ai#*+}"
    pair=${ai%%+*}
    algo=${pair%%/*} impl=${pair#*/}
    tag="${tool}_${algo}_${impl}"
    for e in "${envs[@]}"; do tag+="_${e//=/-}"; done
    csv="$out/$tag.csv" log="$out/$tag.log"
    rm -f "$csv"
    read -ra shape <<<"$(shape_args "$tool" "$algo")"
    # shellcheck disable=SC2054  # the commas are inside option values
    cmd=(env "${envs[@]}" "$san" --tool "$tool" --error-exitcode 1 --print-limit 50 "$bin" run --no-isolate --no-time
         --algo "$algo" --impl "$impl" "${shape[@]}" --causal both --pass fwd,bwd --oracle ref --out "$csv")
    if [[ $dry -eq 1 ]]; then
      printf 'timeout %s %s\n' "$limit" "${cmd[*]}"
      continue
    fi
    left=$((budget - (SECONDS - start)))
    if [[ $left -le 10 ]]; then
      incomplete=1
      echo "| $tool | $ai | | | | | not run (budget) | |" >>"$summary"
      continue
    fi
    t0=$SECONDS
    timeout --kill-after=20 "$((left < limit ? left : limit))" "${cmd[@]}" >"$log" 2>&1
    rc=$? secs=$((SECONDS - t0))
    # "========= ERROR SUMMARY: 3 errors" (racecheck also prints "RACECHECK SUMMARY: ... hazards")
    errors=$(grep -oE "ERROR SUMMARY: [0-9]+" "$log" | tail -1 | grep -oE "[0-9]+$")
    # racecheck: "RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)"
    [[ -z $errors ]] && errors=$(grep -oE "RACECHECK SUMMARY: .*\(([0-9]+) errors" "$log" | tail -1 | grep -oE "[0-9]+ errors" | grep -oE "[0-9]+")
    run=0 skipped=0 failed=0
    if [[ -s $csv ]]; then
      read -r run skipped failed < <(python3 - "$csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
skipped = sum(r["status"].startswith("skipped:") for r in rows)
failed = sum(r["status"] == "fail" or r["status"].startswith("error:") for r in rows)
print(len(rows) - skipped, skipped, failed)
EOF
)
    fi
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
      result="timeout after ${secs}s"
    elif [[ -z $errors ]]; then
      result="no sanitizer summary (rc $rc)"
    elif [[ $errors -ne 0 ]]; then
      result="ERRORS"
    elif [[ $run -eq 0 ]]; then
      result="nothing ran"
    else
      result=ok
    fi
    [[ $result != ok ]] && bad=1
    echo "| $tool | $ai | $run | $skipped | $failed | ${errors:-?} | $result | $secs |" >>"$summary"
    echo "[sanitize] $tool $ai: $result (${errors:-?} errors, $run rows run, $skipped skipped, ${secs}s)" >&2
  done
done
[[ $dry -eq 1 ]] && exit 0

echo
echo "## compute-sanitizer summary ($("$san" --version 2>/dev/null | grep -oE "[0-9]{4}\.[0-9.]+" | head -1))"
echo "binary: $bin; logs and CSVs: $out"
cat "$summary"
verdict=PASS
[[ $incomplete -eq 1 ]] && verdict="INCOMPLETE (budget of ${budget}s spent; rerun with --tools/--impl for the rest)"
[[ $bad -eq 1 ]] && verdict=FAIL
echo "sanitize: $verdict"
[[ $bad -eq 0 && $incomplete -eq 0 ]]
