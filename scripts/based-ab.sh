#!/usr/bin/env bash
# A/B of based's forward (Dk = 16) on a GPU machine, labels in one binary: builds attnbench and
# kernels_tests, runs the based GPU tests under each test label, times bf16 B=8 H=32 Dk=16 Dv=128
# fwd under every A/B label (one process a label, the list run BASED_AB_REPS times, alternating),
# checks points under the first label, optionally times fwd,bwd (the fwd+bwd floor ratios) and runs
# Nsight Compute on one kernel; ONE CSV (ab.csv: a leading `label` column) and the table last.
#   scripts/based-ab.sh [OUT_DIR]     (default: $OUT on the device tool, else results/based-ab)
# Environment (defaults in brackets):
#   BASED_AB         "label:ENV[,ENV..] ..." A/B labels ["lean: old:ATTNBENCH_BASED_LEAN=0"]
#   BASED_AB_T       T list [1024,4096,16384];   BASED_AB_REPS  runs of the label list [2]
#   BASED_AB_TESTS   "label:ENV[,ENV..]:FILTER ..." GPU test runs
#                    ["lean::*based* old:ATTNBENCH_BASED_LEAN=0:*based_tiled_fwd*"]
#   BASED_AB_CHECK   checked fwd points, T list, under the first label [1024,4096] ("" none)
#   BASED_AB_FB      1: a fwd,bwd sweep at BASED_AB_T under the first label (fb.csv) [0]
#   BASED_AB_NCU     a kernel regex for scripts/ncu-source.sh under the first label at T = 4096 [none]
#   BASED_AB_BUDGET_S (whole script) [400]; BASED_AB_BUILD (build folder) [build/gpu]
# (Session 7 ran an earlier form of this script for the wgmma kernels: kernels/linear/README.md.)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-lib.sh  # ab_start(), ab_build(), gtest(), sweep()
ab_start based-ab "${1:-${OUT:-results/based-ab}}" "${BASED_AB_BUDGET_S:-400}"
ab_build "${BASED_AB_BUILD:-build/gpu}"
D="--algo based --impl tiled --B 8 --H 32 --Dk 16 --Dv 128"
read -ra labels <<<"${BASED_AB:-lean: old:ATTNBENCH_BASED_LEAN=0}"  # (read -a: no glob expansion)
read -ra tspecs <<<"${BASED_AB_TESTS:-lean::*based* old:ATTNBENCH_BASED_LEAN=0:*based_tiled_fwd*}"
first=${labels[0]}
envs_of() { local e=${1#*:}; echo "${e//,/ }"; }  # "label:A=1,B=2" -> "A=1 B=2"
with() { local e=$1 x; shift; ( for x in $e; do export "$x"; done; "$@" ); }  # with "VAR=VALUE ..." CMD...

for spec in "${tspecs[@]}"; do
  name=${spec%%:*} rest=${spec#*:}
  gtest "$name" "${rest%%:*}" "${rest#*:}" "$(cap 20 90)"
done
for rep in $(seq 1 "${BASED_AB_REPS:-2}"); do
  for spec in "${labels[@]}"; do
    with "$(envs_of "$spec")" sweep "ab-${spec%%:*}-$rep" "$out/ab_${spec%%:*}_$rep.csv" "$(cap 15 60)" --no-check $D \
      --T "${BASED_AB_T:-1024,4096,16384}" --pass fwd
  done
done
[[ -n ${BASED_AB_CHECK-1024,4096} ]] &&
  with "$(envs_of "$first")" sweep "checked-${first%%:*}" "$out/checked.csv" "$(cap 40 120)" $D \
    --T "${BASED_AB_CHECK-1024,4096}" --pass fwd
[[ ${BASED_AB_FB:-0} == 1 ]] &&
  with "$(envs_of "$first")" sweep "fb-${first%%:*}" "$out/fb.csv" "$(cap 60 150)" --no-check $D \
    --T "${BASED_AB_T:-1024,4096,16384}" --pass fwd,bwd
if [[ -n ${BASED_AB_NCU:-} ]] && (( $(left) > 60 )); then
  with "$(envs_of "$first")" env ATTNBENCH_BIN="$bin" NCU_TIMEOUT_S=$(cap 45 90) \
    scripts/ncu-source.sh "$out" based_fwd "$BASED_AB_NCU" 1 -- $D --dtype bf16 --T 4096 --pass fwd
fi
grep -iE "error|fail" "$out/sweep.log" | head -10 >&2
cat "$out/tests.txt"

python3 - "$out" <<'EOF' | tee "$out/ab.md"
# ONE CSV (label, then the harness columns; label "NAME#REP"), the checked rows, then the table:
# label, T, ms of each run, x floor of the mean (floor_ms of the same process).
import csv, glob, os, re, sys
out = sys.argv[1]
rows = []
for p in sorted(glob.glob(os.path.join(out, "ab_*_*.csv"))):
    lab, rep = re.match(r"ab_(.*)_(\d+)\.csv$", os.path.basename(p)).groups()
    rows += [dict(label=lab, rep=rep, **r) for r in csv.DictReader(open(p))]
if rows:
    with open(os.path.join(out, "ab.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    for p in glob.glob(os.path.join(out, "ab_*_*.csv")):
        os.remove(p)
chk = os.path.join(out, "checked.csv")
for r in (csv.DictReader(open(chk)) if os.path.exists(chk) else []):
    print("checked T=%s: %s (err %s, err_base %s, floor %s, rel_rms %s, oracle %s)" % (
        r["Tq"], r["status"], r["err"], r["err_base"], r["floor"], r["rel_rms"], r.get("oracle", "")))
cell = {}
for r in rows:
    if r["ms_median"] and r["floor_ms"]:
        cell.setdefault((r["label"], int(r["Tq"])), []).append((float(r["ms_median"]), float(r["floor_ms"])))
print("| label | T | ms (each run) | x floor_ms |")
print("|---|---|---|---|")
for (lab, T), v in cell.items():
    ms = [m for m, _ in v]
    print("| %s | %d | %s | %.3f |" % (lab, T, " / ".join("%.4f" % m for m in ms), sum(m / f for m, f in v) / len(v)))
EOF
[[ -f $out/fb.csv ]] && python3 scripts/fb_table.py "${first%%:*}=$out/fb.csv" | tee "$out/fb.md"
# few files come back from the device tool: the logs in one archive
(cd "$out" && tar czf logs.tar.gz *.log tests.txt nvidia-smi.txt ncu_*.gz 2>/dev/null; rm -f *.log tests.txt nvidia-smi.txt ncu_*.gz)
