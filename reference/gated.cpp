// gated, CPU fp64: the recurrence (`ref`) and the parallel form (its cross-check), forward and
// backward, plus registration. The math and notation are in gated.h; the emulation is in
// gated_emul.h.
//
// Backward of the recurrence, with D_t = dL/dS_t (the total adjoint of the state S_t) and the
// loss L = sum_t do_t . o_t:
//   retention, lightning, scalar, vector (o_t reads S_t):
//     D_t   = scale q_t^T do_t + diag(exp(g_{t+1})) D_{t+1}          (D_{T-1} from the first term)
//     dq_t  = scale do_t S_t^T
//   rwkv6 (o_t reads S_{t-1} and the bonus):
//     D_t   = scale q_{t+1}^T do_{t+1} + diag(exp(g_{t+1})) D_{t+1}  (D_{T-1} = 0)
//     dq_t  = scale [do_t S_{t-1}^T + (v_t.do_t) u*k_t]
//     dk_t += scale (v_t.do_t) u*q_t,  dv_t += scale (q_t.(u*k_t)) do_t,
//     du   += scale (v_t.do_t) q_t*k_t                                (summed over b and t)
//   all:
//     dk_t += v_t D_t^T,  dv_t += k_t D_t,
//     dg_td = exp(g_td) sum_e S_{t-1}[d,e] D_t[d,e]                  (S_t = diag(exp g_t) S_{t-1} + ...)
//
// Backward of the parallel form, with a_ij = sum_d q_id k_jd exp(Gq_id - G_jd) (Gq_i = G_i, or
// G_{i-1} for rwkv6) and dA_ij = scale do_i.v_j over the decayed pairs:
//   dv_j += scale sum_i a_ij do_i,  dq_id = sum_j dA_ij k_jd exp(.),  dk_jd = sum_i dA_ij q_id exp(.)
//   dL/dGq_i = q_i * dq_i,  dL/dG_j = -k_j * dk_j  (decayed-pair parts only, not the bonus),
//   dg_s = sum_{t >= s} dL/dG_t                     (G_t = sum_{s<=t} g_s).
#include "gated.h"

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "core/algos.h"
#include "cpu_prepared.h"
#include "eigen_slices.h"
#include "gated_emul.h"
#include "gated_gates.h"
#include "parallel.h"

namespace attnbench::ref {
namespace {

using RowVec = Eigen::RowVectorXd;

// Steps between stored states in the recurrent backward; the states in between are recomputed.
constexpr int64_t kCheckpointEvery = 64;

const Tensor* gate_input(const Tensors& in) { return in.count("g") ? &in.at("g") : nullptr; }
Tensor* gate_grad(Tensors& grads) { return grads.count("dg") ? &grads.at("dg") : nullptr; }

// S = diag(exp(g)) S for a log-gate row g (1 x Dk).
void decay(Mat& S, const Eigen::Ref<const RowVec>& g) {
  const Vec e = g.transpose().array().exp();
  S.array().colwise() *= e.array();
}

Tensors zero_grads(const Problem& p) {
  Tensors g;
  for (const auto& spec : backward_outputs(p)) g.emplace(spec.name, Tensor(spec.shape));
  return g;
}

// du [H, Dk] = sum over b of the per-slice partial sums (fixed order: deterministic).
void store_bonus_grad(const Problem& p, const std::vector<RowVec>& du_part, Tensor& du) {
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h)
      for (int64_t d = 0; d < p.Dk; ++d) du.data[h * p.Dk + d] += du_part[b * p.H + h](d);
}

// The inclusive cumulative log-gates G (T x Dk) and the query-side Gq (G_i, or G_{i-1} with
// G_{-1} = 0 for rwkv6).
void cumulative_gates(const Mat& g, bool bonus, Mat& G, Mat& Gq) {
  G = g;
  for (int64_t t = 1; t < G.rows(); ++t) G.row(t) += G.row(t - 1);
  if (!bonus) {
    Gq = G;
    return;
  }
  Gq.resize(G.rows(), G.cols());
  Gq.row(0).setZero();
  Gq.bottomRows(G.rows() - 1) = G.topRows(G.rows() - 1);
}

}  // namespace

