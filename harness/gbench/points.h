// attnbench points as Google Benchmark benchmarks.
//
// A point is one row of `attnbench run`: (algo, variant, impl, pass, dtype, shape, params). It is
// registered by name only; nothing is allocated until Google Benchmark runs it, so listing a large
// sweep is cheap. When it runs, in order (the sweep's order: check, then time):
//   1. supports()? no: SkipWithError("skipped: <reason>")            (never timed)
//   2. draw the inputs (the same seed rule as `attnbench run`), prepare
//   3. check by the numerics rule against the oracle (CheckSources + check_outputs);
//      fail: SkipWithError("check failed: <why>"); no oracle: SkipWithError("skipped: ...")
//   4. warm-up runs, then the timed loop:
//        CUDA: manual time; each iteration is time_gpu() on one sample, so it gets the harness's
//              L2 flush (unless --hot) and CUDA events around the launch on the impl's stream;
//        CPU:  real time around run().
//   5. counters: TFLOP/s (FLOP model > 0), GB/s and floor_ratio (memory-bound families),
//      ms_median and noise ((p75-p25)/median) of this run's iterations as `attnbench run`
//      summarizes its samples, pass (1 checked and passed, 0 unchecked), err, err_base, err_floor,
//      rel_rms of the deciding output tensor, sm_clock_mhz (CUDA); the label says the verdict.
// Google Benchmark calls a benchmark several times (growing iteration counts, repetitions): the
// verdict is computed once per point and the prepared point is kept until another point runs.
#pragma once

#include <string>
#include <vector>

#include "check.h"
#include "core/impl.h"
#include "core/timing.h"
#include "sweep.h"

namespace attnbench::gbench {

struct Point {
  std::string name;
  Problem problem;
  Dtype dtype = Dtype::bf16;
  Pass pass = Pass::fwd;
  const Impl* impl = nullptr;  // null: a suite names an implementation this build lacks (skipped)
  std::string impl_name;
  bool check = true;
  OracleMode oracle = OracleMode::automatic;
  double k = 2.0;
  TimingOptions timing;   // warmup and flush_l2 are used; Google Benchmark picks the iterations
  uint64_t seed = 0;
  bool microbench = false;  // a reference microbenchmark: unchecked by design, labelled so
};

// One sweep of the command line or of a suite line.
struct Sweep {
  SweepOptions options;
  // Implementations a suite line names that this build lacks (a CUDA kernel in a CPU-only
  // build): registered as points that skip with the reason, as `attnbench suite` records them.
  // options.impls then holds only the ones present; both empty means every usable one.
  std::vector<std::string> absent_impls;
  std::string where;  // "suites/x.suite:7" for a suite line: prefixes its UsageErrors
};

// Every point of the sweeps, named (names.h). A name already taken (the same point in two suite
// lines) is kept once; *duplicates counts the others. Throws UsageError like expand_points().
std::vector<Point> collect_points(const std::vector<Sweep>& sweeps, int* duplicates);

// Registers each point with Google Benchmark (UseManualTime for CUDA, UseRealTime for CPU).
void register_points(const std::vector<Point>& points);

// What the registered points did so far (each point counted once, however often it was called).
struct Tally {
  int pass = 0, unchecked = 0, fail = 0, skipped = 0, error = 0;
};
const Tally& tally();

// Frees the prepared point still held (call after RunSpecifiedBenchmarks).
void release_prepared();

}  // namespace attnbench::gbench
