// The chunk-parallel gradient kernel of the gated backward with data-dependent gates (scalar,
// vector, rwkv6), mirroring gated_emul.h. One block per (b, h, chunk); it reads the chunk's
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
// The gate-dependent intra-chunk parts stay fp32 on CUDA cores (their bf16 rounding would swamp
// dg; the tensor cores take the inter-chunk products).
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

template <class C, bool kBonus>
__global__ void __launch_bounds__(kGThreads, 1) gated_bwd_chunk(GateBwdParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem);
  T* Qs = reinterpret_cast<T*>(smem);
  T* Ks = Qs + kC * C::kLdK;
  T* Vs = Ks + kC * C::kLdK;
  T* Os = Vs + kC * C::kLdV;
  T* Ss = Os + kC * C::kLdV;
  T* Ds = Ss + C::kDk * C::kLdV;
  float* bh = reinterpret_cast<float*>(Ds + C::kDk * C::kLdV);  // b of the current half [64][kLdH]
  float* qh = bh + kC * C::kLdH;    // Qf half
  float* kh = qh + kC * C::kLdH;    // Kf half
  float* dG = bh;                   // after the halves: q dq - k dk [64][kLdG]
  float* dAm = kh + kC * C::kLdH;   // [64][kLdA]
  float* dAd = dAm + kC * C::kLdA;  // diag dA [64]
  float* brow = dAd + kC;           // scalar gates: b per row [64]
  float* bon = brow + kC;           // rwkv6: a_i [64]
  float* lastb = bon + kC;          // last_d [kDk]
  float* bnd = lastb + C::kDk;      // boundary [kDk]
  float* fac = bnd + C::kDk;        // the half's M_IJ [6][64], then invD_I [4][64]
  int* exact = reinterpret_cast<int*>(fac + 10 * 64);  // per block I: its diagonal is exact [4]
  int* blocked = exact + 4;                             // the half uses per-block references [1]
  // after the inter-chunk dq: rd(k exp(last - b)) [64][kLdK] and rd(A) [64][72], in S's room if it fits
  T* Kt = C::kKtInS ? Ss : reinterpret_cast<T*>(exact + 8);
  T* Ab = Kt + kC * C::kLdK;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
  const int cc = blockIdx.x, bh_ = blockIdx.y, h = bh_ % p.H, NC = gridDim.x, T_ = p.T, t0 = cc * kC;
  const int n = min(kC, T_ - t0);
  const int64_t qoff = int64_t(bh_) * T_ * p.Dk, voff = int64_t(bh_) * T_ * p.Dv;
  const T *q = static_cast<const T*>(p.q) + qoff, *k = static_cast<const T*>(p.k) + qoff;
  const T *v = static_cast<const T*>(p.v) + voff, *dO = static_cast<const T*>(p.dout) + voff;
  const int64_t soff = (int64_t(bh_) * NC + cc) * C::kDk * p.Dv;
  const T *S = static_cast<const T*>(p.s_states) + soff, *D = static_cast<const T*>(p.d_states) + soff;

  // ---- loads: q, k, v, dO rows of the chunk, rd(S_c) and rd(D_c)
  {
    constexpr int kSegK = C::kDk / 8, kSegV = C::kDv / 8;
    for (int idx = threadIdx.x; idx < kC * kSegK; idx += kGThreads) {
      const int r = idx / kSegK, col = (idx % kSegK) * 8;
      const bool ok = r < n && col < p.Dk;
      const int64_t off = ok ? int64_t(t0 + r) * p.Dk + col : 0;
      cp_async16(Qs + r * C::kLdK + col, q + off, ok);
      cp_async16(Ks + r * C::kLdK + col, k + off, ok);
    }
    for (int idx = threadIdx.x; idx < kC * kSegV; idx += kGThreads) {
      const int r = idx / kSegV, col = (idx % kSegV) * 8;
      const bool ok = r < n && col < p.Dv;
      const int64_t off = ok ? int64_t(t0 + r) * p.Dv + col : 0;
      cp_async16(Vs + r * C::kLdV + col, v + off, ok);
      cp_async16(Os + r * C::kLdV + col, dO + off, ok);
    }
    for (int idx = threadIdx.x; idx < C::kDk * kSegV; idx += kGThreads) {
      const int f = idx / kSegV, col = (idx % kSegV) * 8;
      const bool ok = f < p.Dk && col < p.Dv;
      const int64_t off = ok ? int64_t(f) * p.Dv + col : 0;
      cp_async16(Ss + f * C::kLdV + col, S + off, ok);
      cp_async16(Ds + f * C::kLdV + col, D + off, ok);
    }
    cp_async_commit();
  }
  // scalar gates: b per row (fp32, in order); the boundary term summed over the value tiles
  if (!p.vector_gate && threadIdx.x == 0) {
    float s = 0.0f;
    for (int r = 0; r < kC; ++r) {
      s += r < n ? p.g[int64_t(bh_) * T_ + t0 + r] : 0.0f;
      brow[r] = s;
    }
  }
  for (int d = threadIdx.x; d < C::kDk; d += kGThreads) {
    float s = 0.0f;
    if (d < p.Dk) {
      for (int vt = 0; vt < p.NV; ++vt) s += p.bnd[((int64_t(bh_) * p.NV + vt) * NC + cc) * p.Dk + d];
    }
    bnd[d] = s;
  }
  cp_async_wait<0>();
  __syncthreads();

  // ---- tensor cores: dA (warps 0-3), the inter-chunk parts of dq (warps 0-3) and dk (warps 4-7)
  const bool qwarp = warp < 4;
  const int wr = warp & 3;                      // row block of this warp
  const int rA = 16 * wr + g, rB = rA + 8;      // its two rows
  float gacc[C::kDk / 8][4];                    // dq (query warps) or dk (key warps), gated part
  zero_acc(gacc);
  if (qwarp) {
    float da[8][4];
    zero_acc(da);
#pragma unroll
    for (int kk = 0; kk < C::kDv / 16; ++kk) {
      uint32_t a[4];
      ldsm_a(a, Os, C::kLdV, 16 * wr, 16 * kk, lane);
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b[4];
        ldsm_b_nk(b, Vs, C::kLdV, 16 * np, 16 * kk, lane);
        mma_pair<T>(da, np, a, b);
      }
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e < 2 ? rA : rB, j = 8 * nt + 2 * q4 + (e & 1);
        const float x = p.scale * da[nt][e];
        dAm[r * C::kLdA + j] = j < r ? x : 0.0f;
        if (j == r) dAd[r] = x;
      }
    }
    // dq inter: dO rd(S)^T (the factor scale exp(bq) comes with the halves)
