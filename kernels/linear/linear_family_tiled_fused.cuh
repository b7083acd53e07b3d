// The fused chunkwise forward: one block per (b, h) covering all value columns, for linear
// attention without the normalizer and the scalar gates (retention, lightning, scalar), forward
// and anti-causal ("rev") passes. Notation in linear_family_tiled.cuh; the math is that of
// chunk_fwd (linear_family_tiled_fwd.cuh), with the same roundings:
//   A_rj = (q_r.k_j) exp(b_r - b_j) for j <= r, else 0 (linear: no exp factor), rounded: rd(A)
//   o_r  = scale (exp(b_r) (q_r rd(S)) + sum_j rd(A_rj) v_j)
//   S   <- exp(last) S + rd(phi_k)^T V,   phi_k = k exp(last - b_j)  (k for linear)
//
// Layout. kWarps = Dv / 16 warps; warp w owns value columns n in [16w, 16w + 16) of everything:
// the fp32 state is held transposed, S^T [Dv][Dk], warp w holding rows 16w.. (kDk/8 n-tiles of
// an m16n8 accumulator, 64 registers at Dk = 128). The tensor-core identities that keep it there:
//   * an accumulator tile X (rows a, cols b) is, packed to T, the B operand of B[k = b][n = a]
//     = X^T: so rd(S^T)'s accumulators are directly the B fragments of rd(S) in O = Q rd(S)
//     (acc_to_a's four registers: (0, 2) the n-tile of rows g, (1, 3) that of rows g + 8);
//   * S^T <- exp(last) S^T + V^T phi_k: A = V^T (ldmatrix.trans of the V tile), B = phi_k.
// So the state never goes through shared memory, and q, k, v are read from global memory once.
//
// Pipeline (3 stages of q, k, v; A and phi_k double-buffered; ONE __syncthreads per chunk):
//   prologue: load chunks 0, 1; wait; sync; prepare(0)
//   chunk c:  wait (chunk c+1 landed); sync; load chunk c+2 -> stage (c+2)%3;
//             output(c) (reads stage c%3, A[c%2], phi_k[c%2]); state update(c);
//             prepare(c+1): the warp's own b (cumulative log-gates), its share of the tiles of
//             rd(A) -> A[(c+1)%2] and its rows of rd(phi_k) -> phi_k[(c+1)%2].
// The one barrier orders every hazard: stage (c+2)%3 was last read in chunk c-1; A[(c+1)%2] and
// phi_k[(c+1)%2] were last read in chunk c-1; b is per warp (read before it is rewritten, in
// program order, with __syncwarp).
//
// Work per warp and chunk (Dk = Dv = 128): Q rd(S) 64 mma, rd(A) V 20, V^T phi_k 64, and a share
// of the 20 (16 x 8) lower-triangle tiles of QK^T (2 or 3 tiles, 8 mma each).
#pragma once

#include "linear_family_tiled.cuh"

namespace attnbench::kernels::lin_tiled {

template <class T_, Feat kFeat_, int kDk_, int kDv_>
struct FusedCfg {
  using T = T_;
  static constexpr Feat kFeat = kFeat_;
  static constexpr bool kGated = kFeat == Feat::gate_scalar;
  static constexpr int kDk = kDk_, kDv = kDv_;          // q/k width and value columns in smem
  static constexpr int kWarps = kDv / 16, kThreads = 32 * kWarps;
  static constexpr int kLdQ = kDk + 8, kLdV = kDv + 8, kLdA = kC + 8;
  static constexpr int kKT = kDk / 16;                  // k-steps over Dk
  static constexpr int kFT = kDk / 8;                   // n-tiles of a warp's S^T rows
  static constexpr int kStages = 3;
  static constexpr int kQBytes = kC * kLdQ * 2, kVBytes = kC * kLdV * 2;
  static constexpr int kStageBytes = 2 * kQBytes + kVBytes;
  static constexpr int kABytes = kC * kLdA * 2;
  static constexpr int kPhiBytes = kGated ? kQBytes : 0;
  static constexpr int kBBytes = kGated ? kWarps * kC * 4 : 0;
  static constexpr int kSmemBytes = kStages * kStageBytes + 2 * kABytes + 2 * kPhiBytes + kBBytes;
  static_assert(kDv == 64 || kDv == 128, "4 or 8 warps");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block");
};

template <class C>
struct FusedTile {
  using T = typename C::T;
  unsigned char* base;
  __device__ explicit FusedTile(unsigned char* smem) : base(smem) {}
  __device__ T* Qs(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes); }
  __device__ T* Ks(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes + C::kQBytes); }
  __device__ T* Vs(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes + 2 * C::kQBytes); }
  __device__ T* As(int i) const { return reinterpret_cast<T*>(base + C::kStages * C::kStageBytes + i * C::kABytes); }
  __device__ T* Phi(int i) const {
    return reinterpret_cast<T*>(base + C::kStages * C::kStageBytes + 2 * C::kABytes + i * C::kPhiBytes);
  }
  __device__ float* Bw(int warp) const {
    return reinterpret_cast<float*>(base + C::kStages * C::kStageBytes + 2 * C::kABytes + 2 * C::kPhiBytes) +
           warp * kC;
  }
};

