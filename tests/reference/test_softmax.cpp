// softmax reference: the dense definition against a row-streaming (online softmax) formulation,
// every gradient against central finite differences, GQA against explicit head repetition, the
// masked-row and large-logit edge cases, and the same-precision emulation against the reference.
#include <gtest/gtest.h>

#include <cmath>

#include "common/finite_diff.h"
#include "core/algos.h"
#include "softmax.h"

namespace attnbench {
namespace {

using testing::make_problem;
using testing::max_abs_diff;

struct Shape {
  int64_t B, H, Hkv, Tq, Tk, D, Dv;
  bool causal;
};

void PrintTo(const Shape& s, std::ostream* os) {
  *os << "B" << s.B << " H" << s.H << " Hkv" << s.Hkv << " Tq" << s.Tq << " Tk" << s.Tk << " D" << s.D << " Dv" << s.Dv
      << (s.causal ? " causal" : "");
}

class SoftmaxShapes : public ::testing::TestWithParam<Shape> {};

// Awkward shapes: T = 1, 63, 1013; Dk = 60; Dk != Dv; Tk > Tq; GQA and MQA.
std::string shape_name(const ::testing::TestParamInfo<Shape>& i) {
  const Shape& s = i.param;
  return "B" + std::to_string(s.B) + "H" + std::to_string(s.H) + "Hkv" + std::to_string(s.Hkv) + "Tq" +
         std::to_string(s.Tq) + "Tk" + std::to_string(s.Tk) + "D" + std::to_string(s.D) + "Dv" + std::to_string(s.Dv) +
         (s.causal ? "causal" : "full");
}

INSTANTIATE_TEST_SUITE_P(Awkward, SoftmaxShapes,
                         ::testing::Values(Shape{1, 1, 1, 1, 1, 64, 64, false}, Shape{1, 1, 1, 1, 1, 64, 64, true},
                                           Shape{2, 2, 2, 63, 63, 60, 60, true}, Shape{1, 4, 2, 63, 100, 64, 32, true},
                                           Shape{1, 4, 1, 17, 1013, 32, 48, false},
                                           Shape{1, 2, 2, 1013, 1013, 16, 16, true},
                                           Shape{2, 3, 3, 40, 77, 60, 60, true}),
                         shape_name);

TEST_P(SoftmaxShapes, DenseMatchesStreaming) {
  const Shape s = GetParam();
  Problem p = make_problem("softmax", s.B, s.H, s.Tq, s.Tk, s.D, s.Dv, s.causal, s.Hkv);
  p.params.total_attention = true;
  const Tensors in = make_inputs(p, Pass::fwd, Dtype::f32, 7);
  const Tensors dense = ref::softmax_forward(p, in);
  for (int64_t block : {1, 16, 64}) {
    const Tensors stream = ref::softmax_forward_streaming(p, in, block);
    for (const char* name : {"o", "lse", "total"}) {
      EXPECT_LT(max_abs_diff(dense.at(name), stream.at(name)), 1e-12) << name << " key_block " << block;
    }
  }
}

TEST_P(SoftmaxShapes, LseAndTotalAttentionAreConsistent) {
  const Shape s = GetParam();
  Problem p = make_problem("softmax", s.B, s.H, s.Tq, s.Tk, s.D, s.Dv, s.causal, s.Hkv);
  p.params.total_attention = true;
  const Tensors out = ref::softmax_forward(p, make_inputs(p, Pass::fwd, Dtype::bf16, 3));
  // Each non-empty row of P sums to 1, so sum_j A_j counts the rows that see a key.
  for (int64_t bh = 0; bh < p.B * p.H; ++bh) {
    double sum = 0;
    for (int64_t j = 0; j < p.Tk; ++j) sum += out.at("total").data[bh * p.Tk + j];
    EXPECT_NEAR(sum, static_cast<double>(p.Tq), 1e-9 * p.Tq);  // Tk >= Tq: every row sees a key
  }
}

TEST(SoftmaxReference, GradientsMatchFiniteDifferences) {
  double worst = 0;
  for (const Shape s : {Shape{1, 2, 1, 5, 7, 4, 3, true}, Shape{2, 2, 2, 6, 6, 5, 5, false},
                        Shape{1, 1, 1, 1, 1, 3, 2, true}, Shape{1, 3, 3, 4, 9, 3, 3, true}}) {
    const Problem p = make_problem("softmax", s.B, s.H, s.Tq, s.Tk, s.D, s.Dv, s.causal, s.Hkv);
    const auto r = testing::finite_difference_check(p, make_inputs(p, Pass::bwd, Dtype::f32, 11),
                                                     ref::softmax_forward, ref::softmax_backward);
    EXPECT_LT(r.max_abs_err, 1e-8 * std::max(1.0, r.max_grad)) << p.shape_string() << " worst " << r.worst;
    EXPECT_GT(r.checked, 0);
    worst = std::max(worst, r.max_abs_err);
  }
  std::printf("[ softmax ] finite-difference max |analytic - numeric| = %.3g\n", worst);
}

TEST(SoftmaxReference, GqaEqualsRepeatedKvHeads) {
  const Problem gqa = make_problem("softmax", 2, 6, 9, 11, 8, 5, true, 2);
  const Tensors in = make_inputs(gqa, Pass::bwd, Dtype::f32, 5);
  Problem mha = gqa;
  mha.Hkv = 6;
  Tensors rep = in;
  for (const char* name : {"k", "v"}) {  // repeat each kv head over its group of 3 query heads
    const Tensor& src = in.at(name);
    const int64_t T = src.shape[2], D = src.shape[3];
    Tensor t({2, 6, T, D});
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < 6; ++h)
        for (int64_t x = 0; x < T * D; ++x) t.data[((b * 6 + h) * T) * D + x] = src.data[((b * 2 + h / 3) * T) * D + x];
    rep[name] = t;
  }
  EXPECT_LT(max_abs_diff(ref::softmax_forward(gqa, in).at("o"), ref::softmax_forward(mha, rep).at("o")), 1e-14);
  const Tensors g_gqa = ref::softmax_backward(gqa, in), g_mha = ref::softmax_backward(mha, rep);
  EXPECT_LT(max_abs_diff(g_gqa.at("dq"), g_mha.at("dq")), 1e-14);
  // dk of a kv head is the sum over its query heads.
  const Tensor& dk = g_gqa.at("dk");
  const Tensor& dk_rep = g_mha.at("dk");
  const int64_t TD = 11 * 8;
  double err = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t hk = 0; hk < 2; ++hk)
      for (int64_t x = 0; x < TD; ++x) {
        double s = 0;
        for (int64_t g = 0; g < 3; ++g) s += dk_rep.data[((b * 6 + hk * 3 + g)) * TD + x];
        err = std::max(err, std::fabs(s - dk.data[(b * 2 + hk) * TD + x]));
      }
  EXPECT_LT(err, 1e-13);
}

