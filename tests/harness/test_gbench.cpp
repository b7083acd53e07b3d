// attnbench-gbench: names, the JSON it writes (times, counters, verdicts), listing, filters,
// repetitions, bad input, and that a point failing its check is an error, never a time.
#include <gtest/gtest.h>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "common/cli.h"
#include "core/algos.h"
#include "csv.h"
#include "suite.h"
#include "names.h"
#include "points.h"

namespace attnbench {
namespace {

// ---- a small strict JSON reader (what Google Benchmark's JSON must parse as) ----

struct Json {
  enum class Type { null, boolean, number, string, array, object } type = Type::null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> items;         // array elements, or object values
  std::vector<std::string> keys;   // object keys, parallel to items

  bool has(const std::string& k) const { return std::find(keys.begin(), keys.end(), k) != keys.end(); }
  const Json& operator[](const std::string& k) const {
    const auto it = std::find(keys.begin(), keys.end(), k);
    if (it == keys.end()) throw std::runtime_error("no key " + k);
    return items[static_cast<std::size_t>(it - keys.begin())];
  }
};

class JsonReader {
 public:
  explicit JsonReader(const std::string& s) : s_(s) {}
  Json document() {
    Json v = value();
    space();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("JSON: " + what + " at offset " + std::to_string(i_));
  }
  void space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    space();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  bool word(const char* w) {
    const std::size_t n = std::char_traits<char>::length(w);
    if (s_.compare(i_, n, w) != 0) return false;
    i_ += n;
    return true;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c == '\\') {
        if (i_ >= s_.size()) fail("bad escape");
        c = s_[i_++];
        switch (c) {
          case '"': case '\\': case '/': out += c; break;
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'u':
            if (i_ + 4 > s_.size()) fail("bad \\u escape");
            out += '?';
            i_ += 4;
            break;
          default: fail("bad escape");
        }
      } else {
        out += c;
      }
    }
    expect('"');
    return out;
  }
  Json value() {
    space();
    if (i_ >= s_.size()) fail("unexpected end");
    Json v;
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.type = Json::Type::object;
      if (eat('}')) return v;
      do {
        space();
        v.keys.push_back(string());
        expect(':');
        v.items.push_back(value());
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      ++i_;
      v.type = Json::Type::array;
      if (eat(']')) return v;
      do v.items.push_back(value());
      while (eat(','));
      expect(']');
    } else if (c == '"') {
      v.type = Json::Type::string;
      v.str = string();
    } else if (word("true")) {
      v.type = Json::Type::boolean;
      v.b = true;
    } else if (word("false")) {
      v.type = Json::Type::boolean;
    } else if (word("null")) {
      v.type = Json::Type::null;
    } else if (word("NaN") || word("-NaN")) {
      // Not strict JSON, but what Google Benchmark writes for a NaN aggregate (the cv of a counter
      // that is 0 in every repetition) and what Python's json, hence compare.py, reads.
      v.type = Json::Type::number;
      v.num = NAN;
    } else if (word("Infinity")) {
      v.type = Json::Type::number;
      v.num = INFINITY;
    } else if (word("-Infinity")) {
      v.type = Json::Type::number;
      v.num = -INFINITY;
    } else {
      // Otherwise JSON numbers only: no nan, inf, hex, leading '+'.
      const std::size_t start = i_;
      if (s_[i_] == '-') ++i_;
      if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) fail("bad value");
      while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || std::strchr(".eE+-", s_[i_]))) ++i_;
      v.type = Json::Type::number;
      v.num = std::stod(s_.substr(start, i_ - start));
    }
    return v;
  }

  const std::string& s_;
  std::size_t i_ = 0;
};

Json parse_json(const std::string& s) { return JsonReader(s).document(); }

// Every number of a benchmark row is finite (attnbench never sets a NaN counter).
void expect_all_finite(const Json& row) {
  for (std::size_t i = 0; i < row.keys.size(); ++i) {
    if (row.items[i].type == Json::Type::number) {
      EXPECT_TRUE(std::isfinite(row.items[i].num)) << row.keys[i];
    }
  }
}

