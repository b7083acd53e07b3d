// Based, CPU. The fp64 formulations are the shared engines (linear_quadratic.h with the Taylor
// weight; linear_chunked.h on the Taylor features); this file holds the feature map and the
// same-precision emulation, the `base` of the numerics rule on CPU, which the tiled GPU kernels
// mirror. It is the quadratic tiled form, per (b, h) slice in row blocks of 64 queries against the
// keys they can see (Q, K, V hold dtype values; every product accumulates in fp32; round() = to
// the dtype):
// forward
//   s   = scale (Q_b K^T)                 fp32 (products of dtype inputs, then scaled)
//   a   = tril(1 + s + s^2/2)             fp32, unrounded
//   den = rowsum(a) + 1e-6                fp32, from the unrounded a
//   o   = round(round(a) V / den)         a rounded as the MMA operand; or round(round(a) V)
// backward (s, a, den recomputed as above; o the emulated forward output):
//   W     = round(dO / den)               (= dO exactly without the normalizer)
//   delta = rowsum(W * o)                 fp32 (0 without the normalizer)
//   dV   += round(a)^T W
//   ds    = round(tril((W V^T - delta) * (1 + s)))    fp32, then rounded as an MMA operand
//   dQ_b  = ds K,   dK += ds^T Q_b
//   dQ, dK = round(scale * fp32 accumulator),  dV = round(fp32 accumulator)
#include "based.h"

#include <algorithm>
#include <cmath>

#include "cpu_prepared.h"
#include "linear_chunked.h"
#include "linear_quadratic.h"
#include "softmax_family_emul.h"

namespace attnbench::ref {
namespace {

constexpr int64_t kBasedEmulRows = 64;  // query rows per block of the emulation
const double kInvSqrt2 = 1.0 / std::sqrt(2.0);

// a(x) = 1 + s + s^2/2 with s = scale x;  a'(x) = scale (1 + s).
struct TaylorWeight {
  double scale;
  void weights(const Mat& X, Mat& A) const {
    A = (1.0 + scale * X.array() + 0.5 * (scale * X.array()).square()).matrix();
  }
  void derivative(const Mat& X, Mat& dX) const { dX = (scale * (1.0 + scale * X.array())).matrix(); }
};

// phi(x) = [1, y, vec(y y^T) / sqrt(2)], y = sqrt(scale) x, per row: (T, Dk) -> (T, 1 + Dk + Dk^2).
Mat taylor_features(const MapConstMat& X, double scale) {
  const int64_t T = X.rows(), Dk = X.cols();
  const double r = std::sqrt(scale);
  Mat phi(T, 1 + Dk + Dk * Dk);
  for (int64_t t = 0; t < T; ++t) {
    const Eigen::RowVectorXd y = r * X.row(t);
    phi(t, 0) = 1.0;
    phi.row(t).segment(1, Dk) = y;
    Eigen::Map<Mat>(phi.row(t).data() + 1 + Dk, Dk, Dk) = kInvSqrt2 * (y.transpose() * y);
  }
  return phi;
}

// Chain rule through phi: dx = sqrt(scale) (dy + (G + G^T) y / sqrt(2)), G = reshape(dphi_quad).
void taylor_features_backward(const MapConstMat& X, double scale, const Mat& dphi, MapMat dX) {
  const int64_t T = X.rows(), Dk = X.cols();
  const double r = std::sqrt(scale);
  for (int64_t t = 0; t < T; ++t) {
    const Eigen::RowVectorXd y = r * X.row(t);
    const Eigen::Map<const Mat> G(dphi.row(t).data() + 1 + Dk, Dk, Dk);
    dX.row(t) = r * (dphi.row(t).segment(1, Dk) + kInvSqrt2 * (y * (G + G.transpose())));
  }
}

ChunkedLinear taylor_chunked(const Problem& p, int64_t chunk) {
  ChunkedLinear c;  // weights are phi(q).phi(k) already: scale 1
  c.scale = 1.0;
  c.normalize = p.normalize();
  c.eps = kBasedEps;
  c.chunk = chunk;
  return c;
}

// The fp32 scores of a row block: s = scale (Q_b K_e^T), a = tril(1 + s + s^2/2).
void emulate_weights(const MatF& X, float scale, MatF& s, MatF& a) {
  s = scale * X;
  a = (1.0f + s.array() + 0.5f * s.array().square()).matrix();
  mask_upper(a);
}

// The emulated forward: o in fp32 holding dtype values.
FTensor emulate_o(const Problem& p, Dtype dt, const FTensors& f) {
  FTensor o({p.B, p.H, p.Tq, p.Dv});
  const float scale = static_cast<float>(p.scale()), eps = static_cast<float>(kBasedEps);
  const int64_t T = p.Tq;
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(f.at("q"), b, h), K = slice(f.at("k"), b, h), V = slice(f.at("v"), b, h);
    auto O = slice(o, b, h);
    MatF X, s, a, N;
    for (int64_t i0 = 0; i0 < T; i0 += kBasedEmulRows) {
      const int64_t n = std::min(kBasedEmulRows, T - i0), e = i0 + n;
      X.noalias() = Q.middleRows(i0, n) * K.topRows(e).transpose();
      emulate_weights(X, scale, s, a);
      const VecF den = a.rowwise().sum().array() + eps;      // from the unrounded a
      round_inplace(dt, a);                                    // a rounded before a V
      N.noalias() = a * V.topRows(e);
      if (p.normalize()) N.array().colwise() /= den.array();
      round_inplace(dt, N);
      O.middleRows(i0, n) = N;
    }
  });
  return o;
}

}  // namespace