#pragma unroll
    for (int kk = 0; kk < C::kDv / 16; ++kk) {
      uint32_t a[4];
      ldsm_a(a, Os, C::kLdV, 16 * wr, 16 * kk, lane);
#pragma unroll
      for (int np = 0; np < C::kDk / 16; ++np) {
        uint32_t b[4];
        ldsm_b_nk(b, Ss, C::kLdV, 16 * np, 16 * kk, lane);
        mma_pair<T>(gacc, np, a, b);
      }
    }
  } else {  // dk inter: V rd(D)^T (the factor exp(last - b) comes with the halves)
#pragma unroll
    for (int kk = 0; kk < C::kDv / 16; ++kk) {
      uint32_t a[4];
      ldsm_a(a, Vs, C::kLdV, 16 * wr, 16 * kk, lane);
#pragma unroll
      for (int np = 0; np < C::kDk / 16; ++np) {
        uint32_t b[4];
        ldsm_b_nk(b, Ds, C::kLdV, 16 * np, 16 * kk, lane);
        mma_pair<T>(gacc, np, a, b);
      }
    }
  }
  __syncthreads();  // S is free (its room takes Kt and rd(A)); dAm is complete

  // ---- fp32, over Dk in halves of 64 columns
  float aacc[8][4];  // A (query warps)
  zero_acc(aacc);
