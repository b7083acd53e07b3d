// based, tiled, quadratic form: the forward instantiations (q/k widths 16, 64, 128; value widths
// 64, 128). Math in linear_family_tiled_quad.cuh.
#include "linear_family_tiled_launch.h"
#include "linear_family_tiled_quad.cuh"

namespace attnbench::kernels::lin_tiled {
namespace {

template <class T, int kDk, int kDv>
void quad_fwd(const QuadParams& qp, int BH, cudaStream_t s) {
  using C = QuadCfg<T, kDk, kDv>;
  launch_quad_cfg<C>(based_quad<C, Quad::fwd>, qp, BH, s, "based_quad<fwd>");
}

template <class T>
void quad_fwd_t(const QuadParams& qp, int BH, cudaStream_t s) {
  const int wk = quad_k_width(qp.Dk), wv = quad_v_width(qp.Dv);
  if (wk == 16) wv == 64 ? quad_fwd<T, 16, 64>(qp, BH, s) : quad_fwd<T, 16, 128>(qp, BH, s);
  else if (wk == 64) wv == 64 ? quad_fwd<T, 64, 64>(qp, BH, s) : quad_fwd<T, 64, 128>(qp, BH, s);
  else wv == 64 ? quad_fwd<T, 128, 64>(qp, BH, s) : quad_fwd<T, 128, 128>(qp, BH, s);
}

}  // namespace

void launch_based_quad_fwd(Dtype dt, const QuadParams& qp, int BH, cudaStream_t s) {
  if (dt == Dtype::bf16) quad_fwd_t<__nv_bfloat16>(qp, BH, s);
  else quad_fwd_t<__half>(qp, BH, s);
}

}  // namespace attnbench::kernels::lin_tiled
