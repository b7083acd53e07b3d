#!/usr/bin/env bash
# A/B of the gated backward with vector gates (gated/vector, gated/rwkv6) on a GPU machine, one
# build, one call: the default (since session 17 the wgmma state scans vec_wg_scan at widths in
# (64, 128], then gated_bwd_chunk2) against ATTNBENCH_LIN_GBWD=oldscan (session 7's chunk_scan).
# (Session 7's calls also timed session 5's kernels, =old and =chunk1; session 7 wrote =scanpre,
# which this script timed until session 17.) Builds attnbench and kernels_tests,
# times bf16 B=8 H=32 D=128 T=GBWD_T (default 1024,4096,16384) --no-check (fwd and bwd; oldscan:
# bwd at 4096), the per-launch split of the backward at T=4096 (ATTNBENCH_LIN_GBWD=prof,
# oldscan+prof: CUDA events between the reverse scan, forward scan, gradient kernel and du), the GPU
# tests '*gated_*' (default kernels), one checked point (T=1024 --pass bwd, vector and rwkv6, bf16
# and fp16), optionally Nsight Compute on gated_bwd_chunk2 (GBWD_NCU=1), merges the timings into ONE
# CSV (leading column gbwd_kernel) and prints the table (variant, T, pass, kernel, ms, x floor) last.
#   scripts/gbwd-ab.sh [OUT_DIR]     (default: $OUT on the device tool, else results/gbwd-ab)
# Environment: GBWD_AB_BUDGET_S (whole script, default 540), GBWD_NCU (default 0), GBWD_FP32A (1:
#              also time ATTNBENCH_LIN_GBWD=fp32a), GBWD_SPLITS (the split runs, default "prof
#              oldscan+prof"), GBWD_T, ATTNBENCH_CUDA_ARCH (default 90a), GBWD_BASE_SRC (a source
#              tree, e.g. `git archive` of an earlier commit carried under build/: its attnbench is
#              built in build/gpu-base while the tests run and times the backward at T = 4096 as
#              kernel "base", for an A/B of two commits in one run; GBWD_BASE_PASS=fwd,bwd: the
#              forward too), GBWD_MODES (the ATTNBENCH_LIN_GBWD
#              words timed beside the default at T = 4096, kernel = the word; default oldscan),
#              GBWD_SWEEP_PCT / GBWD_SWEEP_S (the main sweep's share of the time left, default 45, and
#              its cap, default 200 s).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-lib.sh  # ab_start(), ab_build(), ab_base_start/wait(), gtest(), sweep()
ab_start gbwd-ab "${1:-${OUT:-results/gbwd-ab}}" "${GBWD_AB_BUDGET_S:-540}"
bdir=build/gpu-gbwd
ab_build "$bdir"
D="--algo gated --variant vector,rwkv6 --impl tiled --B 8 --H 32 --D 128"
[[ -n ${GBWD_BASE_SRC:-} ]] && ab_base_start "$GBWD_BASE_SRC"
gtest gated "" '*gated_*' "$(cap 30 150)"
sweep new "$out/new.csv" "$(cap ${GBWD_SWEEP_PCT:-45} ${GBWD_SWEEP_S:-200})" --no-check $D --T "${GBWD_T:-1024,4096,16384}" --pass fwd,bwd
if [[ -n ${GBWD_BASE_SRC:-} ]]; then
  ab_base_wait && bin=build/gpu-base/harness/attnbench sweep base "$out/base.csv" "$(cap 20 40)" \
    --no-check $D --T 4096 --pass "${GBWD_BASE_PASS:-bwd}"
fi
for m in ${GBWD_MODES:-oldscan}; do  # other ATTNBENCH_LIN_GBWD words, the backward at T = 4096
  ATTNBENCH_LIN_GBWD=$m sweep "$m" "$out/$m.csv" "$(cap 20 40)" --no-check $D --T 4096 --pass bwd
