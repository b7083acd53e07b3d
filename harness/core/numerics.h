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
//        and  rel_rms <= max(cap(dtype), k * rel_rms_base)   (cap: fp32 1e-5, fp16 5e-3, bf16 2e-2)
//
// Why these caps: a bf16 value carries 8 significant bits (unit roundoff 2^-8 = 3.9e-3), fp16 11
// (4.9e-4), fp32 24 (6e-8). A correct kernel's relative RMS error sits a few unit roundoffs above
// the storage rounding, so the caps are ~5x (bf16), ~10x (fp16) and ~170x (fp32, whose error is
// dominated by accumulation order over long rows) the unit roundoff. They catch kernels that pass
// the max-error test only because the base itself is bad.
//
// Ill-conditioned outputs: a tensor whose exact values lie far below the rounding noise of the
// pass that computes it, e.g. the dq of normalized linear attention at T = 1, which is O(eps) and
// comes out of a cancellation, cannot meet the cap in any same-precision implementation. It is
// recognized by the base: its error is at the rounding level of the pass (err_base <= 16 u S, S
// the largest |ref| over all outputs of the pass, u the dtype's unit roundoff) and yet its
// relative RMS error exceeds the cap. There the cap becomes k * rel_rms_base (the 2x rule applied
// to the RMS error too) and the verdict says so. A base that is merely wrong has errors well
// beyond 16 u S and keeps the cap as written: the cap's purpose, catching a bad base, stands.
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
  double rel_rms_base = 0;       // the base's relative RMS error against ref
  bool ill_conditioned = false;  // see above: the cap became k * rel_rms_base
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
// `pass_scale`: the largest |ref| over every output of the pass (0: this tensor's own).
TensorVerdict check_tensor(const std::string& name, const Tensor& x, const Tensor& ref, const Tensor& base,
                           Dtype run_dtype, Dtype store_dtype, double k = kDefaultK, double pass_scale = 0);
constexpr double kIllConditionedUlps = 16;
double max_abs_finite(const Tensor& t);  // the largest finite |value|, NaN skipped

struct Verdict {
  bool pass = false;
  std::vector<TensorVerdict> tensors;
  // The tensor that decides the row: the first failing one, else the one with the largest margin.
  const TensorVerdict& worst() const;
  std::string summary() const;   // "pass" or "fail: dq err 3e-2 > ..."
};

}  // namespace attnbench
