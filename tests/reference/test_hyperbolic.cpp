// hyperbolic reference: the engine (GEMM + rank-one Lorentz scores + shared softmax engine) against
// a direct per-element definition written here with scalar loops, every gradient against central
// finite differences (clamped self-pairs included), metric properties of the distance (symmetry,
// clamped self-distance, a closed form from the origin, triangle inequality, invariance under a
// rotation), finiteness at extreme curvature and beta, and the emulation against the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdio>
#include <tuple>
#include <vector>

#include "common/finite_diff.h"
#include "core/algos.h"
#include "hyperbolic.h"

namespace attnbench {
namespace {

using testing::make_problem;
using testing::max_abs_diff;

constexpr double kZMin = 1.0 + 1e-6;  // DESIGN.md's clamp on -c <q,k>_L

struct Shape {
  int64_t B, H, Hkv, Tq, Tk, D, Dv;
  bool causal;
  double c, beta;
};

Problem hyperbolic_problem(const Shape& s) {
  Problem p = make_problem("hyperbolic", s.B, s.H, s.Tq, s.Tk, s.D, s.Dv, s.causal, s.Hkv);
  p.params.curvature = s.c;
  p.params.beta = s.beta;
  return p;
}

double at(const Tensor& t, int64_t b, int64_t h, int64_t r, int64_t d) {
  return t.data[((b * t.shape[1] + h) * t.shape[2] + r) * t.shape[3] + d];
}

// d(q_i, k_j) from the definition: lift both points, Lorentz product, clamp, acosh.
double distance(const Problem& p, const Tensor& q, const Tensor& k, int64_t b, int64_t h, int64_t i, int64_t hk,
                int64_t j) {
  const double c = p.params.curvature;
  double qq = 0, kk = 0, qk = 0;
  for (int64_t d = 0; d < p.Dk; ++d) {
    qq += at(q, b, h, i, d) * at(q, b, h, i, d);
    kk += at(k, b, hk, j, d) * at(k, b, hk, j, d);
    qk += at(q, b, h, i, d) * at(k, b, hk, j, d);
  }
  const double q0 = std::sqrt(1 / c + qq), k0 = std::sqrt(1 / c + kk);
  const double z = std::max(-c * (qk - q0 * k0), kZMin);
  return std::acosh(z) / std::sqrt(c);
}

// o, lse and total attention straight from the definition, one (b, h, i) at a time.
Tensors direct_definition(const Problem& p, const Tensors& in) {
  const Tensor &q = in.at("q"), &k = in.at("k"), &v = in.at("v");
  Tensor o({p.B, p.H, p.Tq, p.Dv}), lse({p.B, p.H, p.Tq}), total({p.B, p.H, p.Tk});
  const int64_t off = p.Tk - p.Tq, G = p.H / p.Hkv;
  std::vector<double> s(static_cast<std::size_t>(p.Tk));
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h)
      for (int64_t i = 0; i < p.Tq; ++i) {
        const int64_t hk = h / G, visible = p.causal ? std::clamp<int64_t>(i + off + 1, 0, p.Tk) : p.Tk;
        const int64_t row = (b * p.H + h) * p.Tq + i;
        if (visible == 0) {
          lse.data[row] = -std::numeric_limits<double>::infinity();
          continue;
        }
        double m = -std::numeric_limits<double>::infinity(), l = 0;
        for (int64_t j = 0; j < visible; ++j) {
          s[j] = -p.params.beta * distance(p, q, k, b, h, i, hk, j);
          m = std::max(m, s[j]);
        }
        for (int64_t j = 0; j < visible; ++j) l += std::exp(s[j] - m);
        lse.data[row] = m + std::log(l);
        for (int64_t j = 0; j < visible; ++j) {
          const double P = std::exp(s[j] - m) / l;
          total.data[(b * p.H + h) * p.Tk + j] += P;
          for (int64_t d = 0; d < p.Dv; ++d) o.data[row * p.Dv + d] += P * at(v, b, hk, j, d);
        }
      }
  return {{"o", o}, {"lse", lse}, {"total", total}};
}

class HyperbolicShapes : public ::testing::TestWithParam<Shape> {};

std::string shape_name(const ::testing::TestParamInfo<Shape>& i);
void PrintTo(const Shape& s, std::ostream* os) {
  *os << shape_name({s, 0}) << " c=" << s.c << " beta=" << s.beta;
}

std::string shape_name(const ::testing::TestParamInfo<Shape>& i) {
  const Shape& s = i.param;
  return "B" + std::to_string(s.B) + "H" + std::to_string(s.H) + "Hkv" + std::to_string(s.Hkv) + "Tq" +
         std::to_string(s.Tq) + "Tk" + std::to_string(s.Tk) + "D" + std::to_string(s.D) + "Dv" + std::to_string(s.Dv) +
         (s.causal ? "causal" : "full") + "_" + std::to_string(i.index);
}

// Awkward shapes: T = 1, 63, 1013; Dk = 60; Dk != Dv; Tk > Tq; GQA and MQA; several c and beta.
INSTANTIATE_TEST_SUITE_P(Awkward, HyperbolicShapes,
                         ::testing::Values(Shape{1, 1, 1, 1, 1, 64, 64, false, 1, 1},
                                           Shape{1, 1, 1, 1, 1, 64, 64, true, 1, 1},
                                           Shape{2, 2, 2, 63, 63, 60, 60, true, 0.5, 2},
                                           Shape{1, 4, 2, 63, 100, 64, 32, true, 1, 4},
                                           Shape{1, 4, 1, 17, 1013, 32, 48, false, 2, 1},
                                           Shape{1, 2, 2, 1013, 1013, 16, 16, true, 1, 3},
                                           Shape{2, 3, 3, 40, 77, 60, 60, false, 0.1, 0.5}),
                         shape_name);

TEST_P(HyperbolicShapes, EngineMatchesDirectDefinition) {
  Problem p = hyperbolic_problem(GetParam());
  p.params.total_attention = true;
  const Tensors in = make_inputs(p, Pass::fwd, Dtype::f32, 7);
  const Tensors engine = ref::hyperbolic_forward(p, in), direct = direct_definition(p, in);
  for (const char* name : {"o", "lse", "total"}) {
    EXPECT_LT(max_abs_diff(engine.at(name), direct.at(name)), 1e-12) << name;
  }
}

// Make key j of kv head hk a copy of query j of the first query head of its group, for the first
// `n` keys: those pairs are at distance 0 and hit the clamp (zero gradient there).
void copy_queries_into_keys(const Problem& p, Tensors& in, int64_t n) {
  const Tensor& q = in.at("q");
  Tensor& k = in.at("k");
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t hk = 0; hk < p.Hkv; ++hk)
      for (int64_t j = 0; j < std::min({n, p.Tq, p.Tk}); ++j)
        for (int64_t d = 0; d < p.Dk; ++d) {
          k.data[((b * p.Hkv + hk) * p.Tk + j) * p.Dk + d] = at(q, b, hk * p.group(), j, d);
        }
}

