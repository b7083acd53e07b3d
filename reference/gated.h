// gated linear attention (causal), CPU: the fp64 reference in two independent formulations and
// the same-precision chunkwise emulation. For one (b, h) slice, S is Dk x Dv, S_{-1} = 0,
// scale default 1/sqrt(Dk), g_t in R^Dk the log-gate of step t (<= 0):
//   S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t
//   o_t = scale q_t S_t                                   (retention, lightning, scalar, vector)
//   o_t = scale q_t (S_{t-1} + diag(u) k_t^T v_t)         (rwkv6, bonus u [H, Dk])
// Gates: retention g = log(1 - 2^(-5-h)), lightning g = -2^(-8(h+1)/H) (fixed per head, no
// input); scalar: input g [B,H,T] broadcast over Dk; vector, rwkv6: input g [B,H,T,Dk].
//
// Every variant runs one code path on a T x Dk matrix of log-gates (gated_gates.h); the variant
// only says where the gate comes from and whether the bonus replaces the diagonal term.
//
// Parallel form, with G_t = sum_{s<=t} g_s (G_{-1} = 0):
//   o_i = scale sum_{j<=i} sum_d q_id k_jd exp(G_id - G_jd) v_j
//   rwkv6: o_i = scale [sum_{j<i} sum_d q_id k_jd exp(G_{i-1,d} - G_jd) v_j + (q_i.(u*k_i)) v_i]
// Only differences G_i - G_j <= 0 are exponentiated, so nothing overflows.
#pragma once

#include <string>

#include "core/impl.h"

namespace attnbench::ref {

// The fixed per-head log-gate of `retention` or `lightning` (head h of H), in fp64.
double gated_fixed_log_gate(const std::string& variant, int64_t h, int64_t H);

// The fp64 reference (`ref`): the recurrence, token by token; the backward propagates
// dL/dS_t backwards through it (states recomputed from checkpoints every 64 steps).
Tensors gated_forward(const Problem& p, const Tensors& in);
Tensors gated_backward(const Problem& p, const Tensors& in);
// The parallel form (quadratic in T), one query row at a time: the cross-check. Its backward
// derives the gate gradient from dG_t = q_t*dq_t - k_t*dk_t and a reverse cumulative sum.
Tensors gated_forward_parallel(const Problem& p, const Tensors& in);
Tensors gated_backward_parallel(const Problem& p, const Tensors& in);
// The same-precision chunkwise emulation (`emul`, the CPU `base`); roundings in gated_emul.h.
Tensors gated_emulate_forward(const Problem& p, Dtype dt, const Tensors& in);
Tensors gated_emulate_backward(const Problem& p, Dtype dt, const Tensors& in);

// Estimated operations of the recurrence plus the emulation's intra-chunk blocks, for refusing
// sizes that would take minutes on the CPU.
double gated_cpu_cost(const Problem& p, Pass pass);

void register_gated(Registry& r);

}  // namespace attnbench::ref
