// The minimal FlashAttention teaching kernels (softmax/flash1, softmax/flash2): what they share.
//
// After flash-attention-minimal (the seed): fp32 storage and arithmetic, one thread per row of a
// tile, tiles in shared memory, variables named after the papers (Dao et al. 2022, Dao 2023):
//   Q, K, V split into row blocks Qi (Br x Dk), Kj (Bc x Dk), Vj (Bc x Dv);
//   S_ij = scale Qi Kj^T; row_m, row_l: the running max and sum of exp of each query row;
//   L_i = row_m + log(row_l): the log-normalizer the backward uses (FA2).
// flash1.cu holds the FA1 loop order (outer over K/V blocks, inner over Q blocks, O/l/m updated
// in global memory), flash2.cu the FA2 order (outer over Q blocks, inner over K/V blocks, one
// final rescale). The seed's faults are fixed: every tile load is bounds checked (any T), the
// causal mask is bottom-right aligned (key j visible from query i iff j <= i + off, off = Tk - Tq),
// rows with no visible key give o = 0 and L = -inf, and every launch is checked.
//
// Shared-memory tiles are stored with a row stride of D + 1 floats, so that the threads of a warp,
// each walking its own row, hit different banks; a tile read by all threads at the same address
// (a broadcast) needs no padding but gets it too, for one layout rule.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_check.h"

