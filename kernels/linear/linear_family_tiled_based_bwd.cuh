// based, Dk <= 16: the chunkwise backward on the Taylor features (session 18), linear in T where
// the quadratic form (linear_family_tiled_quad.cuh) is O(T^2). Notation as the forward's
// (linear_family_tiled_fused_based.cuh):
//   y = sqrt(scale) x,  phi(x) = [1, y, y_a^2/sqrt2, y_a y_b (a < b), 0 ..]  (F = 160, 153 used),
//   so phi(q_i).phi(k_j) = 1 + s + s^2/2 = a_ij, s = scale q_i.k_j.
// With W = rd(dO / den) and delta_i = W_i.o_i (the row pre-pass, done inside based_chunk_dq since
// session 24: bb_rows; W = dO and delta = 0 without the normalizer), the score gradient is
// ds_ij = (W_i.v_j - delta_i) for j <= i, and
//   dphi(q_i) = sum_{j <= i} ds_ij phi(k_j)        dphi(k_j) = sum_{i >= j} ds_ij phi(q_i)
//   dv_j      = sum_{i >= j} a_ij W_i
// Over earlier chunks (forward state S = sum rd(phi_k)^T V [F][Dv], z = sum rd(phi_k) [F]) and later
// chunks (reverse state R = sum rd(phi_q)^T W, r = sum rd(phi_q) delta):
//   dphi(q_i) = W_i rd(S)^T - delta_i z        dphi(k_j) = v_j rd(R)^T - r        dv_j = rd(phi_k_j) rd(R)
// (fp32 accumulators, T operands) and inside the chunk the quadratic form's terms, at its rounding
// points: dq_i += scale sum_j rd(ds_ij (1 + s_ij)) k_j, dk_j += scale sum_i rd(ds_ij (1 + s_ij)) q_i,
// dv_j += sum_i rd(a_ij) W_i. The features' Jacobian takes dphi back to the inputs:
//   dx_a = sqrt(scale) (dphi_{1+a} + sqrt2 y_a dphi_{17+a} + sum_{b != a} y_b dphi_{pair(a, b)}).
// (On sm_90 the default dq is based_ws_dq, linear_family_tiled_based_ws_dq.cuh: the same math on
// wgmma, warp-specialized; based_chunk_dq under ATTNBENCH_BASED_DQ=mma.)
// Kernels: based_chunk_dq walks a (b, h)'s chunks forward, based_chunk_dkv backward; one block of
// 10 warps per (b, h); warp w owns state rows [16w, 16w + 16) in registers (as the chunk kernels'
// State: an accumulator tile of S is also the B fragment of S^T, so W rd(S)^T needs no shared copy).
// Per chunk (two cp.async stages of q, k, v, W, delta (dq: dO in W's place, 1 / den, and o in one
// buffer); P = dphi and I = the intra-chunk dq or dk stored feature-major, fp32):
//   dq:  B1 | every warp: one 16 x 16 block of the intra-chunk triangle (bb_intra: the ten blocks
//        are independent, their partials land in I_0 .. I_3 by key block); warps 4-7: rd(phi_k);
//        all: dphi(q) of their 16 features -> P; chunk c + 1's loads waited | B2 | the Jacobian
//        (warps 0-7) -> dq; every warp: rows of chunk c + 1's pre-pass (bb_rows: W in place of dO,
//        delta; both also to global memory for dkv); S += rd(phi_k)^T V and z += rd(phi_k) (the
//        sum on the tensor cores, bb_update).
//   dkv: B1 | warps 0-7: rd(phi_k), rd(phi_q); every warp: one block of the triangle; warps 8, 9:
//        dphi(k) -> P | B1' | warps 0-7: dv of (key row block, 64 value columns) with rd(R) from
//        shared memory, then dphi(k) -> P | B2 | the Jacobian (warps 0-7) -> dk;
//        R += rd(phi_q)^T W, r += rd(phi_q) delta, rd(R) -> shared.
// Session 19 (1.51x faster than session 18's form at T = 4096: results/h200-s19-20261122): a warp's
// feature half and Jacobian part are uniform (session 18's per-lane halves and parts diverged, and
// the Jacobian's run-time feature indices were 19-28% of the instructions), the triangle in ten
// pieces (session 18 gave whole row blocks to 2-4 warps while the rest waited at the barrier), the
// state sums z, r as one more mma a k-step, the chunk loads with fixed per-thread offsets.
// Rows past T have zero features (so z, r and the states see only the sequence's rows).
#pragma once

#include <utility>

#include "linear_family_tiled_fused_based.cuh"
#include "linear_family_tiled_quad.cuh"

