// linear attention, CPU. The fp64 formulations are the shared engines (linear_chunked.h,
// linear_quadratic.h); this file holds the same-precision emulation, the `base` of the numerics
// rule on CPU, which the tiled GPU kernels mirror. Per (b, h) slice, in chunks of C = 64 rows
// (Q_c, K_c, V_c hold dtype values; every product accumulates in fp32; round() = to the dtype):
// forward
//   A   = tril(Q_c K_c^T)                           fp32, unrounded
//   N_c = Q_c round(S) + round(A) V_c                the state S is an MMA operand: rounded
//   den = Q_c z + rowsum(A)                          fp32 (z = sum of earlier k, fp32, unrounded)
//   o   = round(scale N_c / (scale den + eps))       or round(scale N_c) without the normalizer
//   S  += K_c^T V_c,  z += colsum(K_c)               fp32 state
// backward (D = scale den + eps recomputed exactly as above, or 1; o the emulated forward output):
//   W      = round(dO / D)                           (= dO exactly without the normalizer)
//   delta  = rowsum(W * o)                           fp32 (0 without the normalizer)
//   dM     = round(tril(W V_c^T - delta 1^T))        fp32, then rounded as an MMA operand
//   dQ_c   = dM K_c + W round(S)^T - delta z^T       forward scan over chunks
//   dK_c   = dM^T Q_c + V_c round(dS)^T - 1 dz^T     reverse scan; dS = sum_{later} Q^T W (fp32),
//   dV_c   = round(A)^T W + K_c round(dS)                          dz = sum_{later} Q^T delta (fp32)
//   dQ, dK, dV = round(scale * fp32 accumulator)
// The rank-one normalizer terms (delta z^T, 1 dz^T) are fp32 vector work, not MMAs: unrounded.
#include "linear.h"

#include <algorithm>

#include "cpu_prepared.h"
#include "linear_chunked.h"
#include "linear_quadratic.h"
#include "softmax_family_emul.h"

namespace attnbench::ref {
namespace {

constexpr int64_t kLinearChunk = 64;      // chunk of the fp64 reference
constexpr int64_t kLinearEmulChunk = 64;  // chunk C of the emulation (and of the tiled kernels)

// a(x) = scale x: the quadratic engine's weight for linear attention.
struct LinearWeight {
  double scale;
  void weights(const Mat& X, Mat& A) const { A = scale * X; }
  void derivative(const Mat& X, Mat& dX) const { dX.setConstant(X.rows(), X.cols(), scale); }
};

ChunkedLinear chunked(const Problem& p, int64_t chunk) {
  ChunkedLinear c;
  c.scale = p.scale();
  c.normalize = p.normalize();
  c.eps = p.eps();
  c.chunk = chunk;
  return c;
}

void tril(MatF& A) {
  for (int64_t r = 0; r + 1 < A.rows(); ++r) A.row(r).tail(A.cols() - 1 - r).setZero();
}

MatF rounded(Dtype dt, MatF M) {
  round_inplace(dt, M);
  return M;
}

// The emulated forward: o in fp32 holding dtype values.
FTensor emulate_o(const Problem& p, Dtype dt, const FTensors& f) {
  FTensor o({p.B, p.H, p.Tq, p.Dv});
  const float scale = static_cast<float>(p.scale()), eps = static_cast<float>(p.eps());
  const bool normalize = p.normalize();
  const int64_t T = p.Tq, C = kLinearEmulChunk;
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(f.at("q"), b, h), K = slice(f.at("k"), b, h), V = slice(f.at("v"), b, h);
    auto O = slice(o, b, h);
    MatF S = MatF::Zero(p.Dk, p.Dv), A, N;
    VecF z = VecF::Zero(p.Dk);
    for (int64_t t0 = 0; t0 < T; t0 += C) {
      const int64_t n = std::min(C, T - t0);
      const auto Qc = Q.middleRows(t0, n), Kc = K.middleRows(t0, n), Vc = V.middleRows(t0, n);
      A.noalias() = Qc * Kc.transpose();
      tril(A);
      N.noalias() = Qc * rounded(dt, S);
      N.noalias() += rounded(dt, A) * Vc;
      N *= scale;
      if (normalize) {
        const VecF D = scale * (Qc * z + A.rowwise().sum()).array() + eps;
        N.array().colwise() /= D.array();
      }
      round_inplace(dt, N);
      O.middleRows(t0, n) = N;
      S.noalias() += Kc.transpose() * Vc;
      z += Kc.colwise().sum().transpose();
    }
  });
  return o;
}

}  // namespace

Tensors linear_forward_chunked(const Problem& p, const Tensors& in, int64_t chunk) {
  Tensors out;
  for (const auto& spec : forward_outputs(p)) out.emplace(spec.name, Tensor(spec.shape));
  const ChunkedLinear c = chunked(p, chunk);
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    c.forward(slice(in.at("q"), b, h), slice(in.at("k"), b, h), slice(in.at("v"), b, h), slice(out.at("o"), b, h));
  });
  return out;
}

Tensors linear_backward_chunked(const Problem& p, const Tensors& in, int64_t chunk) {
  Tensors g;
  for (const auto& spec : backward_outputs(p)) g.emplace(spec.name, Tensor(spec.shape));
  const ChunkedLinear c = chunked(p, chunk);
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    c.backward(slice(in.at("q"), b, h), slice(in.at("k"), b, h), slice(in.at("v"), b, h), slice(in.at("do"), b, h),
               slice(g.at("dq"), b, h), slice(g.at("dk"), b, h), slice(g.at("dv"), b, h));
  });
  return g;
}

