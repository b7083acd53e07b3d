// The bidir family's CUDA implementations, registered by register_bidir_family() in bidir/register.cu.
#pragma once

#include "core/impl.h"

namespace attnbench::kernels {

void register_bidir_family(Registry& r);

void register_bidir_naive(Registry& r);  // bidir_naive.cu: bidir/naive
void register_bidir_tiled(Registry& r);  // bidir_tiled.cu (+ bidir_tiled_bwd.cu): bidir/tiled

}  // namespace attnbench::kernels
