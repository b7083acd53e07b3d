// Google Benchmark names of attnbench points, built so that --benchmark_filter reads naturally:
//
//   <algo>[/<variant>]/<impl>/<pass>/<dtype>/B<B>/H<H>[/Hkv<Hkv>]/<T>/<D>[/<mask>][/<param>:<value>...]
//
//   <T>     T<T> when Tq == Tk, else Tq<Tq>/Tk<Tk>
//   <D>     D<D> when Dk == Dv, else Dk<Dk>/Dv<Dv>
//   Hkv     only for the softmax family, and only when Hkv != H (GQA / MQA)
//   <mask>  causal | noncausal, only where the mask is optional (softmax family); linear, based and
//           gated are always causal and bidir never, so their names carry no mask
//   params  the effective parameters (Problem::params_string) whose value differs between points
//           that share everything else, e.g. linear with --normalize both: .../normalize:1
//
// Examples: softmax/tiled/fwd/bf16/B2/H16/T4096/D128/causal
//           softmax/ref/bwd/fp32/B1/H8/Hkv2/Tq63/Tk1013/Dk64/Dv32/noncausal
//           gated/rwkv6/emul/fwd/bf16/B1/H2/T512/D64
// A filter then reads like the axes: '/causal', '^softmax/tiled/', '/T4096/', 'bf16/.*/D128'.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/problem.h"

namespace attnbench::gbench {

// "scale=0.125;lse=1" -> {{"scale","0.125"},{"lse","1"}}.
std::vector<std::pair<std::string, std::string>> split_params(const std::string& params);

// The shape part: "B2/H16/T4096/D128/causal" (variant not included).
std::string shape_segments(const Problem& p);

// The full name without parameter segments.
std::string base_name(const Problem& p, const std::string& impl, Pass pass, Dtype dt);

// For each algorithm, the parameter keys whose value differs between points with the same base
// name (so they must appear in the name to tell the points apart).
using VaryingParams = std::map<std::string, std::set<std::string>>;
struct NamedProblem {
  Problem problem;
  std::string impl;
  Pass pass;
  Dtype dtype;
};
VaryingParams varying_params(const std::vector<NamedProblem>& points);

// base_name plus "/<key>:<value>" for each varying key of the point's algorithm.
std::string point_name(const NamedProblem& pt, const VaryingParams& varying);

}  // namespace attnbench::gbench
