// Fast float rounding to a storage dtype for the CPU same-precision emulations (the hot loops
// round whole probability matrices). Bit-exact with core round_to(): round to nearest, ties to
// even, subnormals kept, overflow to infinity.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include <Eigen/Dense>

#include "core/dtype.h"

namespace attnbench::ref {

inline float round_bf16(float x) {
  if (std::isnan(x)) return x;
  uint32_t u = 0;
  std::memcpy(&u, &x, sizeof u);
  u += 0x7fffu + ((u >> 16) & 1u);  // ties to even on bit 16; carries into the exponent correctly
  u &= 0xffff0000u;
  float r = 0;
  std::memcpy(&r, &u, sizeof r);
  return r;
}

inline float round_f16(float x) {
  if (!std::isfinite(x)) return x;
  const float a = std::fabs(x);
  if (a < 0x1.0p-14f) return std::nearbyint(x * 0x1.0p24f) * 0x1.0p-24f;  // subnormal grid 2^-24
  uint32_t u = 0;
  std::memcpy(&u, &x, sizeof u);
  u += 0xfffu + ((u >> 13) & 1u);  // keep 10 fraction bits, ties to even
  u &= 0xffffe000u;
  float r = 0;
  std::memcpy(&r, &u, sizeof r);
  if (std::fabs(r) > 65504.0f) return std::copysign(INFINITY, x);
  return r;
}

inline float round_dtype(Dtype d, float x) {
  switch (d) {
    case Dtype::bf16: return round_bf16(x);
    case Dtype::f16: return round_f16(x);
    case Dtype::f32: return x;
  }
  return x;
}

template <class Derived>
void round_inplace(Dtype d, Eigen::DenseBase<Derived>& m) {
  if (d == Dtype::f32) return;
  m = m.unaryExpr([d](float x) { return round_dtype(d, x); });
}

}  // namespace attnbench::ref