Tensors linear_forward(const Problem& p, const Tensors& in) { return linear_forward_chunked(p, in, kLinearChunk); }
Tensors linear_backward(const Problem& p, const Tensors& in) { return linear_backward_chunked(p, in, kLinearChunk); }

Tensors linear_forward_quadratic(const Problem& p, const Tensors& in) {
  return weighted_causal_forward(p, in, LinearWeight{p.scale()}, p.normalize(), p.eps());
}
Tensors linear_backward_quadratic(const Problem& p, const Tensors& in) {
  return weighted_causal_backward(p, in, LinearWeight{p.scale()}, p.normalize(), p.eps());
}

Tensors linear_emulate_forward(const Problem& p, Dtype dt, const Tensors& in) {
  Tensors out;
  out.emplace("o", emulate_o(p, dt, to_float(in)).rounded(dt));
  return out;
}

Tensors linear_emulate_backward(const Problem& p, Dtype dt, const Tensors& in) {
  const FTensors f = to_float(in);
  const bool normalize = p.normalize();
  const FTensor o = normalize ? emulate_o(p, dt, f) : FTensor();
  FTensors g;
  for (const auto& spec : backward_outputs(p)) g.emplace(spec.name, FTensor(spec.shape));
  const float scale = static_cast<float>(p.scale()), eps = static_cast<float>(p.eps());
  const int64_t T = p.Tq, C = kLinearEmulChunk;
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(f.at("q"), b, h), K = slice(f.at("k"), b, h), V = slice(f.at("v"), b, h);
    const auto dO = slice(f.at("do"), b, h);
    auto dQ = slice(g.at("dq"), b, h);
    auto dK = slice(g.at("dk"), b, h);
    auto dV = slice(g.at("dv"), b, h);
    MatF W = dO, S = MatF::Zero(p.Dk, p.Dv), A, dM;
    VecF delta = VecF::Zero(T), z = VecF::Zero(p.Dk);
    for (int64_t t0 = 0; t0 < T; t0 += C) {  // forward scan
      const int64_t n = std::min(C, T - t0);
      const auto Qc = Q.middleRows(t0, n), Kc = K.middleRows(t0, n), Vc = V.middleRows(t0, n);
      auto Wc = W.middleRows(t0, n);
      A.noalias() = Qc * Kc.transpose();
      tril(A);
      if (normalize) {
        const VecF D = scale * (Qc * z + A.rowwise().sum()).array() + eps;
        Wc.array().colwise() /= D.array();
        round_inplace(dt, Wc);
        delta.segment(t0, n) = (Wc.array() * slice(o, b, h).middleRows(t0, n).array()).rowwise().sum();
      }
      const auto dc = delta.segment(t0, n);
      dM.noalias() = Wc * Vc.transpose();
      dM.colwise() -= dc;
      tril(dM);
      round_inplace(dt, dM);
      dQ.middleRows(t0, n).noalias() = dM * Kc;
      dQ.middleRows(t0, n).noalias() += Wc * rounded(dt, S).transpose();
      dQ.middleRows(t0, n).noalias() -= dc * z.transpose();
      dK.middleRows(t0, n).noalias() = dM.transpose() * Qc;
      dV.middleRows(t0, n).noalias() = rounded(dt, A).transpose() * Wc;
      S.noalias() += Kc.transpose() * Vc;
      z += Kc.colwise().sum().transpose();
    }
    MatF dS = MatF::Zero(p.Dk, p.Dv);
    VecF dz = VecF::Zero(p.Dk);
    for (int64_t t0 = ((T - 1) / C) * C; t0 >= 0; t0 -= C) {  // reverse scan
      const int64_t n = std::min(C, T - t0);
      const auto Qc = Q.middleRows(t0, n), Kc = K.middleRows(t0, n), Vc = V.middleRows(t0, n);
      const MatF dSr = rounded(dt, dS);
      dK.middleRows(t0, n).noalias() += Vc * dSr.transpose();
      dK.middleRows(t0, n).rowwise() -= dz.transpose();
      dV.middleRows(t0, n).noalias() += Kc * dSr;
      dS.noalias() += Qc.transpose() * W.middleRows(t0, n);
      dz.noalias() += Qc.transpose() * delta.segment(t0, n);
    }
    dQ *= scale;
    dK *= scale;
    dV *= scale;
  });
  Tensors out;
  for (const auto& [name, t] : g) out.emplace(name, t.rounded(dt));
  return out;
}

double linear_cpu_cost(const Problem& p, Pass pass) {
  // Per token: C (Dk + Dv) for the intra-chunk scores and A V, 2 Dk Dv for Q S and K^T V.
  const double C = static_cast<double>(kLinearChunk), Dk = static_cast<double>(p.Dk), Dv = static_cast<double>(p.Dv);
  const double fwd = 2.0 * static_cast<double>(p.B * p.H) * static_cast<double>(p.Tq) * (C * (Dk + Dv) + 2 * Dk * Dv);
  return pass == Pass::fwd ? fwd : 3.5 * fwd;  // the backward recomputes the forward
}

void register_linear(Registry& r) {
  CpuAlgo a;
  a.algo = "linear";
  a.forward = linear_forward;
  a.backward = linear_backward;
  a.emulate_forward = linear_emulate_forward;
  a.emulate_backward = linear_emulate_backward;
  a.cost = linear_cpu_cost;
  a.ref_summary = "fp64 Eigen reference, chunked state form (C=64); inputs rounded to the run's dtype";
  a.emul_summary = "CPU same-precision emulation, chunked C=64 (fp32 accumulate; A, state, dM rounded); fp32/fp16/bf16";
  add_cpu_impls(r, a);
}

}  // namespace attnbench::ref
