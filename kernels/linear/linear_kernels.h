// The linear family's CUDA implementations, registered by register_linear_family() in linear/register.cu.
#pragma once

#include "core/impl.h"

namespace attnbench::kernels {

void register_linear_family(Registry& r);

}  // namespace attnbench::kernels
