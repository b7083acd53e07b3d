// The bidir family's CUDA implementations, registered by register_bidir_family() in bidir/register.cu.
#pragma once

#include "core/impl.h"

namespace attnbench::kernels {

void register_bidir_family(Registry& r);

}  // namespace attnbench::kernels
