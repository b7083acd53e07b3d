#include "core/algos.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace attnbench {

const std::vector<AlgoSpec>& algo_specs() {
  static const std::vector<AlgoSpec> specs = {
      {"softmax", {}, CausalMode::optional, true,
       "softmax attention: O = softmax(scale Q K^T) V; causal bottom-right; GQA; lse, total attention"},
      {"piecewise", {}, CausalMode::optional, true,
       "piecewise (NLPE): scores from (q2,k2) where dist = i+off-j >= w, else (q1,k1)"},
      {"hyperbolic", {}, CausalMode::optional, true,
       "Lorentz-distance attention: s = -beta * acosh(-c <q,k>_L) / sqrt(c)"},
      {"linear", {}, CausalMode::always, false,
       "causal linear attention: o_i = scale sum_{j<=i} (q_i.k_j) v_j, optional normalizer"},
      {"based", {}, CausalMode::always, false,
       "Based: causal, weights 1 + s + s^2/2 (2nd-order Taylor of exp), normalized"},
      {"gated", {"retention", "lightning", "scalar", "vector", "rwkv6"}, CausalMode::always, false,
       "gated linear RNN: S_t = diag(exp g_t) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t"},
      {"bidir", {"norm", "simple"}, CausalMode::never, false,
       "bidirectional linear attention: o_i = phi(q_i) (phi(K)^T V), feature map phi"},
  };
  return specs;
}

