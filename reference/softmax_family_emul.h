// The CPU same-precision emulation shared by the softmax family: the `base` of the numerics rule
// on CPU. It computes what a careful flash kernel computes in the storage dtype:
//   - scores from products of dtype inputs, accumulated in fp32 (the score policy does this);
//   - softmax statistics (m, l, L) in fp32;
//   - the unnormalized probabilities exp(s - m) rounded to the dtype before P.V; the division by
//     l in fp32 afterwards; o rounded to the dtype;
//   - backward: P = exp(s - L) in fp32, rounded before P^T dO; dP = dO V^T and D = rowsum(dO o)
//     in fp32; dS = P (dP - D) rounded to the dtype before dS K and dS^T Q; every gradient
//     accumulated in fp32 and rounded to the dtype once at the end.
// lse and total attention stay fp32. For fp32 runs the roundings are no-ops.
// A policy whose backward multiplies dS by an elementwise chain-rule factor before its GEMMs
// (hyperbolic: dZ = dS * ds/dz) declares `static constexpr bool kRoundsDS = true;`: the engine
// then hands it dS unrounded (fp32) and the policy rounds its own GEMM operand once, as a kernel
// does in registers. Other policies (softmax, piecewise) get dS rounded here.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/algos.h"
#include "core/problem.h"
#include "core/tensor.h"
#include "eigen_slices.h"
#include "parallel.h"
#include "round_fast.h"
#include "softmax_family.h"

namespace attnbench::ref {

// An fp32 host tensor: the emulations' working storage.
struct FTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  FTensor() = default;
  explicit FTensor(std::vector<int64_t> s)
      : shape(std::move(s)), data(static_cast<std::size_t>(Tensor::count(shape)), 0.0f) {}
  explicit FTensor(const Tensor& t) : shape(t.shape), data(t.data.begin(), t.data.end()) {}
  Tensor rounded(Dtype d) const {
    Tensor t(shape);
    for (std::size_t i = 0; i < data.size(); ++i) t.data[i] = round_dtype(d, data[i]);
    return t;
  }
};
using FTensors = std::map<std::string, FTensor>;

inline FTensors to_float(const Tensors& in) {
  FTensors out;
  for (const auto& [name, t] : in) out.emplace(name, FTensor(t));
  return out;
}

inline Eigen::Map<MatF> slice(FTensor& t, int64_t b, int64_t h) {
  const int64_t H = t.shape[1], T = t.shape[2], D = t.shape[3];
  return Eigen::Map<MatF>(t.data.data() + ((b * H + h) * T) * D, T, D);
}
inline Eigen::Map<const MatF> slice(const FTensor& t, int64_t b, int64_t h) {
  const int64_t H = t.shape[1], T = t.shape[2], D = t.shape[3];
  return Eigen::Map<const MatF>(t.data.data() + ((b * H + h) * T) * D, T, D);
}
inline Eigen::Map<VecF> row_slice(FTensor& t, int64_t b, int64_t h) {
  const int64_t H = t.shape[1], T = t.shape[2];
  return Eigen::Map<VecF>(t.data.data() + (b * H + h) * T, T);
}

// Round an emulation's fp32 results to what the pass returns: storage-dtype outputs to dt, the
// rest (lse, total) kept fp32.
inline Tensors emulated_outputs(const FTensors& f, Dtype dt, const std::vector<OutputSpec>& specs) {
  Tensors out;
  for (const auto& s : specs) out.emplace(s.name, f.at(s.name).rounded(s.storage_dtype ? dt : Dtype::f32));
  return out;
}

// The working types of one precision, for a score policy written once for the fp64 reference
// (Scalar = double) and the fp32 emulation (Scalar = float).
template <class Scalar>
struct Working;
template <>
struct Working<double> {
  using Tensor = attnbench::Tensor;
  using Tensors = attnbench::Tensors;
  using Mat = ref::Mat;
  using Vec = ref::Vec;
};
template <>
struct Working<float> {
  using Tensor = FTensor;
  using Tensors = FTensors;
  using Mat = MatF;
  using Vec = VecF;
};

// True when Score declares kRoundsDS = true (see the header comment).
template <class Score, class = void>
struct rounds_ds_itself : std::false_type {};
template <class Score>
struct rounds_ds_itself<Score, std::void_t<decltype(Score::kRoundsDS)>> : std::bool_constant<Score::kRoundsDS> {};