double gated_fixed_log_gate(const std::string& variant, int64_t h, int64_t H) {
  if (variant == "retention") return std::log1p(-std::exp2(-5.0 - static_cast<double>(h)));
  if (variant == "lightning") return -std::exp2(-8.0 * static_cast<double>(h + 1) / static_cast<double>(H));
  throw std::invalid_argument("gated: variant '" + variant + "' has no fixed gate");
}

Tensors gated_forward(const Problem& p, const Tensors& in) {
  const GatedVariant var = gated_variant(p.variant);
  Tensors out;
  out.emplace("o", Tensor({p.B, p.H, p.Tq, p.Dv}));
  const double scale = p.scale();
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(in.at("q"), b, h), K = slice(in.at("k"), b, h), V = slice(in.at("v"), b, h);
    const Mat g = log_gates<double>(p, var, gate_input(in), b, h);
    const RowVec u = var.bonus ? bonus_row<double>(p, in.at("u"), h) : RowVec();
    auto O = slice(out.at("o"), b, h);
    Mat S = Mat::Zero(p.Dk, p.Dv);  // S_{t-1}
    for (int64_t t = 0; t < p.Tq; ++t) {
      if (var.bonus) {  // o_t = scale q_t (S_{t-1} + diag(u) k_t^T v_t)
        O.row(t).noalias() = scale * (Q.row(t) * S + Q.row(t).cwiseProduct(u).dot(K.row(t)) * V.row(t));
      }
      decay(S, g.row(t));
      S.noalias() += K.row(t).transpose() * V.row(t);  // S_t
      if (!var.bonus) O.row(t).noalias() = scale * (Q.row(t) * S);
    }
  });
  return out;
}

Tensors gated_backward(const Problem& p, const Tensors& in) {
  const GatedVariant var = gated_variant(p.variant);
  Tensors grads = zero_grads(p);
  const double scale = p.scale();
  const int64_t T = p.Tq, nchunks = (T + kCheckpointEvery - 1) / kCheckpointEvery;
  std::vector<RowVec> du_part(static_cast<std::size_t>(p.B * p.H));
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(in.at("q"), b, h), K = slice(in.at("k"), b, h), V = slice(in.at("v"), b, h);
    const auto dO = slice(in.at("do"), b, h);
    const Mat g = log_gates<double>(p, var, gate_input(in), b, h);
    const RowVec u = var.bonus ? bonus_row<double>(p, in.at("u"), h) : RowVec();
    auto dQ = slice(grads.at("dq"), b, h), dK = slice(grads.at("dk"), b, h), dV = slice(grads.at("dv"), b, h);
    Mat dg = Mat::Zero(T, p.Dk);
    RowVec du = RowVec::Zero(p.Dk);

    // Forward, keeping S_{t0-1} at the start of every checkpoint interval.
    std::vector<Mat> checkpoint(static_cast<std::size_t>(nchunks));
    Mat S = Mat::Zero(p.Dk, p.Dv);
    for (int64_t c = 0; c < nchunks; ++c) {
      checkpoint[c] = S;
      for (int64_t t = c * kCheckpointEvery; t < std::min(T, (c + 1) * kCheckpointEvery); ++t) {
        decay(S, g.row(t));
        S.noalias() += K.row(t).transpose() * V.row(t);
      }
    }

    // Backward. D holds diag(exp g_{t+1}) D_{t+1} on entry to step t, D_t after its first line.
    Mat D = Mat::Zero(p.Dk, p.Dv);
    std::vector<Mat> St;  // St[r] = S_{t0+r-1}, r = 0..n
    for (int64_t c = nchunks - 1; c >= 0; --c) {
      const int64_t t0 = c * kCheckpointEvery, n = std::min(kCheckpointEvery, T - t0);
      St.resize(static_cast<std::size_t>(n + 1));
      St[0] = checkpoint[c];
      for (int64_t r = 0; r < n; ++r) {
        St[r + 1] = St[r];
        decay(St[r + 1], g.row(t0 + r));
        St[r + 1].noalias() += K.row(t0 + r).transpose() * V.row(t0 + r);
      }
      for (int64_t r = n - 1; r >= 0; --r) {
        const int64_t t = t0 + r;
        const Mat &S_prev = St[r], &S_t = St[r + 1];
        RowVec dk = RowVec::Zero(p.Dk), dv = RowVec::Zero(p.Dv);
        if (!var.bonus) {
          D.noalias() += scale * Q.row(t).transpose() * dO.row(t);
          dQ.row(t).noalias() = scale * (dO.row(t) * S_t.transpose());
        } else {
          if (t + 1 < T) D.noalias() += scale * Q.row(t + 1).transpose() * dO.row(t + 1);
          const double vdo = V.row(t).dot(dO.row(t));  // dA_tt / scale
          dQ.row(t).noalias() = scale * (dO.row(t) * S_prev.transpose() + vdo * u.cwiseProduct(K.row(t)));
          dk = scale * vdo * u.cwiseProduct(Q.row(t));
          dv = scale * Q.row(t).cwiseProduct(u).dot(K.row(t)) * dO.row(t);
          du += scale * vdo * Q.row(t).cwiseProduct(K.row(t));
        }
        dK.row(t).noalias() = dk + V.row(t) * D.transpose();
        dV.row(t).noalias() = dv + K.row(t) * D;
        dg.row(t) = g.row(t).array().exp() * S_prev.cwiseProduct(D).rowwise().sum().transpose().array();
        decay(D, g.row(t));
      }
    }
    store_gate_grad<double>(p, var, dg, gate_grad(grads), b, h);
    if (var.bonus) du_part[task] = du;
  });
  if (var.bonus) store_bonus_grad(p, du_part, grads.at("du"));
  return grads;
}

