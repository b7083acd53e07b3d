// The softmax family's CUDA implementations (softmax, piecewise, hyperbolic), registered by
// register_softmax_family() in softmax/register.cu.
#pragma once

#include "core/impl.h"

namespace attnbench::kernels {

void register_softmax_family(Registry& r);

void register_softmax_naive(Registry& r);     // softmax_naive.cu: softmax/naive
void register_piecewise_naive(Registry& r);   // piecewise_naive.cu: piecewise/naive
void register_hyperbolic_naive(Registry& r);  // hyperbolic_naive.cu: hyperbolic/naive
void register_flash_minimal(Registry& r);     // flash_minimal.cu: softmax/flash1, softmax/flash2
void register_softmax_unfused(Registry& r);   // softmax_unfused.cu: softmax/unfused (cuBLAS)
void register_softmax_tiled(Registry& r);     // softmax_tiled*.cu: {softmax,piecewise,hyperbolic}/tiled

}  // namespace attnbench::kernels