namespace attnbench::kernels::lin_tiled {

template <class T_, int kDv_>
struct BasedBwdCfg {
  using T = T_;
  static constexpr int kDv = kDv_, kF = kBasedF;
  static constexpr int kWarps = kF / 16, kThreads = 32 * kWarps;  // warp w: state rows [16w, 16w + 16)
  // P and I are feature-major (P^T [F][kLdT], I^T [16][kLdT]): the Jacobian's lanes read 32
  // consecutive rows of one feature, and kLdT = 4 (mod 32) keeps the fragment-order writes
  // (lanes g, q4 -> row g, feature 2 q4) on 32 distinct banks.
  static constexpr int kLdQ = 16 + 8, kLdV = kDv + 8, kLdF = kF + 8, kLdT = kC + 4;
  static constexpr int kQBytes = kC * kLdQ * 2, kVBytes = kC * kLdV * 2;
  static constexpr int kStageBytes = 2 * kQBytes + 2 * kVBytes + 2 * kC * 4;  // q, k, v, W, delta, 1 / den
  static constexpr int kFBytes = kC * kLdF * 2;                           // rd(phi) of a chunk [C][kLdF]
  static constexpr int kRBytes = kF * kLdV * 2;                           // rd(R) [F][kLdV] (dkv); dq: o [C][kLdV]
  static constexpr int kPBytes = kF * kLdT * 4;                           // dphi^T [F][kLdT] fp32
  static constexpr int kIBytes = 4 * 16 * kLdT * 4;                       // intra-chunk dq or dk ^T, 4 pieces, fp32
  static constexpr int kSmemBytes = 2 * kStageBytes + 2 * kFBytes + kRBytes + kPBytes + kIBytes + kF * 4;
  static_assert(kDv == 64 || kDv == 128, "64 or 128 value columns");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block");
};

template <class C>
struct BasedBwdTile {
  using T = typename C::T;
  unsigned char* base;
  __device__ T* Q(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes); }
  __device__ T* K(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes + C::kQBytes); }
  __device__ T* V(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes + 2 * C::kQBytes); }
  __device__ T* W(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes + 2 * C::kQBytes + C::kVBytes); }
  __device__ float* delta(int s) const {
    return reinterpret_cast<float*>(base + s * C::kStageBytes + 2 * C::kQBytes + 2 * C::kVBytes);
  }
  __device__ float* rden(int s) const { return delta(s) + kC; }  // dq: 1 / den (1 without the normalizer)
  __device__ unsigned char* rest() const { return base + 2 * C::kStageBytes; }
  __device__ T* Fk() const { return reinterpret_cast<T*>(rest()); }
  __device__ T* Fq() const { return reinterpret_cast<T*>(rest() + C::kFBytes); }
  __device__ T* R() const { return reinterpret_cast<T*>(rest() + 2 * C::kFBytes); }
  __device__ T* O() const { return R(); }  // dq (which has no R): the forward's o rows of the next chunk
  __device__ float* P() const { return reinterpret_cast<float*>(rest() + 2 * C::kFBytes + C::kRBytes); }
  __device__ float* I(int n = 0) const {
    return reinterpret_cast<float*>(rest() + 2 * C::kFBytes + C::kRBytes + C::kPBytes) + n * 16 * C::kLdT;
  }
  __device__ float* zr() const {
    return reinterpret_cast<float*>(rest() + 2 * C::kFBytes + C::kRBytes + C::kPBytes + C::kIBytes);
  }
};

