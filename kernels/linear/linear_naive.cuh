// linear, naive CUDA: the chunked state form of causal linear attention on CUDA cores, one block
// per (b, h) slice, mirroring the same-precision emulation of reference/linear.cpp. Per chunk of
// C = 64 rows (Q_c, K_c, V_c dtype values; every product accumulated in fp32; rd() = round to the
// dtype in same-precision mode, else nothing):
// forward
//   A   = tril(Q_c K_c^T)                          fp32, unrounded
//   N_c = Q_c rd(S) + rd(A) V_c
//   den = scale (Q_c z + rowsum(A)) + eps          (normalize; z = sum of earlier k rows, fp32)
//   o   = rd(scale N_c / den)   or  rd(scale N_c)
//   S  += K_c^T V_c,  z += colsum(K_c)             fp32 state (global workspace, Dk x Dv)
// backward (den and o from this implementation's own forward, run untimed at prepare):
//   W      = rd(dO / den)  (dO without the normalizer),   delta = rowsum(W * o)  (0 without)
//   dM     = rd(tril(W V_c^T - delta 1^T))
//   dQ_c   = dM K_c + W rd(S)^T - delta z^T                        forward scan
//   dK_c   = dM^T Q_c + V_c rd(dS)^T - 1 dz^T                      reverse scan, dS = sum_{later} Q^T W,
//   dV_c   = rd(A)^T W + K_c rd(dS)                                              dz = sum_{later} Q^T delta
//   dQ, dK, dV = rd(scale * fp32 accumulator)
// The intra-chunk parts of dK, dV go through fp32 workspaces between the two scans.
#pragma once

#include <cmath>

#include "linear_family_naive.cuh"

