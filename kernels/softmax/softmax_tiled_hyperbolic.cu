// hyperbolic `tiled`: the tiled softmax-family kernels with the Lorentz-distance score
//   s_ij = -(beta/sqrt c) acosh(max(-c (q_i . k_j - q0_i k0_j), 1 + 1e-6))
// (a GEMM plus a rank-one term; LorentzScore in softmax_tiled_scores.cuh).
#include "softmax_tiled_launch.cuh"

namespace attnbench::kernels::tiled {

// The ratio-domain forward (LorentzScore<true>) when beta / sqrt(c) == 1, else the log domain.
Impl tiled_hyperbolic_impl() {
  Impl impl = make_tiled_impl<LorentzScore<false>>(
      "hyperbolic", "Hopper wgmma + TMA flash kernels with the Lorentz score (GEMM + rank-one term); fp16/bf16; "
                    "D in {64, 128}; causal Tk >= Tq; GQA; lse; total attention");
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in,
                    const PrepareOptions&) -> std::unique_ptr<Prepared> {
    if (lorentz_unit(p)) return std::make_unique<TiledPrepared<LorentzScore<true>>>(p, pass, dt, in);
    return std::make_unique<TiledPrepared<LorentzScore<false>>>(p, pass, dt, in);
  };
  return impl;
}

}  // namespace attnbench::kernels::tiled
