#include "core/dtype.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace attnbench {
namespace {

// A binary floating-point format: p significand bits (implicit bit included), smallest normal
// exponent emin (value 2^emin), largest finite value.
struct Format {
  int p;
  int emin;
  double max_finite;
};

Format format_of(Dtype d) {
  switch (d) {
    case Dtype::f32: return {24, -126, 3.4028234663852886e38};
    case Dtype::f16: return {11, -14, 65504.0};
    case Dtype::bf16: return {8, -126, 3.3895313892515355e38};
  }
  return {53, -1022, std::numeric_limits<double>::max()};
}

}  // namespace

std::string_view dtype_name(Dtype d) {
  switch (d) {
    case Dtype::f32: return "fp32";
    case Dtype::f16: return "fp16";
    case Dtype::bf16: return "bf16";
  }
  return "?";
}

std::optional<Dtype> parse_dtype(std::string_view n) {
  if (n == "fp32" || n == "f32" || n == "float32" || n == "float") return Dtype::f32;
  if (n == "fp16" || n == "f16" || n == "float16" || n == "half") return Dtype::f16;
  if (n == "bf16" || n == "bfloat16") return Dtype::bf16;
  return std::nullopt;
}

std::size_t dtype_bytes(Dtype d) { return d == Dtype::f32 ? 4 : 2; }

double unit_roundoff(Dtype d) { return std::ldexp(1.0, -format_of(d).p); }

double round_to(Dtype d, double x) {
  if (!std::isfinite(x) || x == 0.0) return x;
  if (d == Dtype::f32) return static_cast<double>(static_cast<float>(x));  // IEEE, RNE
  const Format f = format_of(d);
  int e = 0;
  std::frexp(x, &e);               // |x| in [2^(e-1), 2^e)
  const int exp = std::max(e - 1, f.emin);  // exponent of the leading bit; subnormals share emin
  const double ulp = std::ldexp(1.0, exp - (f.p - 1));
  const double r = std::nearbyint(x / ulp) * ulp;  // default rounding mode: ties to even
  if (std::fabs(r) > f.max_finite) return std::copysign(std::numeric_limits<double>::infinity(), x);
  return r;
}

uint16_t to_bits16(Dtype d, double x) {
  const float v = static_cast<float>(x);  // exact when x is representable in d
  uint32_t u = 0;
  std::memcpy(&u, &v, sizeof u);
  if (d == Dtype::bf16) return static_cast<uint16_t>(u >> 16);
  // fp16 from an fp32 value that is exactly representable in fp16.
  const uint32_t sign = (u >> 16) & 0x8000u;
  if (std::isnan(v)) return static_cast<uint16_t>(sign | 0x7e00u);
  if (std::isinf(v)) return static_cast<uint16_t>(sign | 0x7c00u);
  const double a = std::fabs(x);
  if (a == 0.0) return static_cast<uint16_t>(sign);
  int e = 0;
  const double m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  if (e - 1 < -14) {                   // subnormal: a = frac * 2^-24
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::ldexp(a, 24)));
  }
  const uint32_t exp_bits = static_cast<uint32_t>(e - 1 + 15);
  const uint32_t frac = static_cast<uint32_t>(std::ldexp(m * 2.0 - 1.0, 10));
  return static_cast<uint16_t>(sign | (exp_bits << 10) | frac);
}

double from_bits16(Dtype d, uint16_t b) {
  if (d == Dtype::bf16) {
    const uint32_t u = static_cast<uint32_t>(b) << 16;
    float v = 0;
    std::memcpy(&v, &u, sizeof v);
    return v;
  }
  const double sign = (b & 0x8000u) ? -1.0 : 1.0;
  const int exp_bits = (b >> 10) & 0x1f;
  const int frac = b & 0x3ff;
  if (exp_bits == 0x1f) {
    return frac ? std::numeric_limits<double>::quiet_NaN()
                : sign * std::numeric_limits<double>::infinity();
  }
  if (exp_bits == 0) return sign * std::ldexp(frac, -24);
  return sign * std::ldexp(1024 + frac, exp_bits - 25);
}

}  // namespace attnbench
