// based, the quadratic tiled form on tensor cores (for Dk > 16, where the Taylor state of
// 1 + Dk + Dk^2 rows would be too large). Blocks of 64 rows against 64-row tiles of the other
// side, flash-style, mirroring the same-precision emulation of reference/based.cpp:
//   s_ij = scale q_i.k_j,  a_ij = 1 + s + s^2/2  (j <= i, key valid; else 0)      fp32
//   fwd:  den_i = rowsum(a) + 1e-6 (unrounded a),   o_i = rd(a) V / den_i   (or rd(a) V)
//   W = rd(dO / den) (dO without the normalizer),   delta_i = W_i.o_i (0 without)
//   ds_ij = rd((W_i.v_j - delta_i) (1 + s_ij))
//   dq:   dq_i = scale sum_j ds_ij k_j          (own: 64 query rows, loop: key tiles j <= i)
//   dk:   dk_j = scale sum_i ds_ij q_i          (own: 64 key rows, loop: query tiles i >= j)
//   dv:   dv_j = sum_i rd(a_ij) W_i             (own: 64 key rows, loop: query tiles)
// One kernel template, four modes; warp w owns rows 16w..16w+15 of the block. The loop tiles are
// double-buffered through cp.async. W and delta come from a row pre-pass (quad_prep).
#pragma once

#include "linear_family_tiled.cuh"