// Chunk c's rows of q, k (Dk <= 16), v, W (zero-filled past T and past the widths) into stage s by
// cp.async, delta by plain stores (seen after the next block barrier). Threads 0-255 copy v and W
// (a fixed 16-byte column segment, rows 256 / (Dv / 8) apart), threads 256-319 one row of q, k and
// delta each: the per-thread offsets are the same in every chunk. kDq (based_chunk_dq, which makes
// W itself: bb_rows): dO in W's place, the forward's o rows into O(), and 1 / den for delta.
template <class C, bool kDq>
__device__ void bb_load(const BasedBwdTile<C>& t, int s, const QuadParams& p, int64_t bh, int c) {
  using T = typename C::T;
  static_assert(C::kThreads >= 256 + kC, "v/W copiers and one q/k row a thread");
  const int T_ = p.T, r0 = kC * c, valid = min(kC, T_ - r0);
  if (threadIdx.x < 256) {
    constexpr int kSeg = C::kDv / 8, kRows = 256 / kSeg;  // segments a row, rows a pass
    const int Dv = p.Dv, rr = threadIdx.x / kSeg, col = 8 * (threadIdx.x % kSeg);
    const int64_t base = (bh * T_ + r0) * Dv;  // the chunk's first row; offsets from it are 32-bit
    const T *v = static_cast<const T*>(p.v) + base, *w = static_cast<const T*>(kDq ? p.dout : p.w) + base;
    const T* o = static_cast<const T*>(p.o) + base;
    const int off0 = rr * Dv + col;
    T *sv = t.V(s) + rr * C::kLdV + col, *sw = t.W(s) + rr * C::kLdV + col, *so = t.O() + rr * C::kLdV + col;
#pragma unroll
    for (int i = 0; i < kC / kRows; ++i) {
      const bool ok = rr + kRows * i < valid && col < Dv;
      const int off = ok ? off0 + kRows * i * Dv : 0;
      cp_async16(sv + kRows * i * C::kLdV, v + off, ok);
      cp_async16(sw + kRows * i * C::kLdV, w + off, ok);
      if (kDq && p.normalize) cp_async16(so + kRows * i * C::kLdV, o + off, ok);
    }
  } else if (threadIdx.x < 256 + kC) {
    const int Dk = p.Dk, r = threadIdx.x - 256;
    const int64_t base = (bh * T_ + r0) * Dk;
    const T *q = static_cast<const T*>(p.q) + base, *k = static_cast<const T*>(p.k) + base;
#pragma unroll
    for (int col = 0; col < 16; col += 8) {
      const bool ok = r < valid && col < Dk;
      const int64_t off = ok ? int64_t(r) * Dk + col : 0;
      cp_async16(t.Q(s) + r * C::kLdQ + col, q + off, ok);
      cp_async16(t.K(s) + r * C::kLdQ + col, k + off, ok);
    }
    if (kDq) {  // (delta: bb_rows; 0 without the normalizer)
      t.rden(s)[r] = p.normalize && r < valid ? 1.0f / p.den[bh * T_ + r0 + r] : 1.0f;
      if (!p.normalize) t.delta(s)[r] = 0.0f;
    } else {
      t.delta(s)[r] = r < valid && p.normalize ? p.delta[bh * T_ + r0 + r] : 0.0f;
    }
  }
}

// The row pre-pass (quad_prep's math, 1 / den as a product) inside based_chunk_dq, for chunk c in
// stage s (its dO, o and 1 / den landed and visible): W = rd(dO / den) in place of dO and
// delta = W.o (fp32), both also to global memory (rows < T) for based_chunk_dkv. Dv / 8 lanes a row
// (8 columns each, 16-byte loads and stores), kRpi rows a warp step; warps 0-7 (which run the
// Jacobian in the same phase) take kA steps each, warps 8, 9 four each; the row sums' shuffles of
// a warp's steps run side by side at the end. Without the normalizer W = dO and delta = 0
// (bb_load), and nothing is done here.
template <class C>
__device__ __forceinline__ void bb_rows(const BasedBwdTile<C>& t, int s, const QuadParams& p, int64_t bh, int c,
                                        int warp, int lane) {
  using T = typename C::T;
  if (!p.normalize) return;
  constexpr int kLpr = C::kDv / 8, kRpi = 32 / kLpr, kSteps = kC / kRpi;  // lanes a row, rows a step, steps
  constexpr int kB = 4, kA = (kSteps - 2 * kB) / 8;                       // steps of warps 8, 9 and of 0-7
  static_assert(C::kWarps == 10 && 8 * kA + 2 * kB == kSteps && kA <= kB, "steps over the ten warps");
  const int n = warp < 8 ? kA : kB, r0 = kRpi * (warp < 8 ? kA * warp : 8 * kA + kB * (warp - 8)) + lane / kLpr;
  const int valid = min(kC, p.T - kC * c), col = 8 * (lane % kLpr);
  const int64_t grow = bh * p.T + int64_t(kC) * c + r0;  // the global row of step 0
  T* wg = static_cast<T*>(p.w_out) + grow * p.Dv + col;
  float acc[kB];
#pragma unroll
  for (int i = 0; i < kB; ++i) {
    acc[i] = 0.0f;
    if (i >= n) continue;  // (uniform in a warp)
    const int r = r0 + kRpi * i;
    T* wp = t.W(s) + r * C::kLdV + col;
    const uint4 d = *reinterpret_cast<const uint4*>(wp);
    const uint4 ov = *reinterpret_cast<const uint4*>(t.O() + r * C::kLdV + col);
    const float rd = t.rden(s)[r];
    const uint32_t dw[4] = {d.x, d.y, d.z, d.w}, ow[4] = {ov.x, ov.y, ov.z, ov.w};
    uint32_t ww[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 x = unpack2<T>(dw[e]), y = unpack2<T>(ow[e]);
      ww[e] = pack2<T>(x.x * rd, x.y * rd);
      const float2 wr = unpack2<T>(ww[e]);
      acc[i] = fmaf(wr.x, y.x, fmaf(wr.y, y.y, acc[i]));
    }
    const uint4 w = make_uint4(ww[0], ww[1], ww[2], ww[3]);
    *reinterpret_cast<uint4*>(wp) = w;
    if (r < valid && col < p.Dv) *reinterpret_cast<uint4*>(wg + kRpi * i * p.Dv) = w;
  }
#pragma unroll
  for (int m = kLpr / 2; m >= 1; m >>= 1) {
#pragma unroll
    for (int i = 0; i < kB; ++i) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], m);
  }
  if (lane % kLpr == 0) {
#pragma unroll
    for (int i = 0; i < kB; ++i) {
      const int r = r0 + kRpi * i;
      if (i < n) {
        t.delta(s)[r] = acc[i];
        if (r < valid) p.delta[grow + kRpi * i] = acc[i];
      }
    }
  }
}

