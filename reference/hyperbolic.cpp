// hyperbolic (Lorentz-model) attention, CPU reference and emulation.
//
// Points of R^D are lifted onto the hyperboloid of curvature -c (c > 0) by their time coordinate
//   x0 = sqrt(1/c + |x|^2),
// with the Lorentz inner product <a,b>_L = a.b - a0 b0 (<x,x>_L = -1/c). For query i, key j:
//   z_ij = max(-c <q_i,k_j>_L, zmin),  zmin = 1 + 1e-6     (z >= 1 in exact arithmetic)
//   d_ij = acosh(z_ij) / sqrt(c),   s_ij = -beta d_ij = -(beta / sqrt(c)) acosh(z_ij)
// then P = softmax_j(s) over the visible keys, o = P V (softmax_family.h does that part).
// -c <q,k>_L = -c (Q K^T - q0 k0^T): a GEMM plus a rank-one term, so it tiles like softmax.
//
// Backward, from dS: with dZ_ij = dS_ij ds/dz_ij,
//   ds/dz = -(beta / sqrt(c)) / sqrt(z^2 - 1) where z > zmin, 0 where clamped;
//   dz/dq_i = -c (k_j - k0_j q_i / q0_i),   dz/dk_j = -c (q_i - q0_i k_j / k0_j)   (dx0/dx = x/x0)
//   dq_i = -c ( sum_j dZ_ij k_j - (q_i / q0_i) sum_j dZ_ij k0_j )     i.e. -c (dZ K - diag(q/q0) dZ k0)
//   dk_j = -c ( sum_i dZ_ij q_i - (k_j / k0_j) sum_i dZ_ij q0_i )     i.e. -c (dZ^T Q - diag(k/k0) dZ^T q0)
// sqrt(z^2 - 1) is evaluated as sqrt(z - 1) sqrt(z + 1) (no cancellation near 1, no overflow).
//
// Emulation (the same-precision `base`; the GPU kernels mirror it):
//   - q.k: GEMM of the dtype inputs accumulated in fp32;
//   - q0, k0: computed in fp32 from the dtype inputs (|x|^2 accumulated in fp32), not rounded;
//   - the rest of the score in fp32: z = -c (q.k - q0 k0), the clamp, acosh, times -(beta/sqrt c)
//     (that constant formed in fp64 on the host and passed as fp32);
//   - then the shared engine (softmax_family_emul.h) for softmax, P.V and dS = P (dP - D);
//   - backward: dS arrives unrounded (the policy declares kRoundsDS); dZ = dS ds/dz in fp32 is
//     rounded to the dtype once and feeds dZ K, dZ^T Q and the rank-one sums dZ k0, dZ^T q0, all
//     accumulated in fp32; the diag(q/q0), diag(k/k0) corrections and the -c factor in fp32.
#include "hyperbolic.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cpu_prepared.h"
#include "softmax_family.h"
#include "softmax_family_emul.h"

namespace attnbench::ref {
namespace {

constexpr double kZMin = 1.0 + 1e-6;  // the clamp on z = -c <q,k>_L (acosh is flat at 1)

// The score policy, once for both precisions: Scalar = double (reference), float (emulation).
template <class Scalar>
struct LorentzScore {
  using Tensor = typename Working<Scalar>::Tensor;
  using Tensors = typename Working<Scalar>::Tensors;
  using Mat = typename Working<Scalar>::Mat;
  using Vec = typename Working<Scalar>::Vec;
  static constexpr bool kRoundsDS = true;  // dZ, not dS, is the GEMM operand (see above)

  const Problem& p;
  const Tensor& q;
  const Tensor& k;
  Dtype dt;              // rounding of dZ (emulation); f32 for the reference
  Scalar c, coef, zmin;  // curvature, beta / sqrt(c), clamp
  Vec q0, k0;            // time coordinates, [B, H, Tq] and [B, Hkv, Tk] flattened

  LorentzScore(const Problem& p_, const Tensor& q_, const Tensor& k_, Dtype dt_)
      : p(p_), q(q_), k(k_), dt(dt_),
        c(static_cast<Scalar>(p_.params.curvature)),
        coef(static_cast<Scalar>(p_.params.beta / std::sqrt(p_.params.curvature))),
        zmin(static_cast<Scalar>(kZMin)),
        q0(time_coordinates(q_, p_.B, p_.H)),
        k0(time_coordinates(k_, p_.B, p_.Hkv)) {}

  // x0 = sqrt(1/c + |x|^2) for every row of every (b, h) slice.
  Vec time_coordinates(const Tensor& x, int64_t B, int64_t H) const {
    const int64_t T = x.shape[2];
    const Scalar inv_c = static_cast<Scalar>(1.0 / p.params.curvature);
    Vec x0(B * H * T);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        x0.segment((b * H + h) * T, T) = (slice(x, b, h).rowwise().squaredNorm().array() + inv_c).sqrt().matrix();
      }
    return x0;
  }
  auto q0_rows(int64_t b, int64_t h, int64_t i0, int64_t n) const { return q0.segment((b * p.H + h) * p.Tq + i0, n); }
  auto k0_all(int64_t b, int64_t hk) const { return k0.segment((b * p.Hkv + hk) * p.Tk, p.Tk); }

