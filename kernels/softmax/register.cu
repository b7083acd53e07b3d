#include "softmax_kernels.h"

namespace attnbench::kernels {

void register_softmax_family(Registry& r) {
  register_softmax_naive(r);
  register_piecewise_naive(r);
  register_hyperbolic_naive(r);
  register_flash_minimal(r);
  register_softmax_unfused(r);
  register_softmax_tiled(r);
}

}  // namespace attnbench::kernels
