// bidir: bidirectional (non-causal) linear attention, as in flash-bidirectional-linear-attention.
//
// Notation (one (b,h) slice): Q [Tq,Dk], K [Tk,Dk], V [Tk,Dv], dO [Tq,Dv].
//   Feature map, per row x of Q or K:
//     identity: phi(x) = x
//     elu1:     phi(x) = elu(x) + 1 = (x > 0 ? x + 1 : exp(x))
//     relu:     phi(x) = max(x, 0)                     (derivative 0 at x <= 0)
//     focused:  y = relu(x) + 1e-6, u = y^p (p = 3),  phi(x) = u * (||y|| / ||u||)   (FLatten)
//   Qf = phi(Q), Kf = phi(K), KV = Kf^T V [Dk,Dv], kmean = mean_j Kf_j [Dk].
//   simple: O = scale Qf KV                                 (scale default 1/sqrt(Dk))
//   norm:   z_i = Qf_i . kmean + 1e-6,  O_i = (Qf_i KV / Tk) / z_i
//
// Backward (exact derivatives; G the gradient reaching Qf KV):
//   simple: G = scale dO
//   norm:   G_i = dO_i / (Tk z_i),  dz_i = -(dO_i . O_i) / z_i
//   dQf = G KV^T (+ dz kmean^T),  dKV = Qf^T G,  dKf = V dKV^T (+ 1 (Qf^T dz)^T / Tk),  dV = Kf dKV
//   dQ = phi'(Q)^T dQf, dK = phi'(K)^T dKf; focused, with g = dphi, r = ||y||/||u||:
//     du = r (g - (g.u / ||u||^2) u),  dy = p y^(p-1) du + (g.phi / ||y||^2) y,  dx = dy [x > 0].
//
// Same-precision emulation (`emul`, the `base` of the numerics rule on CPU; the tiled kernels
// mirror it). Inputs q, k, v, do are dtype values; everything below is fp32 unless "rounded":
//   forward:
//     Qf = round(phi(q)), Kf = round(phi(k))     phi evaluated in fp32; MMA operands, rounded
//     KV = Kf^T V over all Tk, fp32 accumulate; KVr = round(KV)       (operand of Qf KVr)
//     acc = Qf KVr, fp32 accumulate
//     simple: o = round(scale * acc)
//     norm:   kmean = (sum_j Kf_j) * (1/Tk) in fp32 from the rounded Kf; z_i = Qf_i . kmean + 1e-6;
//             o_i = round((acc_i * (1/Tk)) / z_i)
//   backward (recomputes the emulated forward; o below is its rounded output):
//     simple: dQf = scale * (dO KVr^T);  dKV = scale * (Qf^T dO)
//     norm:   w_i = 1 / (Tk z_i), dz_i = -(dO_i . o_i) / z_i;
//             dQf = w_i * (dO KVr^T)_i + dz_i kmean   (the row scale applied after accumulation);
//             dKV = Qf^T round(w dO)                  (w on the contraction dim: operand rounded);
//             dkmean = Qf^T dz  (fp32)
//     dKVr = round(dKV);  dKf = V dKVr^T (+ dkmean^T / Tk);  dV = Kf dKVr
//     dq = phi'(q)^T dQf, dk = phi'(k)^T dKf with phi' evaluated in fp32 (focused: from the fp32
//     y, u, norms, not the rounded phi); dq, dk, dv rounded to the dtype once at the end.
//   Every product above accumulates in fp32; for fp32 runs the roundings are no-ops.
#include "bidir.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "cpu_prepared.h"
#include "parallel.h"
#include "round_fast.h"
#include "softmax_family_emul.h"  // FTensor

