#!/usr/bin/env bash
# based's backward at Dk = 16 on a GPU machine: the chunkwise kernels (based_chunk_dq, based_chunk_dkv;
# the default since session 18) against the quadratic form (ATTNBENCH_BASED_BWD=quad).
# Builds attnbench and kernels_tests, runs the based GPU tests under both, times bf16 B=8 H=32 Dk=16
# Dv=128 fwd and bwd at T=1024,4096,16384 (the quadratic bwd at 1024 and 4096 only: 149 ms at 16384),
# checks the chunkwise bwd at T=1024 (B=8 H=32) and T=4096 (B=1 H=4), merges everything into ONE
# CSV (leading column bwd_kernel: chunk, base, quad) and prints the table last, with fwd+bwd x floor.
#   scripts/based-bwd-ab.sh [OUT_DIR]     (default: $OUT on the device tool, else results/based-bwd-ab)
# Environment: BASED_BWD_BUDGET_S (whole script, default 400), BASED_BWD_BUILD (build folder,
# default build/gpu-based), ATTNBENCH_CUDA_ARCH (default 90a), BASED_BWD_BASE_SRC (a source tree,
# e.g. `git archive` of an earlier commit carried under build/: its attnbench is built in
# build/gpu-base while the tests run, and its bwd is timed right after the new one as kernel "base";
# BASED_BWD_BASE_COMMIT names it in the CSV's commit column, default "base"),
# BASED_BWD_BASE_PASS (the passes timed for the base, default bwd; fwd,bwd for a forward A/B too),
# BASED_BWD_REPS (new and base sweeps alternating this many times, default 1: chunk2, base2 ..),
# BASED_BWD_CHECK_FWD (1: also a checked fwd at T = 4096, B=8 H=32; a T list: at those T),
# BASED_BWD_QUAD_TIME (1: also time the quadratic bwd; default 0, its tests always run),
# BASED_BWD_NCU (1: Nsight Compute sections and SASS pages of both chunkwise kernels at T = 4096,
# files ncu_bbwd_{dq,dkv}*; scripts/sass_regions.py reads them), BASED_BWD_NCU_FWD (1: the same for
# the default forward, fused_based_ws at T = 4096: ncu_based_fwd*), BASED_BWD_SASS ("KERNEL OPCODE ..":
# scripts/sass-count.sh on based_tiled.cu's object of the new and the base build, and the same opcodes
# of based_chunk_bwd.cu's kernels, into sass.txt;
# BASED_BWD_SASS_DUMP=1: the new build's SASS of that kernel too, sass_new.txt.gz).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-lib.sh  # ab_start(), ab_build(), ab_base_start/wait(), gtest(), sweep()
ab_start based-bwd "${1:-${OUT:-results/based-bwd-ab}}" "${BASED_BWD_BUDGET_S:-400}"
bdir=${BASED_BWD_BUILD:-build/gpu-based}
ab_build "$bdir"
D="--algo based --impl tiled --B 8 --H 32 --Dk 16 --Dv 128"
[[ -n ${BASED_BWD_BASE_SRC:-} ]] && ab_base_start "$BASED_BWD_BASE_SRC"
gtest chunk "" '*based*' "$(cap 25 90)"
gtest quad "ATTNBENCH_BASED_BWD=quad" '*based*bwd*' "$(cap 20 60)"
bpass=${BASED_BWD_BASE_PASS:-bwd}
[[ -n ${BASED_BWD_BASE_SRC:-} ]] && { ab_base_wait || BASED_BWD_BASE_SRC=; }
if [[ -n ${BASED_BWD_SASS:-} ]]; then  # static opcode counts, new (and base) objects: sass.txt
  for d in "$bdir" build/gpu-base; do
    o=$(find "$d" -name based_tiled.cu.o 2>/dev/null | head -1)
    ob=$(find "$d" -name based_chunk_bwd.cu.o 2>/dev/null | head -1)
    [[ -n $o ]] && { echo "== $d"; bash scripts/sass-count.sh "$o" $BASED_BWD_SASS; } >>"$out/sass.txt" 2>&1
    [[ -n $ob ]] && bash scripts/sass-count.sh "$ob" based_chunk ${BASED_BWD_SASS#* } >>"$out/sass.txt" 2>&1
    [[ -n $o && $d == "$bdir" && ${BASED_BWD_SASS_DUMP:-0} == 1 ]] && cuobjdump -sass "$o" \
      | awk -v k="${BASED_BWD_SASS%% *}" '/Function : /{p = index($0, k) > 0} p' | gzip >"$out/sass_new.txt.gz"
  done
  cat "$out/sass.txt" >&2
fi
for rep in $(seq 1 "${BASED_BWD_REPS:-1}"); do  # new and base alternating; rep 2 and on: chunk2, base2 ..
  sfx=$([[ $rep == 1 ]] || echo "$rep")
  sweep chunk$sfx "$out/chunk$sfx.csv" "$(cap 30 120)" --no-check $D --T 1024,4096,16384 --pass fwd,bwd
  if [[ -n ${BASED_BWD_BASE_SRC:-} ]]; then
    ATTNBENCH_COMMIT=${BASED_BWD_BASE_COMMIT:-base} bin=build/gpu-base/harness/attnbench sweep base$sfx \
      "$out/base$sfx.csv" "$(cap 30 90)" --no-check $D --T 1024,4096,16384 --pass "$bpass"
  fi
done
[[ ${BASED_BWD_QUAD_TIME:-0} == 1 ]] && ATTNBENCH_BASED_BWD=quad sweep quad "$out/quad.csv" "$(cap 30 60)" --no-check $D --T 1024,4096 --pass bwd
sweep checked "$out/chunk.csv" "$(cap 50 90)" $D --T 1024 --pass bwd
sweep checked4k "$out/chunk.csv" "$(cap 80 60)" --algo based --impl tiled --B 1 --H 4 --Dk 16 --Dv 128 --T 4096 --pass bwd
cf=${BASED_BWD_CHECK_FWD:-0}
[[ $cf != 0 ]] && sweep checkedfwd "$out/chunk.csv" "$(cap 60 150)" $D --T "$([[ $cf == 1 ]] && echo 4096 || echo "$cf")" --pass fwd
if [[ ${BASED_BWD_NCU:-0} == 1 ]]; then
  for k in dq dkv; do
    s=$(cap 40 100)
    ((s >= 30)) && ATTNBENCH_BIN=$bin NCU_TIMEOUT_S=$((s / 2)) bash scripts/ncu-source.sh "$out" bbwd_$k based_chunk_$k 1 -- \
      $D --dtype bf16 --T 4096 --pass bwd >"$out/ncu_run_$k.log" 2>&1
    log "ncu $k rc $?"
  done
fi
if [[ ${BASED_BWD_NCU_FWD:-0} == 1 ]]; then  # the default forward (fused_based_ws) at T = 4096
  s=$(cap 40 100)
  ((s >= 30)) && ATTNBENCH_BIN=$bin NCU_TIMEOUT_S=$((s / 2)) bash scripts/ncu-source.sh "$out" based_fwd fused_based_ws 1 -- \
    $D --dtype bf16 --T 4096 --pass fwd >"$out/ncu_run_fwd.log" 2>&1
  log "ncu fwd rc $?"
fi
grep -iE "error|fail" "$out/sweep.log" | head -10 >&2
cat "$out/tests.txt"

python3 - "$out" <<'PY' | tee "$out/ab.md"
# ONE CSV (bwd_kernel, then the harness columns) and the table: kernel, T, pass, ms, x floor.
import csv, os, sys
out = sys.argv[1]
rows = []
for kern in ("chunk", "base", "quad", "chunk2", "base2", "chunk3", "base3"):
    p = os.path.join(out, kern + ".csv")
    if os.path.exists(p):
        rows += [dict(bwd_kernel=kern, **r) for r in csv.DictReader(open(p))]
if rows:
    with open(os.path.join(out, "based_bwd_ab.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
for r in rows:
    if r["status"] != "unchecked":
        print("%s B=%s H=%s T=%s %s: %s (err %s, err_base %s, floor %s, rel_rms %s)" % (
            r["bwd_kernel"], r["B"], r["H"], r["Tq"], r["pass"], r["status"], r["err"], r["err_base"], r["floor"], r["rel_rms"]))
print("| kernel | T | pass | ms | x floor_ms | floor_ms | noise |")
print("|---|---|---|---|---|---|---|")
t = {}
for r in rows:
    if not r["ms_median"] or r["status"] != "unchecked":
        continue
    ms, fl = float(r["ms_median"]), float(r["floor_ms"] or 0)
    t[(r["bwd_kernel"], r["Tq"], r["pass"])] = (ms, fl)
    print("| %s | %s | %s | %.4f | %s | %s | %s |" % (r["bwd_kernel"], r["Tq"], r["pass"], ms,
                                                   "%.2f" % (ms / fl) if fl else "", r["floor_ms"], r["noise"]))
for T in ("1024", "4096", "16384"):
    for sfx in ("", "2", "3"):
        f, b = t.get(("chunk" + sfx, T, "fwd")), t.get(("chunk" + sfx, T, "bwd"))
        if f and b:
            print("fwd+bwd%s T=%s: (%.4f + %.4f) / (%.4f + %.4f) = %.2fx floor" % (sfx, T, f[0], b[0], f[1], b[1], (f[0] + b[0]) / (f[1] + b[1])))
        for ps in ("fwd", "bwd"):
            n, o = t.get(("chunk" + sfx, T, ps)), t.get(("base" + sfx, T, ps))
            if n and o:
                print("%s%s T=%s: chunk / base = %.4f / %.4f = %.3f" % (ps, sfx, T, n[0], o[0], n[0] / o[0]))
PY
(cd "$out" && tar czf logs.tar.gz *.log && rm -f *.log && [[ -f based_bwd_ab.csv ]] && rm -f chunk*.csv base*.csv quad.csv)
