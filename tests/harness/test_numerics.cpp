// The numerics rule: passes correct outputs, fails planted faults (an element just beyond the
// tolerance, a NaN, one wrong row, an all-zero output), and handles the edge cases.
#include <gtest/gtest.h>

#include <cmath>

#include "core/numerics.h"
#include "core/tensor.h"

namespace attnbench {
namespace {

// ref: random values; base: ref plus a bf16-sized perturbation; x: a "kernel" that errs like base.
struct Fixture {
  Tensor ref{{4, 32}}, base{{4, 32}}, x{{4, 32}};
  Fixture() {
    fill_normal(ref, 1);
    Tensor noise({4, 32});
    fill_normal(noise, 2, 1e-3);
    for (int64_t i = 0; i < ref.numel(); ++i) {
      base.data[i] = round_to(Dtype::bf16, ref.data[i] + noise.data[i]);
      x.data[i] = round_to(Dtype::bf16, ref.data[i] - noise.data[i]);
    }
  }
  TensorVerdict check(double k = 2) const { return check_tensor("o", x, ref, base, Dtype::bf16, Dtype::bf16, k); }
};

TEST(NumericsRule, PassesACorrectOutput) {
  Fixture f;
  const TensorVerdict v = f.check();
  EXPECT_TRUE(v.pass) << v.why;
  EXPECT_GT(v.err, 0);
  EXPECT_GT(v.err_base, 0);
  EXPECT_GT(v.floor, 0);
  EXPECT_EQ(v.compared, f.ref.numel());
}

TEST(NumericsRule, DefinitionsAreExact) {
  Fixture f;
  const TensorVerdict v = f.check();
  double err = 0, err_base = 0, floor = 0, d2 = 0, r2 = 0;
  for (int64_t i = 0; i < f.ref.numel(); ++i) {
    err = std::max(err, std::fabs(f.x.data[i] - f.ref.data[i]));
    err_base = std::max(err_base, std::fabs(f.base.data[i] - f.ref.data[i]));
    floor = std::max(floor, std::fabs(round_to(Dtype::bf16, f.ref.data[i]) - f.ref.data[i]));
    d2 += std::pow(f.x.data[i] - f.ref.data[i], 2);
    r2 += std::pow(f.ref.data[i], 2);
  }
  EXPECT_EQ(v.err, err);
  EXPECT_EQ(v.err_base, err_base);
  EXPECT_EQ(v.floor, 2 * floor);
  EXPECT_DOUBLE_EQ(v.rel_rms, std::sqrt(d2 / r2));
  EXPECT_EQ(v.k, 2.0);
}

TEST(NumericsRule, FailsAnElementJustBeyondTheTolerance) {
  Fixture f;
  const TensorVerdict ok = f.check();
  const double bound = ok.k * ok.err_base + ok.floor;
  f.x.data[77] = f.ref.data[77] + bound * (1 + 1e-9);
  const TensorVerdict v = f.check();
  EXPECT_FALSE(v.pass);
  EXPECT_NE(v.why.find("err"), std::string::npos) << v.why;
  f.x.data[77] = f.ref.data[77] + bound * (1 - 1e-9);  // just inside passes
  EXPECT_TRUE(f.check().pass) << f.check().why;
}

TEST(NumericsRule, FailsANaN) {
  Fixture f;
  f.x.data[5] = NAN;
  const TensorVerdict v = f.check();
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.nonfinite, 1);
  f.x.data[5] = INFINITY;
  EXPECT_FALSE(f.check().pass);
}

TEST(NumericsRule, FailsOneWrongRow) {
  Fixture f;
  for (int64_t j = 0; j < 32; ++j) f.x.data[2 * 32 + j] = f.ref.data[(2 * 32 + j + 1) % f.ref.numel()];  // shifted
  EXPECT_FALSE(f.check().pass);
}

TEST(NumericsRule, FailsAnAllZeroOutput) {
  Fixture f;
  std::fill(f.x.data.begin(), f.x.data.end(), 0.0);
  const TensorVerdict v = f.check();
  EXPECT_FALSE(v.pass);
  EXPECT_NEAR(v.rel_rms, 1.0, 1e-12);
}

TEST(NumericsRule, FailsOnRelativeRmsAloneWhenBaseIsPoor) {
  // A base so bad that max-error passes everything; the rel_rms cap still catches a wrong output.
  Fixture f;
  for (int64_t i = 0; i < f.ref.numel(); ++i) {
    f.base.data[i] = f.ref.data[i] + 10.0;
    f.x.data[i] = f.ref.data[i] + 0.5;
  }
  const TensorVerdict v = f.check();
  EXPECT_FALSE(v.pass);
  EXPECT_NE(v.why.find("rel_rms"), std::string::npos) << v.why;
}

TEST(NumericsRule, IllConditionedOutputsUseTheBasesRelativeRms) {
  // Exact values (1e-8) far below the pass's rounding noise (u * 1 for a pass whose largest
  // output is ~1): even the careful base misses the cap.
  Tensor ref({64}), base({64}), x({64}), noise({64});
  fill_normal(ref, 11, 1e-8);
  fill_normal(noise, 12, 1e-5);
  noise.data[0] = 1e-3;  // the base's worst element
  for (int64_t i = 0; i < 64; ++i) {
    base.data[i] = ref.data[i] + noise.data[i];
    x.data[i] = ref.data[i] - noise.data[i];  // as far off as the base: passes
  }
  const double pass_scale = 1.0;
  TensorVerdict v = check_tensor("dq", x, ref, base, Dtype::bf16, Dtype::bf16, 2.0, pass_scale);
  EXPECT_TRUE(v.ill_conditioned);
  EXPECT_TRUE(v.pass) << v.why;
  EXPECT_NEAR(v.cap, 2 * v.rel_rms_base, 1e-12 * v.cap);
  // Every element 1.9e-3 off: within 2x of the base's max error, but 2x its RMS error is exceeded.
  for (int64_t i = 0; i < 64; ++i) x.data[i] = ref.data[i] + 1.9e-3;
  v = check_tensor("dq", x, ref, base, Dtype::bf16, Dtype::bf16, 2.0, pass_scale);
  EXPECT_FALSE(v.pass);
  EXPECT_NE(v.why.find("ill-conditioned"), std::string::npos) << v.why;
  // Without the pass's scale the tensor's own tiny values set the rounding level: a base 1e-3 off
  // is then not "at the rounding level", the cap stands, and the same x fails.
  EXPECT_FALSE(check_tensor("dq", base, ref, base, Dtype::bf16, Dtype::bf16, 2.0, 0.0).ill_conditioned);
  // A well-conditioned tensor keeps the cap as written.
  Fixture f;
  EXPECT_FALSE(f.check().ill_conditioned);
  EXPECT_EQ(f.check().cap, rel_rms_cap(Dtype::bf16));
}

TEST(NumericsRule, KIsConfigurable) {
  Fixture f;
  const TensorVerdict ok = f.check();
  f.x.data[3] = f.ref.data[3] + 1.5 * ok.err_base + ok.floor;  // passes k=2, fails k=1
  EXPECT_TRUE(f.check(2.0).pass);
  EXPECT_FALSE(f.check(1.0).pass);
}

TEST(NumericsRule, InfinitiesMustMatchAndNaNRefIsSkipped) {
  Tensor ref({3}, 0.0), base({3}, 0.0), x({3}, 0.0);
  ref.data = {-INFINITY, 1.0, NAN};
  base.data = {-INFINITY, 1.0, 123.0};
  x.data = {-INFINITY, 1.0, 456.0};  // element 2 is not computed by the oracle: skipped
  TensorVerdict v = check_tensor("lse", x, ref, base, Dtype::f32, Dtype::f32);
  EXPECT_TRUE(v.pass) << v.why;
  EXPECT_EQ(v.compared, 2);
  x.data[0] = -1e30;  // finite where ref is -inf
  EXPECT_FALSE(check_tensor("lse", x, ref, base, Dtype::f32, Dtype::f32).pass);
}

TEST(NumericsRule, NothingComparedFails) {
  Tensor ref({2}, NAN), x({2}, 1.0);
  EXPECT_FALSE(check_tensor("o", x, ref, x, Dtype::bf16, Dtype::bf16).pass);
}

TEST(NumericsRule, NonFiniteBaseCannotJudge) {
  Fixture f;
  f.base.data[0] = NAN;
  const TensorVerdict v = f.check();
  EXPECT_FALSE(v.pass);
  EXPECT_NE(v.why.find("base"), std::string::npos);
}

TEST(NumericsRule, CapsPerDtype) {
  EXPECT_EQ(rel_rms_cap(Dtype::f32), 1e-5);
  EXPECT_EQ(rel_rms_cap(Dtype::f16), 5e-3);
  EXPECT_EQ(rel_rms_cap(Dtype::bf16), 2e-2);
}

TEST(NumericsRule, WorstPicksTheFailingTensor) {
  Fixture f;
  Verdict v;
  v.tensors.push_back(f.check());
  f.x.data[0] = NAN;
  v.tensors.push_back(check_tensor("dq", f.x, f.ref, f.base, Dtype::bf16, Dtype::bf16));
  v.pass = false;
  EXPECT_EQ(v.worst().tensor, "dq");
  EXPECT_NE(v.summary().find("dq"), std::string::npos);
}

}  // namespace
}  // namespace attnbench
