// Score policies of the tiled softmax-family kernels (softmax, piecewise, hyperbolic, and based's
// quadratic form), and the
// geometry they share: which (query, key) pairs are visible, and in which order a tile row or a
// tile column visits its blocks.
//
// Notation as DESIGN.md: query row i, key row j, off = Tk - Tq, dist = i + off - j; causal: j
// visible iff j <= i + off (bottom-right aligned). A policy turns the fp32 accumulator of a score
// GEMM, acc = x_i . y_j (plus the per-row aux values qa_i, ka_j), into the score s, and dS = dL/ds
// into G, the operand of the gradient GEMMs:
//   softmax:    acc = q.k,   s = scale acc;                        G = dS,  dq = scale G K
//   based:      acc = q.k,   s = ln(1 + t + t^2/2), t = scale acc;  G = dS (1 + t) / a, dq = scale G K
//   piecewise:  two slots, slot 0 = (q1, k1) on near pairs (dist < w), slot 1 = (q2, k2) on far
//               pairs (dist >= w); s = scale acc of the pair's slot; dq_slot = scale G_slot K_slot
//   hyperbolic: acc = q.k, z = -c (acc - q0 k0) (the Lorentz product as a GEMM plus a rank-one
//               term), s = -(beta/sqrt c) acosh(max(z, 1 + 1e-6)) with qa = q0_i, ka = k0_j;
//               G = dZ = dS ds/dz, ds/dz = -(beta/sqrt c) / sqrt(z^2 - 1) (0 where clamped),
//               dq = -c (dZ K - diag(q/q0) dZ k0),  dk = -c (dZ^T Q - diag(k/k0) dZ^T q0)
// with q0 = sqrt(1/c + |q|^2), k0 likewise (fp32, precomputed per row, see softmax_tiled_bwd.cuh).
//
// Policy interface.
//   forward (online softmax over "keys", values monotone in s; masked pairs are -inf):
//     key(acc, qa, ka);  prob(key, ref) = exp(s(key) - s(ref));  natural(key) = s(key);
//     sum_term(p, key, ref): the key's term of the row sum l (p, made exact at key == ref);
//     rebase(mx, ref): the running reference must move to the new row maximum mx (the first one,
//     or exp(s(mx) - s(ref)) > 2^kRebaseLog2: below that the stale reference is kept, the sums
//     stay in range, and O is not rescaled; FlashAttention-4's conditional rescaling).
//   backward and total attention: eval(acc, qa, ka) = {s, ds/du}, G = dS ds/du.
//   The row-sum term of the reference is exactly 1 (based's: within an ulp, TaylorScore) and
//   natural() is computed exactly as eval().s,
//   so a row that sees one key gets L = s, P = 1 and (with D_i from the same tensor-core sums as
//   dP) dS = 0 bitwise, as the exact answer and the same-precision reference have it.
//   kRatio policies (the hyperbolic score with beta/sqrt(c) = 1) replace key/prob/natural/rebase
//   by the ratio-domain step of softmax_tiled_ratio.cuh (keys u, P~ = y_ref / y_hat), with the same
//   two guarantees.
//
// Slots: a policy has 1 or 2 (Q, K) operand pairs. A kernel visits the blocks of one slot after
// the other (a "phase" per slot), masking the pairs of the other slot inside a block that holds
// both; the gradient of a slot is complete, and stored, when its phase ends. So piecewise costs
// one score GEMM per block, except on the few blocks that straddle dist = w.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <type_traits>
#include <utility>

#include "hopper.cuh"

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

// The exponent gap below which the forward keeps its stale reference (p~ <= 2^8).
constexpr float kRebaseLog2 = 8.0f;

struct ScoreEval {
  float s;     // the score
  float dsdu;  // ds/du, u the operand of the gradient GEMMs (1 for a linear score)
};

