// based, tiled: the chunkwise forward on Taylor features (Dk <= 16, F = 160 state rows), Dv <= 128.
// On an sm_90 device the default is fused_based_ws_fwd (linear_family_tiled_fused_based_ws.cuh:
// wgmma, warp-specialized, a producer warpgroup and two consumers; session 25: 2.71x floor_ms at
// T = 4096 on the H200, session 26 with warp-uniform roles and descriptors: 2.37x).
// ATTNBENCH_BASED_FWD=wgp selects fused_based_wgp_fwd (linear_family_tiled_fused_based_wgp.cuh: 8 warps, chunk c's products overlapping chunk c + 1's
// features; session 24: 3.39x, session 23's form 3.72-3.77x, the mma.sync split kernel with its
// lean chunk 4.27x, 4.6x before). Elsewhere, or under ATTNBENCH_BASED_FWD=mma, the mma.sync
// kernels, one block per (b, h) over all value columns (linear_family_tiled_fused_based.cuh; their
// SPLIT, COLS, LEAN and ABL knobs); under ATTNBENCH_BASED_FWD=wg session 7's wgmma kernel
// (linear_family_tiled_fused_based_wg.cuh, slower); under ATTNBENCH_LIN_FWD=tile (the A/B switch) chunk_fwd in value tiles of kBasedBV
// columns (linear_family_tiled_fwd.cuh).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "linear_family_tiled_fused_based.cuh"
#include "linear_family_tiled_fused_based_wg.cuh"
#include "linear_family_tiled_fused_based_wgp.cuh"
#include "linear_family_tiled_fused_based_ws.cuh"
#include "linear_family_tiled_fused_launch.h"  // sm90_device()
#include "linear_family_tiled_fwd.cuh"
#include "linear_family_tiled_launch.h"

namespace attnbench::kernels::lin_tiled {
namespace {

template <class C, int kAbl = 0>
void launch_fused_based(const EngineParams& e, int BH, cudaStream_t s) {
  void (*kernel)(EngineParams);
  if constexpr (C::kSplit) kernel = fused_based_fwd_split<C>;
  else kernel = fused_based_fwd<C, kAbl>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
  kernel<<<dim3(1u, static_cast<unsigned>(BH)), C::kThreads, C::kSmemBytes, s>>>(e);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, "fused_based_fwd", __FILE__, __LINE__);
}

// The wgmma forward: grid (ceil(Dv / C::kCols), B*H), C::kThreads threads; the largest shared
// memory carveout, so that two one-warpgroup blocks fit an SM. ATTNBENCH_BASED_WG_INFO=1 prints the
// blocks an SM (the occupancy calculator) once.
template <class C>
void launch_based_wg(const EngineParams& e, int BH, cudaStream_t s) {
  const auto kernel = fused_based_wg_fwd<C>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
  static bool told = false;
  if (!told && std::getenv("ATTNBENCH_BASED_WG_INFO")) {
    told = true;
    int nb = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, kernel, C::kThreads, C::kSmemBytes));
    std::fprintf(stderr, "fused_based_wg_fwd<warpgroups %d, overlap %d>: %d threads, %d bytes of shared memory, %d blocks an SM\n",
                 C::kWG, int(C::kOverlap), C::kThreads, C::kSmemBytes, nb);
  }
  const unsigned nv = static_cast<unsigned>((e.Dvv + C::kCols - 1) / C::kCols);
  kernel<<<dim3(nv, static_cast<unsigned>(BH)), C::kThreads, C::kSmemBytes, s>>>(e);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, "fused_based_wg_fwd", __FILE__, __LINE__);
}

// The pipelined wgmma forward: grid (1, B*H), 256 threads.
template <class C>
void launch_based_wgp(const EngineParams& e, int BH, cudaStream_t s) {
  const auto kernel = fused_based_wgp_fwd<C>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
  kernel<<<dim3(1u, static_cast<unsigned>(BH)), C::kThreads, C::kSmemBytes, s>>>(e);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, "fused_based_wgp_fwd", __FILE__, __LINE__);
}

