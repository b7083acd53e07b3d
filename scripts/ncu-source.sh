#!/usr/bin/env bash
# Nsight Compute on one kernel of one harness run, for "profile before rewriting": the summary
# sections (speed of light, memory, warp states, occupancy, launch, compute, instructions,
# schedulers) as text, and the SASS source page (per instruction: executions and stall samples) as
# gzipped CSV. scripts/sass_regions.py reads that CSV (instruction counts per code region).
#   scripts/ncu-source.sh OUT_DIR NAME KERNEL_REGEX [COUNT] -- ATTNBENCH_RUN_ARGS...
# e.g. scripts/ncu-source.sh $OUT/prof based_fwd fused_based 1 -- --algo based --impl tiled \
#        --dtype bf16 --B 8 --H 32 --Dk 16 --Dv 128 --T 4096 --pass fwd
# Files: OUT_DIR/ncu_NAME.txt, OUT_DIR/ncu_NAME_sass.csv.gz. Environment: NCU_BIN (default: ncu on
# PATH, else the CUDA toolkit's), ATTNBENCH_BIN (default build/gpu/harness/attnbench), NCU_TIMEOUT_S
# (each of the two ncu runs, default 120). The run is --no-check with a 1 ms budget (one sample).
set -uo pipefail
(( $# >= 4 )) || { echo "usage: $0 OUT_DIR NAME KERNEL_REGEX [COUNT] -- ATTNBENCH_RUN_ARGS..." >&2; exit 2; }
out=$1 name=$2 regex=$3
shift 3
count=1
[[ $1 != -- ]] && { count=$1; shift; }
[[ ${1:-} == -- ]] || { echo "$0: expected -- before the attnbench run arguments" >&2; exit 2; }
shift
mkdir -p "$out"
ncu_bin=${NCU_BIN:-$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)}
[[ -x $ncu_bin ]] || { echo "$0: ncu not found (set NCU_BIN)" >&2; exit 1; }
bin=${ATTNBENCH_BIN:-build/gpu/harness/attnbench}
[[ -x $bin ]] || { echo "$0: $bin not built (set ATTNBENCH_BIN)" >&2; exit 1; }
lim=${NCU_TIMEOUT_S:-120}
run=("$bin" run --no-check --budget-ms 1 --min-samples 1 --max-samples 1 --out "$out/ncu_$name.run.csv" "$@")
timeout "$lim" "$ncu_bin" --clock-control none -k "regex:$regex" -c "$count" \
  --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats \
  --section ComputeWorkloadAnalysis --section InstructionStats --section SchedulerStats \
  "${run[@]}" >"$out/ncu_$name.txt" 2>&1
echo "ncu $name sections rc $?" >&2
rep=$(mktemp -u /tmp/ncu_XXXXXX)
timeout "$lim" "$ncu_bin" --clock-control none -k "regex:$regex" -c "$count" --set full --import-source no -f -o "$rep" \
  "${run[@]}" >>"$out/ncu_$name.txt" 2>&1 &&
  "$ncu_bin" --import "$rep.ncu-rep" --page source --csv --print-source sass 2>>"$out/ncu_$name.txt" | gzip >"$out/ncu_${name}_sass.csv.gz"
echo "ncu $name source rc $?" >&2
rm -f "$rep.ncu-rep" "$out/ncu_$name.run.csv"
awk -v n="$name" '/^  [a-z].*\(/{k=$0; sub(/^  /, "", k); sub(/\(.*/, "", k)} /^    Duration/{d=$NF" "$(NF-1)}
  /^    DRAM Throughput/{b=$NF} /^    Issue Slots Busy/{i=$NF}
  /^    Executed Instructions  /{print n, k, "duration", d, "dram%", b, "issue%", i, "instr", $NF}' "$out/ncu_$name.txt" >&2
