// bidir reference: the linear form phi(Q) (phi(K)^T V) against the quadratic form
// (phi(Q) phi(K)^T) V for both variants and all four feature maps, every gradient against central
// finite differences, the feature maps against their definitions, the `norm` invariance to
// scaling k, and the same-precision emulation against the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <stdexcept>
#include <tuple>

#include "bidir.h"
#include "common/finite_diff.h"
#include "core/algos.h"

namespace attnbench {
namespace {

using testing::make_problem;
using testing::max_abs;
using testing::max_abs_diff;
using ref::Mat;
using ref::Vec;

struct Case {
  const char* variant;
  FeatureMap fmap;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.variant << "/" << feature_map_name(c.fmap); }

struct Shape {
  int64_t B, H, Tq, Tk, Dk, Dv;
};

Problem bidir_problem(const Case& c, const Shape& s) {
  Problem p = make_problem("bidir", s.B, s.H, s.Tq, s.Tk, s.Dk, s.Dv, false, -1, c.variant);
  p.params.feature_map = c.fmap;
  return p;
}

class BidirCases : public ::testing::TestWithParam<Case> {};

std::string case_name(const ::testing::TestParamInfo<Case>& i) {
  return std::string(i.param.variant) + "_" + std::string(feature_map_name(i.param.fmap));
}

INSTANTIATE_TEST_SUITE_P(
    AllMaps, BidirCases,
    ::testing::Values(Case{"norm", FeatureMap::identity}, Case{"norm", FeatureMap::elu1},
                      Case{"norm", FeatureMap::relu}, Case{"norm", FeatureMap::focused},
                      Case{"simple", FeatureMap::identity}, Case{"simple", FeatureMap::elu1},
                      Case{"simple", FeatureMap::relu}, Case{"simple", FeatureMap::focused}),
    case_name);

// Awkward shapes: T = 1, 63, 1013; Dk = 60; Dk != Dv; Tq != Tk both ways.
TEST_P(BidirCases, LinearFormMatchesQuadraticForm) {
  const Case c = GetParam();
  double worst = 0;
  for (const Shape s : {Shape{1, 1, 1, 1, 60, 60}, Shape{2, 2, 63, 63, 60, 60}, Shape{1, 2, 63, 100, 64, 32},
                        Shape{1, 3, 17, 1013, 32, 48}, Shape{1, 1, 1013, 1013, 60, 24},
                        Shape{1, 2, 1013, 1, 16, 24}, Shape{2, 1, 40, 77, 5, 60}}) {
    const Problem p = bidir_problem(c, s);
    const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 7);
    const Tensors lin_f = ref::bidir_forward(p, in), lin_b = ref::bidir_backward(p, in);
    for (int64_t block : {1, 64}) {
      if (block == 1 && s.Tq > 100) continue;  // one-row blocks only where they are cheap
      const Tensors quad_f = ref::bidir_forward_quadratic(p, in, block);
      const Tensors quad_b = ref::bidir_backward_quadratic(p, in, block);
      for (const auto& [lin, quad, name] : {std::tuple{&lin_f, &quad_f, "o"}, std::tuple{&lin_b, &quad_b, "dq"},
                                            std::tuple{&lin_b, &quad_b, "dk"}, std::tuple{&lin_b, &quad_b, "dv"}}) {
        const Tensor& x = lin->at(name);
        const double scale = std::max(1.0, max_abs(x));
        const double e = max_abs_diff(x, quad->at(name)) / scale;
        EXPECT_LT(e, 1e-12) << name << " " << p.shape_string() << " Tk=" << p.Tk << " row_block " << block;
        worst = std::max(worst, e);
        for (double v : x.data) ASSERT_TRUE(std::isfinite(v)) << name;
      }
    }
  }
  std::printf("[ bidir %s ] linear vs quadratic max |diff| / max(1, |x|) = %.3g\n", case_name({GetParam(), 0}).c_str(),
              worst);
}

TEST_P(BidirCases, GradientsMatchFiniteDifferences) {
  const Case c = GetParam();
  constexpr double kStep = 1e-6;
  constexpr double kAwayFromKink = 1e-2;  // relu, elu1 and focused have a kink at 0
  double worst = 0;
  for (const Shape s : {Shape{1, 2, 5, 7, 4, 3}, Shape{2, 1, 6, 6, 5, 5}, Shape{1, 1, 1, 1, 3, 2},
                        Shape{1, 1, 8, 3, 2, 4}}) {
    const Problem p = bidir_problem(c, s);
    Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 11);
    for (const char* name : {"q", "k"}) {
      for (double& x : in.at(name).data) {
        if (std::fabs(x) < kAwayFromKink) x = std::copysign(kAwayFromKink, x);
        ASSERT_GT(std::fabs(x), 1e3 * kStep);  // the step never crosses 0
      }
    }
    const auto r = testing::finite_difference_check(p, in, ref::bidir_forward, ref::bidir_backward, kStep);
    EXPECT_LT(r.max_abs_err, 1e-7 * std::max(1.0, r.max_grad)) << p.shape_string() << " worst " << r.worst;
    EXPECT_EQ(r.checked, s.B * s.H * (s.Tq * s.Dk + s.Tk * s.Dk + s.Tk * s.Dv));  // every element of q, k, v
    worst = std::max(worst, r.max_abs_err);
  }
  std::printf("[ bidir %s ] finite-difference max |analytic - numeric| = %.3g\n", case_name({GetParam(), 0}).c_str(),
              worst);
}