// A linear score s = scale acc (scale > 0): the key is acc itself.
struct LinearScore {
  static constexpr bool kLorentz = false;
  static constexpr bool kRatio = false;
  float scale;       // s = scale acc
  float score_log2;  // scale * log2(e)
  __device__ float key(float acc, float, float) const { return acc; }
  __device__ float prob(float k, float ref) const {
    return hopper::ex2(__fsub_rn(__fmul_rn(k, score_log2), __fmul_rn(ref, score_log2)));
  }
  __device__ float sum_term(float p, float, float) const { return p; }  // prob(k, k) is exactly 1
  __device__ float natural(float k) const { return __fmul_rn(k, scale); }
  __device__ bool rebase(float mx, float ref) const {
    return __fmul_rn(mx, score_log2) - __fmul_rn(ref, score_log2) > kRebaseLog2;  // NaN (both -inf): no
  }
  __device__ ScoreEval eval(float acc, float, float) const { return {__fmul_rn(acc, scale), 1.0f}; }
  __device__ float grad_factor() const { return scale; }
};

// softmax: s = scale q.k.
struct DotScore : OneSlot, LinearScore {};

// piecewise: slot 0 = (q1, k1) where dist < w, slot 1 = (q2, k2) where dist >= w.
struct PiecewiseScore : LinearScore {
  static constexpr int kSlots = 2;
  int w;
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

// based (DESIGN.md; the quadratic form, Dk = Dv in {64, 128}): weight a = 1 + s + s^2/2 of
// s = scale q.k, o_i = sum_j a_ij v_j / (sum_j a_ij + eps). Every weight is positive,
// a = ((s + 1)^2 + 1) / 2 >= 1/2, so based is softmax over the score s' = ln a: softmax(s')
// weighs a / sum a. eps enters at the end of the forward (sum_eps: L_i = ln(sum_j a_ij + eps)), so
// the backward's P = exp(s' - L) = a / (sum a + eps) is exact with it, and D_i = dO_i . o_i, dS'
// = P (dP - D) are softmax's.
//   forward: in the ratio domain of a, no exp: key = a (masked -inf), P~ = a rcp(a_ref)
//            (max(., 0) sends -inf to 0), natural(a) = ln a once per row at the end. The reference's
//            own term a rcp(a) is within an ulp of 1, not exactly 1 as softmax's (with eps the exact
//            dS of a row that sees one key is not 0 either);
//   backward: s' = ln a, ds'/du = scale (1 + s) / a, u = q.k: G = dS' (1 + s) / a, dq = scale G K,
//            taken by the kernels through weight_grad() below; eval() serves the total-attention
//            pass, and natural(key(acc)) and eval(acc).s are the same operations.
struct TaylorScore : OneSlot {
  static constexpr bool kLorentz = false;
  static constexpr bool kRatio = false;
  float scale;  // s = scale acc
  float eps;    // the denominator's epsilon (1e-6)

