// The fp64 chunked state form of causal linear attention on one (b, h) slice, shared by `linear`
// (on q, k) and `based` (on the Taylor features phi(q), phi(k)). With chunk 1 it is the recurrent
// form S_t = S_{t-1} + k_t^T v_t, o_t = scale q_t S_t. Notation (F = feature dim of q and k):
//   m_ij = q_i.k_j (j <= i),   n_i = sum_{j<=i} m_ij v_j,   z_i = sum_{j<=i} k_j  (F)
//   D_i = scale q_i.z_i + eps (normalize) or 1,   o_i = scale n_i / D_i
// Chunk c = rows [t0, t0+n), with S = sum_{j<t0} k_j^T v_j (F x Dv) and z = sum_{j<t0} k_j the
// state before it, and A = tril(Q_c K_c^T) (n x n):
//   N_c = Q_c S + A V_c,   den_c = Q_c z + rowsum(A);   then S += K_c^T V_c,  z += colsum(K_c).
// Backward, with w_i = dO_i / D_i and delta_i = w_i.o_i (0 without the normalizer):
//   dm_ij = scale (w_i.v_j - delta_i) for j <= i,   dM_c = tril(dm) within the chunk
//   dQ_c = dM_c K_c + scale (W_c S^T - delta z^T)                       (forward scan)
//   dK_c = dM_c^T Q_c + scale (V_c dS^T - 1 dz^T)                       (reverse scan)
//   dV_c = scale (A^T W_c + K_c dS)
// where dS = sum_{i after the chunk} q_i^T w_i (F x Dv) and dz = sum_{i after} delta_i q_i.
#pragma once

#include <algorithm>

#include "eigen_slices.h"

namespace attnbench::ref {

using ConstRef = Eigen::Ref<const Mat>;
using MutRef = Eigen::Ref<Mat>;

struct ChunkedLinear {
  double scale = 1;
  bool normalize = false;
  double eps = 0;
  int64_t chunk = 64;

  // Zero the strictly upper triangle of a square chunk matrix (keys after the query).
  static void tril(Mat& A) {
    for (int64_t r = 0; r + 1 < A.rows(); ++r) A.row(r).tail(A.cols() - 1 - r).setZero();
  }

  // O = scale N / D (shapes: Q, K (T, F); V, O (T, Dv)). If D_out is given it receives D (T).
  void forward(ConstRef Q, ConstRef K, ConstRef V, MutRef O, Vec* D_out = nullptr) const {
    const int64_t T = Q.rows(), F = Q.cols(), Dv = V.cols();
    Mat S = Mat::Zero(F, Dv), A;
    Vec z = Vec::Zero(F);
    if (D_out) D_out->setOnes(T);
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {
      const int64_t n = std::min(chunk, T - t0);
      const auto Qc = Q.middleRows(t0, n), Kc = K.middleRows(t0, n), Vc = V.middleRows(t0, n);
      A.noalias() = Qc * Kc.transpose();
      tril(A);
      auto Oc = O.middleRows(t0, n);
      Oc.noalias() = Qc * S;
      Oc.noalias() += A * Vc;
      Oc *= scale;
      if (normalize) {
        const Vec D = scale * (Qc * z + A.rowwise().sum()).array() + eps;
        Oc.array().colwise() /= D.array();
        if (D_out) D_out->segment(t0, n) = D;
      }
      S.noalias() += Kc.transpose() * Vc;
      z += Kc.colwise().sum().transpose();
    }
  }

  // Gradients of l = sum(dO * O) with respect to Q, K, V (written, not accumulated).
  void backward(ConstRef Q, ConstRef K, ConstRef V, ConstRef dO, MutRef dQ, MutRef dK, MutRef dV) const {
    const int64_t T = Q.rows(), F = Q.cols(), Dv = V.cols();
    Mat O(T, Dv), W = dO;
    Vec D, delta = Vec::Zero(T);
    forward(Q, K, V, O, &D);
    if (normalize) {
      W.array().colwise() /= D.array();                          // w_i = dO_i / D_i
      delta = (W.array() * O.array()).rowwise().sum();           // delta_i = w_i.o_i
    }
    Mat S = Mat::Zero(F, Dv), A, dM;
    Vec z = Vec::Zero(F);
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {                   // forward scan: dQ, intra-chunk dK, dV
      const int64_t n = std::min(chunk, T - t0);
      const auto Qc = Q.middleRows(t0, n), Kc = K.middleRows(t0, n), Vc = V.middleRows(t0, n);
      const auto Wc = W.middleRows(t0, n);
      const auto dc = delta.segment(t0, n);
      A.noalias() = Qc * Kc.transpose();
      tril(A);
      dM.noalias() = Wc * Vc.transpose();
      dM.colwise() -= dc;
      dM *= scale;
      tril(dM);
      dQ.middleRows(t0, n).noalias() = dM * Kc;
      dQ.middleRows(t0, n).noalias() += scale * (Wc * S.transpose() - dc * z.transpose());
      dK.middleRows(t0, n).noalias() = dM.transpose() * Qc;
      dV.middleRows(t0, n).noalias() = scale * (A.transpose() * Wc);
      S.noalias() += Kc.transpose() * Vc;
      z += Kc.colwise().sum().transpose();
    }
    Mat dS = Mat::Zero(F, Dv);
    Vec dz = Vec::Zero(F);
    for (int64_t t0 = ((T - 1) / chunk) * chunk; t0 >= 0; t0 -= chunk) {  // reverse scan: later rows
      const int64_t n = std::min(chunk, T - t0);
      const auto Qc = Q.middleRows(t0, n), Kc = K.middleRows(t0, n), Vc = V.middleRows(t0, n);
      dK.middleRows(t0, n).noalias() += scale * (Vc * dS.transpose());
      dK.middleRows(t0, n).rowwise() -= scale * dz.transpose();
      dV.middleRows(t0, n).noalias() += scale * (Kc * dS);
      dS.noalias() += Qc.transpose() * W.middleRows(t0, n);
      dz.noalias() += Qc.transpose() * delta.segment(t0, n);
    }
  }
};

}  // namespace attnbench::ref
