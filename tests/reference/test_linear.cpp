// linear reference: the chunked state form (the `ref`; chunk 1 is the token recurrence) against the
// quadratic form from the definition, every gradient of both against central finite differences,
// closed forms and invariants, and the same-precision emulation against the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include "common/finite_diff.h"
#include "common/linear_forms.h"
#include "core/algos.h"
#include "linear.h"

namespace attnbench {
namespace {

using testing::LinearShape;
using testing::max_abs_diff;
using Shape = LinearShape;

Problem linear_problem(const Shape& s, bool normalize) { return testing::linear_family_problem("linear", s, normalize); }

class LinearShapes : public ::testing::TestWithParam<std::tuple<Shape, bool>> {};

// Awkward shapes: T = 1, 63, 1013; Dk = 60; Dk != Dv both ways (Dk = 256, Dv = 64 as for
// feature-mapped queries); several chunks and row blocks.
INSTANTIATE_TEST_SUITE_P(Awkward, LinearShapes,
                         ::testing::Combine(::testing::Values(Shape{1, 1, 1, 64, 64}, Shape{2, 2, 63, 60, 60},
                                                              Shape{1, 2, 1013, 32, 48}, Shape{1, 1, 37, 256, 64},
                                                              Shape{2, 1, 130, 16, 128}),
                                            ::testing::Bool()),
                         testing::linear_shape_name);

TEST_P(LinearShapes, ChunkedMatchesQuadratic) {
  const auto [s, normalize] = GetParam();
  const Problem p = linear_problem(s, normalize);
  const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 7);
  testing::expect_chunked_matches_quadratic("linear", ref::linear_forward_quadratic(p, in),
                                            ref::linear_backward_quadratic(p, in), [&](int64_t chunk) {
                                              return std::pair{ref::linear_forward_chunked(p, in, chunk),
                                                               ref::linear_backward_chunked(p, in, chunk)};
                                            });
  EXPECT_EQ(max_abs_diff(ref::linear_forward(p, in).at("o"), ref::linear_forward_chunked(p, in, 64).at("o")), 0.0);
}

TEST(LinearReference, GradientsMatchFiniteDifferences) {
  using Fn = testing::ForwardFn;
  const auto chunk2_f = [](const Problem& p, const Tensors& x) { return ref::linear_forward_chunked(p, x, 2); };
  const auto chunk2_b = [](const Problem& p, const Tensors& x) { return ref::linear_backward_chunked(p, x, 2); };
  const std::tuple<const char*, Fn, Fn> forms[] = {
      {"ref (chunk 64)", ref::linear_forward, ref::linear_backward},
      {"chunk 2", chunk2_f, chunk2_b},
      {"quadratic", ref::linear_forward_quadratic, ref::linear_backward_quadratic}};
  for (bool normalize : {false, true}) {
    double worst = 0;
    for (const auto& [name, fwd, bwd] : forms) {
      for (const Shape s : {Shape{1, 2, 5, 4, 3}, Shape{2, 1, 7, 3, 5}, Shape{1, 1, 1, 3, 2}}) {
        Problem p = linear_problem(s, normalize);
        p.params.scale = 0.7;  // a scale != 1 exercises every place the scale enters
        const auto r = testing::finite_difference_check(p, make_inputs(p, Pass::bwd, Dtype::f32, 11), fwd, bwd);
        EXPECT_LT(r.max_abs_err, 1e-8 * std::max(1.0, r.max_grad)) << name << " " << p.shape_string() << " " << r.worst;
        EXPECT_GT(r.checked, 0);
        worst = std::max(worst, r.max_abs_err);
      }
    }
    std::printf("[ linear ] normalize=%d finite-difference max |analytic - numeric| = %.3g\n", normalize, worst);
  }
}

TEST(LinearReference, ClosedFormAtOneToken) {
  // T = 1: o = scale (q.k) v, or with the normalizer scale (q.k) v / (scale q.k + eps).
  for (bool normalize : {false, true}) {
    Problem p = linear_problem(Shape{1, 1, 1, 5, 3}, normalize);
    p.params.scale = 0.5;
    const Tensors in = make_inputs(p, Pass::fwd, Dtype::f32, 4);
    const Tensor& q = in.at("q");
    const Tensor& k = in.at("k");
    const Tensor& v = in.at("v");
    double qk = 0;
    for (int64_t d = 0; d < 5; ++d) qk += q.data[d] * k.data[d];
    const double w = normalize ? 0.5 * qk / (0.5 * qk + p.eps()) : 0.5 * qk;
    const Tensor o = ref::linear_forward(p, in).at("o");
    for (int64_t d = 0; d < 3; ++d) EXPECT_NEAR(o.data[d], w * v.data[d], 1e-14) << "normalize " << normalize;
  }
}

TEST(LinearReference, NormalizedWithoutEpsIgnoresTheScaleOfK) {
  // With eps = 0, o_i = sum (q_i.k_j) v_j / q_i.sum k_j is invariant under k -> alpha k.
  Problem p = linear_problem(Shape{1, 2, 90, 12, 7}, true);
  p.params.eps = 0;
  Tensors in = make_inputs(p, Pass::fwd, Dtype::f32, 6);
  const Tensor o = ref::linear_forward(p, in).at("o");
  for (double& x : in.at("k").data) x *= 3.5;
  EXPECT_LT(max_abs_diff(o, ref::linear_forward(p, in).at("o")), 1e-12);
}

TEST(LinearEmulation, ErrorIsOfTheDtypesOrder) {
  // T = 200 spans four emulation chunks.
  for (bool normalize : {false, true}) {
    testing::expect_emulation_error_of_dtype_order("linear", linear_problem(Shape{1, 2, 200, 64, 48}, normalize), ref::linear_forward,
                                                   ref::linear_backward, ref::linear_emulate_forward,
                                                   ref::linear_emulate_backward);
  }
}

}  // namespace
}  // namespace attnbench
