// Bad input (DESIGN.md): every entry of the table below is refused with ONE line on stderr that
// names the parameter, exit status 2, nothing on stdout, and no file in the test's folder changed
// (in particular an existing results CSV, given as --out to every `run` and `suite` entry).
//
// Placeholders: {dir} is a scratch folder holding the fixtures made in SetUpTestSuite; {out} is
// the results CSV that must survive. A `run` or `suite` entry without --out gets `--out {out}`.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "common/cli.h"

namespace attnbench {
namespace {

namespace fs = std::filesystem;
using testing::run_cli;

struct BadInput {
  const char* args;
  const char* names;  // the parameter the one-line error must name
};

void PrintTo(const BadInput& b, std::ostream* os) { *os << b.args; }

const BadInput kBadInputs[] = {
    // sizes: zero, negative, huge, not integers
    {"run --algo softmax --B 0", "--B"},
    {"run --algo softmax --B -3", "--B"},
    {"run --algo softmax --H 0", "--H"},
    {"run --algo softmax --T 2199023255552", "--T"},                    // 2^41 > the 2^40 limit
    {"run --algo softmax --B 1000000 --H 1000000 --T 100000", "--B"},   // 6.4e18 elements
    {"run --algo softmax --D 99999999999999999999", "--D"},             // beyond int64
    {"run --algo softmax --D 0", "--D"},
    {"run --algo softmax --Dk 64.5", "--Dk"},
    {"run --algo softmax --Dv abc", "--Dv"},
    {"run --algo softmax --T ''", "--T"},
    // heads
    {"run --algo softmax --H 6 --Hkv 4", "--Hkv"},
    {"run --algo softmax --H 4 --Hkv 8", "--Hkv"},
    // unknown names
    {"run --algo nosuch", "--algo"},
    {"run --algo softmax,,linear", "--algo"},
    {"run --algo softmax --impl nosuch", "--impl"},
    {"run --algo gated --variant nosuch", "--variant"},
    {"run --algo softmax --variant scalar", "--variant"},
    {"run --algo softmax --dtype int8", "--dtype"},
    {"run --algo softmax --pass sideways", "--pass"},
    {"run --algo softmax --causal maybe", "--causal"},
    {"run --algo linear --normalize sometimes", "--normalize"},
    {"run --algo bidir --feature-map tanh", "--feature-map"},
    {"run --algo softmax --oracle magic", "--oracle"},
    {"run --algo softmax --nosuchflag", "nosuchflag"},
    // malformed ranges
    {"run --algo softmax --T 5:1", "--T"},
    {"run --algo softmax --T 1:2:3:4", "--T"},
    {"run --algo softmax --T 16:64:x1", "--T"},
    {"run --algo softmax --T 16:64:y2", "--T"},
    {"run --algo softmax --T 1:100000:+1", "--T"},
    {"run --algo softmax --T 64,,128", "--T"},
    {"run --algo softmax --B 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1 --H 1:4096:+1 --T 1:4096:+1", "axis values"},
    // malformed derived axes
    {"run --algo softmax --B 32768/T --T 65536", "--B"},
    {"run --algo softmax --B 32768/Q", "--B"},
    {"run --algo softmax --Tq Tk --Tk Tq", "--Tq"},
    {"run --algo softmax --H H", "--H"},
    {"run --algo softmax --D T/0", "--D"},
    {"run --algo softmax --Dk 'D*1099511627776' --D 1099511627776", "--Dk"},  // overflows int64
    {"run --algo linear --Tq 64 --Tk 128", "--Tk"},
    // parameters and timing
    {"run --algo softmax --k -1", "--k"},
    {"run --algo softmax --k nan", "--k"},
    {"run --algo softmax --scale abc", "--scale"},
    {"run --algo softmax --scale -1", "--scale"},
    {"run --algo piecewise --window 1.5", "--window"},
    {"run --algo hyperbolic --curvature 0", "--curvature"},
    {"run --algo hyperbolic --beta inf", "--beta"},
    {"run --algo linear --eps 0", "--eps"},
    {"run --algo softmax --budget-ms 0", "--budget-ms"},
    {"run --algo softmax --warmup -1", "--warmup"},
    {"run --algo softmax --min-samples 0", "--min-samples"},
    {"run --algo softmax --max-samples 2 --min-samples 5", "--max-samples"},
    {"run --algo softmax --seed -1", "--seed"},
    {"run --algo softmax --row-timeout -1", "--row-timeout"},
    {"run --algo softmax --inject-nonfinite zz", "--inject-nonfinite"},
    // unwritable or unreadable paths
    {"run --algo softmax --out /proc/attnbench/nope.csv", "--out"},
    {"run --algo softmax --out /dev/null/x.csv", "--out"},
    {"run --algo softmax --out {dir}/adir", "--out"},
    {"run --algo softmax --out {dir}/other_header.csv", "--out"},
    {"run --algo softmax --resume --out {dir}/torn.csv", "--resume"},
    {"run --algo softmax --resume --out {dir}/adir", "--out"},
    // malformed suites
    {"suite nosuch", "suite"},
    {"suite {dir}/nonexistent.suite", "suite"},
    {"suite {dir}/unknown_key.suite", "colour"},
    {"suite {dir}/bad_range.suite", "--T"},
    {"suite {dir}/bad_flag.suite", "bogus"},
    {"suite {dir}/no_sweep.suite", "sweep"},
    {"suite {dir}/wrong_name.suite", "name"},
    {"suite {dir}/out_in_sweep.suite", "--out"},
    {"suite ci --from {out} --resume", "--from"},            // --from runs nothing
    {"suite ci --resume --out {dir}/torn.csv", "--resume"},  // ends in a partial row
    // compare on missing, foreign and mismatched files
    {"compare {dir}/nonexistent.csv {out}", "BASE"},
    {"compare {out} {dir}/other_header.csv", "NEW"},
    {"compare {out} {dir}/linear.csv", "NEW"},      // no row key in common
    {"compare {out} {dir}/truncated.csv", "NEW"},   // a row with too few fields
    {"compare {out} {dir}/adir", "NEW"},
};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files[e.path().string()] = testing::read_file(e.path().string());
  }
  return files;
}

