// based, tiled, quadratic form: the backward instantiations (row pre-pass, dq, dk, dv; q/k widths
// 16, 64, 128; value widths 64, 128). Math in linear_family_tiled_quad.cuh.
#include "linear_family_tiled_launch.h"
#include "linear_family_tiled_quad.cuh"

namespace attnbench::kernels::lin_tiled {
namespace {

template <class T, int kDk, int kDv>
void quad_bwd(Quad mode, const QuadParams& qp, int BH, cudaStream_t s) {
  using C = QuadCfg<T, kDk, kDv>;
  if (mode == Quad::dq) launch_quad_cfg<C>(based_quad<C, Quad::dq>, qp, BH, s, "based_quad<dq>");
  else if (mode == Quad::dk) launch_quad_cfg<C>(based_quad<C, Quad::dk>, qp, BH, s, "based_quad<dk>");
  else launch_quad_cfg<C>(based_quad<C, Quad::dv>, qp, BH, s, "based_quad<dv>");
}

template <class T>
void quad_bwd_t(Quad mode, const QuadParams& qp, int BH, cudaStream_t s) {
  const int wk = quad_k_width(qp.Dk), wv = quad_v_width(qp.Dv);
  if (wk == 16) wv == 64 ? quad_bwd<T, 16, 64>(mode, qp, BH, s) : quad_bwd<T, 16, 128>(mode, qp, BH, s);
  else if (wk == 64) wv == 64 ? quad_bwd<T, 64, 64>(mode, qp, BH, s) : quad_bwd<T, 64, 128>(mode, qp, BH, s);
  else wv == 64 ? quad_bwd<T, 128, 64>(mode, qp, BH, s) : quad_bwd<T, 128, 128>(mode, qp, BH, s);
}

}  // namespace

void launch_based_quad_bwd(Dtype dt, Quad mode, const QuadParams& qp, int BH, cudaStream_t s) {
  if (dt == Dtype::bf16) quad_bwd_t<__nv_bfloat16>(mode, qp, BH, s);
  else quad_bwd_t<__half>(mode, qp, BH, s);
}

void launch_quad_prep(Dtype dt, const QuadParams& qp, int BH, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((qp.T + 3) / 4), static_cast<unsigned>(BH));
  if (dt == Dtype::bf16) quad_prep<__nv_bfloat16><<<grid, kThreads, 0, s>>>(qp);
  else quad_prep<__half><<<grid, kThreads, 0, s>>>(qp);
  CUDA_CHECK_LAUNCH("quad_prep");
}

}  // namespace attnbench::kernels::lin_tiled
