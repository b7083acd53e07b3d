// The variants of `gated` as data: where the log-gate comes from and whether rwkv6's bonus
// replaces the diagonal term. Every formulation (fp64 and emulated) reads one slice's gates as
// a T x Dk matrix through log_gates(), so the variants share one code path and differ only in
// the gate values: a fixed per-head schedule, a scalar broadcast over Dk, or a vector.
#pragma once

#include <stdexcept>
#include <string>

#include <Eigen/Dense>

#include "core/problem.h"
#include "gated.h"

namespace attnbench::ref {

enum class GateSource { fixed, scalar, vector };

struct GatedVariant {
  GateSource gate = GateSource::fixed;
  bool bonus = false;  // rwkv6: o_t = scale q_t (S_{t-1} + diag(u) k_t^T v_t)
};

inline GatedVariant gated_variant(const std::string& v) {
  if (v == "retention" || v == "lightning") return {GateSource::fixed, false};
  if (v == "scalar") return {GateSource::scalar, false};
  if (v == "vector") return {GateSource::vector, false};
  if (v == "rwkv6") return {GateSource::vector, true};
  throw std::invalid_argument("gated: unknown variant '" + v + "'");
}

template <class Scalar>
using GateMat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The log-gates of slice (b, h) as T x Dk. `g` is the input "g" ([B,H,T] or [B,H,T,Dk]; unused
// for a fixed gate); GT is Tensor or FTensor.
template <class Scalar, class GT>
GateMat<Scalar> log_gates(const Problem& p, GatedVariant var, const GT* g, int64_t b, int64_t h) {
  const int64_t T = p.Tq, Dk = p.Dk, bh = b * p.H + h;
  GateMat<Scalar> G(T, Dk);
  switch (var.gate) {
    case GateSource::fixed:
      G.setConstant(static_cast<Scalar>(gated_fixed_log_gate(p.variant, h, p.H)));
      break;
    case GateSource::scalar:
      for (int64_t t = 0; t < T; ++t) G.row(t).setConstant(static_cast<Scalar>(g->data[bh * T + t]));
      break;
    case GateSource::vector:
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < Dk; ++d) G(t, d) = static_cast<Scalar>(g->data[(bh * T + t) * Dk + d]);
      break;
  }
  return G;
}

// Store a slice's T x Dk gate gradient in the gate's own shape: a scalar gate is broadcast over
// Dk, so its gradient is the sum over Dk. A fixed gate has no gradient.
template <class Scalar, class GT>
void store_gate_grad(const Problem& p, GatedVariant var, const GateMat<Scalar>& dG, GT* dg, int64_t b, int64_t h) {
  const int64_t T = p.Tq, Dk = p.Dk, bh = b * p.H + h;
  if (var.gate == GateSource::scalar) {
    for (int64_t t = 0; t < T; ++t) dg->data[bh * T + t] = dG.row(t).sum();
  } else if (var.gate == GateSource::vector) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < Dk; ++d) dg->data[(bh * T + t) * Dk + d] = dG(t, d);
  }
}

// Row h of the bonus u [H, Dk] (rwkv6), as a 1 x Dk row.
template <class Scalar, class GT>
Eigen::Matrix<Scalar, 1, Eigen::Dynamic> bonus_row(const Problem& p, const GT& u, int64_t h) {
  Eigen::Matrix<Scalar, 1, Eigen::Dynamic> r(p.Dk);
  for (int64_t d = 0; d < p.Dk; ++d) r(d) = static_cast<Scalar>(u.data[h * p.Dk + d]);
  return r;
}

}  // namespace attnbench::ref