// rd(phi) of row idx % C of X (half idx / C of its 160 features, so a warp's half is uniform) into F;
// rows >= valid: zeros.
template <class C>
__device__ __forceinline__ void bb_features(const typename C::T* X, typename C::T* F, int valid, float rsc, int idx) {
  using T = typename C::T;
  const int r = idx & (kC - 1), half = idx / kC;
  T* row = F + r * C::kLdF;
  if (r >= valid) {
#pragma unroll
    for (int i = 0; i < kBasedF / 16; ++i) *reinterpret_cast<uint4*>(row + half * (kBasedF / 2) + 8 * i) = make_uint4(0, 0, 0, 0);
    return;
  }
  float y[16];
  load_row16<T>(X + r * C::kLdQ, y, rsc);
  if (half == 0) based_feat_half<0>(y, row, std::make_integer_sequence<int, kBasedF / 16>{});
  else based_feat_half<1>(y, row, std::make_integer_sequence<int, kBasedF / 16>{});
}

// Feature index of the pair (a, b), a < b (based_pair_a / based_pair_b's inverse).
__host__ __device__ constexpr int based_pair_f(int a, int b) { return 33 + a * 15 - a * (a - 1) / 2 + (b - a - 1); }

// The Jacobian of the features for row r of X (q or k; rows of kLdQ), outputs a = 4 kPart .. + 3
// (compile-time feature indices: P^T and the kPieces pieces of I^T, rows of kLdT, are read at fixed
// offsets from column r):
//   dx_a = sqrt(scale) (dphi_{1+a} + sqrt2 y_a dphi_{17+a} + sum_{b != a} y_b dphi_{pair(a, b)}) + sum_n I_n[r][a],
// rounded to T and stored to out (the row in global memory). based_chunk_dq / dkv (four pieces)
// and based_ws_dq (two) share it.
template <class T, int kLdQ, int kLdT, int kPieces, int kPart>
__device__ __forceinline__ void based_jacobian_part(const float* P, const float* I, const T* X, int r, float rsc,
                                                    T* out) {
  static_assert(kPieces == 2 || kPieces == 4, "two or four pieces of I");
  constexpr int L = kLdT;
  float y[16];
  load_row16<T>(X + r * kLdQ, y, rsc);
  const float *pc = P + r, *ic = I + r;  // I_n at ic + n 16 L
  float res[4];
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int a = 4 * kPart + u;
    float d = pc[(1 + a) * L] + 1.41421356237309515f * y[a] * pc[(17 + a) * L];
#pragma unroll
    for (int b = 0; b < 16; ++b) {
      if (b != a) d += y[b] * pc[(b < a ? based_pair_f(b, a) : based_pair_f(a, b)) * L];
    }
    const float in = kPieces == 4 ? (ic[a * L] + ic[(16 + a) * L]) + (ic[(32 + a) * L] + ic[(48 + a) * L])
                                  : ic[a * L] + ic[(16 + a) * L];
    res[u] = rsc * d + in;
  }
  uint2 o2;
  o2.x = pack2<T>(res[0], res[1]), o2.y = pack2<T>(res[2], res[3]);
  *reinterpret_cast<uint2*>(out + 4 * kPart) = o2;
}
template <class C, int kPart>
__device__ __forceinline__ void bb_jacobian_part(const BasedBwdTile<C>& t, const typename C::T* X, int r, float rsc,
                                                 typename C::T* out) {
  based_jacobian_part<typename C::T, C::kLdQ, C::kLdT, 4, kPart>(t.P(), t.I(), X, r, rsc, out);
}