class BadInputTable : public ::testing::TestWithParam<BadInput> {
 public:
  static std::string dir() { return testing::scratch_dir("bad_input"); }
  static std::string out() { return dir() + "/results.csv"; }

  static void SetUpTestSuite() {
    unsetenv("ATTNBENCH_TEST_IMPLS");
    const std::string d = dir();
    if (fs::exists(out())) return;  // made by an earlier test of this process
    fs::create_directories(d + "/adir");
    auto ok = run_cli("run --algo softmax --impl ref --T 8 --pass fwd --causal no --no-time --out " + out());
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    ok = run_cli("run --algo linear --impl ref --T 8 --pass fwd --no-time --out " + d + "/linear.csv");
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    const std::string good = testing::read_file(out());
    std::ofstream(d + "/other_header.csv") << "a,b\n1,2\n";
    std::ofstream(d + "/torn.csv") << good << "softmax,,ref,fwd";  // a partial last row
    std::ofstream(d + "/truncated.csv") << good.substr(0, good.find('\n') + 1) << "softmax,,ref,fwd,bf16\n";
    auto suite = [&d](const std::string& name, const std::string& body) {
      std::ofstream(d + "/" + name + ".suite") << body;
    };
    const std::string head = "description: a malformed suite\n";
    suite("unknown_key", "name: unknown_key\n" + head + "colour: red\nsweep: --algo softmax --T 8\n");
    suite("bad_range", "name: bad_range\n" + head + "sweep: --algo softmax --T 5:1\n");
    suite("bad_flag", "name: bad_flag\n" + head + "sweep: --algo softmax --bogus 3\n");
    suite("no_sweep", "name: no_sweep\n" + head);
    suite("wrong_name", "name: other_name\n" + head + "sweep: --algo softmax --T 8\n");
    suite("out_in_sweep", "name: out_in_sweep\n" + head + "sweep: --algo softmax --T 8 --out x.csv\n");
  }
};

std::string entry_name(const ::testing::TestParamInfo<BadInput>& info) {
  std::string n;
  for (const char* c = info.param.names; *c; ++c) {
    if (std::isalnum(static_cast<unsigned char>(*c))) n += *c;
  }
  return n + "_" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(Issue9, BadInputTable, ::testing::ValuesIn(kBadInputs), entry_name);

TEST_P(BadInputTable, OneLineNamingTheParameterExit2NoFileTouched) {
  std::string args = GetParam().args;
  const std::string cmd = args.substr(0, args.find(' '));
  if ((cmd == "run" || cmd == "suite") && args.find("--out") == std::string::npos) args += " --out {out}";
  args = replace_all(replace_all(args, "{dir}", dir()), "{out}", out());
  const auto before = snapshot(dir());
  ASSERT_FALSE(before.at(out()).empty());
  const auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
  EXPECT_EQ(testing::count_lines(r.err), 1) << args << "\n" << r.err;
  EXPECT_NE(r.err.find(GetParam().names), std::string::npos) << args << "\n" << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(snapshot(dir()), before) << args;
}

TEST(BadInputTableSize, AtLeastThirtyDistinctEntries) {
  std::set<std::string> distinct;
  for (const auto& b : kBadInputs) distinct.insert(b.args);
  EXPECT_EQ(distinct.size(), std::size(kBadInputs));
  EXPECT_GE(distinct.size(), 30u);
}

}  // namespace
}  // namespace attnbench
