#include "linear_kernels.h"

namespace attnbench::kernels {

void register_linear_family(Registry&) {}  // placeholder until the linear kernels land

}  // namespace attnbench::kernels
