// The CLI end to end: bad input gets one line naming the parameter and exit 2 without touching an
// existing results file; a small sweep writes every column with passing rows; plot.py draws it.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>

#include "common/cli.h"
#include "csv.h"

namespace attnbench {
namespace {

using testing::run_cli;

struct BadInput {
  const char* args;
  const char* names;  // the parameter the one-line error must name
};

void PrintTo(const BadInput& b, std::ostream* os) { *os << b.args; }

class CliBadInput : public ::testing::TestWithParam<BadInput> {};

std::string bad_input_name(const ::testing::TestParamInfo<BadInput>& info) {
  std::string n;
  for (const char* c = info.param.names; *c; ++c) {
    if (std::isalnum(static_cast<unsigned char>(*c))) n += *c;
  }
  return n + "_" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(
    Issue2, CliBadInput,
    ::testing::Values(BadInput{"run --algo softmax --B 0", "--B"}, BadInput{"run --algo nosuch", "--algo"},
                      BadInput{"run --algo softmax --T 5:1", "--T"}, BadInput{"run --algo softmax --D 0", "--D"},
                      BadInput{"run --algo softmax --dtype int8", "--dtype"},
                      BadInput{"run --algo softmax --out /proc/attnbench/nope.csv", "--out"},
                      BadInput{"run --algo softmax --H 6 --Hkv 4", "--Hkv"},
                      BadInput{"run --algo softmax --pass sideways", "--pass"},
                      BadInput{"run --algo softmax --causal maybe", "--causal"},
                      BadInput{"run --algo softmax --impl nosuch", "--impl"},
                      BadInput{"run --algo softmax --B 32768/T --T 65536", "--B"},
                      BadInput{"run --algo softmax --k -1", "--k"},
                      BadInput{"run --algo softmax --scale abc", "--scale"},
                      BadInput{"run --algo softmax --budget-ms 0", "--budget-ms"},
                      BadInput{"run --algo softmax --nosuchflag", "nosuchflag"}),
    bad_input_name);

TEST_P(CliBadInput, OneLineNamingTheParameterAndExit2) {
  const BadInput b = GetParam();
  const auto r = run_cli(b.args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(b.names), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(Cli, BadInputLeavesAnExistingCsvUntouched) {
  const std::string path = testing::scratch_dir("keep") + "/results.csv";
  auto ok = run_cli("run --algo softmax --impl ref --T 8 --pass fwd --causal no --out " + path);
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const std::string before = testing::read_file(path);
  const auto bad = run_cli("run --algo softmax --T 5:1 --out " + path);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(testing::read_file(path), before);
  ok = run_cli("run --algo softmax --impl ref --T 9 --pass fwd --causal no --out " + path);  // appends
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(read_csv(path).rows.size(), 2u);
}

TEST(Cli, ListShowsAlgorithmsAndImplementations) {
  const auto r = run_cli("list");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"softmax", "piecewise", "hyperbolic", "linear", "based", "gated", "bidir", "softmax/ref",
                        "softmax/emul", "retention", "rwkv6", "GPU:"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
}

TEST(Cli, SweepWritesEveryColumnWithPassingRows) {
  const std::string path = testing::scratch_dir("sweep") + "/results.csv";
  std::filesystem::remove(path);
  const auto r = run_cli("run --algo softmax --impl ref,emul --dtype bf16,fp16 --T 1,63 --D 60 --Tk 100 --H 4 --Hkv 2 "
                         "--causal both --pass fwd,bwd --out " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const CsvTable t = read_csv(path);
  EXPECT_EQ(t.header, csv_columns());
  ASSERT_EQ(t.rows.size(), 2u * 2 * 2 * 2 * 2);  // impl x dtype x T x causal x pass
  EXPECT_EQ(testing::count_lines(r.err), 3 + static_cast<int>(t.rows.size()) + 1);  // header lines, rows, done
  for (const auto& row : t.rows) {
    EXPECT_EQ(row.at("status"), "pass") << row.at("impl") << " " << row.at("pass");
    for (const char* col : {"err", "err_base", "floor", "rel_rms", "k", "ms_median", "ms_p20", "ms_p80", "ms_min",
                            "noise", "samples", "tflops", "gpu", "commit", "timestamp", "oracle", "worst"}) {
      EXPECT_FALSE(row.at(col).empty()) << col;
    }
    EXPECT_EQ(row.at("Tk"), "100");
    EXPECT_EQ(row.at("Hkv"), "2");
  }
}

TEST(Cli, PlotScriptDrawsTheCsvItJustWrote) {
  std::string python;
  for (const char* cand : {"/usr/bin/python3", "python3"}) {
    if (std::system((std::string(cand) + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0) {
      python = cand;
      break;
    }
  }
  if (python.empty()) GTEST_SKIP() << "no python3 with matplotlib (README setup installs python3-matplotlib)";
  const std::string dir = testing::scratch_dir("plot");
  std::filesystem::remove_all(dir + "/plots");
  std::filesystem::remove(dir + "/results.csv");
  const auto r = run_cli("run --algo softmax --impl ref,emul --T 16:64:x2 --out " + dir + "/results.csv");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string script = testing::source_dir() + "/scripts/plot.py";
  ASSERT_EQ(std::system((python + " " + script + " " + dir + "/results.csv >/dev/null").c_str()), 0);
  for (const char* name : {"softmax_bf16_speed.png", "softmax_bf16_error.png"}) {
    const std::string png = dir + "/plots/" + name;
    ASSERT_TRUE(std::filesystem::exists(png)) << png;
    EXPECT_GT(std::filesystem::file_size(png), 20000u) << png;  // drawn, not an empty canvas
    const std::string head = testing::read_file(png).substr(0, 8);
    EXPECT_EQ(head, std::string("\x89PNG\r\n\x1a\n", 8));
  }
  // A CSV that is not ours is refused with a message, not a traceback.
  std::ofstream(dir + "/bad.csv") << "a,b\n1,2\n";
  EXPECT_NE(std::system((python + " " + script + " " + dir + "/bad.csv 2>/dev/null").c_str()), 0);
}

}  // namespace
}  // namespace attnbench
