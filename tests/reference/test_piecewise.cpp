// piecewise reference: the engine (restricted score GEMMs + shared softmax engine) against a direct
// per-element definition written here with scalar loops, every gradient against central finite
// differences, the two threshold limits against softmax, and the emulation against the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdio>
#include <tuple>
#include <vector>

#include "common/finite_diff.h"
#include "core/algos.h"
#include "piecewise.h"
#include "softmax.h"

namespace attnbench {
namespace {

using testing::make_problem;
using testing::max_abs_diff;

struct Shape {
  int64_t B, H, Hkv, Tq, Tk, D, Dv;
  bool causal;
  int64_t w;  // threshold; < 0: the default Tk / 2
};

Problem piecewise_problem(const Shape& s) {
  Problem p = make_problem("piecewise", s.B, s.H, s.Tq, s.Tk, s.D, s.Dv, s.causal, s.Hkv);
  p.params.window = s.w;
  return p;
}

// o, lse and total attention straight from the definition, one (b, h, i) at a time:
//   dist = i + off - j;  s_ij = scale * (dist >= w ? q2_i.k2_j : q1_i.k1_j);  P = softmax_j(s).
Tensors direct_definition(const Problem& p, const Tensors& in) {
  const Tensor &q1 = in.at("q1"), &k1 = in.at("k1"), &q2 = in.at("q2"), &k2 = in.at("k2"), &v = in.at("v");
  Tensor o({p.B, p.H, p.Tq, p.Dv}), lse({p.B, p.H, p.Tq}), total({p.B, p.H, p.Tk});
  const int64_t off = p.Tk - p.Tq, w = p.window(), G = p.H / p.Hkv;
  const double scale = p.scale();
  auto at = [](const Tensor& t, int64_t b, int64_t h, int64_t r, int64_t d) {
    return t.data[((b * t.shape[1] + h) * t.shape[2] + r) * t.shape[3] + d];
  };
  std::vector<double> s(static_cast<std::size_t>(p.Tk));
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h)
      for (int64_t i = 0; i < p.Tq; ++i) {
        const int64_t hk = h / G;
        double m = -std::numeric_limits<double>::infinity();
        int64_t visible = 0;
        for (int64_t j = 0; j < p.Tk; ++j) {
          if (p.causal && j > i + off) break;
          const bool far = i + off - j >= w;
          double dot = 0;
          for (int64_t d = 0; d < p.Dk; ++d) {
            dot += far ? at(q2, b, h, i, d) * at(k2, b, hk, j, d) : at(q1, b, h, i, d) * at(k1, b, hk, j, d);
          }
          s[j] = scale * dot;
          m = std::max(m, s[j]);
          ++visible;
        }
        const int64_t row = (b * p.H + h) * p.Tq + i;
        if (visible == 0) {
          lse.data[row] = -std::numeric_limits<double>::infinity();
          continue;  // o row stays 0
        }
        double l = 0;
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

class PiecewiseShapes : public ::testing::TestWithParam<Shape> {};

std::string shape_name(const ::testing::TestParamInfo<Shape>& i);
void PrintTo(const Shape& s, std::ostream* os) { *os << shape_name({s, 0}); }

std::string shape_name(const ::testing::TestParamInfo<Shape>& i) {
  const Shape& s = i.param;
  return "B" + std::to_string(s.B) + "H" + std::to_string(s.H) + "Hkv" + std::to_string(s.Hkv) + "Tq" +
         std::to_string(s.Tq) + "Tk" + std::to_string(s.Tk) + "D" + std::to_string(s.D) + "Dv" + std::to_string(s.Dv) +
         (s.causal ? "causal" : "full") + (s.w < 0 ? std::string("wdefault") : "w" + std::to_string(s.w));
}

// Awkward shapes: T = 1, 63, 1013; Dk = 60; Dk != Dv; Tk > Tq; GQA and MQA; w = 0, 1, default, > Tk.
INSTANTIATE_TEST_SUITE_P(Awkward, PiecewiseShapes,
                         ::testing::Values(Shape{1, 1, 1, 1, 1, 64, 64, false, -1}, Shape{1, 1, 1, 1, 1, 64, 64, true, 0},
                                           Shape{2, 2, 2, 63, 63, 60, 60, true, -1},
                                           Shape{1, 4, 2, 63, 100, 64, 32, true, 7},
                                           Shape{1, 4, 1, 17, 1013, 32, 48, false, -1},
                                           Shape{1, 2, 2, 1013, 1013, 16, 16, true, 100},
                                           Shape{2, 3, 3, 40, 77, 60, 60, false, 1},
                                           Shape{1, 2, 1, 30, 45, 8, 12, true, 200}),
                         shape_name);

TEST_P(PiecewiseShapes, EngineMatchesDirectDefinition) {
  Problem p = piecewise_problem(GetParam());
  p.params.total_attention = true;
  const Tensors in = make_inputs(p, Pass::fwd, Dtype::f32, 7);
  const Tensors engine = ref::piecewise_forward(p, in), direct = direct_definition(p, in);
  for (const char* name : {"o", "lse", "total"}) {
    EXPECT_LT(max_abs_diff(engine.at(name), direct.at(name)), 1e-12) << name;
  }
}

TEST(PiecewiseReference, GradientsMatchFiniteDifferences) {
  double worst = 0;
  // Thresholds that put both sources in play, plus the limits, on GQA, Tk > Tq, causal and not.
  for (const Shape& s : {Shape{1, 2, 1, 5, 7, 4, 3, true, 2}, Shape{2, 2, 2, 6, 6, 5, 5, false, -1},
                        Shape{1, 1, 1, 1, 1, 3, 2, true, 0}, Shape{1, 3, 3, 4, 9, 3, 3, true, 4},
                        Shape{1, 2, 2, 6, 8, 3, 4, false, 0}, Shape{1, 2, 1, 5, 6, 3, 3, false, 1}}) {
    const Problem p = piecewise_problem(s);
    const auto r = testing::finite_difference_check(p, make_inputs(p, Pass::bwd, Dtype::f32, 11),
                                                     ref::piecewise_forward, ref::piecewise_backward);
    EXPECT_LT(r.max_abs_err, 1e-8 * std::max(1.0, r.max_grad)) << p.shape_string() << " worst " << r.worst;
    EXPECT_GT(r.checked, 0);
    worst = std::max(worst, r.max_abs_err);
  }
  std::printf("[ piecewise ] finite-difference max |analytic - numeric| = %.3g\n", worst);
}

// The softmax problem and inputs that read one of piecewise's two score sources.
std::pair<Problem, Tensors> as_softmax(const Problem& p, const Tensors& in, const char* q, const char* k) {
  Problem s = p;
  s.algo = "softmax";
  Tensors t = {{"q", in.at(q)}, {"k", in.at(k)}, {"v", in.at("v")}};
  if (in.count("do")) t.emplace("do", in.at("do"));
  return {s, t};
}

bool all_zero(const Tensor& t) {
  return std::all_of(t.data.begin(), t.data.end(), [](double x) { return x == 0.0; });
}

TEST(PiecewiseReference, ThresholdBeyondEveryDistanceEqualsSoftmaxOnQ1K1) {
  for (bool causal : {true, false}) {
    Problem p = make_problem("piecewise", 2, 4, 23, 41, 24, 16, causal, 2);
    p.params.window = p.Tk + p.Tq + 1;  // dist <= Tk - 1 + off < w everywhere: only (q1, k1)
    const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 4);
    const auto [sp, s_in] = as_softmax(p, in, "q1", "k1");
    const Tensors pf = ref::piecewise_forward(p, in), sf = ref::softmax_forward(sp, s_in);
    EXPECT_LT(max_abs_diff(pf.at("o"), sf.at("o")), 1e-14);
    EXPECT_LT(max_abs_diff(pf.at("lse"), sf.at("lse")), 1e-14);
    const Tensors pg = ref::piecewise_backward(p, in), sg = ref::softmax_backward(sp, s_in);
    EXPECT_LT(max_abs_diff(pg.at("dq1"), sg.at("dq")), 1e-14);
    EXPECT_LT(max_abs_diff(pg.at("dk1"), sg.at("dk")), 1e-14);
    EXPECT_LT(max_abs_diff(pg.at("dv"), sg.at("dv")), 1e-14);
    EXPECT_TRUE(all_zero(pg.at("dq2")) && all_zero(pg.at("dk2"))) << "(q2, k2) is never read";
    // The emulation takes the same path as softmax's: identical results.
    EXPECT_EQ(max_abs_diff(ref::piecewise_emulate_forward(p, Dtype::bf16, in).at("o"),
                           ref::softmax_emulate_forward(sp, Dtype::bf16, s_in).at("o")), 0.0);
  }
}

TEST(PiecewiseReference, ZeroThresholdCausalEqualsSoftmaxOnQ2K2) {
  Problem p = make_problem("piecewise", 2, 4, 23, 41, 24, 16, true, 2);
  p.params.window = 0;  // every visible key has dist >= 0: only (q2, k2)
  const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 5);
  const auto [sp, s_in] = as_softmax(p, in, "q2", "k2");
  const Tensors pf = ref::piecewise_forward(p, in), sf = ref::softmax_forward(sp, s_in);
  EXPECT_LT(max_abs_diff(pf.at("o"), sf.at("o")), 1e-14);
  EXPECT_LT(max_abs_diff(pf.at("lse"), sf.at("lse")), 1e-14);
  const Tensors pg = ref::piecewise_backward(p, in), sg = ref::softmax_backward(sp, s_in);
  EXPECT_LT(max_abs_diff(pg.at("dq2"), sg.at("dq")), 1e-14);
  EXPECT_LT(max_abs_diff(pg.at("dk2"), sg.at("dk")), 1e-14);
  EXPECT_LT(max_abs_diff(pg.at("dv"), sg.at("dv")), 1e-14);
  EXPECT_TRUE(all_zero(pg.at("dq1")) && all_zero(pg.at("dk1"))) << "(q1, k1) is never read";
  // Without the mask, keys past the diagonal (dist < 0) read (q1, k1): no longer softmax on (q2, k2).
  Problem full = p;
  full.causal = false;
  auto [fsp, fs_in] = as_softmax(full, in, "q2", "k2");
  EXPECT_GT(max_abs_diff(ref::piecewise_forward(full, in).at("o"), ref::softmax_forward(fsp, fs_in).at("o")), 1e-3);
}

TEST(PiecewiseReference, BothSourcesMatter) {
  // Changing q1 (resp. q2) changes o when w splits the keys: neither source is ignored.
  Problem p = make_problem("piecewise", 1, 2, 32, 32, 16, 16, true);
  const Tensors in = make_inputs(p, Pass::fwd, Dtype::f32, 6);
  const Tensor o = ref::piecewise_forward(p, in).at("o");
  for (const char* name : {"q1", "k1", "q2", "k2"}) {
    Tensors changed = in;
    for (double& x : changed.at(name).data) x *= 1.5;
    EXPECT_GT(max_abs_diff(ref::piecewise_forward(p, changed).at("o"), o), 1e-3) << name;
  }
}

TEST(PiecewiseEmulation, ErrorIsOfTheDtypesOrder) {
  // The emulation is the `base` of the rule: close to the reference, not exact for fp16/bf16.
  Problem p = make_problem("piecewise", 1, 2, 64, 96, 64, 64, true);
  p.params.window = 20;
  for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    const Tensors in = make_inputs(p, Pass::bwd, dt, 9);
    const Tensors ref_f = ref::piecewise_forward(p, in), em_f = ref::piecewise_emulate_forward(p, dt, in);
    const Tensors ref_b = ref::piecewise_backward(p, in), em_b = ref::piecewise_emulate_backward(p, dt, in);
    const double u = unit_roundoff(dt);
    std::vector<std::tuple<const Tensors*, const Tensors*, const char*>> cases = {{&ref_f, &em_f, "o"}};
    for (const char* g : {"dq1", "dk1", "dq2", "dk2", "dv"}) cases.emplace_back(&ref_b, &em_b, g);
    for (const auto& [ref_t, em_t, name] : cases) {
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
