// `attnbench suite NAME`: run a named suite's sweeps into one CSV, then print a markdown table:
// measured vs published (suites with a published file) or the measured rows (the others).
//
// Implementations a sweep names that cannot run here (a CUDA kernel in a CPU-only build or on a
// machine without a usable GPU, a kernel not written yet) are not run: each of their points gets a
// `skipped:<reason>` row, so the table shows them as skipped rather than absent or zero, and no
// inputs are drawn for them (published shapes are far beyond a CPU).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.h"
#include "core/algos.h"
#include "core/gpu.h"
#include "core/impl.h"
#include "errors.h"
#include "host_info.h"
#include "options.h"
#include "run_options.h"
#include "suite.h"
#include "suite_report.h"
#include "sweep.h"

namespace attnbench::cli {
namespace {

struct SuiteArgs {
  std::string name, out, impl, from;
  bool list = false, resume = false;
};

// Why `algo/impl` cannot run here, or "" when it can.
std::string why_not_here(const std::string& algo, const std::string& impl) {
  const Impl* i = registry().find(algo, impl);
  const GpuInfo& g = gpu_info();
  if (!i) {
    if (!g.available && impl != "ref" && impl != "emul") return g.why_not;  // a CUDA kernel, not built or no GPU
    return fmt::format("no {}/{} in this build", algo, impl);
  }
  if (i->device == Device::cuda && !g.available) return g.why_not;
  return "";
}

// The skipped rows of one sweep point for an implementation that cannot run here.
void write_skipped(CsvWriter& csv, const SweepPoint& pt, const std::string& impl, Pass pass, const std::string& why) {
  // Skipped here because this build or machine lacks it: a CUDA kernel, or one not written yet.
  CsvRow row = row_identity(pt, impl, Device::cuda, pass);
  row["status"] = "skipped:" + why;
  row["timestamp"] = utc_timestamp();
  csv.write(row);
}

struct Plan {
  int line;
  SweepOptions opt;                                      // impls: only those that can run here
  std::vector<std::pair<std::string, std::string>> off;  // (impl, why) that cannot
  std::vector<SweepPoint> points;
  bool run = true;                                       // false: nothing of it can run here
};

// Every sweep converted and expanded before anything is written (bad input: exit 2, file intact).
std::vector<Plan> plan_suite(const Suite& s, const std::string& impl_override) {
  std::vector<Plan> plans;
  for (const auto& [line, text] : s.sweeps) {
    const std::string where = fmt::format("{}:{}", s.path, line);
    RunArgs a = parse_run_line(text, where);
    if (!impl_override.empty()) a.impl = impl_override;
    Plan pl{line, {}, {}, {}, true};
    try {
      pl.opt = to_sweep(a);
      pl.opt.isolate = true;  // as `attnbench run`: a crash or CUDA fault costs one row, not the suite
      // No --impl: what `attnbench run` picks (every registered one usable here), nothing skipped.
      pl.run = true;
      if (!pl.opt.impls.empty()) {
        std::vector<std::string> run_here;
        for (const auto& n : pl.opt.impls) {
          // A name runs when it can run for at least one of the sweep's algorithms here; its
          // points of the other algorithms get skipped rows below.
          std::string why;
          bool any = false;
          for (const auto& algo : pl.opt.algos) {
            const std::string w = why_not_here(algo, n);
            if (w.empty()) any = true;
            else why = w;
          }
          if (any) run_here.push_back(n);
          if (!why.empty()) pl.off.emplace_back(n, why);
        }
        pl.run = !run_here.empty();
        pl.opt.impls = run_here;
      }
      SweepOptions all = pl.opt;
      all.impls.clear();
      pl.points = expand_points(all);  // the points do not depend on the implementations
    } catch (const UsageError& e) {
      throw UsageError(fmt::format("{}: {}", where, e.what()));
    }
    plans.push_back(std::move(pl));
  }
  return plans;
}

}  // namespace

void add_suite_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<SuiteArgs>();
  auto* cmd = app.add_subcommand("suite", "Run a named suite (suites/<name>.suite) and print measured vs published");
  cmd->add_option("name", args->name, "Suite name (suites/<name>.suite) or path to a .suite file");
  cmd->add_option("--out", args->out, "CSV to append to (default results/<run>-<suite>/results.csv)");
  cmd->add_option("--impl", args->impl, "Replace every sweep's --impl with this list");
  cmd->add_option("--from", args->from, "Do not run: print the table from this CSV (e.g. after scripts/peers.py added rows)");
  cmd->add_flag("--resume", args->resume,
                "Skip rows already in --out (a suite stopped by a time limit or a signal goes on where it stopped)");
  cmd->add_flag("--list", args->list, "List the suites and exit");
  cmd->callback([args, exit_code] {
    if (args->list) {
      for (const auto& n : suite_names()) {
        const Suite s = load_suite(n);
        std::printf("%-20s %s\n", n.c_str(), s.description.c_str());
      }
      *exit_code = 0;
      return;
    }
    if (args->name.empty()) throw UsageError(fmt::format("suite: name required (known: {})", fmt::join(suite_names(), ", ")));
    if (!args->from.empty() && (!args->out.empty() || !args->impl.empty() || args->resume)) {
      throw UsageError("--from: prints an existing CSV; it takes neither --out, --impl nor --resume");
    }
    if (args->resume && args->out.empty()) throw UsageError("--resume: needs --out (the CSV to go on with)");
    const Suite s = load_suite(args->name);
    std::vector<PublishedRow> pub;
    if (!s.published.empty()) {
      pub = read_published(published_path(s));
      check_providers(s, pub);
    }
    if (!args->impl.empty()) {
      for (const auto& i : split_list("--impl", args->impl)) {
        const auto known = suite_impl_names();
        if (std::find(known.begin(), known.end(), i) == known.end()) {
          throw UsageError(fmt::format("--impl: '{}' is not an implementation (known: {})", i, fmt::join(known, ", ")));
        }
      }
    }

    std::string csv_path = args->from;
    SweepStats total;
    if (args->from.empty()) {
      const std::vector<Plan> plans = plan_suite(s, args->impl);
      csv_path = args->out.empty() ? "results/" + run_name() + "-" + s.name + "/results.csv" : args->out;
      std::set<std::string> done;  // --resume: the row keys already in the CSV
      if (args->resume) {
        for (auto& k : existing_row_keys(csv_path)) done.insert(std::move(k));
      }
      CsvWriter csv(csv_path);
      const GpuInfo& g = gpu_info();
      std::fprintf(stderr, "attnbench suite %s: %zu sweeps -> %s\nhost: %s; commit %s\n%s\n", s.name.c_str(),
                   plans.size(), csv_path.c_str(), cpu_model().c_str(), git_commit().c_str(),
                   g.available ? fmt::format("gpu: {}, {} SMs, driver {}", g.name, g.sm_count, g.driver).c_str()
                               : fmt::format("gpu: none usable ({})", g.why_not).c_str());
      for (const auto& pl : plans) {
        for (const auto& [impl, why] : pl.off) {
          int n = 0;
          for (const auto& pt : pl.points) {
            const std::string w = why_not_here(pt.problem.algo, impl);
            if (w.empty()) continue;  // runs in the sweep below
            for (Pass pass : pl.opt.passes) {
              if (done.count(row_key(row_identity(pt, impl, Device::cuda, pass)))) {
                ++total.resumed;
                continue;
              }
              write_skipped(csv, pt, impl, pass, w), ++n;
            }
          }
          total.rows += n, total.skipped += n;
          std::fprintf(stderr, "%s:%d: %s: %d rows skipped (%s)\n", s.path.c_str(), pl.line, impl.c_str(), n, why.c_str());
        }
        if (!pl.run) continue;
        std::fprintf(stderr, "%s:%d: running %s\n", s.path.c_str(), pl.line,
                     pl.opt.impls.empty() ? "every implementation usable here"
                                          : fmt::format("{}", fmt::join(pl.opt.impls, ",")).c_str());
        SweepOptions opt = pl.opt;
        opt.resume = args->resume;
        const SweepStats st = run_sweep(opt, csv, stderr);
        total.rows += st.rows, total.pass += st.pass, total.fail += st.fail, total.skipped += st.skipped;
        total.error += st.error, total.unchecked += st.unchecked, total.resumed += st.resumed;
      }
      std::fprintf(stderr, "done: %d rows (pass %d, fail %d, skipped %d, error %d, unchecked %d%s) -> %s\n", total.rows,
                   total.pass, total.fail, total.skipped, total.error, total.unchecked,
                   args->resume ? fmt::format("; {} already there", total.resumed).c_str() : "", csv_path.c_str());
    }

    const CsvTable measured = read_csv(csv_path, args->from.empty() ? "--out" : "--from");
    for (const char* c : {"algo", "variant", "impl", "pass", "dtype", "B", "H", "Tq", "Tk", "Dk", "Dv", "causal", "status",
                          "ms_median", "tflops", "gpu"}) {
      if (std::find(measured.header.begin(), measured.header.end(), c) == measured.header.end()) {
        throw UsageError(fmt::format("--from: {}: not an attnbench CSV (no column '{}')", csv_path, c));
      }
    }
    const SuiteReport rep = s.published.empty() ? measured_summary(s, measured) : side_by_side(s, pub, measured);
    std::fputs(rep.markdown.c_str(), stdout);
    if (!s.peers.empty() && rep.measured < rep.points) {
      std::printf("\npeers (PyTorch SDPA) at these points, into the same CSV, then the table again:\n"
                  "  scripts/peers.py %s --out %s\n  attnbench suite %s --from %s\n",
                  s.peers.c_str(), csv_path.c_str(), s.name.c_str(), csv_path.c_str());
    }
    *exit_code = (total.fail > 0 || total.error > 0) ? 1 : 0;
  });
}

}  // namespace attnbench::cli
