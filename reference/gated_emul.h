// gated, the CPU same-precision emulation: the `base` of the numerics rule on CPU, and the
// computation the chunkwise GPU kernels mirror. Chunkwise as in GLA, chunk C = kChunk = 64.
//
// Notation for one (b, h) slice and one chunk of rows t0 .. t0+n-1 (r = 0 .. n-1 inside it):
//   b_r   = sum_{s=0..r} g_{t0+s}, fp32, summed in order (= G_{t0+r} - G_{t0-1}); last = b_{n-1}
//   bq_r  = b_r; for rwkv6 bq_r = b_{r-1} with b_{-1} = 0 (the query reads S_{t-1})
//   pairs: j <= i (rwkv6: j < i; its diagonal is the bonus term)
//   rd()  = round to the run's dtype (a no-op for fp32); every product accumulates in fp32.
//
// Forward, per chunk (S: the fp32 state before the chunk, S = 0 before the first):
//   A_ij  = sum_d q_id k_jd exp(bq_id - b_jd)        fp32 from dtype q, k and fp32 gates, exact
//                                                     differences (never exp(b) exp(-b))
//   o_i   = scale * ( rd(A) V  +  rd(q_i * exp(bq_i)) rd(S)  [+ a_i v_i] ),  rounded to the dtype
//           rwkv6: a_i = sum_d q_id u_d k_id and a_i v_i both fp32, never rounded
//   S    <- diag(exp(last)) S  +  rd(k_j * exp(last - b_j))^T V                (S stays fp32)
//
// Backward, per chunk from the last (D: dL/dS at the chunk's end, fp32, D = 0 after the last):
//   dA_ij = scale do_i.v_j                             fp32 from dtype do, v
//   dv_j  = scale rd(A)^T dO  +  rd(k_j * exp(last - b_j)) rd(D)      [+ scale a_j do_j, rwkv6]
//   dq_id = sum_j dA_ij k_jd exp(bq_id - b_jd)  +  scale exp(bq_id) (do_i rd(S)^T)_d
//                                                                     [+ dA_ii u_d k_id, rwkv6]
//   dk_jd = sum_i dA_ij q_id exp(bq_id - b_jd)  +  exp(last_d - b_jd) (v_j rd(D)^T)_d
//                                                                     [+ dA_ii u_d q_id, rwkv6]
//           (the intra-chunk sums are fp32 with exact exp differences, like A)
//   du_d  = sum_i dA_ii q_id k_id, fp32, summed over chunks and then over b in order
//   dg    : with dGq_i = q_i * dq_i and dGk_j = k_j * dk_j taken from the parts of dq, dk that
//           depend on the gates (pairs j < i and the inter-chunk terms; not the pair j = i,
//           whose decay is exp(0) = 1, nor rwkv6's bonus), in the chunk-local form
//             dg_{t0+s,d} = sum_e S_end[d,e] D[d,e]  +  sum_{r=s..n-1} (dGq_{r,d} - dGk_{r,d})
//           with S_end the fp32 state after the chunk; for rwkv6 dGq_r is replaced by dGq_{r+1}
//           (0 for r = n-1; the query of row r reads b_{r-1}). The boundary term is the rest of
//           the sequence's sum_{t > end} dL/dG_t (shifting every later G_t by x scales exactly
//           what is read out of S_end by e^x), so the reverse cumulative sum never runs past one
//           chunk (no long cancellation in fp32). All fp32; a scalar gate's gradient is the sum
//           over Dk.
//   D    <- diag(exp(last)) D  +  scale rd(q_i * exp(bq_i))^T dO
//   dq, dk, dv rounded to the dtype once at the end; dg and du stay fp32.
#pragma once

#include <algorithm>
#include <vector>

#include "core/algos.h"
#include "eigen_slices.h"
#include "gated_gates.h"
#include "parallel.h"
#include "round_fast.h"
#include "softmax_family_emul.h"