done
[[ ${GBWD_FP32A:-0} == 1 ]] && ATTNBENCH_LIN_GBWD=fp32a sweep fp32a "$out/fp32a.csv" "$(cap 15 40)" --no-check $D --T 4096 --pass bwd
# the split of one backward into its launches (events synchronize: measurement only), and the
# gradient kernel with phases skipped (abl: linear_family_tiled_host.cu)
for m in ${GBWD_SPLITS:-prof oldscan+prof}; do
  s=$(cap 12 30)
  ((s < 10)) && break
  log "split $m (limit ${s}s)"
  ATTNBENCH_LIN_GBWD=$m timeout "$s" "$bin" run --dtype bf16 --budget-ms 20 --min-samples 1 --max-samples 3 --no-check $D --T 4096 \
    --pass bwd --out "$out/prof_${m//+/_}.csv" >"$out/prof_${m//+/_}.log" 2>&1
done
grep -h "gbwd-prof" "$out"/prof_*.log 2>/dev/null | sort | uniq -c | sort -rn | head -12 >&2
grep -h "gbwd-abl" "$out"/prof_*.log 2>/dev/null | head -6 >&2
s=$(cap 90 60)
log "checked T=1024 bwd, bf16 and fp16 (limit ${s}s)"
timeout "$s" "$bin" run --dtype bf16,fp16 --budget-ms 60 --max-samples 30 $D --T 1024 --pass bwd --out "$out/checked.csv" \
  >>"$out/sweep.log" 2>&1
log "checked rc $?"
if [[ ${GBWD_NCU:-0} == 1 ]] && (( $(left) > 60 )); then
  log "ncu (limit 50s)"
  timeout 50 ncu --clock-control none --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
    --section InstructionStats --section LaunchStats -k regex:'gated_bwd_chunk2' --launch-count 1 \
    "$bin" run --dtype bf16 --min-samples 1 --max-samples 1 --budget-ms 1 --no-check --algo gated --variant vector --impl tiled \
    --B 8 --H 32 --D 128 --T 4096 --pass bwd --out "$out/ncu_run.csv" >"$out/ncu.log" 2>&1
  log "ncu rc $?"
  grep -E "Stall|Warp Cycles|Issued|Eligible|Duration|Throughput|Executed Ipc|No Eligible|Registers|Shared Memory" "$out/ncu.log" | head -60 >&2
fi
grep -iE "error|fail" "$out/sweep.log" | head -10 >&2

python3 - "$out" <<'EOF' | tee "$out/ab.md"
# ONE CSV (gbwd_kernel, then the harness columns) and the table: variant, T, pass, kernel, ms, x floor.
import csv, os, sys
out = sys.argv[1]
rows = []
modes = [m for m in os.environ.get("GBWD_MODES", "oldscan").split() if m]
for kern, name in [("new", "new"), ("base", "base")] + [(m, m) for m in modes] + [("fp32a", "fp32a"),
                   ("new", "checked")]:
    p = os.path.join(out, name + ".csv")
    if os.path.exists(p):
        for r in csv.DictReader(open(p)):
            rows.append(dict(gbwd_kernel=kern, **r))
if rows:
    with open(os.path.join(out, "gbwd_ab.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
print("| variant | T | pass | kernel | status | ms | x floor | err (base, floor) |")
print("|---|---|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: (r["variant"], int(r["Tq"]), r["pass"], r["status"] != "pass", r["gbwd_kernel"])):
    ms = float(r["ms_median"]) if r["ms_median"] else None
    fl = float(r["floor_ms"]) if r["floor_ms"] else None
    kern = r["gbwd_kernel"] if r["pass"] == "bwd" else "-"
    err = "%s (%s, %s)" % (r["err"], r["err_base"], r["floor"]) if r["err"] else ""
    print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (r["variant"], r["Tq"], r["pass"], kern, r["status"],
          "%.4f" % ms if ms else "", "%.2f" % (ms / fl) if ms and fl else "", err))
EOF
# at most 8 files come back from the device tool: the logs and side CSVs in one archive
(cd "$out" && tar czf logs.tar.gz *.log $(ls prof_*.csv ncu_run.csv 2>/dev/null) && rm -f *.log prof_*.csv ncu_run.csv \
  && [[ -f gbwd_ab.csv ]] && rm -f new.csv base.csv $(for m in ${GBWD_MODES:-oldscan}; do echo "$m.csv"; done) fp32a.csv checked.csv)
cat "$out/tests.txt"