namespace attnbench::kernels::lin_tiled {

enum class Quad : int { fwd = 0, dq = 1, dk = 2, dv = 3 };

struct QuadParams {
  const void *q, *k, *v, *w;  // w: W (= dO without the normalizer) [B,H,T,Dv]
  const void *dout, *o;       // the pre-pass (quad_prep; at Dk <= 16 inside based_chunk_dq): dO, the forward's o
  void* out;                  // o, dq, dk or dv
  void* w_out;                // the pre-pass: W (written; normalizer only)
  float* den;                 // fwd: written when non-null; the pre-pass: read (normalizer)
  float* delta;               // pre-pass: written; backward: read
  int T, Dk, Dv;
  float scale;
  bool normalize;
};

template <class T_, int kDk_, int kDv_>
struct QuadCfg {
  using T = T_;
  static constexpr int kDk = kDk_, kDv = kDv_;
  static constexpr int kLdK = kDk + 8, kLdV = kDv + 8;
  // own rows: X [64][kLdK] (q or k) and Y [64][kLdV] (W or v); two stages of loop tiles:
  // A [64][kLdK] (k or q), B [64][kLdV] (v or W), and per-row values of the loop rows.
  static constexpr int kXBytes = kC * kLdK * 2, kYBytes = kC * kLdV * 2;
  static constexpr int kStageBytes = kXBytes + kYBytes + 2 * kC * 4;
  static constexpr int kSmemBytes = kXBytes + kYBytes + 2 * kC * 4 + 2 * kStageBytes;
};

// Rows [r0, r0+64) of a [T, D] slice into a tile (zero-filled outside).
template <class T, int kLd>
__device__ __forceinline__ void load_rows(T* dst, const T* src, int r0, int T_, int D) {
  constexpr int kSeg = (kLd - 8) / 8;
  for (int idx = threadIdx.x; idx < kC * kSeg; idx += kThreads) {
    const int r = idx / kSeg, col = (idx % kSeg) * 8, t = r0 + r;
    const bool ok = t < T_ && col < D;
    cp_async16(dst + r * kLd + col, src + (ok ? int64_t(t) * D + col : 0), ok);
  }
}

// grid (blocks of 64 own rows, B*H); 128 threads.
template <class C, Quad kMode>
__global__ void __launch_bounds__(kThreads) based_quad(QuadParams p) {
  using T = typename C::T;
  constexpr bool kOwnQ = kMode == Quad::fwd || kMode == Quad::dq;  // own rows are queries
  constexpr int kNo = kMode == Quad::dq ? C::kDk / 8 : kMode == Quad::dk ? C::kDk / 8 : C::kDv / 8;
  LIN_DYN_SMEM(unsigned char, smem);
  T* X = reinterpret_cast<T*>(smem);
  T* Y = reinterpret_cast<T*>(smem + C::kXBytes);
  float* own_row = reinterpret_cast<float*>(smem + C::kXBytes + C::kYBytes);  // [2][64]: den, delta
  unsigned char* stages = smem + C::kXBytes + C::kYBytes + 2 * kC * 4;
  auto LA = [&](int s) { return reinterpret_cast<T*>(stages + s * C::kStageBytes); };
  auto LB = [&](int s) { return reinterpret_cast<T*>(stages + s * C::kStageBytes + C::kXBytes); };
  auto LR = [&](int s) { return reinterpret_cast<float*>(stages + s * C::kStageBytes + C::kXBytes + C::kYBytes); };

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
  const int bh = blockIdx.y, r0 = blockIdx.x * kC, T_ = p.T, nb = (T_ + kC - 1) / kC;
  const T *q = static_cast<const T*>(p.q) + int64_t(bh) * T_ * p.Dk;
  const T *k = static_cast<const T*>(p.k) + int64_t(bh) * T_ * p.Dk;
  const T *v = static_cast<const T*>(p.v) + int64_t(bh) * T_ * p.Dv;
  const T *w = kMode == Quad::fwd ? nullptr : static_cast<const T*>(p.w) + int64_t(bh) * T_ * p.Dv;
  const float* delta = p.delta ? p.delta + int64_t(bh) * T_ : nullptr;

  // Own tiles: X = q (fwd, dq) or k (dk, dv); Y = W (dq) or v (dk).
  load_rows<T, C::kLdK>(X, kOwnQ ? q : k, r0, T_, p.Dk);
  if (kMode == Quad::dq) load_rows<T, C::kLdV>(Y, w, r0, T_, p.Dv);
  if (kMode == Quad::dk) load_rows<T, C::kLdV>(Y, v, r0, T_, p.Dv);
  if (kMode == Quad::dq) {
    for (int r = threadIdx.x; r < kC; r += kThreads) own_row[kC + r] = r0 + r < T_ ? delta[r0 + r] : 0.0f;
  }
  // The loop: key tiles 0..own (fwd, dq) or query tiles own..last (dk, dv).
  const int first = kOwnQ ? 0 : blockIdx.x, last = kOwnQ ? blockIdx.x : nb - 1;
  auto load_loop = [&](int tb, int s) {
    const int l0 = tb * kC;
    if (kOwnQ) {
      load_rows<T, C::kLdK>(LA(s), k, l0, T_, p.Dk);
      load_rows<T, C::kLdV>(LB(s), v, l0, T_, p.Dv);
    } else {
      load_rows<T, C::kLdK>(LA(s), q, l0, T_, p.Dk);
      load_rows<T, C::kLdV>(LB(s), w, l0, T_, p.Dv);
      if (kMode == Quad::dk) {
        for (int r = threadIdx.x; r < kC; r += kThreads) LR(s)[r] = l0 + r < T_ ? delta[l0 + r] : 0.0f;
      }
    }
  };
  load_loop(first, 0);
  cp_async_commit();

  float acc[kNo][4];
  zero_acc(acc);
  float rsum[2] = {0.0f, 0.0f};
  for (int tb = first; tb <= last; ++tb) {
    const int s = (tb - first) & 1;
    if (tb < last) {
      load_loop(tb + 1, s ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T *A = LA(s), *Bt = LB(s);
    const int l0 = tb * kC;
    // scores of own rows against the loop tile: x = X A^T
    float sc[8][4];
    zero_acc(sc);
#pragma unroll
    for (int kk = 0; kk < C::kDk / 16; ++kk) {
      uint32_t a[4];
      ldsm_a(a, X, C::kLdK, 16 * warp, 16 * kk, lane);
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b[4];
        ldsm_b_nk(b, A, C::kLdK, 16 * np, 16 * kk, lane);
        mma_pair<T>(sc, np, a, b);
      }
    }
    float dp[8][4];  // dq: W_i.v_j; dk: v_j.W_i (own V against the loop's W)
    if constexpr (kMode == Quad::dq || kMode == Quad::dk) {
      zero_acc(dp);
#pragma unroll
      for (int kk = 0; kk < C::kDv / 16; ++kk) {
        uint32_t a[4];
        ldsm_a(a, Y, C::kLdV, 16 * warp, 16 * kk, lane);
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          ldsm_b_nk(b, Bt, C::kLdV, 16 * np, 16 * kk, lane);
          mma_pair<T>(dp, np, a, b);
        }
      }
    }
    // elementwise: weights (fwd, dv) or score gradients (dq, dk), masked to the causal pairs
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int own = r0 + 16 * warp + g + 8 * (e >> 1), other = l0 + 8 * nt + 2 * q4 + (e & 1);
        const int i = kOwnQ ? own : other, j = kOwnQ ? other : own;  // query i, key j
        const bool keep = j <= i && i < T_ && j < T_;
        const float sx = p.scale * sc[nt][e];
        float val;
        if constexpr (kMode == Quad::fwd || kMode == Quad::dv) {
          val = 1.0f + sx + 0.5f * sx * sx;
          if (kMode == Quad::fwd) rsum[e >> 1] += keep ? val : 0.0f;
        } else {
          const float dl = kMode == Quad::dq ? own_row[kC + 16 * warp + g + 8 * (e >> 1)] : LR(s)[8 * nt + 2 * q4 + (e & 1)];
          val = round_as<T>((dp[nt][e] - dl) * (1.0f + sx));
        }
        sc[nt][e] = keep ? val : 0.0f;
      }
    }
    // acc += sc (16 x 64, as A operand) times the loop tile: v (fwd), k (dq), q (dk), W (dv)
    const T* Op = kMode == Quad::fwd ? Bt : kMode == Quad::dq ? A : kMode == Quad::dk ? A : Bt;
    constexpr int kLdOp = kMode == Quad::fwd || kMode == Quad::dv ? C::kLdV : C::kLdK;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      acc_to_a<T>(sc, kk, a);
#pragma unroll
      for (int np = 0; np < kNo / 2; ++np) {
        uint32_t b[4];
        ldsm_b_kn(b, Op, kLdOp, 16 * kk, 16 * np, lane);
        mma_pair<T>(acc, np, a, b);
      }
    }
    __syncthreads();  // the stage is free for the load two tiles ahead
  }

  // ---- epilogue: rows of this warp
  T* out = static_cast<T*>(p.out);
  const int D = kMode == Quad::fwd || kMode == Quad::dv ? p.Dv : p.Dk;
  out += int64_t(bh) * T_ * D;
  const float dns[2] = {quad_sum(rsum[0]) + kBasedEps, quad_sum(rsum[1]) + kBasedEps};  // all lanes shuffle
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = r0 + 16 * warp + g + 8 * i;
    if (row >= T_) continue;
    float mul = 1.0f, div = 1.0f;  // o = acc / den (normalizer); dq, dk = scale acc
    if constexpr (kMode == Quad::fwd) {
      const float dn = dns[i];
      if (p.normalize) div = dn;
      if (p.den && q4 == 0) p.den[int64_t(bh) * T_ + row] = dn;
    } else if constexpr (kMode == Quad::dq || kMode == Quad::dk) {
      mul = p.scale;
    }
