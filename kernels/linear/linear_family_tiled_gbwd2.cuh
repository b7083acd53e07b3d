// gated_bwd_chunk2: the chunk-parallel gradient kernel of the gated backward (scalar, vector,
// rwkv6) since session 7. linear_family_tiled_gbwd.cuh's header holds the math, the notation and
// the block layout. It replaced session 5's gated_bwd_chunk (same products, same rounding points;
// H200, T = 4096: 9.60 / 10.37 ms against 12.66 / 13.46 for the whole vector / rwkv6 backward,
// scans included; results/h200-s7-20261121/gbwd_call2_*), which was then removed. What differed:
//  - one copy of the code for both halves of Dk (the halves' loop is not unrolled; gbwd_put keeps
//    the per-half accumulators in registers): 190 KB of SASS instead of 251 KB (bf16, 128/128);
//  - the gate columns are read from global memory at once: the key warps (threads 128 + d, one per
//    column d) load their column's 64 gates into registers while the chunk's tiles land, sum them
//    in order (the same b, bit for bit) and store b of both halves (bh, bh2: 17 KB more shared
//    memory at Dk = 128); gated_bwd_chunk walked the rows per half with 64 threads;
//  - two cp.async groups: q, k, v, dO first; rd(S_c), rd(D_c) are waited for after the halves, so
//    the inter-chunk terms dq += scale exp(bq) (dO rd(S)^T) and dk += exp(last - b) (V rd(D)^T)
//    and Kt = rd(k exp(last - b)) come after the intra-chunk sums (gated_bwd_chunk: before);
//  - bf16 (not fp16: exp(+-80) is out of its range): A's off-diagonal blocks of a one-reference half
//    on tensor cores, rd(Qf) rd(Kf)^T, as the fused forward's off-diagonal tiles (A only reaches dv
//    through rd(A)); `ATTNBENCH_LIN_GBWD=fp32a` keeps them in fp32 (A/B);
//  - rwkv6's bonus a_r by 4 threads a row; the dg reverse sum loads 16 rows before its adds;
//  - GateBwdParams::abl skips phases (measurement only, `ATTNBENCH_LIN_GBWD=abl`).
// Session 17 cut its instructions 27% (H200, vector T = 4096: 5.55 -> 4.06 ms, 1.32 -> 0.97 G warp
// instructions; results/h200-s17-20261121/; the simulator's margins unchanged): the Qf/Kf and Kt
// loops on column pairs with their references loaded once (they had recomputed the indices and
// reloaded the references per element); exps by ex2.approx.ftz (vec_exp); tf32_rna as two integer
// instructions; the vector gates' g by cp.async into the b tiles, summed in place while warps 0-3
// form dA (no 64 loads a thread into registers); rwkv6's a_r on column pairs and its du partial on
// the threads the dg sums leave idle. The kernel's code size matters (session 7; session 17's
// 59f86cf, +9% SASS, was 7% slower though it took 128 exps a thread out).
#pragma once

#include <type_traits>

#include "linear_family_tiled_gbwd.cuh"

namespace attnbench::kernels::lin_tiled {

// Shared memory of gated_bwd_chunk2: GbwdCfg's, plus b of the second half (Dk = 128) [64][kLdH]
// fp32, written at the start, after the rows (then Kt, where Kt does not fit in S's room).
template <class C>
constexpr int gbwd2_smem_bytes() {
  return C::kSmemBytes + (C::kHalves == 2 ? C::kHalf : 0);
}

// acc[8 hf + nt] = x[nt] (kAdd: +=), the 8 n-tiles of half hf; hf is a run-time index (the halves'
// loop is not unrolled), so the branch per half keeps acc's indices compile-time (registers).
template <bool kAdd, int N>
__device__ __forceinline__ void gbwd_put(float (&acc)[N][4], int hf, const float (&x)[8][4]) {
#pragma unroll
  for (int h = 0; h < N / 8; ++h) {
    if (h != hf) continue;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[8 * h + nt][e] = kAdd ? acc[8 * h + nt][e] + x[nt][e] : x[nt][e];
    }
  }
}

// Two adjacent fp32 values rounded to a packed pair of T (an mma operand register).
template <class T>
__device__ __forceinline__ uint32_t gbwd_rd2(const float* x) {
  const float2 v = *reinterpret_cast<const float2*>(x);
  return pack2<T>(v.x, v.y);
}

