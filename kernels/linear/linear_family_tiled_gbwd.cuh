// The chunk-parallel gradients of the gated backward with data-dependent gates (scalar, vector,
// rwkv6), mirroring gated_emul.h: the math, the notation, the block layout and the parameters here;
// the kernel, gated_bwd_chunk2, in linear_family_tiled_gbwd2.cuh (session 5's gated_bwd_chunk, which
// it replaced in session 7 at the same rounding points, was removed after the A/B). One block per (b, h, chunk); it reads the chunk's
// q, k, v, dO, g and the states the scans stored (linear_family_tiled_scan.cuh): rd(S_c), rd(D_c)
// and the boundary partials bnd = sum_e S_{c+1} rd(D_c) (gated_emul.h: fp32 D there). Notation in
// linear_family_tiled.cuh; a scalar gate is a vector gate with equal columns. Per column d, b is
// the fp32 cumulative log-gate over the chunk (<= 0, non-increasing), bq_i = b_i (rwkv6: b_{i-1},
// b_{-1} = 0); the 64 rows form 16-row blocks I = 0..3 with ends e_I = b_{16I+15} (e_{-1} = 0),
// last = e_3, and m = b_31. The intra-chunk factor of the pair (i in I, j in J <= I) is
// exp(bq_i - b_j) = qfac_i M_IJ kfac_j, with references chosen per half of Dk (64 columns):
//  - one reference m while both half-chunk spans (0 - m, m - last) are <= kGbwdSingleMax = 80 in
//    every column: qfac_i = exp(bq_i - m), kfac_j = exp(m - b_j), M = 1; every factor lies within
//    [exp(-80), exp(80)] (normal fp32), so the kept pairs' products are exact to fp32 rounding
//    (ordinary gates: logsigmoid(randn) sums to about -26 over 32 rows; the fast path);
//  - else references per block: qfac_i = exp(bq_i - e_{I-1}) <= 1, kfac_j = exp(e_J - b_j) <= 1,
//    M_IJ = exp(e_{I-1} - e_J) <= 1 (J < I), M_II = invD_I = exp(e_{I-1} - e_I) = exp(span_I).
//    Products of factors <= 1 underflow only where the true weight is below 1e-38. The diagonal
//    block I is factored (invD_I) while span_I <= kGbwdSpanMax = 80 in every column of the half;
//    else it is exact, exp(bq_i - b_j) per pair and column from the fp32 b in shared memory (slow:
//    strong gates only).
//   Qf_id = q_id qfac_id,  Kf_jd = k_jd kfac_jd                                   fp32
//   A_ij  = sum_d Qf_id M_IJd Kf_jd  (pairs j <= i; rwkv6 j < i)                   fp32 -> rd(A)
//   dA_ij = scale do_i.v_j;  dAm = dA on j < i
//   dq_id = qfac_id sum_{J <= I} M_IJd (dAm_{I,J} Kf_J)_id + scale exp(bq_id) (do_i rd(S_c)^T)_d
//   dk_jd = kfac_jd sum_{I >= J} M_IJd (dAm_{I,J}^T Qf_I)_jd + exp(last_d - b_jd) (v_j rd(D_c)^T)_d
//   (an exact diagonal block: A_ij, and the dq, dk terms of its pairs, as sum q k exp(bq_i - b_j))
//   dv_j  = scale (rd(A)^T dO)_j + (rd(k_j exp(last - b_j)) rd(D_c))_j  [+ scale a_j do_j]
//   dg_{t0+s,d} = bnd_d + sum_{r >= s} (q_r dq_r - k_r dk_r)_d  (rwkv6: the q term of row r+1),
//   then the diagonal pair (dA_ii k_i, dA_ii q_i) or rwkv6's bonus (dA_ii u k_i, dA_ii u q_i,
//   du += dA_ii q_i k_i, summed over chunks and batches afterwards).
// Until session 16 the gate-dependent intra-chunk parts stayed fp32 on CUDA cores; since then, in
// bf16 with one reference (the fast path), they run on tensor cores with fp32 accumulators: A as
// rd(Qf) rd(Kf)^T (it only reaches dv through rd(A)), the intra-chunk sums of dq and dk as dAm Kf
// and dAm^T Qf in 3xTF32 (each fp32 operand split into two tf32 parts, three products: bf16 or
// plain tf32 operands made dg fail the numerics rule at T = 63, where dg's base error is fp32's
// alone). The per-block-reference path, fp16, and ATTNBENCH_LIN_GBWD=fp32i keep them in fp32.
// The tensor cores take the inter-chunk products.
// Block: 8 warps; warps 0-3 own query rows 16w.. (dq, A: row block I = w), warps 4-7 key rows
// 16(w-4).. (dk: key block J = w-4); all 8 share dv. The fp32 work runs over Dk in halves of 64
// columns to bound shared memory; the factors M, invD and the exact-diagonal flags are per half.
#pragma once

#include "linear_family_tiled.cuh"