TEST(HyperbolicReference, GradientsMatchFiniteDifferences) {
  double worst = 0;
  for (const Shape& s : {Shape{1, 2, 1, 5, 7, 4, 3, true, 1, 1}, Shape{2, 2, 2, 6, 6, 5, 5, false, 0.7, 1.3},
                        Shape{1, 1, 1, 1, 1, 3, 2, true, 1, 1}, Shape{1, 3, 3, 4, 9, 3, 3, true, 2.5, 3},
                        Shape{1, 2, 1, 6, 6, 4, 4, false, 1, 2}}) {
    const Problem p = hyperbolic_problem(s);
    for (int64_t self_pairs : {0, 3}) {  // 3: some (q_i, k_i) coincide and sit on the clamp
      Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 11);
      copy_queries_into_keys(p, in, self_pairs);
      // h = 1e-5, not 1e-6: the cancellation in z = c (q0 k0 - q.k) raises the forward's round-off,
      // which FD divides by h: the error grows ~10x per 10x smaller h (~1e-9 at 1e-6, ~1e-10 at
      // 1e-5), round-off rather than truncation. Self pairs stay clamped: z - 1 ~ c h^2 << 1e-6.
      const auto r = testing::finite_difference_check(p, in, ref::hyperbolic_forward, ref::hyperbolic_backward, 1e-5);
      EXPECT_LT(r.max_abs_err, 1e-8 * std::max(1.0, r.max_grad))
          << p.shape_string() << " self_pairs " << self_pairs << " worst " << r.worst;
      EXPECT_GT(r.checked, 0);
      worst = std::max(worst, r.max_abs_err);
    }
  }
  std::printf("[ hyperbolic ] finite-difference max |analytic - numeric| = %.3g\n", worst);
}