// The warp-specialized wgmma forward: grid (1, B*H), 384 threads (one producer warpgroup, two
// consumers).
template <class C>
void launch_based_ws(const EngineParams& e, int BH, cudaStream_t s) {
  const auto kernel = fused_based_ws_fwd<C>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
  kernel<<<dim3(1u, static_cast<unsigned>(BH)), C::kThreads, C::kSmemBytes, s>>>(e);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, "fused_based_ws_fwd", __FILE__, __LINE__);
}

// The warp-specialized wgmma forward: the default on an sm_90 device (session 25);
// ATTNBENCH_BASED_FWD=wgp (the pipelined wgmma kernel, sessions 23-24), =mma (the mma.sync
// kernels) or =wg (session 7's wgmma kernel) selects another (A/B switches).
inline bool based_ws_enabled() {
  static const bool on = [] {
    const char* s = std::getenv("ATTNBENCH_BASED_FWD");
    const std::string x = s ? s : "";
    return x != "mma" && x != "wg" && x != "wgp" && sm90_device();
  }();
  return on;
}

// ATTNBENCH_BASED_FWD=wgp: fused_based_wgp_fwd on an sm_90 device.
inline bool based_wgp_enabled() {
  static const bool on = [] {
    const char* s = std::getenv("ATTNBENCH_BASED_FWD");
    return s && std::string(s) == "wgp" && sm90_device();
  }();
  return on;
}

// ATTNBENCH_BASED_FWD=wg selects the wgmma forward on an sm_90 device (an A/B switch: measured
// slower than the mma.sync kernels below, the default; their SPLIT, COLS and ABL knobs apply to
// them only).
inline bool based_wg_enabled() {
  static const bool on = [] {
    const char* s = std::getenv("ATTNBENCH_BASED_FWD");
    return s && std::string(s) == "wg" && sm90_device();
  }();
  return on;
}

// ATTNBENCH_BASED_WG (variants of the wgmma forward, with ATTNBENCH_BASED_FWD=wg): "2" two warpgroups a block (one block
// per (b, h) at Dv = 128, the features shared), "overlap" chunk c - 1's state update overlapping
// chunk c's rd(phi_q), rd(A) and q.z, "2overlap" both; unset: one warpgroup a block.
inline int based_wg_variant() {  // bit 1: two warpgroups, bit 0: overlap
  static const int v = [] {
    const char* s = std::getenv("ATTNBENCH_BASED_WG");
    const std::string x = s ? s : "";
    return (x == "2" || x == "2overlap" ? 2 : 0) | (x == "overlap" || x == "2overlap" ? 1 : 0);
  }();
  return v;
}

// ATTNBENCH_BASED_SPLIT=0 selects fused_based_fwd (a warp owns 16 value columns and all 160 state
// rows) instead of fused_based_fwd_split (32 value columns, half the state rows): an A/B switch.
inline bool based_split() {
  static const bool v = [] {
    const char* s = std::getenv("ATTNBENCH_BASED_SPLIT");
    return !(s && std::string(s) == "0");
  }();
  return v;
}

// ATTNBENCH_BASED_COLS=16 selects the split kernel with 16 value columns a warp (twice the warps)
// instead of 32 (an A/B switch).
inline int based_cols() {
  static const int v = [] {
    const char* s = std::getenv("ATTNBENCH_BASED_COLS");
    return s && std::string(s) == "16" ? 16 : 32;
  }();
  return v;
}

// ATTNBENCH_BASED_LEAN=0 runs the 32-column split kernel without its lean chunk (q.z by every
// thread after a second block barrier, the output stored 4 bytes a lane): an A/B switch.
inline bool based_lean() {
  static const bool v = [] {
    const char* s = std::getenv("ATTNBENCH_BASED_LEAN");
    return !(s && std::string(s) == "0");
  }();
  return v;
}