TEST_P(BidirCases, EmulationErrorIsOfTheDtypesOrder) {
  // The emulation is the `base` of the rule: close to the reference, but not exact (it really
  // rounds) for the low-precision dtypes.
  const Case c = GetParam();
  const Problem p = bidir_problem(c, Shape{1, 2, 64, 96, 64, 48});
  for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    const Tensors in = make_inputs(p, Pass::bwd, dt, 9);
    const Tensors ref_f = ref::bidir_forward(p, in), em_f = ref::bidir_emulate_forward(p, dt, in);
    const Tensors ref_b = ref::bidir_backward(p, in), em_b = ref::bidir_emulate_backward(p, dt, in);
    const double u = unit_roundoff(dt);
    // fp16/bf16: the final rounding of each output dominates (measured 0.4u..1.5u). fp32: the fp32
    // sums over Tk and Dk dominate (2u..4u), and `norm`'s dq adds a cancellation: dQf_i . Qf_i =
    // (dO_i . o_i) eps / z_i ~ 0, so its two terms cancel along Qf_i (measured up to 8.7u).
    const double bound = (dt == Dtype::f32 ? 16 : 4) * u;
    for (const auto& [ref_t, em_t, name] : {std::tuple{&ref_f, &em_f, "o"}, std::tuple{&ref_b, &em_b, "dq"},
                                            std::tuple{&ref_b, &em_b, "dk"}, std::tuple{&ref_b, &em_b, "dv"}}) {
      const double e = testing::rel_rms(em_t->at(name), ref_t->at(name));
      EXPECT_LT(e, bound) << dtype_name(dt) << " " << name;
      if (dt != Dtype::f32) {
        EXPECT_GT(e, 0.05 * u) << dtype_name(dt) << " " << name << " suspiciously exact";
      }
    }
  }
}

TEST(BidirReference, FeatureMapsMatchTheirDefinitions) {
  Mat x(3, 5);
  x << -2.0, -0.5, 0.0, 0.25, 3.0,  //
      -1.0, -1.0, -1.0, -1.0, -1.0,   // relu gives all zeros: focused is 1e-6 everywhere
      0.1, 0.2, 0.3, 0.4, 0.5;
  for (FeatureMap f : {FeatureMap::identity, FeatureMap::elu1, FeatureMap::relu, FeatureMap::focused}) {
    const Mat y = ref::bidir_feature_map(f, x);
    for (int64_t r = 0; r < x.rows(); ++r) {
      double ny = 0, nu = 0;  // focused: ||relu(x) + 1e-6|| and ||(relu(x) + 1e-6)^3||
      for (int64_t c = 0; c < x.cols(); ++c) {
        const double t = std::max(x(r, c), 0.0) + 1e-6;
        ny += t * t;
        nu += std::pow(t, 6);
      }
      for (int64_t c = 0; c < x.cols(); ++c) {
        const double xv = x(r, c);
        double want = xv;
        if (f == FeatureMap::elu1) want = (xv > 0 ? xv : std::expm1(xv)) + 1.0;  // elu, alpha = 1
        if (f == FeatureMap::relu) want = std::max(xv, 0.0);
        if (f == FeatureMap::focused) want = std::pow(std::max(xv, 0.0) + 1e-6, 3) * std::sqrt(ny / nu);
        EXPECT_NEAR(y(r, c), want, 1e-15 * std::max(1.0, std::fabs(want))) << feature_map_name(f) << " " << r << "," << c;
      }
      if (f == FeatureMap::focused) {
        EXPECT_NEAR(y.row(r).norm(), std::sqrt(ny), 1e-15 * std::sqrt(ny)) << "focused keeps the row's norm";
      }
    }
  }
}

