// Every registered CUDA implementation against the fp64 CPU reference by the numerics rule, on
// awkward shapes, for every variant, pass and dtype it supports, with outputs poisoned by NaN
// before the checked run. On a machine without a usable GPU each case skips with the reason.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>

#include "check.h"
#include "common/awkward_shapes.h"
#include "core/gpu.h"
#include "core/impl.h"

namespace attnbench {
namespace {

struct GpuCase {
  const Impl* impl;
  Problem p;
  Pass pass;
  Dtype dt;
  std::string name;
};

std::vector<GpuCase> all_cases() {
  std::vector<GpuCase> cases;
  for (const Impl& impl : registry().all()) {
    if (impl.device != Device::cuda) continue;
    const AlgoSpec* spec = find_algo(impl.algo);
    const std::vector<std::string> variants = spec->variants.empty() ? std::vector<std::string>{""} : spec->variants;
    for (const auto& variant : variants) {
      std::vector<FeatureMap> fmaps = {FeatureMap::identity};
      if (impl.algo == "bidir") fmaps = {FeatureMap::identity, FeatureMap::elu1, FeatureMap::relu, FeatureMap::focused};
      for (FeatureMap fm : fmaps) {
        for (Problem p : testing::awkward_problems(impl.algo, variant)) {
          p.params.feature_map = fm;
          if (spec->softmax_family) p.params.total_attention = p.Tq < 200;
          for (Pass pass : {Pass::fwd, Pass::bwd}) {
            for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
              if (!impl.supports(p, pass, dt).ok) continue;
              std::string n = impl.algo + "_" + (variant.empty() ? "" : variant + "_") + impl.name + "_" +
                              (impl.algo == "bidir" ? std::string(feature_map_name(fm)) + "_" : "") +
                              std::string(pass_name(pass)) + "_" + std::string(dtype_name(dt)) + "_" + p.shape_string();
              for (char& c : n) {
                if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
              }
              cases.push_back({&impl, p, pass, dt, n});
            }
          }
        }
      }
    }
  }
  if (cases.empty()) cases.push_back({nullptr, Problem{}, Pass::fwd, Dtype::f32, "no_cuda_implementations_registered"});
  return cases;
}

void PrintTo(const GpuCase& c, std::ostream* os) { *os << c.name; }

class GpuImpl : public ::testing::TestWithParam<GpuCase> {};

TEST_P(GpuImpl, PassesTheNumericsRuleAgainstTheReference) {
  const GpuCase& c = GetParam();
  if (!c.impl) GTEST_SKIP() << "attnbench was built without CUDA: no CUDA implementations to test";
  if (!gpu_info().available) GTEST_SKIP() << gpu_info().why_not;
  const Tensors in = make_inputs(c.p, Pass::bwd, c.dt, 1234);
  CheckSources sources(c.p, c.dt, in);
  std::string why, oracle;
  const Tensors* ref = sources.oracle(c.pass, Device::cuda, &why, &oracle);
  ASSERT_NE(ref, nullptr) << why;
  const Tensors* base = sources.base(c.pass, Device::cuda, &why);
  ASSERT_NE(base, nullptr) << why;
  auto prep = c.impl->prepare(c.p, c.pass, c.dt, in, PrepareOptions{});
  prep->poison_outputs();
  prep->run();
  const Tensors out = prep->outputs();
  const Verdict v = check_outputs(c.p, c.pass, c.dt, 2.0, out, *ref, *base);
  for (const auto& t : v.tensors) {
    EXPECT_TRUE(t.pass) << t.why << " (err " << t.err << ", err_base " << t.err_base << ", floor " << t.floor
                        << ", rel_rms " << t.rel_rms << ")";
  }
  // Run again without poisoning: the result must not depend on what the outputs held (a second
  // run over its own outputs catches kernels that read what they write).
  prep->run();
  const Verdict again = check_outputs(c.p, c.pass, c.dt, 2.0, prep->outputs(), *ref, *base);
  EXPECT_TRUE(again.pass) << again.summary();
}

INSTANTIATE_TEST_SUITE_P(AllCuda, GpuImpl, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<GpuCase>& i) { return i.param.name; });

