#!/usr/bin/env bash
# bidir on a GPU machine: build what the bidir kernels need, run their GPU tests, sweep tiled and
# naive at the published shape (B=8 H=16 D=64, T 128..16384, bf16, fwd and bwd, identity and
# elu1), and print the floor ratios and the comparison with the published Triton times last.
#   scripts/bidir-check.sh [OUT_DIR]       (default: $OUT on the device tool, else results/bidir-check)
# Environment: ATTNBENCH_CUDA_ARCH (default 90a), BIDIR_CHECK_BUDGET_S (whole script, default 450).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-results/bidir-check}}
mkdir -p "$out"
budget=${BIDIR_CHECK_BUDGET_S:-450}
t_start=$SECONDS
left() { echo $((budget - (SECONDS - t_start))); }
log() { echo "[bidir-check $((SECONDS - t_start))s] $*" >&2; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | tee "$out/nvidia-smi.txt"
log "configure + build (attnbench, kernels_tests)"
cmake -S . -B build/gpu-bidir -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${ATTNBENCH_CUDA_ARCH:-90a}" >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
cmake --build build/gpu-bidir -j 16 --target attnbench kernels_tests >>"$out/build.log" 2>&1 \
  || { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; exit 1; }
log "built"

log "GPU tests (*bidir*)"
timeout 150 ./build/gpu-bidir/tests/kernels/kernels_tests --gtest_filter='*bidir*' >"$out/tests.log" 2>&1
test_rc=$?
grep -E "^\[  FAILED  \]|Failure|Expected|rel_rms" "$out/tests.log" | head -30 >&2
tests_line=$(grep -E "^\[==========\] [0-9]+ tests" "$out/tests.log" | tail -1)
passed=$(grep -oE "^\[  PASSED  \] [0-9]+" "$out/tests.log" | grep -oE "[0-9]+$")
failed=$(grep -cE "^\[  FAILED  \] .*\(" "$out/tests.log")
skipped=$(grep -oE "^\[  SKIPPED \] [0-9]+" "$out/tests.log" | grep -oE "[0-9]+$")
log "tests: ${tests_line:-?}; passed ${passed:-0}, failed $failed, skipped ${skipped:-0} (rc $test_rc)"
timeout 60 ./build/gpu-bidir/tests/kernels/kernels_tests --gtest_filter='GpuNaive.*' 2>&1 | grep -E "OK|FAILED|bidir" | head -5 >&2

# 1. tiled alone, every point, checked against the naive kernel run in fp32 (naive-fp32 oracle:
#    the fp64 CPU reference of the full problem costs ~1 min of host time per point at T=16384).
log "tiled sweep, naive-fp32 oracle (time left $(left)s)"
timeout $(( $(left) - 60 )) ./build/gpu-bidir/harness/attnbench run --algo bidir --impl tiled --dtype bf16 \
  --B 8 --H 16 --D 64 --T 128:16384:x2 --pass fwd,bwd --feature-map identity,elu1 --oracle naive \
  --out "$out/tiled.csv" >"$out/sweep_tiled.log" 2>&1
tiled_rc=$?
grep -E " fail| error" "$out/sweep_tiled.log" | head -10 >&2
log "tiled sweep rc $tiled_rc"

# 2. the reference sweep (tiled and naive, fp64 CPU oracle) for the time that is left.
log "sweep tiled,naive, auto oracle (time left $(left)s)"
sweep_s=$(( $(left) - 15 )); (( sweep_s < 30 )) && sweep_s=30
timeout $sweep_s ./build/gpu-bidir/harness/attnbench run --algo bidir --impl tiled,naive --dtype bf16 \
  --B 8 --H 16 --D 64 --T 128:16384:x2 --pass fwd,bwd --feature-map identity,elu1 --out "$out/bidir.csv" \
  >"$out/sweep.log" 2>&1
sweep_rc=$?
grep -E " fail| error" "$out/sweep.log" | head -10 >&2
log "sweep rc $sweep_rc"

python3 - "$out/tiled.csv" "$out/bidir.csv" <<'EOF' | tee "$out/table.md"
# fwd and fwd+bwd per point: ms, GB/s, x floor (floor_ms from the run's copy bandwidth), and the
# published Triton A800 times (norm) against the hardware ratio 4.8 TB/s / 2.0 TB/s = 2.4.
import csv, sys, os
pub = {}
for r in csv.DictReader(open("results/published/fbila_a800_2024.csv")):
    if r["provider"] == "triton":
        pub[(r["pass"], int(r["T"]))] = float(r["value"])
for path in sys.argv[1:]:
  rows = list(csv.DictReader(open(path))) if os.path.exists(path) else []
  print(f"\n{path}: {len(rows)} rows")
  HW = 4.8 / 2.0
  f = lambda s: float(s) if s not in ("", None) else None
  pts = {}
  for r in rows:
      fm = r["params"].split("fmap=")[-1]
      k = (r["variant"], fm, r["impl"], int(r["Tq"]))
      pts.setdefault(k, {})[r["pass"]] = r
  print(f"| variant | fmap | impl | T | fwd ms | fwd GB/s | fwd x floor | bwd ms | fwd+bwd ms | fwd+bwd x floor | Triton A800 fwd / ours | Triton A800 fwd+bwd / ours | status |")
  print("|" + "---|" * 13)
  for (var, fm, impl, T), d in sorted(pts.items(), key=lambda x: (x[0][2] != "tiled", x[0][0], x[0][1], x[0][3])):
      fw, bw = d.get("fwd"), d.get("bwd")
      fms, ffl = (f(fw["ms_median"]), f(fw["floor_ms"])) if fw else (None, None)
      bms, bfl = (f(bw["ms_median"]), f(bw["floor_ms"])) if bw else (None, None)
      tot = fms + bms if fms and bms else None
      totfl = ffl + bfl if ffl and bfl else None
      c = lambda v, s="{:.4g}": s.format(v) if v else ""
      pf, pb = pub.get(("fwd", T)), pub.get(("fwd+bwd", T))
      sp_f = f"{pf / fms:.2f}x ({'>' if pf / fms > HW else '<='} {HW:.1f})" if pf and fms and var == "norm" else ""
      sp_b = f"{pb / tot:.2f}x ({'>' if pb / tot > HW else '<='} {HW:.1f})" if pb and tot and var == "norm" else ""
      st = "/".join(x["status"][:24] for x in (fw, bw) if x)
      print(f"| {var} | {fm} | {impl} | {T} | {c(fms)} | {fw['gbps'] if fw else ''} | {c(fms / ffl if fms and ffl else None, '{:.2f}')} "
            f"| {c(bms)} | {c(tot)} | {c(tot / totfl if tot and totfl else None, '{:.2f}')} | {sp_f} | {sp_b} | {st} |")
EOF
echo
echo "## bidir-check: tests ${passed:-0} passed, $failed failed, ${skipped:-0} skipped (rc $test_rc); tiled sweep rc $tiled_rc; sweep rc $sweep_rc; $((SECONDS - t_start))s"
python3 scripts/summarize.py "$out/bidir.csv" | grep -E "tiled|algo|---"
[[ $test_rc -eq 0 && $tiled_rc -eq 0 ]]
