// `attnbench run`: a checked, timed sweep. With no options it runs the default (quick) sweep:
// every algorithm with an implementation, bf16, B=1 H=2, T 128..1024, D=64, causal and not where
// the mask is optional, forward and backward, checked, into results/<run>/results.csv.
//
// Rows run in a worker process (harness/worker.h) unless --no-isolate: a crash or a CUDA fault
// costs one `error:` row, not the sweep. Ctrl-C / SIGTERM keep the CSV valid (exit 130 / 143);
// --resume runs only the rows the CSV lacks.
#include <cstdio>

#include <fmt/format.h>

#include "commands.h"
#include "core/algos.h"
#include "core/gpu.h"
#include "core/impl.h"
#include "errors.h"
#include "host_info.h"
#include "options.h"
#include "run_options.h"
#include "sweep.h"
#include "worker.h"

namespace attnbench::cli {
namespace {

// The options of `run` alone (not of suite sweep lines).
struct RunOnlyArgs {
  bool no_isolate = false, resume = false, no_time = false, worker = false;
  double row_timeout = 0;
  std::string inject_nonfinite;
};

}  // namespace

void add_run_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<RunArgs>();
  auto extra = std::make_shared<RunOnlyArgs>();
  auto* cmd = app.add_subcommand("run", "Run a checked, timed sweep and append rows to a CSV");
  add_run_options(cmd, *args);
  cmd->add_flag("--no-time", extra->no_time, "Check only; do not time");
  cmd->add_flag("--resume", extra->resume, "Skip rows already in --out (same algo, variant, impl, pass, dtype, shape, params)");
  cmd->add_flag("--no-isolate", extra->no_isolate,
                "Run rows in this process (default: in a worker process restarted after a crash or CUDA fault)");
  cmd->add_option("--row-timeout", extra->row_timeout,
                  "Seconds a row may run before its worker is killed and the row is an error (0: no limit; not with --no-isolate)")
      ->capture_default_str();
  // Hidden: testing the non-finite input report, and the worker side of isolation.
  cmd->add_option("--inject-nonfinite", extra->inject_nonfinite, "Put one NaN (q) or Inf (q:inf) into named inputs")
      ->group("");
  cmd->add_flag("--worker", extra->worker, "Serve rows to a parent attnbench on fd 3")->group("");
  cmd->callback([args, extra, exit_code] {
    SweepOptions opt = to_sweep(*args);
    opt.time = !extra->no_time;
    opt.isolate = !extra->no_isolate;
    opt.resume = extra->resume;
    opt.row_timeout_s = extra->row_timeout;
    if (!extra->inject_nonfinite.empty()) opt.inject_nonfinite = split_list("--inject-nonfinite", extra->inject_nonfinite);
    if (extra->worker) {
      *exit_code = worker_main(opt);
      return;
    }
    const auto points = expand_points(opt);  // validate everything before touching --out
    const std::string out = args->out.empty() ? "results/" + run_name() + "/results.csv" : args->out;
    if (opt.resume) existing_row_keys(out);  // a file --resume cannot read: refused before anything runs
    CsvWriter csv(out);
    const GpuInfo& g = gpu_info();
    std::fprintf(stderr, "attnbench run: %zu points -> %s\nhost: %s; commit %s\n", points.size(), out.c_str(),
                 cpu_model().c_str(), git_commit().c_str());
    if (g.available) {
      std::fprintf(stderr, "gpu: %s, %d SMs, driver %s, CUDA runtime %s\n", g.name.c_str(), g.sm_count,
                   g.driver.c_str(), g.runtime.c_str());
    } else {
      std::fprintf(stderr, "gpu: none usable (%s); running CPU implementations\n", g.why_not.c_str());
    }
    const SweepStats st = run_sweep(opt, csv, stderr);
    std::fprintf(stderr, "done: %d rows (pass %d, fail %d, skipped %d, error %d, unchecked %d)%s -> %s\n", st.rows,
                 st.pass, st.fail, st.skipped, st.error, st.unchecked,
                 opt.resume ? fmt::format("; {} already there", st.resumed).c_str() : "", out.c_str());
    *exit_code = (st.fail > 0 || st.error > 0) ? 1 : 0;
  });
}

}  // namespace attnbench::cli