// The same-precision mode of a naive kernel must really round: for bf16 its error against the
// reference exceeds that of the fp32-accumulating naive run.
TEST(GpuNaive, SamePrecisionModeRounds) {
  if (!gpu_info().available) GTEST_SKIP() << gpu_info().why_not;
  for (const Impl& impl : registry().all()) {
    if (impl.device != Device::cuda || impl.name != "naive") continue;
    const AlgoSpec* spec = find_algo(impl.algo);
    Problem p = testing::awkward_problems(impl.algo, spec->variants.empty() ? "" : spec->variants.front())[3];
    const Tensors in = make_inputs(p, Pass::bwd, Dtype::bf16, 99);
    CheckSources sources(p, Dtype::bf16, in);
    std::string why, oracle;
    const Tensors* ref = sources.oracle(Pass::fwd, Device::cuda, &why, &oracle);
    ASSERT_NE(ref, nullptr) << why;
    auto exact = impl.prepare(p, Pass::fwd, Dtype::bf16, in, PrepareOptions{false});
    auto sp = impl.prepare(p, Pass::fwd, Dtype::bf16, in, PrepareOptions{true});
    exact->run();
    sp->run();
    const auto e = check_tensor("o", exact->outputs().at("o"), ref->at("o"), ref->at("o"), Dtype::bf16, Dtype::bf16);
    const auto s = check_tensor("o", sp->outputs().at("o"), ref->at("o"), ref->at("o"), Dtype::bf16, Dtype::bf16);
    EXPECT_GT(s.rel_rms, e.rel_rms) << impl.algo << ": same-precision mode does not round";
  }
}

// At sizes past the CPU the naive fp32 run is the oracle, except for outputs stored in fp32 (the
// log-normalizer here): the fp32 run computes those exactly as the same-precision base does, so
// they come from the fp64 reference on one slice, and a correct kernel passes.
TEST(GpuOracle, NaiveFp32TakesFp32OutputsFromTheSampledReference) {
  if (!gpu_info().available) GTEST_SKIP() << gpu_info().why_not;
  const Impl* tiled = registry().find("softmax", "tiled");
  Problem p = testing::awkward_problems("softmax", "")[0];
  p.B = 2, p.H = 4, p.Hkv = 2, p.Tq = p.Tk = 1013, p.Dk = p.Dv = 64, p.causal = true;
  ASSERT_TRUE(tiled && tiled->supports(p, Pass::fwd, Dtype::bf16).ok);
  const Tensors in = make_inputs(p, Pass::fwd, Dtype::bf16, 7);
  CheckSources sources(p, Dtype::bf16, in, OracleMode::naive);
  std::string why, oracle;
  const Tensors* ref = sources.oracle(Pass::fwd, Device::cuda, &why, &oracle);
  ASSERT_NE(ref, nullptr) << why;
  EXPECT_EQ(oracle, "naive-fp32; lse: ref-sampled(b=1,h=2..3)");
  // o from the fp32 run everywhere; lse from fp64 on batch 1, heads 2..3 only (NaN: not compared).
  const Tensor& lse = ref->at("lse");
  const int64_t per_head = p.Tq;
  for (int64_t bh = 0; bh < p.B * p.H; ++bh) {
    const bool in_slice = bh >= p.H + 2;
    EXPECT_EQ(std::isnan(lse.data[bh * per_head + 5]), !in_slice) << bh;
  }
  for (double x : ref->at("o").data) ASSERT_TRUE(std::isfinite(x));
  const Tensors* base = sources.base(Pass::fwd, Device::cuda, &why);
  ASSERT_NE(base, nullptr) << why;
  auto prep = tiled->prepare(p, Pass::fwd, Dtype::bf16, in, PrepareOptions{});
  prep->poison_outputs();
  prep->run();
  const Verdict v = check_outputs(p, Pass::fwd, Dtype::bf16, 2.0, prep->outputs(), *ref, *base);
  EXPECT_TRUE(v.pass) << v.summary();
  for (const auto& t : v.tensors) EXPECT_GT(t.err_base, 0.0) << t.tensor << ": the base must differ from the oracle";
}

}  // namespace
}  // namespace attnbench
