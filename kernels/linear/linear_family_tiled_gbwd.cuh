// The chunk-parallel gradient kernel of the gated backward with data-dependent gates (scalar,
// vector, rwkv6), mirroring gated_emul.h. One block per (b, h, chunk); it reads the chunk's
// q, k, v, dO, g and the states the scans stored (linear_family_tiled_scan.cuh): rd(S_c), rd(D_c)
// and the boundary partials. Notation in linear_family_tiled.cuh; a scalar gate is a vector gate
// with equal columns. With m_d = b_{31,d} (the chunk's middle) as reference:
//   Qf_id = q_id exp(bq_id - m_d),  Kf_jd = k_jd exp(m_d - b_jd)                 fp32
//   A_ij  = sum_d Qf_id Kf_jd  (pairs j <= i; rwkv6 j < i)                        fp32 -> rd(A)
//   dA_ij = scale do_i.v_j;  dAm = dA on j < i
//   dq_id = exp(bq_id - m_d) (dAm Kf)_id + scale exp(bq_id) (do_i rd(S_c)^T)_d
//   dk_jd = exp(m_d - b_jd) (dAm^T Qf)_jd + exp(last_d - b_jd) (v_j rd(D_c)^T)_d
//   dv_j  = scale (rd(A)^T dO)_j + (rd(k_j exp(last - b_j)) rd(D_c))_j  [+ scale a_j do_j]
//   dg_{t0+s,d} = bnd_d + sum_{r >= s} (q_r dq_r - k_r dk_r)_d  (rwkv6: the q term of row r+1),
//   then the diagonal pair (dA_ii k_i, dA_ii q_i) or rwkv6's bonus (dA_ii u k_i, dA_ii u q_i,
//   du += dA_ii q_i k_i, summed over chunks and batches afterwards).
// The gate-dependent intra-chunk parts stay fp32 on CUDA cores (their bf16 rounding would swamp
// dg; the tensor cores take the inter-chunk products). Exponents are clamped to +-80: a chunk whose
// cumulative log-gate spans more than 80 between its middle and an end loses those terms.
// Block: 8 warps; warps 0-3 own query rows 16w.. (dq, A), warps 4-7 key rows 16(w-4).. (dk);
// all 8 share dv. The fp32 work runs over Dk in halves of 64 columns to bound shared memory.
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
};

template <class T_, int kDk_, int kDv_>
struct GbwdCfg {
  using T = T_;
  static constexpr int kDk = kDk_, kDv = kDv_;
  static constexpr int kLdK = kDk + 8, kLdV = kDv + 8, kLdH = 64 + 4, kLdA = kC + 4, kLdG = kDk + 4;
  static constexpr int kHalves = kDk / 64;
  // bytes: q, k [64][kLdK]; v, dO [64][kLdV]; S, D [kDk][kLdV] (S's room later holds Kt and rd(A));
  // b, Qf, Kf halves [64][kLdH] fp32 (later the dG tile); dAm [64][kLdA] fp32; rows.
  static constexpr int kQ = kC * kLdK * 2, kV = kC * kLdV * 2, kS = kDk * kLdV * 2;
  static constexpr int kHalf = kC * kLdH * 4, kAm = kC * kLdA * 4;
  static constexpr int kRows = (5 * kC + 4 * kDk) * 4;
  static constexpr int kAb = kC * (kC + 8) * 2;
  static constexpr bool kKtInS = kQ + kAb <= kS;  // Kt and rd(A) reuse S's room when it is large enough
  static constexpr int kSmemBytes = 2 * kQ + 2 * kV + 2 * kS + 3 * kHalf + kAm + kRows + (kKtInS ? 0 : kQ + kAb);
  static_assert(kC * kLdG * 4 <= 3 * kHalf, "the dG tile reuses the half tiles");
};