// acc[nt] += A B over one k-step of 8 (m16n8k8) for the 8 n-tiles of a half, in 3xTF32 (fp32-like
// products): A's fragment a0..a3 as fp32 values, B [k][n] fp32 in shared memory at y = B + q4 * ldH
// + g (rows q4, q4 + 4; columns 8nt + g).
template <int kLd>
__device__ __forceinline__ void gbwd_mma_3xtf32(float (&acc)[8][4], float a0, float a1, float a2, float a3,
                                                const float* y) {
  uint32_t ah[4], al[4];
  tf32_split(a0, ah[0], al[0]);
  tf32_split(a1, ah[1], al[1]);
  tf32_split(a2, ah[2], al[2]);
  tf32_split(a3, ah[3], al[3]);
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
    uint32_t b0h, b0l, b1h, b1l;
    tf32_split(y[8 * nt], b0h, b0l);
    tf32_split(y[8 * nt + 4 * kLd], b1h, b1l);
    mma1688_tf32(acc[nt], al, b0h, b1h);  // the small terms first
    mma1688_tf32(acc[nt], ah, b0l, b1l);
    mma1688_tf32(acc[nt], ah, b0h, b1h);
  }
}

template <class C, bool kBonus>
__global__ void __launch_bounds__(kGThreads, 1) gated_bwd_chunk2(GateBwdParams p) {
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
  float* bh2 = reinterpret_cast<float*>(exact + 8);  // b of the second half (Dk = 128)
  static_assert(gbwd2_smem_bytes<C>() <= 227 * 1024, "shared memory of one block (sm_90)");
  // after the inter-chunk dq: rd(k exp(last - b)) [64][kLdK] and rd(A) [64][72], in S's room if it
  // fits, else after bh2
  T* Kt = C::kKtInS ? Ss : reinterpret_cast<T*>(bh2 + (C::kHalves == 2 ? kC * C::kLdH : 0));
  T* Ab = Kt + kC * C::kLdK;

  // bf16: A's off-diagonal blocks of a one-reference half on tensor cores (fp16's range cannot hold
  // the factors exp(+-80)); p.fp32_a (ATTNBENCH_LIN_GBWD=fp32a): all of A on CUDA cores (A/B).
  // tc_i (session 16; bf16, one reference): also A's diagonal block (bf16 operands, as the rest of
  // A), and the intra-chunk sums of dq and dk, dAm Kf and dAm^T Qf, on tensor cores in 3xTF32
  // (bf16 operands, and plain tf32, fail the numerics rule on dg: its base keeps these sums fp32);
  // p.fp32_i (=fp32i): the three in fp32 on CUDA cores (A/B).
  const bool tc_a = std::is_same<T, __nv_bfloat16>::value && !p.fp32_a;
  const bool tc_i = tc_a && !p.fp32_i;
  const int warp = warp_uniform(threadIdx.x >> 5), lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
  const int cc = blockIdx.x, bh_ = blockIdx.y, h = bh_ % p.H, NC = gridDim.x, T_ = p.T, t0 = cc * kC;
  const int n = min(kC, T_ - t0);
  const int64_t qoff = int64_t(bh_) * T_ * p.Dk, voff = int64_t(bh_) * T_ * p.Dv;
  const T *q = static_cast<const T*>(p.q) + qoff, *k = static_cast<const T*>(p.k) + qoff;
  const T *v = static_cast<const T*>(p.v) + voff, *dO = static_cast<const T*>(p.dout) + voff;
  const int64_t soff = (int64_t(bh_) * NC + cc) * C::kDk * p.Dv;
  const T *S = static_cast<const T*>(p.s_states) + soff, *D = static_cast<const T*>(p.d_states) + soff;

  // ---- loads: q, k, v, dO rows of the chunk, then rd(S_c) and rd(D_c)
  if (!(p.abl & 32)) {
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
    if (p.vector_gate) {  // g rows into the halves' b tiles (bh, bh2), summed in place after the wait
      constexpr int kSegG = C::kDk / 4;
      const float* gsrc = p.g + (int64_t(bh_) * T_ + t0) * p.Dk;
      for (int idx = threadIdx.x; idx < kC * kSegG; idx += kGThreads) {
        const int r = idx / kSegG, col = (idx % kSegG) * 4;
        const bool ok = r < n && col < p.Dk;
        cp_async16((col < 64 ? bh + col : bh2 + col - 64) + r * C::kLdH, gsrc + (ok ? int64_t(r) * p.Dk + col : 0), ok);
      }
    }
    cp_async_commit();  // group 1: q, k, v, dO (and g); group 2: the states (needed after the halves)
    for (int idx = threadIdx.x; idx < C::kDk * kSegV; idx += kGThreads) {
      const int f = idx / kSegV, col = (idx % kSegV) * 8;
      const bool ok = f < p.Dk && col < p.Dv;
      const int64_t off = ok ? int64_t(f) * p.Dv + col : 0;
      cp_async16(Ss + f * C::kLdV + col, S + off, ok);
      cp_async16(Ds + f * C::kLdV + col, D + off, ok);
    }
    cp_async_commit();
  }
  // b: thread kGThreads/2 + gd owns gate column gd: vector gates, the running sum of the g column
  // the loads put in its half's b tile (bh, bh2), in place after the wait below, while warps 0-3 form
  // dA; a scalar gate (gd = 0): its 64 gates loaded into registers while the tiles land, summed in
  // order and stored into brow. b_r is the sequential fp32 sum either way.
  const int gd = int(threadIdx.x) - kGThreads / 2;
  if (!p.vector_gate && gd == 0) {
    float bcol[kC];
    const float* gsrc = p.g + int64_t(bh_) * T_ + t0;
#pragma unroll
    for (int r = 0; r < kC; ++r) bcol[r] = r < n ? gsrc[r] : 0.0f;
#pragma unroll
    for (int r = 1; r < kC; ++r) bcol[r] += bcol[r - 1];
#pragma unroll
    for (int r = 0; r < kC; ++r) brow[r] = bcol[r];
  }
  // the boundary term summed over the value tiles
  for (int d = threadIdx.x; d < C::kDk; d += kGThreads) {
    float s = 0.0f;
    if (d < p.Dk) {
      for (int vt = 0; vt < p.NV; ++vt) s += p.bnd[((int64_t(bh_) * p.NV + vt) * NC + cc) * p.Dk + d];
    }
    bnd[d] = s;
  }
  cp_async_wait<1>();
  __syncthreads();
  if (p.vector_gate && gd >= 0 && gd < C::kDk) {
    float* col = gd < 64 ? bh + gd : bh2 + gd - 64;
    float bcol[kC];
#pragma unroll
    for (int r = 0; r < kC; ++r) bcol[r] = col[r * C::kLdH];
#pragma unroll
    for (int r = 1; r < kC; ++r) bcol[r] += bcol[r - 1];
#pragma unroll
    for (int r = 0; r < kC; ++r) col[r * C::kLdH] = bcol[r];
  }

  // ---- tensor cores: dA (warps 0-3)
  const bool qwarp = warp < 4;
  const int wr = warp & 3;                      // row block of this warp
  const int rA = 16 * wr + g, rB = rA + 8;      // its two rows
  float gacc[C::kDk / 8][4];                    // dq (query warps) or dk (key warps), gated part
  zero_acc(gacc);
  if (qwarp && !(p.abl & 64)) {
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
  }
  __syncthreads();  // dAm is complete

  // ---- fp32, over Dk in halves of 64 columns
  float aacc[8][4];  // A (query warps)
  zero_acc(aacc);
#pragma unroll 1
  for (int hf = 0; hf < C::kHalves; ++hf) {  // one copy of the code for both halves
    const int d0 = 64 * hf;
    if (threadIdx.x < 5) exact[threadIdx.x] = 0;
    // b of the half (vector gates: cumulative sums of the columns; scalar: b per row)
    float* const bcur = hf == 0 ? bh : bh2;  // b of the half (vector gates: written at the start)
    if (!p.vector_gate) {
      for (int idx = threadIdx.x; idx < kC * 64; idx += kGThreads) bcur[(idx / 64) * C::kLdH + idx % 64] = brow[idx / 64];
    }
    __syncthreads();
    // per column: e_I, last, M_IJ, invD_I; a span beyond kGbwdSpanMax makes block I's diagonal exact,
    // a half-chunk span (0 - m or m - last) beyond kGbwdSingleMax the half's references per block
    for (int d = threadIdx.x; d < (p.abl & 2 ? 0 : 64); d += kGThreads) {
      float e[4];
#pragma unroll
      for (int I = 0; I < 4; ++I) e[I] = bcur[(16 * I + 15) * C::kLdH + d];
      lastb[d0 + d] = e[3];
      const float m = bcur[31 * C::kLdH + d];
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
    // Qf = q qfac, Kf = k kfac (references e_{I-1}, e_I of the row's block, or m): thread (column
    // pair d, d + 1 of the half; rows 8 part .. + 7 of block I = part / 2), the references loaded
    // once, bq (rwkv6: b of the row above) carried from row to row
    const bool single = *blocked == 0;
    if (!(p.abl & 2)) {
      const int d = 2 * (threadIdx.x & 31), r0 = 8 * (threadIdx.x >> 5), I = r0 >> 4;
      const float* bc = bcur + d;
      auto b2 = [&](int r) { return *reinterpret_cast<const float2*>(bc + r * C::kLdH); };
      const float2 m = b2(31);
      const float2 eq = single ? m : I == 0 ? make_float2(0.0f, 0.0f) : b2(16 * I - 1);
      const float2 ek = single ? m : b2(16 * I + 15);
      float2 bq = kBonus && r0 > 0 ? b2(r0 - 1) : make_float2(0.0f, 0.0f);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int r = r0 + i;
        const float2 b = b2(r);
        if (!kBonus) bq = b;
        const float2 qv = unpack2<T>(*reinterpret_cast<const uint32_t*>(Qs + r * C::kLdK + d0 + d));
        const float2 kv = unpack2<T>(*reinterpret_cast<const uint32_t*>(Ks + r * C::kLdK + d0 + d));
        *reinterpret_cast<float2*>(qh + r * C::kLdH + d) =
            make_float2(qv.x * vec_exp(bq.x - eq.x), qv.y * vec_exp(bq.y - eq.y));
        *reinterpret_cast<float2*>(kh + r * C::kLdH + d) =
            make_float2(kv.x * vec_exp(ek.x - b.x), kv.y * vec_exp(ek.y - b.y));
        bq = b;
      }
    }
    __syncthreads();
    const bool ex = exact[wr] != 0;  // this warp's block (query rows I = wr, or key rows J = wr); not single
    float it[8][4], iz[8][4];        // the half's intra-chunk sum; one block's part of it
    zero_acc(it);
    if (p.abl & 1) {
    } else if (qwarp) {
      // A over this half: rows rA, rB (block wr) against keys 8nt + 2q4 (+1) of blocks J <= wr,
      // sum_d Qf M_IJ Kf (M_II = invD_I: the factored diagonal)
      // bf16, one reference: the blocks J < wr (tc_i: J <= wr) on tensor cores, rd(Qf) rd(Kf)^T
      const int nt_tc = single && tc_a ? 2 * wr + (tc_i ? 2 : 0) : 0;  // tiles nt < nt_tc
      if (nt_tc > 0) {
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          const float* xa = qh + rA * C::kLdH + 16 * kk + 2 * q4;
          const float* xb = qh + rB * C::kLdH + 16 * kk + 2 * q4;
          const uint32_t a[4] = {gbwd_rd2<T>(xa), gbwd_rd2<T>(xb), gbwd_rd2<T>(xa + 8), gbwd_rd2<T>(xb + 8)};
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            if (nt >= nt_tc) continue;
            const float* y = kh + (8 * nt + g) * C::kLdH + 16 * kk + 2 * q4;
            mma16816<T>(aacc[nt], a, gbwd_rd2<T>(y), gbwd_rd2<T>(y + 8));
          }
        }
      }
#pragma unroll 4
      for (int d = 0; d < (single && !tc_i ? 64 : 0); ++d) {  // one reference: M = 1 (tc_a: the diagonal block only)
        const float x0 = qh[rA * C::kLdH + d], x1 = qh[rB * C::kLdH + d];
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          if (nt > 2 * wr + 1 || nt < nt_tc) continue;
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
          const float ba = bq_at<kBonus>(bcur, C::kLdH, rA, d), bb = bq_at<kBonus>(bcur, C::kLdH, rB, d);
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            if ((nt >> 1) != wr) continue;
            const int j0 = 8 * nt + 2 * q4, j1 = j0 + 1;
            const float k0 = to_f32(Ks[j0 * C::kLdK + d0 + d]), k1 = to_f32(Ks[j1 * C::kLdK + d0 + d]);
            const float b0 = bcur[j0 * C::kLdH + d], b1 = bcur[j1 * C::kLdH + d];
            aacc[nt][0] += qa * k0 * gbwd_pair_exp(kBonus ? j0 < rA : j0 <= rA, ba - b0);
            aacc[nt][1] += qa * k1 * gbwd_pair_exp(kBonus ? j1 < rA : j1 <= rA, ba - b1);
            aacc[nt][2] += qb * k0 * gbwd_pair_exp(kBonus ? j0 < rB : j0 <= rB, bb - b0);
            aacc[nt][3] += qb * k1 * gbwd_pair_exp(kBonus ? j1 < rB : j1 <= rB, bb - b1);
          }
        }
      }
      // dq of the half's columns: qfac sum_J M_IJ (dAm_{I,J} Kf_J) (the inter term after the halves)
      if (single && tc_i) {  // one reference: 3xTF32 dAm Kf over the keys j < 16 wr + 16, 8 at a time
        for (int ks = 0; ks < 2 * wr + 2; ++ks) {
          const float* xa = dAm + rA * C::kLdA + 8 * ks + q4;
          const float* xb = dAm + rB * C::kLdA + 8 * ks + q4;
          gbwd_mma_3xtf32<C::kLdH>(it, xa[0], xb[0], xa[4], xb[4], kh + (8 * ks + q4) * C::kLdH + g);  // B: [j][d]
        }
      }
