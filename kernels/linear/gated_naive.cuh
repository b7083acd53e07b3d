// gated, naive CUDA: the chunkwise form (C = 64) on CUDA cores, one block per (b, h) slice,
// mirroring the same-precision emulation of reference/gated_emul.h (its notation):
//   b_r  = sum_{s<=r} g_{t0+s} (fp32, in order),  bq_r = b_r (rwkv6: b_{r-1}, b_{-1} = 0),
//   last = b_{n-1};  pairs j <= i (rwkv6: j < i; its diagonal is the bonus a_i = q_i.(u*k_i)).
// forward, per chunk (S: fp32 state before the chunk):
//   A_ij = sum_d q_id k_jd exp(bq_id - b_jd)                   fp32, exact exponent differences
//   o_i  = rd(scale (rd(A) V + rd(q_i * exp(bq_i)) rd(S) [+ a_i v_i]))
//   S   <- diag(exp(last)) S + rd(k_j * exp(last - b_j))^T V
// backward, per chunk from the last (D = dL/dS at the chunk's end, fp32; S_c, S_{c+1} the
// forward's fp32 states before and after the chunk, kept in a workspace by a first scan):
//   dA_ij = scale do_i.v_j
//   dv_j  = scale rd(A)^T dO + rd(k_j exp(last - b_j)) rd(D)              [+ scale a_j do_j]
//   dq_id = sum_{j<i} dA_ij k_jd exp(bq_id - b_jd) + scale exp(bq_id) (do_i rd(S_c)^T)_d
//   dk_jd = sum_{i>j} dA_ij q_id exp(bq_id - b_jd) + exp(last_d - b_jd) (v_j rd(D)^T)_d
//   dg_{t0+s,d} = sum_e S_{c+1}[d,e] D[d,e] + sum_{r=s..n-1} (q_r*dq_r - k_r*dk_r)_d   (gated parts;
//                 rwkv6 reads the q term of row r+1); then the diagonal pair j = i (dA_ii k_i,
//                 dA_ii q_i), or rwkv6's bonus (dA_ii u*k_i, dA_ii u*q_i, du += dA_ii q_i*k_i)
//   D    <- diag(exp(last)) D + scale rd(q_i * exp(bq_i))^T dO
// The chunk's Dk-wide scratch (b, the rounded decayed q and k, dG) lives in a global workspace.
#pragma once

#include <cmath>

#include "linear_family_naive.cuh"

