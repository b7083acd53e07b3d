// The linear family's CUDA implementations (linear, based, gated), registered by
// register_linear_family() in linear/register.cu: one register function per algorithm and kind.
#pragma once

#include "core/impl.h"

namespace attnbench::kernels {

void register_linear_family(Registry& r);

void register_linear_naive(Registry& r);
void register_based_naive(Registry& r);
void register_gated_naive(Registry& r);
void register_linear_tiled(Registry& r);
void register_based_tiled(Registry& r);
void register_gated_tiled(Registry& r);

}  // namespace attnbench::kernels
