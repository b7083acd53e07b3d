#!/usr/bin/env bash
# The causal linear families (linear, based, gated) on a GPU machine: build what their kernels
# need (or use binaries carried in build/lin-carry), run their GPU tests (every variant, default
# kernels; then the linear and gated forwards again under ATTNBENCH_LIN_FWD=tile), time tiled
# at B=8 H=32 D=128 T=1024/4096/16384 (linear, retention fwd+bwd; the other variants fwd at 4096,
# vector and rwkv6 also under ATTNBENCH_LIN_FWD=tile),
# A/B the forward kernels (default fused one block per (b, h); ATTNBENCH_LIN_FWD=tile, the
# per-value-tile chunk_fwd; tile + ATTNBENCH_LIN_OCC=3), check at T=1024 with the naive oracle, and
# print the x-floor table and the A/B table last. Stages run in priority order, each bounded by
# what is left of the budget; a stage with too little time left is skipped and says so.
#   scripts/linear-check.sh [OUT_DIR]      (default: $OUT on the device tool, else results/linear-check)
#   scripts/linear-check.sh --pack BUILD   pack BUILD's attnbench and kernels_tests into
#                                          build/lin-carry (used only while the sources match)
# Environment: ATTNBENCH_CUDA_ARCH (default 90a), LINEAR_CHECK_BUDGET_S (whole script, default 500),
# LINEAR_CHECK_ONLY=based (only based's stages: its GPU tests, default and under ATTNBENCH_LIN_FWD=tile;
# its fwd timed at T=1024/4096 by the fused kernel (default; ATTNBENCH_BASED_COLS=16; ATTNBENCH_BASED_SPLIT=0)
# and by chunk_fwd (ATTNBENCH_LIN_FWD=tile);
# a checked T=1024 point; the table ab_based.md).
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

source scripts/device-lib.sh  # gtest()

csv="$out/lin.csv"
sweep() {  # sweep NAME SECONDS ARGS...: one attnbench run, bounded in time (SWEEP_CSV: its CSV)
  local name=$1 secs=$2
  shift 2
  ((secs < 20)) && { log "skip $name (no time left)"; return; }
  log "sweep $name (limit ${secs}s)"
  timeout "$secs" "$bin" run --dtype bf16 --budget-ms 60 --max-samples 30 "$@" --out "${SWEEP_CSV:-$csv}" \
    >>"$out/sweep.log" 2>&1
  log "sweep $name rc $?"
}
cap() { local x=$(( $(left) * $1 / 100 )); echo $(( x < $2 ? x : $2 )); }  # cap PERCENT MAX_S
D="--impl tiled --B 8 --H 32 --D 128"
: >"$out/tests.txt"
if [[ ${LINEAR_CHECK_ONLY:-} == based ]]; then
  B="--algo based --impl tiled --B 8 --H 32 --Dk 16 --Dv 128"
  gtest based "" '*based*' "$(cap 45 150)"
  gtest based-tile ATTNBENCH_LIN_FWD=tile '*based_tiled_fwd*' "$(cap 30 40)"
  sweep based "$(cap 40 60)" --no-check $B --T 1024,4096 --pass fwd
  ATTNBENCH_LIN_FWD=tile SWEEP_CSV="$out/ab_tile.csv" sweep ab-tile-based "$(cap 50 60)" --no-check $B \
    --T 1024,4096 --pass fwd
  ATTNBENCH_BASED_SPLIT=0 SWEEP_CSV="$out/ab_nosplit.csv" sweep ab-nosplit-based "$(cap 50 40)" --no-check $B \
    --T 1024,4096 --pass fwd
  gtest based-nosplit ATTNBENCH_BASED_SPLIT=0 '*based_tiled_fwd*' "$(cap 40 40)"
  ATTNBENCH_BASED_COLS=16 SWEEP_CSV="$out/ab_cols16.csv" sweep ab-cols16-based "$(cap 50 40)" --no-check $B \
    --T 1024,4096 --pass fwd
  gtest based-cols16 ATTNBENCH_BASED_COLS=16 '*based_tiled_fwd*' "$(cap 40 40)"
  sweep based-checked "$(cap 80 60)" $B --T 1024 --pass fwd
  python3 - "$csv" "$out/ab_tile.csv" "$out/ab_nosplit.csv" "$out/ab_cols16.csv" <<'EOF' | tee "$out/ab_based.md"
import csv, sys, os
def load(p):
    d = {}
    if os.path.exists(p):
        for r in csv.DictReader(open(p)):
            if r["algo"] == "based" and r["pass"] == "fwd" and r["ms_median"] and r["floor_ms"]:
                d[int(r["Tq"])] = (float(r["ms_median"]), float(r["floor_ms"]))
    return d