#pragma unroll
    for (int nt = 0; nt < kNo; ++nt) {
      const int col = 8 * nt + 2 * q4;
      if (col < D) {
        const float x0 = mul * acc[nt][2 * i] / div, x1 = mul * acc[nt][2 * i + 1] / div;
        *reinterpret_cast<uint32_t*>(out + int64_t(row) * D + col) = pack2<T>(x0, x1);
      }
    }
  }
}

// The backward's row pre-pass, one warp per row: W = rd(dO / den) (written only with the
// normalizer) and delta = W.o (0 without). grid (ceil(T/4), B*H).
template <class T>
__global__ void __launch_bounds__(kThreads) quad_prep(QuadParams p) {
  const int bh = blockIdx.y, row = blockIdx.x * 4 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= p.T) return;
  const int64_t off = (int64_t(bh) * p.T + row) * p.Dv;
  const T *dO = static_cast<const T*>(p.dout) + off, *o = static_cast<const T*>(p.o) + off;
  float acc = 0.0f;
  if (p.normalize) {
    const float dn = p.den[int64_t(bh) * p.T + row];
    T* w = static_cast<T*>(p.w_out) + off;
    for (int c = lane; c < p.Dv; c += 32) {
      const T wc = from_f32<T>(to_f32(dO[c]) / dn);
      w[c] = wc;
      acc += to_f32(wc) * to_f32(o[c]);
    }
  }
  acc += __shfl_xor_sync(0xffffffffu, acc, 16);
  acc += __shfl_xor_sync(0xffffffffu, acc, 8);
  acc += __shfl_xor_sync(0xffffffffu, acc, 4);
  acc += __shfl_xor_sync(0xffffffffu, acc, 2);
  acc += __shfl_xor_sync(0xffffffffu, acc, 1);
  if (lane == 0) p.delta[int64_t(bh) * p.T + row] = acc;
}

}  // namespace attnbench::kernels::lin_tiled
