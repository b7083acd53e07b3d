// `attnbench compare BASE NEW`: the regression gate between two results CSVs.
//
// Rows are matched by key (algo, variant, impl, pass, dtype, B, H, Hkv, Tq, Tk, Dk, Dv, causal,
// params). For each matched row, with o the BASE row and n the NEW row:
//
//   verdict    regression when o.status is pass or unchecked and n.status is fail or error:<..>,
//              or o.status is unchecked and n.status is fail. (ok -> skipped:<..> is reported,
//              not failed: skips are mostly the machine's doing, no GPU, out of memory.)
//   error      regression when n.err > (1 + max_error_growth) * o.err and n.err > floor, with
//              floor = max(o.floor, n.floor) (2 max|round(ref) - ref|: what storing the exact answer
//              in the dtype costs; growth within it is rounding noise, not a regression).
//   time       regression when both rows are timed and
//                n.ms_median > o.ms_median * (1 + max(max_slowdown, o.noise + n.noise)),
//              noise being each run's IQR / median (NaN counts 0). A run whose own spread exceeds
//              the allowed slowdown must slow down by more than that spread before it fails; the
//              same bound, mirrored, reports speed-ups. --no-time skips this rule (the CPU
//              references' times on a shared CI runner vary by multiples, and say nothing about
//              kernels).
//   missing    a BASE key absent from NEW is a regression (coverage must not shrink silently);
//              allow_missing reports it without failing. A NEW key absent from BASE is reported.
//
// Exit codes: 0 no regression, 1 a regression, 2 malformed or mismatched input (UsageError: one
// line naming the file: unreadable, not an attnbench CSV, missing columns, an unknown status,
// duplicate keys, no rows, no key in common).
#pragma once

#include <string>
#include <vector>

#include "csv.h"

namespace attnbench {

struct CompareOptions {
  double max_slowdown = 0.05;      // fraction
  double max_error_growth = 0.25;  // fraction
  bool allow_missing = false;
  bool judge_time = true;          // false (--no-time): a numerics-only gate, e.g. CPU CI on shared runners
};

// The key columns, and every column compare reads.
const std::vector<std::string>& compare_key_columns();
const std::vector<std::string>& compare_required_columns();

// Reads and validates a results CSV for compare. `which` ("BASE" or "NEW") prefixes every error:
// "BASE: x.csv: not an attnbench CSV (missing columns: err, noise)".
CsvTable load_results(const std::string& path, const std::string& which);

struct CompareResult {
  int matched = 0, regressed = 0, improved = 0, missing = 0, added = 0;
  int numerics = 0, error_growth = 0, slowdown = 0;  // regressions by kind (a row may have several)
  std::string report;  // markdown
  std::string verdict; // one line
  int exit_code() const { return regressed > 0 ? 1 : 0; }
};

// Compares two validated tables; throws UsageError when they share no key.
CompareResult compare_results(const CsvTable& base, const std::string& base_path, const CsvTable& next,
                              const std::string& new_path, const CompareOptions& opt);

}  // namespace attnbench
