// A sweep: every (algo, variant, params, dtype, causal, shape) point crossed with the chosen
// passes and implementations. Per point: draw inputs once; per pass and implementation: check
// against the oracle with the numerics rule, then time (only what passed, or was not asked to be
// checked), then append one CSV row and print one progress line.
//
// Rows, in a fixed order (point, then pass, then implementation), are the unit of work and of
// failure (DESIGN.md "Bad input"):
//   - an unsupported combination is a `skipped:<reason>` row, device out-of-memory a
//     `skipped:out of device memory` row, a point too big for host memory `skipped:out of host
//     memory (...)`; non-finite inputs an `error:non-finite inputs (q: 1 NaN)` row;
//   - with `isolate` (the CLI's default) rows run in a worker process (harness/worker.h): a row
//     that crashes it (a signal, or a CUDA fault that leaves the context unusable) is one
//     `error:<message>` row and the worker is restarted for the next;
//   - SIGINT/SIGTERM stop the sweep between whole rows (harness/interrupt.h): the row in flight
//     is dropped, the CSV stays valid, exit 130/143; `resume` skips rows already in the CSV.
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

  // Reliability (issue 9).
  bool isolate = false;         // run rows in a restartable worker process (`attnbench run` sets it)
  std::string worker_exe;       // the attnbench binary the worker runs (empty: this process's binary)
  double row_timeout_s = 0;     // isolated: a row still running after this is killed (0: no limit)
  bool resume = false;          // skip rows whose key (row_key) is already in the CSV
  // Testing the non-finite input report: "q" (one NaN in q), "k:inf", "v:-inf", ...
  std::vector<std::string> inject_nonfinite;
  // `--dump DIR`: every row's inputs and outputs (and, when checked, the oracle's and the base's)
  // as .npy files under DIR/<row tag>/ (harness/dump.h).
  std::string dump_dir;
};

struct SweepPoint {
  Problem problem;
  Dtype dtype;
};

// The seed of a point's random inputs: the same (sweep seed, problem, dtype) always draws the same
// inputs, in `attnbench run`, its worker and `attnbench-gbench`.
uint64_t point_seed(uint64_t seed, const Problem& p, Dtype dt);

// Expand and validate every point before anything runs; throws UsageError on the first bad one.
std::vector<SweepPoint> expand_points(const SweepOptions& opt);

// The implementations a sweep runs for `algo`: the named ones that exist for it, or by default
// every registered one that can run on this machine (CUDA ones only with a usable GPU).
std::vector<const Impl*> select_impls(const std::string& algo, const std::vector<std::string>& names);

// One row of the sweep: a point, a pass, an implementation.
struct SweepRow {
  std::size_t point;
  Pass pass;
  const Impl* impl;
};
// Every row in the sweep's fixed order: points, then passes, then implementations.
std::vector<SweepRow> plan_rows(const SweepOptions& opt, const std::vector<SweepPoint>& points);

// The columns known before a row runs: its key, flop model, device, driver, commit.
CsvRow row_identity(const SweepPoint& pt, const Impl& impl, Pass pass);
// The same for an implementation known only by name and device (one this build lacks).
CsvRow row_identity(const SweepPoint& pt, const std::string& impl, Device device, Pass pass);
// What identifies a row for --resume: algo, variant, impl, pass, dtype, B, H, Hkv, Tq, Tk, Dk, Dv,
// causal, params.
std::string row_key(const CsvRow& row);

// The row keys of an existing results CSV, for --resume (none when the file does not exist yet).
// Throws UsageError naming --resume when it is not an attnbench CSV or ends in a partial row.
std::vector<std::string> existing_row_keys(const std::string& path);

struct SweepStats {
  int rows = 0, pass = 0, fail = 0, skipped = 0, error = 0, unchecked = 0;
  int resumed = 0;  // rows not run because the CSV already had them
};

// Runs the sweep, writing rows to `csv` and progress lines to `progress` (may be null).
SweepStats run_sweep(const SweepOptions& opt, CsvWriter& csv, std::FILE* progress);

}  // namespace attnbench
