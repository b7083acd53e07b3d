// softmax attention, CPU: the fp64 reference (dense definition, and a row-streaming online-softmax
// formulation to cross-check it) and the same-precision emulation.
//   s_ij = scale q_i.k_j,  P = softmax_j(s) over visible keys,  o_i = sum_j P_ij v_j,
//   L_i = log sum_j exp(s_ij),  A_j = sum_i P_ij.
#pragma once

#include "core/impl.h"

namespace attnbench::ref {

Tensors softmax_forward(const Problem& p, const Tensors& in);
Tensors softmax_backward(const Problem& p, const Tensors& in);
// FlashAttention's online softmax, one query row at a time over key blocks of `key_block`.
Tensors softmax_forward_streaming(const Problem& p, const Tensors& in, int64_t key_block = 64);
Tensors softmax_emulate_forward(const Problem& p, Dtype dt, const Tensors& in);
Tensors softmax_emulate_backward(const Problem& p, Dtype dt, const Tensors& in);

void register_softmax(Registry& r);

}  // namespace attnbench::ref
