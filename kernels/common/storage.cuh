// Storage types on the device and the conversions kernels use. Arithmetic is fp32; values are
// stored as float, __half or __nv_bfloat16.
//   to_f32(x)          storage -> fp32 (exact)
//   from_f32<T>(x)     fp32 -> storage, round to nearest even
//   round_as<T>(x)     fp32 -> storage -> fp32: what "rounded to the dtype" means in the
//                      same-precision mode of the numerics rule
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/dtype.h"

namespace attnbench::kernels {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <class T>
__device__ __forceinline__ float round_as(float x) { return to_f32(from_f32<T>(x)); }

// Dispatch a storage dtype to a C++ type: DISPATCH_DTYPE(dt, T, { kernel<T><<<...>>>(...); })
#define ATTNBENCH_DISPATCH_DTYPE(dt, T, ...)                   \
  switch (dt) {                                                 \
    case ::attnbench::Dtype::f32: {                             \
      using T = float;                                          \
      __VA_ARGS__;                                              \
      break;                                                    \
    }                                                           \
    case ::attnbench::Dtype::f16: {                             \
      using T = __half;                                         \
      __VA_ARGS__;                                              \
      break;                                                    \
    }                                                           \
    case ::attnbench::Dtype::bf16: {                            \
      using T = __nv_bfloat16;                                  \
      __VA_ARGS__;                                              \
      break;                                                    \
    }                                                           \
  }

}  // namespace attnbench::kernels