Tensors gated_forward_parallel(const Problem& p, const Tensors& in) {
  const GatedVariant var = gated_variant(p.variant);
  Tensors out;
  out.emplace("o", Tensor({p.B, p.H, p.Tq, p.Dv}));
  const double scale = p.scale();
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(in.at("q"), b, h), K = slice(in.at("k"), b, h), V = slice(in.at("v"), b, h);
    const RowVec u = var.bonus ? bonus_row<double>(p, in.at("u"), h) : RowVec();
    Mat G, Gq;
    cumulative_gates(log_gates<double>(p, var, gate_input(in), b, h), var.bonus, G, Gq);
    auto O = slice(out.at("o"), b, h);
    for (int64_t i = 0; i < p.Tq; ++i) {
      const int64_t m = var.bonus ? i : i + 1;  // keys j < m carry the decay
      O.row(i).setZero();
      if (m > 0) {
        const Mat E = (Gq.row(i).replicate(m, 1) - G.topRows(m)).array().exp();  // exp(Gq_i - G_j) <= 1
        const Vec a = K.topRows(m).cwiseProduct(E) * Q.row(i).transpose();         // a_ij
        O.row(i).noalias() = scale * (a.transpose() * V.topRows(m));
      }
      if (var.bonus) O.row(i) += scale * Q.row(i).cwiseProduct(u).dot(K.row(i)) * V.row(i);
    }
  });
  return out;
}

