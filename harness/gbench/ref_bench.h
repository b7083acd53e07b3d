// Microbenchmarks of the CPU references themselves, so that a change that slows the oracle (every
// checked point waits on it) shows up in compare.py like any kernel regression.
//
//   BM_ref_<algo>_<pass>[/<variant>]/<shape>          the fp64 reference, fp32 inputs
//   BM_emul_<algo>_<pass>[/<variant>]/bf16/<shape>    the same-precision emulation (the CPU base)
//
// at two fixed shapes per algorithm: B1/H4/T256 and B1/H2/T1024, D64 (based: Dk16/Dv64), causal
// where the mask is optional, bidir's identity feature map, every variant. Unchecked by design
// (each is its own oracle); real time, since the references run on several threads.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "points.h"

namespace attnbench::gbench {

// The microbenchmarks of every algorithm in `algos` that has a registered ref or emul.
std::vector<Point> reference_microbenchmarks(const std::set<std::string>& algos);

}  // namespace attnbench::gbench
