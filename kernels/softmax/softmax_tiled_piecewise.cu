// piecewise `tiled`: the tiled softmax-family kernels with the two-slot score
//   s_ij = scale q2_i . k2_j  if dist = i + off - j >= w,  else scale q1_i . k1_j
// (PiecewiseScore in softmax_tiled_scores.cuh).
#include "softmax_tiled_launch.cuh"

namespace attnbench::kernels::tiled {

Impl tiled_piecewise_impl() {
  return make_tiled_impl<PiecewiseScore>(
      "piecewise", "Hopper wgmma + TMA flash kernels, one score GEMM per block (two on blocks straddling dist = w); "
                   "fp16/bf16; D in {64, 128}; causal Tk >= Tq; GQA; lse; total attention");
}

}  // namespace attnbench::kernels::tiled
