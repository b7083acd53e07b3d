#include "softmax.h"

#include <cmath>
#include <limits>

#include "cpu_prepared.h"
#include "softmax_family.h"
#include "softmax_family_emul.h"

namespace attnbench::ref {
namespace {

// s = scale Q K^T; ds/dq = scale k, ds/dk = scale q.
struct DotScore {
  const Tensor& q;
  const Tensor& k;
  double scale;
  void scores(int64_t b, int64_t h, int64_t hk, int64_t i0, int64_t n, Mat& S) const {
    S.noalias() = scale * slice(q, b, h).middleRows(i0, n) * slice(k, b, hk).transpose();
  }
  void backward(int64_t b, int64_t h, int64_t hk, int64_t i0, int64_t n, const Mat& dS, Tensors& g) const {
    slice(g.at("dq"), b, h).middleRows(i0, n).noalias() += scale * dS * slice(k, b, hk);
    slice(g.at("dk"), b, hk).noalias() += scale * dS.transpose() * slice(q, b, h).middleRows(i0, n);
  }
};

// The same in fp32: dtype products accumulated in fp32, then scaled.
struct DotScoreF {
  const FTensor& q;
  const FTensor& k;
  float scale;
  void scores(int64_t b, int64_t h, int64_t hk, int64_t i0, int64_t n, MatF& S) const {
    S.noalias() = slice(q, b, h).middleRows(i0, n) * slice(k, b, hk).transpose();
    S *= scale;
  }
  void backward(int64_t b, int64_t h, int64_t hk, int64_t i0, int64_t n, const MatF& dS, FTensors& g) const {
    slice(g.at("dq"), b, h).middleRows(i0, n).noalias() += scale * (dS * slice(k, b, hk));
    slice(g.at("dk"), b, hk).noalias() += scale * (dS.transpose() * slice(q, b, h).middleRows(i0, n));
  }
};

Tensors rounded_outputs(const FTensors& f, Dtype dt, const std::vector<OutputSpec>& specs) {
  Tensors out;
  for (const auto& s : specs) out.emplace(s.name, f.at(s.name).rounded(s.storage_dtype ? dt : Dtype::f32));
  return out;
}

}  // namespace

Tensors softmax_forward(const Problem& p, const Tensors& in) {
  return softmax_family_forward(p, in, DotScore{in.at("q"), in.at("k"), p.scale()});
}

Tensors softmax_backward(const Problem& p, const Tensors& in) {
  return softmax_family_backward(p, in, DotScore{in.at("q"), in.at("k"), p.scale()});
}

Tensors softmax_forward_streaming(const Problem& p, const Tensors& in, int64_t key_block) {
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  Tensors out;
  for (const auto& spec : forward_outputs(p)) out.emplace(spec.name, Tensor(spec.shape));
  const Tensor &q = in.at("q"), &k = in.at("k"), &v = in.at("v");
  const double scale = p.scale();
  const int64_t G = p.group();
  parallel_tasks(p.B * p.H, [&](int64_t task) {
    const int64_t b = task / p.H, h = task % p.H, hk = h / G;
    const auto Q = slice(q, b, h), K = slice(k, b, hk), V = slice(v, b, hk);
    auto O = slice(out.at("o"), b, h);
    Vec L(p.Tq);
    for (int64_t i = 0; i < p.Tq; ++i) {
      const int64_t vis = visible_keys(p, i);
      double m = kNegInf, l = 0;                       // running max and running sum
      Eigen::RowVectorXd acc = Eigen::RowVectorXd::Zero(p.Dv);
      for (int64_t j0 = 0; j0 < vis; j0 += key_block) {
        const int64_t nb = std::min(key_block, vis - j0);
        const Vec s = scale * (K.middleRows(j0, nb) * Q.row(i).transpose());
        const double m_new = std::max(m, s.maxCoeff());
        const double correction = std::exp(m - m_new);  // rescale what was summed under the old max
        const Vec e = (s.array() - m_new).exp();
        l = l * correction + e.sum();
        acc = acc * correction + e.transpose() * V.middleRows(j0, nb);
        m = m_new;
      }
      O.row(i) = vis ? (acc / l).eval() : Eigen::RowVectorXd::Zero(p.Dv).eval();
      L(i) = vis ? m + std::log(l) : kNegInf;
    }
    if (p.params.lse) row_slice(out.at("lse"), b, h) = L;
    if (p.params.total_attention) {  // second sweep, now that every L_i is final
      auto A = row_slice(out.at("total"), b, h);
      for (int64_t i = 0; i < p.Tq; ++i) {
        const int64_t vis = visible_keys(p, i);
        if (vis == 0) continue;
        A.head(vis) += (scale * (K.topRows(vis) * Q.row(i).transpose()).array() - L(i)).exp().matrix();
      }
    }
  });
  return out;
}

Tensors softmax_emulate_forward(const Problem& p, Dtype dt, const Tensors& in) {
  const FTensors f = to_float(in);
  const DotScoreF score{f.at("q"), f.at("k"), static_cast<float>(p.scale())};
  return rounded_outputs(softmax_family_emulate_forward(p, dt, f, score), dt, forward_outputs(p));
}

Tensors softmax_emulate_backward(const Problem& p, Dtype dt, const Tensors& in) {
  const FTensors f = to_float(in);
  const DotScoreF score{f.at("q"), f.at("k"), static_cast<float>(p.scale())};
  const FTensors fwd = softmax_family_emulate_forward(p, dt, f, score);
  return rounded_outputs(softmax_family_emulate_backward(p, dt, f, fwd, score), dt, backward_outputs(p));
}

void register_softmax(Registry& r) {
  CpuAlgo a;
  a.algo = "softmax";
  a.forward = softmax_forward;
  a.backward = softmax_backward;
  a.emulate_forward = softmax_emulate_forward;
  a.emulate_backward = softmax_emulate_backward;
  add_cpu_impls(r, a);
}

}  // namespace attnbench::ref
