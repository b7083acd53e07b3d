#!/usr/bin/env bash
# bidir on a GPU machine, in time-boxed stages: build what the bidir kernels need, time A/B
# options of the forward, run the GPU tests, then the checked sweep of the tiled kernels at the
# published shape (B=8 H=16 D=64, bf16, T 128..16384, identity and elu1) with the floor ratios and
# the comparison with the published Triton times.
#   scripts/bidir-check.sh [OUT_DIR]       (default: $OUT on the device tool, else results/bidir-check)
# Stages (BIDIR_CHECK_STAGES, comma-separated; default ab,tests,tiled), in this order:
#   probe   scripts/bidir_copy_probe.cu: memcpy and a 3-read 1-write stream kernel at the forward's
#           byte counts, timed as the harness times (what no-math traffic gets) -> probe.md
#   ab      unchecked A/B runs of the pass BIDIR_CHECK_AB_PASS (fwd; or bwd), one per word of
#           BIDIR_CHECK_AB ("label:VAR=v,VAR=v"; the knobs are in kernels/bidir/bidir_tiled.cu;
#           "default:" for none), norm, identity and elu1, T = BIDIR_CHECK_AB_T -> ab.csv. With BIDIR_CHECK_PICK=1 the label with the
#           lowest mean time relative to the first label is picked: the stages below run with its
#           environment (the tests also without it).
#   tests   kernels_tests --gtest_filter='*bidir*' (every CUDA bidir case against the CPU reference),
#           with the default environment and the picked one, or once per word of
#           BIDIR_CHECK_TEST_ENVS ("label:VAR=v,VAR=v ...") -> tests_<label>.log.gz, tests.md
#   ncu     Nsight Compute (--clock-control none) on one pass BIDIR_CHECK_NCU_PASS (fwd: the forward
#           kernel; bwd: the query and the key kernels), once per word of BIDIR_CHECK_NCU
#           ("label:VAR=v,...") x feature map of BIDIR_CHECK_NCU_FMAP (identity; comma-separated) x
#           T of BIDIR_CHECK_NCU_T (4096; comma-separated) -> ncu_<label>[_<fmap>_<T>].txt (speed of
#           light, memory, warp states, pipes, instructions, schedulers; the suffix where more than
#           one map or T); for the labels in BIDIR_CHECK_NCU_SRC also the full set with the SASS
#           source page (per instruction: executions, stall samples) -> ncu_<label>_sass.csv.gz
#           (the first map and T)
#   timeline the forward's per-CTA timeline (ATTNBENCH_BIDIR_DIAG=32) at T = BIDIR_CHECK_TL_T (4096),
#           per word of BIDIR_CHECK_TL ("label:VAR=v,...") x map of BIDIR_CHECK_TL_FMAPS (focused)
#           -> timeline.md (scripts/bidir_timeline.py), tl_logs.gz (each run's last 800 CTA lines)
#   tiled   the checked sweeps (naive-fp32 oracle) -> tiled.csv, one per word of
#           BIDIR_CHECK_SWEEPS ("variant:passes", default "norm:fwd,bwd simple:fwd,bwd")
# Environment: BIDIR_CHECK_FMAPS (the feature maps of the ab and tiled stages, default identity,elu1),
# ATTNBENCH_CUDA_ARCH (default 90a), BIDIR_CHECK_BUDGET_S (whole script, default 450),
# BIDIR_CHECK_BUILD (build folder, default build/gpu-bidir; build/gpu shares it with device-stages.sh),
# BIDIR_CHECK_BASE (a source tree of another commit, e.g. a `git worktree` carried under .wt/: its
# attnbench is built alongside, and the ab labels that start with "base" run it, so an A/B against
# that commit is measured in the same run), BIDIR_CHECK_BASE_BIN (a base attnbench already built,
# e.g. a copy of build/gpu's from the previous call on a warm machine: no base build).
# Files in OUT_DIR: run.log, tests.md, tests_<label>.log.gz, tiled.csv, ab.csv, table.md, sweep_tiled.log.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-results/bidir-check}}
mkdir -p "$out"
budget=${BIDIR_CHECK_BUDGET_S:-450}
stages=",${BIDIR_CHECK_STAGES:-ab,tests,tiled},"
t_start=$SECONDS
left() { echo $((budget - (SECONDS - t_start))); }
log() { echo "[bidir-check $((SECONDS - t_start))s] $*" | tee -a "$out/run.log" >&2; }
bin=${BIDIR_CHECK_BUILD:-build/gpu-bidir}
shape=(--algo bidir --impl tiled --dtype bf16 --B 8 --H 16 --D 64 --feature-map "${BIDIR_CHECK_FMAPS:-identity,elu1}")

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | tee -a "$out/run.log"
mkdir -p build
base=${BIDIR_CHECK_BASE:-}
base_bin=${BIDIR_CHECK_BASE_BIN:-${base:+$base/build/gpu-base/harness/attnbench}}
[[ -n ${BIDIR_CHECK_BASE_BIN:-} ]] && base=""
if [[ -n $base ]]; then
  log "configure + build the base tree $base (attnbench), alongside"
  ( cmake -S "$base" -B "$base/build/gpu-base" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES="${ATTNBENCH_CUDA_ARCH:-90a}" && cmake --build "$base/build/gpu-base" -j 16 --target attnbench ) \
    >build/gpu-base-build.log 2>&1 &
  base_pid=$!