// Forward emulation. Score policy: scores(b, h, hk, i0, n, MatF& S) in fp32.
template <class Score>
FTensors softmax_family_emulate_forward(const Problem& p, Dtype dt, const FTensors& in, const Score& score) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  FTensors out;
  out.emplace("o", FTensor({p.B, p.H, p.Tq, p.Dv}));
  out.emplace("lse", FTensor({p.B, p.H, p.Tq}));
  out.emplace("total", FTensor({p.B, p.H, p.Tk}));
  const FTensor& v = in.at("v");
  const int64_t G = p.group(), blk = row_block(p);
  parallel_tasks(p.B * p.Hkv, [&](int64_t task) {
    const int64_t b = task / p.Hkv, hk = task % p.Hkv;
    MatF S, Pr;
    for (int64_t h = hk * G; h < (hk + 1) * G; ++h) {
      auto O = slice(out.at("o"), b, h);
      auto L = row_slice(out.at("lse"), b, h);
      auto A = row_slice(out.at("total"), b, h);
      for (int64_t i0 = 0; i0 < p.Tq; i0 += blk) {
        const int64_t n = std::min(blk, p.Tq - i0);
        S.resize(n, p.Tk);
        score.scores(b, h, hk, i0, n, S);
        VecF l = VecF::Zero(n), m(n);
        for (int64_t r = 0; r < n; ++r) {
          const int64_t vis = visible_keys(p, i0 + r);
          auto row = S.row(r);
          if (vis == 0) {
            row.setZero();
            m(r) = kNegInf;
            continue;
          }
          row.tail(p.Tk - vis).setConstant(kNegInf);
          m(r) = row.head(vis).maxCoeff();
          row = (row.array() - m(r)).exp().matrix();  // unnormalized p~ = exp(s - m), fp32
          row.tail(p.Tk - vis).setZero();               // masked exactly 0 (Eigen's exp(-inf) > 0)
          l(r) = row.sum();
        }
        Pr = S;
        round_inplace(dt, Pr);                          // p~ rounded before P.V
        MatF Ob = Pr * slice(v, b, hk);                 // fp32 accumulate
        for (int64_t r = 0; r < n; ++r) {
          if (l(r) == 0.0f) {  // fully masked row: o = 0, L = -inf
            Ob.row(r).setZero();
            L(i0 + r) = kNegInf;
            continue;
          }
          Ob.row(r) /= l(r);
          L(i0 + r) = m(r) + std::log(l(r));
          A += (S.row(r) / l(r)).transpose();
        }
        round_inplace(dt, Ob);
        O.middleRows(i0, n) = Ob;
      }
    }
  });
  return out;
}

// Backward emulation. Score policy: scores() as above and
//   backward(b, h, hk, i0, n, const MatF& dS, FTensors& grads): fp32 accumulation into grads.
// `fwd` is the emulated forward (its rounded o and fp32 lse).
template <class Score>
FTensors softmax_family_emulate_backward(const Problem& p, Dtype dt, const FTensors& in, const FTensors& fwd,
                                         const Score& score) {
  FTensors grads;
  for (const auto& spec : backward_outputs(p)) grads.emplace(spec.name, FTensor(spec.shape));
  const FTensor& v = in.at("v");
  const FTensor& dout = in.at("do");
  const int64_t G = p.group(), blk = row_block(p);
  parallel_tasks(p.B * p.Hkv, [&](int64_t task) {
    const int64_t b = task / p.Hkv, hk = task % p.Hkv;
    MatF S, Pr, dS;
    const auto V = slice(v, b, hk);
    auto dV = slice(grads.at("dv"), b, hk);
    for (int64_t h = hk * G; h < (hk + 1) * G; ++h) {
      const auto O = slice(fwd.at("o"), b, h);
      const FTensor& lse = fwd.at("lse");
      for (int64_t i0 = 0; i0 < p.Tq; i0 += blk) {
        const int64_t n = std::min(blk, p.Tq - i0);
        S.resize(n, p.Tk);
        score.scores(b, h, hk, i0, n, S);
        for (int64_t r = 0; r < n; ++r) {               // P = exp(s - L), recomputed in fp32
          const int64_t vis = visible_keys(p, i0 + r);
          const float Li = lse.data[static_cast<std::size_t>((b * p.H + h) * p.Tq + i0 + r)];
          auto row = S.row(r);
          if (vis == 0) {
            row.setZero();
            continue;
          }
          row.head(vis) = (row.head(vis).array() - Li).exp().matrix();
          row.tail(p.Tk - vis).setZero();
        }
        const auto dO = slice(dout, b, h).middleRows(i0, n);
        Pr = S;
        round_inplace(dt, Pr);
        dV.noalias() += Pr.transpose() * dO;            // dV = round(P)^T dO
        dS.noalias() = dO * V.transpose();              // dP, fp32
        const VecF D = (dO.array() * O.middleRows(i0, n).array()).rowwise().sum();
        dS = (S.array() * (dS.colwise() - D).array()).matrix();
        if constexpr (!rounds_ds_itself<Score>::value) {
          round_inplace(dt, dS);                        // dS rounded before dS K, dS^T Q
        }
        score.backward(b, h, hk, i0, n, dS, grads);
      }
    }
  });
  return grads;
}

}  // namespace attnbench::ref