Tensors based_forward(const Problem& p, const Tensors& in) {
  return weighted_causal_forward(p, in, TaylorWeight{p.scale()}, p.normalize(), kBasedEps);
}
Tensors based_backward(const Problem& p, const Tensors& in) {
  return weighted_causal_backward(p, in, TaylorWeight{p.scale()}, p.normalize(), kBasedEps);
}

Tensors based_forward_taylor(const Problem& p, const Tensors& in, int64_t chunk) {
  Tensors out;
  for (const auto& spec : forward_outputs(p)) out.emplace(spec.name, Tensor(spec.shape));
  const ChunkedLinear c = taylor_chunked(p, chunk);
  const double scale = p.scale();
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    c.forward(taylor_features(slice(in.at("q"), b, h), scale), taylor_features(slice(in.at("k"), b, h), scale),
              slice(in.at("v"), b, h), slice(out.at("o"), b, h));
  });
  return out;
}

Tensors based_backward_taylor(const Problem& p, const Tensors& in, int64_t chunk) {
  Tensors g;
  for (const auto& spec : backward_outputs(p)) g.emplace(spec.name, Tensor(spec.shape));
  const ChunkedLinear c = taylor_chunked(p, chunk);
  const double scale = p.scale();
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(in.at("q"), b, h), K = slice(in.at("k"), b, h);
    const Mat phiQ = taylor_features(Q, scale), phiK = taylor_features(K, scale);
    Mat dphiQ(phiQ.rows(), phiQ.cols()), dphiK(phiK.rows(), phiK.cols());
    c.backward(phiQ, phiK, slice(in.at("v"), b, h), slice(in.at("do"), b, h), dphiQ, dphiK, slice(g.at("dv"), b, h));
    taylor_features_backward(Q, scale, dphiQ, slice(g.at("dq"), b, h));
    taylor_features_backward(K, scale, dphiK, slice(g.at("dk"), b, h));
  });
  return g;
}

Tensors based_emulate_forward(const Problem& p, Dtype dt, const Tensors& in) {
  Tensors out;
  out.emplace("o", emulate_o(p, dt, to_float(in)).rounded(dt));
  return out;
}

Tensors based_emulate_backward(const Problem& p, Dtype dt, const Tensors& in) {
  const FTensors f = to_float(in);
  const bool normalize = p.normalize();
  const FTensor o = normalize ? emulate_o(p, dt, f) : FTensor();
  FTensors g;
  for (const auto& spec : backward_outputs(p)) g.emplace(spec.name, FTensor(spec.shape));
  const float scale = static_cast<float>(p.scale()), eps = static_cast<float>(kBasedEps);
  const int64_t T = p.Tq;
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(f.at("q"), b, h), K = slice(f.at("k"), b, h), V = slice(f.at("v"), b, h);
    const auto dO = slice(f.at("do"), b, h);
    auto dQ = slice(g.at("dq"), b, h);
    auto dK = slice(g.at("dk"), b, h);
    auto dV = slice(g.at("dv"), b, h);
    MatF X, s, a, W, dS;
    for (int64_t i0 = 0; i0 < T; i0 += kBasedEmulRows) {
      const int64_t n = std::min(kBasedEmulRows, T - i0), e = i0 + n;
      X.noalias() = Q.middleRows(i0, n) * K.topRows(e).transpose();
      emulate_weights(X, scale, s, a);
      W = dO.middleRows(i0, n);
      VecF delta = VecF::Zero(n);
      if (normalize) {
        const VecF den = a.rowwise().sum().array() + eps;
        W.array().colwise() /= den.array();
        round_inplace(dt, W);
        delta = (W.array() * slice(o, b, h).middleRows(i0, n).array()).rowwise().sum();
      }
      round_inplace(dt, a);
      dV.topRows(e).noalias() += a.transpose() * W;
      dS.noalias() = W * V.topRows(e).transpose();            // da = W V^T - delta
      dS.colwise() -= delta;
      dS = (dS.array() * (1.0f + s.array())).matrix();        // ds = da (1 + s)
      mask_upper(dS);
      round_inplace(dt, dS);
      dQ.middleRows(i0, n).noalias() = dS * K.topRows(e);
      dK.topRows(e).noalias() += dS.transpose() * Q.middleRows(i0, n);
    }
    dQ *= scale;
    dK *= scale;
  });
  Tensors out;
  for (const auto& [name, t] : g) out.emplace(name, t.rounded(dt));
  return out;
}

double based_cpu_cost(const Problem& p, Pass pass) {
  // Per visible pair: Dk + Dv multiply-adds and a few for the weight; plus the block triangles.
  const double pairs = visible_pairs(p) + static_cast<double>(p.Tq) * static_cast<double>(kQuadraticRows) / 2;
  const double fwd = 2.0 * static_cast<double>(p.B * p.H) * static_cast<double>(p.Dk + p.Dv + 4) * pairs;
  return pass == Pass::fwd ? fwd : 3.5 * fwd;  // the backward recomputes the forward
}

void register_based(Registry& r) {
  CpuAlgo a;
  a.algo = "based";
  a.forward = based_forward;
  a.backward = based_backward;
  a.emulate_forward = based_emulate_forward;
  a.emulate_backward = based_emulate_backward;
  a.cost = based_cpu_cost;
  a.ref_summary = "fp64 Eigen reference, quadratic form (causal pairs); inputs rounded to the run's dtype";
  a.emul_summary = "CPU same-precision emulation, quadratic tiled (fp32 accumulate; a, ds rounded); fp32/fp16/bf16";
  add_cpu_impls(r, a);
}

}  // namespace attnbench::ref
