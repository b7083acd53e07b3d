// attnbench-gbench: every point of an attnbench sweep or suite as a Google Benchmark benchmark,
// so its JSON, tools/compare.py, filters and repetitions work on attnbench's implementations.
//
//   attnbench-gbench [options of `attnbench run`] [--suite NAME] [--no-ref-bench] [--benchmark_*]
//
// Google Benchmark's --benchmark_* flags are taken out of argv first (benchmark::Initialize), and
// what is left is parsed with the sweep options of `attnbench run` (add_run_options, less --out:
// Google Benchmark writes results with --benchmark_out). Exit: 0 ok; 1 a point failed its check
// or errored; 2 bad input (one line naming the parameter).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "core/gpu.h"
#include "core/impl.h"
#include "errors.h"
#include "host_info.h"
#include "options.h"
#include "points.h"
#include "ref_bench.h"
#include "run_options.h"
#include "suite.h"

namespace {

using namespace attnbench;

bool registered_anywhere(const std::string& impl) {
  for (const Impl& i : registry().all()) {
    if (i.name == impl) return true;
  }
  return false;
}

gbench::Sweep make_sweep(const cli::RunArgs& a, std::vector<std::string> absent, std::string where) {
  gbench::Sweep sw;
  sw.options = cli::to_sweep(a);
  sw.absent_impls = std::move(absent);
  sw.where = std::move(where);
  return sw;
}

// Google Benchmark picks the iteration count from one global minimum time; a per-benchmark
// MinTime would put "/min_time:..." into every name. So a --budget-ms on the command line becomes
// --benchmark_min_time (unless that is given too), before benchmark::Initialize reads it.
std::vector<char*> budget_as_min_time(int argc, char** argv, std::string* storage) {
  std::vector<char*> out(argv, argv + argc);
  const char* budget = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--benchmark_min_time", 20) == 0) return out;
    if (std::strcmp(argv[i], "--budget-ms") == 0 && i + 1 < argc) budget = argv[i + 1];
    if (std::strncmp(argv[i], "--budget-ms=", 12) == 0) budget = argv[i] + 12;
  }
  char* end = nullptr;
  const double ms = budget ? std::strtod(budget, &end) : 0;
  if (!budget || *end != '\0' || !(ms > 0)) return out;  // a bad value is reported by to_sweep
  *storage = fmt::format("--benchmark_min_time={}", ms * 1e-3);  // seconds, no suffix: 1.7 and later
  out.push_back(storage->data());
  return out;
}

// Every sweep line of a suite. An implementation a line names that no algorithm has in this build
// (a CUDA kernel in a CPU-only build) becomes points that skip with the reason.
std::vector<gbench::Sweep> suite_sweeps(const std::string& name) {
  const Suite s = load_suite(name);
  std::vector<gbench::Sweep> out;
  for (const auto& [line, text] : s.sweeps) {
    const std::string where = fmt::format("{}:{}", s.path, line);
    cli::RunArgs a = cli::parse_run_line(text, where);
    std::vector<std::string> absent;
    if (!a.impl.empty()) {
      std::string present;
      for (const auto& n : cli::split_list("--impl", a.impl)) {
        if (registered_anywhere(n)) present += (present.empty() ? "" : ",") + n;
        else absent.push_back(n);
      }
      a.impl = present;
    }
    try {
      out.push_back(make_sweep(a, absent, where));
    } catch (const UsageError& e) {
      throw UsageError(where + ": " + e.what());
    }
  }
  return out;
}

void add_context() {
  benchmark::AddCustomContext("attnbench_commit", git_commit());
  benchmark::AddCustomContext("attnbench_host", cpu_model());
  const GpuInfo& g = gpu_info();
  benchmark::AddCustomContext(
      "attnbench_gpu", g.available ? fmt::format("{}, {} SMs, driver {}, CUDA runtime {}", g.name, g.sm_count, g.driver, g.runtime)
                                   : "none usable: " + g.why_not);
}

int run(int argc_in, char** argv_in) {
  std::string min_time_arg;
  std::vector<char*> argv_vec = budget_as_min_time(argc_in, argv_in, &min_time_arg);
  int argc = static_cast<int>(argv_vec.size());
  argv_vec.push_back(nullptr);
  char** argv = argv_vec.data();
  CLI::App app{"attnbench-gbench: attnbench sweep and suite points as Google Benchmark benchmarks", "attnbench-gbench"};
  cli::RunArgs args;
  std::string suite;
  bool ref_bench = true;
  cli::add_run_options(&app, args);
  app.remove_option(app.get_option("--out"));
  app.add_option("--suite", suite, "Register the points of suites/NAME.suite (or a path) instead of a sweep");
  app.add_flag("--ref-bench,!--no-ref-bench", ref_bench,
               "Also register BM_ref_*/BM_emul_* microbenchmarks of the CPU references (default on)");
  app.footer("Google Benchmark's own flags (--benchmark_filter, --benchmark_repetitions, --benchmark_format, "
             "--benchmark_out, --benchmark_list_tests, ...) are accepted too; --help lists them below.");

  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0) {
      std::printf("%s\n", app.help().c_str());
      std::fflush(stdout);  // benchmark::Initialize then prints its own flags and exits
    }
  }
  benchmark::SetDefaultTimeUnit(benchmark::kMillisecond);  // --benchmark_time_unit overrides
  benchmark::Initialize(&argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "attnbench-gbench: error: %s\n", e.what());
    return 2;
  }

  std::vector<gbench::Sweep> sweeps;
  if (!suite.empty()) {
    for (const CLI::Option* o : app.get_options()) {
      const std::string n = o->get_name();
      if (o->count() > 0 && n != "--suite" && n != "--ref-bench") {
        throw UsageError(fmt::format("--suite: give a suite or sweep options, not both ({} given)", n));
      }
    }
    sweeps = suite_sweeps(suite);
  } else {
    sweeps.push_back(make_sweep(args, {}, ""));
    for (const char* o : {"--min-samples", "--max-samples"}) {
      if (app.get_option(o)->count() > 0) {
        std::fprintf(stderr, "attnbench-gbench: %s is not used: Google Benchmark picks the iterations "
                     "(--benchmark_min_time, --benchmark_repetitions)\n", o);
      }
    }
  }

  int duplicates = 0;
  std::vector<gbench::Point> points = gbench::collect_points(sweeps, &duplicates);
  if (duplicates > 0) std::fprintf(stderr, "attnbench-gbench: %d repeated points registered once\n", duplicates);
  if (ref_bench) {
    std::set<std::string> algos;
    for (const auto& p : points) algos.insert(p.problem.algo);
    for (auto& p : gbench::reference_microbenchmarks(algos)) points.push_back(std::move(p));
  }
  gbench::register_points(points);
  add_context();

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  gbench::release_prepared();

  const gbench::Tally& t = gbench::tally();
  if (t.pass + t.unchecked + t.fail + t.skipped + t.error > 0) {
    std::fprintf(stderr, "attnbench-gbench: pass %d, unchecked %d, fail %d, skipped %d, error %d\n", t.pass,
                 t.unchecked, t.fail, t.skipped, t.error);
  }
  return t.fail > 0 || t.error > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "attnbench-gbench: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnbench-gbench: fatal: %s\n", e.what());
    return 3;
  }
}