  __device__ static float lg2(float v) { return hopper::lg2(v); }
  __device__ static float rcp(float v) { return hopper::rcp(v); }
  __device__ float score(float acc) const { return __fmul_rn(acc, scale); }
  // a = 1 + s + s^2/2 = (s/2 + 1) s + 1
  __device__ static float weight_of(float s) { return __fmaf_rn(__fmaf_rn(s, 0.5f, 1.0f), s, 1.0f); }
  __device__ float key(float acc, float, float) const { return weight_of(score(acc)); }
  // rcp.approx of a_ref per pair (the asm is not hoisted). Session 11 (H200, bf16 B=8 H=32 D=128, fwd
  // ms at T = 1024 / 16384, two binaries alternating in one call): one reciprocal per row and block
  // by __fdividef 0.2508, 0.2521 / 33.33, 33.02 against 0.2497, 0.2494 / 32.94, 32.89 per pair
  // (MUFU is not what limits the forward); __frcp_rn per row was 4-5% slower still (call3).
  __device__ float prob(float k, float ref) const { return fmaxf(__fmul_rn(k, rcp(ref)), 0.0f); }
  __device__ float sum_term(float p, float, float) const { return p; }
  __device__ float natural(float k) const { return __fmul_rn(lg2(k), kLn2); }
  __device__ bool rebase(float mx, float ref) const { return __fmul_rn(ref, 256.0f) < mx; }  // both -inf: no
  // The row sum's extra term in units of the reference: (sum a + eps) = a_ref (l + eps / a_ref).
  __device__ float sum_eps(float ref) const { return __fdiv_rn(eps, ref); }
  __device__ ScoreEval eval(float acc, float, float) const {
    const float s = score(acc), a = weight_of(s);
    return {natural(a), __fmul_rn(__fadd_rn(s, 1.0f), rcp(a))};
  }
  __device__ float grad_factor() const { return scale; }
  // The backward's shortcut (has_weight_grad): with w_i = exp(-L_i) = 1 / (sum_j a_ij + eps) per
  // query row (the row statistics hand the kernels w instead of L), P = a w and P ds'/du / scale =
  // w (1 + s): no log, exp or reciprocal per pair. Returns {a, 1 + s}.
  __device__ float2 weight_grad(float acc) const {
    const float s = score(acc);
    return {weight_of(s), __fadd_rn(s, 1.0f)};
  }
};

// Whether the backward kernels take P and G from weight_grad() and w = exp(-L) (based).
template <class Score, class = void>
struct has_weight_grad : std::false_type {};
template <class Score>
struct has_weight_grad<Score, std::void_t<decltype(std::declval<const Score&>().weight_grad(0.0f))>> : std::true_type {};

// The forward's final row sum l (in units of the reference ref): l plus the policy's sum_eps where
// it has one (based), else l.
template <class Score, class = void>
struct has_sum_eps : std::false_type {};
template <class Score>
struct has_sum_eps<Score, std::void_t<decltype(std::declval<const Score&>().sum_eps(0.0f))>> : std::true_type {};
template <class Score>
__device__ __forceinline__ float final_row_sum(const Score& sc, float l, float ref) {
  if constexpr (has_sum_eps<Score>::value) return l > 0.0f ? __fadd_rn(l, sc.sum_eps(ref)) : l;
  else return l;
}

// hyperbolic: s = -(beta/sqrt c) acosh(max(z, zmin)), z = -c (q.k - q0 k0); qa = q0_i, ka = k0_j.
// acosh(z) = ln y, y = z + sqrt(z^2 - 1), with sqrt(x) = x rsqrt(x) and x = z^2 - 1 by one fma.
//
// kUnit (beta / sqrt c == 1, the default): exp(s) = 1/y, and the forward runs its softmax on ratios
// of y (kRatio; softmax_tiled_ratio.cuh). It works in "hat" units, where c leaves the per-score
// path: u = q.k - q0 k0 = -z/c (one fma on the accumulator), clamped as u_c = min(u, -zmin/c), and
//   y_hat = y / c = -u_c + sqrt(x),  x = u_c^2 - 1/c^2 = (z^2 - 1) / c^2,
// so s = -ln(c y_hat) and P_ij is proportional to 1 / y_hat_ij. The backward's eval() uses the
// same y_hat, bit for bit, so the forward's L of a row that sees one key is exactly eval().s.
// Otherwise (general beta / sqrt c) the key is t = s log2(e) and prob = exp2(k - ref).
template <bool kUnit>
struct LorentzScore : OneSlot {
  static constexpr bool kLorentz = true;
  static constexpr bool kRatio = kUnit;
  float c;          // curvature
  float neg_coef;   // -beta / sqrt(c)
  float zmin;       // 1 + 1e-6
  const float* q0;  // [B*H][TqP], rows past Tq zero
  const float* k0;  // [B*Hkv][TkP], rows past Tk zero
  const void* kx = nullptr;  // the fold's K-side columns, [B*Hkv][TkP] rows of 32 bytes (fwd kFold only)
  // hat units (kUnit):
  float inv_c, inv_c2;  // 1/c, 1/c^2
  float u_clamp;        // -zmin/c: u_c = min(u, u_clamp) is z clamped to zmin
  float y_clamp;        // y_hat(u_clamp), the smallest y_hat
  float ln_c;           // ln c
  float u_far;          // -z_far/c: keys with u <= u_far may take the series path (softmax_tiled_ratio.cuh)
  float far_k[2];       // the series' coefficients 1/(4c^2), 1/(8c^4)
  float u_mid;          // -z_mid/c: keys with u <= u_mid may take the shorter series (softmax_tiled_ratio.cuh)
  float mid_k;          // its coefficient kappa/(4c^2)

