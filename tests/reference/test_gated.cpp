// gated reference, every variant (retention, lightning, scalar, vector, rwkv6): the recurrence
// against the parallel form, every gradient (q, k, v, the log-gates g, rwkv6's bonus u) against
// central finite differences, the invariants between variants, and the same-precision chunkwise
// emulation against the reference (including strong decay at T = 1013).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "common/finite_diff.h"
#include "core/algos.h"
#include "gated.h"

namespace attnbench {
namespace {

using testing::max_abs;
using testing::max_abs_diff;

struct Shape {
  int64_t B, H, T, Dk, Dv;
};

Problem gated_problem(const std::string& variant, const Shape& s) {
  return testing::make_problem("gated", s.B, s.H, s.T, s.T, s.Dk, s.Dv, true, -1, variant);
}

bool all_finite(const Tensors& ts) {
  for (const auto& [name, t] : ts)
    for (double x : t.data)
      if (!std::isfinite(x)) return false;
  return true;
}

// The output names of the backward: dq, dk, dv (+ dg, + du).
std::vector<std::string> grad_names(const Problem& p) {
  std::vector<std::string> names;
  for (const auto& spec : backward_outputs(p)) names.push_back(spec.name);
  return names;
}

class GatedVariants : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(All, GatedVariants,
                         ::testing::Values("retention", "lightning", "scalar", "vector", "rwkv6"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// Awkward shapes: T = 1, 63 (one partial chunk), 130 and 200 (checkpoints and chunks of 64 with a
// partial last one), 1013; Dk = 60; Dk != Dv both ways.
TEST_P(GatedVariants, RecurrentMatchesParallel) {
  for (const Shape s : {Shape{1, 1, 1, 64, 64}, Shape{2, 2, 63, 60, 60}, Shape{1, 3, 130, 60, 32},
                        Shape{2, 1, 200, 16, 48}, Shape{1, 2, 1013, 16, 8}}) {
    const Problem p = gated_problem(GetParam(), s);
    const Tensors in = make_inputs(p, Pass::bwd, Dtype::f32, 7);
    const Tensor& o_rec = ref::gated_forward(p, in).at("o");
    const Tensor& o_par = ref::gated_forward_parallel(p, in).at("o");
    EXPECT_LT(max_abs_diff(o_rec, o_par), 1e-12 * std::max(1.0, max_abs(o_par))) << p.shape_string();
    const Tensors g_rec = ref::gated_backward(p, in), g_par = ref::gated_backward_parallel(p, in);
    for (const auto& name : grad_names(p)) {
      EXPECT_LT(max_abs_diff(g_rec.at(name), g_par.at(name)), 1e-12 * std::max(1.0, max_abs(g_par.at(name))))
          << name << " " << p.shape_string();
    }
  }
}

TEST_P(GatedVariants, GradientsMatchFiniteDifferences) {
  double worst = 0;
  int64_t checked = 0;
  auto check = [&](const Problem& p, const testing::BackwardFn& bwd, int64_t stride) {
    const auto r = testing::finite_difference_check(p, make_inputs(p, Pass::bwd, Dtype::f32, 11), ref::gated_forward,
                                                     bwd, 1e-6, stride);
    EXPECT_LT(r.max_abs_err, 1e-8 * std::max(1.0, r.max_grad)) << p.shape_string() << " worst " << r.worst;
    EXPECT_GT(r.checked, 0);
    worst = std::max(worst, r.max_abs_err);
    checked += r.checked;
  };
  for (const Shape s : {Shape{2, 2, 7, 4, 3}, Shape{1, 1, 1, 3, 2}, Shape{1, 3, 9, 5, 5}}) {
    const Problem p = gated_problem(GetParam(), s);
    check(p, ref::gated_backward, 1);
    check(p, ref::gated_backward_parallel, 1);
  }
  // Past the recurrent backward's checkpoint interval (64): every 5th element.
  check(gated_problem(GetParam(), Shape{1, 1, 70, 3, 2}), ref::gated_backward, 5);
  std::printf("[ gated/%s ] finite-difference max |analytic - numeric| = %.3g over %lld elements\n",
              GetParam().c_str(), worst, static_cast<long long>(checked));
}

// The fixed gates are scalar gates with a per-head schedule: retention and lightning run the
// `scalar` code path and differ only in the gate values.
TEST(GatedInvariants, FixedGatesEqualScalarWithTheirSchedule) {
  const Shape s{2, 4, 100, 12, 10};
  Tensor o_fixed[2];
  int idx = 0;
  for (const std::string variant : {"retention", "lightning"}) {
    const Problem p = gated_problem(variant, s), ps = gated_problem("scalar", s);
    const Tensors in = make_inputs(p, Pass::bwd, Dtype::bf16, 4);
    Tensors in_s = in;
    Tensor g({s.B, s.H, s.T});
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t t = 0; t < s.T; ++t) g.data[(b * s.H + h) * s.T + t] = ref::gated_fixed_log_gate(variant, h, s.H);
    in_s["g"] = g;
    const Tensors o = ref::gated_forward(p, in), os = ref::gated_forward(ps, in_s);
    EXPECT_EQ(max_abs_diff(o.at("o"), os.at("o")), 0.0) << variant;
    const Tensors d = ref::gated_backward(p, in), ds = ref::gated_backward(ps, in_s);
    for (const char* name : {"dq", "dk", "dv"}) EXPECT_EQ(max_abs_diff(d.at(name), ds.at(name)), 0.0) << variant << name;
    const Tensors e = ref::gated_emulate_forward(p, Dtype::bf16, in), es = ref::gated_emulate_forward(ps, Dtype::bf16, in_s);
    EXPECT_EQ(max_abs_diff(e.at("o"), es.at("o")), 0.0) << variant << " emul";
    const Tensors ed = ref::gated_emulate_backward(p, Dtype::bf16, in);
    const Tensors eds = ref::gated_emulate_backward(ps, Dtype::bf16, in_s);
    for (const char* name : {"dq", "dk", "dv"}) {
      EXPECT_EQ(max_abs_diff(ed.at(name), eds.at(name)), 0.0) << variant << " emul " << name;
    }
    o_fixed[idx++] = o.at("o");
  }
  // The schedules themselves (DESIGN.md), and that they matter.
  EXPECT_DOUBLE_EQ(ref::gated_fixed_log_gate("retention", 0, 4), std::log(31.0 / 32.0));
  EXPECT_DOUBLE_EQ(ref::gated_fixed_log_gate("retention", 3, 4), std::log(255.0 / 256.0));
  EXPECT_DOUBLE_EQ(ref::gated_fixed_log_gate("lightning", 0, 4), -0.25);
  EXPECT_DOUBLE_EQ(ref::gated_fixed_log_gate("lightning", 3, 4), -1.0 / 256.0);
  EXPECT_GT(max_abs_diff(o_fixed[0], o_fixed[1]), 1e-3);
}

// A vector gate constant over Dk is the scalar gate: same outputs, and the scalar's gradient is
// the vector's summed over Dk (fp64 forms and the emulation).
TEST(GatedInvariants, VectorWithGateConstantOverDkEqualsScalar) {
  const Shape s{2, 2, 150, 20, 12};
  const Problem ps = gated_problem("scalar", s), pv = gated_problem("vector", s);
  const Tensors in_s = make_inputs(ps, Pass::bwd, Dtype::f16, 5);
  Tensors in_v = in_s;
  Tensor g({s.B, s.H, s.T, s.Dk});
  for (int64_t x = 0; x < s.B * s.H * s.T; ++x)
    for (int64_t d = 0; d < s.Dk; ++d) g.data[x * s.Dk + d] = in_s.at("g").data[x];
  in_v["g"] = g;
  auto sum_over_dk = [&](const Tensor& dg) {
    Tensor r({s.B, s.H, s.T});
    for (int64_t x = 0; x < r.numel(); ++x)
      for (int64_t d = 0; d < s.Dk; ++d) r.data[x] += dg.data[x * s.Dk + d];
    return r;
  };
  using Fwd = Tensors (*)(const Problem&, const Tensors&);
  for (const auto& [fwd, bwd] : {std::pair<Fwd, Fwd>{ref::gated_forward, ref::gated_backward},
                                 std::pair<Fwd, Fwd>{ref::gated_forward_parallel, ref::gated_backward_parallel}}) {
    EXPECT_LT(max_abs_diff(fwd(ps, in_s).at("o"), fwd(pv, in_v).at("o")), 1e-13);
    const Tensors ds = bwd(ps, in_s), dv = bwd(pv, in_v);
    for (const char* name : {"dq", "dk", "dv"}) EXPECT_LT(max_abs_diff(ds.at(name), dv.at(name)), 1e-13) << name;
    EXPECT_LT(max_abs_diff(ds.at("dg"), sum_over_dk(dv.at("dg"))), 1e-11);
  }
  const Tensors es = ref::gated_emulate_forward(ps, Dtype::f16, in_s), ev = ref::gated_emulate_forward(pv, Dtype::f16, in_v);
  EXPECT_EQ(max_abs_diff(es.at("o"), ev.at("o")), 0.0);
  const Tensors eds = ref::gated_emulate_backward(ps, Dtype::f16, in_s);
  const Tensors edv = ref::gated_emulate_backward(pv, Dtype::f16, in_v);
  for (const char* name : {"dq", "dk", "dv"}) EXPECT_EQ(max_abs_diff(eds.at(name), edv.at(name)), 0.0) << name;
  EXPECT_LT(max_abs_diff(eds.at("dg"), sum_over_dk(edv.at("dg"))), 1e-5 * max_abs(eds.at("dg")));
}

// rwkv6 is the vector form with the step's own decay moved into the query and undone by the
// bonus: for a gate constant in time, g_t = c,
//   vector(q, k, v, c) = rwkv6(q * exp(c), k, v, c, u = exp(-c)).
TEST(GatedInvariants, Rwkv6IsVectorWithTheDecayMovedIntoTheQuery) {
  const Shape s{1, 2, 90, 8, 6};
  const Problem pv = gated_problem("vector", s), pr = gated_problem("rwkv6", s);
  Tensors in_v = make_inputs(pv, Pass::fwd, Dtype::f32, 8);
  Tensors in_r = make_inputs(pr, Pass::fwd, Dtype::f32, 8);
  for (int64_t h = 0; h < s.H; ++h)
    for (int64_t d = 0; d < s.Dk; ++d) {
      const double c = -0.05 * static_cast<double>(1 + d + 3 * h);
      in_r.at("u").data[h * s.Dk + d] = std::exp(-c);
      for (int64_t t = 0; t < s.T; ++t) {
        const int64_t x = (h * s.T + t) * s.Dk + d;  // B = 1
        in_v.at("g").data[x] = in_r.at("g").data[x] = c;
        in_r.at("q").data[x] = in_v.at("q").data[x] * std::exp(c);
      }
    }
  in_r.at("k") = in_v.at("k");
  in_r.at("v") = in_v.at("v");
  const Tensor& o_v = ref::gated_forward(pv, in_v).at("o");
  EXPECT_LT(max_abs_diff(o_v, ref::gated_forward(pr, in_r).at("o")), 1e-12);
  EXPECT_LT(max_abs_diff(o_v, ref::gated_forward_parallel(pr, in_r).at("o")), 1e-12);
}

// The emulation is the `base` of the rule: close to the reference, but not exact (it really
// rounds) for the low-precision dtypes. For fp32 the bound is the rule's fp32 cap: the chunk's
// gate cumsums b_r grow to ~C |g| and their fp32 differences carry ~C |g| 2^-24 relative error
// into the decays, as in every chunkwise kernel.
TEST_P(GatedVariants, EmulationErrorIsOfTheDtypesOrder) {
  const Problem p = gated_problem(GetParam(), Shape{1, 2, 150, 64, 48});
  for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    const Tensors in = make_inputs(p, Pass::bwd, dt, 9);
    Tensors ref_t = ref::gated_forward(p, in), em_t = ref::gated_emulate_forward(p, dt, in);
    ref_t.merge(ref::gated_backward(p, in));
    em_t.merge(ref::gated_emulate_backward(p, dt, in));
    const double u = unit_roundoff(dt), bound = dt == Dtype::f32 ? 1e-5 : 8 * u;
    std::vector<std::string> names = grad_names(p);
    names.insert(names.begin(), "o");
    std::string line;
    for (const auto& name : names) {
      const double e = testing::rel_rms(em_t.at(name), ref_t.at(name));
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s %.2e", name.c_str(), e);
      line += buf;
      EXPECT_LT(e, bound) << dtype_name(dt) << " " << name;
      // du = sum dA_ii q_i*k_i reads only inputs: fp32-exact by design, so no lower bound.
      if (dt != Dtype::f32 && name != "du") {
        EXPECT_GT(e, 0.05 * u) << dtype_name(dt) << " " << name << " suspiciously exact";
      }
    }
    EXPECT_TRUE(all_finite(em_t));
    std::printf("[ gated/%s ] emul %s rel_rms:%s\n", GetParam().c_str(), std::string(dtype_name(dt)).c_str(),
                line.c_str());
  }
}

// One step, one partial chunk, one chunk plus one row, Dk = 60, Dk != Dv: the emulation's chunk
// edges. At T = 1 every decay multiplies S_{-1} = 0, so the gate gradient is exactly 0 in both.
TEST_P(GatedVariants, EmulationAtChunkEdges) {
  for (const Shape s : {Shape{2, 2, 1, 60, 32}, Shape{1, 2, 63, 60, 32}, Shape{1, 2, 65, 32, 60}}) {
    const Problem p = gated_problem(GetParam(), s);
    const Tensors in = make_inputs(p, Pass::bwd, Dtype::bf16, 6);
    Tensors ref_t = ref::gated_forward(p, in), em_t = ref::gated_emulate_forward(p, Dtype::bf16, in);
    ref_t.merge(ref::gated_backward(p, in));
    em_t.merge(ref::gated_emulate_backward(p, Dtype::bf16, in));
    for (const char* name : {"o", "dq", "dk", "dv"}) {
      EXPECT_LT(testing::rel_rms(em_t.at(name), ref_t.at(name)), 8 * unit_roundoff(Dtype::bf16))
          << name << " " << p.shape_string();
    }
    if (s.T == 1 && in.count("g")) {
      EXPECT_EQ(max_abs(ref_t.at("dg")), 0.0);
      EXPECT_EQ(max_abs(em_t.at("dg")), 0.0);
    }
  }
}

// Strong decay (data-dependent gates x20: cumsums reach ~-1000 inside a chunk, exp underflows to
// 0 in fp32): nothing overflows and the emulation still tracks the reference at T = 1013.
TEST_P(GatedVariants, StrongDecayStaysFiniteAtT1013) {
  const Problem p = gated_problem(GetParam(), Shape{1, 2, 1013, 32, 16});
  Tensors in = make_inputs(p, Pass::bwd, Dtype::bf16, 3);
  if (in.count("g")) {
    for (double& x : in.at("g").data) x *= 20;
  }
  Tensors ref_t = ref::gated_forward(p, in), em_t = ref::gated_emulate_forward(p, Dtype::bf16, in);
  ref_t.merge(ref::gated_backward(p, in));
  em_t.merge(ref::gated_emulate_backward(p, Dtype::bf16, in));
  EXPECT_TRUE(all_finite(ref_t));
  EXPECT_TRUE(all_finite(em_t));
  for (const char* name : {"o", "dq", "dk", "dv"}) {
    EXPECT_LT(testing::rel_rms(em_t.at(name), ref_t.at(name)), 8 * unit_roundoff(Dtype::bf16)) << name;
  }
  EXPECT_LT(max_abs_diff(ref_t.at("o"), ref::gated_forward_parallel(p, in).at("o")),
            1e-12 * std::max(1.0, max_abs(ref_t.at("o"))));
}

}  // namespace
}  // namespace attnbench