  // Z = -c <q_i, k_j>_L for rows [i0, i0 + n), unclamped: GEMM, then the rank-one term.
  void lorentz_z(int64_t b, int64_t h, int64_t hk, int64_t i0, int64_t n, Mat& Z) const {
    Z.noalias() = slice(q, b, h).middleRows(i0, n) * slice(k, b, hk).transpose();  // q.k
    Z.noalias() -= q0_rows(b, h, i0, n) * k0_all(b, hk).transpose();             // - q0 k0
    Z *= -c;
  }

  // S (n x Tk): s = -(beta / sqrt c) acosh(max(z, zmin)).
  void scores(int64_t b, int64_t h, int64_t hk, int64_t i0, int64_t n, Mat& S) const {
    lorentz_z(b, h, hk, i0, n, S);
    const Scalar cf = coef, zm = zmin;
    S = S.unaryExpr([cf, zm](Scalar z) { return -cf * std::acosh(std::max(z, zm)); });
  }

  // Gradients of q and k from dS (n x Tk), added into g.
  void backward(int64_t b, int64_t h, int64_t hk, int64_t i0, int64_t n, const Mat& dS, Tensors& g) const {
    Mat dZ(n, p.Tk);
    lorentz_z(b, h, hk, i0, n, dZ);
    const Scalar cf = coef, zm = zmin;
    dZ = dZ.binaryExpr(dS, [cf, zm](Scalar z, Scalar ds) {  // dZ = dS ds/dz, 0 where clamped
      return z > zm ? ds * (-cf / (std::sqrt(z - 1) * std::sqrt(z + 1))) : Scalar(0);
    });
    if constexpr (std::is_same_v<Scalar, float>) round_inplace(dt, dZ);
    const auto Q = slice(q, b, h).middleRows(i0, n);
    const auto K = slice(k, b, hk);
    const auto q0b = q0_rows(b, h, i0, n);
    const auto k0b = k0_all(b, hk);
    // dq = -c (dZ K - diag(q/q0) dZ k0)
    Mat dq = dZ * K;
    const Vec rq = (dZ * k0b).cwiseQuotient(q0b);
    dq -= (Q.array().colwise() * rq.array()).matrix();
    slice(g.at("dq"), b, h).middleRows(i0, n).noalias() += -c * dq;
    // dk = -c (dZ^T Q - diag(k/k0) dZ^T q0)
    Mat dk = dZ.transpose() * Q;
    const Vec rk = (dZ.transpose() * q0b).cwiseQuotient(k0b);
    dk -= (K.array().colwise() * rk.array()).matrix();
    slice(g.at("dk"), b, hk).noalias() += -c * dk;
  }
};

}  // namespace

Tensors hyperbolic_forward(const Problem& p, const Tensors& in) {
  return softmax_family_forward(p, in, LorentzScore<double>(p, in.at("q"), in.at("k"), Dtype::f32));
}

Tensors hyperbolic_backward(const Problem& p, const Tensors& in) {
  return softmax_family_backward(p, in, LorentzScore<double>(p, in.at("q"), in.at("k"), Dtype::f32));
}

Tensors hyperbolic_emulate_forward(const Problem& p, Dtype dt, const Tensors& in) {
  const FTensors f = to_float(in);
  const LorentzScore<float> score(p, f.at("q"), f.at("k"), dt);
  return emulated_outputs(softmax_family_emulate_forward(p, dt, f, score), dt, forward_outputs(p));
}

Tensors hyperbolic_emulate_backward(const Problem& p, Dtype dt, const Tensors& in) {
  const FTensors f = to_float(in);
  const LorentzScore<float> score(p, f.at("q"), f.at("k"), dt);
  const FTensors fwd = softmax_family_emulate_forward(p, dt, f, score);
  return emulated_outputs(softmax_family_emulate_backward(p, dt, f, fwd, score), dt, backward_outputs(p));
}

Tensor hyperbolic_scores(const Problem& p, const Tensors& in) {
  const LorentzScore<double> score(p, in.at("q"), in.at("k"), Dtype::f32);
  Tensor s({p.B, p.H, p.Tq, p.Tk});
  Mat S(p.Tq, p.Tk);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h) {
      score.scores(b, h, h / p.group(), 0, p.Tq, S);
      slice(s, b, h) = S;
    }
  return s;
}

void register_hyperbolic(Registry& r) {
  CpuAlgo a;
  a.algo = "hyperbolic";
  a.forward = hyperbolic_forward;
  a.backward = hyperbolic_backward;
  a.emulate_forward = hyperbolic_emulate_forward;
  a.emulate_backward = hyperbolic_emulate_backward;
  add_cpu_impls(r, a);
}

}  // namespace attnbench::ref