// cp.async of chunk c's q, k, v rows into stage c % 3 (zero-filled outside [0, T) and the widths).
template <class C>
__device__ void fused_load(const EngineParams& p, const FusedTile<C>& t, const Rows& rows, int bh, int c) {
  using T = typename C::T;
  const int s = c % C::kStages;
  const T* q = static_cast<const T*>(p.q) + int64_t(bh) * p.T * p.Dqk;
  const T* k = static_cast<const T*>(p.k) + int64_t(bh) * p.T * p.Dqk;
  const T* v = static_cast<const T*>(p.v) + int64_t(bh) * p.T * p.Dvv;
  constexpr int kSegQ = C::kDk / 8, kSegV = C::kDv / 8;
  for (int idx = threadIdx.x; idx < kC * kSegQ; idx += C::kThreads) {
    const int r = idx / kSegQ, col = (idx % kSegQ) * 8, tm = rows.time(c, r);
    const bool ok = tm < p.T && col < p.Dqk;
    const int64_t off = ok ? int64_t(tm) * p.Dqk + col : 0;
    cp_async16(t.Qs(s) + r * C::kLdQ + col, q + off, ok);
    cp_async16(t.Ks(s) + r * C::kLdQ + col, k + off, ok);
  }
  for (int idx = threadIdx.x; idx < kC * kSegV; idx += C::kThreads) {
    const int r = idx / kSegV, col = (idx % kSegV) * 8, tm = rows.time(c, r);
    const bool ok = tm < p.T && col < p.Dvv;
    cp_async16(t.Vs(s) + r * C::kLdV + col, v + (ok ? int64_t(tm) * p.Dvv + col : 0), ok);
  }
}

// The warp's share of the lower-triangle tiles of A: row block rb (16 rows), key n-tiles
// [lo, hi) of 8 columns (row block rb has n-tiles 0 .. 2rb+1). seg = 0, 1; hi = lo: none.
//   8 warps: 20 tiles as 3,3,2,3,3,2,2,2;   4 warps: 5 each.
template <int kWarps>
__device__ __forceinline__ void a_segment(int warp, int seg, int& rb, int& lo, int& hi) {
  rb = 0, lo = 0, hi = 0;
  if constexpr (kWarps == 8) {
    if (seg != 0) return;
    switch (warp) {
      case 0: rb = 3, lo = 0, hi = 3; break;
      case 1: rb = 3, lo = 3, hi = 6; break;
      case 2: rb = 3, lo = 6, hi = 8; break;
      case 3: rb = 2, lo = 0, hi = 3; break;
      case 4: rb = 2, lo = 3, hi = 6; break;
      case 5: rb = 1, lo = 0, hi = 2; break;
      case 6: rb = 1, lo = 2, hi = 4; break;
      default: rb = 0, lo = 0, hi = 2; break;
    }
  } else {
    switch (warp * 2 + seg) {
      case 0: rb = 3, lo = 0, hi = 5; break;
      case 2: rb = 3, lo = 5, hi = 8; break;
      case 3: rb = 0, lo = 0, hi = 2; break;
      case 4: rb = 2, lo = 0, hi = 5; break;
      case 6: rb = 2, lo = 5, hi = 6; break;
      case 7: rb = 1, lo = 0, hi = 4; break;
      default: break;
    }
  }
}

