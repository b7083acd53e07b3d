// What the causal linear families' reference tests share (linear, based): the shape of a case,
// its Problem and test name, and the check that a chunked form of the op, at chunk sizes 1 (the
// token recurrence), 16 and 64, equals the quadratic form from the definition in fp64.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <tuple>
#include <utility>

#include "common/finite_diff.h"
#include "core/algos.h"

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

}  // namespace attnbench::testing
