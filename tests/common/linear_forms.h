// What the causal linear families' reference tests share (linear, based): the shape of a case,
// its Problem and test name, the check that a chunked form of the op, at chunk sizes 1 (the token
// recurrence), 16 and 64, equals the quadratic form from the definition in fp64, and the check
// that the same-precision emulation's error is of its dtype's order.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <tuple>
#include <utility>

#include "common/finite_diff.h"
#include "core/algos.h"
#include "core/dtype.h"

namespace attnbench::testing {

struct LinearShape {
  int64_t B, H, T, Dk, Dv;
};

inline Problem linear_family_problem(const std::string& algo, const LinearShape& s, bool normalize) {
  Problem p = make_problem(algo, s.B, s.H, s.T, s.T, s.Dk, s.Dv, true);
  p.params.normalize = normalize ? 1 : 0;
  return p;
}

// "B2H2T63Dk60Dv60norm": the name of a (shape, normalize) test case.
inline std::string linear_shape_name(const ::testing::TestParamInfo<std::tuple<LinearShape, bool>>& i) {
  const LinearShape& s = std::get<0>(i.param);
  return "B" + std::to_string(s.B) + "H" + std::to_string(s.H) + "T" + std::to_string(s.T) + "Dk" +
         std::to_string(s.Dk) + "Dv" + std::to_string(s.Dv) + (std::get<1>(i.param) ? "norm" : "plain");
}

// forms(chunk) -> {forward outputs, backward outputs} of the chunked form; quad_f, quad_b the
// quadratic form's. Unnormalized outputs grow with T and Dk, so o, dq, dk, dv are compared relative
// to max(1, max |quadratic|): each must agree to 1e-12. Prints and returns the worst ratio.
template <class Forms>
double expect_chunked_matches_quadratic(const char* label, const Tensors& quad_f, const Tensors& quad_b, Forms forms) {
  double worst = 0;
  for (int64_t chunk : {1, 16, 64}) {
    const auto [f, b] = forms(chunk);
    for (const auto& [mine, theirs, name] : {std::tuple{&f, &quad_f, "o"}, std::tuple{&b, &quad_b, "dq"},
                                             std::tuple{&b, &quad_b, "dk"}, std::tuple{&b, &quad_b, "dv"}}) {
      const double d = max_abs_diff(mine->at(name), theirs->at(name)) / std::max(1.0, max_abs(theirs->at(name)));
      EXPECT_LT(d, 1e-12) << name << " chunk " << chunk;
      worst = std::max(worst, d);
    }
  }
  std::printf("[ %s ] chunked vs quadratic max |diff| / max(1, |x|) = %.3g\n", label, worst);
  return worst;
}

// The emulation is the `base` of the rule: close to the reference, but not exact (it really
// rounds) for the low-precision dtypes. For fp32, f16 and bf16 inputs drawn from seed 9: rel_rms
// of o, dq, dk, dv against the reference below 8 u (32 u for fp32, whose error is accumulation
// order), and for f16/bf16 above 0.05 u and differing from the exact answer rounded once (the
// intermediate roundings show). ref_f/ref_b(p, in), emul_f/emul_b(p, dt, in).
template <class RefF, class RefB, class EmulF, class EmulB>
void expect_emulation_error_of_dtype_order(const char* label, const Problem& p, RefF ref_f, RefB ref_b, EmulF emul_f,
                                           EmulB emul_b) {
  for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    const Tensors in = make_inputs(p, Pass::bwd, dt, 9);
    const Tensors rf = ref_f(p, in), ef = emul_f(p, dt, in);
    const Tensors rb = ref_b(p, in), eb = emul_b(p, dt, in);
    const double u = unit_roundoff(dt);
    const double bound = (dt == Dtype::f32 ? 32 : 8) * u;
    std::string line;
    for (const auto& [ref_t, em_t, name] : {std::tuple{&rf, &ef, "o"}, std::tuple{&rb, &eb, "dq"},
                                            std::tuple{&rb, &eb, "dk"}, std::tuple{&rb, &eb, "dv"}}) {
      const double e = rel_rms(em_t->at(name), ref_t->at(name));
      line += " " + std::string(name) + " " + std::to_string(e / u).substr(0, 4);
      EXPECT_LT(e, bound) << dtype_name(dt) << " " << name << " normalize " << p.params.normalize;
      if (dt != Dtype::f32) {
        EXPECT_GT(e, 0.05 * u) << dtype_name(dt) << " " << name << " suspiciously exact";
        Tensor rounded_ref = ref_t->at(name);
        round_tensor(dt, rounded_ref);
        EXPECT_GT(max_abs_diff(em_t->at(name), rounded_ref), 0.0) << dtype_name(dt) << " " << name;
      }
    }
    std::printf("[ %s ] emul %s normalize=%d rel_rms / u:%s\n", label, std::string(dtype_name(dt)).c_str(),
                static_cast<int>(p.params.normalize), line.c_str());
  }
}

}  // namespace attnbench::testing
