// piecewise attention (NLPE), CPU reference and emulation.
//
// Notation: query row i, key row j, off = Tk - Tq, dist_ij = i + off - j, threshold w >= 0.
//   s_ij = scale * q2_i.k2_j   if dist_ij >= w   (far keys: j <= i + off - w)
//   s_ij = scale * q1_i.k1_j   otherwise         (near keys)
// then P = softmax_j(s) over the visible keys, o = P V (softmax_family.h does that part).
// Far keys of row i are the prefix j < n_far(i) = clamp(i + off - w + 1, 0, Tk); n_far grows
// with i, so a block of rows [i0, i0+n) reads (q2, k2) only on keys [0, n_far(i0+n-1)) and
// (q1, k1) only on keys [n_far(i0), Tk): the score policy restricts both GEMMs to those ranges.
//
// Backward: the selection is by index, so it splits dS:
//   dS2_ij = dS_ij where dist_ij >= w (else 0),   dS1 = dS - dS2
//   dq1 = scale dS1 K1,  dk1 = scale dS1^T Q1,  dq2 = scale dS2 K2,  dk2 = scale dS2^T Q2.
//
// Emulation (the same-precision `base`; the GPU kernels mirror it): both score GEMMs from the
// dtype inputs accumulated in fp32, then scaled in fp32, then the select; everything after is the
// shared emulation engine (softmax_family_emul.h: p~ rounded before P.V, dS rounded to the dtype
// before the gradient GEMMs, which accumulate in fp32; the selection masks commute with that
// rounding). Outputs and gradients are rounded to the dtype once at the end.
#include "piecewise.h"

#include <algorithm>

#include "cpu_prepared.h"
#include "softmax_family.h"
#include "softmax_family_emul.h"

namespace attnbench::ref {
namespace {

// Keys [0, n_far) of query row i have dist >= w and score from (q2, k2).
int64_t far_keys(const Problem& p, int64_t i) {
  return std::clamp<int64_t>(i + p.off() - p.window() + 1, 0, p.Tk);
}

// The score policy, once for both precisions: Scalar = double (reference), float (emulation).
template <class Scalar>
struct PiecewiseScore {
  using Tensor = typename Working<Scalar>::Tensor;
  using Tensors = typename Working<Scalar>::Tensors;
  using Mat = typename Working<Scalar>::Mat;

  const Problem& p;
  const Tensor& q1;
  const Tensor& k1;
  const Tensor& q2;
  const Tensor& k2;
  Scalar scale;

  // S (n x Tk) for query rows [i0, i0 + n) of head h.
  void scores(int64_t b, int64_t h, int64_t hk, int64_t i0, int64_t n, Mat& S) const {
    const int64_t Tk = p.Tk, lo = far_keys(p, i0), hi = far_keys(p, i0 + n - 1);
    // Near scores q1.k1 on keys [lo, Tk): every row's near keys lie there.
    if (lo < Tk) {
      S.rightCols(Tk - lo).noalias() =
          slice(q1, b, h).middleRows(i0, n) * slice(k1, b, hk).bottomRows(Tk - lo).transpose();
    }
    // Far scores q2.k2 on keys [0, hi), copied over each row's far prefix [0, n_far(i)).
    if (hi > 0) {
      const Mat S2 = slice(q2, b, h).middleRows(i0, n) * slice(k2, b, hk).topRows(hi).transpose();
      for (int64_t r = 0; r < n; ++r) {
        const int64_t nf = far_keys(p, i0 + r);
        S.row(r).head(nf) = S2.row(r).head(nf);
      }
    }
    S *= scale;  // dot products first, then the scale (as a kernel applies it to the fp32 tile)
  }

  // Gradients of q1, k1, q2, k2 from dS (n x Tk), added into g.
  void backward(int64_t b, int64_t h, int64_t hk, int64_t i0, int64_t n, const Mat& dS, Tensors& g) const {
    const int64_t Tk = p.Tk, lo = far_keys(p, i0), hi = far_keys(p, i0 + n - 1);
    if (lo < Tk) {  // dS1: dS on near keys, columns [lo, Tk)
      Mat dS1 = dS.rightCols(Tk - lo);
      for (int64_t r = 0; r < n; ++r) dS1.row(r).head(far_keys(p, i0 + r) - lo).setZero();
      slice(g.at("dq1"), b, h).middleRows(i0, n).noalias() += scale * (dS1 * slice(k1, b, hk).bottomRows(Tk - lo));
      slice(g.at("dk1"), b, hk).bottomRows(Tk - lo).noalias() +=
          scale * (dS1.transpose() * slice(q1, b, h).middleRows(i0, n));
    }
    if (hi > 0) {  // dS2: dS on far keys, columns [0, hi)
      Mat dS2 = dS.leftCols(hi);
      for (int64_t r = 0; r < n; ++r) dS2.row(r).tail(hi - far_keys(p, i0 + r)).setZero();
      slice(g.at("dq2"), b, h).middleRows(i0, n).noalias() += scale * (dS2 * slice(k2, b, hk).topRows(hi));
      slice(g.at("dk2"), b, hk).topRows(hi).noalias() += scale * (dS2.transpose() * slice(q2, b, h).middleRows(i0, n));
    }
  }
};

template <class Scalar, class In>
PiecewiseScore<Scalar> make_score(const Problem& p, const In& in) {
  return {p, in.at("q1"), in.at("k1"), in.at("q2"), in.at("k2"), static_cast<Scalar>(p.scale())};
}

}  // namespace

Tensors piecewise_forward(const Problem& p, const Tensors& in) {
  return softmax_family_forward(p, in, make_score<double>(p, in));
}

Tensors piecewise_backward(const Problem& p, const Tensors& in) {
  return softmax_family_backward(p, in, make_score<double>(p, in));
}

Tensors piecewise_emulate_forward(const Problem& p, Dtype dt, const Tensors& in) {
  const FTensors f = to_float(in);
  return emulated_outputs(softmax_family_emulate_forward(p, dt, f, make_score<float>(p, f)), dt, forward_outputs(p));
}

Tensors piecewise_emulate_backward(const Problem& p, Dtype dt, const Tensors& in) {
  const FTensors f = to_float(in);
  const auto score = make_score<float>(p, f);
  const FTensors fwd = softmax_family_emulate_forward(p, dt, f, score);
  return emulated_outputs(softmax_family_emulate_backward(p, dt, f, fwd, score), dt, backward_outputs(p));
}

void register_piecewise(Registry& r) {
  CpuAlgo a;
  a.algo = "piecewise";
  a.forward = piecewise_forward;
  a.backward = piecewise_backward;
  a.emulate_forward = piecewise_emulate_forward;
  a.emulate_backward = piecewise_emulate_backward;
  // cost: the default; the two restricted score GEMMs together cover about Tk keys per row.
  add_cpu_impls(r, a);
}

}  // namespace attnbench::ref
