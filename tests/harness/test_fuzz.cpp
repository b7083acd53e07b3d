// A small mutation fuzzer for the parsers that read user text: the axis parser (parse_axis,
// AxisSet::expand), the sweep-line parser (parse_run_line, to_sweep, expand_points) and the suite
// loader (load_suite on temp files). Valid inputs are mutated (bytes inserted, deleted, replaced,
// pieces spliced, tokens from the grammar and extreme numbers dropped in) with a fixed seed, for a
// bounded time per target ($ATTNBENCH_FUZZ_SECONDS, default 2). The only exception any of them may
// throw is UsageError (the one-line message of bad input); anything else, or a crash, fails.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "axes.h"
#include "cli/run_options.h"
#include "core/algos.h"
#include "common/cli.h"
#include "errors.h"
#include "suite.h"
#include "sweep.h"

namespace attnbench {
namespace {

// splitmix64: a deterministic stream, the same on every machine.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return n ? static_cast<std::size_t>(next() % n) : 0; }
};

const std::vector<std::string> kTokens = {
    ":",  ",",   "/",    "*",   "x",  "+",   "-",   " ",  "\t", "0",  "1",  "2",   "64", "T",  "Tq", "Tk", "D",
    "Dk", "Dv",  "H",    "Hkv", "B",  "x2",  "+64", "e3", ".5", "\"", "#",  "--T", "--algo", "--D", "--B",
    "9223372036854775807", "99999999999999999999", "1099511627776", "-1", "nan", "inf", "\xff", "\x80", "\n",
    "softmax", "gated", "all", "both", "bf16", "--impl", "--Hkv", "--variant", "sweep:", "name:", "provider:", "="};

std::string mutate(Rng& rng, const std::vector<std::string>& corpus) {
  std::string s = corpus[rng.below(corpus.size())];
  const int rounds = 1 + static_cast<int>(rng.below(4));
  for (int i = 0; i < rounds; ++i) {
    const std::size_t at = rng.below(s.size() + 1);
    switch (rng.below(6)) {
      case 0: s.insert(at, 1, static_cast<char>(rng.below(256))); break;                    // random byte
      case 1: if (!s.empty()) s.erase(rng.below(s.size()), 1 + rng.below(3)); break;        // delete
      case 2: if (!s.empty()) s[rng.below(s.size())] = static_cast<char>(rng.below(128)); break;  // replace
      case 3: s.insert(at, kTokens[rng.below(kTokens.size())]); break;                       // grammar token
      case 4: {                                                                              // splice
        const std::string& o = corpus[rng.below(corpus.size())];
        const std::size_t from = rng.below(o.size() + 1);
        s.insert(at, o.substr(from, rng.below(o.size() - from + 1)));
        break;
      }
      default: if (at < s.size()) s += s.substr(at, 8); break;                              // repeat a piece
    }
  }
  if (s.size() > 400) s.resize(400);
  return s;
}

double budget_s() {
  const char* v = std::getenv("ATTNBENCH_FUZZ_SECONDS");
  return v ? std::atof(v) : 2.0;
}

// Runs `target` on mutated inputs until the time budget is spent; returns the number of inputs.
template <class F>
long fuzz(uint64_t seed, const std::vector<std::string>& corpus, F&& target) {
  Rng rng{seed};
  const auto t0 = std::chrono::steady_clock::now();
  long n = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < budget_s()) {
    const std::string input = mutate(rng, corpus);
    try {
      target(input);
    } catch (const UsageError&) {
      // bad input, refused with a message: what we want
    } catch (const std::exception& e) {
      ADD_FAILURE() << "input '" << input << "' threw a non-usage error: " << e.what();
      return n;
    }
    ++n;
  }
  return n;
}

const std::vector<std::string> kAxisCorpus = {"64",      "1,63,1013", "512:16384:x2", "64:256:+64", "64:256:64",
                                              "32768/T", "H/4",       "2*D",          "D*2",        "T",
                                              "1:8",     "Tq",        "16, 32",       "2048/D",     "1,T/2"};

TEST(Fuzz, AxisParserThrowsOnlyUsageErrors) {
  const auto& names = axis_names();
  Rng pick{7};
  const long n = fuzz(1, kAxisCorpus, [&](const std::string& text) {
    const std::string& axis = names[pick.below(names.size())];
    for (const auto& item : parse_axis(axis, text)) {
      if (item.kind == AxisItem::Kind::literal) {
        ASSERT_GE(item.n, 1) << text;
      }
    }
  });
  EXPECT_GT(n, 1000);
  std::printf("parse_axis: %ld inputs\n", n);
}

TEST(Fuzz, AxisSetExpandThrowsOnlyUsageErrors) {
  const auto& names = axis_names();
  Rng pick{11};
  const long n = fuzz(2, kAxisCorpus, [&](const std::string& text) {
    AxisSet axes;
    axes.set(names[pick.below(names.size())], text);
    if (pick.below(2)) axes.set(names[pick.below(names.size())], kAxisCorpus[pick.below(kAxisCorpus.size())]);
    for (const auto& pt : axes.expand()) {
      for (const auto& [axis, v] : pt) ASSERT_GE(v, 1) << axis << " from '" << text << "'";
    }
  });
  EXPECT_GT(n, 1000);
  std::printf("AxisSet::expand: %ld inputs\n", n);
}

const std::vector<std::string> kLineCorpus = {
    "--algo softmax --impl ref,emul --dtype bf16,fp16 --T 1,63 --Tk 100 --D 60 --H 4 --Hkv 2 --causal both",
    "--algo linear,based --impl ref --T 64 --Dk 16 --Dv 24 --normalize both --pass fwd",
    "--algo gated --variant scalar,rwkv6 --impl ref --B 32768/T --T 512:2048:x2 --D 64",
    "--algo bidir --feature-map all --T 63 --scale 0.5 --k 3 --oracle sampled",
    "--algo piecewise --window 7 --T 100 --budget-ms 5 --warmup 0 --min-samples 1 --max-samples 2",
    "--algo hyperbolic --curvature 0.5 --beta 2 --no-lse --total-attention --seed 3 --hot --no-check"};

TEST(Fuzz, SweepLineParserThrowsOnlyUsageErrors) {
  const long n = fuzz(3, kLineCorpus, [](const std::string& line) {
    const SweepOptions opt = cli::to_sweep(cli::parse_run_line(line, "fuzz:1"));
    const auto points = expand_points(opt);
    for (const auto& p : points) ASSERT_TRUE(validate_problem(p.problem).empty()) << line;
  });
  EXPECT_GT(n, 200);
  std::printf("parse_run_line + to_sweep + expand_points: %ld inputs\n", n);
}

TEST(Fuzz, SuiteLoaderThrowsOnlyUsageErrors) {
  const std::string dir = testing::scratch_dir("fuzz_suite");
  std::vector<std::string> corpus;
  for (const auto& line : kLineCorpus) {
    corpus.push_back("# a suite\nname: fz\ndescription: fuzzed\nsweep: " + line + "\nsweep: --algo softmax --T 8\n");
  }
  const long n = fuzz(4, corpus, [&dir](const std::string& text) {
    const std::string path = dir + "/fz.suite";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    const Suite s = load_suite(path);
    ASSERT_FALSE(s.sweeps.empty());
  });
  EXPECT_GT(n, 100);
  std::printf("load_suite: %ld inputs\n", n);
}

}  // namespace
}  // namespace attnbench