namespace attnbench::ref {
namespace {

constexpr int kFocusedPower = 3;       // FLatten's p (written out as y*y*y below)
constexpr double kFocusedShift = 1e-6; // relu(x) + 1e-6 keeps every entry positive
constexpr double kNormEps = 1e-6;      // the `norm` denominator's epsilon

static_assert(kFocusedPower == 3, "the focused map writes y^p as y*y*y");

template <class S>
using MatT = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using RowT = Eigen::Array<S, 1, Eigen::Dynamic>;

bool is_norm(const Problem& p) {
  if (p.variant == "norm") return true;
  if (p.variant == "simple") return false;
  throw std::invalid_argument("bidir: variant must be norm or simple (got '" + p.variant + "')");
}

// phi applied to every row of X, in the precision S of X.
template <class S, class Derived>
MatT<S> phi_forward(FeatureMap f, const Eigen::MatrixBase<Derived>& X) {
  MatT<S> Y = X;
  switch (f) {
    case FeatureMap::identity: break;
    case FeatureMap::elu1: Y = Y.unaryExpr([](S x) { return x > S(0) ? x + S(1) : std::exp(x); }); break;
    case FeatureMap::relu: Y = Y.cwiseMax(S(0)); break;
    case FeatureMap::focused:
      for (Eigen::Index r = 0; r < Y.rows(); ++r) {
        const RowT<S> y = Y.row(r).array().max(S(0)) + S(kFocusedShift);
        const RowT<S> u = y * y * y;                    // y^p
        Y.row(r) = (u * (y.matrix().norm() / u.matrix().norm())).matrix();
      }
      break;
  }
  return Y;
}

// dX = phi'(X)^T dY, row by row, in the precision S.
template <class S, class DX, class DY>
MatT<S> phi_backward(FeatureMap f, const Eigen::MatrixBase<DX>& X, const Eigen::MatrixBase<DY>& dY) {
  MatT<S> dX = dY;
  switch (f) {
    case FeatureMap::identity: break;
    case FeatureMap::elu1:
      dX = dX.binaryExpr(X, [](S g, S x) { return x > S(0) ? g : g * std::exp(x); });
      break;
    case FeatureMap::relu: dX = dX.binaryExpr(X, [](S g, S x) { return x > S(0) ? g : S(0); }); break;
    case FeatureMap::focused:
      for (Eigen::Index r = 0; r < X.rows(); ++r) {
        const RowT<S> x = X.row(r).array();
        const RowT<S> g = dY.row(r).array();
        const RowT<S> y = x.max(S(0)) + S(kFocusedShift);
        const RowT<S> u = y * y * y;                    // y^p
        const S ny2 = y.matrix().squaredNorm(), nu2 = u.matrix().squaredNorm();
        const S rr = std::sqrt(ny2) / std::sqrt(nu2);   // ||y|| / ||u||
        const S gu = (g * u).sum();                      // g.u; g.phi = rr g.u
        const RowT<S> du = rr * (g - (gu / nu2) * u);
        const RowT<S> dy = S(kFocusedPower) * (y * y) * du + (rr * gu / ny2) * y;
        dX.row(r) = (x > S(0)).select(dy, S(0)).matrix();
      }
      break;
  }
  return dX;
}

Tensors zero_outputs(const Problem& p, Pass pass) {
  Tensors out;
  for (const auto& spec : pass_outputs(p, pass)) out.emplace(spec.name, Tensor(spec.shape));
  return out;
}

FTensors zero_foutputs(const Problem& p, Pass pass) {
  FTensors out;
  for (const auto& spec : pass_outputs(p, pass)) out.emplace(spec.name, FTensor(spec.shape));
  return out;
}

}  // namespace

Mat bidir_feature_map(FeatureMap f, const Mat& x) { return phi_forward<double>(f, x); }

// ---- fp64, linear form --------------------------------------------------------------------------

Tensors bidir_forward(const Problem& p, const Tensors& in) {
  const bool norm = is_norm(p);
  Tensors out = zero_outputs(p, Pass::fwd);
  const FeatureMap f = p.params.feature_map;
  const double scale = p.scale(), Tk = static_cast<double>(p.Tk);
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const Mat Qf = phi_forward<double>(f, slice(in.at("q"), b, h));   // [Tq,Dk]
    const Mat Kf = phi_forward<double>(f, slice(in.at("k"), b, h));   // [Tk,Dk]
    const Mat KV = Kf.transpose() * slice(in.at("v"), b, h);          // [Dk,Dv]
    auto O = slice(out.at("o"), b, h);                                  // [Tq,Dv]
    if (!norm) {
      O.noalias() = scale * (Qf * KV);
      return;
    }
    const Vec kmean = Kf.colwise().mean().transpose();                  // [Dk]
    const Vec z = (Qf * kmean).array() + kNormEps;                      // [Tq]
    O.noalias() = Qf * KV;
    O.array().colwise() /= Tk * z.array();
  });
  return out;
}

