// The regression gate: planted numerics, error and speed regressions fail (exit 1); noise within
// the runs' spread and error growth under the floor do not; missing rows fail unless allowed;
// malformed and mismatched inputs are one line naming the file, exit 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/cli.h"
#include "compare.h"
#include "csv.h"
#include "errors.h"

namespace attnbench {
namespace {

using testing::run_cli;

struct R {
  std::string impl = "tiled", status = "pass", err = "1e-3", floor = "2e-4", ms = "1.0", noise = "0.01";
  int T = 1024;
};

R at(int T) {
  R r;
  r.T = T;
  return r;
}

CsvRow row(const R& r) {
  return {{"algo", "softmax"},  {"variant", ""},        {"impl", r.impl},      {"pass", "fwd"},
          {"dtype", "bf16"},    {"B", "2"},            {"H", "16"},           {"Hkv", "16"},
          {"Tq", std::to_string(r.T)}, {"Tk", std::to_string(r.T)}, {"Dk", "64"}, {"Dv", "64"},
          {"causal", "no"},     {"params", "scale=0.125;lse=1"}, {"status", r.status}, {"err", r.err},
          {"err_base", "6e-4"}, {"floor", r.floor},    {"k", "2"},            {"ms_median", r.ms},
          {"noise", r.noise},   {"gpu", "NVIDIA H200"}, {"commit", "abc"}};
}

std::string write(const std::string& name, const std::vector<R>& rows) {
  const std::string path = testing::scratch_dir("compare") + "/" + name;
  std::filesystem::remove(path);
  CsvWriter w(path);
  for (const auto& r : rows) w.write(row(r));
  return path;
}

CompareResult compare(const std::vector<R>& base, const std::vector<R>& next, CompareOptions opt = {}) {
  const std::string b = write("base.csv", base), n = write("new.csv", next);
  return compare_results(load_results(b, "BASE"), b, load_results(n, "NEW"), n, opt);
}

R with(R r, std::string R::*field, std::string v) {
  r.*field = std::move(v);
  return r;
}

TEST(Compare, IdenticalRunsPass) {
  const auto res = compare({R{}, at(2048)}, {R{}, at(2048)});
  EXPECT_EQ(res.exit_code(), 0) << res.report;
  EXPECT_EQ(res.matched, 2);
  EXPECT_NE(res.report.find("**OK: 2 matched rows, no regression"), std::string::npos) << res.report;
}

TEST(Compare, NumericsVerdictThatGotWorseFails) {
  for (const char* bad : {"fail", "error:cuda launch failed"}) {
    const auto res = compare({R{}}, {with(R{}, &R::status, bad)});
    EXPECT_EQ(res.exit_code(), 1) << bad;
    EXPECT_EQ(res.numerics, 1);
    EXPECT_NE(res.report.find("| verdict | pass | "), std::string::npos) << res.report;
  }
  // unchecked -> fail is worse too; fail -> pass is an improvement; pass -> skipped is reported only.
  EXPECT_EQ(compare({with(R{}, &R::status, "unchecked")}, {with(R{}, &R::status, "fail")}).exit_code(), 1);
  const auto fixed = compare({with(R{}, &R::status, "fail")}, {R{}});
  EXPECT_EQ(fixed.exit_code(), 0);
  EXPECT_EQ(fixed.improved, 1);
  const auto skipped = compare({R{}}, {with(with(R{}, &R::status, "skipped:no GPU"), &R::ms, "")});
  EXPECT_EQ(skipped.exit_code(), 0);
  EXPECT_NE(skipped.report.find("now skipped"), std::string::npos) << skipped.report;
}

TEST(Compare, ErrorGrowthBeyondTheBoundAndAboveTheFloorFails) {
  EXPECT_EQ(compare({R{}}, {with(R{}, &R::err, "1.2e-3")}).exit_code(), 0);  // +20% < 25%
  const auto grown = compare({R{}}, {with(R{}, &R::err, "1.5e-3")});         // +50%
  EXPECT_EQ(grown.exit_code(), 1);
  EXPECT_EQ(grown.error_growth, 1);
  EXPECT_NE(grown.report.find("error growth"), std::string::npos);
  CompareOptions loose;
  loose.max_error_growth = 1.0;
  EXPECT_EQ(compare({R{}}, {with(R{}, &R::err, "1.5e-3")}, loose).exit_code(), 0);
  // Under the floor, growth is rounding noise: 1e-5 -> 1e-4 with floor 2e-4 passes.
  EXPECT_EQ(compare({with(R{}, &R::err, "1e-5")}, {with(R{}, &R::err, "1e-4")}).exit_code(), 0);
  // From exactly zero to above the floor fails.
  EXPECT_EQ(compare({with(R{}, &R::err, "0")}, {with(R{}, &R::err, "3e-4")}).exit_code(), 1);
}

TEST(Compare, SlowdownIsNoiseAware) {
  EXPECT_EQ(compare({R{}}, {with(R{}, &R::ms, "1.04")}).exit_code(), 0);  // within 5%
  const auto slow = compare({R{}}, {with(R{}, &R::ms, "1.20")});         // +20%, noise 1% + 1%
  EXPECT_EQ(slow.exit_code(), 1);
  EXPECT_EQ(slow.slowdown, 1);
  EXPECT_NE(slow.report.find("slowdown +20.0%"), std::string::npos) << slow.report;
  // Noisy runs: 12% + 10% spread raises the bar to 22%: +20% passes, +30% fails.
  const R noisy_base = with(R{}, &R::noise, "0.12");
  EXPECT_EQ(compare({noisy_base}, {with(with(R{}, &R::ms, "1.20"), &R::noise, "0.10")}).exit_code(), 0);
  EXPECT_EQ(compare({noisy_base}, {with(with(R{}, &R::ms, "1.30"), &R::noise, "0.10")}).exit_code(), 1);
  // --max-slowdown raises the floor of the bar.
  CompareOptions loose;
  loose.max_slowdown = 0.5;
  EXPECT_EQ(compare({R{}}, {with(R{}, &R::ms, "1.20")}, loose).exit_code(), 0);
  // --no-time: a numerics-only gate.
  CompareOptions numerics_only;
  numerics_only.judge_time = false;
  const auto untimed = compare({R{}}, {with(R{}, &R::ms, "10")}, numerics_only);
  EXPECT_EQ(untimed.exit_code(), 0);
  EXPECT_NE(untimed.report.find("times not judged (--no-time)"), std::string::npos) << untimed.report;
  EXPECT_EQ(compare({R{}}, {with(with(R{}, &R::ms, "10"), &R::status, "fail")}, numerics_only).exit_code(), 1);
  // A speed-up is an improvement.
  const auto fast = compare({R{}}, {with(R{}, &R::ms, "0.5")});
  EXPECT_EQ(fast.exit_code(), 0);
  EXPECT_EQ(fast.improved, 1);
  EXPECT_NE(fast.report.find("speed-up 2.00x"), std::string::npos) << fast.report;
}

TEST(Compare, MissingRowsFailUnlessAllowedAndNewRowsAreReported) {
  const auto res = compare({R{}, at(2048)}, {R{}, at(4096)});
  EXPECT_EQ(res.exit_code(), 1);
  EXPECT_EQ(res.missing, 1);
  EXPECT_EQ(res.added, 1);
  EXPECT_NE(res.report.find("## Missing from NEW (1)"), std::string::npos) << res.report;
  EXPECT_NE(res.report.find("T=2048"), std::string::npos);
  EXPECT_NE(res.report.find("## New in NEW (1)"), std::string::npos);
  CompareOptions allow;
  allow.allow_missing = true;
  const auto ok = compare({R{}, at(2048)}, {R{}, at(4096)}, allow);
  EXPECT_EQ(ok.exit_code(), 0) << ok.report;
  EXPECT_NE(ok.report.find("## Missing from NEW (1)"), std::string::npos) << "still reported";
}

TEST(Compare, SeveralRegressionsAreAllListed) {
  const auto res = compare({R{}, at(2048), at(4096)},
                           {with(R{}, &R::status, "fail"), with(at(2048), &R::ms, "2"), with(at(4096), &R::err, "5e-3")});
  EXPECT_EQ(res.exit_code(), 1);
  EXPECT_EQ(res.regressed, 3);
  EXPECT_EQ(res.numerics + res.slowdown + res.error_growth, 3);
  EXPECT_NE(res.report.find("## Regressions (3)"), std::string::npos) << res.report;
}

// Malformed or mismatched input: exit 2, one line naming the file.
TEST(CompareCli, MalformedInputIsOneLineNamingTheFileAndExit2) {
  const std::string dir = testing::scratch_dir("compare_cli");
  const std::string good = write("good.csv", {R{}});
  std::ofstream(dir + "/notours.csv") << "a,b\n1,2\n";
  std::ofstream(dir + "/ragged.csv") << testing::read_file(good) << "softmax,1,2\n";
  std::ofstream(dir + "/empty.csv") << "";
  std::ofstream(dir + "/header_only.csv") << testing::read_file(good).substr(0, testing::read_file(good).find('\n') + 1);
  std::string text = testing::read_file(good);
  std::ofstream(dir + "/dup.csv") << text << text.substr(text.find('\n') + 1);
  std::string weird = text;
  weird.replace(weird.find(",pass,", weird.find('\n')), 6, ",maybe,");  // the status, not the header
  std::ofstream(dir + "/status.csv") << weird;
  const std::string other = write("other.csv", {with(R{}, &R::impl, "naive")});
  std::string nomiss = text;  // drop the `noise` column from the header and the row
  const auto drop = [](std::string s, int col) {
    std::string out, line;
    std::istringstream in(s);
    while (std::getline(in, line)) {
      auto f = split_csv_line(line);
      f.erase(f.begin() + col);
      for (std::size_t i = 0; i < f.size(); ++i) out += (i ? "," : "") + csv_escape(f[i]);
      out += "\n";
    }
    return out;
  };
  const int noise_col = static_cast<int>(std::find(csv_columns().begin(), csv_columns().end(), "noise") - csv_columns().begin());
  std::ofstream(dir + "/nonoise.csv") << drop(text, noise_col);

  const std::pair<std::string, std::string> cases[] = {
      {dir + "/notours.csv " + good, "notours.csv: not an attnbench CSV"},
      {good + " " + dir + "/nonoise.csv", "nonoise.csv: not an attnbench CSV (missing columns: noise)"},
      {good + " " + dir + "/ragged.csv", "ragged.csv"},
      {dir + "/empty.csv " + good, "empty.csv"},
      {good + " " + dir + "/header_only.csv", "header_only.csv: no rows"},
      {good + " " + dir + "/dup.csv", "dup.csv: data rows 1 and 2 have the same key"},
      {good + " " + dir + "/status.csv", "status.csv: data row 1: unknown status 'maybe'"},
      {good + " " + other, "no row shares a key"},
      {good + " " + dir + "/nosuch.csv", "nosuch.csv"},
      {good + " " + good + " --max-slowdown -1", "--max-slowdown"},
      {good + " " + good + " --max-error-growth abc", "--max-error-growth"},
      {good + " " + good + " --report /proc/nope/report.md", "--report"},
      {good, "NEW"},
  };
  for (const auto& [args, expect] : cases) {
    const auto r = run_cli("compare " + args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err << r.out;
    EXPECT_EQ(testing::count_lines(r.err), 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << "expected '" << expect << "' in: " << r.err;
  }
}

TEST(CompareCli, ExitCodesAndReportFile) {
  const std::string dir = testing::scratch_dir("compare_cli2");
  const std::string base = write("b.csv", {R{}, at(2048)});
  const std::string same = write("s.csv", {R{}, at(2048)});
  const std::string slow = write("w.csv", {R{}, with(at(2048), &R::ms, "1.5")});
  auto r = run_cli("compare " + base + " " + same);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("# attnbench compare"), std::string::npos);
  EXPECT_NE(r.err.find("attnbench compare: OK"), std::string::npos) << r.err;
  r = run_cli("compare " + base + " " + slow + " --report " + dir + "/report.md");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("attnbench compare: REGRESSION: 1 of 2 matched rows regressed"), std::string::npos) << r.err;
  EXPECT_NE(testing::read_file(dir + "/report.md").find("slowdown +50.0%"), std::string::npos);
  r = run_cli("compare " + base + " " + slow + " --max-slowdown 0.6");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_cli("compare " + base + " " + slow + " --no-time");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Two runs of a real sweep compare clean on numerics (the CPU references are deterministic).
TEST(CompareCli, TwoRunsOfTheSameSweepHaveTheSameNumerics) {
  const std::string dir = testing::scratch_dir("compare_runs");
  for (const char* f : {"/a.csv", "/b.csv"}) {
    std::filesystem::remove(dir + f);
    const auto r = run_cli("run --algo softmax,gated --variant retention --impl ref,emul --T 17 --D 8 --budget-ms 2 --out " + dir + f);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const auto r = run_cli("compare " + dir + "/a.csv " + dir + "/b.csv --no-time");
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_EQ(r.out.find("error growth"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace attnbench
