// Based (causal linear attention with the 2nd-order Taylor weights of exp), CPU: the fp64
// reference in two independent formulations and the same-precision emulation. For one (b, h)
// slice, scale default 1/sqrt(Dk):
//   s_ij = scale q_i.k_j,   a_ij = 1 + s_ij + s_ij^2 / 2   (j <= i)
//   o_i = sum_j a_ij v_j / (sum_j a_ij + 1e-6)   (normalize, the default)   or   sum_j a_ij v_j
// Since a_ij = ((1 + s)^2 + 1) / 2 >= 1/2, the denominator is positive for any inputs.
// `ref` is the quadratic form (linear_quadratic.h); the cross-check is linear attention on the
// Taylor features phi(x) = [1, y, vec(y y^T) / sqrt(2)], y = sqrt(scale) x, for which
// phi(q).phi(k) = 1 + s + s^2/2 exactly, in the chunked state form (linear_chunked.h).
#pragma once

#include "core/impl.h"

namespace attnbench::ref {

constexpr double kBasedEps = 1e-6;  // DESIGN: the fixed denominator guard of Based

// The fp64 reference: the quadratic form.
Tensors based_forward(const Problem& p, const Tensors& in);
Tensors based_backward(const Problem& p, const Tensors& in);
// Linear attention on the Taylor features, chunked (chunk 1: the recurrence). Feature dim
// 1 + Dk + Dk^2: for tests, not for long sequences at large Dk.
Tensors based_forward_taylor(const Problem& p, const Tensors& in, int64_t chunk);
Tensors based_backward_taylor(const Problem& p, const Tensors& in, int64_t chunk);
// Same-precision emulation of the quadratic tiled form; the roundings are stated in based.cpp.
Tensors based_emulate_forward(const Problem& p, Dtype dt, const Tensors& in);
Tensors based_emulate_backward(const Problem& p, Dtype dt, const Tensors& in);

// Estimated fp64 operations of the quadratic form (causal pairs only).
double based_cpu_cost(const Problem& p, Pass pass);

void register_based(Registry& r);

}  // namespace attnbench::ref
