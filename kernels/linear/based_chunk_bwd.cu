// based, tiled, Dk <= 16: the chunkwise backward on the Taylor features (based_chunk_dq,
// based_chunk_dkv; value widths 64, 128). Math in linear_family_tiled_based_bwd.cuh. On an sm_90
// device dq is based_ws_dq (linear_family_tiled_based_ws_dq.cuh: wgmma, warp-specialized; session
// 27) unless ATTNBENCH_BASED_DQ=mma selects based_chunk_dq (the A/B switch).
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "linear_family_tiled_based_bwd.cuh"
#include "linear_family_tiled_based_ws_dq.cuh"
#include "linear_family_tiled_fused_launch.h"
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

// ATTNBENCH_BASED_DQ: ws (based_ws_dq on an sm_90 device, the default: session 27's c6 measured
// the backward at 0.976x based_chunk_dq's time at T = 4096) or mma (based_chunk_dq); anything else
// is an error.
bool based_ws_dq_enabled() {
  static const bool on = [] {
    const char* s = std::getenv("ATTNBENCH_BASED_DQ");
    const std::string x = s ? s : "";
    if (!x.empty() && x != "ws" && x != "mma") {
      throw std::invalid_argument("ATTNBENCH_BASED_DQ: expected ws or mma, got '" + x + "'");
    }
    return x != "mma" && sm90_device();
  }();
  return on;
}

template <class T, int kDv>
void chunk_bwd(const QuadParams& qp, void* dk, void* dv, int BH, cudaStream_t s) {
  using C = BasedBwdCfg<T, kDv>;
  if (based_ws_dq_enabled()) {
    using D = BasedWsDqCfg<T>;
    void (*dq)(QuadParams) = based_ws_dq<D>;
#ifdef ATTNBENCH_BASED_WSDQ_ABL
    // measurement only (wrong results): 1 no pre-pass loads, 2 no Jacobian, 3 both (bf16)
    if (const char* a = std::getenv("ATTNBENCH_BASED_WSDQ_ABL"); a && std::is_same_v<T, __nv_bfloat16>) {
      const int abl = std::atoi(a);
      dq = abl == 1 ? based_ws_dq<D, 1> : abl == 2 ? based_ws_dq<D, 2> : abl == 3 ? based_ws_dq<D, 3> : dq;
    }
#endif
    launch_one<D>(dq, BH, s, "based_ws_dq", qp);
  } else {
    launch_one<C>(based_chunk_dq<C>, BH, s, "based_chunk_dq", qp);
  }
  launch_one<C>(based_chunk_dkv<C>, BH, s, "based_chunk_dkv", qp, dk, dv);
}

}  // namespace

void launch_based_chunk_bwd(Dtype dt, const QuadParams& qp, void* dk, void* dv, int BH, cudaStream_t s) {
  if (dt == Dtype::bf16) qp.Dv <= 64 ? chunk_bwd<__nv_bfloat16, 64>(qp, dk, dv, BH, s) : chunk_bwd<__nv_bfloat16, 128>(qp, dk, dv, BH, s);
  else qp.Dv <= 64 ? chunk_bwd<__half, 64>(qp, dk, dv, BH, s) : chunk_bwd<__half, 128>(qp, dk, dv, BH, s);
}

}  // namespace attnbench::kernels::lin_tiled
