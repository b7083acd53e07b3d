// The emulations' fast float rounding must be bit-exact with core round_to().
#include <gtest/gtest.h>

#include <cmath>

#include "core/tensor.h"
#include "round_fast.h"

namespace attnbench {
namespace {

TEST(FastRounding, MatchesRoundTo) {
  Tensor t({200000});
  fill_normal(t, 42, 1.0);
  int64_t i = 0;
  for (double& v : t.data) v *= std::ldexp(1.0, static_cast<int>(i++ % 60) - 30);  // 2^-30 .. 2^29
  t.data.push_back(65519.0);  // rounds to fp16 max 65504
  t.data.push_back(65520.0);  // rounds to fp16 inf
  t.data.push_back(3e-8);     // fp16 subnormal
  for (Dtype d : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    for (double v : t.data) {
      const float f = static_cast<float>(v);
      ASSERT_EQ(static_cast<double>(ref::round_dtype(d, f)), round_to(d, f)) << dtype_name(d) << " " << v;
    }
  }
}

}  // namespace
}  // namespace attnbench
