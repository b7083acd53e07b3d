# Shell functions shared by the device scripts (sourced from the repository root; the caller
# defines log(), left(), $out (or has ab_start define them), and $bin / $tests_bin or the build
# folder ab_build sets them from).
#
# ab_start NAME OUT_DIR BUDGET_S: the A/B scripts' clock: $out (created), $budget, and the functions
# left (seconds left of the budget), log (to stderr as "[NAME Ns] ...") and cap PERCENT MAX_S (that
# share of what is left, at most MAX_S). Defined only by this call, so that a caller with its own
# log() keeps it.
ab_start() {
  ab_name=$1 out=$2 budget=$3 t_start=$SECONDS
  mkdir -p "$out"
  left() { echo $((budget - (SECONDS - t_start))); }
  log() { echo "[$ab_name $((SECONDS - t_start))s] $*" >&2; }
  cap() { local x=$(( $(left) * $1 / 100 )); echo $(( x < $2 ? x : $2 )); }
}

# gtest NAME ENV FILTER SECONDS: one kernels_tests run under ENV with --gtest_filter=FILTER,
# bounded by SECONDS (skipped under 15 s); prints its failures and records its counts in
# $out/tests.txt (log: $out/tests_NAME.log).
gtest() {
  local name=$1 envs=$2 filter=$3 secs=$4
  if ((secs < 15)); then
    log "skip tests $name (no time left)"
    echo "tests $name: skipped (no time left)" >>"$out/tests.txt"
    return
  fi
  log "GPU tests $name (env '$envs', filter $filter, limit ${secs}s)"
  env $envs timeout "$secs" "$tests_bin" --gtest_filter="$filter" >"$out/tests_$name.log" 2>&1
  local rc=$? line passed failed skipped
  grep -E "^\[  FAILED  \]|Failure|Expected|rel_rms" "$out/tests_$name.log" | head -20 >&2
  line=$(grep -E "^\[==========\] [0-9]+ tests" "$out/tests_$name.log" | tail -1)
  passed=$(grep -oE "^\[  PASSED  \] [0-9]+" "$out/tests_$name.log" | grep -oE "[0-9]+$")
  failed=$(grep -cE "^\[  FAILED  \] .*\(" "$out/tests_$name.log")
  skipped=$(grep -oE "^\[  SKIPPED \] [0-9]+" "$out/tests_$name.log" | grep -oE "[0-9]+$")
  echo "tests $name (env '$envs'): ${line:-? (cut short)}; passed ${passed:-0}, failed $failed, skipped ${skipped:-0} (rc $rc)" \
    | tee -a "$out/tests.txt" >&2
}

# ab_build BDIR: the A/B scripts' start: the device's facts (nvidia-smi.txt) and the source commit
# (commit.txt; a copy outside its repository, the device tool's .wt/NAME, carries it in COMMIT) in
# $out, then configure and build attnbench and kernels_tests in BDIR (the build bounded by what is
# left but 60 s; exits with the errors on failure). Sets $bin and $tests_bin; empties tests.txt.
ab_build() {
  local bdir=$1
  bin=$bdir/harness/attnbench
  tests_bin=$bdir/tests/kernels/kernels_tests
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | tee "$out/nvidia-smi.txt"
  { [[ -f COMMIT ]] && echo "source commit $(cat COMMIT)" || git log -1 --format='commit %H %s'; } 2>/dev/null | tee "$out/commit.txt"
  log "configure + build (attnbench, kernels_tests) in $bdir"
  cmake -S . -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${ATTNBENCH_CUDA_ARCH:-90a}" >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
  timeout $(( $(left) - 60 )) cmake --build "$bdir" -j 16 --target attnbench kernels_tests >>"$out/build.log" 2>&1 \
    || { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; tail -5 "$out/build.log"; exit 1; }
  log "built"
  : >"$out/tests.txt"
}

# sweep NAME CSV SECONDS ARGS...: one `attnbench run` (bf16, 60 ms budget, <= 30 samples) of ARGS
# into CSV, bounded by SECONDS (skipped under 15 s), its output appended to $out/sweep.log; the
# environment is the caller's.
sweep() {
  local name=$1 csv=$2 secs=$3
  shift 3
  ((secs < 15)) && { log "skip $name (no time left)"; return; }
  log "sweep $name (limit ${secs}s)"
  timeout "$secs" "$bin" run --dtype bf16 --budget-ms 60 --max-samples 30 "$@" --out "$csv" >>"$out/sweep.log" 2>&1
  log "sweep $name rc $?"
}

# ab_base_start SRC: configure and build attnbench from the source tree SRC (e.g. `git archive` of
# an earlier commit, carried under build/) in build/gpu-base, in the background (log:
# $out/build_base.log), for an A/B of two commits in one call. ab_base_wait: waits for it and logs
# the outcome; true when build/gpu-base/harness/attnbench exists.
ab_base_start() {
  log "building the base tree $1 in build/gpu-base (background)"
  (cmake -S "$1" -B build/gpu-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${ATTNBENCH_CUDA_ARCH:-90a}" && cmake --build build/gpu-base -j 12 --target attnbench) \
    >"$out/build_base.log" 2>&1 &
  ab_base_pid=$!
}
ab_base_wait() {
  wait "$ab_base_pid" && log "base built" || log "base build failed: $(tail -3 "$out/build_base.log")"
  [[ -x build/gpu-base/harness/attnbench ]]
}