TEST(GbenchJson, ReaderIsStrict) {
  const Json j = parse_json(R"({"a": [1, -2.5e-3, true, null, "x\"y"], "b": {}})");
  EXPECT_EQ(j["a"].items.size(), 5u);
  EXPECT_DOUBLE_EQ(j["a"].items[1].num, -2.5e-3);
  EXPECT_TRUE(j["a"].items[2].b);
  EXPECT_EQ(j["a"].items[4].str, "x\"y");
  EXPECT_TRUE(std::isnan(parse_json("[NaN]").items[0].num));
  EXPECT_EQ(parse_json("[-Infinity]").items[0].num, -INFINITY);
  for (const char* bad : {"{\"a\": nan}", "{\"a\": 1,}", "[1] x", "{\"a\" 1}", "{\"a\": inf}"}) {
    EXPECT_THROW(parse_json(bad), std::runtime_error) << bad;
  }
}

// ---- names ----

Problem softmax_problem(int64_t B, int64_t H, int64_t Hkv, int64_t Tq, int64_t Tk, int64_t Dk, int64_t Dv, bool causal) {
  Problem p;
  p.algo = "softmax";
  p.B = B, p.H = H, p.Hkv = Hkv, p.Tq = Tq, p.Tk = Tk, p.Dk = Dk, p.Dv = Dv, p.causal = causal;
  return p;
}

TEST(GbenchNames, PlainFormOmitsWhatEqualsItsDefault) {
  const Problem p = softmax_problem(2, 16, 16, 4096, 4096, 128, 128, true);
  EXPECT_EQ(gbench::base_name(p, "tiled", Pass::fwd, Dtype::bf16), "softmax/tiled/fwd/bf16/B2/H16/T4096/D128/causal");
}

TEST(GbenchNames, GqaRectangularAndSplitHeadDims) {
  const Problem p = softmax_problem(1, 8, 2, 63, 1013, 64, 32, false);
  EXPECT_EQ(gbench::base_name(p, "ref", Pass::bwd, Dtype::f32),
            "softmax/ref/bwd/fp32/B1/H8/Hkv2/Tq63/Tk1013/Dk64/Dv32/noncausal");
}

TEST(GbenchNames, VariantAndNoMaskWhereTheMaskIsFixed) {
  Problem g;
  g.algo = "gated", g.variant = "rwkv6", g.B = 1, g.H = g.Hkv = 2, g.Tq = g.Tk = 512, g.Dk = g.Dv = 64, g.causal = true;
  EXPECT_EQ(gbench::base_name(g, "emul", Pass::fwd, Dtype::bf16), "gated/rwkv6/emul/fwd/bf16/B1/H2/T512/D64");
  Problem b = g;
  b.algo = "bidir", b.variant = "norm", b.causal = false;
  EXPECT_EQ(gbench::base_name(b, "ref", Pass::fwd, Dtype::f16),
            "bidir/norm/ref/fwd/fp16/B1/H2/T512/D64");
}

TEST(GbenchNames, OnlyParamsThatVaryBetweenOtherwiseEqualPoints) {
  // Linear with the normalizer on and off: normalize must tell the two apart. The default scale
  // of softmax follows Dk, so two head dims do not make scale a "varying" parameter.
  std::vector<gbench::NamedProblem> pts;
  Problem lin;
  lin.algo = "linear", lin.B = 1, lin.H = lin.Hkv = 2, lin.Tq = lin.Tk = 64, lin.Dk = lin.Dv = 32, lin.causal = true;
  for (int norm : {0, 1}) {
    lin.params.normalize = norm;
    pts.push_back({lin, "ref", Pass::fwd, Dtype::bf16});
  }
  for (int64_t d : {64, 128}) pts.push_back({softmax_problem(1, 2, 2, 64, 64, d, d, true), "ref", Pass::fwd, Dtype::bf16});
  const gbench::VaryingParams v = gbench::varying_params(pts);
  EXPECT_EQ(v.count("softmax"), 0u);
  ASSERT_EQ(v.count("linear"), 1u);
  EXPECT_EQ(gbench::point_name(pts[0], v), "linear/ref/fwd/bf16/B1/H2/T64/D32/normalize:0");
  EXPECT_EQ(gbench::point_name(pts[1], v), "linear/ref/fwd/bf16/B1/H2/T64/D32/normalize:1");
  EXPECT_EQ(gbench::point_name(pts[2], v), "softmax/ref/fwd/bf16/B1/H2/T64/D64/causal");
}

// ---- the binary ----

std::string gbench_bin() { return testing::env_or("ATTNBENCH_GBENCH_BIN", ATTNBENCH_GBENCH_BIN_DEFAULT); }

