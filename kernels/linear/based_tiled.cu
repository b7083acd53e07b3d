// based, tiled: the chunkwise kernel on Taylor features (Dk <= 16, F = 160 state rows, value
// tiles of 64 columns). Math in linear_family_tiled_fwd.cuh.
#include "linear_family_tiled_fwd.cuh"
#include "linear_family_tiled_launch.h"

namespace attnbench::kernels::lin_tiled {

void launch_based_fwd(Dtype dt, const EngineParams& e, int BH, cudaStream_t s) {
  if (dt == Dtype::bf16) {
    using C = Cfg<__nv_bfloat16, Feat::based, kBasedDk, kBasedBV>;
    launch_cfg<C, false>(chunk_fwd<C, false>, e, BH, s, "chunk_fwd<based>");
  } else {
    using C = Cfg<__half, Feat::based, kBasedDk, kBasedBV>;
    launch_cfg<C, false>(chunk_fwd<C, false>, e, BH, s, "chunk_fwd<based>");
  }
}

}  // namespace attnbench::kernels::lin_tiled
