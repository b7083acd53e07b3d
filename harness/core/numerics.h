// The numerics rule (DESIGN.md), in one place.
//
// For each output tensor X of an implementation under test, against the fp64 oracle `ref` and the
// same-precision run `base` (the computation as a careful kernel does it in the storage dtype):
//
//   err      = max |X - ref|
//   err_base = max |base - ref|
//   floor    = 2 * max |round_dtype(ref) - ref|     (what storing the exact answer would cost)
//   rel_rms  = ||X - ref||_2 / ||ref||_2
//   pass iff  err <= k * err_base + floor   (k = 2 by default)
//        and  X has no NaN/Inf where ref is finite (and matches ref where ref is +-inf)
//        and  rel_rms <= cap(dtype)          (fp32 1e-5, fp16 5e-3, bf16 2e-2)
//
// Why these caps: a bf16 value carries 8 significant bits (unit roundoff 2^-8 = 3.9e-3), fp16 11
// (4.9e-4), fp32 24 (6e-8). A correct kernel's relative RMS error sits a few unit roundoffs above
// the storage rounding, so the caps are ~5x (bf16), ~10x (fp16) and ~170x (fp32, whose error is
// dominated by accumulation order over long rows) the unit roundoff. They catch kernels that pass
// the max-error test only because the base itself is bad.
//
// Elements where ref is NaN are "not computed by the oracle" (sampled oracles leave them NaN) and
// are skipped; a check that compares nothing fails.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace attnbench {

constexpr double kDefaultK = 2.0;

// The relative-RMS cap of the rule for a run in `dtype`.
double rel_rms_cap(Dtype dtype);

struct TensorVerdict {
  std::string tensor;
  double err = 0, err_base = 0, floor = 0, rel_rms = 0, k = kDefaultK, cap = 0;
  int64_t compared = 0;          // elements compared (ref not NaN)
  int64_t nonfinite = 0;         // X NaN/Inf where ref finite, or X != ref where ref is +-inf
  int64_t base_nonfinite = 0;    // the same for base: then the check cannot judge and fails
  bool pass = false;
  std::string why;               // empty when pass; else the first reason
  // err / (k * err_base + floor): above 1 fails the max-error test. Used to pick the worst tensor.
  double margin() const;
};

// Check one tensor. `run_dtype` sets the rel_rms cap; `store_dtype` (the tensor's storage dtype,
// fp32 for lse and gate gradients) sets the floor.
TensorVerdict check_tensor(const std::string& name, const Tensor& x, const Tensor& ref, const Tensor& base,
                           Dtype run_dtype, Dtype store_dtype, double k = kDefaultK);

struct Verdict {
  bool pass = false;
  std::vector<TensorVerdict> tensors;
  // The tensor that decides the row: the first failing one, else the one with the largest margin.
  const TensorVerdict& worst() const;
  std::string summary() const;   // "pass" or "fail: dq err 3e-2 > ..."
};

}  // namespace attnbench
