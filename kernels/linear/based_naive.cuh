// based, naive CUDA: the quadratic tiled form on CUDA cores, mirroring the same-precision
// emulation of reference/based.cpp. Blocks of 64 query rows against the keys they can see, in
// tiles of 64 keys (Q, K, V dtype values; every product accumulated in fp32; rd() = round to the
// dtype in same-precision mode, else nothing):
// forward
//   s   = scale (q_i . k_j),   a = 1 + s + s^2/2  for j <= i (else 0)     fp32
//   den = rowsum(a) + 1e-6                                                 from the unrounded a
//   o   = rd(rd(a) V / den)   or  rd(rd(a) V)  without the normalizer
// backward (den and o from this implementation's own forward, run untimed at prepare):
//   W     = rd(dO / den)   (dO without the normalizer),   delta = rowsum(W * o)  (0 without)
//   dV_j  = sum_{i >= j} rd(a_ij) W_i
//   ds_ij = rd((W_i . v_j - delta_i) (1 + s_ij))   for j <= i
//   dQ_i  = scale sum_j ds_ij k_j,   dK_j = scale sum_i ds_ij q_i
// Kernels: forward (per query block), delta (per row), dQ (per query block, over key tiles),
// dK/dV (per key block, over the query tiles that see it). No O(T^2) memory.
#pragma once

#include <cmath>

#include "linear_family_naive.cuh"

