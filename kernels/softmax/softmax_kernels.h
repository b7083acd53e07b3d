// The softmax family's CUDA implementations (softmax, piecewise, hyperbolic), registered by
// register_softmax_family() in softmax/register.cu.
#pragma once

#include "core/impl.h"

namespace attnbench::kernels {

void register_softmax_family(Registry& r);
void register_softmax_naive(Registry& r);

}  // namespace attnbench::kernels
