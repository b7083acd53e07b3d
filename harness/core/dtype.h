// Storage dtypes and host-side rounding to them.
//
// Every tensor an implementation reads or writes is stored in one of fp32, fp16, bf16; arithmetic
// accumulates in fp32. On the host we keep values in double and round them to a dtype with
// round_to(), which is exact round-to-nearest-even from double (no double rounding through float),
// with the dtype's subnormals and overflow to infinity.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace attnbench {

enum class Dtype { f32, f16, bf16 };

std::string_view dtype_name(Dtype d);                       // "fp32", "fp16", "bf16"
std::optional<Dtype> parse_dtype(std::string_view name);     // also accepts float32/half/bfloat16
std::size_t dtype_bytes(Dtype d);

// Round a double to the nearest value representable in `d` (ties to even). NaN stays NaN,
// values beyond the largest finite become +-inf.
double round_to(Dtype d, double x);

// Bit conversions for uploading to and downloading from a device. `x` must already be
// representable (round_to first); from_bits is exact.
uint16_t to_bits16(Dtype d, double x);
double from_bits16(Dtype d, uint16_t bits);

// Unit roundoff u = 2^-p (half an ulp at 1): fp32 2^-24, fp16 2^-11, bf16 2^-8.
double unit_roundoff(Dtype d);

}  // namespace attnbench