Tensors gated_backward_parallel(const Problem& p, const Tensors& in) {
  const GatedVariant var = gated_variant(p.variant);
  Tensors grads = zero_grads(p);
  const double scale = p.scale();
  const int64_t T = p.Tq;
  std::vector<RowVec> du_part(static_cast<std::size_t>(p.B * p.H));
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(in.at("q"), b, h), K = slice(in.at("k"), b, h), V = slice(in.at("v"), b, h);
    const auto dO = slice(in.at("do"), b, h);
    const RowVec u = var.bonus ? bonus_row<double>(p, in.at("u"), h) : RowVec();
    Mat G, Gq;
    cumulative_gates(log_gates<double>(p, var, gate_input(in), b, h), var.bonus, G, Gq);
    auto dQ = slice(grads.at("dq"), b, h), dK = slice(grads.at("dk"), b, h), dV = slice(grads.at("dv"), b, h);
    Mat dK_decayed = Mat::Zero(T, p.Dk);  // dk from the decayed pairs (the bonus has no gate)
    Mat dG = Mat::Zero(T, p.Dk);          // dL/dG_t
    RowVec du = RowVec::Zero(p.Dk);
    for (int64_t i = 0; i < T; ++i) {
      const int64_t m = var.bonus ? i : i + 1;
      if (m > 0) {
        const Mat E = (Gq.row(i).replicate(m, 1) - G.topRows(m)).array().exp();
        const Mat W = K.topRows(m).cwiseProduct(E);                  // k_jd exp(Gq_id - G_jd)
        const Vec a = W * Q.row(i).transpose();                       // a_ij
        const Vec dA = scale * (V.topRows(m) * dO.row(i).transpose());  // dA_ij
        dV.topRows(m).noalias() += scale * a * dO.row(i);
        const RowVec dq = dA.transpose() * W;
        dQ.row(i) += dq;
        dK_decayed.topRows(m) += (dA * Q.row(i)).cwiseProduct(E);
        dG.row(var.bonus ? i - 1 : i) += Q.row(i).cwiseProduct(dq);  // dL/dGq_i
      }
      if (var.bonus) {
        const double vdo = V.row(i).dot(dO.row(i));
        dQ.row(i) += scale * vdo * u.cwiseProduct(K.row(i));
        dK.row(i) += scale * vdo * u.cwiseProduct(Q.row(i));
        dV.row(i) += scale * Q.row(i).cwiseProduct(u).dot(K.row(i)) * dO.row(i);
        du += scale * vdo * Q.row(i).cwiseProduct(K.row(i));
      }
    }
    dK += dK_decayed;
    dG -= K.cwiseProduct(dK_decayed);
    for (int64_t t = T - 2; t >= 0; --t) dG.row(t) += dG.row(t + 1);  // dg_s = sum_{t>=s} dL/dG_t
    store_gate_grad<double>(p, var, dG, gate_grad(grads), b, h);
    if (var.bonus) du_part[task] = du;
  });
  if (var.bonus) store_bonus_grad(p, du_part, grads.at("du"));
  return grads;
}

Tensors gated_emulate_forward(const Problem& p, Dtype dt, const Tensors& in) {
  Tensors out;
  out.emplace("o", gated_emul::forward(p, dt, to_float(in)).at("o").rounded(dt));
  return out;
}

Tensors gated_emulate_backward(const Problem& p, Dtype dt, const Tensors& in) {
  const FTensors grads = gated_emul::backward(p, dt, to_float(in));
  Tensors out;  // q, k, v gradients in the dtype; gate and bonus gradients stay fp32
  for (const auto& spec : backward_outputs(p)) {
    out.emplace(spec.name, grads.at(spec.name).rounded(spec.storage_dtype ? dt : Dtype::f32));
  }
  return out;
}

double gated_cpu_cost(const Problem& p, Pass pass) {
  // Per token of a (b, h) slice: the state update and read-out, ~4 Dk Dv, and the emulation's
  // intra-chunk block, ~C (Dk (2 + kExpCost) + 2 Dv) with an exp counted as ~10 operations.
  constexpr double kExpCost = 10;
  const double Dk = static_cast<double>(p.Dk), Dv = static_cast<double>(p.Dv);
  const double per_token = 4 * Dk * Dv + static_cast<double>(gated_emul::kChunk) * (Dk * (2 + kExpCost) + 2 * Dv);
  const double fwd = static_cast<double>(p.B * p.H) * static_cast<double>(p.Tq) * per_token;
  return pass == Pass::fwd ? fwd : 3 * fwd;  // the backward recomputes the forward's states
}

void register_gated(Registry& r) {
  CpuAlgo a;
  a.algo = "gated";
  a.forward = gated_forward;
  a.backward = gated_backward;
  a.emulate_forward = gated_emulate_forward;
  a.emulate_backward = gated_emulate_backward;
  a.cost = gated_cpu_cost;
  a.ref_summary = "fp64 recurrence (checked against the parallel form); every variant and shape, Dk != Dv";
  a.emul_summary = fmt::format("CPU same-precision chunkwise emulation (chunk {}, GLA-style); fp32/fp16/bf16",
                               gated_emul::kChunk);
  add_cpu_impls(r, a);
}

}  // namespace attnbench::ref
