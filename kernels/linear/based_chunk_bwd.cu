// based, tiled, Dk <= 16: the chunkwise backward on the Taylor features (based_chunk_dq,
// based_chunk_dkv; value widths 64, 128). Math in linear_family_tiled_based_bwd.cuh.
#include "linear_family_tiled_based_bwd.cuh"
#include "linear_family_tiled_launch.h"

namespace attnbench::kernels::lin_tiled {
namespace {

template <class C, class K, class... A>
void launch_one(K kernel, int BH, cudaStream_t s, const char* name, A... args) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
  kernel<<<dim3(1u, static_cast<unsigned>(BH)), C::kThreads, C::kSmemBytes, s>>>(args...);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, name, __FILE__, __LINE__);
}

template <class T, int kDv>
void chunk_bwd(const QuadParams& qp, void* dk, void* dv, int BH, cudaStream_t s) {
  using C = BasedBwdCfg<T, kDv>;
  launch_one<C>(based_chunk_dq<C>, BH, s, "based_chunk_dq", qp);
  launch_one<C>(based_chunk_dkv<C>, BH, s, "based_chunk_dkv", qp, dk, dv);
}

}  // namespace

void launch_based_chunk_bwd(Dtype dt, const QuadParams& qp, void* dk, void* dv, int BH, cudaStream_t s) {
  if (dt == Dtype::bf16) qp.Dv <= 64 ? chunk_bwd<__nv_bfloat16, 64>(qp, dk, dv, BH, s) : chunk_bwd<__nv_bfloat16, 128>(qp, dk, dv, BH, s);
  else qp.Dv <= 64 ? chunk_bwd<__half, 64>(qp, dk, dv, BH, s) : chunk_bwd<__half, 128>(qp, dk, dv, BH, s);
}

}  // namespace attnbench::kernels::lin_tiled