TEST(HyperbolicReference, DistanceIsSymmetricAndClampedAtZero) {
  for (double c : {0.5, 1.0, 3.0}) {
    Problem p = make_problem("hyperbolic", 1, 2, 20, 20, 16, 8, false);
    p.params.curvature = c;
    p.params.beta = 1.5;
    Tensors in = make_inputs(p, Pass::fwd, Dtype::f32, 3);
    in.at("k") = in.at("q");  // keys are the queries: S must be symmetric
    const Tensor s = ref::hyperbolic_scores(p, in);
    const double self = -1.5 * std::acosh(kZMin) / std::sqrt(c);  // d(x, x) = 0, clamped to acosh(1+1e-6)/sqrt c
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 20; ++i) {
        EXPECT_NEAR(s.data[(h * 20 + i) * 20 + i], self, 1e-15) << "c " << c << " i " << i;
        for (int64_t j = 0; j < i; ++j) {
          EXPECT_NEAR(s.data[(h * 20 + i) * 20 + j], s.data[(h * 20 + j) * 20 + i], 1e-12) << "c " << c;
          EXPECT_LT(s.data[(h * 20 + i) * 20 + j], self) << "distinct points are farther apart than the clamp";
        }
      }
    // Swapping the roles of q and k transposes S (Tq != Tk).
    Problem pq = make_problem("hyperbolic", 1, 1, 9, 14, 16, 8, false);
    pq.params.curvature = c;
    const Tensors a = make_inputs(pq, Pass::fwd, Dtype::f32, 4);
    Problem pk = pq;
    std::swap(pk.Tq, pk.Tk);
    const Tensor s_qk = ref::hyperbolic_scores(pq, a), s_kq = ref::hyperbolic_scores(pk, {{"q", a.at("k")}, {"k", a.at("q")}});
    for (int64_t i = 0; i < 9; ++i)
      for (int64_t j = 0; j < 14; ++j) EXPECT_NEAR(s_qk.data[i * 14 + j], s_kq.data[j * 9 + i], 1e-12);
  }
}

TEST(HyperbolicReference, DistanceFromTheOriginHasClosedForm) {
  // q = 0 lifts to the origin (1/sqrt c, 0): z = sqrt(c) k0 = sqrt(1 + c |k|^2), so
  // d = acosh(sqrt(1 + c |k|^2)) / sqrt(c) = asinh(sqrt(c) |k|) / sqrt(c).
  for (double c : {0.25, 1.0, 4.0}) {
    Problem p = make_problem("hyperbolic", 1, 1, 1, 30, 12, 4, false);
    p.params.curvature = c;
    p.params.beta = 2;
    Tensors in = make_inputs(p, Pass::fwd, Dtype::f32, 8);
    std::fill(in.at("q").data.begin(), in.at("q").data.end(), 0.0);
    const Tensor s = ref::hyperbolic_scores(p, in);
    for (int64_t j = 0; j < 30; ++j) {
      double kk = 0;
      for (int64_t d = 0; d < 12; ++d) kk += at(in.at("k"), 0, 0, j, d) * at(in.at("k"), 0, 0, j, d);
      EXPECT_NEAR(s.data[j], -2 * std::asinh(std::sqrt(c * kk)) / std::sqrt(c), 1e-13) << "c " << c << " j " << j;
    }
  }
}

