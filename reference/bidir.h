// bidir (bidirectional linear attention), CPU: the fp64 reference in its linear-time form, a
// quadratic form to cross-check it, and the same-precision emulation.
//   Qf = phi(Q) [Tq,Dk], Kf = phi(K) [Tk,Dk] (feature map row by row), V [Tk,Dv]
//   simple: o_i = scale Qf_i (Kf^T V)
//   norm:   o_i = (Qf_i (Kf^T V) / Tk) / (Qf_i . mean_j Kf_j + 1e-6)
#pragma once

#include "core/impl.h"
#include "eigen_slices.h"

namespace attnbench::ref {

// Linear form: KV = Kf^T V [Dk,Dv] once per head, then Qf KV.
Tensors bidir_forward(const Problem& p, const Tensors& in);
Tensors bidir_backward(const Problem& p, const Tensors& in);
// Quadratic form: A = Qf Kf^T [rows,Tk] for blocks of `row_block` query rows, then A V.
Tensors bidir_forward_quadratic(const Problem& p, const Tensors& in, int64_t row_block = 64);
Tensors bidir_backward_quadratic(const Problem& p, const Tensors& in, int64_t row_block = 64);
Tensors bidir_emulate_forward(const Problem& p, Dtype dt, const Tensors& in);
Tensors bidir_emulate_backward(const Problem& p, Dtype dt, const Tensors& in);

// The feature map phi applied to every row of x, in fp64 (exposed for the tests).
Mat bidir_feature_map(FeatureMap f, const Mat& x);

void register_bidir(Registry& r);

}  // namespace attnbench::ref
