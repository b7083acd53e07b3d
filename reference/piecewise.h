// piecewise attention (NLPE), CPU: the fp64 reference and the same-precision emulation, both on the
// softmax-family engines with a two-source score policy.
//   dist_ij = i + off - j  (off = Tk - Tq),  threshold w = Problem::window() (default Tk / 2)
//   s_ij = scale * (dist_ij >= w ? q2_i.k2_j : q1_i.k1_j),  then softmax attention as usual
//   (causal optional, GQA: query head h reads kv head h / (H / Hkv)).
#pragma once

#include "core/impl.h"

namespace attnbench::ref {

Tensors piecewise_forward(const Problem& p, const Tensors& in);
Tensors piecewise_backward(const Problem& p, const Tensors& in);
Tensors piecewise_emulate_forward(const Problem& p, Dtype dt, const Tensors& in);
Tensors piecewise_emulate_backward(const Problem& p, Dtype dt, const Tensors& in);

void register_piecewise(Registry& r);

}  // namespace attnbench::ref