fi
log "configure + build (attnbench, kernels_tests)"
cmake -S . -B $bin -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${ATTNBENCH_CUDA_ARCH:-90a}" >build/gpu-bidir-build.log 2>&1 || { tail -30 build/gpu-bidir-build.log | tee -a "$out/run.log"; exit 1; }
cmake --build $bin -j 16 --target attnbench kernels_tests >>build/gpu-bidir-build.log 2>&1 \
  || { grep -E "error|FAILED" -A5 build/gpu-bidir-build.log | head -60 | tee -a "$out/run.log"; exit 1; }
log "built"
if [[ -n $base ]]; then
  wait "$base_pid" || { grep -E "error|FAILED" -A5 build/gpu-base-build.log | head -30 | tee -a "$out/run.log"; base_bin=""; }
  log "base built: ${base_bin:-FAILED}"
fi

if [[ $stages == *,probe,* ]]; then
  log "probe: build + run scripts/bidir_copy_probe.cu"
  /usr/local/cuda/bin/nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o build/bidir_copy_probe scripts/bidir_copy_probe.cu \
    >>"$out/run.log" 2>&1 && timeout 60 ./build/bidir_copy_probe 2>&1 | tee "$out/probe.md" | tee -a "$out/run.log" >&2
fi

picked_env=""
if [[ $stages == *,ab,* ]]; then
  rm -f "$out/ab.csv"
  for spec in ${BIDIR_CHECK_AB:-}; do
    label=${spec%%:*}
    envs=${spec#*:}
    (( $(left) < 25 )) && { log "ab: no time left for $label"; break; }
    ab_bin=./$bin/harness/attnbench
    if [[ $label == base* ]]; then
      [[ -z $base_bin ]] && { log "ab: no base binary for $label"; continue; }
      ab_bin=$base_bin
    fi
    log "ab $label ($envs) with $ab_bin, time left $(left)s"
    rm -f "$out/ab_one.csv"
    # at most 120 s a label (one takes ~40 s): a hung kernel costs one label, not the budget
    env ${envs//,/ } timeout $(( $(left) - 15 < 120 ? $(left) - 15 : 120 )) $ab_bin run "${shape[@]}" --variant norm --pass "${BIDIR_CHECK_AB_PASS:-fwd}" \
      --T "${BIDIR_CHECK_AB_T:-256,512,1024,4096,16384}" --no-check --budget-ms 150 --out "$out/ab_one.csv" >>"$out/run.log" 2>&1
    [[ -f "$out/ab_one.csv" ]] && python3 - "$out/ab_one.csv" "$out/ab.csv" "$label" "$envs" <<'EOF'
import csv, os, sys
src, dst, label, envs = sys.argv[1:]
rows = list(csv.DictReader(open(src)))
new = not os.path.exists(dst)
with open(dst, "a", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["label", "env"] + list(rows[0].keys()) if rows else ["label", "env"])
    if new: w.writeheader()
    for r in rows: w.writerow({"label": label, "env": envs, **r})
EOF
  done
  rm -f "$out/ab_one.csv"
  if [[ ${BIDIR_CHECK_PICK:-0} == 1 && -f "$out/ab.csv" ]]; then
    # mean over the points of ms / ms of the first label; only labels with every point
    picked_env=$(python3 - "$out/ab.csv" 2>>"$out/run.log" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
key = lambda r: (r["params"], r["Tq"])
labels = list(dict.fromkeys(r["label"] for r in rows))
ms = {(r["label"], key(r)): float(r["ms_median"]) for r in rows if r["ms_median"]}
envs = {r["label"]: r["env"] for r in rows}
pts = [k for (l, k) in ms if l == labels[0]]
score = {l: sum(ms[(l, k)] / ms[(labels[0], k)] for k in pts) / len(pts) for l in labels if all((l, k) in ms for k in pts)}
best = min(score, key=score.get)
print(" ".join(f"{l}={score[l]:.3f}" for l in score), file=sys.stderr)
print(f"picked {best}", file=sys.stderr)
print(envs[best])
EOF
    )
    log "ab pick: environment '${picked_env}'"
  fi
fi
picked=(env ${picked_env//,/ })

# GPU tests, once per environment: the words of BIDIR_CHECK_TEST_ENVS, or the default environment
# and (when the ab stage picked one) the picked label's. Counts summed over the environments.
test_rc=0 passed=0 failed=0 skipped=0
if [[ $stages == *,tests,* ]]; then
  specs=${BIDIR_CHECK_TEST_ENVS:-"default:${picked_env:+ picked:$picked_env}"}
  echo "| label | environment | passed | failed | skipped | rc |" >"$out/tests.md"
  echo "|---|---|---|---|---|---|" >>"$out/tests.md"
  for spec in $specs; do
    label=${spec%%:*} envs=${spec#*:}
    (( $(left) < 40 )) && { log "tests: no time left for $label"; break; }
    log "GPU tests (*bidir*) $label (${envs:-default environment})"
    tlog="$out/tests_$label.log"
    # 448 cases take ~10 s: 120 s at most, so a hung kernel costs one environment, not the budget
    env ${envs//,/ } timeout $(( $(left) > 130 ? 120 : $(left) - 10 )) ./$bin/tests/kernels/kernels_tests \
      --gtest_filter='*bidir*' >"$tlog" 2>&1
    rc=$?
    (( rc != 0 )) && test_rc=$rc
    grep -E "^\[  FAILED  \]|Failure|Expected|rel_rms" "$tlog" | head -30 | tee -a "$out/run.log" >&2
    p_=$(grep -oE "^\[  PASSED  \] [0-9]+" "$tlog" | grep -oE "[0-9]+$")
    f_=$(grep -cE "^\[  FAILED  \] .*\(" "$tlog")
    s_=$(grep -oE "^\[  SKIPPED \] [0-9]+" "$tlog" | grep -oE "[0-9]+$")
    passed=$((passed + ${p_:-0})) failed=$((failed + f_)) skipped=$((skipped + ${s_:-0}))
    echo "| $label | ${envs:-(none)} | ${p_:-0} | $f_ | ${s_:-0} | $rc |" >>"$out/tests.md"
    log "tests $label: passed ${p_:-0}, failed $f_, skipped ${s_:-0} (rc $rc)"
    gzip -f "$tlog"
  done
  cat "$out/tests.md" >&2
fi

if [[ $stages == *,ncu,* ]]; then
  ncu_pass=${BIDIR_CHECK_NCU_PASS:-fwd}
  ncu_k='tma_kernel|fused_kernel|output_kernel' ncu_c=1
  [[ $ncu_pass == bwd ]] && ncu_k='query_kernel|query_ws_kernel|key_kernel' ncu_c=2
  ncu_fmaps=${BIDIR_CHECK_NCU_FMAP:-identity} ncu_ts=${BIDIR_CHECK_NCU_T:-4096}
  ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
  for spec in ${BIDIR_CHECK_NCU:-}; do
    label=${spec%%:*} envs=${spec#*:}
    [[ -z $ncu_bin ]] && { log "ncu: not found"; break; }
    first=1
    for fm in ${ncu_fmaps//,/ }; do
      for T in ${ncu_ts//,/ }; do
        (( $(left) < 60 )) && { log "ncu: no time left for $label $fm $T"; break 3; }
        name=$label
        [[ $ncu_fmaps == *,* || $ncu_ts == *,* ]] && name=${label}_${fm}_$T
        ncu_shape=(--algo bidir --impl tiled --dtype bf16 --B 8 --H 16 --D 64 --feature-map "$fm"
                   --variant norm --pass "$ncu_pass" --T "$T" --no-check --budget-ms 1)
        log "ncu $name ($envs)"
        env ${envs//,/ } timeout 90 "$ncu_bin" --clock-control none -k regex:"$ncu_k" -c $ncu_c \
          --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats \
          --section ComputeWorkloadAnalysis --section InstructionStats --section SchedulerStats \
          ./$bin/harness/attnbench run "${ncu_shape[@]}" --out "$out/ncu_one.csv" >"$out/ncu_$name.txt" 2>&1
        log "ncu $name rc $?"
        if (( first )) && [[ " ${BIDIR_CHECK_NCU_SRC:-} " == *" $label "* ]] && (( $(left) > 60 )); then
          env ${envs//,/ } timeout 120 "$ncu_bin" --clock-control none -k regex:"$ncu_k" -c $ncu_c \
            --set full --import-source no -f -o "build/ncu_$label" ./$bin/harness/attnbench run "${ncu_shape[@]}" \
            --out "$out/ncu_one.csv" >>"$out/run.log" 2>&1 &&
            "$ncu_bin" --import "build/ncu_$label.ncu-rep" --page source --csv --print-source sass 2>>"$out/run.log" |
            gzip >"$out/ncu_${label}_sass.csv.gz"
          log "ncu source $label rc $?"
        fi
        first=0
      done
    done
  done
  rm -f "$out/ncu_one.csv"
  # per kernel: duration, DRAM throughput, executed instructions (one line each)
  for f in "$out"/ncu_*.txt; do
    [[ -f $f ]] || continue
    awk -v n="$(basename "$f" .txt)" '/^  void /{match($0, /[a-z_]+_kernel/); k=substr($0, RSTART, RLENGTH)}
      /^    Duration/{d=$NF" "$(NF-1)} /^    DRAM Throughput/{b=$NF}
      /^    Executed Instructions  /{print n, k, "duration", d, "dram%", b, "instr", $NF}' "$f"
  done | tee -a "$out/run.log" >&2
fi

if [[ $stages == *,timeline,* ]]; then
  # per word of BIDIR_CHECK_TL ("label:VAR=v,..."; default "default:") x map of BIDIR_CHECK_TL_FMAPS
  # (focused), T = BIDIR_CHECK_TL_T (4096): the forward with ATTNBENCH_BIDIR_DIAG=32 added, a few
  # launches, and scripts/bidir_timeline.py's table of their last 3 -> timeline.md
  : >"$out/timeline.md"
  for spec in ${BIDIR_CHECK_TL:-default:}; do
    label=${spec%%:*} envs=${spec#*:}
    for fm in ${BIDIR_CHECK_TL_FMAPS:-focused}; do
      fm=${fm//,/ }
      for f1 in $fm; do
        (( $(left) < 20 )) && { log "timeline: no time left for $label $f1"; break 3; }
        log "timeline $label $f1 (${envs:-default})"
        env ${envs//,/ } ATTNBENCH_BIDIR_DIAG=32 timeout 60 ./$bin/harness/attnbench run --algo bidir --impl tiled --dtype bf16 \
          --B 8 --H 16 --D 64 --feature-map "$f1" --variant norm --pass fwd --T "${BIDIR_CHECK_TL_T:-4096}" --no-check \
          --budget-ms 20 --max-samples 8 >build/tl.log 2>&1
        { echo "### $label $f1 T=${BIDIR_CHECK_TL_T:-4096} (${envs:-default})"; python3 scripts/bidir_timeline.py build/tl.log --last 3; echo; } \
          >>"$out/timeline.md" 2>&1
        { echo "# $label $f1"; grep -E "^bidir-ts" build/tl.log | tail -n 800; } >>build/tl_all.log
      done
    done
  done
  [[ -f build/tl_all.log ]] && gzip -c build/tl_all.log >"$out/tl_logs.gz" && rm -f build/tl_all.log
  cat "$out/timeline.md" >&2
fi

tiled_rc=0
if [[ $stages == *,tiled,* ]]; then
  # Checked against the naive kernel run in fp32 (naive-fp32 oracle: the fp64 CPU reference of the
  # full problem costs ~1 min of host time per point at T=16384).
  for sweep in ${BIDIR_CHECK_SWEEPS:-norm:fwd,bwd simple:fwd,bwd}; do
    (( $(left) < 30 )) && { log "tiled: no time left for $sweep"; break; }
    log "tiled sweep $sweep with '${picked_env}', naive-fp32 oracle (time left $(left)s)"
    "${picked[@]}" timeout $(( $(left) - ${BIDIR_CHECK_RESERVE_S:-10} )) ./$bin/harness/attnbench run "${shape[@]}" --T 128:16384:x2 \
      --variant "${sweep%%:*}" --pass "${sweep#*:}" --oracle naive --out "$out/tiled.csv" >>"$out/sweep_tiled.log" 2>&1
    rc=$?
    (( rc != 0 )) && tiled_rc=$rc
    grep -E " fail| error" "$out/sweep_tiled.log" | head -10 | tee -a "$out/run.log" >&2
    log "tiled sweep $sweep rc $rc"
  done
fi

python3 - "$out/tiled.csv" "$out/ab.csv" <<'EOF' | tee "$out/table.md"
# Per point: fwd ms, GB/s, x floor (floor_ms: the run's minimal bytes at its copy bandwidth), bwd,
# fwd+bwd, and the published Triton A800 times (norm) over ours against the hardware ratio
# 4.8 TB/s / 2.0 TB/s = 2.4.
import csv, sys, os
pub = {}
for r in csv.DictReader(open("results/published/fbila_a800_2024.csv")):
    if r["provider"] == "triton":
        pub[(r["pass"], int(r["T"]))] = float(r["value"])
HW = 4.8 / 2.0
f = lambda s: float(s) if s not in ("", None) else None
for path in sys.argv[1:]:
    rows = list(csv.DictReader(open(path))) if os.path.exists(path) else []
    print(f"\n{path}: {len(rows)} rows")
    if not rows: continue
    pts = {}
    for r in rows:
        fm = r["params"].split("fmap=")[-1].split(";")[0]
        k = (r.get("label", ""), r["variant"], fm, r["impl"], int(r["Tq"]))
        pts.setdefault(k, {})[r["pass"]] = r
    print("| label | variant | fmap | T | fwd ms | fwd GB/s | fwd x floor | bwd ms | fwd+bwd ms | fwd+bwd x floor | Triton fwd / ours | Triton fwd+bwd / ours | status |")
    print("|" + "---|" * 13)
    for (label, var, fm, impl, T), d in sorted(pts.items(), key=lambda x: (x[0][0], x[0][1], x[0][2], x[0][4])):
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
        print(f"| {label} | {var} | {fm} | {T} | {c(fms)} | {fw['gbps'] if fw else ''} | {c(fms / ffl if fms and ffl else None, '{:.2f}')} "
              f"| {c(bms)} | {c(tot)} | {c(tot / totfl if tot and totfl else None, '{:.2f}')} | {sp_f} | {sp_b} | {st} |")
EOF
log "done: tests $passed passed, $failed failed, $skipped skipped (rc $test_rc); tiled sweep rc $tiled_rc"
[[ $test_rc -eq 0 && $tiled_rc -eq 0 ]]