TEST(BidirReference, NormIsInvariantToScalingK) {
  // With phi(c k) = c phi(k) (identity, relu; c > 0), KV and kmean scale by c, so
  //   o_i(c k) = c N_i / (c D_i + eps) = o_i(k) * c (D_i + eps) / (c D_i + eps),  D_i = Qf_i . kmean:
  // invariant up to the eps term. Checked exactly with that factor, and to eps / D without it.
  for (FeatureMap f : {FeatureMap::identity, FeatureMap::relu}) {
    Problem p = bidir_problem({"norm", f}, Shape{2, 2, 33, 47, 16, 12});
    const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 4);
    const Tensors o1 = ref::bidir_forward(p, in), g1 = ref::bidir_backward(p, in);
    for (double c : {0.5, 3.0, 1000.0}) {
      Tensors scaled = in;
      for (double& v : scaled.at("k").data) v *= c;
      const Tensors oc = ref::bidir_forward(p, scaled), gc = ref::bidir_backward(p, scaled);
      double exact = 0, loose = 0;
      for (int64_t bh = 0; bh < p.B * p.H; ++bh) {
        const int64_t b = bh / p.H, h = bh % p.H;
        const Mat Qf = ref::bidir_feature_map(f, ref::slice(in.at("q"), b, h));
        const Mat Kf = ref::bidir_feature_map(f, ref::slice(in.at("k"), b, h));
        const Vec D = Qf * Kf.colwise().mean().transpose();
        const auto O1 = ref::slice(o1.at("o"), b, h), Oc = ref::slice(oc.at("o"), b, h);
        for (int64_t i = 0; i < p.Tq; ++i) {
          const double factor = c * (D(i) + 1e-6) / (c * D(i) + 1e-6);
          exact = std::max(exact, (Oc.row(i) - factor * O1.row(i)).cwiseAbs().maxCoeff());
          loose = std::max(loose, (Oc.row(i) - O1.row(i)).cwiseAbs().maxCoeff());
        }
      }
      const double omax = max_abs(o1.at("o"));
      EXPECT_LT(exact, 1e-13 * omax) << feature_map_name(f) << " c=" << c;
      EXPECT_LT(loose, 1e-4 * omax) << feature_map_name(f) << " c=" << c;  // eps / D_i, D_i >= ~0.05 here
      // dq and dv are invariant too; dk scales by 1/c.
      const double gq = max_abs(g1.at("dq")), gv = max_abs(g1.at("dv")), gk = max_abs(g1.at("dk"));
      EXPECT_LT(max_abs_diff(gc.at("dq"), g1.at("dq")), 1e-4 * gq) << feature_map_name(f) << " c=" << c;
      EXPECT_LT(max_abs_diff(gc.at("dv"), g1.at("dv")), 1e-4 * gv) << feature_map_name(f) << " c=" << c;
      Tensor dk_c = gc.at("dk");
      for (double& v : dk_c.data) v *= c;
      EXPECT_LT(max_abs_diff(dk_c, g1.at("dk")), 1e-4 * gk) << feature_map_name(f) << " c=" << c;
    }
  }
}

TEST(BidirReference, OneKeyMatchesClosedForms) {
  // Tk = 1, identity map, z_i = q_i.k + eps:
  //   norm:   o_i = (q_i.k) v / z_i, so dq_i = (do_i.v) eps k / z_i^2: eps-sized, all cancellation
  //           (why no finite-precision dq can be close in relative terms at Tk = 1);
  //   simple: o_i = scale (q_i.k) v, so dq_i = scale (do_i.v) k.
  for (const char* variant : {"norm", "simple"}) {
    const Problem p = bidir_problem({variant, FeatureMap::identity}, Shape{1, 2, 5, 1, 6, 4});
    const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 6);
    const Tensors grads = ref::bidir_backward(p, in);
    const Tensor& dq = grads.at("dq");
    const bool norm = std::string(variant) == "norm";
    double err = 0, mag = 0;
    for (int64_t h = 0; h < p.H; ++h) {
      const auto Q = ref::slice(in.at("q"), 0, h), K = ref::slice(in.at("k"), 0, h);
      const auto V = ref::slice(in.at("v"), 0, h), dO = ref::slice(in.at("do"), 0, h);
      const auto dQ = ref::slice(dq, 0, h);
      for (int64_t i = 0; i < p.Tq; ++i) {
        const double z = Q.row(i).dot(K.row(0)) + 1e-6, dov = dO.row(i).dot(V.row(0));
        const Eigen::RowVectorXd want = norm ? (dov * 1e-6 / (z * z)) * K.row(0) : (p.scale() * dov) * K.row(0);
        err = std::max(err, (dQ.row(i) - want).cwiseAbs().maxCoeff());
        mag = std::max(mag, want.cwiseAbs().maxCoeff());
      }
    }
    EXPECT_GT(mag, 0.0);
    EXPECT_LT(err, 1e-6 * mag) << variant << " (max |dq| " << mag << ")";
  }
}

TEST(BidirReference, SimpleUsesTheScaleParameter) {
  Problem p = bidir_problem({"simple", FeatureMap::elu1}, Shape{1, 2, 9, 13, 8, 6});
  const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 5);
  const Tensors o_default = ref::bidir_forward(p, in);  // scale = 1/sqrt(8)
  p.params.scale = 0.75;
  const Tensors o_scaled = ref::bidir_forward(p, in);
  Tensor want = o_default.at("o");
  for (double& v : want.data) v *= 0.75 * std::sqrt(8.0);
  EXPECT_LT(max_abs_diff(o_scaled.at("o"), want), 1e-13 * max_abs(want));
}

TEST(BidirReference, UnknownVariantIsRefused) {
  const Problem p = bidir_problem({"causal", FeatureMap::identity}, Shape{1, 1, 2, 2, 2, 2});
  const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 1);
  EXPECT_THROW(ref::bidir_forward(p, in), std::invalid_argument);
  EXPECT_THROW(ref::bidir_emulate_backward(p, Dtype::bf16, in), std::invalid_argument);
}

}  // namespace
}  // namespace attnbench