__device__ __forceinline__ float clamped_exp(float x) { return __expf(fminf(fmaxf(x, -80.0f), 80.0f)); }

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
  float* mref = bon + kC;           // m_d [kDk]
  float* lastb = mref + C::kDk;     // last_d [kDk]
  float* bnd = lastb + C::kDk;      // boundary [kDk]
  float* aux = bnd + C::kDk;        // [2 kC + kDk] spare
  // after the inter-chunk dq: rd(k exp(last - b)) [64][kLdK] and rd(A) [64][72], in S's room if it fits
  T* Kt = C::kKtInS ? Ss : reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(aux) + (2 * kC + C::kDk) * 4);
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
    for (int d = threadIdx.x; d < 64; d += kGThreads) {
      mref[d0 + d] = bh[31 * C::kLdH + d];
      lastb[d0 + d] = bh[(kC - 1) * C::kLdH + d];
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < kC * 64; idx += kGThreads) {
      const int r = idx / 64, d = idx % 64;
      const float b = bh[r * C::kLdH + d], bq = bq_at<kBonus>(bh, C::kLdH, r, d), m = mref[d0 + d];
      const float kv = to_f32(Ks[r * C::kLdK + d0 + d]);
      qh[r * C::kLdH + d] = to_f32(Qs[r * C::kLdK + d0 + d]) * clamped_exp(bq - m);
      kh[r * C::kLdH + d] = kv * clamped_exp(m - b);
      Kt[r * C::kLdK + d0 + d] = from_f32<T>(kv * __expf(lastb[d0 + d] - b));
    }
    __syncthreads();
    if (qwarp) {
      // A over this half: rows rA, rB against keys 8nt + 2q4 (+1), nt <= 2 wr + 1
      for (int d = 0; d < 64; ++d) {
        const float x0 = qh[rA * C::kLdH + d], x1 = qh[rB * C::kLdH + d];
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          if (nt > 2 * wr + 1) continue;
          const float k0 = kh[(8 * nt + 2 * q4) * C::kLdH + d], k1 = kh[(8 * nt + 2 * q4 + 1) * C::kLdH + d];
          aacc[nt][0] += x0 * k0, aacc[nt][1] += x0 * k1, aacc[nt][2] += x1 * k0, aacc[nt][3] += x1 * k1;
        }
      }
      // dq of the half's columns: exp(bq - m) (dAm Kf) + scale exp(bq) (inter)
      float it[8][4];
      zero_acc(it);
      for (int j = 0; j < 16 * wr + 16; ++j) {
        const float a0 = dAm[rA * C::kLdA + j], a1 = dAm[rB * C::kLdA + j];
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const float2 kv = *reinterpret_cast<const float2*>(kh + j * C::kLdH + 8 * nt + 2 * q4);
          it[nt][0] += a0 * kv.x, it[nt][1] += a0 * kv.y, it[nt][2] += a1 * kv.x, it[nt][3] += a1 * kv.y;
        }
      }
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e < 2 ? rA : rB, dl = 8 * nt + 2 * q4 + (e & 1);
          const float bq = bq_at<kBonus>(bh, C::kLdH, r, dl);
          float& acc = gacc[8 * hf + nt][e];
          acc = p.scale * __expf(bq) * acc + clamped_exp(bq - mref[d0 + dl]) * it[nt][e];
        }
      }
    } else {
      // dk of the half's columns: exp(m - b) (dAm^T Qf) + exp(last - b) (inter)
      float it[8][4];
      zero_acc(it);
      for (int i = 16 * wr; i < kC; ++i) {
        const float a0 = dAm[i * C::kLdA + rA], a1 = dAm[i * C::kLdA + rB];
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const float2 qv = *reinterpret_cast<const float2*>(qh + i * C::kLdH + 8 * nt + 2 * q4);
          it[nt][0] += a0 * qv.x, it[nt][1] += a0 * qv.y, it[nt][2] += a1 * qv.x, it[nt][3] += a1 * qv.y;
        }
      }
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e < 2 ? rA : rB, dl = 8 * nt + 2 * q4 + (e & 1);
          const float b = bh[r * C::kLdH + dl];
          float& acc = gacc[8 * hf + nt][e];
          acc = __expf(lastb[d0 + dl] - b) * acc + clamped_exp(mref[d0 + dl] - b) * it[nt][e];
        }
      }
    }
    __syncthreads();  // the half tiles are overwritten next
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
  (void)aux;
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