// The Jacobian's threads: warps 0-7, part = warp & 3 (uniform in a warp), row 32 (warp >> 2) + lane;
// out: the row in global memory (null past T); parts past Dk store nothing.
template <class C>
__device__ __forceinline__ void bb_jacobian(const BasedBwdTile<C>& t, const typename C::T* X, int r, int part,
                                            float rsc, typename C::T* out, int Dk) {
  if (out == nullptr || 4 * part >= Dk) return;
  switch (part) {
    case 0: bb_jacobian_part<C, 0>(t, X, r, rsc, out); break;
    case 1: bb_jacobian_part<C, 1>(t, X, r, rsc, out); break;
    case 2: bb_jacobian_part<C, 2>(t, X, r, rsc, out); break;
    default: bb_jacobian_part<C, 3>(t, X, r, rsc, out); break;
  }
}

// P[:, 16w..16w+16) = X rd(St)^T - rowf_i zr_f: X [C][kLdV] (W or v), St the warp's state rows in
// registers (their accumulator tiles are the B fragments of St^T), rowf per row (delta, or null: 1).
template <class C>
__device__ __forceinline__ void bb_dphi(const BasedBwdTile<C>& t, const typename C::T* X, const float (&st)[C::kDv / 8][4],
                                        const float* rowf, int warp, int lane) {
  using T = typename C::T;
  const int g = lane >> 2, q4 = lane & 3;
  float acc[4][2][4];
#pragma unroll
  for (int mt = 0; mt < 4; ++mt) zero_acc(acc[mt]);
#pragma unroll
  for (int kk = 0; kk < C::kDv / 16; ++kk) {
    const uint32_t b00 = pack2<T>(st[2 * kk][0], st[2 * kk][1]), b01 = pack2<T>(st[2 * kk + 1][0], st[2 * kk + 1][1]);
    const uint32_t b10 = pack2<T>(st[2 * kk][2], st[2 * kk][3]), b11 = pack2<T>(st[2 * kk + 1][2], st[2 * kk + 1][3]);
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
      uint32_t a[4];
      ldsm_a(a, X, C::kLdV, 16 * mt, 16 * kk, lane);
      mma16816<T>(acc[mt][0], a, b00, b01);
      mma16816<T>(acc[mt][1], a, b10, b11);
    }
  }
  const float* zr = t.zr();
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const int f = 16 * warp + 8 * nt + 2 * q4;
    const float z0 = zr[f], z1 = zr[f + 1];
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int i = 16 * mt + g + 8 * h;
        const float m = rowf ? rowf[i] : 1.0f;
        t.P()[f * C::kLdT + i] = acc[mt][nt][2 * h] - m * z0;
        t.P()[(f + 1) * C::kLdT + i] = acc[mt][nt][2 * h + 1] - m * z1;
      }
    }
  }
}

