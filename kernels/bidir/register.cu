#include "bidir_kernels.h"

namespace attnbench::kernels {

void register_bidir_family(Registry& r) {
  register_bidir_naive(r);
  register_bidir_tiled(r);
}

}  // namespace attnbench::kernels
