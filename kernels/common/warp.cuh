// Warp-per-row helpers for the naive kernels. A row of up to 32*S values lives in registers,
// lane l holding elements d = l + 32*t for t < S; dot products are a per-lane partial sum plus a
// butterfly reduction, so every lane ends with the full value.
#pragma once

#include "storage.cuh"

namespace attnbench::kernels {

constexpr int kWarpSize = 32;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <int S, class T>
__device__ __forceinline__ void load_row(const T* row, int n, int lane, float (&r)[S]) {
#pragma unroll
  for (int t = 0; t < S; ++t) {
    const int d = lane + kWarpSize * t;
    r[t] = d < n ? to_f32(row[d]) : 0.0f;
  }
}

template <int S, class T>
__device__ __forceinline__ void store_row(T* row, int n, int lane, const float (&r)[S], float factor) {
#pragma unroll
  for (int t = 0; t < S; ++t) {
    const int d = lane + kWarpSize * t;
    if (d < n) row[d] = from_f32<T>(r[t] * factor);
  }
}

// a . row, over n elements.
template <int S, class T>
__device__ __forceinline__ float dot_row(const float (&a)[S], const T* row, int n, int lane) {
  float partial = 0.0f;
#pragma unroll
  for (int t = 0; t < S; ++t) {
    const int d = lane + kWarpSize * t;
    if (d < n) partial += a[t] * to_f32(row[d]);
  }
  return warp_sum(partial);
}

// acc += w * row, over n elements.
template <int S, class T>
__device__ __forceinline__ void axpy_row(float (&acc)[S], float w, const T* row, int n, int lane) {
#pragma unroll
  for (int t = 0; t < S; ++t) {
    const int d = lane + kWarpSize * t;
    if (d < n) acc[t] += w * to_f32(row[d]);
  }
}

// Register slots for a head dim: 64 -> 2, 128 -> 4, 256 -> 8. Dispatch: ATTNBENCH_DISPATCH_SLOTS(d, S, {...}).
#define ATTNBENCH_DISPATCH_SLOTS(dim, S, ...)        \
  if ((dim) <= 64) {                                  \
    constexpr int S = 2;                              \
    __VA_ARGS__;                                      \
  } else if ((dim) <= 128) {                          \
    constexpr int S = 4;                              \
    __VA_ARGS__;                                      \
  } else {                                            \
    constexpr int S = 8;                              \
    __VA_ARGS__;                                      \
  }

}  // namespace attnbench::kernels