split, tile, nosplit, cols16 = (load(p) for p in sys.argv[1:5])
c = lambda x: "%.4g (%.2f)" % (x[0], x[0] / x[1]) if x else ""
print("| based fwd, Dk 16 Dv 128 | T | default ms (x floor) | split, 16 columns (x) | no split (x) | chunk_fwd (tile) ms (x) | tile / default |")
print("|---|---|---|---|---|---|---|")
for T in sorted(set(split) | set(tile) | set(nosplit) | set(cols16)):
    s, n, t, w = split.get(T), nosplit.get(T), tile.get(T), cols16.get(T)
    print("| based | %d | %s | %s | %s | %s | %s |" % (T, c(s), c(w), c(n), c(t), "%.2f" % (t[0] / s[0]) if s and t else ""))
EOF
else
gtest all "" '*linear*:*based*:*gated*:GpuNaive.*' "$(cap 40 150)"
sweep main-4k "$(cap 30 60)" --no-check --algo linear,gated --variant retention $D --T 1024,4096 --pass fwd,bwd
ATTNBENCH_LIN_FWD=tile SWEEP_CSV="$out/ab_tile.csv" sweep ab-tile "$(cap 15 40)" --no-check --algo linear,gated \
  --variant retention $D --T 1024,4096 --pass fwd
ATTNBENCH_LIN_FWD=tile ATTNBENCH_LIN_OCC=3 SWEEP_CSV="$out/ab_occ3.csv" sweep ab-occ3 "$(cap 15 40)" --no-check \
  --algo linear,gated --variant retention $D --T 1024,4096 --pass fwd
sweep main-16k "$(cap 50 90)" --no-check --algo linear,gated --variant retention $D --T 16384 --pass fwd,bwd
gtest tile ATTNBENCH_LIN_FWD=tile \
  '*linear_tiled_fwd*:*gated_retention_tiled_fwd*:*gated_lightning_tiled_fwd*:*gated_scalar_tiled_fwd*:*gated_vector_tiled_fwd*:*gated_rwkv6_tiled_fwd*:*based_tiled_fwd*' \
  "$(cap 30 60)"
sweep others-4k "$(cap 40 50)" --no-check --algo gated --variant lightning,scalar,vector,rwkv6 $D --T 4096 --pass fwd
ATTNBENCH_LIN_FWD=tile SWEEP_CSV="$out/ab_tile.csv" sweep ab-tile-vec "$(cap 15 30)" --no-check --algo gated \
  --variant vector,rwkv6 $D --T 4096 --pass fwd
sweep based-4k "$(cap 20 20)" --no-check --algo based --impl tiled --B 8 --H 32 --T 4096 --Dk 16 --Dv 128 --pass fwd
ATTNBENCH_LIN_FWD=tile SWEEP_CSV="$out/ab_tile.csv" sweep ab-tile-based "$(cap 20 20)" --no-check --algo based \
  --impl tiled --B 8 --H 32 --T 4096 --Dk 16 --Dv 128 --pass fwd
sweep checked "$(cap 60 50)" --algo linear,gated --variant retention,scalar --impl tiled --B 8 --H 32 --D 128 \
  --T 1024 --pass fwd,bwd
ATTNBENCH_LIN_FWD=tile SWEEP_CSV="$out/ab_tile.csv" sweep ab-tile-16k $(( $(left) - 15 )) --no-check \
  --algo linear,gated --variant retention $D --T 16384 --pass fwd
fi
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
echo "## A/B of the forward (fwd ms; default = fused, one block per (b, h))"
python3 - "$csv" "$out/ab_tile.csv" "$out/ab_occ3.csv" <<'EOF' | tee "$out/ab.md"
import csv, sys, os
def load(p):
    d = {}
    if os.path.exists(p):
        for r in csv.DictReader(open(p)):
            if r["pass"] == "fwd" and r["ms_median"] and r["floor_ms"]:
                k = (r["algo"] + ("/" + r["variant"] if r["variant"] else ""), int(r["Tq"]))
                d[k] = (float(r["ms_median"]), float(r["floor_ms"]))
    return d
fused, tile, occ3 = (load(p) for p in sys.argv[1:4])
print("| algo | T | fused ms (x floor) | tile ms (x floor) | tile+occ3 ms (x floor) | tile / fused |")
print("|---|---|---|---|---|---|")
c = lambda x: "%.4g (%.2f)" % (x[0], x[0] / x[1]) if x else ""
for k in sorted(set(tile) | set(occ3)):
    f, t, o = fused.get(k), tile.get(k), occ3.get(k)
    print("| %s | %d | %s | %s | %s | %s |" % (k[0], k[1], c(f), c(t), c(o), "%.2f" % (t[0] / f[0]) if f and t else ""))
EOF
echo
echo "## linear-check summary"
cat "$out/tests.txt"
python3 scripts/summarize.py "$csv" 2>/dev/null | grep -vE "\| (ref|emul) \|" | head -60
