// `attnbench compare BASE NEW`: the CI gate (rules in harness/compare.h). Prints a markdown report
// (stdout, or --report FILE) and the verdict line on stderr; exit 0 no regression, 1 regression,
// 2 malformed or mismatched input.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "commands.h"
#include "compare.h"
#include "errors.h"

namespace attnbench::cli {

namespace {
struct CompareArgs {
  std::string base, next, report;
  double max_slowdown = 0.05, max_error_growth = 0.25;
  bool allow_missing = false, no_time = false;
};
}  // namespace

void add_compare_command(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<CompareArgs>();
  auto* cmd = app.add_subcommand("compare", "Compare two results CSVs: exit 1 on a numerics, error or speed regression");
  cmd->add_option("BASE", a->base, "The baseline results CSV")->required();
  cmd->add_option("NEW", a->next, "The new results CSV")->required();
  cmd->add_option("--max-slowdown", a->max_slowdown,
                  "Allowed slowdown of the median time, as a fraction (raised to the two runs' summed noise)")
      ->capture_default_str();
  cmd->add_option("--max-error-growth", a->max_error_growth, "Allowed growth of err above the floor, as a fraction")
      ->capture_default_str();
  cmd->add_option("--report", a->report, "Write the markdown report here instead of stdout");
  cmd->add_flag("--allow-missing", a->allow_missing, "Report BASE rows missing from NEW without failing");
  cmd->add_flag("--no-time", a->no_time, "Judge numerics only (e.g. CPU CI on a shared runner, where times vary by multiples)");
  cmd->callback([a, exit_code] {
    for (const auto& [name, v] : {std::pair<const char*, double>{"--max-slowdown", a->max_slowdown},
                                  std::pair<const char*, double>{"--max-error-growth", a->max_error_growth}}) {
      if (!(v >= 0) || !std::isfinite(v)) throw UsageError(fmt::format("{}: must be a number >= 0 (got {})", name, v));
    }
    const CsvTable base = load_results(a->base, "BASE");
    const CsvTable next = load_results(a->next, "NEW");
    CompareOptions opt;
    opt.max_slowdown = a->max_slowdown;
    opt.max_error_growth = a->max_error_growth;
    opt.allow_missing = a->allow_missing;
    opt.judge_time = !a->no_time;
    const CompareResult r = compare_results(base, a->base, next, a->next, opt);
    if (a->report.empty()) {
      std::fputs(r.report.c_str(), stdout);
    } else {
      std::ofstream out(a->report);
      out << r.report;
      out.flush();
      if (!out) throw UsageError(fmt::format("--report: cannot write '{}'", a->report));
    }
    std::fprintf(stderr, "attnbench compare: %s\n", r.verdict.c_str());
    *exit_code = r.exit_code();
  });
}

}  // namespace attnbench::cli
