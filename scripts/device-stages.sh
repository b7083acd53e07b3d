#!/usr/bin/env bash
# The evidence runs of the open issues on a GPU machine, as named stages, each time-boxed, so one
# device call can do several and a later call (a warm machine keeps build/gpu) can do the rest.
#   scripts/device-stages.sh STAGE...        (results and logs under $OUT, or results/stages-<time>)
# Stages:
#   build        configure + build build/gpu (skipped when it is up to date)
#   gbench       attnbench run, attnbench-gbench, attnbench run again on one GPU point (issue 10)
#   fa-check     the FlagAttention shape set (T 512..16384, B = 32768/T, H = 2048/D, D 64, 128, causal
#                both, fwd and bwd) checked against the naive fp32 oracle, wall time (issue 4)
#   suite:NAME   scripts/peers.py with the suite's peers line, then `attnbench suite NAME` into the same
#                CSV: the side-by-side table (issue 8)
#   san:TOOLS[@IMPLS]  scripts/sanitize.sh --tools TOOLS (comma-separated) over every CUDA impl, or
#                the algo/impl pairs IMPLS (e.g. san:memcheck,synccheck@bidir/tiled) (issue 9)
#   tests:REGEX  ctest -R REGEX
# Environment: STAGE_LIMIT_S (seconds per stage, default 280), SAN_LIMIT_S (the san stage's, default
# STAGE_LIMIT_S), SAN_RUN_LIMIT_S (one sanitizer run, default 90). On exit every file but stages.log is
# packed into stages-<time>.tgz, one per run of this script (the device tool returns at most 8 files).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-results/stages-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
log=$out/stages.log
limit=${STAGE_LIMIT_S:-280}
b=build/gpu
A=$b/harness/attnbench
say() { echo "[stage $(date -u +%H:%M:%S)] $*" | tee -a "$log"; }
clock() { nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw --format=csv,noheader 2>/dev/null | tr -d '\n'; }

stage_build() {
  [[ -f $b/build.ninja ]] || cmake -S . -B $b -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${ATTNBENCH_CUDA_ARCH:-90a}" >"$out/configure.log" 2>&1
  local t0=$SECONDS
  timeout "$limit" cmake --build $b -j "$(nproc)" >"$out/build.log" 2>&1
  local rc=$?
  say "build rc=$rc in $((SECONDS - t0))s ($(grep -c Building "$out/build.log") objects)"
  [[ $rc -eq 0 ]] || grep -E "error|FAILED" -A5 "$out/build.log" | head -40
  return $rc
}

stage_tests() {
  timeout "$limit" ctest --test-dir $b -R "$1" -j "$(nproc)" --output-on-failure >"$out/tests.log" 2>&1
  say "tests -R '$1' rc=$?: $(grep -E 'tests passed' "$out/tests.log")"
  grep -E "\(Failed\)|\(Skipped\)|\(Timeout\)" "$out/tests.log" | tee -a "$log"
}

# One point, three measurements back to back: run, gbench (3 repetitions), run. Both take the
# median of CUDA-event samples with an L2 flush before each; the SM clock is in each row.
stage_gbench() {
  local P="--algo softmax --impl tiled --dtype bf16 --B 2 --H 16 --T 4096 --D 128 --causal yes --pass fwd"
  local G=$b/harness/gbench/attnbench-gbench
  say "gbench vs run: $P (clock before: $(clock))"
  # Both with the same budget: about 100 samples each, the same load on the GPU (see
  # harness/gbench/README.md on clocks); then gbench's default 0.5 s for contrast.
  timeout 60 "$A" run $P --budget-ms 30 --out "$out/agree.csv" 2>>"$log"
  timeout 90 "$G" $P --budget-ms 30 --no-ref-bench --benchmark_repetitions=3 --benchmark_out="$out/gbench.json" \
    --benchmark_out_format=json >>"$log" 2>&1
  timeout 60 "$A" run $P --budget-ms 30 --out "$out/agree.csv" 2>>"$log"
  timeout 90 "$G" $P --no-ref-bench --benchmark_out="$out/gbench_default.json" --benchmark_out_format=json >>"$log" 2>&1
  python3 - "$out" <<'PY' | tee -a "$log"
import csv, json, statistics, sys
o = sys.argv[1]
runs = list(csv.DictReader(open(o + "/agree.csv")))
for r in runs:
    print(f"run    ms_median {float(r['ms_median']):.4f}  p20 {float(r['ms_p20']):.4f}  p80 {float(r['ms_p80']):.4f}  "
          f"noise {r['noise']}  sm_clock {r['sm_clock_mhz']} MHz  {r['status']}")
g = [b for b in json.load(open(o + "/gbench.json"))["benchmarks"] if b.get("run_type") == "iteration"]
for b in g:
    print(f"gbench real_time {b['real_time']:.4f} ms_median {b['ms_median']:.4f} noise {b['noise']:.4f} sm_clock {b['sm_clock_mhz']:.0f} MHz")
rm = statistics.median(float(r["ms_median"]) for r in runs)
gm = statistics.median(b["ms_median"] for b in g)
noise = max([float(r["noise"]) for r in runs] + [b["noise"] for b in g])
d = [b for b in json.load(open(o + "/gbench_default.json"))["benchmarks"] if b.get("run_type") == "iteration"]
for b in d:
    print(f"gbench (default min time 0.5 s) ms_median {b['ms_median']:.4f} iterations {b['iterations']} sm_clock {b['sm_clock_mhz']:.0f} MHz")
print(f"agreement: gbench median {gm:.4f} ms vs run median {rm:.4f} ms: {100 * (gm / rm - 1):+.2f}% "
      f"(largest noise of any measurement {100 * noise:.2f}%): {'within noise' if abs(gm / rm - 1) <= noise else 'OUTSIDE noise'}")
PY
}