// ATTNBENCH_BASED_ABL=1..15 (measurement only: wrong results): the fused kernel with parts skipped
// (see fused_based_fwd), bf16 and Dv = 128 only; 0 or unset: the real kernel.
inline int based_ablation() {
  static const int v = [] {
    const char* s = std::getenv("ATTNBENCH_BASED_ABL");
    return s ? std::atoi(s) : 0;
  }();
  return v;
}

template <class T>
void based_fwd_t(const EngineParams& e, int BH, cudaStream_t s) {
  if (fused_forward_enabled() && !e.reverse && e.corr_form == 0 && e.Dqk <= kBasedDk && e.Dvv <= 128) {
    if (based_ws_enabled()) {
      launch_based_ws<BasedWsCfg<T>>(e, BH, s);
      return;
    }
    if (based_wgp_enabled()) {
      launch_based_wgp<BasedWgpCfg<T>>(e, BH, s);
      return;
    }
    if (based_wg_enabled()) {
      switch (based_wg_variant()) {
        case 1: launch_based_wg<BasedWgCfg<T, 1, true>>(e, BH, s); break;
        case 2: launch_based_wg<BasedWgCfg<T, 2, false>>(e, BH, s); break;
        case 3: launch_based_wg<BasedWgCfg<T, 2, true>>(e, BH, s); break;
        default: launch_based_wg<BasedWgCfg<T, 1, false>>(e, BH, s); break;
      }
      return;
    }
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      if (e.Dvv > 64 && based_ablation() != 0 && !based_split()) {
        switch (based_ablation()) {
          case 1: launch_fused_based<FusedBasedCfg<T, 128>, 1>(e, BH, s); return;
          case 2: launch_fused_based<FusedBasedCfg<T, 128>, 2>(e, BH, s); return;
          case 3: launch_fused_based<FusedBasedCfg<T, 128>, 3>(e, BH, s); return;
          case 4: launch_fused_based<FusedBasedCfg<T, 128>, 4>(e, BH, s); return;
          case 8: launch_fused_based<FusedBasedCfg<T, 128>, 8>(e, BH, s); return;
          default: launch_fused_based<FusedBasedCfg<T, 128>, 15>(e, BH, s); return;
        }
      }
    }
    if (based_split() && based_cols() == 16) {
      if (e.Dvv <= 64) launch_fused_based<FusedBasedCfg<T, 64, true, 16>>(e, BH, s);
      else launch_fused_based<FusedBasedCfg<T, 128, true, 16>>(e, BH, s);
    } else if (based_split() && based_lean()) {
      if (e.Dvv <= 64) launch_fused_based<FusedBasedCfg<T, 64, true, 32, true>>(e, BH, s);
      else launch_fused_based<FusedBasedCfg<T, 128, true, 32, true>>(e, BH, s);
    } else if (based_split()) {
      if (e.Dvv <= 64) launch_fused_based<FusedBasedCfg<T, 64, true, 32>>(e, BH, s);
      else launch_fused_based<FusedBasedCfg<T, 128, true, 32>>(e, BH, s);
    } else {
      if (e.Dvv <= 64) launch_fused_based<FusedBasedCfg<T, 64>>(e, BH, s);
      else launch_fused_based<FusedBasedCfg<T, 128>>(e, BH, s);
    }
    return;
  }
  using C = Cfg<T, Feat::based, kBasedDk, kBasedBV>;
  launch_cfg<C, false>(chunk_fwd<C, false>, e, BH, s, "chunk_fwd<based>");
}

}  // namespace

void launch_based_fwd(Dtype dt, const EngineParams& e, int BH, cudaStream_t s) {
  if (dt == Dtype::bf16) based_fwd_t<__nv_bfloat16>(e, BH, s);
  else based_fwd_t<__half>(e, BH, s);
}

}  // namespace attnbench::kernels::lin_tiled