// St += rd(Fx)^T Y (the warp's state rows; Fx [C][kLdF], Y [C][kLdV]) and zr_f += sum_r Fx[r][f] w_r
// (w = rowf, or 1) for the warp's 16 features; zr is this warp's own. The sums run on the tensor
// cores with the A fragments of the state's update: B's column 0 holds rd(w), column 1 the rest
// rd(w - rd(w)) (products of T values are exact in fp32, so only the weights' split is rounded:
// |w - hi - lo| <= 2^-16 |w| in bf16).
template <class C>
__device__ __forceinline__ void bb_update(const BasedBwdTile<C>& t, const typename C::T* Fx, const typename C::T* Y,
                                          float (&st)[C::kDv / 8][4], const float* rowf, int warp, int lane) {
  using T = typename C::T;
  const int g = lane >> 2, q4 = lane & 3;
  float zs[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
  for (int kk = 0; kk < kC / 16; ++kk) {
    uint32_t a[4];
    ldsm_a_trans(a, Fx, C::kLdF, 16 * warp, 16 * kk, lane);
#pragma unroll
    for (int np = 0; np < C::kDv / 16; ++np) {
      uint32_t b[4];
      ldsm_b_kn(b, Y, C::kLdV, 16 * kk, 16 * np, lane);
      mma_pair<T>(st, np, a, b);
    }
    uint32_t wb[2] = {0u, 0u};  // B rows 16 kk + 2 q4 (+1), + 8 (+1); column g
    if (g < 2) {
      float w[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = 16 * kk + 2 * q4 + (e & 1) + 8 * (e >> 1);
        const float x = rowf ? rowf[r] : 1.0f, hi = round_as<T>(x);
        w[e] = g == 0 ? hi : x - hi;
      }
      wb[0] = pack2<T>(w[0], w[1]), wb[1] = pack2<T>(w[2], w[3]);
    }
    mma16816<T>(zs, a, wb[0], wb[1]);
  }
  if (q4 == 0) {  // columns 0 (hi) and 1 (lo) of features 16 warp + g, + 8
    t.zr()[16 * warp + g] += zs[0] + zs[1];
    t.zr()[16 * warp + g + 8] += zs[2] + zs[3];
  }
  __syncwarp();
}

// One piece of the intra-chunk part of dq (kKeys false: own rows i = query row block rb, other
// rows = key block np <= rb) or of dk (kKeys true: own rows j = key block rb, other rows = query
// block np >= rb), as the quadratic form with j <= i:
//   I_np[own] = scale sum_{other in np} rd((W_i.v_j - delta_i) (1 + s_ij)) x_other    (fp32, I_np^T)
// X, Y: own and other q/k rows [C][kLdQ]; A, B: own and other v/W rows [C][kLdV] (dq: A = W, B = V;
// dk: A = V, B = W); dl: delta of the chunk's rows. The ten pieces of a triangle are independent
// (one a warp: warp w's piece is the w-th block of the triangle in row order); the Jacobian sums
// I_0 .. I_3 (the pieces never written stay zero).
template <class C, bool kKeys>
__device__ __forceinline__ void bb_intra(const BasedBwdTile<C>& t, const typename C::T* X, const typename C::T* Y,
                                         const typename C::T* A, const typename C::T* B, const float* dl, int warp,
                                         int valid, float scale, int lane) {
  using T = typename C::T;
  // dq: (0,0) (1,0) (1,1) (2,0) .. (3,3); dk: (0,0) (0,1) .. (0,3) (1,1) .. (3,3)
  const int rb = kKeys ? (warp >= 4) + (warp >= 7) + (warp >= 9) : (warp >= 1) + (warp >= 3) + (warp >= 6);
  const int np = kKeys ? rb + warp - (rb * (9 - rb)) / 2 : warp - rb * (rb + 1) / 2;
  const int g = lane >> 2, q4 = lane & 3;
  float sc[2][4], dp[2][4];
  zero_acc(sc);
  zero_acc(dp);
  {
    uint32_t a[4], b[4];
    ldsm_a(a, X, C::kLdQ, 16 * rb, 0, lane);
    ldsm_b_nk(b, Y, C::kLdQ, 16 * np, 0, lane);
    mma_pair<T>(sc, 0, a, b);
  }
#pragma unroll 2
  for (int kk = 0; kk < C::kDv / 16; ++kk) {
    uint32_t a[4], b[4];
    ldsm_a(a, A, C::kLdV, 16 * rb, 16 * kk, lane);
    ldsm_b_nk(b, B, C::kLdV, 16 * np, 16 * kk, lane);
    mma_pair<T>(dp, 0, a, b);
  }
  const bool diag = rb == np;  // the diagonal block: j <= i per element
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int own = 16 * rb + g + 8 * (e >> 1), other = 16 * np + 8 * nt + 2 * q4 + (e & 1);
      const int i = kKeys ? other : own, j = kKeys ? own : other;  // query i, key j
      const float sx = scale * sc[nt][e];
      sc[nt][e] = (!diag || j <= i) && i < valid ? round_as<T>((dp[nt][e] - dl[i]) * (1.0f + sx)) : 0.0f;
    }
  }
  float acc[2][4];
  zero_acc(acc);
  {
    uint32_t a[4], b[4];
    acc_to_a<T>(sc, 0, a);
    ldsm_b_kn(b, Y, C::kLdQ, 16 * np, 0, lane);
    mma_pair<T>(acc, 0, a, b);
  }
  float* I = t.I(np);
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) I[(8 * nt + 2 * q4 + (e & 1)) * C::kLdT + 16 * rb + g + 8 * (e >> 1)] = scale * acc[nt][e];
  }
}

