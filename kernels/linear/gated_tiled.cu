// gated, tiled: the chunkwise kernels with the gate as policy: scalar gates (retention, lightning,
// scalar; the fused one-block-per-(b, h) forward unless ATTNBENCH_LIN_FWD=tile) and vector gates
// (vector, rwkv6 with its bonus; the fused forward of linear_family_tiled_fused_vec.cuh unless
// ATTNBENCH_LIN_FWD=tile), q/k widths 64 and 128, value tiles of 64 columns. Math in
// linear_family_tiled_fwd.cuh, linear_family_tiled_fused.cuh and linear_family_tiled_fused_vec.cuh.
#include "linear_family_tiled_fused_launch.h"
#include "linear_family_tiled_fwd.cuh"
#include "linear_family_tiled_launch.h"

namespace attnbench::kernels::lin_tiled {
namespace {

template <class T, int W>
void gated_fwd_w(const EngineParams& e, int BH, cudaStream_t s) {
  if (e.gate != kGateVector && fused_eligible(e)) {  // one block per (b, h) (linear_family_tiled_fused.cuh)
    launch_fused_fwd<T, Feat::gate_scalar>(e, BH, s);
    return;
  }
  if (e.gate == kGateVector && !e.reverse && fused_eligible(e)) {  // linear_family_tiled_fused_vec.cuh
    if (e.bonus) launch_fused_vec_fwd<T, true>(e, BH, s);
    else launch_fused_vec_fwd<T, false>(e, BH, s);
    return;
  }
  if constexpr (W == 128) {  // ATTNBENCH_LIN_OCC=3: one stage, three blocks an SM
    if (e.gate != kGateVector && occupancy_variant() == 3) {
      using C = Cfg<T, Feat::gate_scalar, W, 64, 3>;
      launch_cfg<C, false>(chunk_fwd<C, false>, e, BH, s, "chunk_fwd<gate_scalar, occ3>");
      return;
    }
  }
  if (e.gate != kGateVector) {
    using C = Cfg<T, Feat::gate_scalar, W, 64>;
    launch_cfg<C, false>(chunk_fwd<C, false>, e, BH, s, "chunk_fwd<gate_scalar>");
  } else if (!e.bonus) {
    using C = Cfg<T, Feat::gate_vector, W, 64>;
    launch_cfg<C, false>(chunk_fwd<C, false>, e, BH, s, "chunk_fwd<gate_vector>");
  } else {
    using C = Cfg<T, Feat::gate_vector, W, 64>;
    launch_cfg<C, true>(chunk_fwd<C, true>, e, BH, s, "chunk_fwd<gate_vector, bonus>");
  }
}

template <class T>
void gated_fwd_t(const EngineParams& e, int BH, cudaStream_t s) {
  if (gated_width(e.Dqk) == 64) gated_fwd_w<T, 64>(e, BH, s);
  else gated_fwd_w<T, 128>(e, BH, s);
}

}  // namespace

void launch_gated_fwd(Dtype dt, const EngineParams& e, int BH, cudaStream_t s) {
  if (dt == Dtype::bf16) gated_fwd_t<__nv_bfloat16>(e, BH, s);
  else gated_fwd_t<__half>(e, BH, s);
}

}  // namespace attnbench::kernels::lin_tiled
