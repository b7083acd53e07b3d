// bidir's TMA forward with phase-2 work stealing (kernels/bidir/bidir_tiled_steal.cuh) against the
// fp64 reference by the numerics rule. The awkward shapes of test_gpu_impls.cpp are too short for
// a CTA to have a pool (its Q items past the ring's first SLOTS), so these rows are long enough
// (T = 3001, 4096: 24 and 32 items of 128 rows a head) and run on one or two CTAs a head. Mode
// "thief" (ATTNBENCH_BIDIR_DIAG=64) makes every CTA steal before it takes its own pool, so most
// pool items run in another CTA than their owner: the head switches, the stolen states and the
// stores to other heads' rows are exercised in every launch, not only when an SM runs late.
// Each case runs three times without poisoning in between: the last CTA of a launch must leave
// the pools zeroed for the next.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "check.h"
#include "core/algos.h"
#include "core/gpu.h"
#include "core/impl.h"

namespace attnbench {
namespace {

struct StealCase {
  std::string name;
  FeatureMap fm;
  std::string variant;
  int64_t B, H, T, Dk, Dv;
  const char* cluster;  // ATTNBENCH_BIDIR_CLUSTER
  bool thief;           // ATTNBENCH_BIDIR_DIAG=64
};

// Sets the environment for the life of the object (the knobs are read when a problem is prepared).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) had_ = true, old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_, old_.c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

std::vector<StealCase> steal_cases() {
  std::vector<StealCase> out;
  for (FeatureMap fm : {FeatureMap::identity, FeatureMap::elu1, FeatureMap::relu, FeatureMap::focused}) {
    const std::string m(feature_map_name(fm));
    out.push_back({m + "_norm_thief_c1_T3001_Dk48", fm, "norm", 1, 5, 3001, 48, 64, "1", true});
    out.push_back({m + "_simple_thief_c2_T3001", fm, "simple", 2, 2, 3001, 64, 64, "2", true});
    out.push_back({m + "_norm_c1_T4096", fm, "norm", 2, 3, 4096, 64, 64, "1", false});
  }
  return out;
}

class BidirSteal : public ::testing::TestWithParam<StealCase> {};

TEST_P(BidirSteal, PassesTheNumericsRuleRunAfterRun) {
  const StealCase& c = GetParam();
  if (!gpu_info().available) GTEST_SKIP() << gpu_info().why_not;
  const Impl* tiled = registry().find("bidir", "tiled");
  ASSERT_NE(tiled, nullptr);
  Problem p;
  p.algo = "bidir", p.variant = c.variant;
  p.B = c.B, p.H = c.H, p.Hkv = c.H, p.Tq = p.Tk = c.T, p.Dk = c.Dk, p.Dv = c.Dv;
  p.params.feature_map = c.fm;
  ASSERT_TRUE(tiled->supports(p, Pass::fwd, Dtype::bf16).ok);
  const Tensors in = make_inputs(p, Pass::fwd, Dtype::bf16, 4321);
  CheckSources sources(p, Dtype::bf16, in);
  std::string why, oracle;
  const Tensors* ref = sources.oracle(Pass::fwd, Device::cuda, &why, &oracle);
  ASSERT_NE(ref, nullptr) << why;
  const Tensors* base = sources.base(Pass::fwd, Device::cuda, &why);
  ASSERT_NE(base, nullptr) << why;
  const ScopedEnv steal("ATTNBENCH_BIDIR_STEAL", "2"), fwd("ATTNBENCH_BIDIR_FWD", "tma"),
      cluster("ATTNBENCH_BIDIR_CLUSTER", c.cluster), diag("ATTNBENCH_BIDIR_DIAG", c.thief ? "64" : nullptr);
  auto prep = tiled->prepare(p, Pass::fwd, Dtype::bf16, in, PrepareOptions{});
  prep->poison_outputs();
  for (int run = 0; run < 3; ++run) {
    prep->run();
    const Verdict v = check_outputs(p, Pass::fwd, Dtype::bf16, 2.0, prep->outputs(), *ref, *base);
    EXPECT_TRUE(v.pass) << "run " << run << ": " << v.summary();
  }
}

INSTANTIATE_TEST_SUITE_P(bidir, BidirSteal, ::testing::ValuesIn(steal_cases()),
                         [](const ::testing::TestParamInfo<StealCase>& i) { return i.param.name; });

}  // namespace
}  // namespace attnbench
