// `attnbench run`: a checked, timed sweep. With no options it runs the default (quick) sweep:
// every algorithm with an implementation, bf16, B=1 H=2, T 128..1024, D=64, causal and not where
// the mask is optional, forward and backward, checked, into results/<run>/results.csv.
#include <cstdio>

#include <fmt/format.h>

#include "commands.h"
#include "core/algos.h"
#include "core/gpu.h"
#include "core/impl.h"
#include "errors.h"
#include "host_info.h"
#include "run_options.h"
#include "sweep.h"

namespace attnbench::cli {

void add_run_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Run a checked, timed sweep and append rows to a CSV");
  add_run_options(cmd, *args);
  cmd->callback([args, exit_code] {
    const SweepOptions opt = to_sweep(*args);
    const auto points = expand_points(opt);  // validate everything before touching --out
    const std::string out = args->out.empty() ? "results/" + run_name() + "/results.csv" : args->out;
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
    std::fprintf(stderr, "done: %d rows (pass %d, fail %d, skipped %d, error %d, unchecked %d) -> %s\n", st.rows,
                 st.pass, st.fail, st.skipped, st.error, st.unchecked, out.c_str());
    *exit_code = (st.fail > 0 || st.error > 0) ? 1 : 0;
  });
}

}  // namespace attnbench::cli