// dv of key row block kJb, value columns [v0, v0 + 64): rd(phi_k) rd(R) (later chunks; rd(R) from
// shared memory) + sum_{i >= j} rd(a_ij) W_i (this chunk), rounded to T and stored (rows < valid).
template <class C, int kJb>
__device__ __forceinline__ void bb_dv_rb(const BasedBwdTile<C>& t, const typename C::T* K, const typename C::T* Q,
                                         const typename C::T* W, int v0, int valid, float scale, typename C::T* dv,
                                         int Dv, int lane) {
  using T = typename C::T;
  const int g = lane >> 2, q4 = lane & 3;
  float acc[8][4];
  zero_acc(acc);
#pragma unroll 2
  for (int kk = 0; kk < kBasedF / 16; ++kk) {
    uint32_t a[4];
    ldsm_a(a, t.Fk(), C::kLdF, 16 * kJb, 16 * kk, lane);
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      ldsm_b_kn(b, t.R(), C::kLdV, 16 * kk, v0 + 16 * np, lane);
      mma_pair<T>(acc, np, a, b);
    }
  }
  float sc[8][4];  // a_ij^T: key rows j, query columns i >= j
  based_qk_tiles<T, C::kLdQ>(sc, K, Q, kJb, 2 * kJb, 8, lane);
#pragma unroll
  for (int nt = 2 * kJb; nt < 8; ++nt) {
    const bool diag = nt >> 1 == kJb;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int j = 16 * kJb + g + 8 * (e >> 1), i = 8 * nt + 2 * q4 + (e & 1);
      const float sx = scale * sc[nt][e];
      sc[nt][e] = (!diag || i >= j) && i < valid ? 1.0f + sx + 0.5f * sx * sx : 0.0f;
    }
  }
#pragma unroll
  for (int kk = kJb; kk < 4; ++kk) {
    uint32_t a[4];
    acc_to_a<T>(sc, kk, a);
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      ldsm_b_kn(b, W, C::kLdV, 16 * kk, v0 + 16 * np, lane);
      mma_pair<T>(acc, np, a, b);
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int j = 16 * kJb + g + 8 * h;
    if (j >= valid) continue;
    T* row = dv + int64_t(j) * Dv;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      const int col = v0 + 8 * nt + 2 * q4;
      if (col < Dv) *reinterpret_cast<uint32_t*>(row + col) = pack2<T>(acc[nt][2 * h], acc[nt][2 * h + 1]);
    }
  }
}

// The kernels' start: the warp's 16 entries of zr and the four I partials zeroed (the partials no
// piece writes stay zero; seen by every warp after the first B1).
template <class C>
__device__ __forceinline__ void bb_zero_sums(const BasedBwdTile<C>& t, int warp, int lane) {
  if (lane < 16) t.zr()[16 * warp + lane] = 0.0f;
  for (int i = threadIdx.x; i < 4 * 16 * C::kLdT; i += C::kThreads) t.I()[i] = 0.0f;
  __syncwarp();
}

// grid (1, B*H), C::kThreads threads: dq (and W, delta for based_chunk_dkv: bb_rows).
template <class C>
__global__ void __launch_bounds__(C::kThreads, 1) based_chunk_dq(QuadParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem);
  const BasedBwdTile<C> t{smem};
  const int warp = warp_uniform(threadIdx.x >> 5), lane = threadIdx.x & 31;  // (roles by warp: uniform branches)
  const int64_t bh = blockIdx.y;
  const int T_ = p.T, NC = (T_ + kC - 1) / kC;
  const float rsc = sqrtf(p.scale);
  T* dq = static_cast<T*>(p.out) + bh * T_ * p.Dk;
  float st[C::kDv / 8][4];  // S rows 16 warp + g (+8), value columns 8 nt + 2 q4 (+1)
  zero_acc(st);
  bb_zero_sums<C>(t, warp, lane);
  bb_load<C, true>(t, 0, p, bh, 0);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  bb_rows<C>(t, 0, p, bh, 0, warp, lane);  // chunk 0's W and delta
  for (int c = 0; c < NC; ++c) {
    const int s = c & 1, valid = min(kC, T_ - kC * c);
    __syncthreads();  // B1: chunk c's W, delta complete; chunk c - 1 is done with stage s ^ 1, O, Fk, P and I
    if (c + 1 < NC) {
      bb_load<C, true>(t, s ^ 1, p, bh, c + 1);
      cp_async_commit();
    }
    const T *Q = t.Q(s), *K = t.K(s), *V = t.V(s), *W = t.W(s);
    const float* dl = t.delta(s);
    bb_intra<C, false>(t, Q, K, W, V, dl, warp, valid, p.scale, lane);  // one piece a warp
    if (warp >= 4 && warp < 8) bb_features<C>(K, t.Fk(), valid, rsc, threadIdx.x - 128);
    bb_dphi<C>(t, W, st, dl, warp, lane);  // dphi(q) = W rd(S)^T - delta z (earlier chunks)
    cp_async_wait<0>();                    // chunk c + 1 (issued at B1)
    __syncthreads();                       // B2: features, P and I complete; chunk c + 1 landed
    if (warp < 8) {
      const int r = 32 * (warp >> 2) + lane;
      bb_jacobian<C>(t, Q, r, warp & 3, rsc, r < valid ? dq + (int64_t(kC) * c + r) * p.Dk : nullptr, p.Dk);
    }
    if (c + 1 < NC) bb_rows<C>(t, s ^ 1, p, bh, c + 1, warp, lane);  // chunk c + 1's W and delta
    bb_update<C>(t, t.Fk(), V, st, nullptr, warp, lane);            // S += rd(phi_k)^T V, z += rd(phi_k)
  }
}

