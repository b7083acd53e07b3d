// Naive CUDA kernels for the softmax family: one warp per row, plain fp32 arithmetic on CUDA
// cores, no tensor cores and no O(T^2) memory. They are oracles (checked against the fp64 CPU
// reference on small shapes, then the reference at sizes the CPU cannot reach), so clarity first.
//
// Notation as DESIGN.md: query row i of head h, key row j of kv head hk = h / (H/Hkv),
// off = Tk - Tq, causal: j visible iff j <= i + off.
//   forward (warp per query row):  pass 1: m_i = max_j s_ij, l_i = sum_j exp(s_ij - m_i)
//                                  pass 2: o_i = sum_j p_ij v_j / l_i,  p_ij = exp(s_ij - m_i)
//                                  L_i = m_i + log l_i
//   total attention (warp per key row): A_j = sum_i exp(s_ij - L_i)
//   backward dQ (warp per query row): D_i = dO_i . o_i;  P_ij = exp(s_ij - L_i);
//                                  dS_ij = P_ij (dO_i . v_j - D_i);  dq_i = sum_j dS_ij ds_ij/dq_i
//   backward dK dV (warp per key row, over the query heads of its group):
//                                  dv_j = sum_i P_ij dO_i,  dk_j = sum_i dS_ij ds_ij/dk_j
// No atomics: each warp owns the rows it writes. Same-precision mode (the GPU `base` of the
// numerics rule) rounds to the storage dtype T exactly where the CPU emulation does:
// p = exp(s - m) before P.V, P before P^T dO, dS before dS K and dS^T Q.
//
// A Score policy supplies s_ij and its gradients, seen from either side:
//   query side: load_query(b,h,i,lane); score(b,hk,i,j,lane); add_query_grad(ds,b,hk,i,j,lane);
//               store_query_grads(b,h,i,lane)
//   key side:   load_key(b,hk,j,lane); key_score(b,h,i,j,lane); add_key_grad(ds,b,h,i,j,lane);
//               store_key_grads(b,hk,j,lane)
// Every call is warp-cooperative and returns the same value on all lanes. add_*_grad(ds, ...)
// always follows the score call of the same (i, j), so a policy may keep per-pair values from it.
// A policy whose backward multiplies dS by a chain-rule factor before its sums (hyperbolic:
// dZ = dS ds/dz) declares `static constexpr bool kRoundsDS = true;`: the kernels then hand it dS
// unrounded and, in same-precision mode, the policy rounds its own operand (as the CPU emulation).
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "warp.cuh"

