// Shared device pieces of the naive CUDA kernels of the causal linear families (linear, based,
// gated).
//
// The naive kernels are oracles: plain CUDA on CUDA cores, fp32 accumulation, one thread per
// output element or state entry, operands read straight from global memory (L1/L2 cached). In
// same-precision mode (PrepareOptions::same_precision) they round exactly where the CPU
// emulation of the same algorithm rounds (reference/linear.cpp, based.cpp, gated_emul.h): that
// run is the GPU `base` of the numerics rule. rd<SP, T>(x) is that rounding (a no-op unless SP).
#pragma once

#include "linear_family_device.cuh"

namespace attnbench::kernels::lin_naive {

constexpr int kThreads = 256;
constexpr int kChunk = 64;  // the chunk C of the linear and gated emulations; based's row block

template <bool SP, class T>
__device__ __forceinline__ float rd(float x) {
  if constexpr (SP) return round_as<T>(x);
  else return x;
}

// Offset of row t of slice bh in a [B,H,T,D] tensor.
__device__ __forceinline__ int64_t row_off(int bh, int T, int t, int D) { return (int64_t(bh) * T + t) * D; }

template <class T>
__device__ __forceinline__ float ld(const T* p, int64_t i) {
  return to_f32(p[i]);
}

}  // namespace attnbench::kernels::lin_naive
