#include "names.h"

#include <fmt/format.h>

#include "core/algos.h"

namespace attnbench::gbench {

std::vector<std::pair<std::string, std::string>> split_params(const std::string& params) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t start = 0;
  while (start < params.size()) {
    std::size_t end = params.find(';', start);
    if (end == std::string::npos) end = params.size();
    const std::string kv = params.substr(start, end - start);
    const std::size_t eq = kv.find('=');
    if (!kv.empty()) out.emplace_back(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
    start = end + 1;
  }
  return out;
}

std::string shape_segments(const Problem& p) {
  const AlgoSpec* spec = find_algo(p.algo);
  std::string s = fmt::format("B{}/H{}", p.B, p.H);
  if (spec && spec->softmax_family && p.Hkv != p.H) s += fmt::format("/Hkv{}", p.Hkv);
  s += p.Tq == p.Tk ? fmt::format("/T{}", p.Tq) : fmt::format("/Tq{}/Tk{}", p.Tq, p.Tk);
  s += p.Dk == p.Dv ? fmt::format("/D{}", p.Dk) : fmt::format("/Dk{}/Dv{}", p.Dk, p.Dv);
  if (spec && spec->causal == CausalMode::optional) s += p.causal ? "/causal" : "/noncausal";
  return s;
}

std::string base_name(const Problem& p, const std::string& impl, Pass pass, Dtype dt) {
  std::string s = p.algo;
  if (!p.variant.empty()) s += "/" + p.variant;
  return fmt::format("{}/{}/{}/{}/{}", s, impl, pass_name(pass), dtype_name(dt), shape_segments(p));
}

VaryingParams varying_params(const std::vector<NamedProblem>& points) {
  // base name -> key -> the values seen
  std::map<std::string, std::map<std::string, std::set<std::string>>> seen;
  std::map<std::string, std::string> algo_of;
  for (const auto& pt : points) {
    const std::string base = base_name(pt.problem, pt.impl, pt.pass, pt.dtype);
    algo_of[base] = pt.problem.algo;
    for (const auto& [key, value] : split_params(pt.problem.params_string())) seen[base][key].insert(value);
  }
  VaryingParams out;
  for (const auto& [base, keys] : seen) {
    for (const auto& [key, values] : keys) {
      if (values.size() > 1) out[algo_of[base]].insert(key);
    }
  }
  return out;
}

std::string point_name(const NamedProblem& pt, const VaryingParams& varying) {
  std::string s = base_name(pt.problem, pt.impl, pt.pass, pt.dtype);
  const auto it = varying.find(pt.problem.algo);
  if (it == varying.end()) return s;
  for (const auto& [key, value] : split_params(pt.problem.params_string())) {
    if (it->second.count(key)) s += "/" + key + ":" + value;
  }
  return s;
}

}  // namespace attnbench::gbench