#pragma unroll 4
      for (int j = 0; j < (single && !tc_i ? 16 * wr + 16 : 0); ++j) {  // one reference: M = 1
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
          const float bq = bq_at<kBonus>(bcur, C::kLdH, r, dl);
          const float eq = single ? bcur[31 * C::kLdH + dl] : wr == 0 ? 0.0f : bcur[(16 * wr - 1) * C::kLdH + dl];
          it[nt][e] *= vec_exp(bq - eq);
        }
      }
      gbwd_put<false>(gacc, hf, it);
      if (ex) {  // the exact diagonal block: sum_{j < i} dAm_ij k_jd exp(bq_id - b_jd)
        zero_acc(iz);
        for (int j = 16 * wr; j < 16 * wr + 15; ++j) {
          const float a0 = dAm[rA * C::kLdA + j], a1 = dAm[rB * C::kLdA + j];
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            const int dl = 8 * nt + 2 * q4;
            const float2 kv = unpack2<T>(*reinterpret_cast<const uint32_t*>(Ks + j * C::kLdK + d0 + dl));
            const float2 bj = *reinterpret_cast<const float2*>(bcur + j * C::kLdH + dl);
            const float qa0 = bq_at<kBonus>(bcur, C::kLdH, rA, dl), qa1 = bq_at<kBonus>(bcur, C::kLdH, rA, dl + 1);
            const float qb0 = bq_at<kBonus>(bcur, C::kLdH, rB, dl), qb1 = bq_at<kBonus>(bcur, C::kLdH, rB, dl + 1);
            iz[nt][0] += a0 * kv.x * gbwd_pair_exp(j < rA, qa0 - bj.x);
            iz[nt][1] += a0 * kv.y * gbwd_pair_exp(j < rA, qa1 - bj.y);
            iz[nt][2] += a1 * kv.x * gbwd_pair_exp(j < rB, qb0 - bj.x);
            iz[nt][3] += a1 * kv.y * gbwd_pair_exp(j < rB, qb1 - bj.y);
          }
        }
        gbwd_put<true>(gacc, hf, iz);
      }
    } else {
      // dk of the half's columns: kfac sum_I M_IJ (dAm_{I,J}^T Qf_I) (the inter term after the halves)
      if (single && tc_i) {  // one reference: 3xTF32 dAm^T Qf over the queries i >= 16 wr, 8 at a time
        for (int ks = 2 * wr; ks < 8; ++ks) {
          const float* xa = dAm + (8 * ks + q4) * C::kLdA + rA;  // A: rows = keys, k = queries i
          const float* xb = xa + (rB - rA);
          gbwd_mma_3xtf32<C::kLdH>(it, xa[0], xb[0], xa[4 * C::kLdA], xb[4 * C::kLdA], qh + (8 * ks + q4) * C::kLdH + g);
        }
      }
#pragma unroll 4
      for (int i = 16 * wr; i < (single && !tc_i ? kC : 0); ++i) {  // one reference: M = 1
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
          const float b = bcur[r * C::kLdH + dl], ek = bcur[(single ? 31 : 16 * wr + 15) * C::kLdH + dl];
          it[nt][e] *= vec_exp(ek - b);
        }
      }
      gbwd_put<false>(gacc, hf, it);
      if (ex) {  // the exact diagonal block: sum_{i > j} dAm_ij q_id exp(bq_id - b_jd)
        zero_acc(iz);
        for (int i = 16 * wr + 1; i < 16 * wr + 16; ++i) {
          const float a0 = dAm[i * C::kLdA + rA], a1 = dAm[i * C::kLdA + rB];
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            const int dl = 8 * nt + 2 * q4;
            const float2 qv = unpack2<T>(*reinterpret_cast<const uint32_t*>(Qs + i * C::kLdK + d0 + dl));
            const float bq0 = bq_at<kBonus>(bcur, C::kLdH, i, dl), bq1 = bq_at<kBonus>(bcur, C::kLdH, i, dl + 1);
            const float2 ba = *reinterpret_cast<const float2*>(bcur + rA * C::kLdH + dl);
            const float2 bb = *reinterpret_cast<const float2*>(bcur + rB * C::kLdH + dl);
            iz[nt][0] += a0 * qv.x * gbwd_pair_exp(rA < i, bq0 - ba.x);
            iz[nt][1] += a0 * qv.y * gbwd_pair_exp(rA < i, bq1 - ba.y);
            iz[nt][2] += a1 * qv.x * gbwd_pair_exp(rB < i, bq0 - bb.x);
            iz[nt][3] += a1 * qv.y * gbwd_pair_exp(rB < i, bq1 - bb.y);
          }
        }
        gbwd_put<true>(gacc, hf, iz);
      }
    }
    __syncthreads();  // the half tiles and factors are overwritten next
  }

  // ---- tensor cores, once the states have landed: the inter-chunk terms, added with their factors,
  // dq += scale exp(bq) (dO rd(S)^T) (warps 0-3), dk += exp(last - b) (V rd(D)^T) (warps 4-7), one
  // 16-column block of Dk at a time (A fragments of dO or V held for all k-steps)
  cp_async_wait<0>();
  __syncthreads();
  if (!(p.abl & 4)) {
    uint32_t a[C::kDv / 16][4];
#pragma unroll
    for (int kk = 0; kk < C::kDv / 16; ++kk) ldsm_a(a[kk], qwarp ? Os : Vs, C::kLdV, 16 * wr, 16 * kk, lane);
    const T* X = qwarp ? Ss : Ds;
#pragma unroll
    for (int np = 0; np < C::kDk / 16; ++np) {
      float x[2][4];
      zero_acc(x);
#pragma unroll
      for (int kk = 0; kk < C::kDv / 16; ++kk) {
        uint32_t b[4];
        ldsm_b_nk(b, X, C::kLdV, 16 * np, 16 * kk, lane);
        mma_pair<T>(x, 0, a[kk], b);
      }
      const float* bb = np < 4 ? bh : bh2;  // b of the columns' half
#pragma unroll
      for (int t = 0; t < 2; ++t) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e < 2 ? rA : rB, d = 16 * np + 8 * t + 2 * q4 + (e & 1), dl = d & 63;
          const float f = qwarp ? p.scale * vec_exp(bq_at<kBonus>(bb, C::kLdH, r, dl)) : vec_exp(lastb[d] - bb[r * C::kLdH + dl]);
          gacc[2 * np + t][e] += f * x[t][e];
        }
      }
    }
  }
  __syncthreads();  // S is free: its room takes Kt and rd(A)
  // Kt = rd(k exp(last - b)): thread (column pair d, d + 1; a run of rows)
  if (!(p.abl & 4)) {
    constexpr int kPairs = C::kDk / 2, kRowsP = kC / (kGThreads / kPairs);
    const int d = 2 * (int(threadIdx.x) % kPairs), r0 = (int(threadIdx.x) / kPairs) * kRowsP;
    const float* bb = (d < 64 ? bh : bh2) + (d & 63);
    const float2 lb = *reinterpret_cast<const float2*>(lastb + d);
#pragma unroll
    for (int i = 0; i < kRowsP; ++i) {
      const int r = r0 + i;
      const float2 b = *reinterpret_cast<const float2*>(bb + r * C::kLdH);
      const float2 kv = unpack2<T>(*reinterpret_cast<const uint32_t*>(Ks + r * C::kLdK + d));
      *reinterpret_cast<uint32_t*>(Kt + r * C::kLdK + d) = pack2<T>(kv.x * vec_exp(lb.x - b.x), kv.y * vec_exp(lb.y - b.y));
    }
  }

  // ---- rd(A) over the pairs (query warps); the bonus a_i
  if (qwarp && !(p.abl & 16)) {
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
  if (kBonus) {  // a_r by the 4 threads 4r..4r+3 (columns d = 4i + part), summed over the quad
    static_assert(kGThreads == 4 * kC, "four threads a row");
    // (column pairs d = 8i + 2 part, d + 1: 4-byte shared loads, 8-byte u loads; Dk is even)
    const float* u = p.u + h * p.Dk;
    const int r = threadIdx.x >> 2, part = threadIdx.x & 3;
    float s = 0.0f;
    for (int d = 2 * part; d < p.Dk; d += 8) {
      const float2 qv = unpack2<T>(*reinterpret_cast<const uint32_t*>(Qs + r * C::kLdK + d));
      const float2 kv = unpack2<T>(*reinterpret_cast<const uint32_t*>(Ks + r * C::kLdK + d));
      const float2 uu = *reinterpret_cast<const float2*>(u + d);
      s += qv.x * kv.x * uu.x;
      s += qv.y * kv.y * uu.y;
    }
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    s += __shfl_xor_sync(0xffffffffu, s, 2);
    if (part == 0) bon[r] = s;
  }
  __syncthreads();  // Kt has read b: the dG tile takes bh's room
  // ---- dG = q dq - k dk over the gated parts (rwkv6: the q term one row up), then dq, dk out
  if (qwarp && !(p.abl & 16)) {
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
    if (p.abl & 16) break;
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
  for (int d = threadIdx.x; d < (p.abl & 16 ? 0 : C::kDk); d += kGThreads) {
    float run = bnd[d];
    for (int r0 = kC - 16; r0 >= 0; r0 -= 16) {
      float x[16];  // 16 rows first (the adds below depend on each other, the loads need not)
#pragma unroll
      for (int i = 0; i < 16; ++i) x[i] = dG[(r0 + i) * C::kLdG + d];
#pragma unroll
      for (int i = 15; i >= 0; --i) {
        const int r = r0 + i;
        run += x[i];
        if (p.vector_gate) {
          if (r < n && d < p.Dk) p.dg[(int64_t(bh_) * T_ + t0 + r) * p.Dk + d] = run;
        } else {
          dG[r * C::kLdG + d] = d < p.Dk ? run : 0.0f;
        }
      }
    }
  }
  // du partial of this chunk, by the threads the dg sums leave idle (column d = thread - 128)
  static_assert(C::kDk <= kGThreads / 2, "dg's threads and du's apart");
  if (kBonus && int(threadIdx.x) >= kGThreads / 2 && int(threadIdx.x) < kGThreads / 2 + C::kDk) {
    const int d = int(threadIdx.x) - kGThreads / 2;
    float s = 0.0f;
    for (int r = 0; r < n; ++r) s += dAd[r] * to_f32(Qs[r * C::kLdK + d]) * to_f32(Ks[r * C::kLdK + d]);
    if (d < p.Dk) p.du_part[(int64_t(bh_) * NC + cc) * p.Dk + d] = s;
  }

  // ---- dv: warp w takes rows 16 (w % 4) and value columns [ (w / 4) Dv/2, ... )
  if (!(p.abl & 8)) {
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

}  // namespace attnbench::kernels::lin_tiled