namespace attnbench::kernels::lin_tiled {

constexpr int kGThreads = 256;

struct GateBwdParams {
  const void *q, *k, *v, *dout;
  const float *g, *u;
  const void *s_states, *d_states;  // [B*H][NC][Dk][Dv]
  const float* bnd;                 // [B*H][NV][NC][Dk]
  void *dq, *dk, *dv;
  float *dg, *du_part;              // dg [B,H,T(,Dk)]; du_part [B*H][NC][Dk]
  int H, T, Dk, Dv, NV;
  float scale;
  bool vector_gate;
  bool fp32_a;  // gated_bwd_chunk2: A on CUDA cores only (ATTNBENCH_LIN_GBWD=fp32a)
  bool fp32_i;  // gated_bwd_chunk2: A's diagonal blocks and dq/dk's intra-chunk sums on CUDA cores
                // (ATTNBENCH_LIN_GBWD=fp32i; session 15's kernel)
  int abl;      // gated_bwd_chunk2, measurement only (wrong results): phases skipped, bits as in
                // linear_family_tiled_host.cu (ATTNBENCH_LIN_GBWD=abl)
};

template <class T_, int kDk_, int kDv_>
struct GbwdCfg {
  using T = T_;
  static constexpr int kDk = kDk_, kDv = kDv_;
  static constexpr int kLdK = kDk + 8, kLdV = kDv + 8, kLdH = 64 + 4, kLdA = kC + 4, kLdG = kDk + 4;
  static constexpr int kHalves = kDk / 64;
  // bytes: q, k [64][kLdK]; v, dO [64][kLdV]; S, D [kDk][kLdV] (S's room later holds Kt and rd(A));
  // b, Qf, Kf halves [64][kLdH] fp32 (later the dG tile); dAm [64][kLdA] fp32; rows: dAd, brow,
  // bon [kC], lastb, bnd [kDk], the half's factors M [6][64] and invD [4][64], 8 flags.
  static constexpr int kQ = kC * kLdK * 2, kV = kC * kLdV * 2, kS = kDk * kLdV * 2;
  static constexpr int kHalf = kC * kLdH * 4, kAm = kC * kLdA * 4;
  static constexpr int kRows = (3 * kC + 2 * kDk + 10 * 64 + 8) * 4;
  static_assert(kRows % 16 == 0, "Kt after the rows stays 16-byte aligned");
  static constexpr int kAb = kC * (kC + 8) * 2;
  static constexpr bool kKtInS = kQ + kAb <= kS;  // Kt and rd(A) reuse S's room when it is large enough
  static constexpr int kSmemBytes = 2 * kQ + 2 * kV + 2 * kS + 3 * kHalf + kAm + kRows + (kKtInS ? 0 : kQ + kAb);
  static_assert(kC * kLdG * 4 <= 3 * kHalf, "the dG tile reuses the half tiles");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block (sm_90)");
};

#ifndef ATTNBENCH_LIN_GBWD_SPAN_MAX
#define ATTNBENCH_LIN_GBWD_SPAN_MAX 80.0f  // a sim build may move it (-1: exact diagonal blocks always)
#endif
#ifndef ATTNBENCH_LIN_GBWD_SINGLE_MAX
#define ATTNBENCH_LIN_GBWD_SINGLE_MAX 80.0f  // a sim build may move it (-1: per-block references always)
#endif
constexpr float kGbwdSpanMax = ATTNBENCH_LIN_GBWD_SPAN_MAX, kGbwdSingleMax = ATTNBENCH_LIN_GBWD_SINGLE_MAX;

// Index of M_IJ (J < I) in the half's factor rows; invD_I is row 6 + I.
__device__ __forceinline__ int gbwd_mi(int I, int J) { return I * (I - 1) / 2 + J; }

// exp(x) for a kept pair, else 0 (a dropped pair's x may be large: never multiplied by it).
__device__ __forceinline__ float gbwd_pair_exp(bool keep, float x) { return keep ? __expf(x) : 0.0f; }

// it += f (per column 8nt + 2q4 (+1)) * iz, fragment layout.
__device__ __forceinline__ void gbwd_fold(float (&it)[8][4], const float (&iz)[8][4], const float* f, int q4) {
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
    const float2 m = *reinterpret_cast<const float2*>(f + 8 * nt + 2 * q4);
    it[nt][0] += m.x * iz[nt][0], it[nt][1] += m.y * iz[nt][1], it[nt][2] += m.x * iz[nt][2], it[nt][3] += m.y * iz[nt][3];
  }
}

// acc[nt] += iz[nt] over the 8 n-tiles of a half (acc points at its first).
__device__ __forceinline__ void gbwd_add(float (*acc)[4], const float (&iz)[8][4]) {
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[nt][e] += iz[nt][e];
  }
}

// du[h, d] = sum over b, then chunks, of the partials (fixed order). grid ceil(H*Dk/256).
static __global__ void gated_bwd_du(const float* du_part, float* du, int B, int H, int NC, int Dk) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= H * Dk) return;
  const int h = idx / Dk, d = idx % Dk;
  float s = 0.0f;
  for (int b = 0; b < B; ++b) {
    float sb = 0.0f;
    for (int c = 0; c < NC; ++c) sb += du_part[((int64_t(b) * H + h) * NC + c) * Dk + d];
    s += sb;
  }
  du[idx] = s;
}

}  // namespace attnbench::kernels::lin_tiled