namespace attnbench::kernels::flash {

// Tile sizes: Br query rows, Bc key rows, one thread per row. The backward's threads own a query
// row in one phase and a key row in the next, so the two are equal.
constexpr int Br = 32;
constexpr int Bc = 32;
static_assert(Br == Bc, "the backward maps thread t to query row t and to key row t");

struct FlashParams {
  const float* q;     // [B, H, Tq, Dk]
  const float* k;     // [B, Hkv, Tk, Dk]
  const float* v;     // [B, Hkv, Tk, Dv]
  float* o;           // [B, H, Tq, Dv]
  float* lse;         // [B, H, Tq]: L = row_m + log(row_l)
  float* row_m;       // [B, H, Tq]: FA1's running max (global memory)
  float* row_l;       // [B, H, Tq]: FA1's running sum
  float* total;       // [B, H, Tk]: A_j = sum_i P_ij, or null
  const float* dout;  // [B, H, Tq, Dv] (backward)
  float* delta;       // [B, H, Tq]: D_i = dO_i . o_i (FA2 backward)
  float* dq;          // [B, H, Tq, Dk]
  float* dk;          // [B, Hkv, Tk, Dk]
  float* dv;          // [B, Hkv, Tk, Dv]
  int B, H, Hkv, Tq, Tk, Dk, Dv;
  int off;            // Tk - Tq
  bool causal;
  float scale;
};

// Row strides of the shared tiles (see the file comment).
__host__ __device__ inline int ld(int d) { return d + 1; }

// Shared memory of each kernel, in bytes.
inline size_t flash1_forward_smem(int Dk, int Dv) {  // Qi, Kj, Vj, S
  return sizeof(float) * (size_t(Br) * ld(Dk) + size_t(Bc) * ld(Dk) + size_t(Bc) * ld(Dv) + size_t(Br) * ld(Bc));
}
inline size_t flash2_forward_smem(int Dk, int Dv) {  // Qi, Kj, Vj, Oi, S
  return flash1_forward_smem(Dk, Dv) + sizeof(float) * size_t(Br) * ld(Dv);
}
inline size_t flash_backward_smem(int Dk, int Dv) {  // Kj, Vj, dKj, dVj, Qi, dOi, P, dS
  return sizeof(float) * (3 * (size_t(Bc) * ld(Dk) + size_t(Bc) * ld(Dv)) + 2 * size_t(Br) * ld(Bc));
}
inline size_t flash_total_smem(int Dk) {  // Kj, Qi, L
  return sizeof(float) * (size_t(Bc) * ld(Dk) + size_t(Br) * ld(Dk) + Br);
}

// Copy `rows` rows of a row-major (rows x D) block from global memory into a padded tile; rows at
// and past `valid` (past the end of the sequence) are zero. All threads of the block take part.
__device__ inline void load_tile(float* tile, const float* src, int rows, int valid, int D) {
  for (int idx = threadIdx.x; idx < rows * D; idx += blockDim.x) {
    const int r = idx / D, d = idx % D;
    tile[r * ld(D) + d] = r < valid ? src[int64_t(r) * D + d] : 0.0f;
  }
}

// a . b over D elements, in four interleaved partial sums (shorter dependency chains, and a
// rounding error closer to a pairwise sum than one running sum of D terms).
__device__ inline float dot(const float* a, const float* b, int D) {
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  int d = 0;
  for (; d + 4 <= D; d += 4) {
    s0 += a[d] * b[d];
    s1 += a[d + 1] * b[d + 1];
    s2 += a[d + 2] * b[d + 2];
    s3 += a[d + 3] * b[d + 3];
  }
  for (; d < D; ++d) s0 += a[d] * b[d];
  return (s0 + s1) + (s2 + s3);
}

__device__ inline bool visible(const FlashParams& p, int i, int j) {
  return i < p.Tq && j < p.Tk && (!p.causal || j <= i + p.off);
}
// Keys [0, kv_end) can be visible from query rows [i0, i0 + Br).
__device__ inline int kv_end(const FlashParams& p, int i0) {
  return p.causal ? max(0, min(p.Tk, i0 + Br + p.off)) : p.Tk;
}
// The first query block [i0, i0 + Br) that can see key j0.
__device__ inline int first_query_block(const FlashParams& p, int j0) {
  return p.causal ? max(0, j0 - p.off) / Br * Br : 0;
}

__device__ inline int64_t q_row(const FlashParams& p, int b, int h, int i) { return (int64_t(b) * p.H + h) * p.Tq + i; }
__device__ inline int64_t k_row(const FlashParams& p, int b, int hk, int j) { return (int64_t(b) * p.Hkv + hk) * p.Tk + j; }

// The backward's shared tiles (both loop orders): Kj, Vj, dKj, dVj (Bc rows), Qi, dOi (Br rows),
// P, dS (Br x Bc).
struct BwdTiles {
  float *Kj, *Vj, *dKj, *dVj, *Qi, *dOi, *P, *dS;
  __device__ BwdTiles(float* smem, int Dk, int Dv) {
    Kj = smem;
    Vj = Kj + Bc * ld(Dk);
    dKj = Vj + Bc * ld(Dv);
    dVj = dKj + Bc * ld(Dk);
    Qi = dVj + Bc * ld(Dv);
    dOi = Qi + Br * ld(Dk);
    P = dOi + Br * ld(Dv);
    dS = P + Br * ld(Bc);
  }
};

// Kj, Vj of key block j0 -> shared; dKj = dVj = 0 (thread tx owns key row tx).
__device__ inline void bwd_begin_key_block(const FlashParams& p, const BwdTiles& t, int b, int hk, int j0) {
  const int tx = threadIdx.x;
  load_tile(t.Kj, p.k + k_row(p, b, hk, j0) * p.Dk, Bc, p.Tk - j0, p.Dk);
  load_tile(t.Vj, p.v + k_row(p, b, hk, j0) * p.Dv, Bc, p.Tk - j0, p.Dv);
  for (int d = 0; d < p.Dk; ++d) t.dKj[tx * ld(p.Dk) + d] = 0.0f;
  for (int d = 0; d < p.Dv; ++d) t.dVj[tx * ld(p.Dv) + d] = 0.0f;
}

// One (query block i0 of head h) x (key block j0) step of the backward, the same in both loop
// orders but for the row statistics and the dQ update:
//   P_ij = exp(S_ij - a_i) / c_i  with {a_i, c_i, D_i} = stats(row, dOi_row): FA1 gives {m_i, l_i,
//          dOi . O_i}, FA2 {L_i, 1, delta_i} (x / 1 is exact);
//   dP_ij = dOi Vj^T;  dS_ij = P_ij (dP_ij - D_i)                  (thread per query row)
//   dVj += P_ij^T dOi;  dKj += scale dS_ij^T Qi                     (thread per key row)
//   dQ_i += scale dS_ij Kj  (kAtomicDq: atomicAdd, other key blocks' CTAs share dQ_i)
struct RowStats {
  float a, c, D;
};
template <bool kAtomicDq, class Stats>
__device__ inline void bwd_query_block(const FlashParams& p, const BwdTiles& t, int b, int h, int i0, int j0,
                                       Stats stats) {
  const int tx = threadIdx.x, ldk = ld(p.Dk), ldv = ld(p.Dv);
  __syncthreads();  // Kj, Vj loaded; the previous Qi, dOi, P, dS consumed
  load_tile(t.Qi, p.q + q_row(p, b, h, i0) * p.Dk, Br, p.Tq - i0, p.Dk);
  load_tile(t.dOi, p.dout + q_row(p, b, h, i0) * p.Dv, Br, p.Tq - i0, p.Dv);
  __syncthreads();
  const int i = i0 + tx;
  float* Pi = t.P + tx * ld(Bc);
  float* dSi = t.dS + tx * ld(Bc);
  if (i < p.Tq) {
    const RowStats st = stats(q_row(p, b, h, i), t.dOi + tx * ldv);
    for (int c = 0; c < Bc; ++c) {
      float P_ij = 0.0f, dS_ij = 0.0f;
      if (visible(p, i, j0 + c)) {
        P_ij = expf(p.scale * dot(t.Qi + tx * ldk, t.Kj + c * ldk, p.Dk) - st.a) / st.c;
        const float dP_ij = dot(t.dOi + tx * ldv, t.Vj + c * ldv, p.Dv);
        dS_ij = P_ij * (dP_ij - st.D);
      }
      Pi[c] = P_ij;
      dSi[c] = dS_ij;
    }
  } else {
    for (int c = 0; c < Bc; ++c) Pi[c] = dSi[c] = 0.0f;
  }
  __syncthreads();
  for (int d = 0; d < p.Dv; ++d) {
    float acc = 0.0f;
    for (int r = 0; r < Br; ++r) acc += t.P[r * ld(Bc) + tx] * t.dOi[r * ldv + d];
    t.dVj[tx * ldv + d] += acc;
  }
  for (int d = 0; d < p.Dk; ++d) {
    float acc = 0.0f;
    for (int r = 0; r < Br; ++r) acc += t.dS[r * ld(Bc) + tx] * t.Qi[r * ldk + d];
    t.dKj[tx * ldk + d] += p.scale * acc;
  }
  if (i < p.Tq) {
    float* dQ_i = p.dq + q_row(p, b, h, i) * p.Dk;
    for (int d = 0; d < p.Dk; ++d) {
      float acc = 0.0f;
      for (int c = 0; c < Bc; ++c) acc += dSi[c] * t.Kj[c * ldk + d];
      if constexpr (kAtomicDq) atomicAdd(dQ_i + d, p.scale * acc);
      else dQ_i[d] += p.scale * acc;
    }
  }
}

// dKj, dVj -> global (thread tx owns key row j0 + tx).
__device__ inline void bwd_end_key_block(const FlashParams& p, const BwdTiles& t, int b, int hk, int j0) {
  const int tx = threadIdx.x, j = j0 + tx;
  if (j < p.Tk) {
    for (int d = 0; d < p.Dk; ++d) p.dk[k_row(p, b, hk, j) * p.Dk + d] = t.dKj[tx * ld(p.Dk) + d];
    for (int d = 0; d < p.Dv; ++d) p.dv[k_row(p, b, hk, j) * p.Dv + d] = t.dVj[tx * ld(p.Dv) + d];
  }
}

// Launchers (flash1.cu, flash2.cu, flash_minimal.cu). Grids put batch x heads in x.
void flash1_forward(const FlashParams& p, cudaStream_t s);
void flash1_backward(const FlashParams& p, cudaStream_t s);
void flash2_forward(const FlashParams& p, cudaStream_t s);
void flash2_backward(const FlashParams& p, cudaStream_t s);
void flash_total_attention(const FlashParams& p, cudaStream_t s);

// Set a kernel's dynamic shared memory limit to what it uses (beyond 48 KiB needs the opt-in).
template <class Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

}  // namespace attnbench::kernels::flash
