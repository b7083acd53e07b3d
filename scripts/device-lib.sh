# Shell functions shared by the device scripts (sourced from the repository root; the caller
# defines log(), $out and $tests_bin).
#
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