namespace attnbench::kernels::lin_naive {


struct LinearArgs {
  const void *q, *k, *v, *dout, *o_saved;
  void *o, *dq, *dk, *dv;
  float *den, *delta, *state, *zvec, *dk_acc, *dv_acc;
  int T, Dk, Dv;
  float scale, eps;
  bool normalize;
};

// W_ic of the backward: rd(dO_ic / den_i) with the normalizer, dO_ic without.
template <class T, bool SP>
__device__ __forceinline__ float w_at(const LinearArgs& a, const T* dO, int64_t off, int bh, int t) {
  const float x = ld(dO, off);
  return a.normalize ? rd<SP, T>(x / a.den[int64_t(bh) * a.T + t]) : x;
}

template <class T, bool SP>
__global__ void __launch_bounds__(kThreads) linear_naive_fwd(LinearArgs a) {
  LIN_DYN_SMEM(float, smem);
  float* As = smem;               // [64][64] intra-chunk scores
  float* dens = As + kChunk * kChunk;
  float* z = dens + kChunk;       // [Dk]
  const int bh = blockIdx.x, tid = threadIdx.x, Dk = a.Dk, Dv = a.Dv, T_ = a.T;
  const T *q = static_cast<const T*>(a.q), *k = static_cast<const T*>(a.k), *v = static_cast<const T*>(a.v);
  T* o = static_cast<T*>(a.o);
  float* S = a.state + int64_t(bh) * Dk * Dv;
  for (int i = tid; i < Dk * Dv; i += kThreads) S[i] = 0.0f;
  for (int d = tid; d < Dk; d += kThreads) z[d] = 0.0f;
  __syncthreads();
  for (int t0 = 0; t0 < T_; t0 += kChunk) {
    const int n = min(kChunk, T_ - t0);
    for (int idx = tid; idx < kChunk * kChunk; idx += kThreads) {
      const int i = idx / kChunk, j = idx % kChunk;
      float s = 0.0f;
      if (i < n && j <= i) {
        const int64_t qi = row_off(bh, T_, t0 + i, Dk), kj = row_off(bh, T_, t0 + j, Dk);
        for (int d = 0; d < Dk; ++d) s += ld(q, qi + d) * ld(k, kj + d);
      }
      As[idx] = s;
    }
    __syncthreads();
    if (a.normalize) {
      for (int i = tid; i < n; i += kThreads) {
        const int64_t qi = row_off(bh, T_, t0 + i, Dk);
        float qz = 0.0f, rs = 0.0f;
        for (int d = 0; d < Dk; ++d) qz += ld(q, qi + d) * z[d];
        for (int j = 0; j <= i; ++j) rs += As[i * kChunk + j];
        dens[i] = a.scale * (qz + rs) + a.eps;
        if (a.den) a.den[int64_t(bh) * T_ + t0 + i] = dens[i];
      }
    }
    __syncthreads();
    for (int idx = tid; idx < n * Dv; idx += kThreads) {
      const int i = idx / Dv, c = idx % Dv;
      const int64_t qi = row_off(bh, T_, t0 + i, Dk);
      float inter = 0.0f, intra = 0.0f;
      for (int d = 0; d < Dk; ++d) inter += ld(q, qi + d) * rd<SP, T>(S[d * Dv + c]);
      for (int j = 0; j <= i; ++j) intra += rd<SP, T>(As[i * kChunk + j]) * ld(v, row_off(bh, T_, t0 + j, Dv) + c);
      float N = (inter + intra) * a.scale;
      if (a.normalize) N /= dens[i];
      o[row_off(bh, T_, t0 + i, Dv) + c] = from_f32<T>(N);
    }
    __syncthreads();
    for (int idx = tid; idx < Dk * Dv; idx += kThreads) {
      const int d = idx / Dv, c = idx % Dv;
      float s = 0.0f;
      for (int j = 0; j < n; ++j) s += ld(k, row_off(bh, T_, t0 + j, Dk) + d) * ld(v, row_off(bh, T_, t0 + j, Dv) + c);
      S[idx] += s;
    }
    for (int d = tid; d < Dk; d += kThreads) {
      float s = 0.0f;
      for (int j = 0; j < n; ++j) s += ld(k, row_off(bh, T_, t0 + j, Dk) + d);
      z[d] += s;
    }
    __syncthreads();
  }
}

// Backward, forward scan: dQ (complete), and the intra-chunk parts of dK, dV into fp32 workspaces.
template <class T, bool SP>
__global__ void __launch_bounds__(kThreads) linear_naive_bwd_scan(LinearArgs a) {
  LIN_DYN_SMEM(float, smem);
  float* As = smem;                        // [64][64] A, unrounded
  float* dMs = As + kChunk * kChunk;       // [64][64] rd(dM)
  float* dl = dMs + kChunk * kChunk;       // [64] delta
  float* z = dl + kChunk;                  // [Dk]
  const int bh = blockIdx.x, tid = threadIdx.x, Dk = a.Dk, Dv = a.Dv, T_ = a.T;
  const T *q = static_cast<const T*>(a.q), *k = static_cast<const T*>(a.k), *v = static_cast<const T*>(a.v);
  const T *dO = static_cast<const T*>(a.dout), *o = static_cast<const T*>(a.o_saved);
  T* dq = static_cast<T*>(a.dq);
  float* S = a.state + int64_t(bh) * Dk * Dv;
  for (int i = tid; i < Dk * Dv; i += kThreads) S[i] = 0.0f;
  for (int d = tid; d < Dk; d += kThreads) z[d] = 0.0f;
  __syncthreads();
  for (int t0 = 0; t0 < T_; t0 += kChunk) {
    const int n = min(kChunk, T_ - t0);
    for (int i = tid; i < n; i += kThreads) {
      float s = 0.0f;
      if (a.normalize) {
        const int64_t oi = row_off(bh, T_, t0 + i, Dv);
        for (int c = 0; c < Dv; ++c) s += w_at<T, SP>(a, dO, oi + c, bh, t0 + i) * ld(o, oi + c);
      }
      dl[i] = s;
      a.delta[int64_t(bh) * T_ + t0 + i] = s;
    }
    for (int idx = tid; idx < kChunk * kChunk; idx += kThreads) {
      const int i = idx / kChunk, j = idx % kChunk;
      float s = 0.0f;
      if (i < n && j <= i) {
        const int64_t qi = row_off(bh, T_, t0 + i, Dk), kj = row_off(bh, T_, t0 + j, Dk);
        for (int d = 0; d < Dk; ++d) s += ld(q, qi + d) * ld(k, kj + d);
      }
      As[idx] = s;
    }
    __syncthreads();
    for (int idx = tid; idx < kChunk * kChunk; idx += kThreads) {
      const int i = idx / kChunk, j = idx % kChunk;
      float m = 0.0f;
      if (i < n && j <= i) {
        const int64_t oi = row_off(bh, T_, t0 + i, Dv), vj = row_off(bh, T_, t0 + j, Dv);
        for (int c = 0; c < Dv; ++c) m += w_at<T, SP>(a, dO, oi + c, bh, t0 + i) * ld(v, vj + c);
        m = rd<SP, T>(m - dl[i]);
      }
      dMs[idx] = m;
    }
    __syncthreads();
    for (int idx = tid; idx < n * Dk; idx += kThreads) {  // dQ_c, complete
      const int i = idx / Dk, d = idx % Dk;
      const int64_t oi = row_off(bh, T_, t0 + i, Dv);
      float intra = 0.0f, inter = 0.0f;
      for (int j = 0; j <= i; ++j) intra += dMs[i * kChunk + j] * ld(k, row_off(bh, T_, t0 + j, Dk) + d);
      for (int c = 0; c < Dv; ++c) inter += w_at<T, SP>(a, dO, oi + c, bh, t0 + i) * rd<SP, T>(S[d * Dv + c]);
      const float acc = intra + inter - dl[i] * z[d];
      dq[row_off(bh, T_, t0 + i, Dk) + d] = from_f32<T>(a.scale * acc);
    }
    for (int idx = tid; idx < n * Dk; idx += kThreads) {  // dK_c intra = dM^T Q_c
      const int j = idx / Dk, d = idx % Dk;
      float s = 0.0f;
      for (int i = j; i < n; ++i) s += dMs[i * kChunk + j] * ld(q, row_off(bh, T_, t0 + i, Dk) + d);
      a.dk_acc[row_off(bh, T_, t0 + j, Dk) + d] = s;
    }
    for (int idx = tid; idx < n * Dv; idx += kThreads) {  // dV_c intra = rd(A)^T W
      const int j = idx / Dv, c = idx % Dv;
      float s = 0.0f;
      for (int i = j; i < n; ++i) {
        s += rd<SP, T>(As[i * kChunk + j]) * w_at<T, SP>(a, dO, row_off(bh, T_, t0 + i, Dv) + c, bh, t0 + i);
      }
      a.dv_acc[row_off(bh, T_, t0 + j, Dv) + c] = s;
    }
    __syncthreads();
    for (int idx = tid; idx < Dk * Dv; idx += kThreads) {
      const int d = idx / Dv, c = idx % Dv;
      float s = 0.0f;
      for (int j = 0; j < n; ++j) s += ld(k, row_off(bh, T_, t0 + j, Dk) + d) * ld(v, row_off(bh, T_, t0 + j, Dv) + c);
      S[idx] += s;
    }
    for (int d = tid; d < Dk; d += kThreads) {
      float s = 0.0f;
      for (int j = 0; j < n; ++j) s += ld(k, row_off(bh, T_, t0 + j, Dk) + d);
      z[d] += s;
    }
    __syncthreads();
  }
}

// Backward, reverse scan: the inter-chunk parts of dK, dV through dS = sum_{later} Q^T W.
template <class T, bool SP>
__global__ void __launch_bounds__(kThreads) linear_naive_bwd_rscan(LinearArgs a) {
  LIN_DYN_SMEM(float, smem);
  float* dl = smem;          // [64] delta
  float* dz = dl + kChunk;   // [Dk]
  const int bh = blockIdx.x, tid = threadIdx.x, Dk = a.Dk, Dv = a.Dv, T_ = a.T;
  const T *q = static_cast<const T*>(a.q), *k = static_cast<const T*>(a.k), *v = static_cast<const T*>(a.v);
  const T* dO = static_cast<const T*>(a.dout);
  T *dk = static_cast<T*>(a.dk), *dv = static_cast<T*>(a.dv);
  float* dS = a.state + int64_t(bh) * Dk * Dv;
  for (int i = tid; i < Dk * Dv; i += kThreads) dS[i] = 0.0f;
  for (int d = tid; d < Dk; d += kThreads) dz[d] = 0.0f;
  __syncthreads();
  for (int t0 = ((T_ - 1) / kChunk) * kChunk; t0 >= 0; t0 -= kChunk) {
    const int n = min(kChunk, T_ - t0);
    for (int i = tid; i < n; i += kThreads) dl[i] = a.delta[int64_t(bh) * T_ + t0 + i];
    __syncthreads();
    for (int idx = tid; idx < n * Dk; idx += kThreads) {
      const int j = idx / Dk, d = idx % Dk;
      const int64_t vj = row_off(bh, T_, t0 + j, Dv), kj = row_off(bh, T_, t0 + j, Dk) + d;
      float s = 0.0f;
      for (int c = 0; c < Dv; ++c) s += ld(v, vj + c) * rd<SP, T>(dS[d * Dv + c]);
      dk[kj] = from_f32<T>(a.scale * (a.dk_acc[kj] + s - dz[d]));
    }
    for (int idx = tid; idx < n * Dv; idx += kThreads) {
      const int j = idx / Dv, c = idx % Dv;
      const int64_t kj = row_off(bh, T_, t0 + j, Dk), vj = row_off(bh, T_, t0 + j, Dv) + c;
      float s = 0.0f;
      for (int d = 0; d < Dk; ++d) s += ld(k, kj + d) * rd<SP, T>(dS[d * Dv + c]);
      dv[vj] = from_f32<T>(a.scale * (a.dv_acc[vj] + s));
    }
    __syncthreads();
    for (int idx = tid; idx < Dk * Dv; idx += kThreads) {
      const int d = idx / Dv, c = idx % Dv;
      float s = 0.0f;
      for (int i = 0; i < n; ++i) {
        s += ld(q, row_off(bh, T_, t0 + i, Dk) + d) * w_at<T, SP>(a, dO, row_off(bh, T_, t0 + i, Dv) + c, bh, t0 + i);
      }
      dS[idx] += s;
    }
    for (int d = tid; d < Dk; d += kThreads) {
      float s = 0.0f;
      for (int i = 0; i < n; ++i) s += ld(q, row_off(bh, T_, t0 + i, Dk) + d) * dl[i];
      dz[d] += s;
    }
    __syncthreads();
  }
}

}  // namespace attnbench::kernels::lin_naive
