// Score policies of the tiled softmax-family kernels (softmax, piecewise, hyperbolic), and the
// geometry they share: which (query, key) pairs are visible, and in which order a tile row or a
// tile column visits its blocks.
//
// Notation as DESIGN.md: query row i, key row j, off = Tk - Tq, dist = i + off - j; causal: j
// visible iff j <= i + off (bottom-right aligned). A policy turns the fp32 accumulator of a score
// GEMM, acc = x_i . y_j, into the log2-domain score t = s * log2(e), so that
// exp(s - L) = exp2(t - L log2 e), and turns dS = dL/ds into the operand of the gradient GEMMs:
//   softmax:    acc = q.k,   s = scale acc;                       dS -> dS,  dq = scale dS K
//   piecewise:  two slots, slot 0 = (q1, k1) on near pairs (dist < w), slot 1 = (q2, k2) on far
//               pairs (dist >= w); s = scale acc of the pair's slot; dq_slot = scale dS_slot K_slot
//   hyperbolic: acc = q.k, z = -c (acc - q0 k0) (the Lorentz product as a GEMM plus a rank-one
//               term), s = -(beta/sqrt c) acosh(max(z, 1 + 1e-6));
//               dS -> dZ = dS ds/dz, ds/dz = -(beta/sqrt c) / sqrt(z^2 - 1) (0 where clamped),
//               dq = -c (dZ K - diag(q/q0) dZ k0),  dk = -c (dZ^T Q - diag(k/k0) dZ^T q0)
// with q0 = sqrt(1/c + |q|^2), k0 likewise (fp32, precomputed per row, see softmax_tiled_bwd.cuh).
//
// Slots: a policy has 1 or 2 (Q, K) operand pairs. A kernel visits the blocks of one slot after
// the other (a "phase" per slot), masking the pairs of the other slot inside a block that holds
// both; the gradient of a slot is complete, and stored, when its phase ends. So piecewise costs
// one score GEMM per block, except on the few blocks that straddle dist = w.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

namespace attnbench::kernels::tiled {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__host__ __device__ constexpr int cdiv(int a, int b) { return (a + b - 1) / b; }
__device__ __forceinline__ int clampi(int x, int lo, int hi) { return min(max(x, lo), hi); }

// Problem geometry every kernel sees.
struct Geometry {
  int Tq, Tk, off;
  bool causal;
};

// The blocks [begin, end) one slot visits (begin == end: none; its gradient is then zero).
struct Phase {
  int slot, begin, end;
};
struct Phases {
  Phase p[2];
  int n;
  // Phase k (0 or 1) by selection, so a loop over phases keeps them in registers.
  __device__ Phase at(int k) const { return k == 0 ? p[0] : p[1]; }
};

// Visibility under the mask, the bounds and the slot, as an interval per row: the keys [lo, hi]
// that query row i sees, or the queries [lo, hi] that see key j (empty when lo > hi).
struct Range {
  int lo, hi;
};
template <class Score>
__device__ __forceinline__ Range keys_seen_by(const Geometry& g, const Score& sc, int slot, int i) {
  Range r{0, i < g.Tq ? (g.causal ? min(g.Tk - 1, i + g.off) : g.Tk - 1) : -1};
  sc.clip_keys(slot, i + g.off, r);
  return r;
}
template <class Score>
__device__ __forceinline__ Range queries_seeing(const Geometry& g, const Score& sc, int slot, int j) {
  Range r{g.causal ? max(0, j - g.off) : 0, j < g.Tk ? g.Tq - 1 : -1};
  sc.clip_queries(slot, j - g.off, r);
  return r;
}

// True when every pair of rows [i_lo, i_hi] x keys [j_lo, j_hi] is visible in `slot`: the tile
// then needs no per-element mask.
template <class Score>
__device__ __forceinline__ bool tile_full(const Geometry& g, const Score& sc, int slot, int i_lo, int i_hi, int j_lo,
                                          int j_hi) {
  return i_hi < g.Tq && j_hi < g.Tk && (!g.causal || j_hi <= i_lo + g.off) &&
         sc.slot_full(slot, i_lo + g.off - j_hi, i_hi + g.off - j_lo);
}

// Exclusive end of the keys visible to some row of [.., i_hi].
__device__ __forceinline__ int visible_key_end(const Geometry& g, int i_hi) {
  return g.causal ? min(g.Tk, i_hi + g.off + 1) : g.Tk;
}
// First query row that sees some key of [j_lo, ..].
__device__ __forceinline__ int visible_query_begin(const Geometry& g, int j_lo) {
  return g.causal ? clampi(j_lo - g.off, 0, g.Tq) : 0;
}

// Shared by the one-slot policies: every visible block in one phase.
struct OneSlot {
  static constexpr int kSlots = 1;
  __device__ bool slot_full(int, int, int) const { return true; }
  __device__ void clip_keys(int, int, Range&) const {}
  __device__ void clip_queries(int, int, Range&) const {}
  // Query side (forward, dQ): rows [i_lo, i_hi] visit key blocks of `bn` keys.
  __device__ Phases query_phases(const Geometry& g, int, int i_hi, int bn) const {
    return {{{0, 0, cdiv(visible_key_end(g, i_hi), bn)}, {0, 0, 0}}, 1};
  }
  // Key side (dK, dV): keys [j_lo, j_hi] visit query blocks of `bm` rows.
  __device__ Phases key_phases(const Geometry& g, int j_lo, int, int bm) const {
    return {{{0, visible_query_begin(g, j_lo) / bm, cdiv(g.Tq, bm)}, {0, 0, 0}}, 1};
  }
};

// softmax: s = scale q.k.
struct DotScore : OneSlot {
  static constexpr bool kLorentz = false;
  float score_log2;  // scale * log2(e)
  float grad_scale;  // scale
  __device__ float log2_score(float acc, float, float) const { return acc * score_log2; }
  __device__ float grad_operand(float ds, float, float, float) const { return ds; }
  __device__ float grad_factor() const { return grad_scale; }
};

// piecewise: slot 0 = (q1, k1) where dist < w, slot 1 = (q2, k2) where dist >= w.
struct PiecewiseScore {
  static constexpr int kSlots = 2;
  static constexpr bool kLorentz = false;
  float score_log2, grad_scale;
  int w;
  __device__ float log2_score(float acc, float, float) const { return acc * score_log2; }
  __device__ float grad_operand(float ds, float, float, float) const { return ds; }
  __device__ float grad_factor() const { return grad_scale; }
  __device__ bool slot_full(int slot, int dist_min, int dist_max) const { return slot ? dist_min >= w : dist_max < w; }
  // dist = i + off - j = d0 - j with d0 = i + off: far j <= d0 - w, near j >= d0 - w + 1.
  __device__ void clip_keys(int slot, int d0, Range& r) const {
    if (slot) r.hi = min(r.hi, d0 - w);
    else r.lo = max(r.lo, d0 - w + 1);
  }
  // dist = i - e0 with e0 = j - off: far i >= e0 + w, near i <= e0 + w - 1.
  __device__ void clip_queries(int slot, int e0, Range& r) const {
    if (slot) r.lo = max(r.lo, e0 + w);
    else r.hi = min(r.hi, e0 + w - 1);
  }

