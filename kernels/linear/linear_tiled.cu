// linear, tiled: the chunkwise kernels instantiated for linear attention: the fused forward (one
// block per (b, h); no normalizer, widths <= 128), else chunk_fwd (q/k widths 64, 128, 256; value
// tiles of 64 columns, 32 at width 256). Math in linear_family_tiled_fwd.cuh.
#include "linear_family_tiled_fused_launch.h"
#include "linear_family_tiled_fwd.cuh"
#include "linear_family_tiled_launch.h"

namespace attnbench::kernels::lin_tiled {
namespace {

template <class T>
void linear_fwd_t(const EngineParams& e, int BH, cudaStream_t s) {
  if (fused_eligible(e)) {  // one block per (b, h), all value columns (linear_family_tiled_fused.cuh)
    launch_fused_fwd<T, Feat::linear>(e, BH, s);
    return;
  }
  switch (linear_width(e.Dqk)) {
    case 64: {
      using C = Cfg<T, Feat::linear, 64, 64>;
      launch_cfg<C, false>(chunk_fwd<C, false>, e, BH, s, "chunk_fwd<linear, 64>");
      break;
    }
    case 128: {
      if (occupancy_variant() == 3) {  // one stage, three blocks an SM (ATTNBENCH_LIN_OCC=3)
        using C = Cfg<T, Feat::linear, 128, 64, 3>;
        launch_cfg<C, false>(chunk_fwd<C, false>, e, BH, s, "chunk_fwd<linear, 128, occ3>");
      } else {
        using C = Cfg<T, Feat::linear, 128, 64>;
        launch_cfg<C, false>(chunk_fwd<C, false>, e, BH, s, "chunk_fwd<linear, 128>");
      }
      break;
    }
    default: {
      using C = Cfg<T, Feat::linear, 256, 32>;
      launch_cfg<C, false>(chunk_fwd<C, false>, e, BH, s, "chunk_fwd<linear, 256>");
      break;
    }
  }
}

}  // namespace

void launch_linear_fwd(Dtype dt, const EngineParams& e, int BH, cudaStream_t s) {
  if (dt == Dtype::bf16) linear_fwd_t<__nv_bfloat16>(e, BH, s);
  else linear_fwd_t<__half>(e, BH, s);
}

}  // namespace attnbench::kernels::lin_tiled