namespace attnbench::kernels::lin_naive {


constexpr float kBasedEps = 1e-6f;

struct BasedArgs {
  const void *q, *k, *v, *dout, *o_saved;
  void *o, *dq, *dk, *dv;
  float *den, *delta;
  int T, Dk, Dv;
  float scale;
  bool normalize;
};

template <class T>
__device__ __forceinline__ float dot_rows(const T* x, int64_t xi, const T* y, int64_t yj, int n) {
  float s = 0.0f;
  for (int d = 0; d < n; ++d) s += ld(x, xi + d) * ld(y, yj + d);
  return s;
}

template <class T, bool SP>
__device__ __forceinline__ float w_at(const BasedArgs& a, const T* dO, int64_t off, int bh, int t) {
  const float x = ld(dO, off);
  return a.normalize ? rd<SP, T>(x / a.den[int64_t(bh) * a.T + t]) : x;
}

// grid (query blocks, B*H)
template <class T, bool SP>
__global__ void __launch_bounds__(kThreads) based_naive_fwd(BasedArgs a) {
  LIN_DYN_SMEM(float, smem);
  float* As = smem;                      // [64][64] weights a of one key tile
  float* den = As + kChunk * kChunk;     // [64]
  float* acc = den + kChunk;             // [64][Dv]
  const int bh = blockIdx.y, i0 = blockIdx.x * kChunk, tid = threadIdx.x, Dk = a.Dk, Dv = a.Dv, T_ = a.T;
  const int n = min(kChunk, T_ - i0);
  const T *q = static_cast<const T*>(a.q), *k = static_cast<const T*>(a.k), *v = static_cast<const T*>(a.v);
  for (int i = tid; i < kChunk * Dv; i += kThreads) acc[i] = 0.0f;
  for (int i = tid; i < kChunk; i += kThreads) den[i] = 0.0f;
  for (int j0 = 0; j0 <= i0; j0 += kChunk) {
    __syncthreads();
    for (int idx = tid; idx < kChunk * kChunk; idx += kThreads) {
      const int r = idx / kChunk, j = idx % kChunk, i = i0 + r, jj = j0 + j;
      float w = 0.0f;
      if (r < n && jj <= i) {
        const float s = a.scale * dot_rows(q, row_off(bh, T_, i, Dk), k, row_off(bh, T_, jj, Dk), Dk);
        w = 1.0f + s + 0.5f * s * s;
      }
      As[idx] = w;
    }
    __syncthreads();
    for (int r = tid; r < n; r += kThreads) {
      float s = 0.0f;
      for (int j = 0; j < kChunk; ++j) s += As[r * kChunk + j];
      den[r] += s;
    }
    for (int idx = tid; idx < n * Dv; idx += kThreads) {
      const int r = idx / Dv, c = idx % Dv;
      const int jn = min(kChunk, i0 + r - j0 + 1);
      float s = 0.0f;
      for (int j = 0; j < jn; ++j) s += rd<SP, T>(As[r * kChunk + j]) * ld(v, row_off(bh, T_, j0 + j, Dv) + c);
      acc[idx] += s;
    }
  }
  __syncthreads();
  T* o = static_cast<T*>(a.o);
  for (int idx = tid; idx < n * Dv; idx += kThreads) {
    const int r = idx / Dv, c = idx % Dv;
    const float dn = den[r] + kBasedEps;
    o[row_off(bh, T_, i0 + r, Dv) + c] = from_f32<T>(a.normalize ? acc[idx] / dn : acc[idx]);
  }
  if (a.den) {
    for (int r = tid; r < n; r += kThreads) a.den[int64_t(bh) * T_ + i0 + r] = den[r] + kBasedEps;
  }
}

// delta_i = W_i . o_i; grid (ceil(T/256), B*H)
template <class T, bool SP>
__global__ void __launch_bounds__(kThreads) based_naive_delta(BasedArgs a) {
  const int bh = blockIdx.y, i = blockIdx.x * kThreads + threadIdx.x;
  if (i >= a.T) return;
  float s = 0.0f;
  if (a.normalize) {
    const T *dO = static_cast<const T*>(a.dout), *o = static_cast<const T*>(a.o_saved);
    const int64_t oi = row_off(bh, a.T, i, a.Dv);
    for (int c = 0; c < a.Dv; ++c) s += w_at<T, SP>(a, dO, oi + c, bh, i) * ld(o, oi + c);
  }
  a.delta[int64_t(bh) * a.T + i] = s;
}

// The weight a_ij and the rounded score gradient ds_ij of one pair (query i, key j <= i).
template <class T, bool SP>
__device__ __forceinline__ void pair_grads(const BasedArgs& a, int bh, int i, int j, float& w, float& ds) {
  const T *q = static_cast<const T*>(a.q), *k = static_cast<const T*>(a.k), *v = static_cast<const T*>(a.v);
  const T* dO = static_cast<const T*>(a.dout);
  const float s = a.scale * dot_rows(q, row_off(bh, a.T, i, a.Dk), k, row_off(bh, a.T, j, a.Dk), a.Dk);
  w = 1.0f + s + 0.5f * s * s;
  const int64_t oi = row_off(bh, a.T, i, a.Dv), vj = row_off(bh, a.T, j, a.Dv);
  float dp = 0.0f;
  for (int c = 0; c < a.Dv; ++c) dp += w_at<T, SP>(a, dO, oi + c, bh, i) * ld(v, vj + c);
  ds = rd<SP, T>((dp - a.delta[int64_t(bh) * a.T + i]) * (1.0f + s));
}

// dQ per query block; grid (query blocks, B*H)
template <class T, bool SP>
__global__ void __launch_bounds__(kThreads) based_naive_dq(BasedArgs a) {
  LIN_DYN_SMEM(float, smem);
  float* dS = smem;                   // [64][64]
  float* acc = dS + kChunk * kChunk;  // [64][Dk]
  const int bh = blockIdx.y, i0 = blockIdx.x * kChunk, tid = threadIdx.x, Dk = a.Dk, T_ = a.T;
  const int n = min(kChunk, T_ - i0);
  const T* k = static_cast<const T*>(a.k);
  for (int i = tid; i < kChunk * Dk; i += kThreads) acc[i] = 0.0f;
  for (int j0 = 0; j0 <= i0; j0 += kChunk) {
    __syncthreads();
    for (int idx = tid; idx < kChunk * kChunk; idx += kThreads) {
      const int r = idx / kChunk, j = idx % kChunk;
      float w = 0.0f, ds = 0.0f;
      if (r < n && j0 + j <= i0 + r) pair_grads<T, SP>(a, bh, i0 + r, j0 + j, w, ds);
      dS[idx] = ds;
    }
    __syncthreads();
    for (int idx = tid; idx < n * Dk; idx += kThreads) {
      const int r = idx / Dk, d = idx % Dk;
      const int jn = min(kChunk, i0 + r - j0 + 1);
      float s = 0.0f;
      for (int j = 0; j < jn; ++j) s += dS[r * kChunk + j] * ld(k, row_off(bh, T_, j0 + j, Dk) + d);
      acc[idx] += s;
    }
  }
  __syncthreads();
  T* dq = static_cast<T*>(a.dq);
  for (int idx = tid; idx < n * Dk; idx += kThreads) {
    dq[row_off(bh, T_, i0, Dk) + idx] = from_f32<T>(a.scale * acc[idx]);
  }
}

// dK, dV per key block; grid (key blocks, B*H)
template <class T, bool SP>
__global__ void __launch_bounds__(kThreads) based_naive_dkdv(BasedArgs a) {
  LIN_DYN_SMEM(float, smem);
  float* Ws = smem;                        // [64 queries][64 keys] rd(a)
  float* dS = Ws + kChunk * kChunk;        // [64][64] ds
  float* dk_acc = dS + kChunk * kChunk;    // [64][Dk]
  float* dv_acc = dk_acc + kChunk * a.Dk;  // [64][Dv]
  const int bh = blockIdx.y, j0 = blockIdx.x * kChunk, tid = threadIdx.x, Dk = a.Dk, Dv = a.Dv, T_ = a.T;
  const int n = min(kChunk, T_ - j0);
  const T* q = static_cast<const T*>(a.q);
  const T* dO = static_cast<const T*>(a.dout);
  for (int i = tid; i < kChunk * Dk; i += kThreads) dk_acc[i] = 0.0f;
  for (int i = tid; i < kChunk * Dv; i += kThreads) dv_acc[i] = 0.0f;
  for (int i0 = j0; i0 < T_; i0 += kChunk) {
    const int m = min(kChunk, T_ - i0);
    __syncthreads();
    for (int idx = tid; idx < kChunk * kChunk; idx += kThreads) {
      const int r = idx / kChunk, j = idx % kChunk;
      float w = 0.0f, ds = 0.0f;
      if (r < m && j < n && j0 + j <= i0 + r) pair_grads<T, SP>(a, bh, i0 + r, j0 + j, w, ds);
      Ws[idx] = rd<SP, T>(w);
      dS[idx] = ds;
    }
    __syncthreads();
    for (int idx = tid; idx < n * Dk; idx += kThreads) {
      const int j = idx / Dk, d = idx % Dk;
      float s = 0.0f;
      for (int r = 0; r < m; ++r) s += dS[r * kChunk + j] * ld(q, row_off(bh, T_, i0 + r, Dk) + d);
      dk_acc[idx] += s;
    }
    for (int idx = tid; idx < n * Dv; idx += kThreads) {
      const int j = idx / Dv, c = idx % Dv;
      float s = 0.0f;
      for (int r = 0; r < m; ++r) s += Ws[r * kChunk + j] * w_at<T, SP>(a, dO, row_off(bh, T_, i0 + r, Dv) + c, bh, i0 + r);
      dv_acc[idx] += s;
    }
  }
  __syncthreads();
  T *dk = static_cast<T*>(a.dk), *dv = static_cast<T*>(a.dv);
  for (int idx = tid; idx < n * Dk; idx += kThreads) dk[row_off(bh, T_, j0, Dk) + idx] = from_f32<T>(a.scale * dk_acc[idx]);
  for (int idx = tid; idx < n * Dv; idx += kThreads) dv[row_off(bh, T_, j0, Dv) + idx] = from_f32<T>(dv_acc[idx]);
}

}  // namespace attnbench::kernels::lin_naive
