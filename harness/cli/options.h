// Parsing of the CLI's list-valued options, each throwing UsageError that names the option.
#pragma once

#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/problem.h"

namespace attnbench::cli {

std::vector<std::string> split_list(const std::string& option, const std::string& text);
std::vector<Dtype> parse_dtypes(const std::string& text);
std::vector<Pass> parse_passes(const std::string& text);
std::vector<int> parse_causal(const std::string& text);     // yes|no|both -> {1}, {0}, {0,1}
std::vector<int> parse_normalize(const std::string& text);  // default|on|off|both
std::vector<FeatureMap> parse_feature_maps(const std::string& text);
double parse_double(const std::string& option, const std::string& text);

}  // namespace attnbench::cli