#pragma unroll
  for (int hf = 0; hf < C::kHalves; ++hf) {
    const int d0 = 64 * hf;
    if (threadIdx.x < 5) exact[threadIdx.x] = 0;
    // b of the half (vector gates: cumulative sums of the columns; scalar: b per row)
    if (p.vector_gate) {
      for (int d = threadIdx.x; d < 64; d += kGThreads) {
        float s = 0.0f;
        const float* gcol = p.g + int64_t(bh_) * T_ * p.Dk + d0 + d;
        for (int r = 0; r < kC; ++r) {
          s += (r < n && d0 + d < p.Dk) ? gcol[int64_t(t0 + r) * p.Dk] : 0.0f;
          bh[r * C::kLdH + d] = s;
        }
      }
    } else {
      for (int idx = threadIdx.x; idx < kC * 64; idx += kGThreads) bh[(idx / 64) * C::kLdH + idx % 64] = brow[idx / 64];
    }
    __syncthreads();
    // per column: e_I, last, M_IJ, invD_I; a span beyond kGbwdSpanMax makes block I's diagonal exact,
    // a half-chunk span (0 - m or m - last) beyond kGbwdSingleMax the half's references per block
    for (int d = threadIdx.x; d < 64; d += kGThreads) {
      float e[4];
#pragma unroll
      for (int I = 0; I < 4; ++I) e[I] = bh[(16 * I + 15) * C::kLdH + d];
      lastb[d0 + d] = e[3];
      const float m = bh[31 * C::kLdH + d];
      if (!(-m <= kGbwdSingleMax && m - e[3] <= kGbwdSingleMax)) *blocked = 1;
#pragma unroll
      for (int I = 1; I < 4; ++I) {
#pragma unroll
        for (int J = 0; J < I; ++J) fac[gbwd_mi(I, J) * 64 + d] = __expf(e[I - 1] - e[J]);
      }
#pragma unroll
      for (int I = 0; I < 4; ++I) {
        const float span = (I == 0 ? 0.0f : e[I - 1]) - e[I];
        fac[(6 + I) * 64 + d] = __expf(span);
        if (!(span <= kGbwdSpanMax)) exact[I] = 1, *blocked = 1;
      }
    }
    __syncthreads();
    // Qf = q qfac, Kf = k kfac (references e_{I-1}, e_I of the row's block, or m); Kt = rd(k exp(last - b))
    const bool single = *blocked == 0;
    for (int idx = threadIdx.x; idx < kC * 64; idx += kGThreads) {
      const int r = idx / 64, d = idx % 64, I = r / 16;
      const float b = bh[r * C::kLdH + d], bq = bq_at<kBonus>(bh, C::kLdH, r, d), m = bh[31 * C::kLdH + d];
      const float eq = single ? m : I == 0 ? 0.0f : bh[(16 * I - 1) * C::kLdH + d];
      const float ek = single ? m : bh[(16 * I + 15) * C::kLdH + d];
      const float kv = to_f32(Ks[r * C::kLdK + d0 + d]);
      qh[r * C::kLdH + d] = to_f32(Qs[r * C::kLdK + d0 + d]) * __expf(bq - eq);
      kh[r * C::kLdH + d] = kv * __expf(ek - b);
      Kt[r * C::kLdK + d0 + d] = from_f32<T>(kv * __expf(lastb[d0 + d] - b));
    }
    __syncthreads();
    const bool ex = exact[wr] != 0;  // this warp's block (query rows I = wr, or key rows J = wr); not single
    float it[8][4], iz[8][4];        // the half's intra-chunk sum; one block's part of it
    zero_acc(it);
    if (qwarp) {
      // A over this half: rows rA, rB (block wr) against keys 8nt + 2q4 (+1) of blocks J <= wr,
      // sum_d Qf M_IJ Kf (M_II = invD_I: the factored diagonal)
      for (int d = 0; d < 64 && single; ++d) {  // one reference: M = 1
        const float x0 = qh[rA * C::kLdH + d], x1 = qh[rB * C::kLdH + d];
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          if (nt > 2 * wr + 1) continue;
          const float k0 = kh[(8 * nt + 2 * q4) * C::kLdH + d], k1 = kh[(8 * nt + 2 * q4 + 1) * C::kLdH + d];
          aacc[nt][0] += x0 * k0, aacc[nt][1] += x0 * k1, aacc[nt][2] += x1 * k0, aacc[nt][3] += x1 * k1;
        }
      }
      for (int d = 0; d < 64 && !single; ++d) {
        const float x0 = qh[rA * C::kLdH + d], x1 = qh[rB * C::kLdH + d];
#pragma unroll
        for (int J = 0; J < 4; ++J) {
          if (J > wr || (J == wr && ex)) continue;
          const float f = fac[(J < wr ? gbwd_mi(wr, J) : 6 + wr) * 64 + d], y0 = x0 * f, y1 = x1 * f;
#pragma unroll
          for (int nt = 2 * J; nt < 2 * J + 2; ++nt) {
            const float k0 = kh[(8 * nt + 2 * q4) * C::kLdH + d], k1 = kh[(8 * nt + 2 * q4 + 1) * C::kLdH + d];
            aacc[nt][0] += y0 * k0, aacc[nt][1] += y0 * k1, aacc[nt][2] += y1 * k0, aacc[nt][3] += y1 * k1;
          }
        }
      }
      if (ex) {  // the exact diagonal block: q_i k_j exp(bq_i - b_j), pairs j <= i (rwkv6 j < i)
        for (int d = 0; d < 64; ++d) {
          const float qa = to_f32(Qs[rA * C::kLdK + d0 + d]), qb = to_f32(Qs[rB * C::kLdK + d0 + d]);
          const float ba = bq_at<kBonus>(bh, C::kLdH, rA, d), bb = bq_at<kBonus>(bh, C::kLdH, rB, d);
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            if ((nt >> 1) != wr) continue;
            const int j0 = 8 * nt + 2 * q4, j1 = j0 + 1;
            const float k0 = to_f32(Ks[j0 * C::kLdK + d0 + d]), k1 = to_f32(Ks[j1 * C::kLdK + d0 + d]);
            const float b0 = bh[j0 * C::kLdH + d], b1 = bh[j1 * C::kLdH + d];
            aacc[nt][0] += qa * k0 * gbwd_pair_exp(kBonus ? j0 < rA : j0 <= rA, ba - b0);
            aacc[nt][1] += qa * k1 * gbwd_pair_exp(kBonus ? j1 < rA : j1 <= rA, ba - b1);
            aacc[nt][2] += qb * k0 * gbwd_pair_exp(kBonus ? j0 < rB : j0 <= rB, bb - b0);
            aacc[nt][3] += qb * k1 * gbwd_pair_exp(kBonus ? j1 < rB : j1 <= rB, bb - b1);
          }
        }
      }
      // dq of the half's columns: qfac sum_J M_IJ (dAm_{I,J} Kf_J) + scale exp(bq) (inter)
      for (int j = 0; j < 16 * wr + 16 && single; ++j) {  // one reference: M = 1
        const float a0 = dAm[rA * C::kLdA + j], a1 = dAm[rB * C::kLdA + j];
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const float2 kv = *reinterpret_cast<const float2*>(kh + j * C::kLdH + 8 * nt + 2 * q4);
          it[nt][0] += a0 * kv.x, it[nt][1] += a0 * kv.y, it[nt][2] += a1 * kv.x, it[nt][3] += a1 * kv.y;
        }
      }
      for (int J = 0; J <= wr && !single; ++J) {
        if (J == wr && ex) break;
        zero_acc(iz);
        for (int j = 16 * J; j < 16 * J + 16; ++j) {
          const float a0 = dAm[rA * C::kLdA + j], a1 = dAm[rB * C::kLdA + j];
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            const float2 kv = *reinterpret_cast<const float2*>(kh + j * C::kLdH + 8 * nt + 2 * q4);
            iz[nt][0] += a0 * kv.x, iz[nt][1] += a0 * kv.y, iz[nt][2] += a1 * kv.x, iz[nt][3] += a1 * kv.y;
          }
        }
        gbwd_fold(it, iz, fac + (J < wr ? gbwd_mi(wr, J) : 6 + wr) * 64, q4);
      }
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e < 2 ? rA : rB, dl = 8 * nt + 2 * q4 + (e & 1);
          const float bq = bq_at<kBonus>(bh, C::kLdH, r, dl);
          const float eq = single ? bh[31 * C::kLdH + dl] : wr == 0 ? 0.0f : bh[(16 * wr - 1) * C::kLdH + dl];
          float& acc = gacc[8 * hf + nt][e];
          acc = p.scale * __expf(bq) * acc + __expf(bq - eq) * it[nt][e];
        }
      }
      if (ex) {  // the exact diagonal block: sum_{j < i} dAm_ij k_jd exp(bq_id - b_jd)
        zero_acc(iz);
        for (int j = 16 * wr; j < 16 * wr + 15; ++j) {
          const float a0 = dAm[rA * C::kLdA + j], a1 = dAm[rB * C::kLdA + j];
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            const int dl = 8 * nt + 2 * q4;
            const float2 kv = unpack2<T>(*reinterpret_cast<const uint32_t*>(Ks + j * C::kLdK + d0 + dl));
            const float2 bj = *reinterpret_cast<const float2*>(bh + j * C::kLdH + dl);
            const float qa0 = bq_at<kBonus>(bh, C::kLdH, rA, dl), qa1 = bq_at<kBonus>(bh, C::kLdH, rA, dl + 1);
            const float qb0 = bq_at<kBonus>(bh, C::kLdH, rB, dl), qb1 = bq_at<kBonus>(bh, C::kLdH, rB, dl + 1);
            iz[nt][0] += a0 * kv.x * gbwd_pair_exp(j < rA, qa0 - bj.x);
            iz[nt][1] += a0 * kv.y * gbwd_pair_exp(j < rA, qa1 - bj.y);
            iz[nt][2] += a1 * kv.x * gbwd_pair_exp(j < rB, qb0 - bj.x);
            iz[nt][3] += a1 * kv.y * gbwd_pair_exp(j < rB, qb1 - bj.y);
          }
        }
        gbwd_add(gacc + 8 * hf, iz);
      }
    } else {
      // dk of the half's columns: kfac sum_I M_IJ (dAm_{I,J}^T Qf_I) + exp(last - b) (inter)
      for (int i = 16 * wr; i < kC && single; ++i) {  // one reference: M = 1
        const float a0 = dAm[i * C::kLdA + rA], a1 = dAm[i * C::kLdA + rB];
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const float2 qv = *reinterpret_cast<const float2*>(qh + i * C::kLdH + 8 * nt + 2 * q4);
          it[nt][0] += a0 * qv.x, it[nt][1] += a0 * qv.y, it[nt][2] += a1 * qv.x, it[nt][3] += a1 * qv.y;
        }
      }
      for (int I = wr; I < 4 && !single; ++I) {
        if (I == wr && ex) continue;
        zero_acc(iz);
        for (int i = 16 * I; i < 16 * I + 16; ++i) {
          const float a0 = dAm[i * C::kLdA + rA], a1 = dAm[i * C::kLdA + rB];
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            const float2 qv = *reinterpret_cast<const float2*>(qh + i * C::kLdH + 8 * nt + 2 * q4);
            iz[nt][0] += a0 * qv.x, iz[nt][1] += a0 * qv.y, iz[nt][2] += a1 * qv.x, iz[nt][3] += a1 * qv.y;
          }
        }
        gbwd_fold(it, iz, fac + (I > wr ? gbwd_mi(I, wr) : 6 + wr) * 64, q4);
      }
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e < 2 ? rA : rB, dl = 8 * nt + 2 * q4 + (e & 1);
          const float b = bh[r * C::kLdH + dl], ek = bh[(single ? 31 : 16 * wr + 15) * C::kLdH + dl];
          float& acc = gacc[8 * hf + nt][e];
          acc = __expf(lastb[d0 + dl] - b) * acc + __expf(ek - b) * it[nt][e];
        }
      }
      if (ex) {  // the exact diagonal block: sum_{i > j} dAm_ij q_id exp(bq_id - b_jd)
        zero_acc(iz);
        for (int i = 16 * wr + 1; i < 16 * wr + 16; ++i) {
          const float a0 = dAm[i * C::kLdA + rA], a1 = dAm[i * C::kLdA + rB];
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            const int dl = 8 * nt + 2 * q4;
            const float2 qv = unpack2<T>(*reinterpret_cast<const uint32_t*>(Qs + i * C::kLdK + d0 + dl));
            const float bq0 = bq_at<kBonus>(bh, C::kLdH, i, dl), bq1 = bq_at<kBonus>(bh, C::kLdH, i, dl + 1);
            const float2 ba = *reinterpret_cast<const float2*>(bh + rA * C::kLdH + dl);
            const float2 bb = *reinterpret_cast<const float2*>(bh + rB * C::kLdH + dl);
            iz[nt][0] += a0 * qv.x * gbwd_pair_exp(rA < i, bq0 - ba.x);
            iz[nt][1] += a0 * qv.y * gbwd_pair_exp(rA < i, bq1 - ba.y);
            iz[nt][2] += a1 * qv.x * gbwd_pair_exp(rB < i, bq0 - bb.x);
            iz[nt][3] += a1 * qv.y * gbwd_pair_exp(rB < i, bq1 - bb.y);
          }
        }
        gbwd_add(gacc + 8 * hf, iz);
      }
    }
    __syncthreads();  // the half tiles and factors are overwritten next
  }

  // ---- rd(A) over the pairs (query warps); the bonus a_i
  if (qwarp) {
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; e += 2) {
        const int r = e < 2 ? rA : rB, j = 8 * nt + 2 * q4;
        const float x0 = (kBonus ? j < r : j <= r) ? aacc[nt][e] : 0.0f;
        const float x1 = (kBonus ? j + 1 < r : j + 1 <= r) ? aacc[nt][e + 1] : 0.0f;
        *reinterpret_cast<uint32_t*>(Ab + r * (kC + 8) + j) = pack2<T>(x0, x1);
      }
    }
  }
  if (kBonus) {
    const float* u = p.u + h * p.Dk;
    for (int r = threadIdx.x; r < kC; r += kGThreads) {
      float s = 0.0f;
      for (int d = 0; d < p.Dk; ++d) s += to_f32(Qs[r * C::kLdK + d]) * to_f32(Ks[r * C::kLdK + d]) * u[d];
      bon[r] = s;
    }
  }
  // ---- dG = q dq - k dk over the gated parts (rwkv6: the q term one row up), then dq, dk out
  if (qwarp) {
#pragma unroll
    for (int nt = 0; nt < C::kDk / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e < 2 ? rA : rB, d = 8 * nt + 2 * q4 + (e & 1);
        const float x = to_f32(Qs[r * C::kLdK + d]) * gacc[nt][e];
        if (!kBonus) dG[r * C::kLdG + d] = x;
        else if (r > 0) dG[(r - 1) * C::kLdG + d] = x;
      }
    }
    if (kBonus && wr == 3) {  // the last row has no q term from a row below it
      for (int d = lane; d < C::kDk; d += 32) dG[(kC - 1) * C::kLdG + d] = 0.0f;
    }
  }
  __syncthreads();
  T* dq = static_cast<T*>(p.dq) + qoff;
  T* dk = static_cast<T*>(p.dk) + qoff;
  const float* u = kBonus ? p.u + h * p.Dk : nullptr;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int r = hr == 0 ? rA : rB;