Tensors bidir_backward(const Problem& p, const Tensors& in) {
  const bool norm = is_norm(p);
  Tensors g = zero_outputs(p, Pass::bwd);
  const FeatureMap f = p.params.feature_map;
  const double scale = p.scale(), Tk = static_cast<double>(p.Tk);
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(in.at("q"), b, h), K = slice(in.at("k"), b, h);
    const auto V = slice(in.at("v"), b, h), dO = slice(in.at("do"), b, h);
    const Mat Qf = phi_forward<double>(f, Q), Kf = phi_forward<double>(f, K);
    const Mat KV = Kf.transpose() * V;                                  // [Dk,Dv]
    Mat G, dQf, dKf = Mat::Zero(p.Tk, p.Dk);
    if (!norm) {
      G = scale * dO;                                                   // [Tq,Dv]
      dQf.noalias() = G * KV.transpose();
    } else {
      const Vec kmean = Kf.colwise().mean().transpose();
      const Vec z = (Qf * kmean).array() + kNormEps;
      Mat O = Qf * KV;
      O.array().colwise() /= Tk * z.array();
      G = dO;
      G.array().colwise() /= Tk * z.array();                           // dO_i / (Tk z_i)
      const Vec dz = -(dO.array() * O.array()).rowwise().sum().matrix().cwiseQuotient(z);
      dQf.noalias() = G * KV.transpose();
      dQf.noalias() += dz * kmean.transpose();
      const Vec dkmean = Qf.transpose() * dz;                           // [Dk]
      dKf.rowwise() += (dkmean / Tk).transpose();                       // d mean_j / d Kf_j = 1/Tk
    }
    const Mat dKV = Qf.transpose() * G;                                 // [Dk,Dv]
    dKf.noalias() += V * dKV.transpose();
    slice(g.at("dv"), b, h).noalias() = Kf * dKV;
    slice(g.at("dq"), b, h) = phi_backward<double>(f, Q, dQf);
    slice(g.at("dk"), b, h) = phi_backward<double>(f, K, dKf);
  });
  return g;
}

// ---- fp64, quadratic form (the cross-check) -----------------------------------------------------

Tensors bidir_forward_quadratic(const Problem& p, const Tensors& in, int64_t row_block) {
  const bool norm = is_norm(p);
  Tensors out = zero_outputs(p, Pass::fwd);
  const FeatureMap f = p.params.feature_map;
  const double scale = p.scale(), Tk = static_cast<double>(p.Tk);
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const Mat Qf = phi_forward<double>(f, slice(in.at("q"), b, h));
    const Mat Kf = phi_forward<double>(f, slice(in.at("k"), b, h));
    const auto V = slice(in.at("v"), b, h);
    auto O = slice(out.at("o"), b, h);
    for (int64_t i0 = 0; i0 < p.Tq; i0 += row_block) {
      const int64_t n = std::min(row_block, p.Tq - i0);
      const Mat A = Qf.middleRows(i0, n) * Kf.transpose();             // A_ij = Qf_i . Kf_j, [n,Tk]
      Mat Ob = A * V;                                                   // [n,Dv]
      if (norm) Ob.array().colwise() /= Tk * (A.rowwise().sum().array() / Tk + kNormEps);
      else Ob *= scale;
      O.middleRows(i0, n) = Ob;
    }
  });
  return out;
}

