#!/usr/bin/env bash
# A/B of this tree against an earlier commit's tree in one device call, for any kernel: builds
# attnbench and kernels_tests here (build/gpu) and the base tree's attnbench beside it in the
# background (build/gpu-base), runs GPU test sets, then the timing sweeps of every case with the
# new and the base build alternating (REPS times), and prints new / base per point last.
#   scripts/commit-ab.sh [OUT_DIR]     (default: $OUT on the device tool, else results/commit-ab)
# Environment:
#   AB_BASE_SRC   the base source tree (`git archive <base>` without results/, carried under build/);
#                 empty: no base, the new build is timed alone.
#   AB_BASE_COMMIT  the base's name in the CSV's commit column (default "base").
#   AB_TESTS      "name|ENV|filter ..." test sets of kernels_tests (ENV: VAR=x,VAR2=y or empty).
#   AB_CASES      "label|ENV|harness args ..." timing cases (the args use '+' for spaces:
#                 "lin||--algo+linear+--impl+tiled+--B+8+--H+32+--D+128+--T+4096+--pass+fwd").
#   AB_CHECKED    "label|ENV|harness args ..." checked sweeps (new build only), after the timing.
#   AB_NCU        "name|regex|ENV|harness args ..." Nsight Compute (scripts/ncu-source.sh) of the first
#                 kernel matching regex in that run of the new build, last (files ncu_NAME*).
#   AB_REPS       new and base alternating this many times (default 2).
#   AB_BUDGET_S   the whole script (default 420); ATTNBENCH_CUDA_ARCH (default 90a).
# Output: ab.csv (the harness columns with leading `build` (new / base) and `label`), tests.txt,
# the logs, ab.md (the table: label, algo/variant, T, pass, new ms, base ms, new / base).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-lib.sh  # ab_start(), ab_build(), ab_base_start/wait(), gtest(), sweep()
ab_start commit-ab "${1:-${OUT:-results/commit-ab}}" "${AB_BUDGET_S:-420}"
ab_build build/gpu
[[ -n ${AB_BASE_SRC:-} ]] && ab_base_start "$AB_BASE_SRC"
for spec in ${AB_TESTS:-}; do
  IFS='|' read -r name envs filter <<<"$spec"
  gtest "$name" "${envs//,/ }" "$filter" "$(cap 30 120)"
done
base=0
[[ -n ${AB_BASE_SRC:-} ]] && ab_base_wait && base=1
# run_env ENV CMD..: CMD in a subshell with ENV (VAR=x,VAR2=y) exported.
run_env() { local e=$1; shift; ( [[ -n $e ]] && export ${e//,/ }; "$@" ); }
for rep in $(seq 1 "${AB_REPS:-2}"); do
  for spec in ${AB_CASES:-}; do
    IFS='|' read -r label envs args <<<"$spec"
    run_env "$envs" sweep "new-$label-$rep" "$out/new-$label-$rep.csv" "$(cap 20 90)" --no-check ${args//+/ }
    ((base)) && ATTNBENCH_COMMIT="${AB_BASE_COMMIT:-base}" bin=build/gpu-base/harness/attnbench \
      run_env "$envs" sweep "base-$label-$rep" "$out/base-$label-$rep.csv" "$(cap 20 90)" --no-check ${args//+/ }
  done
done
for spec in ${AB_CHECKED:-}; do
  IFS='|' read -r label envs args <<<"$spec"
  run_env "$envs" sweep "checked-$label" "$out/checked-$label.csv" "$(cap 60 150)" ${args//+/ }
done
for spec in ${AB_NCU:-}; do
  IFS='|' read -r name rx envs args <<<"$spec"
  s=$(cap 50 100)
  ((s >= 30)) || { log "skip ncu $name (no time left)"; continue; }
  log "ncu $name ($rx, limit ${s}s)"
  ATTNBENCH_BIN=$bin NCU_TIMEOUT_S=$((s / 2)) run_env "$envs" bash scripts/ncu-source.sh "$out" "$name" "$rx" 1 -- \
    --dtype bf16 ${args//+/ } >"$out/ncu_run_$name.log" 2>&1
  log "ncu $name rc $?"
done
grep -iE "error|fail" "$out/sweep.log" | head -10 >&2

python3 - "$out" <<'EOF' | tee "$out/ab.md"
# ONE CSV (build, label, then the harness columns) and the table of new / base medians (the median
# over the reps of each build's ms_median).
import csv, glob, os, re, statistics, sys
out = sys.argv[1]
rows, fields = [], None
for p in sorted(glob.glob(os.path.join(out, "*.csv"))):
    m = re.match(r"(new|base|checked)-(.+?)(?:-(\d+))?\.csv$", os.path.basename(p))
    if not m:
        continue
    for r in csv.DictReader(open(p)):
        fields = fields or list(r.keys())
        rows.append({"build": m.group(1), "label": m.group(2), **r})
if not rows:
    print("no timed rows")
    sys.exit(0)
with open(os.path.join(out, "ab.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, ["build", "label"] + fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
ms = {}
for r in rows:
    if r["build"] != "checked" and r.get("ms_median"):
        key = (r["label"], f'{r["algo"]}/{r["variant"]}', int(r["Tq"]), r["pass"])
        ms.setdefault(key, {}).setdefault(r["build"], []).append(float(r["ms_median"]))
        ms[key]["floor"] = [float(r["floor_ms"] or "nan")]
print("| label | algo/variant | T | pass | new ms (x floor) | base ms | new / base |")
print("|---|---|---|---|---|---|---|")
for k, v in ms.items():
    n = statistics.median(v["new"]) if "new" in v else float("nan")
    b = statistics.median(v["base"]) if "base" in v else float("nan")
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {n:.4f} ({n / v['floor'][0]:.2f}) | {b:.4f} | {n / b:.3f} |")
for r in rows:
    if r["build"] == "checked":
        print(f'checked {r["label"]} {r["algo"]}/{r["variant"]} T={r["Tq"]} {r["pass"]}: {r["status"]} err={r["err"]} '
              f'err_base={r["err_base"]}')
EOF
cat "$out/tests.txt"
# At most 8 files come back from a device call: the logs and the per-run CSVs (merged in ab.csv) into
# logs.tar.gz.
(cd "$out" && tar czf logs.tar.gz --remove-files $(ls *.log new-*.csv base-*.csv checked-*.csv nvidia-smi.txt commit.txt tests.txt 2>/dev/null) 2>/dev/null)
