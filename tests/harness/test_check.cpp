// The oracles of the numerics check: the sampled reference equals the full reference on its slice
// and leaves everything else uncompared; a failing implementation fails against it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "check.h"
#include "common/finite_diff.h"
#include "core/algos.h"

namespace attnbench {
namespace {

// The entries a sampled oracle computed (not NaN) against the full one: how many, and the largest
// |difference| relative to max(1, |full|).
struct SliceMatch {
  int64_t compared = 0;
  double worst = 0;
};
SliceMatch match_slice(const Tensor& sampled, const Tensor& full) {
  SliceMatch m;
  for (int64_t i = 0; i < full.numel(); ++i) {
    if (std::isnan(sampled.data[i])) continue;
    ++m.compared;
    m.worst = std::max(m.worst, std::abs(sampled.data[i] - full.data[i]) / std::max(1.0, std::abs(full.data[i])));
  }
  return m;
}

TEST(CheckSources, SampledReferenceMatchesTheFullReferenceOnItsSlice) {
  Problem p = testing::make_problem("softmax", 2, 4, 33, 40, 16, 8, true, 2);
  const Tensors in = make_inputs(p, Pass::bwd, Dtype::bf16, 5);
  for (Pass pass : {Pass::fwd, Pass::bwd}) {
    CheckSources full(p, Dtype::bf16, in, OracleMode::ref), sampled(p, Dtype::bf16, in, OracleMode::sampled);
    std::string why, name_full, name_sampled;
    const Tensors* a = full.oracle(pass, Device::cpu, &why, &name_full);
    ASSERT_NE(a, nullptr) << why;
    const Tensors* b = sampled.oracle(pass, Device::cpu, &why, &name_sampled);
    ASSERT_NE(b, nullptr) << why;
    EXPECT_EQ(name_full, "ref");
    EXPECT_EQ(name_sampled, "ref-sampled(b=1,h=2..3)");
    for (const auto& [name, t] : *a) {
      const SliceMatch m = match_slice(b->at(name), t);
      EXPECT_LT(m.worst, 1e-12) << name;
      EXPECT_EQ(m.compared, t.numel() / 4) << name;  // one batch of two, one kv group of two
    }
  }
}

// The gated slice: the last batch and head for data-dependent gates (vector). Retention's and
// lightning's gates depend on the head index, so their slice keeps every head of the last batch
// (one head alone would be renumbered head 0).
TEST(CheckSources, SampledReferenceSlicesGatedByTheirGates) {
  struct Case {
    const char* variant;
    const char* slice;
    int64_t share;  // the slice is numel / share of o
  };
  for (const Case& c : {Case{"vector", "ref-sampled(b=1,h=2..2)", 6}, Case{"retention", "ref-sampled(b=1,h=0..2)", 2},
                        Case{"lightning", "ref-sampled(b=1,h=0..2)", 2}}) {
    Problem p = testing::make_problem("gated", 2, 3, 20, 20, 8, 8, true, -1, c.variant);
    const Tensors in = make_inputs(p, Pass::fwd, Dtype::bf16, 6);
    CheckSources full(p, Dtype::bf16, in, OracleMode::ref), sampled(p, Dtype::bf16, in, OracleMode::sampled);
    std::string why, name;
    const Tensor& a = full.oracle(Pass::fwd, Device::cpu, &why, &name)->at("o");
    const Tensors* b = sampled.oracle(Pass::fwd, Device::cpu, &why, &name);
    ASSERT_NE(b, nullptr) << why;
    EXPECT_EQ(name, c.slice);
    const SliceMatch m = match_slice(b->at("o"), a);
    EXPECT_LT(m.worst, 1e-12) << c.variant;
    EXPECT_EQ(m.compared, a.numel() / c.share) << c.variant;
  }
}

// One slice of a large problem is split over row blocks on every core: the same values as the
// references' whole-problem run (the parts' sums in a fixed order), forward and backward.
TEST(CheckSources, SampledReferenceOnRowBlocksMatchesTheFullReference) {
  for (const char* algo : {"softmax", "based"}) {
    Problem p = testing::make_problem(algo, 2, 2, 700, 700, 16, 8, true);
    const Tensors in = make_inputs(p, Pass::bwd, Dtype::bf16, 3);
    for (Pass pass : {Pass::fwd, Pass::bwd}) {
      CheckSources full(p, Dtype::bf16, in, OracleMode::ref), sampled(p, Dtype::bf16, in, OracleMode::sampled);
      std::string why, name;
      const Tensors* a = full.oracle(pass, Device::cpu, &why, &name);
      const Tensors* b = sampled.oracle(pass, Device::cpu, &why, &name);
      ASSERT_TRUE(a && b) << why;
      for (const auto& [n, t] : *a) {
        const SliceMatch m = match_slice(b->at(n), t);
        EXPECT_LT(m.worst, 1e-12) << algo << " " << n;
        EXPECT_GT(m.compared, 0) << algo << " " << n;
      }
    }
  }
}

TEST(CheckSources, AWrongOutputFailsAgainstTheSampledOracle) {
  Problem p = testing::make_problem("softmax", 2, 2, 16, 16, 8, 8, false);
  const Tensors in = make_inputs(p, Pass::fwd, Dtype::bf16, 8);
  CheckSources sampled(p, Dtype::bf16, in, OracleMode::sampled);
  std::string why, name;
  const Tensors* ref = sampled.oracle(Pass::fwd, Device::cpu, &why, &name);
  const Tensors* base = sampled.base(Pass::fwd, Device::cpu, &why);
  ASSERT_TRUE(ref && base) << why;
  Tensors x = *base;
  EXPECT_TRUE(check_outputs(p, Pass::fwd, Dtype::bf16, 2.0, x, *ref, *base).pass);
  x.at("o").data.back() += 0.5;  // the last batch and head are in the sampled slice
  EXPECT_FALSE(check_outputs(p, Pass::fwd, Dtype::bf16, 2.0, x, *ref, *base).pass);
}

// Against a sampled oracle the base runs on the same slice alone (the rest is never compared):
// equal to the full base there, NaN elsewhere.
TEST(CheckSources, SampledOracleRunsTheBaseOnItsSliceOnly) {
  Problem p = testing::make_problem("softmax", 2, 4, 33, 40, 16, 8, true, 2);
  const Tensors in = make_inputs(p, Pass::bwd, Dtype::bf16, 9);
  for (Pass pass : {Pass::fwd, Pass::bwd}) {
    CheckSources full(p, Dtype::bf16, in, OracleMode::ref), sampled(p, Dtype::bf16, in, OracleMode::sampled);
    std::string why, name;
    ASSERT_NE(full.oracle(pass, Device::cpu, &why, &name), nullptr) << why;
    ASSERT_NE(sampled.oracle(pass, Device::cpu, &why, &name), nullptr) << why;
    const Tensors* a = full.base(pass, Device::cpu, &why);
    const Tensors* b = sampled.base(pass, Device::cpu, &why);
    ASSERT_TRUE(a && b) << why;
    for (const auto& [n, t] : *a) {
      int64_t finite = 0;
      for (int64_t i = 0; i < t.numel(); ++i) {
        if (std::isnan(b->at(n).data[i])) continue;
        ++finite;
        ASSERT_EQ(b->at(n).data[i], t.data[i]) << n << "[" << i << "]";
      }
      EXPECT_EQ(finite, t.numel() / 4) << n;
    }
  }
}

}  // namespace
}  // namespace attnbench
