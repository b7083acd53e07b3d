// Host side of the fused forward (linear_family_tiled_fused.cuh): the configuration for the
// tensor widths (q/k 64 or 128, values 64 or 128) and the launch, grid (1, B*H).
#pragma once

#include <cstdlib>
#include <string>
#include <type_traits>

#include "linear_family_tiled_fused.cuh"
#include "linear_family_tiled_fused_vec.cuh"
#include "linear_family_tiled_fused_vec_wg.cuh"
#include "linear_family_tiled_fused_wg.cuh"
#include "linear_family_tiled_launch.h"

namespace attnbench::kernels::lin_tiled {

// A one-block-per-(b, h) kernel of configuration C: grid (1, B*H), C::kThreads, C::kSmemBytes.
template <class C>
void launch_per_bh(void (*kernel)(EngineParams), const EngineParams& e, int BH, cudaStream_t s, const char* name) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
  kernel<<<dim3(1u, static_cast<unsigned>(BH)), C::kThreads, C::kSmemBytes, s>>>(e);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, name, __FILE__, __LINE__);
}

template <class C>
void launch_fused_cfg(const EngineParams& e, int BH, cudaStream_t s, const char* name) {
  launch_per_bh<C>(fused_fwd<C>, e, BH, s, name);
}

// Whether the current device is sm_90 (the wgmma kernels' target).
inline bool sm90_device() {
  static const bool on = [] {
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
    return major == 9;
  }();
  return on;
}

// The wgmma forward (linear_family_tiled_fused_wg.cuh) takes q/k and value widths in (64, 128]
// on an sm_90 device; ATTNBENCH_LIN_FUSED=mma selects the mma.sync fused_fwd there instead (A/B).
inline bool fused_wg_enabled() {
  static const bool on = [] {
    const char* s = std::getenv("ATTNBENCH_LIN_FUSED");
    if (s && std::string(s) == "mma") return false;
    return sm90_device();
  }();
  return on;
}

// Feat::linear or Feat::gate_scalar; the caller checked fused_eligible(e).
template <class T, Feat F>
void launch_fused_fwd(const EngineParams& e, int BH, cudaStream_t s) {
  if (e.Dqk > 64 && e.Dvv > 64 && fused_wg_enabled()) {
    using C = WgCfg<T, F>;
    launch_per_bh<C>(fused_wg_fwd<C>, e, BH, s, "fused_wg_fwd");
    return;
  }
  if (e.Dqk <= 64) {
    if (e.Dvv <= 64) launch_fused_cfg<FusedCfg<T, F, 64, 64>>(e, BH, s, "fused_fwd<64, 64>");
    else launch_fused_cfg<FusedCfg<T, F, 64, 128>>(e, BH, s, "fused_fwd<64, 128>");
  } else {
    if (e.Dvv <= 64) launch_fused_cfg<FusedCfg<T, F, 128, 64>>(e, BH, s, "fused_fwd<128, 64>");
    else launch_fused_cfg<FusedCfg<T, F, 128, 128>>(e, BH, s, "fused_fwd<128, 128>");
  }
}

// The vector gates (vector, rwkv6 with kBonus), forward order. Default: the wgmma kernel
// fused_vec_wg_fwd (linear_family_tiled_fused_vec_wg.cuh) where q/k and value widths are in
// (64, 128] on an sm_90 device, else fused_vec_fwd (linear_family_tiled_fused_vec.cuh: cp.async
// loads, Qt rd(S) before the third barrier). Session 7, H200, bf16 B=8 H=32 D=128 fwd, same run
// (results/h200-s7-20261121/call1/vab): vector 0.2478 / 0.9708 ms (wg) against 0.2882 / 1.1214 ms
// (fused_vec) at T = 1024 / 4096, 1.16x; 48/48 vector and rwkv6 tiled GPU tests under wg.
// A/B switches, ATTNBENCH_LIN_VEC: =mma: fused_vec_fwd at every width; =bulk: fused_vec_fwd with
// chunk loads by cp.async.bulk per row (VecCfg::kBulk; 1.6x slower on the H200); =late: fused_vec_fwd
// with Qt rd(S) after the third barrier (kEarly = false, 2% slower). "wg" names the default.
inline int vec_variant() {
  static const int v = [] {
    const char* s = std::getenv("ATTNBENCH_LIN_VEC");
    const std::string k = s ? s : "wg";
    if (k.rfind("abl", 0) == 0) return 100 + std::atoi(k.c_str() + 3);  // measurement only
    return k == "mma" ? 0 : k == "bulk" ? 1 : k == "late" ? 2 : 3;
  }();
  return v;
}