Tensors bidir_backward_quadratic(const Problem& p, const Tensors& in, int64_t row_block) {
  // simple: dA = scale dO V^T, dV = scale A^T dO.
  // norm:   with z_i = sum_j A_ij / Tk + eps, G_i = dO_i / (Tk z_i), dz_i = -(dO_i . O_i) / z_i:
  //         dA_ij = G_i . V_j + dz_i / Tk, dV = A^T G.
  // Then dQf = dA Kf, dKf = dA^T Qf.
  const bool norm = is_norm(p);
  Tensors g = zero_outputs(p, Pass::bwd);
  const FeatureMap f = p.params.feature_map;
  const double scale = p.scale(), Tk = static_cast<double>(p.Tk);
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const auto Q = slice(in.at("q"), b, h), K = slice(in.at("k"), b, h);
    const auto V = slice(in.at("v"), b, h), dO = slice(in.at("do"), b, h);
    const Mat Qf = phi_forward<double>(f, Q), Kf = phi_forward<double>(f, K);
    Mat dQf(p.Tq, p.Dk), dKf = Mat::Zero(p.Tk, p.Dk);
    auto dV = slice(g.at("dv"), b, h);
    for (int64_t i0 = 0; i0 < p.Tq; i0 += row_block) {
      const int64_t n = std::min(row_block, p.Tq - i0);
      const auto Qb = Qf.middleRows(i0, n);
      const Mat A = Qb * Kf.transpose();                                // [n,Tk]
      Mat G = dO.middleRows(i0, n);                                     // [n,Dv]
      Mat dA;
      if (!norm) {
        G *= scale;
        dA.noalias() = G * V.transpose();
      } else {
        const Vec z = A.rowwise().sum().array() / Tk + kNormEps;
        Mat Ob = A * V;
        Ob.array().colwise() /= Tk * z.array();
        G.array().colwise() /= Tk * z.array();
        const Vec dz = -(dO.middleRows(i0, n).array() * Ob.array()).rowwise().sum().matrix().cwiseQuotient(z);
        dA.noalias() = G * V.transpose();
        dA.colwise() += dz / Tk;
      }
      dV.noalias() += A.transpose() * G;
      dQf.middleRows(i0, n).noalias() = dA * Kf;
      dKf.noalias() += dA.transpose() * Qb;
    }
    slice(g.at("dq"), b, h) = phi_backward<double>(f, Q, dQf);
    slice(g.at("dk"), b, h) = phi_backward<double>(f, K, dKf);
  });
  return g;
}

// ---- same-precision emulation (fp32, dtype roundings; see the header comment) -------------------

namespace {

// The emulated forward of one (b,h) slice; what the backward reuses.
struct EmulSlice {
  MatF Qf, Kf;   // rounded phi(q), phi(k)
  MatF KVr;      // rounded Kf^T V
  VecF kmean, z; // norm only: fp32 mean of the rounded Kf, and the denominators
  MatF O;        // rounded output
};

EmulSlice emulate_slice(const Problem& p, Dtype dt, const FTensors& in, int64_t b, int64_t h) {
  const FeatureMap f = p.params.feature_map;
  EmulSlice s;
  s.Qf = phi_forward<float>(f, slice(in.at("q"), b, h));
  s.Kf = phi_forward<float>(f, slice(in.at("k"), b, h));
  round_inplace(dt, s.Qf);
  round_inplace(dt, s.Kf);
  s.KVr.noalias() = s.Kf.transpose() * slice(in.at("v"), b, h);        // fp32 over all Tk
  round_inplace(dt, s.KVr);
  s.O.noalias() = s.Qf * s.KVr;                                         // fp32 accumulate
  if (is_norm(p)) {
    const float inv_tk = 1.0f / static_cast<float>(p.Tk);
    s.kmean = s.Kf.colwise().sum().transpose() * inv_tk;
    s.z = (s.Qf * s.kmean).array() + static_cast<float>(kNormEps);
    s.O *= inv_tk;
    s.O.array().colwise() /= s.z.array();
  } else {
    s.O *= static_cast<float>(p.scale());
  }
  round_inplace(dt, s.O);
  return s;
}

}  // namespace

