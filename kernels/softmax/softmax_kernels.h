// The softmax family's CUDA implementations (softmax, piecewise, hyperbolic), registered by
// register_softmax_family() in softmax/register.cu.
#pragma once

#include <memory>

#include "core/impl.h"

namespace attnbench::kernels {

void register_softmax_family(Registry& r);

void register_softmax_naive(Registry& r);     // softmax_naive.cu: softmax/naive
void register_piecewise_naive(Registry& r);   // piecewise_naive.cu: piecewise/naive
void register_hyperbolic_naive(Registry& r);  // hyperbolic_naive.cu: hyperbolic/naive
void register_flash_minimal(Registry& r);     // flash_minimal.cu: softmax/flash1, softmax/flash2
void register_softmax_unfused(Registry& r);   // softmax_unfused.cu: softmax/unfused (cuBLAS)
void register_softmax_tiled(Registry& r);     // softmax_tiled*.cu: {softmax,piecewise,hyperbolic}/tiled

// based's quadratic form (Dk = Dv in {64, 128}, normalize on) on the tiled softmax-family kernels
// (softmax_tiled_based.cu): whether they take p (else why not), and their Prepared. based/tiled
// (linear/linear_family_tiled_host.cu) routes there.
Support tiled_based_flash_supports(const Problem& p, Dtype dt);
std::unique_ptr<Prepared> make_tiled_based_flash(const Problem& p, Pass pass, Dtype dt, const Tensors& in);

}  // namespace attnbench::kernels