namespace attnbench::kernels::lin_naive {


enum GateSrc { kFixed = 0, kScalar = 1, kVector = 2 };

struct GatedArgs {
  const void *q, *k, *v, *dout;
  const float *g, *u;
  void *o, *dq, *dk, *dv;
  float *dg, *du_part, *du;
  float *S_all, *state, *ws;
  int B, H, T, Dk, Dv;
  float scale;
  int gate;        // GateSrc
  bool lightning;  // fixed gate schedule: lightning (else retention)
  bool bonus;      // rwkv6
};

// The per-slice chunk scratch: 5 arrays of [64][Dk] fp32.
struct ChunkWs {
  float *b, *qt, *kt, *dgq, *dgc;
  __device__ ChunkWs(const GatedArgs& a, int bh) {
    const int64_t n = int64_t(kChunk) * a.Dk;
    b = a.ws + int64_t(bh) * 5 * n;
    qt = b + n, kt = qt + n, dgq = kt + n, dgc = dgq + n;
  }
};

// The fixed per-head log-gate (computed in fp64 as the reference does, then rounded to fp32).
__device__ __forceinline__ float fixed_gate(const GatedArgs& a, int h) {
  if (a.lightning) return static_cast<float>(-exp2(-8.0 * double(h + 1) / double(a.H)));
  return static_cast<float>(log1p(-exp2(-5.0 - double(h))));
}

__device__ __forceinline__ float gate_at(const GatedArgs& a, int bh, float fixed, int t, int d) {
  if (a.gate == kScalar) return a.g[int64_t(bh) * a.T + t];
  if (a.gate == kVector) return a.g[(int64_t(bh) * a.T + t) * a.Dk + d];
  return fixed;
}

// b_r (r < n) of the chunk starting at t0; thread per column d.
__device__ void chunk_gates(const GatedArgs& a, const ChunkWs& w, int bh, int h, int t0, int n) {
  const float fixed = a.gate == kFixed ? fixed_gate(a, h) : 0.0f;
  for (int d = threadIdx.x; d < a.Dk; d += kThreads) {
    float s = 0.0f;
    for (int r = 0; r < n; ++r) {
      s = r == 0 ? gate_at(a, bh, fixed, t0, d) : gate_at(a, bh, fixed, t0 + r, d) + s;
      w.b[r * a.Dk + d] = s;
    }
  }
}

__device__ __forceinline__ float bq_at(const GatedArgs& a, const ChunkWs& w, int r, int d) {
  if (a.bonus) return r == 0 ? 0.0f : w.b[(r - 1) * a.Dk + d];
  return w.b[r * a.Dk + d];
}

// Qt = rd(q * exp(bq)), Kt = rd(k * exp(last - b)) for the chunk's rows, and (bonus) a_i.
template <class T, bool SP>
__device__ void decayed_rows(const GatedArgs& a, const ChunkWs& w, int bh, int t0, int n, float* bon) {
  const T *q = static_cast<const T*>(a.q), *k = static_cast<const T*>(a.k);
  const int Dk = a.Dk;
  for (int idx = threadIdx.x; idx < n * Dk; idx += kThreads) {
    const int i = idx / Dk, d = idx % Dk;
    const int64_t off = row_off(bh, a.T, t0 + i, Dk) + d;
    const float last = w.b[(n - 1) * Dk + d];
    w.qt[idx] = rd<SP, T>(ld(q, off) * expf(bq_at(a, w, i, d)));
    w.kt[idx] = rd<SP, T>(ld(k, off) * expf(last - w.b[idx]));
  }
  if (a.bonus) {
    const int h = (bh % a.H);
    for (int i = threadIdx.x; i < n; i += kThreads) {
      const int64_t qi = row_off(bh, a.T, t0 + i, Dk);
      float s = 0.0f;
      for (int d = 0; d < Dk; ++d) s += ld(q, qi + d) * ld(k, qi + d) * a.u[h * Dk + d];
      bon[i] = s;
    }
  }
}

// A over the chunk's decayed pairs (j < i, or j <= i without the bonus), fp32; 0 elsewhere.
template <class T>
__device__ void decayed_scores(const GatedArgs& a, const ChunkWs& w, int bh, int t0, int n, float* As) {
  const T *q = static_cast<const T*>(a.q), *k = static_cast<const T*>(a.k);
  const int Dk = a.Dk;
  for (int idx = threadIdx.x; idx < kChunk * kChunk; idx += kThreads) {
    const int i = idx / kChunk, j = idx % kChunk;
    const int m = a.bonus ? i : i + 1;
    float s = 0.0f;
    if (i < n && j < m) {
      const int64_t qi = row_off(bh, a.T, t0 + i, Dk), kj = row_off(bh, a.T, t0 + j, Dk);
      for (int d = 0; d < Dk; ++d) s += ld(q, qi + d) * ld(k, kj + d) * expf(bq_at(a, w, i, d) - w.b[j * Dk + d]);
    }
    As[idx] = s;
  }
}

// S <- diag(exp(last)) S + Kt^T V over the chunk.
template <class T>
__device__ void advance_state(const GatedArgs& a, const ChunkWs& w, float* S, int bh, int t0, int n) {
  const T* v = static_cast<const T*>(a.v);
  const int Dk = a.Dk, Dv = a.Dv;
  for (int idx = threadIdx.x; idx < Dk * Dv; idx += kThreads) {
    const int d = idx / Dv, c = idx % Dv;
    float s = 0.0f;
    for (int j = 0; j < n; ++j) s += w.kt[j * Dk + d] * ld(v, row_off(bh, a.T, t0 + j, Dv) + c);
    S[idx] = S[idx] * expf(w.b[(n - 1) * Dk + d]) + s;
  }
}

template <class T, bool SP>
__global__ void __launch_bounds__(kThreads) gated_naive_fwd(GatedArgs a) {
  __shared__ float As[kChunk * kChunk];
  __shared__ float bon[kChunk];
  const int bh = blockIdx.x, h = bh % a.H, tid = threadIdx.x, Dk = a.Dk, Dv = a.Dv;
  const ChunkWs w(a, bh);
  const T* v = static_cast<const T*>(a.v);
  T* o = static_cast<T*>(a.o);
  float* S = a.state + int64_t(bh) * Dk * Dv;
  for (int i = tid; i < Dk * Dv; i += kThreads) S[i] = 0.0f;
  for (int t0 = 0; t0 < a.T; t0 += kChunk) {
    const int n = min(kChunk, a.T - t0);
    __syncthreads();
    chunk_gates(a, w, bh, h, t0, n);
    __syncthreads();
    decayed_rows<T, SP>(a, w, bh, t0, n, bon);
    decayed_scores<T>(a, w, bh, t0, n, As);
    __syncthreads();
    for (int idx = tid; idx < n * Dv; idx += kThreads) {
      const int i = idx / Dv, c = idx % Dv;
      float intra = 0.0f, inter = 0.0f;
      for (int j = 0; j <= i; ++j) intra += rd<SP, T>(As[i * kChunk + j]) * ld(v, row_off(bh, a.T, t0 + j, Dv) + c);
      for (int d = 0; d < Dk; ++d) inter += w.qt[i * Dk + d] * rd<SP, T>(S[d * Dv + c]);
      float acc = intra + inter;
      if (a.bonus) acc += bon[i] * ld(v, row_off(bh, a.T, t0 + i, Dv) + c);
      o[row_off(bh, a.T, t0 + i, Dv) + c] = from_f32<T>(a.scale * acc);
    }
    __syncthreads();
    advance_state<T>(a, w, S, bh, t0, n);
  }
}

// The forward's fp32 states: S_all[c] before chunk c, S_all[nc] after the last.
template <class T, bool SP>
__global__ void __launch_bounds__(kThreads) gated_naive_states(GatedArgs a) {
  __shared__ float bon[kChunk];
  const int bh = blockIdx.x, h = bh % a.H, tid = threadIdx.x, Dk = a.Dk, Dv = a.Dv;
  const int nc = (a.T + kChunk - 1) / kChunk;
  const ChunkWs w(a, bh);
  float* S = a.state + int64_t(bh) * Dk * Dv;
  float* S_all = a.S_all + int64_t(bh) * (nc + 1) * Dk * Dv;
  for (int i = tid; i < Dk * Dv; i += kThreads) S[i] = 0.0f;
  for (int c = 0; c < nc; ++c) {
    const int t0 = c * kChunk, n = min(kChunk, a.T - t0);
    __syncthreads();
    for (int i = tid; i < Dk * Dv; i += kThreads) S_all[int64_t(c) * Dk * Dv + i] = S[i];
    chunk_gates(a, w, bh, h, t0, n);
    __syncthreads();
    decayed_rows<T, SP>(a, w, bh, t0, n, bon);
    __syncthreads();
    advance_state<T>(a, w, S, bh, t0, n);
  }
  __syncthreads();
  for (int i = tid; i < Dk * Dv; i += kThreads) S_all[int64_t(nc) * Dk * Dv + i] = S[i];
}

template <class T, bool SP>
__global__ void __launch_bounds__(kThreads) gated_naive_bwd(GatedArgs a) {
  __shared__ float As[kChunk * kChunk], dAs[kChunk * kChunk];
  __shared__ float bon[kChunk];
  __shared__ float du_s[256];
  const int bh = blockIdx.x, h = bh % a.H, tid = threadIdx.x, Dk = a.Dk, Dv = a.Dv, T_ = a.T;
  const int nc = (T_ + kChunk - 1) / kChunk;
  const ChunkWs w(a, bh);
  const T *q = static_cast<const T*>(a.q), *k = static_cast<const T*>(a.k), *v = static_cast<const T*>(a.v);
  const T* dO = static_cast<const T*>(a.dout);
  T *dq = static_cast<T*>(a.dq), *dk = static_cast<T*>(a.dk), *dv = static_cast<T*>(a.dv);
  const float* u = a.bonus ? a.u + h * Dk : nullptr;
  float* D = a.state + int64_t(bh) * Dk * Dv;
  const float* S_all = a.S_all + int64_t(bh) * (nc + 1) * Dk * Dv;
  for (int i = tid; i < Dk * Dv; i += kThreads) D[i] = 0.0f;
  for (int d = tid; d < Dk; d += kThreads) du_s[d] = 0.0f;
  for (int c = nc - 1; c >= 0; --c) {
    const int t0 = c * kChunk, n = min(kChunk, T_ - t0);
    const float* S_c = S_all + int64_t(c) * Dk * Dv;
    const float* S_next = S_c + int64_t(Dk) * Dv;
    __syncthreads();
    chunk_gates(a, w, bh, h, t0, n);
    __syncthreads();
    decayed_rows<T, SP>(a, w, bh, t0, n, bon);
    decayed_scores<T>(a, w, bh, t0, n, As);
    for (int idx = tid; idx < kChunk * kChunk; idx += kThreads) {
      const int i = idx / kChunk, j = idx % kChunk;
      float s = 0.0f;
      if (i < n && j < n) {
        const int64_t oi = row_off(bh, T_, t0 + i, Dv), vj = row_off(bh, T_, t0 + j, Dv);
        for (int e = 0; e < Dv; ++e) s += ld(dO, oi + e) * ld(v, vj + e);
      }
      dAs[idx] = a.scale * s;
    }
    __syncthreads();
    for (int idx = tid; idx < n * Dk; idx += kThreads) {  // dq and q * (its gated part)
      const int i = idx / Dk, d = idx % Dk;
      const int64_t qi = row_off(bh, T_, t0 + i, Dk), oi = row_off(bh, T_, t0 + i, Dv);
      const float bq = bq_at(a, w, i, d);
      float intra = 0.0f, inter = 0.0f;
      for (int j = 0; j < i; ++j) {
        intra += dAs[i * kChunk + j] * ld(k, row_off(bh, T_, t0 + j, Dk) + d) * expf(bq - w.b[j * Dk + d]);
      }
      for (int e = 0; e < Dv; ++e) inter += ld(dO, oi + e) * rd<SP, T>(S_c[d * Dv + e]);
      const float gated = intra + a.scale * expf(bq) * inter;
      w.dgq[idx] = ld(q, qi + d) * gated;
      const float kd = a.bonus ? u[d] * ld(k, qi + d) : ld(k, qi + d);
      dq[qi + d] = from_f32<T>(gated + dAs[i * kChunk + i] * kd);
    }
    __syncthreads();
    for (int idx = tid; idx < n * Dk; idx += kThreads) {  // dk and the combined dG row terms
      const int j = idx / Dk, d = idx % Dk;
      const int64_t kj = row_off(bh, T_, t0 + j, Dk), vj = row_off(bh, T_, t0 + j, Dv);
      const float bj = w.b[idx], last = w.b[(n - 1) * Dk + d];
      float intra = 0.0f, inter = 0.0f;
      for (int i = j + 1; i < n; ++i) {
        intra += dAs[i * kChunk + j] * ld(q, row_off(bh, T_, t0 + i, Dk) + d) * expf(bq_at(a, w, i, d) - bj);
      }
      for (int e = 0; e < Dv; ++e) inter += ld(v, vj + e) * rd<SP, T>(D[d * Dv + e]);
      const float gated = intra + expf(last - bj) * inter;
      const float gq = a.bonus ? (j + 1 < n ? w.dgq[idx + Dk] : 0.0f) : w.dgq[idx];
      w.dgc[idx] = gq - ld(k, kj + d) * gated;
      const float qd = a.bonus ? u[d] * ld(q, kj + d) : ld(q, kj + d);
      dk[kj + d] = from_f32<T>(gated + dAs[j * kChunk + j] * qd);
    }
    for (int idx = tid; idx < n * Dv; idx += kThreads) {  // dv
      const int j = idx / Dv, e = idx % Dv;
      float intra = 0.0f, inter = 0.0f;
      for (int i = j; i < n; ++i) intra += rd<SP, T>(As[i * kChunk + j]) * ld(dO, row_off(bh, T_, t0 + i, Dv) + e);
      for (int d = 0; d < Dk; ++d) inter += w.kt[j * Dk + d] * rd<SP, T>(D[d * Dv + e]);
      float acc = a.scale * intra + inter;
      if (a.bonus) acc += a.scale * bon[j] * ld(dO, row_off(bh, T_, t0 + j, Dv) + e);
      dv[row_off(bh, T_, t0 + j, Dv) + e] = from_f32<T>(acc);
    }
    __syncthreads();
    if (a.dg) {  // chunk-local reverse cumulative sum plus the boundary term
      for (int d = tid; d < Dk; d += kThreads) {
        float run = 0.0f;
        for (int e = 0; e < Dv; ++e) run += S_next[d * Dv + e] * D[d * Dv + e];
        for (int r = n - 1; r >= 0; --r) {
          run += w.dgc[r * Dk + d];
          if (a.gate == kVector) a.dg[(int64_t(bh) * T_ + t0 + r) * Dk + d] = run;
          else w.dgq[r * Dk + d] = run;
        }
      }
    }
    if (a.bonus) {
      for (int d = tid; d < Dk; d += kThreads) {
        float s = 0.0f;
        for (int i = 0; i < n; ++i) {
          const int64_t qi = row_off(bh, T_, t0 + i, Dk) + d;
          s += dAs[i * kChunk + i] * ld(q, qi) * ld(k, qi);
        }
        du_s[d] += s;
      }
    }
    __syncthreads();
    if (a.dg && a.gate == kScalar) {  // a scalar gate's gradient is the sum over Dk
      for (int r = tid; r < n; r += kThreads) {
        float s = 0.0f;
        for (int d = 0; d < Dk; ++d) s += w.dgq[r * Dk + d];
        a.dg[int64_t(bh) * T_ + t0 + r] = s;
      }
    }
    for (int idx = tid; idx < Dk * Dv; idx += kThreads) {  // carry D to the previous chunk's end
      const int d = idx / Dv, e = idx % Dv;
      float s = 0.0f;
      for (int i = 0; i < n; ++i) s += w.qt[i * Dk + d] * ld(dO, row_off(bh, T_, t0 + i, Dv) + e);
      D[idx] = D[idx] * expf(w.b[(n - 1) * Dk + d]) + a.scale * s;
    }
  }
  __syncthreads();
  if (a.bonus) {
    for (int d = tid; d < Dk; d += kThreads) a.du_part[int64_t(bh) * Dk + d] = du_s[d];
  }
}

// du[h] = sum over b of the per-slice partial sums, in order of b.
__global__ void gated_naive_du(GatedArgs a) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= a.H * a.Dk) return;
  const int h = idx / a.Dk, d = idx % a.Dk;
  float s = 0.0f;
  for (int b = 0; b < a.B; ++b) s += a.du_part[(int64_t(b) * a.H + h) * a.Dk + d];
  a.du[idx] = s;
}

}  // namespace attnbench::kernels::lin_naive