// prepare(c): b of chunk c into the warp's Bw (gated), the warp's tiles of rd(A) into As(c % 2),
// its rows of rd(phi_k) into Phi(c % 2) (gated). Reads stage c % 3.
template <class C>
__device__ void fused_prepare(const EngineParams& p, const FusedTile<C>& t, const Rows& rows, int bh, int c,
                              float fixed, int warp, int lane) {
  using T = typename C::T;
  const int s = c % C::kStages, g = lane >> 2, q4 = lane & 3;
  const T *Q = t.Qs(s), *K = t.Ks(s);
  T* A = t.As(c & 1);
  float* bw = t.Bw(warp);
  if constexpr (C::kGated) warp_gate_cumsum(p, bw, rows, bh, c, fixed, lane);  // b_r = sum_{s <= r} g_s
  // ---- rd(A) tiles: (16 rows of block rb) x (8 keys of n-tile nt), masked j <= r, gated
#pragma unroll
  for (int seg = 0; seg < 2; ++seg) {
    int rb, lo, hi;
    a_segment<C::kWarps>(warp, seg, rb, lo, hi);
    if (lo >= hi) continue;
    float acc[8][4];
    zero_acc(acc);
#pragma unroll
    for (int kk = 0; kk < C::kKT; ++kk) {
      uint32_t a[4];
      ldsm_a(a, Q, C::kLdQ, 16 * rb, 16 * kk, lane);
#pragma unroll
      for (int np = 0; np < 4; ++np) {  // n-tiles 2np, 2np+1: both (x4), one (x2) or none
        const bool t0 = 2 * np >= lo && 2 * np < hi, t1 = 2 * np + 1 >= lo && 2 * np + 1 < hi;
        if (t0 && t1) {
          uint32_t b[4];
          ldsm_b_nk(b, K, C::kLdQ, 16 * np, 16 * kk, lane);
          mma16816<T>(acc[2 * np], a, b[0], b[1]);
          mma16816<T>(acc[2 * np + 1], a, b[2], b[3]);
        } else if (t0) {
          uint32_t b[2];
          ldsm_b_nk1(b, K, C::kLdQ, 16 * np, 16 * kk, lane);
          mma16816<T>(acc[2 * np], a, b[0], b[1]);
        } else if (t1) {
          uint32_t b[2];
          ldsm_b_nk1(b, K, C::kLdQ, 16 * np + 8, 16 * kk, lane);
          mma16816<T>(acc[2 * np + 1], a, b[0], b[1]);
        }
      }
    }
    const int r0 = 16 * rb + g, r1 = r0 + 8;
    float e0 = 0.0f, e1 = 0.0f;
    if constexpr (C::kGated) e0 = bw[r0], e1 = bw[r1];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      if (nt < lo || nt >= hi) continue;
      const int j = 8 * nt + 2 * q4;
      float x[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e < 2 ? r0 : r1, jj = j + (e & 1);
        float val = acc[nt][e];
        if constexpr (C::kGated) val *= __expf((e < 2 ? e0 : e1) - bw[jj]);
        x[e] = jj <= r ? val : 0.0f;
      }
      *reinterpret_cast<uint32_t*>(A + r0 * C::kLdA + j) = pack2<T>(x[0], x[1]);
      *reinterpret_cast<uint32_t*>(A + r1 * C::kLdA + j) = pack2<T>(x[2], x[3]);
    }
  }
  // ---- rd(phi_k) = rd(k exp(last - b_j)): rows [kC/kWarps * warp, ...), 16-byte pieces
  if constexpr (C::kGated) {
    constexpr int kRows = kC / C::kWarps, kSeg = C::kDk / 8;
    T* P = t.Phi(c & 1);
    const float last = bw[kC - 1];
#pragma unroll
    for (int i = lane; i < kRows * kSeg; i += 32) {
      const int j = kRows * warp + i / kSeg, col = (i % kSeg) * 8;
      const float f = __expf(last - bw[j]);
      uint4 u = *reinterpret_cast<const uint4*>(K + j * C::kLdQ + col);
      u.x = scale_pair<T>(u.x, f, f), u.y = scale_pair<T>(u.y, f, f);
      u.z = scale_pair<T>(u.z, f, f), u.w = scale_pair<T>(u.w, f, f);
      *reinterpret_cast<uint4*>(P + j * C::kLdQ + col) = u;
    }
  }
}