Tensors bidir_emulate_forward(const Problem& p, Dtype dt, const Tensors& in) {
  const FTensors f = to_float(in);
  FTensors out = zero_foutputs(p, Pass::fwd);
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    slice(out.at("o"), b, h) = emulate_slice(p, dt, f, b, h).O;
  });
  return {{"o", out.at("o").rounded(dt)}};  // already rounded: this converts to fp64
}

Tensors bidir_emulate_backward(const Problem& p, Dtype dt, const Tensors& in) {
  const bool norm = is_norm(p);
  const FTensors f = to_float(in);
  FTensors g = zero_foutputs(p, Pass::bwd);
  const FeatureMap fm = p.params.feature_map;
  const float scale = static_cast<float>(p.scale()), Tk = static_cast<float>(p.Tk);
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H;
    const EmulSlice s = emulate_slice(p, dt, f, b, h);
    const auto V = slice(f.at("v"), b, h), dO = slice(f.at("do"), b, h);
    MatF dQf = dO * s.KVr.transpose();                                  // fp32 accumulate
    MatF dKV, dKf = MatF::Zero(p.Tk, p.Dk);
    if (!norm) {
      dQf *= scale;
      dKV.noalias() = s.Qf.transpose() * dO;
      dKV *= scale;
    } else {
      const VecF w = (Tk * s.z.array()).inverse();                      // 1 / (Tk z_i)
      const VecF dz = -(dO.array() * s.O.array()).rowwise().sum().matrix().cwiseQuotient(s.z);
      dQf.array().colwise() *= w.array();
      dQf.noalias() += dz * s.kmean.transpose();
      MatF Gr = dO;
      Gr.array().colwise() *= w.array();
      round_inplace(dt, Gr);                                            // operand of Qf^T G
      dKV.noalias() = s.Qf.transpose() * Gr;
      const VecF dkmean = s.Qf.transpose() * dz;                        // fp32
      dKf.rowwise() += (dkmean / Tk).transpose();
    }
    round_inplace(dt, dKV);                                             // dKVr: operand of both
    dKf.noalias() += V * dKV.transpose();
    slice(g.at("dv"), b, h).noalias() = s.Kf * dKV;
    slice(g.at("dq"), b, h) = phi_backward<float>(fm, slice(f.at("q"), b, h), dQf);
    slice(g.at("dk"), b, h) = phi_backward<float>(fm, slice(f.at("k"), b, h), dKf);
  });
  Tensors out;
  for (const auto& [name, t] : g) out.emplace(name, t.rounded(dt));
  return out;
}

namespace {

// Linear-time cost of the CPU forms: Kf^T V and Qf KV are (Tk + Tq) Dk Dv multiply-adds, plus
// the feature maps (a few tens of operations per element); the backward does about 3.5x that.
double bidir_cost(const Problem& p, Pass pass) {
  const double bh = static_cast<double>(p.B * p.H), t = static_cast<double>(p.Tq + p.Tk);
  const double fwd = bh * t * (2.0 * static_cast<double>(p.Dk * p.Dv) + 20.0 * static_cast<double>(p.Dk));
  return pass == Pass::fwd ? fwd : 3.5 * fwd;
}

}  // namespace

void register_bidir(Registry& r) {
  CpuAlgo a;
  a.algo = "bidir";
  a.forward = bidir_forward;
  a.backward = bidir_backward;
  a.emulate_forward = bidir_emulate_forward;
  a.emulate_backward = bidir_emulate_backward;
  a.cost = bidir_cost;
  a.ref_summary = "fp64 Eigen reference, linear form phi(Q) (phi(K)^T V); every shape; inputs rounded to the dtype";
  a.emul_summary =
      "CPU same-precision emulation: phi(q), phi(k), K^T V rounded as MMA operands, fp32 accumulate; fp32/fp16/bf16";
  add_cpu_impls(r, a);
}

}  // namespace attnbench::ref
