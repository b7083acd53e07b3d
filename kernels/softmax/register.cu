#include "softmax_kernels.h"

namespace attnbench::kernels {

void register_softmax_family(Registry& r) {
  register_softmax_naive(r);
}

}  // namespace attnbench::kernels