const AlgoSpec* find_algo(std::string_view id) {
  for (const auto& s : algo_specs()) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

std::string algo_ids_joined() {
  std::string s;
  for (const auto& a : algo_specs()) s += (s.empty() ? "" : ", ") + a.id;
  return s;
}

bool is_memory_bound_family(std::string_view algo) {
  return algo == "linear" || algo == "based" || algo == "gated" || algo == "bidir";
}

std::vector<InputSpec> forward_inputs(const Problem& p) {
  const int64_t B = p.B, H = p.H, Hkv = p.Hkv, Tq = p.Tq, Tk = p.Tk, Dk = p.Dk, Dv = p.Dv;
  if (p.algo == "softmax" || p.algo == "hyperbolic") {
    return {{"q", {B, H, Tq, Dk}}, {"k", {B, Hkv, Tk, Dk}}, {"v", {B, Hkv, Tk, Dv}}};
  }
  if (p.algo == "piecewise") {
    return {{"q1", {B, H, Tq, Dk}}, {"k1", {B, Hkv, Tk, Dk}}, {"q2", {B, H, Tq, Dk}},
            {"k2", {B, Hkv, Tk, Dk}}, {"v", {B, Hkv, Tk, Dv}}};
  }
  if (p.algo == "linear") {
    // With the normalizer, q.sum(k) is a denominator: draw q, k positive (as after a feature map).
    const Draw d = p.normalize() ? Draw::positive : Draw::normal;
    InputSpec q{"q", {B, H, Tq, Dk}}, k{"k", {B, H, Tq, Dk}};
    q.draw = k.draw = d;
    return {q, k, {"v", {B, H, Tq, Dv}}};
  }
  if (p.algo == "based") {
    return {{"q", {B, H, Tq, Dk}}, {"k", {B, H, Tq, Dk}}, {"v", {B, H, Tq, Dv}}};
  }
  if (p.algo == "gated") {
    std::vector<InputSpec> in = {{"q", {B, H, Tq, Dk}}, {"k", {B, H, Tq, Dk}}, {"v", {B, H, Tq, Dv}}};
    if (p.variant == "scalar") in.push_back({"g", {B, H, Tq}, true, true, Draw::logsigmoid});
    if (p.variant == "vector" || p.variant == "rwkv6") {
      in.push_back({"g", {B, H, Tq, Dk}, true, true, Draw::logsigmoid});
    }
    if (p.variant == "rwkv6") in.push_back({"u", {H, Dk}, true, true, Draw::normal});
    return in;
  }
  if (p.algo == "bidir") {
    // The `norm` variant divides by q.mean(k); without a positive feature map, draw q, k positive.
    const Draw d = (p.variant == "norm" && p.params.feature_map == FeatureMap::identity)
                       ? Draw::positive : Draw::normal;
    InputSpec q{"q", {B, H, Tq, Dk}}, k{"k", {B, H, Tk, Dk}};
    q.draw = k.draw = d;
    return {q, k, {"v", {B, H, Tk, Dv}}};
  }
  return {};
}

std::vector<OutputSpec> forward_outputs(const Problem& p) {
  std::vector<OutputSpec> out = {{"o", {p.B, p.H, p.Tq, p.Dv}}};
  const AlgoSpec* a = find_algo(p.algo);
  if (a && a->softmax_family) {
    if (p.params.lse) out.push_back({"lse", {p.B, p.H, p.Tq}, false});
    if (p.params.total_attention) out.push_back({"total", {p.B, p.H, p.Tk}, false});
  }
  return out;
}

std::vector<OutputSpec> backward_outputs(const Problem& p) {
  std::vector<OutputSpec> out;
  for (const auto& in : forward_inputs(p)) {
    if (in.differentiable) out.push_back({"d" + in.name, in.shape, !in.gate});
  }
  return out;
}

std::vector<OutputSpec> pass_outputs(const Problem& p, Pass pass) {
  return pass == Pass::fwd ? forward_outputs(p) : backward_outputs(p);
}

Tensors make_inputs(const Problem& p, Pass pass, Dtype dtype, uint64_t seed) {
  Tensors t;
  uint64_t stream = 0;
  auto draw = [&](const std::string& name, const std::vector<int64_t>& shape, Draw how, bool gate) {
    Tensor x(shape);
    const uint64_t s = seed * 1000003ull + (++stream);
    fill_normal(x, s);
    for (double& v : x.data) {
      if (how == Draw::positive) v = std::fabs(v);
      if (how == Draw::logsigmoid) v = -std::log1p(std::exp(-v));  // log sigmoid(v) <= 0
    }
    round_tensor(gate ? Dtype::f32 : dtype, x);
    t.emplace(name, std::move(x));
  };
  for (const auto& in : forward_inputs(p)) draw(in.name, in.shape, in.draw, in.gate);
  if (pass == Pass::bwd) draw("do", {p.B, p.H, p.Tq, p.Dv}, Draw::normal, false);
  return t;
}

std::string validate_problem(const Problem& p) {
  const AlgoSpec* a = find_algo(p.algo);
  if (!a) return fmt::format("--algo: unknown algorithm '{}' (known: {})", p.algo, algo_ids_joined());
  if (a->variants.empty()) {
    if (!p.variant.empty()) return fmt::format("--variant: {} has no variants (got '{}')", p.algo, p.variant);
  } else if (std::find(a->variants.begin(), a->variants.end(), p.variant) == a->variants.end()) {
    std::string known;
    for (const auto& v : a->variants) known += (known.empty() ? "" : ", ") + v;
    return fmt::format("--variant: unknown {} variant '{}' (known: {})", p.algo, p.variant, known);
  }
  const std::pair<const char*, int64_t> sizes[] = {{"B", p.B},   {"H", p.H},   {"Hkv", p.Hkv},
                                                   {"Tq", p.Tq}, {"Tk", p.Tk}, {"Dk", p.Dk},
                                                   {"Dv", p.Dv}};
  for (const auto& [name, v] : sizes) {
    if (v < 1) return fmt::format("--{}: must be >= 1 (got {})", name, v);
  }
  if (p.H % p.Hkv != 0) return fmt::format("--Hkv: must divide H (H={}, Hkv={})", p.H, p.Hkv);
  if (!a->softmax_family && p.Hkv != p.H) {
    return fmt::format("--Hkv: {} has no grouped heads; Hkv must equal H (H={}, Hkv={})", p.algo, p.H, p.Hkv);
  }
  if ((a->causal == CausalMode::always) && p.Tq != p.Tk) {
    return fmt::format("--Tk: {} is causal over one sequence; Tq must equal Tk (Tq={}, Tk={})", p.algo, p.Tq, p.Tk);
  }
  if (a->causal == CausalMode::always && !p.causal) return fmt::format("--causal: {} is always causal", p.algo);
  if (a->causal == CausalMode::never && p.causal) return fmt::format("--causal: {} is never causal", p.algo);
  // Element counts must fit the int64 index math of every implementation.
  const double elems = static_cast<double>(p.B) * static_cast<double>(std::max(p.H, p.Hkv)) *
                       static_cast<double>(std::max(p.Tq, p.Tk)) * static_cast<double>(std::max(p.Dk, p.Dv));
  if (elems > 9.0e15) return fmt::format("--B/--H/--T/--D: tensor of {:.3g} elements is too large", elems);
  if (p.algo == "hyperbolic" && !(p.params.curvature > 0)) {
    return fmt::format("--curvature: must be > 0 (got {})", p.params.curvature);
  }
  if (p.algo == "hyperbolic" && !std::isfinite(p.params.beta)) return "--beta: must be finite";
  if (!std::isfinite(p.params.scale)) return "--scale: must be finite";
  return "";
}

double model_flops(const Problem& p, Pass pass) {
  const AlgoSpec* a = find_algo(p.algo);
  if (!a || !a->softmax_family) return 0.0;
  const double fwd = 2.0 * static_cast<double>(p.B) * static_cast<double>(p.H) *
                     static_cast<double>(p.Dk + p.Dv) * visible_pairs(p);
  return pass == Pass::fwd ? fwd : 2.5 * fwd;
}

double model_bytes(const Problem& p, Pass pass, Dtype dtype) {
  auto bytes = [dtype](const std::vector<int64_t>& shape, bool storage) {
    return static_cast<double>(Tensor::count(shape)) * static_cast<double>(storage ? dtype_bytes(dtype) : 4);
  };
  double total = 0;
  for (const auto& in : forward_inputs(p)) total += bytes(in.shape, !in.gate);
  if (pass == Pass::bwd) total += bytes({p.B, p.H, p.Tq, p.Dv}, true);  // do
  for (const auto& out : pass_outputs(p, pass)) total += bytes(out.shape, out.storage_dtype);
  return total;
}

std::string_view model_name(const Problem& p) {
  return is_memory_bound_family(p.algo) ? "min-bytes" : "matmul-pairs";
}

}  // namespace attnbench