TEST(HyperbolicReference, DistanceIsAMetricInvariantUnderRotation) {
  Problem p = make_problem("hyperbolic", 1, 1, 16, 16, 6, 4, false);
  p.params.curvature = 0.8;
  Tensors in = make_inputs(p, Pass::fwd, Dtype::f32, 12);
  in.at("k") = in.at("q");
  const Tensor s = ref::hyperbolic_scores(p, in);
  auto d = [&](int64_t i, int64_t j) { return -s.data[i * 16 + j]; };  // beta = 1
  for (int64_t a = 0; a < 16; ++a)
    for (int64_t b = 0; b < 16; ++b)
      for (int64_t c = 0; c < 16; ++c) EXPECT_LE(d(a, c), d(a, b) + d(b, c) + 1e-12);
  // A rotation of the space coordinates (Householder reflection R = I - 2 u u^T / |u|^2) keeps
  // |x| and x.y, hence x0 and every distance.
  const std::vector<double> u = {0.3, -1.2, 0.7, 2.0, -0.4, 0.9};
  double uu = 0;
  for (double x : u) uu += x * x;
  Tensors rot = in;
  for (const char* name : {"q", "k"}) {
    Tensor& t = rot.at(name);
    for (int64_t r = 0; r < 16; ++r) {
      double ux = 0;
      for (int64_t e = 0; e < 6; ++e) ux += u[e] * t.data[r * 6 + e];
      for (int64_t e = 0; e < 6; ++e) t.data[r * 6 + e] -= 2 * ux / uu * u[e];
    }
  }
  EXPECT_GT(max_abs_diff(rot.at("q"), in.at("q")), 0.1);
  const Tensor s_rot = ref::hyperbolic_scores(p, rot);
  for (int64_t x = 0; x < 16 * 16; ++x) {
    if (x % 17 == 0) continue;  // self pairs: both clamped, equal anyway
    EXPECT_NEAR(s_rot.data[x], s.data[x], 1e-11) << x;
  }
}

TEST(HyperbolicReference, ExtremeCurvatureAndBetaStayFinite) {
  for (const auto& [c, beta] : {std::pair{1e4, 1.0}, std::pair{1e-4, 1.0}, std::pair{1.0, 1e3}, std::pair{1e4, 1e3}}) {
    Problem p = make_problem("hyperbolic", 1, 2, 33, 47, 16, 16, true);
    p.params.curvature = c;
    p.params.beta = beta;
    Tensors in = make_inputs(p, Pass::bwd, Dtype::bf16, 2);
    copy_queries_into_keys(p, in, 5);  // clamped pairs too
    for (const Tensors& t : {ref::hyperbolic_forward(p, in), ref::hyperbolic_backward(p, in),
                             ref::hyperbolic_emulate_forward(p, Dtype::bf16, in),
                             ref::hyperbolic_emulate_backward(p, Dtype::bf16, in)}) {
      for (const auto& [name, x] : t) {
        for (double v : x.data) ASSERT_TRUE(std::isfinite(v)) << name << " c " << c << " beta " << beta;
      }
    }
  }
}

TEST(HyperbolicEmulation, ErrorIsOfTheDtypesOrder) {
  // The emulation is the `base` of the rule: close to the reference, not exact for fp16/bf16.
  Problem p = make_problem("hyperbolic", 1, 2, 64, 96, 64, 64, true);
  p.params.beta = 4;  // sharper than the default so that P is far from uniform
  for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    const Tensors in = make_inputs(p, Pass::bwd, dt, 9);
    const Tensors ref_f = ref::hyperbolic_forward(p, in), em_f = ref::hyperbolic_emulate_forward(p, dt, in);
    const Tensors ref_b = ref::hyperbolic_backward(p, in), em_b = ref::hyperbolic_emulate_backward(p, dt, in);
    const double u = unit_roundoff(dt);
    // In fp32 the scores' own error dominates: z = c (q0 k0 - q.k) loses ~u (q0 k0 + |q.k|) ~ u z to
    // cancellation, and s = -(beta / sqrt c) acosh z passes it on times ~beta / z: ~beta u per score
    // (measured 11-13 u at beta 4). In fp16/bf16 the roundings of P and dS dominate (~u).
    const double cap = 8 * u * (dt == Dtype::f32 ? p.params.beta : 1.0);
    for (const auto& [ref_t, em_t, name] : {std::tuple{&ref_f, &em_f, "o"}, std::tuple{&ref_b, &em_b, "dq"},
                                            std::tuple{&ref_b, &em_b, "dk"}, std::tuple{&ref_b, &em_b, "dv"}}) {
      const double e = testing::rel_rms(em_t->at(name), ref_t->at(name));
      EXPECT_LT(e, cap) << dtype_name(dt) << " " << name;
      if (dt != Dtype::f32) {
        EXPECT_GT(e, 0.05 * u) << dtype_name(dt) << " " << name << " suspiciously exact";
      }
    }
  }
}

}  // namespace
}  // namespace attnbench