namespace attnbench::kernels::naive {

constexpr int kWarpsPerBlock = 4;

// True when Score declares kRoundsDS = true (see above).
template <class Score, class = void>
struct policy_rounds_ds : std::false_type {};
template <class Score>
struct policy_rounds_ds<Score, std::void_t<decltype(Score::kRoundsDS)>> : std::bool_constant<Score::kRoundsDS> {};

// dS as the policy receives it: rounded to T in same-precision mode unless the policy rounds.
template <class T, bool kSP, class Score>
__device__ __forceinline__ float ds_for_policy(float ds) {
  return (kSP && !policy_rounds_ds<Score>::value) ? round_as<T>(ds) : ds;
}

// Shapes and the pointers every family member shares (the score's own inputs live in the policy).
template <class T>
struct FamilyParams {
  const T* v;     // [B, Hkv, Tk, Dv]
  const T* dout;  // [B, H, Tq, Dv] (backward)
  const T* o;     // [B, H, Tq, Dv]: forward output (written by fwd, read by bwd)
  T* o_out;
  float* lse;     // [B, H, Tq]
  float* delta;   // [B, H, Tq]: D_i of the backward
  float* total;   // [B, H, Tk] or null
  T* dv;          // [B, Hkv, Tk, Dv]
  int B, H, Hkv, Tq, Tk, Dv;
  int off;
  bool causal;
};

__device__ __forceinline__ int visible_keys(int i, int off, int Tk, bool causal) {
  if (!causal) return Tk;
  return max(0, min(Tk, i + off + 1));
}

template <class T, int S, bool kSP, class Score>
__global__ void __launch_bounds__(kWarpsPerBlock * kWarpSize)
    family_forward(FamilyParams<T> p, Score score) {
  const int lane = threadIdx.x % kWarpSize;
  const int i = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (i >= p.Tq) return;
  const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H, hk = h / (p.H / p.Hkv);
  score.load_query(b, h, i, lane);
  const int vis = visible_keys(i, p.off, p.Tk, p.causal);
  float m = -INFINITY, l = 0.0f;  // running max and running sum of exp(s - m)
  for (int j = 0; j < vis; ++j) {
    const float s = score.score(b, hk, i, j, lane);
    const float m_new = fmaxf(m, s);
    l = l * __expf(m - m_new) + __expf(s - m_new);
    m = m_new;
  }
  float acc[S] = {};
  const T* v = p.v + (int64_t(b) * p.Hkv + hk) * p.Tk * p.Dv;
  for (int j = 0; j < vis; ++j) {
    float pij = __expf(score.score(b, hk, i, j, lane) - m);
    if (kSP) pij = round_as<T>(pij);
    axpy_row<S>(acc, pij, v + int64_t(j) * p.Dv, p.Dv, lane);
  }
  const int64_t row = (int64_t(b) * p.H + h) * p.Tq + i;
  store_row<S>(p.o_out + row * p.Dv, p.Dv, lane, acc, vis ? 1.0f / l : 0.0f);
  if (lane == 0) p.lse[row] = vis ? m + logf(l) : -INFINITY;
}

template <class T, int S, class Score>
__global__ void __launch_bounds__(kWarpsPerBlock * kWarpSize)
    family_total_attention(FamilyParams<T> p, Score score) {
  const int lane = threadIdx.x % kWarpSize;
  const int j = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (j >= p.Tk) return;
  const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H, hk = h / (p.H / p.Hkv);
  score.load_key(b, hk, j, lane);
  const int i0 = p.causal ? max(0, j - p.off) : 0;  // first query row that sees key j
  float a = 0.0f;
  for (int i = i0; i < p.Tq; ++i) a += __expf(score.key_score(b, h, i, j, lane) - p.lse[(int64_t(b) * p.H + h) * p.Tq + i]);
  if (lane == 0) p.total[(int64_t(b) * p.H + h) * p.Tk + j] = a;
}

template <class T, int S, bool kSP, class Score>
__global__ void __launch_bounds__(kWarpsPerBlock * kWarpSize)
    family_backward_dq(FamilyParams<T> p, Score score) {
  const int lane = threadIdx.x % kWarpSize;
  const int i = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (i >= p.Tq) return;
  const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H, hk = h / (p.H / p.Hkv);
  const int64_t row = (int64_t(b) * p.H + h) * p.Tq + i;
  float dO[S];
  load_row<S>(p.dout + row * p.Dv, p.Dv, lane, dO);
  const float D = dot_row<S>(dO, p.o + row * p.Dv, p.Dv, lane);  // D_i = dO_i . o_i
  if (lane == 0) p.delta[row] = D;
  const float L = p.lse[row];
  score.load_query(b, h, i, lane);
  const T* v = p.v + (int64_t(b) * p.Hkv + hk) * p.Tk * p.Dv;
  const int vis = visible_keys(i, p.off, p.Tk, p.causal);
  for (int j = 0; j < vis; ++j) {
    const float P = __expf(score.score(b, hk, i, j, lane) - L);
    const float ds = P * (dot_row<S>(dO, v + int64_t(j) * p.Dv, p.Dv, lane) - D);
    score.add_query_grad(ds_for_policy<T, kSP, Score>(ds), b, hk, i, j, lane);
  }
  score.store_query_grads(b, h, i, lane);
}

template <class T, int S, bool kSP, class Score>
__global__ void __launch_bounds__(kWarpsPerBlock * kWarpSize)
    family_backward_dkdv(FamilyParams<T> p, Score score) {
  const int lane = threadIdx.x % kWarpSize;
  const int j = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (j >= p.Tk) return;
  const int bhk = blockIdx.y, b = bhk / p.Hkv, hk = bhk % p.Hkv, group = p.H / p.Hkv;
  const int64_t krow = (int64_t(b) * p.Hkv + hk) * p.Tk + j;
  float v_reg[S], dv[S] = {};
  load_row<S>(p.v + krow * p.Dv, p.Dv, lane, v_reg);
  score.load_key(b, hk, j, lane);
  const int i0 = p.causal ? max(0, j - p.off) : 0;
  for (int h = hk * group; h < (hk + 1) * group; ++h) {
    for (int i = i0; i < p.Tq; ++i) {
      const int64_t row = (int64_t(b) * p.H + h) * p.Tq + i;
      const T* dO = p.dout + row * p.Dv;
      const float P = __expf(score.key_score(b, h, i, j, lane) - p.lse[row]);
      const float ds = P * (dot_row<S>(v_reg, dO, p.Dv, lane) - p.delta[row]);
      axpy_row<S>(dv, kSP ? round_as<T>(P) : P, dO, p.Dv, lane);
      score.add_key_grad(ds_for_policy<T, kSP, Score>(ds), b, h, i, j, lane);
    }
  }
  store_row<S>(p.dv + krow * p.Dv, p.Dv, lane, dv, 1.0f);
  score.store_key_grads(b, hk, j, lane);
}

inline dim3 rows_grid(int rows, int heads) { return dim3((rows + kWarpsPerBlock - 1) / kWarpsPerBlock, heads); }
constexpr int kThreads = kWarpsPerBlock * kWarpSize;

}  // namespace attnbench::kernels::naive