stage_fa_check() {
  say "FlagAttention shape set, checked (naive fp32 oracle), clock $(clock)"
  local t0=$SECONDS
  timeout "$limit" "$A" run --algo softmax --impl tiled --dtype bf16 --T 512:16384:x2 --B 32768/T --H 2048/D \
    --D 64,128 --causal both --pass fwd,bwd --oracle naive-fp32 --budget-ms 20 --out "$out/fa_check.csv" 2>"$out/fa_check.log"
  local rc=$?
  say "fa-check rc=$rc wall $((SECONDS - t0))s: $(tail -1 "$out/fa_check.log")"
}

stage_suite() {
  local name=$1 peers
  peers=$(sed -n 's/^peers: //p' "suites/$name.suite")
  local t0=$SECONDS
  if [[ -n $peers ]]; then
    say "suite $name: peers $peers"
    PYTHONUNBUFFERED=1 timeout "$limit" python3 scripts/peers.py $peers --budget-ms 30 \
      --out "$out/$name.csv" >"$out/${name}_peers.log" 2>&1
    say "peers rc=$? in $((SECONDS - t0))s"
  else
    say "suite $name: no peers line (no PyTorch peer for it)"
  fi
  t0=$SECONDS
  timeout "$limit" "$A" suite "$name" --out "$out/$name.csv" >"$out/$name.md" 2>"$out/${name}_suite.log"
  local rc=$?
  say "suite $name rc=$rc in $((SECONDS - t0))s: $(grep '^done:' "$out/${name}_suite.log")"
  [[ $rc -eq 124 ]] && timeout 60 "$A" suite "$name" --from "$out/$name.csv" >"$out/$name.md" 2>>"$log"
  cat "$out/$name.md"
}

stage_san() {  # TOOLS or TOOLS@IMPLS (algo/impl pairs, comma-separated)
  local tools=${1%%@*} impls="" tag=${1//[^a-z0-9_,]/_}
  [[ $1 == *@* ]] && impls=${1#*@}
  ATTNBENCH_SANITIZE_BUDGET=${SAN_LIMIT_S:-$limit} ATTNBENCH_SANITIZE_TIMEOUT=${SAN_RUN_LIMIT_S:-90} \
    scripts/sanitize.sh --build $b --tools "$tools" ${impls:+--impl "$impls"} "$out/san" >"$out/sanitize_$tag.txt" 2>&1
  say "sanitize $1 rc=$?"
  sed -n '/## compute-sanitizer summary/,$p' "$out/sanitize_$tag.txt" | tee -a "$log"
}

pack() {  # the device tool brings back 8 files: everything but the log goes into one archive per run
  local tgz
  tgz=stages-$(date -u +%H%M%S).tgz
  (cd "$out" && find . -mindepth 1 -maxdepth 1 ! -name stages.log ! -name 'stages*.tgz' -print0 |
    xargs -0r tar czf "$tgz" && find . -mindepth 1 -maxdepth 1 ! -name stages.log ! -name 'stages*.tgz' -exec rm -rf {} +)
}
trap pack EXIT
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader | tee -a "$log"
for s in "$@"; do
  case $s in
    build) stage_build || exit 1 ;;
    gbench) stage_gbench ;;
    fa-check) stage_fa_check ;;
    suite:*) stage_suite "${s#suite:}" ;;
    san:*) stage_san "${s#san:}" ;;
    tests:*) stage_tests "${s#tests:}" ;;
    *) echo "device-stages.sh: unknown stage '$s' (build, gbench, fa-check, suite:NAME, san:TOOLS[@IMPLS], tests:REGEX)" >&2; exit 2 ;;
  esac
done