testing::CliResult run_gbench(const std::string& args, const std::string& env = "") {
  const std::string dir = testing::scratch_dir("gbench");
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  const int status = std::system((env + gbench_bin() + " " + args + " >" + out + " 2>" + err).c_str());
  testing::CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = testing::read_file(out);
  r.err = testing::read_file(err);
  return r;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) {
    if (!l.empty()) out.push_back(l);
  }
  return out;
}

// The tiny CPU sweep of these tests: softmax (causal and not) and linear, ref and emul, fwd.
const std::string kTinySweep =
    "--algo softmax,linear --impl ref,emul --dtype bf16 --B 1 --H 2 --T 16 --D 16 --pass fwd --causal both "
    "--benchmark_min_time=0.002";

TEST(GbenchCli, ListTestsListsEveryPointOfTheSweep) {
  const auto r = run_gbench("--algo softmax,linear --impl ref,emul --dtype fp32 --T 8,16 --D 16 --pass fwd,bwd "
                            "--causal both --no-ref-bench --benchmark_list_tests");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto names = lines(r.out);
  // softmax: 2 T x 2 masks x 2 passes x 2 impls; linear: 2 T x 2 passes x 2 impls.
  EXPECT_EQ(names.size(), 24u) << r.out;
  for (const char* n : {"softmax/ref/fwd/fp32/B1/H2/T8/D16/causal/real_time",
                        "softmax/emul/bwd/fp32/B1/H2/T16/D16/noncausal/real_time",
                        "linear/ref/bwd/fp32/B1/H2/T16/D16/real_time"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n << "\n" << r.out;
  }
}

TEST(GbenchCli, ListTestsIncludesTheReferenceMicrobenchmarksOfTheSweepsAlgorithms) {
  const auto r = run_gbench("--algo linear --impl ref --T 8 --benchmark_list_tests");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto names = lines(r.out);
  // 2 sweep points (fwd, bwd) + ref and emul x 2 passes x 2 shapes, linear only.
  EXPECT_EQ(names.size(), 2u + 8u) << r.out;
  for (const char* n : {"BM_ref_linear_fwd/B1/H4/T256/D64/real_time", "BM_emul_linear_bwd/bf16/B1/H2/T1024/D64/real_time"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n << "\n" << r.out;
  }
  EXPECT_EQ(r.out.find("softmax"), std::string::npos) << r.out;
}

TEST(GbenchCli, JsonHasRealTimesCountersAndVerdicts) {
  // With the GPU hidden (as on CI) the context says so; the points are CPU ones either way.
  const auto r = run_gbench(kTinySweep + " --no-ref-bench --benchmark_format=json", testing::kNoGpuEnv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = parse_json(r.out);
  EXPECT_FALSE(j["context"]["attnbench_commit"].str.empty());
  EXPECT_NE(j["context"]["attnbench_gpu"].str.find("none usable"), std::string::npos);
  const Json& bms = j["benchmarks"];
  ASSERT_EQ(bms.items.size(), 6u) << r.out;  // softmax: 2 masks x 2 impls; linear: 2 impls
  int softmax = 0, linear = 0;
  for (const Json& b : bms.items) {
    const std::string name = b["name"].str;
    SCOPED_TRACE(name);
    EXPECT_FALSE(b.has("error_occurred")) << b["error_message"].str;
    expect_all_finite(b);
    EXPECT_EQ(b["run_type"].str, "iteration");
    EXPECT_EQ(b["time_unit"].str, "ms");
    EXPECT_GE(b["iterations"].num, 1);
    EXPECT_GT(b["real_time"].num, 0);
    EXPECT_EQ(name.substr(name.size() - 10), "/real_time");  // CPU points: real time
    EXPECT_GT(b["ms_median"].num, 0);
    EXPECT_GE(b["noise"].num, 0);
    EXPECT_EQ(b["pass"].num, 1);
    EXPECT_EQ(b["label"].str.rfind("pass (oracle ref;", 0), 0u) << b["label"].str;
    EXPECT_GE(b["err"].num, 0);
    EXPECT_GT(b["err_floor"].num, 0);
    EXPECT_GE(b["rel_rms"].num, 0);
    if (name.rfind("softmax/", 0) == 0) {
      ++softmax;
      // TFLOP/s = model FLOPs / time per iteration (ms).
      Problem p = softmax_problem(1, 2, 2, 16, 16, 16, 16, name.find("/causal") != std::string::npos);
      const double expect = model_flops(p, Pass::fwd) / (b["real_time"].num * 1e-3) / 1e12;
      EXPECT_NEAR(b["TFLOP/s"].num, expect, 1e-6 * expect);
      EXPECT_FALSE(b.has("GB/s"));
    } else {
      ++linear;
      EXPECT_EQ(name.rfind("linear/", 0), 0u);
      EXPECT_GT(b["GB/s"].num, 0);
      EXPECT_GT(b["floor_ratio"].num, 0);
      EXPECT_FALSE(b.has("TFLOP/s"));
      // time / floor time = (bytes / time) / (bytes / floor time) = copy bandwidth / GB/s.
      EXPECT_GT(b["floor_ratio"].num, 1.0) << "a CPU reference beating memcpy bandwidth";
    }
  }
  EXPECT_EQ(softmax, 4);
  EXPECT_EQ(linear, 2);
}

// Also: --budget-ms becomes the global --benchmark_min_time, so no "/min_time:" enters the names.
TEST(GbenchCli, FilterSelectsByTheNamesAxes) {
  const auto r = run_gbench("--algo softmax,linear --impl ref,emul --dtype bf16 --T 16 --D 16 --pass fwd --causal both "
                            "--budget-ms 2 --benchmark_filter='^softmax/emul/.*/causal' --benchmark_format=json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = parse_json(r.out);
  ASSERT_EQ(j["benchmarks"].items.size(), 1u) << r.out;
  EXPECT_EQ(j["benchmarks"].items[0]["name"].str, "softmax/emul/fwd/bf16/B1/H2/T16/D16/causal/real_time");
}

TEST(GbenchCli, RepetitionsGiveAggregatesAndOneVerdictPerPoint) {
  const auto r = run_gbench(kTinySweep + " --benchmark_filter='^linear/ref/' --benchmark_repetitions=3 "
                                         "--benchmark_format=json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = parse_json(r.out);
  int iterations = 0;
  std::vector<std::string> aggregates;
  for (const Json& b : j["benchmarks"].items) {
    if (b["run_type"].str == "iteration") ++iterations;
    else aggregates.push_back(b["aggregate_name"].str);
  }
  EXPECT_EQ(iterations, 3);
  for (const char* a : {"mean", "median", "stddev"}) {
    EXPECT_NE(std::find(aggregates.begin(), aggregates.end(), a), aggregates.end()) << a;
  }
  EXPECT_NE(r.err.find("pass 1, unchecked 0, fail 0, skipped 0, error 0"), std::string::npos) << r.err;
}

// Through the binary: with k = 1e-9 the rule leaves only the floor (about one fp32 ulp of the
// largest |o|), which fp32 accumulation over 64 keys in the emulation exceeds (by ~10x here); the
// point is an error entry with no time, and the process exits 1.
TEST(GbenchCli, FailingCheckIsAnErrorEntryAndExit1) {
  const auto r = run_gbench("--algo softmax --impl emul --dtype fp32 --T 64 --D 64 --pass fwd --causal no --k 1e-9 "
                            "--no-ref-bench --benchmark_min_time=0.002 --benchmark_format=json");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const Json j = parse_json(r.out);
  ASSERT_EQ(j["benchmarks"].items.size(), 1u) << r.out;
  const Json& b = j["benchmarks"].items[0];
  ASSERT_TRUE(b.has("error_occurred")) << r.out;
  EXPECT_TRUE(b["error_occurred"].b);
  EXPECT_EQ(b["error_message"].str.rfind("check failed: o: err ", 0), 0u) << b["error_message"].str;
  EXPECT_EQ(b["iterations"].num, 0);
  EXPECT_EQ(b["real_time"].num, 0);
  EXPECT_FALSE(b.has("TFLOP/s"));
  EXPECT_NE(r.err.find("pass 0, unchecked 0, fail 1, skipped 0, error 0"), std::string::npos) << r.err;
}

// The same point through `attnbench run` and attnbench-gbench: the same inputs (seed rule), so the
// same check numbers.
TEST(GbenchCli, SameInputsAndCheckAsAttnbenchRun) {
  const std::string csv = testing::scratch_dir("gbench_vs_run") + "/results.csv";
  const std::string point = "--algo softmax --impl emul --dtype bf16 --B 1 --H 2 --T 24 --D 16 --pass fwd --causal yes";
  const auto run = testing::run_cli("run " + point + " --out " + csv);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const CsvTable t = read_csv(csv);
  ASSERT_EQ(t.rows.size(), 1u);
  const double err_run = std::stod(t.rows[0].at("err")), rel_rms_run = std::stod(t.rows[0].at("rel_rms"));
  const auto r = run_gbench(point + " --benchmark_min_time=0.002 --no-ref-bench --benchmark_format=json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = parse_json(r.out);
  ASSERT_EQ(j["benchmarks"].items.size(), 1u) << r.out;
  const Json& b = j["benchmarks"].items[0];
  EXPECT_GT(err_run, 0);
  EXPECT_NEAR(b["err"].num, err_run, 1e-5 * err_run);  // the CSV prints 6 significant digits
  EXPECT_NEAR(b["rel_rms"].num, rel_rms_run, 1e-5 * rel_rms_run);
}

TEST(GbenchCli, BadInputIsOneLineNamingTheParameterAndExit2) {
  for (const auto& [args, name] : std::vector<std::pair<std::string, std::string>>{
           {"--algo softmax --T 5:1", "--T"},
           {"--algo nosuch", "--algo"},
           {"--algo softmax --out x.csv", "--out"},
           {"--suite ci --T 8", "--suite"},
           {"--algo softmax --benchmark_filterx=a", "benchmark_filterx"}}) {
    const auto r = run_gbench(args + " --benchmark_list_tests");
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(name), std::string::npos) << args << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << args << "\n" << r.out;
  }
}

// ---- suites ----

std::set<std::string> listed(const std::string& args) {
  const auto r = run_gbench(args + " --no-ref-bench --benchmark_list_tests");
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
  const auto l = lines(r.out);
  return {l.begin(), l.end()};
}

// A suite lists exactly the points of its sweep lines, each line run as a command line (the
// names can differ only where a parameter varies between lines; ci's lines differ in shape).
TEST(GbenchSuite, ListsThePointsOfEverySweepLine) {
  const Suite s = load_suite("ci");
  std::set<std::string> expect;
  for (const auto& [line, options] : s.sweeps) {
    const std::set<std::string> one = listed(options);
    EXPECT_FALSE(one.empty()) << "line " << line;
    expect.insert(one.begin(), one.end());
  }
  const std::set<std::string> got = listed("--suite ci");
  EXPECT_EQ(got.size(), expect.size());
  EXPECT_TRUE(got == expect);
  EXPECT_TRUE(got.count("gated/rwkv6/emul/bwd/fp32/B1/H2/T63/Dk16/Dv24/real_time"));
}

// An implementation a suite line names that this build lacks is a skipped point (refused aloud),
// not an error and not a missing row.
TEST(GbenchSuite, AnImplementationThisBuildLacksIsSkippedWithTheReason) {
  std::string absent;
  for (const auto& n : suite_impl_names()) {
    bool built = false;
    for (const Impl& i : registry().all()) built = built || i.name == n;
    if (!built) {
      absent = n;
      break;
    }
  }
  if (absent.empty()) GTEST_SKIP() << "every implementation a suite may name is built here";
  const std::string path = testing::scratch_dir("gbench_suite") + "/gbtiny.suite";
  {
    std::ofstream f(path);
    f << "name: gbtiny\ndescription: a tiny suite\nsweep: --algo softmax --impl ref," << absent
      << " --dtype bf16 --T 8 --D 16 --pass fwd --causal yes\n";
  }
  const auto r = run_gbench("--suite " + path + " --no-ref-bench --benchmark_min_time=0.002 --benchmark_format=json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = parse_json(r.out);
  ASSERT_EQ(j["benchmarks"].items.size(), 2u) << r.out;
  const Json& ref = j["benchmarks"].items[0];
  const Json& missing = j["benchmarks"].items[1];
  EXPECT_EQ(ref["name"].str, "softmax/ref/fwd/bf16/B1/H2/T8/D16/causal/real_time");
  EXPECT_EQ(ref["pass"].num, 1);
  EXPECT_EQ(missing["name"].str, "softmax/" + absent + "/fwd/bf16/B1/H2/T8/D16/causal/real_time");
  EXPECT_EQ(missing["error_message"].str, "skipped: implementation '" + absent + "' is not in this build");
  EXPECT_NE(r.err.find("pass 1, unchecked 0, fail 0, skipped 1, error 0"), std::string::npos) << r.err;
}

// ---- in process: a point that fails its check is an error with no time ----

// softmax's fp64 reference with 0.1 added to o: a wrong implementation.
class Wrong final : public Prepared {
 public:
  explicit Wrong(std::unique_ptr<Prepared> inner) : inner_(std::move(inner)) {}
  void run() override { inner_->run(); }
  void poison_outputs() override { inner_->poison_outputs(); }
  Tensors outputs() override {
    Tensors t = inner_->outputs();
    for (double& x : t.at("o").data) x += 0.1;
    return t;
  }

 private:
  std::unique_ptr<Prepared> inner_;
};

Impl wrong_softmax() {
  const Impl* ref = registry().find("softmax", "ref");
  Impl w = *ref;
  w.name = "wrong";
  w.prepare = [ref](const Problem& p, Pass pass, Dtype dt, const Tensors& in, const PrepareOptions& o) {
    return std::unique_ptr<Prepared>(new Wrong(ref->prepare(p, pass, dt, in, o)));
  };
  return w;
}

Json run_in_process() {
  static bool initialized = [] {
    static char arg0[] = "gbench_tests", arg1[] = "--benchmark_min_time=0.002";
    static char* argv[] = {arg0, arg1, nullptr};
    int argc = 2;
    benchmark::Initialize(&argc, argv);
    return argc == 1;
  }();
  EXPECT_TRUE(initialized);
  benchmark::JSONReporter reporter;
  std::ostringstream out, err;
  reporter.SetOutputStream(&out);
  reporter.SetErrorStream(&err);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::ClearRegisteredBenchmarks();
  gbench::release_prepared();
  return parse_json(out.str());
}

TEST(GbenchPoints, FailingCheckIsAnErrorNeverATime) {
  static const Impl wrong = wrong_softmax();
  gbench::Point good;
  good.problem = softmax_problem(1, 2, 2, 16, 16, 16, 16, true);
  good.dtype = Dtype::bf16;
  good.impl = registry().find("softmax", "ref");
  good.impl_name = "ref";
  gbench::Point bad = good, refused = good, absent = good;
  good.name = "good";
  bad.impl = &wrong;
  bad.impl_name = "wrong";
  bad.name = "bad";
  refused.problem.Tq = refused.problem.Tk = 1 << 22;  // beyond the CPU cost limit: refused, nothing allocated
  refused.name = "refused";
  absent.impl = nullptr;
  absent.impl_name = "tiled";
  absent.name = "absent";
  const gbench::Tally before = gbench::tally();
  gbench::register_points({good, bad, refused, absent});
  const Json j = run_in_process();
  const gbench::Tally after = gbench::tally();

  std::map<std::string, const Json*> by_name;
  for (const Json& b : j["benchmarks"].items) by_name[b["name"].str.substr(0, b["name"].str.find('/'))] = &b;
  ASSERT_EQ(by_name.size(), 4u);
  const Json& g = *by_name.at("good");
  EXPECT_FALSE(g.has("error_occurred"));
  EXPECT_GT(g["real_time"].num, 0);
  EXPECT_EQ(g["pass"].num, 1);

  const Json& b = *by_name.at("bad");
  ASSERT_TRUE(b.has("error_occurred"));
  EXPECT_TRUE(b["error_occurred"].b);
  EXPECT_EQ(b["error_message"].str.rfind("check failed: o", 0), 0u) << b["error_message"].str;
  EXPECT_EQ(b["iterations"].num, 0);
  EXPECT_EQ(b["real_time"].num, 0);
  EXPECT_FALSE(b.has("TFLOP/s"));
  EXPECT_FALSE(b.has("pass"));

  const Json& s = *by_name.at("refused");
  EXPECT_TRUE(s["error_occurred"].b);
  EXPECT_EQ(s["error_message"].str.rfind("skipped: ", 0), 0u) << s["error_message"].str;
  const Json& a = *by_name.at("absent");
  EXPECT_EQ(a["error_message"].str, "skipped: implementation 'tiled' is not in this build");

  EXPECT_EQ(after.pass - before.pass, 1);
  EXPECT_EQ(after.fail - before.fail, 1);
  EXPECT_EQ(after.skipped - before.skipped, 2);
  EXPECT_EQ(after.error - before.error, 0);
}

}  // namespace
}  // namespace attnbench