#pragma unroll
    for (int nt = 0; nt < C::kDk / 8; ++nt) {
      const int d = 8 * nt + 2 * q4;
      float x[2];
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float gd = gacc[nt][2 * hr + e];
        const float uu = kBonus && d + e < p.Dk ? u[d + e] : 1.0f;
        if (qwarp) {
          x[e] = gd + dAd[r] * uu * to_f32(Ks[r * C::kLdK + d + e]);
        } else {
          dG[r * C::kLdG + d + e] -= to_f32(Ks[r * C::kLdK + d + e]) * gd;
          x[e] = gd + dAd[r] * uu * to_f32(Qs[r * C::kLdK + d + e]);
        }
      }
      if (r < n && d < p.Dk) {
        *reinterpret_cast<uint32_t*>((qwarp ? dq : dk) + int64_t(t0 + r) * p.Dk + d) = pack2<T>(x[0], x[1]);
      }
    }
  }
  __syncthreads();

  // ---- dg: chunk-local reverse cumulative sum plus the boundary term
  for (int d = threadIdx.x; d < C::kDk; d += kGThreads) {
    float run = bnd[d];
    for (int r = kC - 1; r >= 0; --r) {
      run += dG[r * C::kLdG + d];
      if (p.vector_gate) {
        if (r < n && d < p.Dk) p.dg[(int64_t(bh_) * T_ + t0 + r) * p.Dk + d] = run;
      } else {
        dG[r * C::kLdG + d] = d < p.Dk ? run : 0.0f;
      }
    }
  }
  if (kBonus) {  // du partial of this chunk
    for (int d = threadIdx.x; d < C::kDk; d += kGThreads) {
      float s = 0.0f;
      for (int r = 0; r < n; ++r) s += dAd[r] * to_f32(Qs[r * C::kLdK + d]) * to_f32(Ks[r * C::kLdK + d]);
      if (d < p.Dk) p.du_part[(int64_t(bh_) * NC + cc) * p.Dk + d] = s;
    }
  }

  // ---- dv: warp w takes rows 16 (w % 4) and value columns [ (w / 4) Dv/2, ... )
  {
    constexpr int kNV = C::kDv / 16;  // n-tiles in half the value columns
    const int c0 = (warp >> 2) * (C::kDv / 2);
    float acc[kNV][4];
    zero_acc(acc);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {  // scale rd(A)^T dO over the query rows i >= the key rows
      if (kk < wr) continue;
      uint32_t a[4];
      ldsm_a_trans(a, Ab, kC + 8, 16 * wr, 16 * kk, lane);
#pragma unroll
      for (int np = 0; np < kNV / 2; ++np) {
        uint32_t b[4];
        ldsm_b_kn(b, Os, C::kLdV, 16 * kk, c0 + 16 * np, lane);
        mma_pair<T>(acc, np, a, b);
      }
    }
#pragma unroll
    for (int nt = 0; nt < kNV; ++nt) acc[nt][0] *= p.scale, acc[nt][1] *= p.scale, acc[nt][2] *= p.scale, acc[nt][3] *= p.scale;
#pragma unroll
    for (int kk = 0; kk < C::kDk / 16; ++kk) {  // + rd(Kt) rd(D)
      uint32_t a[4];
      ldsm_a(a, Kt, C::kLdK, 16 * wr, 16 * kk, lane);
#pragma unroll
      for (int np = 0; np < kNV / 2; ++np) {
        uint32_t b[4];
        ldsm_b_kn(b, Ds, C::kLdV, 16 * kk, c0 + 16 * np, lane);
        mma_pair<T>(acc, np, a, b);
      }
    }
    T* dv = static_cast<T*>(p.dv) + voff;
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int r = hr == 0 ? rA : rB;
      if (r >= n) continue;
#pragma unroll
      for (int nt = 0; nt < kNV; ++nt) {
        const int col = c0 + 8 * nt + 2 * q4;
        float x0 = acc[nt][2 * hr], x1 = acc[nt][2 * hr + 1];
        if (kBonus) {
          x0 += p.scale * bon[r] * to_f32(Os[r * C::kLdV + col]);
          x1 += p.scale * bon[r] * to_f32(Os[r * C::kLdV + col + 1]);
        }
        if (col < p.Dv) *reinterpret_cast<uint32_t*>(dv + int64_t(t0 + r) * p.Dv + col) = pack2<T>(x0, x1);
      }
    }
  }
  if (!p.vector_gate) {  // a scalar gate's gradient: the sum over Dk
    __syncthreads();
    for (int r = threadIdx.x; r < n; r += kGThreads) {
      float s = 0.0f;
      for (int d = 0; d < p.Dk; ++d) s += dG[r * C::kLdG + d];
      p.dg[int64_t(bh_) * T_ + t0 + r] = s;
    }
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
