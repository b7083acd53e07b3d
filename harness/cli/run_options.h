// The options of `attnbench run`, shared by `run`, `suite` (each sweep line of a suite file is
// a list of these options) and `attnbench-gbench`.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "sweep.h"

namespace attnbench::cli {

struct RunArgs {
  std::string algo = "all", variant, impl, dtype = "bf16", pass = "fwd,bwd", causal = "both";
  std::string B = "1", H = "2", Hkv, T = "128:1024:x2", Tq, Tk, D = "64", Dk, Dv;
  std::string normalize = "default", feature_map = "identity";
  std::string scale, window, curvature, beta, eps, oracle = "auto";
  bool check = true, hot = false, lse = true, total = false;
  double k = 2.0, budget_ms = 200;
  int warmup = 2, min_samples = 5, max_samples = 100;
  uint64_t seed = 0;
  std::string out, dump;
};

// Adds every sweep option to `cmd`, bound to `a`.
void add_run_options(CLI::App* cmd, RunArgs& a);
// Validates and converts; throws UsageError naming the option.
SweepOptions to_sweep(const RunArgs& a);
// Parses one suite sweep line ("--algo softmax --T 512:4096 ...") into RunArgs; throws UsageError
// prefixed with `where` ("suites/x.suite:3").
RunArgs parse_run_line(const std::string& line, const std::string& where);

}  // namespace attnbench::cli
