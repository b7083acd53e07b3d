// hyperbolic (Lorentz-model) attention, CPU: the fp64 reference and the same-precision emulation,
// both on the softmax-family engines with a Lorentz-distance score policy.
//   x0 = sqrt(1/c + |x|^2),  <a,b>_L = a.b - a0 b0,  z = max(-c <q,k>_L, 1 + 1e-6),
//   d = acosh(z) / sqrt(c),  s = -beta d,  then softmax attention (causal optional, GQA).
#pragma once

#include "core/impl.h"

namespace attnbench::ref {

Tensors hyperbolic_forward(const Problem& p, const Tensors& in);
Tensors hyperbolic_backward(const Problem& p, const Tensors& in);
Tensors hyperbolic_emulate_forward(const Problem& p, Dtype dt, const Tensors& in);
Tensors hyperbolic_emulate_backward(const Problem& p, Dtype dt, const Tensors& in);
// The fp64 scores s_ij of every (query, key) pair, mask not applied: [B, H, Tq, Tk] (for tests).
Tensor hyperbolic_scores(const Problem& p, const Tensors& in);

void register_hyperbolic(Registry& r);

}  // namespace attnbench::ref
