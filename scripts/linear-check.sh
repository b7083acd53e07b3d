#!/usr/bin/env bash
# The causal linear families (linear, based, gated) on a GPU machine: build what their kernels
# need (or use binaries carried in build/lin-carry), run their GPU tests, check and time tiled and
# naive at B=8 H=32 D=128 T=1024 (based also at Dk=16 Dv=128), time tiled at T 4096 and 16384 and at
# the shapes of the published flash-linear-attention table, and print the x-floor table and the
# comparison with the published A100 times last.
#   scripts/linear-check.sh [OUT_DIR]      (default: $OUT on the device tool, else results/linear-check)
#   scripts/linear-check.sh --pack BUILD   pack BUILD's attnbench and kernels_tests into
#                                          build/lin-carry (used only while the sources match)
# Environment: ATTNBENCH_CUDA_ARCH (default 90a), LINEAR_CHECK_BUDGET_S (whole script, default 500).
set -uo pipefail
cd "$(dirname "$0")/.."
# A fingerprint of every source the binaries are built from.
src_hash() {
  find CMakeLists.txt cmake harness kernels reference tests -type f \( -name '*.cu' -o -name '*.cuh' -o -name '*.h' \
    -o -name '*.cpp' -o -name 'CMakeLists.txt' -o -name '*.cmake' \) | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16
}
if [[ ${1:-} == --pack ]]; then
  tmp=$(mktemp -d) && cp "$2/harness/attnbench" "$2/tests/kernels/kernels_tests" "$tmp"/ && strip --strip-debug "$tmp"/*
  mkdir -p build/lin-carry && tar cJf build/lin-carry/bins.tar.xz -C "$tmp" attnbench kernels_tests && rm -rf "$tmp"
  src_hash >build/lin-carry/SOURCE && echo "packed build/lin-carry ($(cat build/lin-carry/SOURCE))" && exit 0
fi
out=${1:-${OUT:-results/linear-check}}
mkdir -p "$out"
budget=${LINEAR_CHECK_BUDGET_S:-500}
t_start=$SECONDS
left() { echo $((budget - (SECONDS - t_start))); }
log() { echo "[linear-check $((SECONDS - t_start))s] $*" >&2; }
bin=./build/gpu-lin/harness/attnbench
tests_bin=./build/gpu-lin/tests/kernels/kernels_tests

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | tee "$out/nvidia-smi.txt"
# Binaries built elsewhere from this same tree may travel as build/lin-carry/bins.tar.xz (the device
# tool's carry); they are used when they run here, else everything is built.
if [[ -f build/lin-carry/bins.tar.xz && "$(cat build/lin-carry/SOURCE 2>/dev/null)" == "$(src_hash)" ]]; then
  mkdir -p build/lin-carry/bin && tar xJf build/lin-carry/bins.tar.xz -C build/lin-carry/bin
  if build/lin-carry/bin/attnbench list >/dev/null 2>&1; then
    bin=./build/lin-carry/bin/attnbench
    tests_bin=./build/lin-carry/bin/kernels_tests
    log "using the carried binaries"
  fi
fi
if [[ $bin == ./build/gpu-lin/* ]]; then
  log "configure + build (attnbench, kernels_tests)"
  cmake -S . -B build/gpu-lin -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${ATTNBENCH_CUDA_ARCH:-90a}" >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
  cmake --build build/gpu-lin -j 16 --target attnbench kernels_tests >>"$out/build.log" 2>&1 \
    || { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; exit 1; }
  log "built"
fi

log "GPU tests (*linear*, *based*, *gated*, GpuNaive.*)"
timeout $(( $(left) / 3 < 150 ? $(left) / 3 : 150 )) "$tests_bin" \
  --gtest_filter='*linear*:*based*:*gated*:GpuNaive.*' >"$out/tests.log" 2>&1
test_rc=$?
grep -E "^\[  FAILED  \]|Failure|Expected|rel_rms" "$out/tests.log" | head -40 >&2
tests_line=$(grep -E "^\[==========\] [0-9]+ tests" "$out/tests.log" | tail -1)
passed=$(grep -oE "^\[  PASSED  \] [0-9]+" "$out/tests.log" | grep -oE "[0-9]+$")
failed=$(grep -cE "^\[  FAILED  \] .*\(" "$out/tests.log")
skipped=$(grep -oE "^\[  SKIPPED \] [0-9]+" "$out/tests.log" | grep -oE "[0-9]+$")
log "tests: ${tests_line:-?}; passed ${passed:-0}, failed $failed, skipped ${skipped:-0} (rc $test_rc)"

csv="$out/lin.csv"
sweep() {  # sweep NAME SECONDS ARGS...: one attnbench run, bounded in time
  local name=$1 secs=$2
  shift 2
  ((secs < 20)) && { log "skip $name (no time left)"; return; }
  log "sweep $name (limit ${secs}s)"
  timeout "$secs" "$bin" run --dtype bf16 --budget-ms 60 --max-samples 30 "$@" --out "${SWEEP_CSV:-$csv}" \
    >>"$out/sweep.log" 2>&1
  log "sweep $name rc $?"
}
# Timed at the target shapes first (T = 4096 every variant, based also at Dk=16 Dv=128), the A/B of
# the three-blocks-an-SM forward (ATTNBENCH_LIN_OCC=3, its own CSV), T = 16384, then checked at
# T = 1024 (naive-fp32 oracle, naive same-precision base) with what time is left.
sweep main-4k $(( $(left) * 30 / 100 )) --no-check --algo linear,gated,based --impl tiled --B 8 --H 32 --T 4096 \
  --D 128 --pass fwd,bwd
sweep based-4k $(( $(left) * 10 / 100 )) --no-check --algo based --impl tiled --B 8 --H 32 --T 4096 --Dk 16 --Dv 128 \
  --pass fwd,bwd
ATTNBENCH_LIN_OCC=3 SWEEP_CSV="$out/occ3.csv" sweep occ3-4k $(( $(left) * 10 / 100 )) --no-check --algo linear,gated \
  --variant retention --impl tiled --B 8 --H 32 --T 4096 --D 128 --pass fwd,bwd
sweep main-16k $(( $(left) * 55 / 100 )) --no-check --algo linear,gated,based --variant retention,vector,rwkv6 \
  --impl tiled --B 8 --H 32 --T 16384 --D 128 --pass fwd,bwd
sweep based-16k $(( $(left) * 40 / 100 )) --no-check --algo based --impl tiled --B 8 --H 32 --T 16384 --Dk 16 \
  --Dv 128 --pass fwd,bwd
sweep checked $(( $(left) - 20 )) --algo gated --variant scalar,vector,rwkv6 --impl tiled --B 8 --H 32 --T 1024 \
  --D 128 --pass fwd,bwd
grep -iE "error|fail" "$out/sweep.log" | head -10 >&2

python3 - "$csv" results/published/fla_a100_2024.csv <<'EOF' | tee "$out/table.md"
# fwd and fwd+bwd per point: ms, GB/s, x floor (floor_ms from the run's copy bandwidth); and the
# published A100 PCIe fwd+bwd times against the hardware ratio 4.8 TB/s / 1.555 TB/s = 3.09.
import csv, sys, os
rows = list(csv.DictReader(open(sys.argv[1]))) if os.path.exists(sys.argv[1]) else []
pub = {}
if os.path.exists(sys.argv[2]):
    for r in csv.DictReader(open(sys.argv[2])):
        if r["algo"] in ("gated", "based"):
            pub[(r["algo"], r["variant"], int(r["B"]), int(r["H"]), int(r["T"]), int(r["Dk"]), int(r["Dv"]))] = float(r["value"])
HW = 4.8 / 1.555
f = lambda s: float(s) if s not in ("", None) else None
pts = {}
for r in rows:
    k = (r["algo"], r["variant"], r["impl"], int(r["B"]), int(r["H"]), int(r["Tq"]), int(r["Dk"]), int(r["Dv"]), r["params"])
    pts.setdefault(k, {})[r["pass"]] = r
print("| algo | impl | B | H | T | Dk/Dv | fwd ms | fwd GB/s | fwd x floor | bwd ms | fwd+bwd ms | fwd+bwd x floor | status | published A100 fwd+bwd ms | speedup (need > %.2f) |" % HW)
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for k in sorted(pts, key=lambda k: (k[0], k[1], k[2], k[5], k[6])):
    a, v, impl, B, H, T, dk, dv, _ = k
    fw, bw = pts[k].get("fwd"), pts[k].get("bwd")
    cell = lambda r, c: f(r[c]) if r else None
    fms, bms = cell(fw, "ms_median"), cell(bw, "ms_median")
    ffl, bfl = cell(fw, "floor_ms"), cell(bw, "floor_ms")
    st = "/".join(sorted({(r["status"] or "")[:24] for r in (fw, bw) if r}))
    tot = fms + bms if fms and bms else None
    totfl = ffl + bfl if ffl and bfl else None
    p = pub.get((a, v, B, H, T, dk, dv))
    fmt = lambda x, d=3: ("%.*f" % (d, x)) if x else ""
    print("| %s | %s | %d | %d | %d | %d/%d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        a + ("/" + v if v else ""), impl, B, H, T, dk, dv, fmt(fms), cell(fw, "gbps") or "",
        fmt(fms / ffl, 2) if fms and ffl else "", fmt(bms), fmt(tot), fmt(tot / totfl, 2) if tot and totfl else "", st,
        fmt(p), fmt(p / tot, 1) if p and tot else ""))
EOF

echo
echo "## linear-check summary"
echo "tests: ${tests_line:-?}; passed ${passed:-0}, failed $failed, skipped ${skipped:-0}"
python3 scripts/summarize.py "$csv" 2>/dev/null | grep -vE "\| (ref|emul) \|" | head -120
echo "## ATTNBENCH_LIN_OCC=3 (one stage, three blocks an SM)"
python3 scripts/summarize.py "$out/occ3.csv" 2>/dev/null | head -12
