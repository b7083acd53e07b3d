// hyperbolic `tiled`: the tiled softmax-family kernels with the Lorentz-distance score
//   s_ij = -(beta/sqrt c) acosh(max(-c (q_i . k_j - q0_i k0_j), 1 + 1e-6))
// (a GEMM plus a rank-one term; LorentzScore in softmax_tiled_scores.cuh).
#include "softmax_tiled_launch.cuh"

namespace attnbench::kernels::tiled {

Impl tiled_hyperbolic_impl() {
  return make_tiled_impl<LorentzScore>(
      "hyperbolic", "Hopper wgmma + TMA flash kernels with the Lorentz score (GEMM + rank-one term); fp16/bf16; "
                    "D in {64, 128}; causal Tk >= Tq; GQA; lse; total attention");
}

}  // namespace attnbench::kernels::tiled