TEST(SoftmaxReference, FullyMaskedRowsGiveZeroOutputAndMinusInfLse) {
  // Causal with Tk < Tq: rows i < Tq - Tk see no key (bottom-right alignment).
  const Problem p = make_problem("softmax", 1, 1, 6, 3, 4, 4, true);
  const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 1);
  const Tensors out = ref::softmax_forward(p, in);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(std::isinf(out.at("lse").data[i]) && out.at("lse").data[i] < 0) << "row " << i;
    for (int64_t d = 0; d < 4; ++d) EXPECT_EQ(out.at("o").data[i * 4 + d], 0.0);
  }
  EXPECT_TRUE(std::isfinite(out.at("lse").data[3]));
  const Tensors g = ref::softmax_backward(p, in);
  for (int64_t x = 0; x < 3 * 4; ++x) EXPECT_EQ(g.at("dq").data[x], 0.0);
  const Tensors stream = ref::softmax_forward_streaming(p, in);
  EXPECT_LT(max_abs_diff(out.at("o"), stream.at("o")), 1e-12);
}

TEST(SoftmaxReference, LogitsScaledBy100StayFinite) {
  Problem p = make_problem("softmax", 1, 2, 33, 47, 16, 16, true);
  p.params.scale = 100.0 / 4.0;  // 100x the default 1/sqrt(16)
  const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 2);
  for (const Tensors& t : {ref::softmax_forward(p, in), ref::softmax_backward(p, in),
                           ref::softmax_emulate_forward(p, Dtype::bf16, in)}) {
    for (const auto& [name, x] : t) {
      for (double v : x.data) ASSERT_TRUE(std::isfinite(v)) << name;
    }
  }
}

TEST(SoftmaxEmulation, ErrorIsOfTheDtypesOrder) {
  // The emulation is the `base` of the rule: it must be close to the reference, but not exact
  // (it really rounds) for the low-precision dtypes.
  const Problem p = make_problem("softmax", 1, 2, 64, 96, 64, 64, true);
  for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    const Tensors in = make_inputs(p, Pass::bwd, dt, 9);
    const Tensors ref_f = ref::softmax_forward(p, in), em_f = ref::softmax_emulate_forward(p, dt, in);
    const Tensors ref_b = ref::softmax_backward(p, in), em_b = ref::softmax_emulate_backward(p, dt, in);
    const double u = unit_roundoff(dt);
    for (const auto& [ref_t, em_t, name] : {std::tuple{&ref_f, &em_f, "o"}, std::tuple{&ref_b, &em_b, "dq"},
                                            std::tuple{&ref_b, &em_b, "dk"}, std::tuple{&ref_b, &em_b, "dv"}}) {
      const double e = testing::rel_rms(em_t->at(name), ref_t->at(name));
      EXPECT_LT(e, 8 * u) << dtype_name(dt) << " " << name;
      if (dt != Dtype::f32) {
        EXPECT_GT(e, 0.05 * u) << dtype_name(dt) << " " << name << " suspiciously exact";
      }
    }
  }
}

}  // namespace
}  // namespace attnbench
