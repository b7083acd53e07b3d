// Suites: every suite file loads and maps every published provider; `quick` is `attnbench run`'s
// default; `ci` covers every algorithm and variant on the CPU; malformed files name file and line;
// the side-by-side table's ratios and hardware factors; `attnbench suite` end to end (skipped
// points shown as skipped); plot_suite.py draws measured and published lines.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "common/cli.h"
#include "core/gpu.h"
#include "errors.h"
#include "run_options.h"
#include "suite.h"
#include "suite_report.h"
#include "sweep.h"

namespace attnbench {
namespace {

using testing::run_cli;

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// The UsageError message of load_suite on a suite file with `text`.
std::string load_error(const std::string& file, const std::string& text) {
  const std::string path = write_file(testing::scratch_dir("suite_bad") + "/" + file, text);
  try {
    load_suite(path);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Suite, EveryPublishedTableHasASuiteAndEverySuiteLoads) {
  const auto names = suite_names();
  for (const char* n : {"ci", "quick", "flagattention_v02", "fa3_h100_fwd", "fla_a100_2024", "fbila_a800_2024",
                        "minimal_rtx3060"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
  for (const auto& n : names) {
    const Suite s = load_suite(n);
    EXPECT_EQ(s.name, n);
    EXPECT_FALSE(s.description.empty()) << n;
    EXPECT_FALSE(s.sweeps.empty()) << n;
    if (s.published.empty()) continue;
    const auto pub = read_published(published_path(s));
    EXPECT_NO_THROW(check_providers(s, pub)) << n;
    for (const auto& p : pub) EXPECT_FALSE(p.source.empty()) << n << " line " << p.line;  // sources kept
  }
}

TEST(Suite, QuickIsTheDefaultSweepOfRun) {
  const Suite s = load_suite("quick");
  ASSERT_EQ(s.sweeps.size(), 1u);
  const cli::RunArgs q = cli::parse_run_line(s.sweeps[0].second, "quick"), d;
  EXPECT_EQ(std::tie(q.algo, q.variant, q.impl, q.dtype, q.pass, q.causal, q.B, q.H, q.Hkv, q.T, q.Tq, q.Tk),
            std::tie(d.algo, d.variant, d.impl, d.dtype, d.pass, d.causal, d.B, d.H, d.Hkv, d.T, d.Tq, d.Tk));
  EXPECT_EQ(std::tie(q.D, q.Dk, q.Dv, q.normalize, q.feature_map, q.scale, q.window, q.curvature, q.beta, q.eps, q.oracle),
            std::tie(d.D, d.Dk, d.Dv, d.normalize, d.feature_map, d.scale, d.window, d.curvature, d.beta, d.eps, d.oracle));
  EXPECT_EQ(std::tie(q.check, q.hot, q.lse, q.total, q.k, q.budget_ms, q.warmup, q.min_samples, q.max_samples, q.seed),
            std::tie(d.check, d.hot, d.lse, d.total, d.k, d.budget_ms, d.warmup, d.min_samples, d.max_samples, d.seed));
}

TEST(Suite, CiCoversEveryAlgorithmAndVariantOnTheCpuChecked) {
  const Suite s = load_suite("ci");
  std::set<std::string> covered;
  std::set<std::string> passes;
  for (const auto& [line, text] : s.sweeps) {
    const SweepOptions o = cli::to_sweep(cli::parse_run_line(text, "ci"));
    EXPECT_TRUE(o.check) << "line " << line;
    EXPECT_EQ(o.impls, (std::vector<std::string>{"ref", "emul"})) << "line " << line;
    for (const auto& pt : expand_points(o)) {
      covered.insert(pt.problem.algo + "/" + pt.problem.variant);
      EXPECT_LE(pt.problem.Tq * pt.problem.Tk * pt.problem.B * pt.problem.H, 200000) << "CI shapes stay small";
    }
    for (Pass p : o.passes) passes.insert(std::string(pass_name(p)));
  }
  for (const char* a : {"softmax/", "piecewise/", "hyperbolic/", "linear/", "based/", "gated/retention", "gated/lightning",
                        "gated/scalar", "gated/vector", "gated/rwkv6", "bidir/norm", "bidir/simple"}) {
    EXPECT_TRUE(covered.count(a)) << a;
  }
  EXPECT_EQ(passes, (std::set<std::string>{"fwd", "bwd"}));
}

TEST(Suite, MalformedFilesNameTheFileAndLine) {
  const std::string ok = "name: x\ndescription: d\n";
  struct Case {
    std::string text, expect;
  };
  const Case cases[] = {
      {ok + "sweep: --algo softmax --B 0\n", "x.suite:3: --B"},
      {ok + "colour: blue\nsweep: --algo softmax\n", "x.suite:3: unknown key 'colour'"},
      {ok + "no colon here\n", "x.suite:3: expected 'key: value'"},
      {ok + "sweep: --algo softmax --nosuchflag\n", "x.suite:3"},
      {ok + "sweep: --algo softmax --impl tiledd\n", "x.suite:3: --impl: 'tiledd'"},
      {ok + "sweep: --algo softmax --out y.csv\n", "x.suite:3: --out"},
      {ok + "name: x\nsweep: --algo softmax\n", "x.suite:3: 'name' given twice"},
      {"name: y\ndescription: d\nsweep: --algo softmax\n", "x.suite:1: name 'y' differs"},
      {"description: d\nsweep: --algo softmax\n", "x.suite: no 'name:' line"},
      {ok, "x.suite: no 'sweep:' line"},
      {ok + "published: results/published/nosuch.csv\n", "x.suite:3: published file"},
      {ok + "provider: FA2 = tiled\nsweep: --algo softmax\n", "x.suite:3: 'provider:' without a 'published:'"},
      {ok + "published: results/published/fa3_h100_fwd.csv\nprovider: cuDNN = sdpa_cudnn\nprovider: cuDNN = tiled\n",
       "x.suite:5: provider 'cuDNN' mapped twice"},
      {ok + "published: results/published/fa3_h100_fwd.csv\nprovider: cuDNN = cudnn\n", "x.suite:4: provider: 'cudnn'"},
  };
  for (const auto& c : cases) {
    const std::string err = load_error("x.suite", c.text);
    EXPECT_NE(err.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
  try {
    load_suite("nosuch");
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown suite 'nosuch' (known: ci, "), std::string::npos) << e.what();
  }
}

TEST(Suite, ProvidersMustMatchThePublishedFile) {
  const std::string dir = testing::scratch_dir("suite_prov");
  Suite s = load_suite(write_file(dir + "/p.suite",
                                  "name: p\ndescription: d\npublished: results/published/fa3_h100_fwd.csv\n"
                                  "provider: cuDNN = sdpa_cudnn\nprovider: Triton = -\nprovider: FlashAttention-2 = tiled\n"
                                  "sweep: --algo softmax\n"));
  const auto pub = read_published(published_path(s));
  try {
    check_providers(s, pub);
    ADD_FAILURE() << "FlashAttention-3 is not mapped";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'FlashAttention-3' has no 'provider:' line"), std::string::npos) << e.what();
  }
  s.providers.push_back({9, "FlashAttention-3", {"tiled"}});
  s.providers.push_back({10, "FlashAttention-4", {"tiled"}});
  try {
    check_providers(s, pub);
    ADD_FAILURE() << "FlashAttention-4 is not published";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("p.suite:10: provider 'FlashAttention-4' does not occur"), std::string::npos)
        << e.what();
  }
}

TEST(SuiteReport, FindsHardwareByName) {
  auto name = [](const std::string& s) {
    const HardwarePeak* h = find_hardware(s);
    return h ? h->name : std::string("none");
  };
  EXPECT_EQ(name("NVIDIA H200"), "H200 SXM");
  EXPECT_EQ(name("NVIDIA H200 NVL"), "H200 NVL");
  EXPECT_EQ(name("NVIDIA H100 80GB HBM3"), "H100 SXM5");
  EXPECT_EQ(name("H100 SXM5 80GB"), "H100 SXM5");
  EXPECT_EQ(name("NVIDIA H100 PCIe"), "H100 PCIe");
  EXPECT_EQ(name("A100 PCIe 40GB"), "A100 PCIe 40GB");
  EXPECT_EQ(name("NVIDIA A100-PCIE-40GB"), "A100 PCIe 40GB");
  EXPECT_EQ(name("NVIDIA A100-SXM4-80GB"), "A100 SXM4 80GB");
  EXPECT_EQ(name("A800 80G"), "A800 80GB");
  EXPECT_EQ(name("RTX 3060"), "RTX 3060");
  EXPECT_EQ(name("not stated (Ampere)"), "A100 (assumed)");
  EXPECT_EQ(name("cpu: AMD EPYC 7B13 (2 threads)"), "none");
}

TEST(SuiteReport, HardwareTableMatchesPublishedReadme) {
  const std::string readme = testing::read_file(testing::source_dir() + "/results/published/README.md");
  auto g = [](double v) { return std::isfinite(v) ? fmt::format("{:g}", v) : std::string("n/a"); };
  for (const auto& h : hardware_peaks()) {
    std::string words;
    for (const auto& w : h.match) words += (words.empty() ? "" : " ") + w;
    const std::string row = fmt::format("| {} | {} | {} | {} | {} | {} |", h.name, words, g(h.bandwidth_tbs),
                                        g(h.tensor_tflops), g(h.fp32_tflops), h.source);
    EXPECT_NE(readme.find(row), std::string::npos) << "README lacks: " << row;
  }
}

// A measured CSV row (the columns the table reads).
CsvRow measured(const std::string& algo, const std::string& variant, const std::string& impl, const std::string& pass,
                const std::string& dtype, int B, int H, int T, int D, const std::string& causal, const std::string& status,
                const std::string& ms, const std::string& tflops, const std::string& gpu) {
  return {{"algo", algo}, {"variant", variant}, {"impl", impl}, {"pass", pass}, {"dtype", dtype},
          {"B", std::to_string(B)}, {"H", std::to_string(H)}, {"Hkv", std::to_string(H)}, {"Tq", std::to_string(T)},
          {"Tk", std::to_string(T)}, {"Dk", std::to_string(D)}, {"Dv", std::to_string(D)}, {"causal", causal},
          {"status", status}, {"ms_median", ms}, {"tflops", tflops}, {"gpu", gpu}};
}

TEST(SuiteReport, RatiosAreNormalizedByTheRightPeak) {
  const std::string dir = testing::scratch_dir("suite_ratio");
  write_file(dir + "/pub.csv",
             "source,hardware,algo,variant,provider,pass,dtype,B,H,T,Dk,Dv,causal,metric,value,note\n"
             "paper,H100 SXM5 80GB,softmax,,FA,fwd,fp16/bf16,2,4,1024,64,64,no,tflops,300,\n"
             "paper,A100 PCIe 40GB,gated,retention,chunk,fwd+bwd,bf16,2,4,1024,64,64,yes,ms_median,10,\n"
             "paper,A100 PCIe 40GB,gated,retention,other,fwd+bwd,bf16,2,4,2048,64,64,yes,ms_median,10,\n"
             "paper,H100 SXM5 80GB,softmax,,FA,fwd,fp16/bf16,2,4,2048,64,64,no,tflops,300,\n");
  const Suite s = load_suite(write_file(dir + "/r.suite",
                                        "name: r\ndescription: d\npublished: " + dir + "/pub.csv\n"
                                        "provider: FA = tiled\nprovider: chunk = tiled\nprovider: other = -\n"
                                        "sweep: --algo softmax\n"));
  const auto pub = read_published(published_path(s));
  check_providers(s, pub);
  CsvTable m;
  m.rows = {measured("softmax", "", "tiled", "fwd", "bf16", 2, 4, 1024, 64, "no", "pass", "1", "600", "NVIDIA H200"),
            measured("gated", "retention", "tiled", "fwd", "bf16", 2, 4, 1024, 64, "yes", "pass", "2", "", "NVIDIA H200"),
            measured("gated", "retention", "tiled", "bwd", "bf16", 2, 4, 1024, 64, "yes", "pass", "3", "", "NVIDIA H200"),
            measured("softmax", "", "tiled", "fwd", "bf16", 2, 4, 2048, 64, "no", "skipped:built without CUDA", "", "", "")};
  const SuiteReport r = side_by_side(s, pub, m);
  const std::string& md = r.markdown;
  // softmax: 600 vs 300 TFLOP/s = 2x; H200 and H100 have the same tensor peak, so 2x normalized.
  EXPECT_NE(md.find("| tiled | 600 TFLOP/s | pass [bf16] | 2x | 2x |"), std::string::npos) << md;
  // retention fwd+bwd: 10 ms vs 2+3 ms = 2x; bandwidth 4.8 vs 1.555 TB/s: 2 / 3.087 = 0.648x.
  EXPECT_NE(md.find("| tiled | 5 ms | pass | 2x | 0.648x |"), std::string::npos) << md;
  EXPECT_NE(md.find("hardware factor H200 SXM / A100 PCIe 40GB, bandwidth: 3.09"), std::string::npos) << md;
  EXPECT_NE(md.find("skipped (built without CUDA) [bf16]"), std::string::npos) << md;
  EXPECT_NE(md.find("| other | 10 ms | - |  | no counterpart here |"), std::string::npos) << md;
  EXPECT_EQ(md.find("| 0 "), std::string::npos) << "a skipped point is never a zero";
  EXPECT_EQ(r.points, 4);
  EXPECT_EQ(r.measured, 2);
  EXPECT_EQ(r.skipped, 1);
  EXPECT_EQ(r.unmapped, 1);
  EXPECT_EQ(r.missing, 0);
}

TEST(SuiteCli, BadInputIsOneLineAndExit2) {
  for (const auto& [args, names] : std::vector<std::pair<std::string, std::string>>{
           {"suite nosuch", "nosuch"}, {"suite ci --impl tiledd", "--impl"}, {"suite", "name required"},
           {"suite ci --from /nonexistent/x.csv", "/nonexistent/x.csv"}, {"suite ../x", "../x"}}) {
    const auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(names), std::string::npos) << r.err;
  }
}

TEST(SuiteCli, ListNamesEverySuite) {
  const auto r = run_cli("suite --list");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& n : suite_names()) EXPECT_NE(r.out.find(n + " "), std::string::npos) << n;
}

std::string find_python_with(const char* module) {
  for (const char* cand : {"/usr/bin/python3", "python3"}) {
    if (std::system(fmt::format("{} -c 'import {}' >/dev/null 2>&1", cand, module).c_str()) == 0) return cand;
  }
  return "";
}

void expect_png(const std::string& png) {
  ASSERT_TRUE(std::filesystem::exists(png)) << png;
  EXPECT_GT(std::filesystem::file_size(png), 20000u) << png;  // drawn, not an empty canvas
  EXPECT_EQ(testing::read_file(png).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << png;
}

// A small suite with a published file: CPU implementations run and are compared; a CUDA one the
// CPU build lacks shows as skipped (on a GPU machine tiled refuses D = 16: skipped too);
// plot_suite.py draws both kinds of line.
TEST(SuiteCli, SmallSuiteRunsPrintsTheTableAndPlots) {
  const std::string dir = testing::scratch_dir("suite_small");
  std::filesystem::remove_all(dir + "/out");
  write_file(dir + "/pub.csv",
             "source,hardware,algo,variant,provider,pass,dtype,B,H,T,Dk,Dv,causal,metric,value,note\n"
             "test,H100 SXM5 80GB,softmax,,theirs,fwd,bf16,1,2,16,16,16,no,tflops,0.001,\n"
             "test,H100 SXM5 80GB,softmax,,theirs,fwd,bf16,1,2,32,16,16,no,tflops,0.002,\n"
             "test,H100 SXM5 80GB,softmax,,fast,fwd+bwd,bf16,1,2,16,16,16,no,ms,0.5,\n"
             "test,H100 SXM5 80GB,softmax,,fast,fwd+bwd,bf16,1,2,32,16,16,no,ms,0.5,\n");
  const std::string suite = write_file(dir + "/small.suite",
                                       "# a test suite\nname: small\ndescription: two softmax points\npublished: " + dir +
                                           "/pub.csv\nprovider: theirs = ref,emul\nprovider: fast = tiled\n"
                                           "sweep: --algo softmax --impl ref,emul,tiled --B 1 --H 2 --T 16,32 --D 16 "
                                           "--causal no --pass fwd,bwd --budget-ms 5\n");
  const std::string csv = dir + "/out/results.csv";
  const auto r = run_cli("suite " + suite + " --out " + csv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const CsvTable t = read_csv(csv);
  EXPECT_EQ(t.rows.size(), 3u * 2 * 2);  // impl x T x pass
  int skipped = 0;
  for (const auto& row : t.rows) {
    if (row.at("impl") == "tiled") {
      EXPECT_EQ(row.at("status").rfind("skipped:", 0), 0u) << row.at("status");
      ++skipped;
    } else {
      EXPECT_EQ(row.at("status"), "pass");
    }
  }
  EXPECT_EQ(skipped, 4);
  EXPECT_NE(r.out.find("| softmax | fwd | bf16 | 1x2x16 D=16 | no | theirs | 0.001 TFLOP/s | ref |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("n/a (cpu: "), std::string::npos) << "a CPU has no peak in the table: " << r.out;
  EXPECT_NE(r.out.find("| fast | 0.5 ms | tiled |  | skipped ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("6 rows: 4 measured, 2 skipped or failed"), std::string::npos) << r.out;
  // --from prints the same table without running.
  const auto again = run_cli("suite " + suite + " --from " + csv);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
  EXPECT_EQ(read_csv(csv).rows.size(), t.rows.size());

  const std::string python = find_python_with("matplotlib");
  if (python.empty()) GTEST_SKIP() << "no python3 with matplotlib (README setup installs python3-matplotlib)";
  const std::string script = testing::source_dir() + "/scripts/plot_suite.py";
  ASSERT_EQ(std::system((python + " " + script + " " + suite + " " + csv + " >/dev/null").c_str()), 0);
  expect_png(dir + "/out/plots/small_softmax.png");
  std::ofstream(dir + "/bad.csv") << "a,b\n1,2\n";
  EXPECT_NE(std::system((python + " " + script + " " + suite + " " + dir + "/bad.csv 2>/dev/null").c_str()), 0);
}

// A suite stopped part way (a time limit, a signal) goes on with --resume: only the rows the CSV
// lacks run, skipped rows of absent kernels are not written twice, and the table is the same.
TEST(SuiteCli, ResumeRunsOnlyTheRowsTheCsvLacks) {
  const std::string dir = testing::scratch_dir("suite_resume");
  std::filesystem::remove_all(dir + "/out");
  const std::string suite = write_file(dir + "/resumable.suite",
                                       "name: resumable\ndescription: three softmax lengths\n"
                                       "sweep: --algo softmax --impl ref,emul,tiled --B 1 --H 2 --T 16,24,32 --D 16 "
                                       "--causal no --pass fwd --budget-ms 2 --warmup 0 --min-samples 2\n");
  const std::string csv = dir + "/out/results.csv";
  const auto full = run_cli("suite " + suite + " --out " + csv);
  ASSERT_EQ(full.exit_code, 0) << full.err;
  const std::string text = testing::read_file(csv);
  const CsvTable all = read_csv(csv);
  ASSERT_EQ(all.rows.size(), 9u);  // 3 impls x 3 lengths
  // Keep the header and the first 4 rows: as if the run had stopped there.
  std::size_t cut = 0;
  for (int line = 0; line < 5; ++line) cut = text.find('\n', cut) + 1;
  std::ofstream(csv, std::ios::trunc) << text.substr(0, cut);
  const auto again = run_cli("suite " + suite + " --out " + csv + " --resume");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("4 already there"), std::string::npos) << again.err;
  const CsvTable t = read_csv(csv);
  ASSERT_EQ(t.rows.size(), 9u);
  std::set<std::string> keys;
  for (const auto& row : t.rows) keys.insert(row.at("impl") + "/" + row.at("Tq"));
  EXPECT_EQ(keys.size(), 9u) << "a row was written twice";
  // --resume needs --out and is not for --from.
  EXPECT_EQ(run_cli("suite " + suite + " --resume").exit_code, 2);
  EXPECT_EQ(run_cli("suite " + suite + " --from " + csv + " --resume").exit_code, 2);
}

// The CI suite: every row passes its check, and a second run gates clean against the first on
// numerics (what .ci can run on a machine without a GPU: suite ci, then compare --no-time).
TEST(SuiteCli, CiSuitePassesAndASecondRunComparesClean) {
  const std::string dir = testing::scratch_dir("suite_ci");
  std::filesystem::remove_all(dir + "/a");
  std::filesystem::remove_all(dir + "/b");
  for (const char* run : {"/a", "/b"}) {
    const auto r = run_cli(std::string("suite ci --out ") + dir + run + "/results.csv");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("| softmax | emul | bwd | fp16 |"), std::string::npos) << r.out;
  }
  const CsvTable t = read_csv(dir + "/a/results.csv");
  EXPECT_GE(t.rows.size(), 500u);
  for (const auto& row : t.rows) EXPECT_EQ(row.at("status"), "pass") << row.at("algo") << " " << row.at("impl");
  const auto c = run_cli("compare " + dir + "/a/results.csv " + dir + "/b/results.csv --no-time");
  EXPECT_EQ(c.exit_code, 0) << c.err << c.out;
  EXPECT_NE(c.err.find("OK: " + std::to_string(t.rows.size()) + " matched rows"), std::string::npos) << c.err;
}

// On a machine without a GPU a published suite runs nothing, writes a skipped row per point and
// prints the published numbers with our points marked skipped; its plots draw the published lines.
// On a GPU machine the GPU is hidden from the child process.
TEST(SuiteCli, PublishedSuiteWithoutAGpuShowsSkippedPoints) {
  const std::string dir = testing::scratch_dir("suite_fla");
  std::filesystem::remove_all(dir + "/out");
  const std::string csv = dir + "/out/results.csv";
  const auto r = run_cli("suite fla_a100_2024 --out " + csv, testing::kNoGpuEnv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const CsvTable t = read_csv(csv);
  EXPECT_EQ(t.rows.size(), 3u * 8 * 2);  // algos x T x pass
  for (const auto& row : t.rows) EXPECT_EQ(row.at("status").rfind("skipped:", 0), 0u) << row.at("status");
  EXPECT_NE(r.out.find("A100 PCIe 40GB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| flash_attn_func (FlashAttention-2) | 639 ms | tiled |  | skipped ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| flash_attn_func (FlashAttention-2) | 639 ms | sdpa_flash |  | not measured (a peer: scripts/peers.py rows) |"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("scripts/peers.py --B 8 --H 32"), std::string::npos) << "the peers hint: " << r.out;

  const std::string python = find_python_with("matplotlib");
  if (python.empty()) GTEST_SKIP() << "no python3 with matplotlib";
  const std::string script = testing::source_dir() + "/scripts/plot_suite.py";
  ASSERT_EQ(std::system((python + " " + script + " fla_a100_2024 " + csv + " >/dev/null").c_str()), 0);
  for (const char* f : {"fla_a100_2024_softmax.png", "fla_a100_2024_gated-retention.png", "fla_a100_2024_based.png"}) {
    expect_png(dir + "/out/plots/" + f);
  }
}

}  // namespace
}  // namespace attnbench
