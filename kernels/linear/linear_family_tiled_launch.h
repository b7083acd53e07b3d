// Host side of the tiled linear-family kernels: the launch functions each algorithm's .cu
// instantiates, what the tiled kernels support, and the Prepared that runs a pass.
//
// Forward: one launch of chunk_fwd (linear_family_tiled_fwd.cuh), grid (value tiles, B*H).
// Backward without data-dependent gates or normalizer (linear, retention, lightning) is three
// launches of the same kernel with other tensors in the q, k, v roles (scale and gates unchanged;
// "rev" runs anti-causally, row t reading the later rows):
//   dq = fwd(q = dO, k = V, v = K)          dq_i = scale sum_{j<=i} (do_i.v_j) decay_ij k_j
//   dk = rev(q = V,  k = dO, v = Q)         dk_j = scale sum_{i>=j} (v_j.do_i) decay_ij q_i
//   dv = rev(q = K,  k = Q,  v = dO)        dv_j = scale sum_{i>=j} (k_j.q_i)  decay_ij do_i
// The other backwards (normalizer, based, data-dependent gates) have their own kernels
// (linear_family_tiled_bwd.h).
#pragma once

#include <cstdlib>
#include <map>
#include <string>

#include "device_tensor.h"
#include "linear_family_tiled.cuh"

