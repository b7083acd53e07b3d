#include "core/problem.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace attnbench {

std::string_view pass_name(Pass p) { return p == Pass::fwd ? "fwd" : "bwd"; }

std::optional<Pass> parse_pass(std::string_view s) {
  if (s == "fwd") return Pass::fwd;
  if (s == "bwd") return Pass::bwd;
  return std::nullopt;
}

std::string_view feature_map_name(FeatureMap f) {
  switch (f) {
    case FeatureMap::identity: return "identity";
    case FeatureMap::elu1: return "elu1";
    case FeatureMap::relu: return "relu";
    case FeatureMap::focused: return "focused";
  }
  return "?";
}

std::optional<FeatureMap> parse_feature_map(std::string_view s) {
  for (FeatureMap f : {FeatureMap::identity, FeatureMap::elu1, FeatureMap::relu, FeatureMap::focused}) {
    if (s == feature_map_name(f)) return f;
  }
  return std::nullopt;
}

static bool softmax_family(const std::string& algo) {
  return algo == "softmax" || algo == "piecewise" || algo == "hyperbolic";
}

double Problem::scale() const {
  if (params.scale >= 0) return params.scale;
  if (algo == "linear") return 1.0;  // DESIGN: linear attention's scale defaults to 1
  return 1.0 / std::sqrt(static_cast<double>(Dk));
}

int64_t Problem::window() const { return params.window >= 0 ? params.window : Tk / 2; }

bool Problem::normalize() const {
  if (params.normalize >= 0) return params.normalize != 0;
  return algo == "based";
}

double Problem::eps() const { return params.eps >= 0 ? params.eps : 1e-5; }

std::string Problem::shape_string() const {
  std::string s = fmt::format("B={} H={}", B, H);
  if (softmax_family(algo)) s += fmt::format(" Hkv={} Tq={} Tk={}", Hkv, Tq, Tk);
  else if (Tq != Tk) s += fmt::format(" Tq={} Tk={}", Tq, Tk);
  else s += fmt::format(" T={}", Tq);
  s += fmt::format(" Dk={} Dv={}", Dk, Dv);
  if (causal) s += " causal";
  return s;
}

std::string Problem::params_string() const {
  std::string s;
  auto add = [&s](const std::string& kv) { s += (s.empty() ? "" : ";") + kv; };
  // hyperbolic scores have no scale (beta plays that role); bidir `norm` divides by Tk instead.
  const bool has_scale = algo != "hyperbolic" && !(algo == "bidir" && variant == "norm");
  if (has_scale) add(fmt::format("scale={:.6g}", scale()));
  if (algo == "piecewise") add(fmt::format("w={}", window()));
  if (algo == "hyperbolic") add(fmt::format("c={:.6g};beta={:.6g}", params.curvature, params.beta));
  if (algo == "linear" || algo == "based") add(fmt::format("normalize={}", normalize() ? 1 : 0));
  if (algo == "linear" && normalize()) add(fmt::format("eps={:.6g}", eps()));
  if (algo == "bidir") add(fmt::format("fmap={}", feature_map_name(params.feature_map)));
  if (softmax_family(algo)) {
    if (params.lse) add("lse=1");
    if (params.total_attention) add("total=1");
  }
  return s;
}

double visible_pairs(const Problem& p) {
  const double tq = static_cast<double>(p.Tq), tk = static_cast<double>(p.Tk);
  if (!p.causal) return tq * tk;
  // Row i sees min(Tk, max(0, i + off + 1)) keys.
  double pairs = 0;
  const int64_t off = p.off();
  const int64_t first_full = p.Tk - off - 1;  // rows i >= this see all Tk keys
  for (int64_t i = 0; i < p.Tq; ++i) {
    if (i >= first_full) {
      pairs += tk * static_cast<double>(p.Tq - i);
      break;
    }
    pairs += static_cast<double>(std::max<int64_t>(0, i + off + 1));
  }
  return pairs;
}

}  // namespace attnbench
