// linear attention (causal), CPU: the fp64 reference in two independent formulations and the
// same-precision emulation. For one (b, h) slice, scale default 1, eps = Problem::eps():
//   o_i = scale sum_{j<=i} (q_i.k_j) v_j                                    (normalize off)
//   o_i = scale sum_{j<=i} (q_i.k_j) v_j / (scale q_i.sum_{j<=i} k_j + eps)  (normalize on)
// Dk != Dv is allowed. `ref` is the chunked state form (linear in T); the quadratic form from the
// definition is the cross-check.
#pragma once

#include "core/impl.h"

namespace attnbench::ref {

// The fp64 reference: chunked state form (linear_chunked.h) with chunk 64.
Tensors linear_forward(const Problem& p, const Tensors& in);
Tensors linear_backward(const Problem& p, const Tensors& in);
// The same state form with any chunk; chunk 1 is the token-by-token recurrence.
Tensors linear_forward_chunked(const Problem& p, const Tensors& in, int64_t chunk);
Tensors linear_backward_chunked(const Problem& p, const Tensors& in, int64_t chunk);
// The quadratic form: masked scale Q K^T times V, row-blocked (linear_quadratic.h).
Tensors linear_forward_quadratic(const Problem& p, const Tensors& in);
Tensors linear_backward_quadratic(const Problem& p, const Tensors& in);
// Same-precision emulation (chunk kLinearEmulChunk); the roundings are stated in linear.cpp.
Tensors linear_emulate_forward(const Problem& p, Dtype dt, const Tensors& in);
Tensors linear_emulate_backward(const Problem& p, Dtype dt, const Tensors& in);

// Estimated fp64 operations of the chunked form, for refusing sizes that would take minutes.
double linear_cpu_cost(const Problem& p, Pass pass);

void register_linear(Registry& r);

}  // namespace attnbench::ref
