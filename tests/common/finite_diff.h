// Central finite differences in fp64 for checking a reference's backward.
//
// With the scalar loss  l = sum(do * o)  (o the forward output "o", do the upstream gradient in
// the inputs), the backward's d<x> must equal dl/dx. For every element of every differentiable
// input x: (l(x + h) - l(x - h)) / 2h, compared with the analytic gradient.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "core/algos.h"
#include "core/tensor.h"

namespace attnbench::testing {

struct FdResult {
  double max_abs_err = 0;   // max |analytic - numeric| over all checked elements
  double max_grad = 0;      // max |analytic|, for scale
  std::string worst;        // "dk[17]"
  int64_t checked = 0;
};

using ForwardFn = std::function<Tensors(const Problem&, const Tensors&)>;
using BackwardFn = std::function<Tensors(const Problem&, const Tensors&)>;

inline double loss(const Tensors& out, const Tensor& dout) {
  const Tensor& o = out.at("o");
  double l = 0;
  for (int64_t i = 0; i < o.numel(); ++i) l += o.data[i] * dout.data[i];
  return l;
}

// `stride` > 1 checks every stride-th element only (for larger inputs).
inline FdResult finite_difference_check(const Problem& p, Tensors in, const ForwardFn& fwd, const BackwardFn& bwd,
                                        double h = 1e-6, int64_t stride = 1) {
  FdResult r;
  const Tensors grads = bwd(p, in);
  const Tensor dout = in.at("do");
  for (const auto& spec : forward_inputs(p)) {
    if (!spec.differentiable) continue;
    const Tensor& g = grads.at("d" + spec.name);
    Tensor& x = in.at(spec.name);
    for (int64_t i = 0; i < x.numel(); i += stride) {
      const double x0 = x.data[i];
      x.data[i] = x0 + h;
      const double lp = loss(fwd(p, in), dout);
      x.data[i] = x0 - h;
      const double lm = loss(fwd(p, in), dout);
      x.data[i] = x0;
      const double numeric = (lp - lm) / (2 * h);
      const double e = std::fabs(numeric - g.data[i]);
      r.max_grad = std::max(r.max_grad, std::fabs(g.data[i]));
      if (e > r.max_abs_err) {
        r.max_abs_err = e;
        r.worst = "d" + spec.name + "[" + std::to_string(i) + "]";
      }
      ++r.checked;
    }
  }
  return r;
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (std::isinf(a.data[i]) && a.data[i] == b.data[i]) continue;
    m = std::max(m, std::fabs(a.data[i] - b.data[i]));
  }
  return m;
}

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (double x : t.data) m = std::max(m, std::fabs(x));
  return m;
}

inline double rel_rms(const Tensor& x, const Tensor& ref) {
  double d = 0, r = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    d += (x.data[i] - ref.data[i]) * (x.data[i] - ref.data[i]);
    r += ref.data[i] * ref.data[i];
  }
  return r > 0 ? std::sqrt(d / r) : std::sqrt(d);
}

// A problem with the common fields set; tests adjust the rest.
inline Problem make_problem(const std::string& algo, int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t Dk,
                            int64_t Dv, bool causal, int64_t Hkv = -1, const std::string& variant = "") {
  Problem p;
  p.algo = algo;
  p.variant = variant;
  p.B = B;
  p.H = H;
  p.Hkv = Hkv < 0 ? H : Hkv;
  p.Tq = Tq;
  p.Tk = Tk;
  p.Dk = Dk;
  p.Dv = Dv;
  p.causal = causal;
  return p;
}

}  // namespace attnbench::testing