namespace attnbench::ref::gated_emul {

constexpr int64_t kChunk = 64;

using RowVecF = Eigen::RowVectorXf;

// The chunk's gate cumsums relative to its start.
struct ChunkGates {
  MatF b;        // n x Dk, b_r
  MatF bq;       // n x Dk, bq_r
  RowVecF last;  // b_{n-1}
};

inline ChunkGates chunk_gates(const MatF& g, int64_t t0, int64_t n, bool bonus) {
  ChunkGates c;
  c.b = g.middleRows(t0, n);
  for (int64_t r = 1; r < n; ++r) c.b.row(r) += c.b.row(r - 1);
  c.last = c.b.row(n - 1);
  if (bonus) {
    c.bq.resize(n, g.cols());
    c.bq.row(0).setZero();
    c.bq.bottomRows(n - 1) = c.b.topRows(n - 1);
  } else {
    c.bq = c.b;
  }
  return c;
}

inline const FTensor* gate_input(const FTensors& in) { return in.count("g") ? &in.at("g") : nullptr; }

// S = diag(exp(row)) S.
inline void decay_rows(MatF& S, const RowVecF& row) {
  const VecF e = row.transpose().array().exp();
  S.array().colwise() *= e.array();
}

// a_i = sum_d q_id u_d k_id (rwkv6's bonus weight), fp32.
template <class QM, class KM>
VecF bonus_weights(const QM& Qc, const KM& Kc, const RowVecF& u) {
  return ((Qc.array() * Kc.array()).rowwise() * u.array()).rowwise().sum().matrix();
}

// S <- diag(exp(last)) S + rd(k_j exp(last - b_j))^T V; returns the decay exp(last - b_j).
template <class KM, class VM>
MatF advance_state(MatF& S, const KM& Kc, const VM& Vc, const ChunkGates& cg, Dtype dt) {
  const int64_t n = Kc.rows();
  const MatF key_decay = (cg.last.replicate(n, 1) - cg.b).array().exp();
  MatF Kt = Kc.cwiseProduct(key_decay);
  round_inplace(dt, Kt);
  decay_rows(S, cg.last);
  S.noalias() += Kt.transpose() * Vc;
  return key_decay;
}

inline FTensors forward(const Problem& p, Dtype dt, const FTensors& in) {
  const GatedVariant var = gated_variant(p.variant);
  FTensors out;
  out.emplace("o", FTensor({p.B, p.H, p.Tq, p.Dv}));
  const float scale = static_cast<float>(p.scale());
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(in.at("q"), b, h), K = slice(in.at("k"), b, h), V = slice(in.at("v"), b, h);
    const MatF g = log_gates<float>(p, var, gate_input(in), b, h);
    const RowVecF u = var.bonus ? bonus_row<float>(p, in.at("u"), h) : RowVecF();
    auto O = slice(out.at("o"), b, h);
    MatF S = MatF::Zero(p.Dk, p.Dv);
    for (int64_t t0 = 0; t0 < p.Tq; t0 += kChunk) {
      const int64_t n = std::min(kChunk, p.Tq - t0);
      const auto Qc = Q.middleRows(t0, n), Kc = K.middleRows(t0, n), Vc = V.middleRows(t0, n);
      const ChunkGates cg = chunk_gates(g, t0, n, var.bonus);
      MatF A = MatF::Zero(n, n);  // (n, n) intra-chunk scores over the decayed pairs
      for (int64_t i = 0; i < n; ++i) {
        const int64_t m = var.bonus ? i : i + 1;
        if (m == 0) continue;
        const MatF E = (cg.bq.row(i).replicate(m, 1) - cg.b.topRows(m)).array().exp();  // (m, Dk)
        A.row(i).head(m) = (Kc.topRows(m).cwiseProduct(E) * Qc.row(i).transpose()).transpose();
      }
      round_inplace(dt, A);
      MatF Oc = A * Vc;  // (n, Dv)
      MatF Qt = Qc.cwiseProduct(MatF(cg.bq.array().exp()));
      round_inplace(dt, Qt);
      MatF Sr = S;
      round_inplace(dt, Sr);
      Oc.noalias() += Qt * Sr;
      if (var.bonus) Oc += bonus_weights(Qc, Kc, u).asDiagonal() * Vc;
      Oc *= scale;
      round_inplace(dt, Oc);
      O.middleRows(t0, n) = Oc;
      advance_state(S, Kc, Vc, cg, dt);
    }
  });
  return out;
}

