#include "options.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "errors.h"

namespace attnbench::cli {

std::vector<std::string> split_list(const std::string& option, const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  auto push = [&] {
    if (cur.empty()) throw UsageError(fmt::format("{}: empty item in '{}'", option, text));
    if (std::find(out.begin(), out.end(), cur) == out.end()) out.push_back(cur);
    cur.clear();
  };
  for (char c : text) {
    if (c == ',') push();
    else if (c != ' ') cur += c;
  }
  push();
  return out;
}

std::vector<Dtype> parse_dtypes(const std::string& text) {
  std::vector<Dtype> out;
  for (const auto& s : split_list("--dtype", text)) {
    const auto d = parse_dtype(s);
    if (!d) throw UsageError(fmt::format("--dtype: unknown dtype '{}' (allowed: fp32, fp16, bf16)", s));
    out.push_back(*d);
  }
  return out;
}

std::vector<Pass> parse_passes(const std::string& text) {
  std::vector<Pass> out;
  for (const auto& s : split_list("--pass", text)) {
    const auto p = parse_pass(s);
    if (!p) throw UsageError(fmt::format("--pass: unknown pass '{}' (allowed: fwd, bwd)", s));
    out.push_back(*p);
  }
  return out;
}

std::vector<int> parse_causal(const std::string& text) {
  if (text == "both") return {0, 1};
  std::vector<int> out;
  for (const auto& s : split_list("--causal", text)) {
    if (s == "yes" || s == "1" || s == "true") out.push_back(1);
    else if (s == "no" || s == "0" || s == "false") out.push_back(0);
    else throw UsageError(fmt::format("--causal: '{}' is not yes, no or both", s));
  }
  return out;
}

std::vector<int> parse_normalize(const std::string& text) {
  if (text == "default") return {-1};
  if (text == "both") return {0, 1};
  std::vector<int> out;
  for (const auto& s : split_list("--normalize", text)) {
    if (s == "on" || s == "yes" || s == "1") out.push_back(1);
    else if (s == "off" || s == "no" || s == "0") out.push_back(0);
    else throw UsageError(fmt::format("--normalize: '{}' is not default, on, off or both", s));
  }
  return out;
}

std::vector<FeatureMap> parse_feature_maps(const std::string& text) {
  std::vector<FeatureMap> out;
  if (text == "all") return {FeatureMap::identity, FeatureMap::elu1, FeatureMap::relu, FeatureMap::focused};
  for (const auto& s : split_list("--feature-map", text)) {
    const auto f = parse_feature_map(s);
    if (!f) throw UsageError(fmt::format("--feature-map: unknown '{}' (allowed: identity, elu1, relu, focused, all)", s));
    out.push_back(*f);
  }
  return out;
}

double parse_double(const std::string& option, const std::string& text) {
  try {
    std::size_t pos = 0;
    const double v = std::stod(text, &pos);
    if (pos != text.size() || !std::isfinite(v)) throw std::invalid_argument(text);
    return v;
  } catch (const std::exception&) {
    throw UsageError(fmt::format("{}: '{}' is not a finite number", option, text));
  }
}

}  // namespace attnbench::cli
