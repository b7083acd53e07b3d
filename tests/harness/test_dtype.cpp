#include <gtest/gtest.h>

#include <cmath>

#include "core/dtype.h"
#include "core/tensor.h"

namespace attnbench {
namespace {

TEST(Dtype, RoundToBf16TiesToEven) {
  EXPECT_EQ(round_to(Dtype::bf16, 1.0 + std::ldexp(1.0, -8)), 1.0);  // tie -> even (1.0)
  EXPECT_EQ(round_to(Dtype::bf16, 1.0 + 3 * std::ldexp(1.0, -8)), 1.0 + std::ldexp(1.0, -6));  // tie -> even
  EXPECT_EQ(round_to(Dtype::bf16, 1.0 + std::ldexp(1.0, -8) + 1e-12), 1.0 + std::ldexp(1.0, -7));
  EXPECT_TRUE(std::isinf(round_to(Dtype::bf16, 3.5e38)));
}

TEST(Dtype, RoundToF16RangeAndSubnormals) {
  EXPECT_EQ(round_to(Dtype::f16, 65504.0), 65504.0);
  EXPECT_EQ(round_to(Dtype::f16, 65519.0), 65504.0);
  EXPECT_TRUE(std::isinf(round_to(Dtype::f16, 65520.0)));
  EXPECT_EQ(round_to(Dtype::f16, std::ldexp(1.0, -24)), std::ldexp(1.0, -24));  // smallest subnormal
  EXPECT_EQ(round_to(Dtype::f16, std::ldexp(1.0, -26)), 0.0);                   // below half of it
  EXPECT_EQ(round_to(Dtype::f16, 1.0 + std::ldexp(1.0, -11)), 1.0);             // tie -> even
}

TEST(Dtype, RoundToF32MatchesFloatCast) {
  Tensor t({10000});
  fill_normal(t, 3, 1e3);
  for (double v : t.data) EXPECT_EQ(round_to(Dtype::f32, v), static_cast<double>(static_cast<float>(v)));
}

TEST(Dtype, Bits16RoundTrip) {
  Tensor t({20000});
  fill_normal(t, 4, 10.0);
  t.data.push_back(std::ldexp(3.0, -24));  // fp16 subnormal
  t.data.push_back(-0.0);
  t.data.push_back(INFINITY);
  for (Dtype d : {Dtype::f16, Dtype::bf16}) {
    for (double v : t.data) {
      const double r = round_to(d, v);
      EXPECT_EQ(from_bits16(d, to_bits16(d, r)), r) << dtype_name(d) << " " << v;
    }
  }
  EXPECT_EQ(to_bits16(Dtype::f16, 1.0), 0x3c00);
  EXPECT_EQ(to_bits16(Dtype::bf16, 1.0), 0x3f80);
}

TEST(Dtype, Names) {
  EXPECT_EQ(parse_dtype("bf16"), Dtype::bf16);
  EXPECT_EQ(parse_dtype("fp16"), Dtype::f16);
  EXPECT_EQ(parse_dtype("fp32"), Dtype::f32);
  EXPECT_FALSE(parse_dtype("int8").has_value());
}

TEST(Tensor, FillsAreDeterministicAndNormal) {
  Tensor a({100000}), b({100000});
  fill_normal(a, 9);
  fill_normal(b, 9);
  EXPECT_EQ(a.data, b.data);
  double mean = 0, var = 0;
  for (double v : a.data) mean += v;
  mean /= 1e5;
  for (double v : a.data) var += (v - mean) * (v - mean);
  var /= 1e5;
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(var, 1.0, 0.02);
}

}  // namespace
}  // namespace attnbench