// grid (1, B*H), C::kThreads threads: dk and dv (chunks in reverse order).
template <class C>
__global__ void __launch_bounds__(C::kThreads, 1) based_chunk_dkv(QuadParams p, void* dk_out, void* dv_out) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem);
  const BasedBwdTile<C> t{smem};
  const int warp = warp_uniform(threadIdx.x >> 5), lane = threadIdx.x & 31;  // (roles by warp: uniform branches)
  const int64_t bh = blockIdx.y;
  const int T_ = p.T, NC = (T_ + kC - 1) / kC;
  const float rsc = sqrtf(p.scale);
  T* dk = static_cast<T*>(dk_out) + bh * T_ * p.Dk;
  T* dv = static_cast<T*>(dv_out) + bh * T_ * p.Dv;
  float st[C::kDv / 8][4];  // R rows 16 warp + g (+8)
  zero_acc(st);
  store_acc_smem<T>(t.R(), C::kLdV, 16 * warp, 0, st, lane);
  bb_zero_sums<C>(t, warp, lane);
  bb_load<C, false>(t, 0, p, bh, NC - 1);
  cp_async_commit();
  for (int it = 0; it < NC; ++it) {
    const int c = NC - 1 - it, s = it & 1, valid = min(kC, T_ - kC * c);
    cp_async_wait<0>();
    __syncthreads();  // B1: chunk c landed; chunk c + 1 is done with stage s ^ 1, Fk, Fq, P and I
    if (c > 0) {
      bb_load<C, false>(t, s ^ 1, p, bh, c - 1);
      cp_async_commit();
    }
    const T *Q = t.Q(s), *K = t.K(s), *V = t.V(s), *W = t.W(s);
    const float* dl = t.delta(s);
    if (warp < 8) {
      const int idx = threadIdx.x;  // (k, q) x 64 rows x 2 halves
      if (idx < 2 * kC) bb_features<C>(K, t.Fk(), valid, rsc, idx);
      else bb_features<C>(Q, t.Fq(), valid, rsc, idx - 2 * kC);
    }
    bb_intra<C, true>(t, K, Q, V, W, dl, warp, valid, p.scale, lane);  // one piece a warp
    if (warp >= 8) bb_dphi<C>(t, V, st, nullptr, warp, lane);        // dphi(k) = v rd(R)^T - r (later chunks)
    __syncthreads();                                                 // B1': features complete
    if (warp < 4 * (C::kDv / 64)) {  // dv of key row block warp & 3, value columns [v0, v0 + 64)
      const int v0 = 64 * (warp >> 2);
      T* dvc = dv + int64_t(kC) * c * p.Dv;
      switch (warp & 3) {
        case 0: bb_dv_rb<C, 0>(t, K, Q, W, v0, valid, p.scale, dvc, p.Dv, lane); break;
        case 1: bb_dv_rb<C, 1>(t, K, Q, W, v0, valid, p.scale, dvc, p.Dv, lane); break;
        case 2: bb_dv_rb<C, 2>(t, K, Q, W, v0, valid, p.scale, dvc, p.Dv, lane); break;
        default: bb_dv_rb<C, 3>(t, K, Q, W, v0, valid, p.scale, dvc, p.Dv, lane); break;
      }
    }
    if (warp < 8) bb_dphi<C>(t, V, st, nullptr, warp, lane);
    __syncthreads();  // B2: P, I complete; every read of rd(R) done
    if (warp < 8) {
      const int r = 32 * (warp >> 2) + lane;
      bb_jacobian<C>(t, K, r, warp & 3, rsc, r < valid ? dk + (int64_t(kC) * c + r) * p.Dk : nullptr, p.Dk);
    }
    bb_update<C>(t, t.Fq(), W, st, dl, warp, lane);  // R += rd(phi_q)^T W, r += rd(phi_q) delta
    store_acc_smem<T>(t.R(), C::kLdV, 16 * warp, 0, st, lane);
  }
}

}  // namespace attnbench::kernels::lin_tiled
