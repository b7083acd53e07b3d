#include "linear_kernels.h"

namespace attnbench::kernels {

void register_linear_family(Registry& r) {
  register_linear_naive(r);
  register_based_naive(r);
  register_gated_naive(r);
  register_linear_tiled(r);
  register_based_tiled(r);
  register_gated_tiled(r);
}

}  // namespace attnbench::kernels
