// The fp64 quadratic (parallel) engine shared by `linear` and `based`: causal attention whose
// weights are a function of the raw dot product, with an optional normalizer. For one (b, h) slice:
//   x_ij = q_i.k_j,   a_ij = a(x_ij) for j <= i (0 above the diagonal)
//   n_i  = sum_j a_ij v_j,   D_i = sum_j a_ij + eps (normalize) or 1,   o_i = n_i / D_i
// with the weight policy a():
//   linear: a(x) = scale x              (then D_i = scale q_i.sum_{j<=i} k_j + eps)
//   based:  a(x) = 1 + s + s^2/2, s = scale x
// Backward (loss l with dl/do = dO), with w_i = dO_i / D_i and delta_i = w_i.o_i (0 without the
// normalizer):
//   dV_j = sum_{i>=j} a_ij w_i
//   da_ij = w_i.v_j - delta_i,   dx_ij = da_ij a'(x_ij)
//   dQ_i = sum_{j<=i} dx_ij k_j,   dK_j = sum_{i>=j} dx_ij q_i
// Rows go in blocks of kQuadraticRows; block [i0, i0+n) scores only the keys [0, i0+n) it can see,
// so the work is the causal half plus one small triangle per block and the memory n x T.
// A Weight policy provides
//   void weights(const Mat& X, Mat& A) const;       // A = a(X), elementwise
//   void derivative(const Mat& X, Mat& dX) const;   // dX = a'(X), elementwise
#pragma once

#include <algorithm>

#include "core/algos.h"
#include "core/problem.h"
#include "core/tensor.h"
#include "eigen_slices.h"
#include "parallel.h"
#include "parallel_rows.h"

namespace attnbench::ref {

constexpr int64_t kQuadraticRows = 128;

// Zero the entries above the causal diagonal (j > i) of the weights of rows [i0, i0+n) against
// keys [0, i0+n): row r sees keys j <= i0 + r, so its last n - 1 - r entries are masked.
template <class Derived>
void mask_upper(Eigen::MatrixBase<Derived>& A) {
  const int64_t n = A.rows();
  for (int64_t r = 0; r + 1 < n; ++r) A.row(r).tail(n - 1 - r).setZero();
}

template <class Weight>
Tensors weighted_causal_forward(const Problem& p, const Tensors& in, const Weight& weight, bool normalize,
                                double eps) {
  Tensors out;
  for (const auto& spec : forward_outputs(p)) out.emplace(spec.name, Tensor(spec.shape));
  const int64_t T = p.Tq, nblocks = (T + kQuadraticRows - 1) / kQuadraticRows;
  parallel_row_blocks(p.B * p.H, nblocks, out, [&](int64_t task, int64_t part, int64_t parts, Tensors& dst) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(in.at("q"), b, h), K = slice(in.at("k"), b, h), V = slice(in.at("v"), b, h);
    auto O = slice(dst.at("o"), b, h);
    Mat X, A;
    for (int64_t i0 = part * kQuadraticRows; i0 < T; i0 += parts * kQuadraticRows) {
      const int64_t n = std::min(kQuadraticRows, T - i0), e = i0 + n;
      X.noalias() = Q.middleRows(i0, n) * K.topRows(e).transpose();  // (n, e)
      weight.weights(X, A);
      mask_upper(A);
      auto Ob = O.middleRows(i0, n);
      Ob.noalias() = A * V.topRows(e);                                // n_i
      if (normalize) Ob.array().colwise() /= A.rowwise().sum().array() + eps;
    }
  });
  return out;
}

template <class Weight>
Tensors weighted_causal_backward(const Problem& p, const Tensors& in, const Weight& weight, bool normalize,
                                 double eps) {
  Tensors grads;
  for (const auto& spec : backward_outputs(p)) grads.emplace(spec.name, Tensor(spec.shape));
  const int64_t T = p.Tq, nblocks = (T + kQuadraticRows - 1) / kQuadraticRows;
  parallel_row_blocks(p.B * p.H, nblocks, grads, [&](int64_t task, int64_t part, int64_t parts, Tensors& dst) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(in.at("q"), b, h), K = slice(in.at("k"), b, h), V = slice(in.at("v"), b, h);
    const auto dO = slice(in.at("do"), b, h);
    auto dQ = slice(dst.at("dq"), b, h);
    auto dK = slice(dst.at("dk"), b, h);
    auto dV = slice(dst.at("dv"), b, h);
    Mat X, A, O, W, dX, dA;
    for (int64_t i0 = part * kQuadraticRows; i0 < T; i0 += parts * kQuadraticRows) {
      const int64_t n = std::min(kQuadraticRows, T - i0), e = i0 + n;
      X.noalias() = Q.middleRows(i0, n) * K.topRows(e).transpose();
      weight.weights(X, A);
      mask_upper(A);
      W = dO.middleRows(i0, n);
      Vec delta = Vec::Zero(n);
      if (normalize) {
        const Vec D = A.rowwise().sum().array() + eps;
        O.noalias() = A * V.topRows(e);
        O.array().colwise() /= D.array();
        W.array().colwise() /= D.array();                              // w_i = dO_i / D_i
        delta = (W.array() * O.array()).rowwise().sum();               // delta_i = w_i.o_i
      }
      dV.topRows(e).noalias() += A.transpose() * W;
      dA.noalias() = W * V.topRows(e).transpose();
      dA.colwise() -= delta;                                           // da_ij = w_i.v_j - delta_i
      weight.derivative(X, dX);
      dX = (dX.array() * dA.array()).matrix();
      mask_upper(dX);
      dQ.middleRows(i0, n).noalias() = dX * K.topRows(e);
      dK.topRows(e).noalias() += dX.transpose() * Q.middleRows(i0, n);
    }
  });
  return grads;
}

}  // namespace attnbench::ref
