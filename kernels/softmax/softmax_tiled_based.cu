// based's quadratic form on the tiled softmax-family kernels: Hopper wgmma + TMA flash kernels
// with the Taylor weight a = 1 + s + s^2/2 as the score policy (TaylorScore in
// softmax_tiled_scores.cuh: softmax over s' = ln a, the forward in the ratio domain of a, eps in
// the row sum). based/tiled takes this path where it applies (linear_family_tiled_host.cu);
// elsewhere (Dk <= 16, Dk != Dv, normalize off) it keeps the chunkwise and quadratic mma.sync forms.
#include "softmax_kernels.h"
#include "softmax_tiled_launch.cuh"

namespace attnbench::kernels {

namespace {

// based is causal with one T and no grouped heads: the softmax-family view of the same problem.
Problem as_softmax_family(const Problem& p) {
  Problem c = p;
  c.causal = true;
  c.Hkv = p.H;
  return c;
}

}  // namespace

Support tiled_based_flash_supports(const Problem& p, Dtype dt) {
  if (!p.normalize()) return Support::no("based flash: needs normalize on (the kernels divide by the row sum)");
  if (p.Tq != p.Tk) return Support::no("based flash: needs Tq == Tk");
  return tiled::tiled_supports(as_softmax_family(p), dt);
}

std::unique_ptr<Prepared> make_tiled_based_flash(const Problem& p, Pass pass, Dtype dt, const Tensors& in) {
  return std::make_unique<tiled::TiledPrepared<tiled::TaylorScore>>(as_softmax_family(p), pass, dt, in);
}

}  // namespace attnbench::kernels
