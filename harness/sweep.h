// A sweep: every (algo, variant, params, dtype, causal, shape) point crossed with the chosen
// implementations and passes. Per point: draw inputs once; per pass and implementation: check
// against the oracle with the numerics rule, then time (only what passed, or was not asked to be
// checked), then append one CSV row and print one progress line.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "axes.h"
#include "check.h"
#include "core/dtype.h"
#include "core/impl.h"
#include "core/problem.h"
#include "core/timing.h"
#include "csv.h"

namespace attnbench {

struct SweepOptions {
  std::vector<std::string> algos;                 // required
  std::vector<std::string> variants;              // empty: every variant of each algorithm
  std::vector<std::string> impls;                 // empty: every implementation usable here
  std::vector<Dtype> dtypes{Dtype::bf16};
  std::vector<Pass> passes{Pass::fwd, Pass::bwd};
  std::vector<int> causal{0, 1};                  // for algorithms where the mask is optional
  std::vector<int> normalize{-1};                 // linear, based: -1 = the algorithm's default
  std::vector<FeatureMap> feature_maps{FeatureMap::identity};  // bidir
  AxisSet axes;
  Params params;
  bool check = true;
  OracleMode oracle = OracleMode::automatic;
  double k = 2.0;
  bool time = true;
  TimingOptions timing;
  uint64_t seed = 0;
};

struct SweepPoint {
  Problem problem;
  Dtype dtype;
};

// Expand and validate every point before anything runs; throws UsageError on the first bad one.
std::vector<SweepPoint> expand_points(const SweepOptions& opt);

// The implementations a sweep runs for `algo`: the named ones that exist for it, or by default
// every registered one that can run on this machine (CUDA ones only with a usable GPU).
std::vector<const Impl*> select_impls(const std::string& algo, const std::vector<std::string>& names);

struct SweepStats {
  int rows = 0, pass = 0, fail = 0, skipped = 0, error = 0, unchecked = 0;
};

// Runs the sweep, writing rows to `csv` and progress lines to `progress` (may be null).
SweepStats run_sweep(const SweepOptions& opt, CsvWriter& csv, std::FILE* progress);

}  // namespace attnbench
