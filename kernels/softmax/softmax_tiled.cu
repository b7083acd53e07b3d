// softmax, piecewise and hyperbolic `tiled`: one Hopper flash design (softmax_tiled_fwd.cuh,
// softmax_tiled_bwd.cuh, softmax_tiled_dq.cuh) with the score as a policy
// (softmax_tiled_scores.cuh); this file instantiates the plain dot-product score
//   s_ij = scale q_i . k_j
// and registers all three family members.
#include "softmax_kernels.h"
#include "softmax_tiled_launch.cuh"

namespace attnbench::kernels {

namespace {
constexpr const char* kTiledSummary =
    "Hopper wgmma + TMA flash kernels, warp-specialized; fp16/bf16; D = Dk = Dv in {64, 128}; any Tq, Tk "
    "(causal: Tk >= Tq); GQA; lse; total attention";
}  // namespace

void register_softmax_tiled(Registry& r) {
  r.add(tiled::make_tiled_impl<tiled::DotScore>("softmax", kTiledSummary));
  r.add(tiled::tiled_piecewise_impl());
  r.add(tiled::tiled_hyperbolic_impl());
}

}  // namespace attnbench::kernels
