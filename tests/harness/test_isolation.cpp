// Faults during a sweep (issue 9), end to end through the CLI with the test-only implementations
// (harness/test_impls.h, ATTNBENCH_TEST_IMPLS=1): a crashing row costs one `error:` row, a row
// past --row-timeout too; SIGINT/SIGTERM leave a valid CSV and --resume finishes it with no
// duplicates; non-finite inputs are reported, never passed; a NaN output fails the check; on a
// GPU a faulting kernel costs one row and an oversized allocation is a skipped row.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "common/cli.h"
#include "core/gpu.h"
#include "csv.h"
#include "sweep.h"

namespace attnbench {
namespace {

namespace fs = std::filesystem;
using testing::run_cli;

class Isolation : public ::testing::Test {
 protected:
  void SetUp() override { setenv("ATTNBENCH_TEST_IMPLS", "1", 1); }
  void TearDown() override {
    unsetenv("ATTNBENCH_TEST_IMPLS");
    unsetenv("ATTNBENCH_TEST_SLOW_MS");
  }
  static std::string fresh(const std::string& name) {
    const std::string path = testing::scratch_dir("isolation") + "/" + name;
    fs::remove(path);
    return path;
  }
};

// Every row whole: as many fields as the header, a status, a newline at the end of the file.
CsvTable read_whole_rows(const std::string& path) {
  const std::string text = testing::read_file(path);
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n') << "the file must end with a newline";
  const CsvTable t = read_csv(path);  // throws on a torn row
  EXPECT_EQ(t.header, csv_columns());
  for (const auto& r : t.rows) EXPECT_FALSE(r.at("status").empty());
  return t;
}

TEST_F(Isolation, CrashingRowCostsOneRowAndTheSweepCompletes) {
  const std::string out = fresh("crash.csv");
  const auto r = run_cli("run --algo softmax --impl ref,abort_test,nan_test --T 8,16 --pass fwd,bwd --causal no --no-time --out " + out);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const CsvTable t = read_whole_rows(out);
  ASSERT_EQ(t.rows.size(), 2u * 2 * 3);  // T x pass x impl
  EXPECT_EQ(testing::count_lines(r.err), 3 + 12 + 1) << r.err;
  for (const auto& row : t.rows) {
    const std::string& impl = row.at("impl");
    const std::string& status = row.at("status");
    if (impl == "ref") {
      EXPECT_EQ(status, "pass");
    }
    if (impl == "abort_test") {
      EXPECT_EQ(status.rfind("error:worker died (signal 6", 0), 0u) << status;
    }
    if (impl == "nan_test") {
      EXPECT_EQ(status, "fail");  // a NaN where ref is finite never passes
    }
  }
}

TEST_F(Isolation, WithoutIsolationACrashEndsTheSweepButKeepsEveryWrittenRow) {
  const std::string out = fresh("no_isolate.csv");
  const auto r = run_cli("run --algo softmax --impl ref,abort_test --T 8,16 --pass fwd --causal no --no-time --no-isolate --out " + out);
  EXPECT_NE(r.exit_code, 0);
  const CsvTable t = read_whole_rows(out);
  ASSERT_EQ(t.rows.size(), 1u);  // the ref row before the crash
  EXPECT_EQ(t.rows[0].at("status"), "pass");
}

TEST_F(Isolation, RowPastTheTimeoutIsAnErrorRowAndTheSweepGoesOn) {
  const std::string out = fresh("timeout.csv");
  setenv("ATTNBENCH_TEST_SLOW_MS", "3000", 1);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_cli("run --algo softmax --impl slow_test,ref --T 8,9 --pass fwd --causal no --no-time --row-timeout 0.3 --out " + out);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_LT(s, 6.0);  // two slow rows of 3 s each were cut short
  const CsvTable t = read_whole_rows(out);
  ASSERT_EQ(t.rows.size(), 4u);
  for (const auto& row : t.rows) {
    EXPECT_EQ(row.at("status"), row.at("impl") == "ref" ? "pass" : "error:timed out after 0.3 s (worker killed)");
  }
}

TEST_F(Isolation, NonFiniteInputsAreReportedInEveryRowAndNeverPass) {
  const std::string out = fresh("nonfinite.csv");
  auto r = run_cli("run --algo softmax --impl ref,emul --T 8 --pass fwd,bwd --causal no --inject-nonfinite q --out " + out);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  r = run_cli("run --algo softmax --impl ref --T 8 --pass fwd --causal no --inject-nonfinite k:inf,v:-inf --no-isolate --out " + out);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const CsvTable t = read_whole_rows(out);
  ASSERT_EQ(t.rows.size(), 5u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(t.rows[i].at("status"), "error:non-finite inputs (q: 1 NaN)");
  EXPECT_EQ(t.rows[4].at("status"), "error:non-finite inputs (k: 1 Inf; v: 1 Inf)");
  for (const auto& row : t.rows) EXPECT_TRUE(row.at("ms_median").empty()) << "never timed";
}

TEST_F(Isolation, IsolatedAndInProcessSweepsWriteTheSameRows) {
  // The worker re-expands the sweep from worker_args(): every option must survive the trip.
  const std::string args = "run --algo all --impl ref,emul --T 8,9 --H 2 --Hkv 1,2 --D 16 --Dv 8 --normalize both --feature-map all "
                           "--dtype fp32,bf16 --scale 0.3 --window 3 --curvature 0.7 --beta 1.5 --eps 1e-4 "
                           "--total-attention --no-lse --k 2.5 --seed 7 --oracle ref --hot --no-time --causal both";
  const std::string a = fresh("isolated.csv"), b = fresh("in_process.csv");
  ASSERT_EQ(run_cli(args + " --out " + a).exit_code, 0);
  ASSERT_EQ(run_cli(args + " --no-isolate --out " + b).exit_code, 0);
  const CsvTable ta = read_whole_rows(a), tb = read_whole_rows(b);
  ASSERT_EQ(ta.rows.size(), tb.rows.size());
  ASSERT_GT(ta.rows.size(), 100u);
  for (std::size_t i = 0; i < ta.rows.size(); ++i) {
    for (const char* c : {"algo", "variant", "impl", "pass", "dtype", "B", "H", "Hkv", "Tq", "Tk", "Dk", "Dv", "causal",
                          "params", "status", "err", "err_base", "floor", "rel_rms", "k", "oracle", "worst"}) {
      EXPECT_EQ(ta.rows[i].at(c), tb.rows[i].at(c)) << "row " << i << " column " << c;
    }
  }
}

// ---- interrupts ----

// Starts attnbench with `args` (split on spaces), stdout/stderr to files; returns its pid.
pid_t spawn_cli(const std::string& args, const std::string& err_path) {
  std::vector<std::string> words = {testing::env_or("ATTNBENCH_BIN", ATTNBENCH_BIN_DEFAULT)};
  std::istringstream in(args);
  for (std::string w; in >> w;) words.push_back(w);
  const pid_t pid = fork();
  if (pid == 0) {
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(err, 2);
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

int count_rows(const std::string& csv) {
  const std::string text = testing::read_file(csv);
  int n = 0;
  for (char c : text) n += c == '\n';
  return n - 1;  // the header
}

// Processes still running with `marker` in their command line (a worker left behind).
int processes_with(const std::string& marker) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos || name == std::to_string(getpid())) continue;
    std::string cmd = testing::read_file(e.path().string() + "/cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find(marker) != std::string::npos && cmd.find("--worker") != std::string::npos) ++n;
  }
  return n;
}

void interrupt_then_resume(int sig, bool isolate) {
  const std::string dir = testing::scratch_dir("interrupt");
  const std::string out = dir + "/results.csv", err = dir + "/stderr";
  fs::remove(out);
  setenv("ATTNBENCH_TEST_SLOW_MS", "200", 1);
  const std::string seed = std::to_string(1000 + getpid());  // marks this test's worker processes
  const std::string args = "run --algo softmax --impl slow_test,ref --T 8:48:+2 --pass fwd --causal no --no-time --seed " +
                           seed + (isolate ? "" : " --no-isolate") + " --out " + out;
  const int total = 21 * 2;  // >= 4 s of slow rows: time to interrupt half-way even on a loaded machine
  const pid_t pid = spawn_cli(args, err);
  ASSERT_GT(pid, 0);
  // Wait until a few rows are in (each slow_test row takes >= 200 ms), then interrupt.
  for (int i = 0; i < 600 && count_rows(out) < 4; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GE(count_rows(out), 4) << testing::read_file(err);
  ::kill(pid, sig);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 128 + sig);
  const std::string note = testing::read_file(err);
  EXPECT_NE(note.find(sig == SIGINT ? "interrupted by SIGINT" : "interrupted by SIGTERM"), std::string::npos) << note;
  EXPECT_EQ(processes_with("--seed " + seed), 0) << "the worker must be stopped";

  const CsvTable partial = read_whole_rows(out);
  ASSERT_GE(partial.rows.size(), 4u);
  ASSERT_LT(static_cast<int>(partial.rows.size()), total);
  for (const auto& r : partial.rows) EXPECT_EQ(r.at("status"), "pass");

  const auto resumed = run_cli(args + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resume: " + std::to_string(partial.rows.size()) + " of " + std::to_string(total)),
            std::string::npos)
      << resumed.err;
  const CsvTable full = read_whole_rows(out);
  ASSERT_EQ(static_cast<int>(full.rows.size()), total);
  std::set<std::string> keys;
  for (const auto& r : full.rows) {
    EXPECT_TRUE(keys.insert(row_key(r)).second) << "duplicate row " << row_key(r);
    EXPECT_EQ(r.at("status"), "pass");
  }
}

TEST_F(Isolation, SigintLeavesAValidCsvAndResumeFinishesIt) { interrupt_then_resume(SIGINT, true); }
TEST_F(Isolation, SigtermLeavesAValidCsvAndResumeFinishesIt) { interrupt_then_resume(SIGTERM, true); }
TEST_F(Isolation, SigintWithoutIsolationLeavesAValidCsv) { interrupt_then_resume(SIGINT, false); }

// ---- on a GPU ----

TEST_F(Isolation, GpuFaultCostsOneRowAndOutOfMemoryIsASkippedRow) {
  if (!gpu_info().available) GTEST_SKIP() << "no usable GPU: " << gpu_info().why_not;
  for (const bool isolate : {true, false}) {
    const std::string out = fresh(isolate ? "gpu_fault.csv" : "gpu_fault_in_process.csv");
    const auto r = run_cli(std::string("run --algo softmax --impl naive,fault_test,oom_test --T 64,127 --pass fwd,bwd ") +
                           "--causal both --dtype bf16 --budget-ms 5 " + (isolate ? "" : "--no-isolate ") + "--out " + out);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    const CsvTable t = read_whole_rows(out);
    ASSERT_EQ(t.rows.size(), 2u * 2 * 2 * 3) << r.err;  // T x causal x pass x impl: the sweep completed
    int faults = 0;
    for (const auto& row : t.rows) {
      const std::string& impl = row.at("impl");
      const std::string& status = row.at("status");
      if (impl == "fault_test") {
        EXPECT_EQ(status.rfind("error:", 0), 0u) << status;
        faults += status.find("illegal") != std::string::npos;
      }
      if (impl == "oom_test" && isolate) {
        EXPECT_EQ(status, "skipped:out of device memory");
      }
      // With isolation every naive row runs in a healthy context; in one process only those
      // before the first fault can (the rest say the context is gone).
      if (impl == "naive" && isolate) {
        EXPECT_EQ(status, "pass") << row.at("Tq") << " " << row.at("pass");
      }
    }
    EXPECT_GE(faults, 1);
    if (isolate) {
      EXPECT_EQ(faults, 8) << "each fault_test row faults in a fresh worker";
    }
    std::fprintf(stderr, "%s", r.err.c_str());
  }
}

}  // namespace
}  // namespace attnbench
