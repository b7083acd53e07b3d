// Awkward shapes per algorithm (STYLE.md: T = 1, 63, 1013; D = 60; Dk != Dv; Tk > Tq; GQA), used by
// the GPU tests for every CUDA implementation. An implementation that does not support a shape
// says why through supports(); those cases are listed, not silently dropped.
#pragma once

#include <vector>

#include "core/algos.h"
#include "core/problem.h"

namespace attnbench::testing {

inline std::vector<Problem> awkward_problems(const std::string& algo, const std::string& variant) {
  struct S {
    int64_t B, H, Hkv, Tq, Tk, Dk, Dv;
    bool causal;
  };
  std::vector<S> shapes;
  const AlgoSpec* spec = find_algo(algo);
  if (spec->softmax_family) {
    shapes = {{1, 2, 2, 1, 1, 64, 64, false},     {1, 2, 2, 1, 1, 64, 64, true},
              {2, 2, 1, 63, 63, 64, 64, true},    {1, 4, 2, 63, 100, 128, 128, true},
              {1, 2, 2, 1013, 1013, 64, 64, true}, {1, 2, 1, 1013, 1013, 128, 128, false},
              {2, 3, 3, 40, 77, 60, 60, true},     {1, 2, 2, 130, 257, 64, 64, false}};
  } else if (algo == "bidir") {
    shapes = {{1, 2, 2, 1, 1, 64, 64, false},      {2, 2, 2, 63, 63, 64, 64, false},
              {1, 2, 2, 1013, 1013, 64, 64, false}, {1, 2, 2, 63, 100, 32, 128, false},
              {1, 2, 2, 100, 63, 60, 60, false},    {1, 2, 2, 257, 257, 128, 64, false}};
  } else {  // causal linear families: one T
    shapes = {{1, 2, 2, 1, 1, 64, 64, true},       {2, 2, 2, 63, 63, 64, 64, true},
              {1, 2, 2, 1013, 1013, 64, 64, true},  {1, 2, 2, 1013, 1013, 128, 128, true},
              {1, 2, 2, 63, 63, 60, 60, true},      {1, 2, 2, 200, 200, 128, 64, true}};
    if (algo == "based") {  // the Taylor form (Dk <= 16): its fused forward's widths and T % 64
      shapes.push_back({1, 2, 2, 257, 257, 16, 128, true});
      shapes.push_back({1, 2, 2, 1013, 1013, 16, 64, true});
      shapes.push_back({2, 2, 2, 63, 63, 16, 120, true});
      shapes.push_back({1, 2, 2, 1, 1, 16, 128, true});
    }
    if (algo == "linear") shapes.push_back({1, 2, 2, 100, 100, 256, 64, true});
    // widths in (64, 128] below 128 and a partial last chunk: the wgmma forward's zero padding
    if (algo == "linear" || algo == "gated") shapes.push_back({2, 2, 2, 130, 130, 96, 120, true});
    if (algo == "gated") {  // T = 1 and 63 at width 128 (the wgmma forward and the backward's wgmma scans)
      shapes.push_back({1, 2, 2, 1, 1, 128, 128, true});
      shapes.push_back({2, 2, 2, 63, 63, 128, 128, true});
    }
  }
  std::vector<Problem> out;
  for (const S& s : shapes) {
    Problem p;
    p.algo = algo;
    p.variant = variant;
    p.B = s.B, p.H = s.H, p.Hkv = s.Hkv, p.Tq = s.Tq, p.Tk = s.Tk, p.Dk = s.Dk, p.Dv = s.Dv;
    p.causal = s.causal;
    out.push_back(p);
  }
  return out;
}

}  // namespace attnbench::testing