  __device__ static float lg2(float v) { return hopper::lg2(v); }
  __device__ static float rcp(float v) { return hopper::rcp(v); }
  __device__ static float rsqrt(float v) {
    float r;
    asm("rsqrt.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
    return r;
  }

  // General path: z, and y = z + sqrt(z^2 - 1) of the clamped z (and 1/sqrt(z^2 - 1)).
  __device__ float z(float acc, float qa, float ka) const { return __fmul_rn(-c, __fmaf_rn(-qa, ka, acc)); }
  __device__ float y(float zc, float* rs_out = nullptr) const {
    const float x = __fmaf_rn(zc, zc, -1.0f);
    const float rs = rsqrt(x);
    if (rs_out) *rs_out = rs;
    return __fadd_rn(zc, __fmul_rn(x, rs));
  }

  // Hat units: u, y_hat of the clamped u_c (and r = 1/sqrt(x) = c / sqrt(z^2 - 1)), s of y_hat.
  __device__ static float u(float acc, float qa, float ka) { return __fmaf_rn(-qa, ka, acc); }
  __device__ float y_hat(float u_c, float* r_out = nullptr) const {
    const float x = __fmaf_rn(u_c, u_c, -inv_c2);
    const float r = rsqrt(x);
    if (r_out) *r_out = r;
    return __fmaf_rn(x, r, -u_c);
  }
  __device__ float s_of_y_hat(float yh) const { return __fmaf_rn(lg2(yh), -kLn2, -ln_c); }  // -ln(c y_hat)

  // Forward of the general path (kUnit runs the ratio forward, whose key is u).
  __device__ float key(float acc, float qa, float ka) const {
    if constexpr (kUnit) return u(acc, qa, ka);
    else return __fmul_rn(neg_coef, lg2(y(fmaxf(z(acc, qa, ka), zmin))));
  }
  __device__ float prob(float k, float ref) const { return hopper::ex2(__fsub_rn(k, ref)); }
  __device__ float sum_term(float p, float, float) const { return p; }  // prob(k, k) is exactly 1
  __device__ float natural(float k) const { return __fmul_rn(k, kLn2); }
  __device__ bool rebase(float mx, float ref) const { return mx - ref > kRebaseLog2; }  // NaN (both -inf): no

  // s and ds/dz (0 where z is clamped).
  __device__ ScoreEval eval(float acc, float qa, float ka) const {
    if constexpr (kUnit) {
      const float uu = u(acc, qa, ka);
      float r;
      const float yh = y_hat(fminf(uu, u_clamp), &r);
      return {s_of_y_hat(yh), uu < u_clamp ? -__fmul_rn(r, inv_c) : 0.0f};  // ds/dz = -1/sqrt(z^2 - 1)
    } else {
      const float zz = z(acc, qa, ka);
      float rs;
      const float yy = y(fmaxf(zz, zmin), &rs);
      return {__fmul_rn(__fmul_rn(neg_coef, lg2(yy)), kLn2), zz > zmin ? neg_coef * rs : 0.0f};
    }
  }
  __device__ float grad_factor() const { return -c; }
};

}  // namespace attnbench::kernels::tiled