namespace attnbench::kernels::lin_tiled {

// The forward kernel for a storage type, policy and q/k width; dims as in EngineParams.
// Implemented in linear_tiled.cu (Feat::linear), based_tiled.cu, gated_tiled.cu.
void launch_linear_fwd(Dtype dt, const EngineParams& e, int BH, cudaStream_t s);
void launch_based_fwd(Dtype dt, const EngineParams& e, int BH, cudaStream_t s);
void launch_gated_fwd(Dtype dt, const EngineParams& e, int BH, cudaStream_t s);

// based's quadratic form (linear_family_tiled_quad.cuh; based_quad_fwd.cu, based_quad_bwd.cu).
struct QuadParams;
enum class Quad : int;
void launch_based_quad_fwd(Dtype dt, const QuadParams& qp, int BH, cudaStream_t s);
void launch_based_quad_bwd(Dtype dt, Quad mode, const QuadParams& qp, int BH, cudaStream_t s);
void launch_quad_prep(Dtype dt, const QuadParams& qp, int BH, cudaStream_t s);
// based, Dk <= 16: the chunkwise backward (linear_family_tiled_based_bwd.cuh; based_chunk_bwd.cu):
// dq into qp.out, dk and dv; dq also writes W (qp.w_out, read back as qp.w) and delta from qp.dout,
// qp.o and qp.den (no launch_quad_prep).
void launch_based_chunk_bwd(Dtype dt, const QuadParams& qp, void* dk, void* dv, int BH, cudaStream_t s);
inline int quad_k_width(int64_t d) { return d <= 16 ? 16 : d <= 64 ? 64 : 128; }
inline int quad_v_width(int64_t d) { return d <= 64 ? 64 : 128; }

// gated backward with data-dependent gates (gated_tiled_bwd.cu): the state scans (rev: the reverse
// scan), the chunk-parallel gradients and the du reduction.
struct GateBwdParams;
void launch_gated_scan(Dtype dt, const EngineParams& e, int BH, cudaStream_t s, bool rev);
void launch_gated_bwd_chunk(Dtype dt, const GateBwdParams& gp, bool bonus, int NC, int BH, cudaStream_t s);
void launch_gated_du(const float* du_part, float* du, int B, int H, int NC, int Dk, cudaStream_t s);
// ATTNBENCH_LIN_GBWD, words joined by '+' (A/B switches of the gated backward with vector gates;
// session 5's kernels, "old" and "chunk1" in session 7's A/B, are gone): "fp32a": gated_bwd_chunk2 with all of A on
// CUDA cores; "fp32i": A's diagonal blocks and the intra-chunk sums of dq and dk on CUDA cores in
// fp32 (session 15's kernel; bf16's default puts them on tensor cores); "prof": each launch of the backward timed by CUDA events and printed to stderr
// ("gbwd-prof ...", measurement only: it synchronizes); "abl": gated_bwd_chunk2 also timed with
// phases skipped (linear_family_tiled_host.cu; measurement only); "oldscan": session 7's
// chunk_scan (linear_family_tiled_scan.cuh) where the wgmma scans vec_wg_scan are the default
// (vector gates, widths in (64, 128], sm_90; session 17); "scanpre": chunk_scan's forward scan
// loading rd(D) by cp.async (never measured; also selects chunk_scan).
inline bool gbwd_mode(const char* word) {
  static const std::string m = [] {
    const char* s = std::getenv("ATTNBENCH_LIN_GBWD");
    return "+" + std::string(s ? s : "") + "+";
  }();
  return m.find("+" + std::string(word) + "+") != std::string::npos;
}
inline bool gbwd_prof() { return gbwd_mode("prof"); }

// q/k widths the kernels are built for (the tensor's width is padded up to one of these).
inline int linear_width(int64_t d) { return d <= 64 ? 64 : d <= 128 ? 128 : 256; }
inline int gated_width(int64_t d) { return d <= 64 ? 64 : 128; }
inline int value_tile(int width) { return width == 256 ? 32 : 64; }
constexpr int kBasedBV = 32;  // based: value tile (its 160-row state takes the registers)

// ATTNBENCH_LIN_OCC=3 selects, for the width-128 linear and scalar-gate forward kernels, the
// one-stage configuration that fits three blocks an SM (an A/B switch for measurements).
inline int occupancy_variant() {
  static const int v = [] {
    const char* s = std::getenv("ATTNBENCH_LIN_OCC");
    return s ? std::atoi(s) : 0;
  }();
  return v;
}

// The forward of linear without the normalizer, of the scalar gates (retention, lightning,
// scalar) and of the vector gates (vector, rwkv6), q/k width and value width <= 128, runs a fused
// one-block-per-(b, h) kernel (linear_family_tiled_fused.cuh, linear_family_tiled_fused_vec.cuh)
// unless ATTNBENCH_LIN_FWD=tile selects the per-value-tile chunk_fwd (an A/B switch).
inline bool fused_forward_enabled() {
  static const bool on = [] {
    const char* s = std::getenv("ATTNBENCH_LIN_FWD");
    return !(s && std::string(s) == "tile");
  }();
  return on;
}
inline bool fused_eligible(const EngineParams& e) {
  return fused_forward_enabled() && !e.normalize && e.corr_form == 0 && e.Dqk <= 128 && e.Dvv <= 128;
}

// Launch one chunk kernel configuration, with its shared memory.
template <class C, bool kBonus, class K>
void launch_cfg(K kernel, const EngineParams& e, int BH, cudaStream_t s, const char* name) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
  const dim3 grid(static_cast<unsigned>(e.NV), static_cast<unsigned>(BH));
  kernel<<<grid, kThreads, C::kSmemBytes, s>>>(e);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, name, __FILE__, __LINE__);
}

template <class C, class K, class P>
void launch_quad_cfg(K kernel, const P& qp, int BH, cudaStream_t s, const char* name) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
  const dim3 grid(static_cast<unsigned>((qp.T + kC - 1) / kC), static_cast<unsigned>(BH));
  kernel<<<grid, kThreads, C::kSmemBytes, s>>>(qp);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, name, __FILE__, __LINE__);
}

Support tiled_supports(const Problem& p, Pass pass, Dtype dt);

// A pass of the tiled kernels for any of linear, based, gated.
class ChunkTiled final : public CudaPrepared {
 public:
  ChunkTiled(const Problem& p, Pass pass, Dtype dt, const Tensors& in);
  void run() override;

 private:
  EngineParams base_params() const;
  QuadParams quad_params() const;
  void forward(EngineParams e);
  void la_pass(const void* q, const void* k, const void* v, void* o, int64_t dqk, int64_t dvv, bool reverse,
               const float* corr = nullptr, int corr_form = 0);
  void based_backward();
  void gated_backward();

  std::map<std::string, DeviceTensor> ws_;
  float* den_out_ = nullptr;  // while set, a forward pass writes den per row here
};

}  // namespace attnbench::kernels::lin_tiled