  // Query side: far keys (slot 1) are a prefix j <= i + off - w, near keys (slot 0) the rest.
  __device__ Phases query_phases(const Geometry& g, int i_lo, int i_hi, int bn) const {
    const int vend = visible_key_end(g, i_hi);
    const int far_end = clampi(i_hi + g.off - w + 1, 0, vend);
    const int near_begin = clampi(i_lo + g.off - w + 1, 0, vend);
    Phases ph;
    ph.n = 2;
    ph.p[0] = {1, 0, cdiv(far_end, bn)};
    ph.p[1] = {0, near_begin < vend ? near_begin / bn : 0, near_begin < vend ? cdiv(vend, bn) : 0};
    return ph;
  }
  // Key side: near rows i < j + w - off come first, far rows i >= j + w - off after.
  __device__ Phases key_phases(const Geometry& g, int j_lo, int j_hi, int bm) const {
    const int q_begin = visible_query_begin(g, j_lo);
    const int near_end = clampi(j_hi + w - g.off, q_begin, g.Tq);
    const int far_begin = clampi(j_lo + w - g.off, q_begin, g.Tq);
    Phases ph;
    ph.n = 2;
    ph.p[0] = {0, q_begin / bm, near_end > q_begin ? cdiv(near_end, bm) : q_begin / bm};
    ph.p[1] = {1, far_begin < g.Tq ? far_begin / bm : 0, far_begin < g.Tq ? cdiv(g.Tq, bm) : 0};
    return ph;
  }
};

// hyperbolic: s = -(beta/sqrt c) acosh(max(z, zmin)), z = -c (q.k - q0 k0). The per-row time
// coordinates arrive as the aux values qa = q0_i, ka = k0_j.
struct LorentzScore : OneSlot {
  static constexpr bool kLorentz = true;
  float c;         // curvature
  float neg_coef;  // -beta / sqrt(c)
  float zmin;      // 1 + 1e-6
  const float* q0;  // [B*H][TqP], rows past Tq zero
  const float* k0;  // [B*Hkv][TkP], rows past Tk zero

  __device__ float z(float acc, float qa, float ka) const { return -c * (acc - qa * ka); }
  // t = s log2(e) = -(beta/sqrt c) log2(z + sqrt(z^2 - 1)), z clamped; sqrt(z^2-1) = sqrt((z-1)(z+1)).
  __device__ float log2_score(float acc, float qa, float ka) const {
    const float zc = fmaxf(z(acc, qa, ka), zmin);
    float r, l;
    asm("sqrt.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"((zc - 1.0f) * (zc + 1.0f)));
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(l) : "f"(zc + r));
    return neg_coef * l;
  }
  // dZ = dS ds/dz where z > zmin (unclamped), else 0.
  __device__ float grad_operand(float ds, float acc, float qa, float ka) const {
    const float zz = z(acc, qa, ka);
    if (!(zz > zmin)) return 0.0f;
    float r;
    asm("rsqrt.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"((zz - 1.0f) * (zz + 1.0f)));
    return ds * neg_coef * r;
  }
  __device__ float grad_factor() const { return -c; }
};

}  // namespace attnbench::kernels::tiled
