#include "softmax_kernels.h"

namespace attnbench::kernels {

void register_hyperbolic_naive(Registry&) {}  // placeholder until this implementation lands

}  // namespace attnbench::kernels
