#include "softmax_kernels.h"

namespace attnbench::kernels {

void register_softmax_unfused(Registry&) {}  // placeholder until this implementation lands

}  // namespace attnbench::kernels