// ATTNBENCH_LIN_VEC=abl<N> (bf16, widths in (64, 128], sm_90): fused_vec_wg_fwd with the parts of
// WgVecCfg::kAbl's bits N skipped (vector only; measurement only, wrong results), N one of 1, 2, 4,
// 8, 16, 32, 7 (columns + A + products: loads, barriers and stores alone), 39 (7 + loads). Right
// results, for A/B against session 15's kernel: 256, the diagonal blocks of A in fp32 (vector and
// rwkv6); 512, rwkv6's bonus in the fp32 epilogue; 768, both (session 15's rwkv6 kernel).
// (Session 15's 64 and 128, its earlier column phases, were removed in session 16.)
template <class T, bool kBonus>
bool launch_vec_wg_abl(int n, const EngineParams& e, int BH, cudaStream_t s) {
  auto go = [&](auto cfg) {
    using C = decltype(cfg);
    launch_per_bh<C>(fused_vec_wg_fwd<C>, e, BH, s, "fused_vec_wg_fwd (ablated)");
    return true;
  };
  if constexpr (kBonus) {
    switch (n) {
      case 256: return go(WgVecAblCfg<T, true, 256>{});
      case 512: return go(WgVecAblCfg<T, true, 512>{});
      case 768: return go(WgVecAblCfg<T, true, 768>{});
      default: return false;
    }
  }
  switch (n) {
    case 1: return go(WgVecAblCfg<T, false, 1>{});
    case 2: return go(WgVecAblCfg<T, false, 2>{});
    case 4: return go(WgVecAblCfg<T, false, 4>{});
    case 8: return go(WgVecAblCfg<T, false, 8>{});
    case 16: return go(WgVecAblCfg<T, false, 16>{});
    case 32: return go(WgVecAblCfg<T, false, 32>{});
    case 7: return go(WgVecAblCfg<T, false, 7>{});
    case 39: return go(WgVecAblCfg<T, false, 39>{});
    case 256: return go(WgVecAblCfg<T, false, 256>{});  // correct: fp32 diagonal blocks (A/B)
    default: return false;
  }
}

template <class T, bool kBonus, bool kEarly, bool kBulk>
void launch_fused_vec_fwd_o(const EngineParams& e, int BH, cudaStream_t s) {
  auto go = [&](auto cfg, const char* name) {
    using C = decltype(cfg);
    launch_per_bh<C>(fused_vec_fwd<C>, e, BH, s, name);
  };
  if (e.Dqk <= 64) {
    if (e.Dvv <= 64) go(VecCfg<T, kBonus, 64, 64, kEarly, kBulk>{}, "fused_vec_fwd<64, 64>");
    else go(VecCfg<T, kBonus, 64, 128, kEarly, kBulk>{}, "fused_vec_fwd<64, 128>");
  } else {
    if (e.Dvv <= 64) go(VecCfg<T, kBonus, 128, 64, kEarly, kBulk>{}, "fused_vec_fwd<128, 64>");
    else go(VecCfg<T, kBonus, 128, 128, kEarly, kBulk>{}, "fused_vec_fwd<128, 128>");
  }
}

template <class T, bool kBonus>
void launch_fused_vec_fwd(const EngineParams& e, int BH, cudaStream_t s) {
  const int knob = vec_variant();
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (knob >= 100 && e.Dqk > 64 && e.Dvv > 64 && sm90_device() && launch_vec_wg_abl<T, kBonus>(knob - 100, e, BH, s))
      return;
  }
  const int v = knob >= 100 ? 3 : knob;  // abl<N> where it has no kernel: the default
  if (v == 3 && e.Dqk > 64 && e.Dvv > 64 && sm90_device()) {
    using C = WgVecCfg<T, kBonus>;
    launch_per_bh<C>(fused_vec_wg_fwd<C>, e, BH, s, "fused_vec_wg_fwd");
    return;
  }
  if (v == 0 || v == 3) launch_fused_vec_fwd_o<T, kBonus, true, false>(e, BH, s);
  else if (v == 1) launch_fused_vec_fwd_o<T, kBonus, true, true>(e, BH, s);
  else launch_fused_vec_fwd_o<T, kBonus, false, false>(e, BH, s);
}

}  // namespace attnbench::kernels::lin_tiled