// grid (1, B*H); C::kThreads threads; shared memory C::kSmemBytes.
template <class C>
__global__ void __launch_bounds__(C::kThreads, 1) fused_fwd(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem);
  const FusedTile<C> t(smem);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
  const int bh = blockIdx.y, h = bh % p.H, n0 = 16 * warp;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, p.reverse, false};
  const float fixed = (C::kGated && p.gate == kGateFixed) ? fixed_log_gate(p.lightning, h, p.H) : 0.0f;
  T* o = static_cast<T*>(p.o) + int64_t(bh) * p.T * p.Dvv;
  float st[C::kFT][4];  // S^T rows n0 + g (+8), columns f = 8 ft + 2 q4 (+1)
  zero_acc(st);

  fused_load<C>(p, t, rows, bh, 0);
  if (NC > 1) fused_load<C>(p, t, rows, bh, 1);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  fused_prepare<C>(p, t, rows, bh, 0, fixed, warp, lane);

  for (int c = 0; c < NC; ++c) {
    cp_async_wait<0>();  // chunk c + 1 (issued one chunk ago)
    __syncthreads();
    if (c + 2 < NC) fused_load<C>(p, t, rows, bh, c + 2);
    cp_async_commit();
    const int s = c % C::kStages;
    const T *Q = t.Qs(s), *V = t.Vs(s), *A = t.As(c & 1);
    const T* Kx = C::kGated ? t.Phi(c & 1) : t.Ks(s);
    const float* bw = t.Bw(warp);

    // ---- o (rows 0..63, this warp's 16 columns) = exp(b_r) Q rd(S) + rd(A) V
    float oa[4][2][4];
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) zero_acc(oa[mt]);
#pragma unroll
    for (int kk = 0; kk < C::kKT; ++kk) {
      uint32_t b[4];  // rd(S)[16kk.., n0..]: (b[0], b[2]) columns n0.., (b[1], b[3]) columns n0+8..
      acc_to_a<T>(st, kk, b);
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        uint32_t a[4];
        ldsm_a(a, Q, C::kLdQ, 16 * mt, 16 * kk, lane);
        mma16816<T>(oa[mt][0], a, b[0], b[2]);
        mma16816<T>(oa[mt][1], a, b[1], b[3]);
      }
    }
    if constexpr (C::kGated) {  // the query's decay since the chunk start, fp32
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        const float e0 = __expf(bw[16 * mt + g]), e1 = __expf(bw[16 * mt + g + 8]);
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) oa[mt][nt][0] *= e0, oa[mt][nt][1] *= e0, oa[mt][nt][2] *= e1, oa[mt][nt][3] *= e1;
      }
    }
    causal_av<T>(oa, A, C::kLdA, V, C::kLdV, n0, lane);
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int r = 16 * mt + g + 8 * i;
        if (!rows.valid(c, r)) continue;
        const int64_t row = int64_t(rows.time(c, r)) * p.Dvv;
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          const int col = n0 + 8 * nt + 2 * q4;
          if (col < p.Dvv) {
            *reinterpret_cast<uint32_t*>(o + row + col) =
                pack2<T>(p.scale * oa[mt][nt][2 * i], p.scale * oa[mt][nt][2 * i + 1]);
          }
        }
      }
    }

    // ---- S^T <- exp(last) S^T + V^T rd(phi_k)
    if constexpr (C::kGated) {
      const float d = __expf(bw[kC - 1]);
#pragma unroll
      for (int ft = 0; ft < C::kFT; ++ft) st[ft][0] *= d, st[ft][1] *= d, st[ft][2] *= d, st[ft][3] *= d;
    }
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      ldsm_a_trans(a, V, C::kLdV, n0, 16 * kk, lane);
#pragma unroll
      for (int np = 0; np < C::kFT / 2; ++np) {
        uint32_t b[4];
        ldsm_b_kn(b, Kx, C::kLdQ, 16 * kk, 16 * np, lane);
        mma_pair<T>(st, np, a, b);
      }
    }
    if (c + 1 < NC) fused_prepare<C>(p, t, rows, bh, c + 1, fixed, warp, lane);
  }
}

}  // namespace attnbench::kernels::lin_tiled
