// based reference: the quadratic form (the `ref`) against linear attention on the 2nd-order
// Taylor features phi(x) = [1, y, vec(y y^T)/sqrt(2)] in the chunked state form (chunk 1 is the
// token recurrence), every gradient of both against central finite differences, closed forms,
// and the same-precision emulation against the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include "based.h"
#include "common/finite_diff.h"
#include "common/linear_forms.h"
#include "core/algos.h"

namespace attnbench {
namespace {

using testing::LinearShape;
using testing::max_abs_diff;
using Shape = LinearShape;

Problem based_problem(const Shape& s, bool normalize) { return testing::linear_family_problem("based", s, normalize); }

class BasedShapes : public ::testing::TestWithParam<std::tuple<Shape, bool>> {};

// Awkward shapes: T = 1, 63, 1013; Dk = 60; Dk != Dv both ways (Dk = 16, Dv = 128 is Based's
// usual feature dim with a wide value). The Taylor form has 1 + Dk + Dk^2 features, so large Dk
// stays at short T.
INSTANTIATE_TEST_SUITE_P(Awkward, BasedShapes,
                         ::testing::Combine(::testing::Values(Shape{1, 1, 1, 16, 16}, Shape{2, 2, 63, 60, 60},
                                                              Shape{1, 2, 1013, 16, 64}, Shape{2, 1, 150, 16, 128},
                                                              Shape{1, 1, 40, 64, 24}),
                                            ::testing::Bool()),
                         testing::linear_shape_name);

// The chunked form here is linear attention on the Taylor features.
TEST_P(BasedShapes, QuadraticMatchesTaylorLinearAttention) {
  const auto [s, normalize] = GetParam();
  const Problem p = based_problem(s, normalize);
  const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 7);
  testing::expect_chunked_matches_quadratic("based", ref::based_forward(p, in), ref::based_backward(p, in),
                                            [&](int64_t chunk) {
                                              return std::pair{ref::based_forward_taylor(p, in, chunk),
                                                               ref::based_backward_taylor(p, in, chunk)};
                                            });
}

TEST(BasedReference, GradientsMatchFiniteDifferences) {
  using Fn = testing::ForwardFn;
  const auto taylor2_f = [](const Problem& p, const Tensors& x) { return ref::based_forward_taylor(p, x, 2); };
  const auto taylor2_b = [](const Problem& p, const Tensors& x) { return ref::based_backward_taylor(p, x, 2); };
  const std::tuple<const char*, Fn, Fn> forms[] = {{"ref (quadratic)", ref::based_forward, ref::based_backward},
                                                   {"taylor chunk 2", taylor2_f, taylor2_b}};
  for (bool normalize : {false, true}) {
    double worst = 0;
    for (const auto& [name, fwd, bwd] : forms) {
      for (const Shape s : {Shape{1, 2, 5, 4, 3}, Shape{2, 1, 7, 3, 5}, Shape{1, 1, 1, 3, 2}}) {
        Problem p = based_problem(s, normalize);
        p.params.scale = 0.8;  // larger than the default 1/sqrt(Dk): the s^2 term matters
        const auto r = testing::finite_difference_check(p, make_inputs(p, Pass::bwd, Dtype::f32, 11), fwd, bwd);
        EXPECT_LT(r.max_abs_err, 1e-8 * std::max(1.0, r.max_grad)) << name << " " << p.shape_string() << " " << r.worst;
        EXPECT_GT(r.checked, 0);
        worst = std::max(worst, r.max_abs_err);
      }
    }
    std::printf("[ based ] normalize=%d finite-difference max |analytic - numeric| = %.3g\n", normalize, worst);
  }
}

TEST(BasedReference, ClosedFormAtOneToken) {
  // T = 1: a = 1 + s + s^2/2 with s = scale q.k; o = a v / (a + 1e-6), or a v.
  for (bool normalize : {false, true}) {
    const Problem p = based_problem(Shape{1, 1, 1, 4, 3}, normalize);
    const Tensors in = make_inputs(p, Pass::fwd, Dtype::f32, 4);
    double qk = 0;
    for (int64_t d = 0; d < 4; ++d) qk += in.at("q").data[d] * in.at("k").data[d];
    const double s = qk / 2.0, a = 1 + s + s * s / 2;  // default scale 1/sqrt(4)
    const double w = normalize ? a / (a + ref::kBasedEps) : a;
    const Tensor o = ref::based_forward(p, in).at("o");
    for (int64_t d = 0; d < 3; ++d) EXPECT_NEAR(o.data[d], w * in.at("v").data[d], 1e-14);
  }
}

TEST(BasedReference, ZeroScaleGivesPrefixSumsAndMeans) {
  // scale = 0: every weight is 1, so o_i = sum_{j<=i} v_j, or that over (i + 1 + 1e-6).
  for (bool normalize : {false, true}) {
    Problem p = based_problem(Shape{1, 1, 70, 8, 5}, normalize);
    p.params.scale = 0;
    const Tensors in = make_inputs(p, Pass::fwd, Dtype::f32, 8);
    const Tensor o = ref::based_forward(p, in).at("o");
    const Tensor& v = in.at("v");
    double err = 0;
    for (int64_t d = 0; d < 5; ++d) {
      double sum = 0;
      for (int64_t i = 0; i < 70; ++i) {
        sum += v.data[i * 5 + d];
        const double want = normalize ? sum / (static_cast<double>(i + 1) + ref::kBasedEps) : sum;
        err = std::max(err, std::fabs(o.data[i * 5 + d] - want));
      }
    }
    EXPECT_LT(err, 1e-12) << "normalize " << normalize;
  }
}

TEST(BasedEmulation, ErrorIsOfTheDtypesOrder) {
  // T = 200 spans four emulation row blocks.
  for (bool normalize : {false, true}) {
    testing::expect_emulation_error_of_dtype_order("based", based_problem(Shape{1, 2, 200, 16, 64}, normalize), ref::based_forward,
                                                   ref::based_backward, ref::based_emulate_forward,
                                                   ref::based_emulate_backward);
  }
}

}  // namespace
}  // namespace attnbench