inline FTensors backward(const Problem& p, Dtype dt, const FTensors& in) {
  const GatedVariant var = gated_variant(p.variant);
  FTensors grads;
  for (const auto& spec : backward_outputs(p)) grads.emplace(spec.name, FTensor(spec.shape));
  FTensor* dg_out = grads.count("dg") ? &grads.at("dg") : nullptr;
  const float scale = static_cast<float>(p.scale());
  const int64_t T = p.Tq, nchunks = (T + kChunk - 1) / kChunk;
  std::vector<RowVecF> du_part(static_cast<std::size_t>(p.B * p.H));
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(in.at("q"), b, h), K = slice(in.at("k"), b, h), V = slice(in.at("v"), b, h);
    const auto dO = slice(in.at("do"), b, h);
    const MatF g = log_gates<float>(p, var, gate_input(in), b, h);
    const RowVecF u = var.bonus ? bonus_row<float>(p, in.at("u"), h) : RowVecF();
    auto dQ = slice(grads.at("dq"), b, h), dK = slice(grads.at("dk"), b, h), dV = slice(grads.at("dv"), b, h);
    MatF dg = MatF::Zero(T, p.Dk);
    RowVecF du = RowVecF::Zero(p.Dk);

    // The forward's fp32 states: S_before[c] before chunk c, S_before[nchunks] after the last.
    std::vector<MatF> S_before(static_cast<std::size_t>(nchunks + 1));
    S_before[0] = MatF::Zero(p.Dk, p.Dv);
    for (int64_t c = 0; c < nchunks; ++c) {
      const int64_t t0 = c * kChunk, n = std::min(kChunk, T - t0);
      S_before[c + 1] = S_before[c];
      advance_state(S_before[c + 1], K.middleRows(t0, n), V.middleRows(t0, n), chunk_gates(g, t0, n, var.bonus), dt);
    }

    MatF D = MatF::Zero(p.Dk, p.Dv);  // dL/dS at the end of the current chunk
    for (int64_t c = nchunks - 1; c >= 0; --c) {
      const int64_t t0 = c * kChunk, n = std::min(kChunk, T - t0);
      const auto Qc = Q.middleRows(t0, n), Kc = K.middleRows(t0, n), Vc = V.middleRows(t0, n);
      const auto dOc = dO.middleRows(t0, n);
      const ChunkGates cg = chunk_gates(g, t0, n, var.bonus);

      // Intra-chunk: A and its gradients over the pairs j < i, fp32. The diagonal (exp(0) = 1
      // for j = i, or the bonus) does not depend on the gates; it is added after dg below.
      const MatF dA = scale * (dOc * Vc.transpose());  // (n, n) dA_ij, read only on the pairs
      MatF A = MatF::Zero(n, n), dQc = MatF::Zero(n, p.Dk), dKc = MatF::Zero(n, p.Dk);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t m = var.bonus ? i : i + 1;
        if (m == 0) continue;
        const MatF E = (cg.bq.row(i).replicate(m, 1) - cg.b.topRows(m)).array().exp();  // (m, Dk)
        const MatF W = Kc.topRows(m).cwiseProduct(E);
        A.row(i).head(m) = (W * Qc.row(i).transpose()).transpose();
        dQc.row(i).noalias() = dA.row(i).head(i) * W.topRows(i);
        dKc.topRows(i) += (dA.row(i).head(i).transpose() * Qc.row(i)).cwiseProduct(E.topRows(i));
      }
      round_inplace(dt, A);
      MatF dVc = scale * (A.transpose() * dOc);

      // Inter-chunk: through the state before the chunk (dq) and after it (dk, dv).
      MatF Sr = S_before[c], Dr = D;
      round_inplace(dt, Sr);
      round_inplace(dt, Dr);
      const MatF key_decay = (cg.last.replicate(n, 1) - cg.b).array().exp();
      MatF Kt = Kc.cwiseProduct(key_decay);
      round_inplace(dt, Kt);
      const MatF q_decay = cg.bq.array().exp();
      dVc.noalias() += Kt * Dr;
      dQc += scale * q_decay.cwiseProduct(dOc * Sr.transpose());
      dKc += key_decay.cwiseProduct(Vc * Dr.transpose());

      // Gate gradient: chunk-local reverse cumulative sum plus the boundary term.
      const MatF dGq = Qc.cwiseProduct(dQc), dGk = Kc.cwiseProduct(dKc);
      RowVecF run = S_before[c + 1].cwiseProduct(D).rowwise().sum().transpose();
      for (int64_t r = n - 1; r >= 0; --r) {
        if (!var.bonus) run += dGq.row(r);
        else if (r + 1 < n) run += dGq.row(r + 1);
        run -= dGk.row(r);
        dg.row(t0 + r) = run;
      }

      const VecF dAd = dA.diagonal();
      if (!var.bonus) {  // the pair j = i: a_ii = q_i.k_i
        dQc += dAd.asDiagonal() * Kc;
        dKc += dAd.asDiagonal() * Qc;
      } else {  // the bonus: o_i += scale a_i v_i, a_i = q_i.(u*k_i)
        dQc += dAd.asDiagonal() * (Kc.array().rowwise() * u.array()).matrix();
        dKc += dAd.asDiagonal() * (Qc.array().rowwise() * u.array()).matrix();
        dVc += (scale * bonus_weights(Qc, Kc, u)).asDiagonal() * dOc;
        du += dAd.transpose() * Qc.cwiseProduct(Kc);
      }

      // Carry D to the end of the previous chunk.
      MatF Qt = Qc.cwiseProduct(q_decay);
      round_inplace(dt, Qt);
      decay_rows(D, cg.last);
      D.noalias() += scale * (Qt.transpose() * dOc);

      dQ.middleRows(t0, n) = dQc;
      dK.middleRows(t0, n) = dKc;
      dV.middleRows(t0, n) = dVc;
    }
    store_gate_grad<float>(p, var, dg, dg_out, b, h);
    if (var.bonus) du_part[task] = du;
  });
  if (var.bonus) {
    FTensor& du = grads.at("du");
    for (int64_t b = 0; b < p.B; ++b)
      for (int64_t h = 0; h < p.H; ++h)
        for (int64_t d = 0; d < p.Dk; ++d) du.data[h * p.Dk + d] += du_part[b * p.H + h](d);
  }
  return grads;
}

}  // namespace attnbench::ref::gated_emul
