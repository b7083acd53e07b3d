// Registers every CUDA implementation. One register function per kernel family.
#pragma once

#include "core/impl.h"

namespace attnbench::kernels {

void register_cuda(Registry& r);

}  // namespace attnbench::kernels
