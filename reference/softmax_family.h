// The fp64 reference engine shared by the softmax family (softmax, piecewise, hyperbolic).
//
// For query row i of head h (kv head hk = h / (H/Hkv)), with off = Tk - Tq and, when causal,
// key j visible iff j <= i + off:
//   s_ij = Score(i, j)                       (the one thing the family members differ in)
//   P_ij = exp(s_ij - m_i) / l_i,   m_i = max_j s_ij,  l_i = sum_j exp(s_ij - m_i)
//   o_i  = sum_j P_ij v_j,   L_i = m_i + log l_i,   A_j = sum_i P_ij
// A row with no visible key has o_i = 0, L_i = -inf, P_i. = 0.
// Backward, with dO given:
//   dV_j  = sum_i P_ij dO_i
//   dP_ij = dO_i . v_j,   D_i = dO_i . o_i,   dS_ij = P_ij (dP_ij - D_i)
// and the score policy maps dS to the gradients of its own inputs (dq, dk, ...).
//
// A Score policy provides
//   void scores(b, h, hk, i0, n, Mat& S) const;            // S = s for rows [i0, i0+n), n x Tk
//   void backward(b, h, hk, i0, n, const Mat& dS, Tensors& grads) const;  // add to grads
// Work is split into (b, hk) tasks, each owning the dk/dv slices of its kv head, so no locks.
// Rows are processed in blocks so that the n x Tk score block stays small at long sequences.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/algos.h"
#include "core/problem.h"
#include "core/tensor.h"
#include "eigen_slices.h"
#include "parallel.h"
#include "parallel_rows.h"

namespace attnbench::ref {

// Visible keys of query row i: [0, visible_keys(p, i)).
inline int64_t visible_keys(const Problem& p, int64_t i) {
  if (!p.causal) return p.Tk;
  return std::clamp<int64_t>(i + p.off() + 1, 0, p.Tk);
}

// Rows per block so that a block of scores holds about 4M doubles (32 MB), and (with fewer
// slices than cores: parallel_row_blocks) at least one block per core, of 64 rows or more.
inline int64_t row_block(const Problem& p) {
  const int64_t blk = std::clamp<int64_t>((int64_t{1} << 22) / std::max<int64_t>(p.Tk, 1), 1, p.Tq);
  const int64_t cores = cpu_workers(), slices = p.B * p.Hkv;
  if (slices >= cores) return blk;
  return std::min(blk, std::max<int64_t>(64, (p.Tq * slices + cores - 1) / cores));
}

// Softmax of the masked score block, in place: S becomes P. Fills m and l per row.
inline void softmax_rows(const Problem& p, int64_t i0, Mat& S, Vec& m, Vec& l) {
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  const int64_t n = S.rows();
  m.resize(n);
  l.resize(n);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t vis = visible_keys(p, i0 + r);
    if (vis == 0) {  // fully masked row
      S.row(r).setZero();
      m(r) = kNegInf;
      l(r) = 0;
      continue;
    }
    auto row = S.row(r);
    row.tail(p.Tk - vis).setConstant(kNegInf);
    m(r) = row.head(vis).maxCoeff();
    row = (row.array() - m(r)).exp().matrix();
    row.tail(p.Tk - vis).setZero();  // masked P exactly 0: Eigen's vectorized exp(-inf) is a subnormal
    l(r) = row.sum();
    row /= l(r);
  }
}

// Forward: o, and lse / total as p.params asks.
template <class Score>
Tensors softmax_family_forward(const Problem& p, const Tensors& in, const Score& score) {
  Tensors out;
  for (const auto& spec : forward_outputs(p)) out.emplace(spec.name, Tensor(spec.shape));
  const Tensor& v = in.at("v");
  const int64_t G = p.group(), blk = row_block(p);
  parallel_row_blocks(p.B * p.Hkv, (p.Tq + blk - 1) / blk, out, [&](int64_t task, int64_t part, int64_t parts, Tensors& dst) {
    const int64_t b = task / p.Hkv, hk = task % p.Hkv;
    Tensor& o = dst.at("o");
    Tensor* lse = p.params.lse ? &dst.at("lse") : nullptr;
    Tensor* total = p.params.total_attention ? &dst.at("total") : nullptr;
    Mat S;
    Vec m, l;
    for (int64_t h = hk * G; h < (hk + 1) * G; ++h) {
      for (int64_t i0 = part * blk; i0 < p.Tq; i0 += parts * blk) {
        const int64_t n = std::min(blk, p.Tq - i0);
        S.resize(n, p.Tk);
        score.scores(b, h, hk, i0, n, S);
        softmax_rows(p, i0, S, m, l);
        slice(o, b, h).middleRows(i0, n).noalias() = S * slice(v, b, hk);
        if (lse) row_slice(*lse, b, h).segment(i0, n) = m.array() + l.array().log();
        if (total) row_slice(*total, b, h) += S.colwise().sum().transpose();
      }
    }
  });
  return out;
}

// Backward: the gradient of every differentiable input (names from backward_outputs()).
template <class Score>
Tensors softmax_family_backward(const Problem& p, const Tensors& in, const Score& score) {
  Tensors grads;
  for (const auto& spec : backward_outputs(p)) grads.emplace(spec.name, Tensor(spec.shape));
  const Tensor& v = in.at("v");
  const Tensor& dout = in.at("do");
  const int64_t G = p.group(), blk = row_block(p);
  parallel_row_blocks(p.B * p.Hkv, (p.Tq + blk - 1) / blk, grads, [&](int64_t task, int64_t part, int64_t parts, Tensors& dst) {
    const int64_t b = task / p.Hkv, hk = task % p.Hkv;
    Tensor& dv = dst.at("dv");
    Mat S, O, dS;
    Vec m, l;
    const auto V = slice(v, b, hk);
    for (int64_t h = hk * G; h < (hk + 1) * G; ++h) {
      for (int64_t i0 = part * blk; i0 < p.Tq; i0 += parts * blk) {
        const int64_t n = std::min(blk, p.Tq - i0);
        S.resize(n, p.Tk);
        score.scores(b, h, hk, i0, n, S);
        softmax_rows(p, i0, S, m, l);                       // S now holds P
        const auto dO = slice(dout, b, h).middleRows(i0, n);
        O.noalias() = S * V;
        slice(dv, b, hk).noalias() += S.transpose() * dO;   // dV = P^T dO
        dS.noalias() = dO * V.transpose();                  // dP = dO V^T
        const Vec D = (dO.array() * O.array()).rowwise().sum();
        dS = (S.array() * (dS.colwise() - D).array()).matrix();  // dS = P o (dP - D)
        score.backward(b, h, hk, i0, n, dS, dst);
      }
    }
  });
  return grads;
}

}  // namespace attnbench::ref
