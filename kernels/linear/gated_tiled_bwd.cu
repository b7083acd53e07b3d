// gated, tiled, backward with data-dependent gates (scalar, vector, rwkv6): the two state scans
// and the chunk-parallel gradient kernel (gated_bwd_chunk2), instantiated for q/k widths 64 and 128 and value widths
// 64 and 128. Math in linear_family_tiled_scan.cuh and linear_family_tiled_gbwd.cuh.
#include "linear_family_tiled_gbwd.cuh"
#include "linear_family_tiled_gbwd2.cuh"
#include "linear_family_tiled_fused_launch.h"
#include "linear_family_tiled_launch.h"
#include "linear_family_tiled_scan.cuh"
#include "linear_family_tiled_scan_wg.cuh"

namespace attnbench::kernels::lin_tiled {
namespace {

template <class C, bool kBonus>
void scan_cfg(const EngineParams& e, int BH, cudaStream_t s, bool rev) {
  if (rev) launch_cfg<C, kBonus>(chunk_scan<C, kBonus, true>, e, BH, s, "chunk_scan<reverse>");
  else launch_cfg<C, kBonus>(chunk_scan<C, kBonus, false>, e, BH, s, "chunk_scan<forward>");
}

// The wgmma scans (linear_family_tiled_scan_wg.cuh): one block per (b, h).
// (rwkv6's bonus shifts only the reverse scan's bq.)
template <class T, bool kBonus>
void scan_wg(const EngineParams& e, int BH, cudaStream_t s, bool rev) {
  using C = ScanWgCfg<T, kBonus>;
  using CF = ScanWgCfg<T, false>;
  if (rev) launch_per_bh<C>(vec_wg_scan<C, true>, e, BH, s, "vec_wg_scan<reverse>");
  else launch_per_bh<CF>(vec_wg_scan<CF, false>, e, BH, s, "vec_wg_scan<forward>");
}

template <class T, int W>
void scan_w(const EngineParams& e, int BH, cudaStream_t s, bool rev) {
  using CV = Cfg<T, Feat::gate_vector, W, 64>;
  // vector gates at widths in (64, 128] on sm_90: the wgmma scans unless ATTNBENCH_LIN_GBWD=oldscan
  // (or scanpre) asks for chunk_scan
  if (W == 128 && e.gate == kGateVector && e.Dvv > 64 && sm90_device() && !gbwd_mode("oldscan") &&
      !gbwd_mode("scanpre")) {
    e.bonus ? scan_wg<T, true>(e, BH, s, rev) : scan_wg<T, false>(e, BH, s, rev);
    return;
  }
  if (e.gate != kGateVector) scan_cfg<Cfg<T, Feat::gate_scalar, W, 64>, false>(e, BH, s, rev);
  else if (rev || !gbwd_mode("scanpre")) {
    e.bonus ? scan_cfg<ScanCfg<CV>, true>(e, BH, s, rev) : scan_cfg<ScanCfg<CV>, false>(e, BH, s, rev);
  } else {  // the forward scan with rd(D) by cp.async (A/B)
    e.bonus ? scan_cfg<ScanCfg<CV, true>, true>(e, BH, s, false) : scan_cfg<ScanCfg<CV, true>, false>(e, BH, s, false);
  }
}

template <class G, bool kBonus>
void chunk_cfg(const GateBwdParams& gp, int NC, int BH, cudaStream_t s) {
  auto kernel = gated_bwd_chunk2<G, kBonus>;
  const int smem = gbwd2_smem_bytes<G>();
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kernel<<<dim3(static_cast<unsigned>(NC), static_cast<unsigned>(BH)), kGThreads, smem, s>>>(gp);
  CUDA_CHECK_LAUNCH("gated_bwd_chunk2");
}

template <class T, int W>
void chunk_w(const GateBwdParams& gp, bool bonus, int NC, int BH, cudaStream_t s) {
  if (gp.Dv <= 64) {
    bonus ? chunk_cfg<GbwdCfg<T, W, 64>, true>(gp, NC, BH, s) : chunk_cfg<GbwdCfg<T, W, 64>, false>(gp, NC, BH, s);
  } else {
    bonus ? chunk_cfg<GbwdCfg<T, W, 128>, true>(gp, NC, BH, s) : chunk_cfg<GbwdCfg<T, W, 128>, false>(gp, NC, BH, s);
  }
}

}  // namespace

void launch_gated_scan(Dtype dt, const EngineParams& e, int BH, cudaStream_t s, bool rev) {
  const bool w64 = gated_width(e.Dqk) == 64;
  if (dt == Dtype::bf16) w64 ? scan_w<__nv_bfloat16, 64>(e, BH, s, rev) : scan_w<__nv_bfloat16, 128>(e, BH, s, rev);
  else w64 ? scan_w<__half, 64>(e, BH, s, rev) : scan_w<__half, 128>(e, BH, s, rev);
}

void launch_gated_bwd_chunk(Dtype dt, const GateBwdParams& gp, bool bonus, int NC, int BH, cudaStream_t s) {
  const bool w64 = gated_width(gp.Dk) == 64;
  if (dt == Dtype::bf16) {
    w64 ? chunk_w<__nv_bfloat16, 64>(gp, bonus, NC, BH, s) : chunk_w<__nv_bfloat16, 128>(gp, bonus, NC, BH, s);
  } else {
    w64 ? chunk_w<__half, 64>(gp, bonus, NC, BH, s) : chunk_w<__half, 128>(gp, bonus, NC, BH, s);
  }
}

void launch_gated_du(const float* du_part, float* du, int B, int H, int NC, int Dk, cudaStream_t s) {
  gated_bwd_du<<<(H * Dk + 255) / 256, 256, 0, s>>>(du_part, du, B, H, NC, Dk);
  CUDA_CHECK_LAUNCH("gated_bwd_du");
}

}  // namespace attnbench::kernels::lin_tiled
