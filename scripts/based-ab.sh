#!/usr/bin/env bash
# A/B of based's forward (Dk = 16) on a GPU machine: the mma.sync kernel fused_based_fwd_split (the
# default) against the wgmma kernel fused_based_wg_fwd (ATTNBENCH_BASED_FWD=wg: one warpgroup a
# block) and its variants (ATTNBENCH_BASED_WG=overlap, =2: two warpgroups a block, =2overlap).
# Builds attnbench and kernels_tests, runs the based GPU tests under each kernel, times bf16 B=8
# H=32 Dk=16 Dv=128 T=1024,4096,16384 fwd with each kernel (one process per kernel, all in this
# call), one checked point at T=1024 per wgmma kernel, merges everything into ONE CSV with a leading
# column fwd_kernel (wg, ovl, wg2, wg2o, mma), and prints the table (kernel, T, ms, x floor) last.
# (Session 7's two calls ran this script at 8d60552 and 982e437, when the wgmma kernel was the
# default and ATTNBENCH_BASED_FWD=mma selected the mma.sync one; the kernels and labels are the same.)
#   scripts/based-ab.sh [OUT_DIR]     (default: $OUT on the device tool, else results/based-ab)
# Environment: BASED_AB_BUDGET_S (whole script, default 370), BASED_AB_BUILD (build folder,
# default build/gpu-based), ATTNBENCH_CUDA_ARCH (default 90a).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-lib.sh  # ab_start(), ab_build(), gtest(), sweep()
ab_start based-ab "${1:-${OUT:-results/based-ab}}" "${BASED_AB_BUDGET_S:-370}"
bdir=${BASED_AB_BUILD:-build/gpu-based}
ab_build "$bdir"
D="--algo based --impl tiled --B 8 --H 32 --Dk 16 --Dv 128"
export ATTNBENCH_BASED_WG_INFO=1  # the wgmma kernels print their blocks an SM once a process
declare -A knob=([wg]="ATTNBENCH_BASED_FWD=wg" [ovl]="ATTNBENCH_BASED_FWD=wg ATTNBENCH_BASED_WG=overlap"
                 [wg2]="ATTNBENCH_BASED_FWD=wg ATTNBENCH_BASED_WG=2" [wg2o]="ATTNBENCH_BASED_FWD=wg ATTNBENCH_BASED_WG=2overlap"
                 [mma]="")
gtest wg "${knob[wg]}" '*based*' "$(cap 25 90)"
with() { local e=$1 x; shift; ( for x in $e; do export "$x"; done; "$@" ); }  # with "VAR=VALUE ..." CMD...
for k in wg ovl wg2 wg2o mma; do
  with "${knob[$k]}" sweep main-$k "$out/$k.csv" "$(cap 20 40)" --no-check $D --T 1024,4096,16384 --pass fwd
done
for k in ovl wg2 wg2o mma; do gtest $k "${knob[$k]}" '*based_tiled_fwd*' "$(cap 15 30)"; done  # mma: the default
for k in wg ovl wg2 wg2o; do with "${knob[$k]}" sweep checked-$k "$out/$k.csv" "$(cap 25 40)" $D --T 1024 --pass fwd; done
grep -h "blocks an SM" "$out/sweep.log" "$out"/tests_*.log | sort -u >&2
grep -iE "error|fail" "$out/sweep.log" | head -10 >&2
cat "$out/tests.txt"

python3 - "$out" <<'EOF' | tee "$out/ab.md"
# ONE CSV (fwd_kernel, then the harness columns) and the table: kernel, T, ms, x floor.
import csv, os, sys
out = sys.argv[1]
rows = []
for kern in ("wg", "ovl", "wg2", "wg2o", "mma"):
    p = os.path.join(out, kern + ".csv")
    if os.path.exists(p):
        for r in csv.DictReader(open(p)):
            rows.append(dict(fwd_kernel=kern, **r))
if rows:
    with open(os.path.join(out, "based_fwd_ab.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
for r in rows:  # the checked rows (and any failure) above the table
    if r["status"] != "unchecked":
        print("%s T=%s: %s (err %s, err_base %s, floor %s, rel_rms %s, oracle %s)" % (
            r["fwd_kernel"], r["Tq"], r["status"], r["err"], r["err_base"], r["floor"], r["rel_rms"], r.get("oracle", "")))
name = {"wg": "fused_based_wg_fwd, 1 warpgroup a block", "ovl": "fused_based_wg_fwd, ATTNBENCH_BASED_WG=overlap",
        "wg2": "fused_based_wg_fwd, ATTNBENCH_BASED_WG=2", "wg2o": "fused_based_wg_fwd, ATTNBENCH_BASED_WG=2overlap",
        "mma": "fused_based_fwd_split (default)"}
order = {"wg": 0, "ovl": 1, "wg2": 2, "wg2o": 3, "mma": 4}
print("| kernel | T | status | ms | x floor_ms | floor_ms | noise |")
print("|---|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: (order[r["fwd_kernel"]], int(r["Tq"]), r["status"] != "unchecked")):
    if not r["ms_median"]:
        continue
    ms, fl = float(r["ms_median"]), float(r["floor_ms"] or 0)
    print("| %s | %s | %s | %.4f | %s | %s | %s |" % (name[r["fwd_kernel"]], r["Tq"], r["status"], ms,
                                                   "%.2f" % (ms / fl) if fl else "", r["floor_ms"], r["noise"]))
EOF
# few files come back from the device tool: the logs in one archive, the per-kernel CSVs merged above
(cd "$out" && tar czf logs.tar.gz *.log && rm -f *.log && [[ -f based_fwd_ab.csv ]] && rm -f wg.csv ovl.csv wg2.csv wg2o.csv mma.csv)
