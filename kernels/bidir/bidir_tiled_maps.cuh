// bidir tiled kernels: the feature maps (and the row dots the backward needs) on mma.sync
// fragments, for the forward's phase-1 A fragments of Kf^T and phase-2 A fragments of Qf, and the
// backward's dphi. Fragment layouts: bidir_tiled_common.cuh; the maps' math: bidir_common.cuh.
#pragma once

#include "bidir_tiled_common.cuh"

namespace attnbench::kernels::bidir {

// ---- feature maps on fragments --------------------------------------------------------------------
// The map is a template argument here (no per-element branch on it) and exp is the hardware
// approximation (__expf, relative error ~2^-21, far below the bf16/fp16 rounding that follows);
// the *_frags_any() wrappers switch on the run-time map once per call.

// kElu1Pk: elu1 by packed operations on whole tiles (elu1_pk_packed below); elsewhere (masked
// tiles) it is kElu1.

template <int FM>
__device__ __forceinline__ float phi_fast(float x) {
  if (FM == kElu1 || FM == kElu1Pk) return x > 0.0f ? x + 1.0f : __expf(x);
  if (FM == kRelu) return fmaxf(x, 0.0f);
  return x;
}
template <int FM>
__device__ __forceinline__ float2 phi_pair(float2 x) {
  return make_float2(phi_fast<FM>(x.x), phi_fast<FM>(x.y));
}

// elu1's pick on a packed pair a of the storage dtype, given e = round(exp(x)) packed the same way:
// x + 1 by one packed add (rounded once, as pack2 rounds the exact fp32 sum) where x > 0, else e
// (at x = 0 both give 1). No fp32 compare/select per element.
template <class T>
__device__ __forceinline__ uint32_t elu1_pick(uint32_t a, uint32_t e) {
  uint32_t pos, gt;
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = *reinterpret_cast<const __half2*>(&a);
    const __half2 s = __hadd2(h, __float2half2_rn(1.0f));
    pos = *reinterpret_cast<const uint32_t*>(&s);
    gt = __hgt2_mask(h, __float2half2_rn(0.0f));
  } else {
    const __nv_bfloat162 h = *reinterpret_cast<const __nv_bfloat162*>(&a);
    const __nv_bfloat162 s = __hadd2(h, __float2bfloat162_rn(1.0f));
    pos = *reinterpret_cast<const uint32_t*>(&s);
    gt = __hgt2_mask(h, __float2bfloat162_rn(0.0f));
  }
  return (pos & gt) | (e & ~gt);
}

// kElu1Pk on a packed pair a of the storage dtype, every operation on the pair (7 instructions for
// bf16, against 10-11 for elu1_f2_packed; ex2.approx.ftz.bf16x2 needs sm_90):
//   n = relu(-(x log2 e)) = -min(x log2 e, 0)   one fma.relu, log2 e split into hi + lo (each of
//                                                the dtype; hi alone is 0.2% off for bf16), so n is
//                                                x log2 e rounded once to the dtype
//   e = 2^-n                                    ex2.approx of the dtype (= exp(min(x, 0)), rounded)
//   phi = max(e, x + 1)                         x > 0: e = 1 < x + 1;  x <= 0: exp(x) >= 1 + x,
//                                                and rounding keeps the order (monotone)
// The one difference from elu1_f2_packed: t = x log2 e is rounded to the dtype before the exp,
// a relative error of up to ln2 |t| 2^-9 in exp(x) for bf16 (about 1.4x the RMS error of the
// rounded exp alone over N(0,1) inputs; the GPU tests hold it to the numerics rule).
template <class T>
__device__ __forceinline__ uint32_t elu1_pk_packed(uint32_t a) {
  uint32_t lo, n, e, p, r;
  if constexpr (std::is_same_v<T, __half>) {
    // -log2 e = -1.4423828125 (0xbdc5) - 0.000312 (0x8d1e) in fp16; 1.0 = 0x3c00
    asm("mul.rn.f16x2 %0, %1, %2;\n" : "=r"(lo) : "r"(a), "r"(0x8d1e8d1eu));
    asm("fma.rn.relu.f16x2 %0, %1, %2, %3;\n" : "=r"(n) : "r"(a), "r"(0xbdc5bdc5u), "r"(lo));
    asm("{ .reg .b32 m; neg.f16x2 m, %1; ex2.approx.f16x2 %0, m; }\n" : "=r"(e) : "r"(n));
    asm("add.rn.f16x2 %0, %1, %2;\n" : "=r"(p) : "r"(a), "r"(0x3c003c00u));
    asm("max.f16x2 %0, %1, %2;\n" : "=r"(r) : "r"(e), "r"(p));
  } else {
    // -log2 e = -1.4453125 (0xbfb9) + 0.00262451171875 (0x3b2c) in bf16; 1.0 = 0x3f80
    asm("mul.rn.bf16x2 %0, %1, %2;\n" : "=r"(lo) : "r"(a), "r"(0x3b2c3b2cu));
    asm("fma.rn.relu.bf16x2 %0, %1, %2, %3;\n" : "=r"(n) : "r"(a), "r"(0xbfb9bfb9u), "r"(lo));
    asm("{ .reg .b32 m; neg.bf16x2 m, %1; ex2.approx.ftz.bf16x2 %0, m; }\n" : "=r"(e) : "r"(n));
    asm("add.rn.bf16x2 %0, %1, %2;\n" : "=r"(p) : "r"(a), "r"(0x3f803f80u));
    asm("max.bf16x2 %0, %1, %2;\n" : "=r"(r) : "r"(e), "r"(p));
  }
  return r;
}

// relu on a packed pair (exact: max of the stored values).
template <class T>
__device__ __forceinline__ uint32_t relu_packed(uint32_t a) {
  uint32_t r;
  if constexpr (std::is_same_v<T, __half>) {
    asm("max.f16x2 %0, %1, %2;\n" : "=r"(r) : "r"(a), "r"(0u));
  } else {
    asm("max.bf16x2 %0, %1, %2;\n" : "=r"(r) : "r"(a), "r"(0u));
  }
  return r;
}

// kElu1 on a packed pair of the storage dtype where no element needs a mask: e = 2^(x log2(e))
// by two ex2.approx.ftz.f32 (the __expf of phi_fast, relative error ~2^-22), rounded to the
// storage dtype, then elu1_pick. For bf16 this is fewer instructions than elu1_pk_packed (no fp16
// round trip of t and e); the one-launch forwards' default (session 5).
template <class T>
__device__ __forceinline__ uint32_t elu1_f2_packed(uint32_t a) {
  const float2 x = unpack2<T>(a);
  float e0, e1;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(e0) : "f"(x.x * 1.4426950408889634f));
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(e1) : "f"(x.y * 1.4426950408889634f));
  return elu1_pick<T>(a, pack2<T>(e0, e1));
}

template <int FM>
__device__ __forceinline__ float dphi_fast(float x, float g) {
  if (FM == kElu1) return x > 0.0f ? g : g * __expf(x);
  if (FM == kRelu) return x > 0.0f ? g : 0.0f;
  return g;
}

// focused's y = relu(x) + 1e-6 of a packed pair: relu on the pair (exact), then the shift in fp32.
template <class T>
__device__ __forceinline__ float2 focused_y2(uint32_t a) {
  const float2 v = unpack2<T>(relu_packed<T>(a));
  return make_float2(v.x + kFocusedShift, v.y + kFocusedShift);
}

// focused's statistics of a slab's rows g and g + 8 (i = 0, 1): ||y||^2, ||u||^2 and
// r = ||y|| / ||u||. The backward keeps them from phi to phi' of the same rows.
struct FocusedRows {
  float ny2[2], nu2[2], r[2];
};

// x <- round(phi(x)) on the A fragments of a 16-row slab; rows with !row_ok[i] (i = 0: row g,
// 1: row g+8) and columns >= D become 0. focused: the row norms are quad sums. MASK = false: the
// caller knows every row is ok and D is the padded width (no per-element tests).
template <class T, int KT, int FM, bool MASK = true>
__device__ __forceinline__ void phi_frags(uint32_t (&x)[KT][4], const bool (&row_ok)[2], int D, int lane,
                                          FocusedRows* rows = nullptr) {
  const int q = lane % 4;
  float r[2] = {0.0f, 0.0f};
  // focused: u = y^3 of every element, kept in fp32 from the norms' pass to phi = round(r u) (one
  // computation of y and u an element: session 10)
  float u[FM == kFocused ? KT : 1][4][2];
  if (FM == kFocused) {
    float ny2[2] = {0.0f, 0.0f}, nu2[2] = {0.0f, 0.0f};
#pragma unroll
    for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        float2 y;
        if constexpr (MASK) {
          const bool in_row = kt * 16 + 8 * (i / 2) + 2 * q < D;
          const float2 v = unpack2<T>(x[kt][i]);
          y = make_float2(focused_y(v.x, in_row), focused_y(v.y, in_row));
        } else {
          y = focused_y2<T>(x[kt][i]);
        }
        const float s0 = y.x * y.x, s1 = y.y * y.y, u0 = s0 * y.x, u1 = s1 * y.y;
        u[kt][i][0] = u0, u[kt][i][1] = u1;
        ny2[i % 2] += s0 + s1;
        nu2[i % 2] = fmaf(u0, u0, fmaf(u1, u1, nu2[i % 2]));
      }
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      ny2[j] = quad_sum(ny2[j]), nu2[j] = quad_sum(nu2[j]);
      r[j] = focused_ratio(ny2[j], nu2[j]);
      if (rows) rows->ny2[j] = ny2[j], rows->nu2[j] = nu2[j], rows->r[j] = r[j];
    }
  }
  if constexpr ((FM == kElu1Pk || FM == kElu1 || FM == kRelu) && !MASK) {
#pragma unroll
    for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        x[kt][i] = FM == kElu1Pk ? elu1_pk_packed<T>(x[kt][i]) : FM == kRelu ? relu_packed<T>(x[kt][i]) : elu1_f2_packed<T>(x[kt][i]);
      }
    }
  } else {
#pragma unroll
    for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const bool ok = !MASK || (row_ok[i % 2] && kt * 16 + 8 * (i / 2) + 2 * q < D);
        float f0, f1;
        if constexpr (FM == kFocused) {
          f0 = u[kt][i][0] * r[i % 2], f1 = u[kt][i][1] * r[i % 2];
        } else {
          const float2 f = phi_pair<FM>(unpack2<T>(x[kt][i]));
          f0 = f.x, f1 = f.y;
        }
        x[kt][i] = pack2<T>(ok ? f0 : 0.0f, ok ? f1 : 0.0f);
      }
    }
  }
}

// focused, folded (TiledParams::focused_fold; bf16): x <- round(u), u = y^3, y = relu(x) + 1e-6
// (0 at columns >= D and in rows with !row_ok[i]), in one pass over the A fragments of a slab, and
// r[i] = ||y|| / ||u|| of row g + 8i (0 where !row_ok[i]); the caller multiplies the row's fp32
// products by r. phi(x) = r u, so phi . w = r (u . w) for every w; the only difference from the
// exact map is where the rounding falls: round(u) instead of round(r u), a relative error of the
// same bound (2^-9) per element. MASK = false: every row ok and D the padded width.
template <class T, int KT, bool MASK = true>
__device__ __forceinline__ void focused_fold_frags(uint32_t (&x)[KT][4], const bool (&row_ok)[2], int D, int lane, float (&r)[2]) {
  const int q = lane % 4;
  float ny2[2] = {0.0f, 0.0f}, nu2[2] = {0.0f, 0.0f};
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float y0, y1;
      if constexpr (MASK) {
        const bool ok = row_ok[i % 2] && kt * 16 + 8 * (i / 2) + 2 * q < D;
        const float2 v = unpack2<T>(x[kt][i]);
        y0 = focused_y(v.x, ok), y1 = focused_y(v.y, ok && kt * 16 + 8 * (i / 2) + 2 * q + 1 < D);
      } else {
        const float2 y = focused_y2<T>(x[kt][i]);
        y0 = y.x, y1 = y.y;
      }
      const float s0 = y0 * y0, s1 = y1 * y1, u0 = s0 * y0, u1 = s1 * y1;
      ny2[i % 2] += s0 + s1;
      nu2[i % 2] = fmaf(u0, u0, fmaf(u1, u1, nu2[i % 2]));
      x[kt][i] = pack2<T>(u0, u1);
    }
  }
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const float n_y = quad_sum(ny2[j]), n_u = quad_sum(nu2[j]);  // every lane: the shuffles are warp-wide
    r[j] = !MASK || row_ok[j] ? focused_ratio(n_y, n_u) : 0.0f;
  }
}

// ---- focused on packed bf16 pairs (TiledParams::focused_pk; session 12) -------------------------
// The fp32 maps above spend ~14 instructions on a pair (unpack, the shift, y^2, y^3, two norm
// sums, pack) plus the quad shuffles of the norms. Here every step is one packed bf16x2 operation
// (HFMA2 / HMNMX2 on both elements), and the row norms run on the tensor cores:
//   y = round(relu(x) + 1e-6)         max, add
//   s = round(y^2)                    mul
//   u = y^3, rounded:                 PRECISE: s y - e y with e = s - y^2 (fma: the exact square
//                                     minus s, rounded once), so u = round(y^3) up to ~2^-17;
//                                     else round(s y) (two roundings, up to ~2^-8 relative)
//   w = round(u^2)                    mul
// ||y||^2 = sum s and ||u||^2 = sum w: an mma.m16n8k16 whose one operand holds the pairs and the
// other is all ones adds 16 columns of a row in fp32 (the products by 1 are exact). s and w carry
// a relative 2^-9 rounding each, of either sign, so the sums of 64 terms are good to ~2^-11.
// bf16 only: bf16 has fp32's exponent range, so u^2 (up to |x|^6) neither overflows nor flushes
// where the fp32 map's would not; fp16 keeps the fp32 maps.
struct FocusedPk {
  uint32_t u, s, w;
};
__device__ __forceinline__ __nv_bfloat162 bf2(uint32_t v) { return *reinterpret_cast<const __nv_bfloat162*>(&v); }
__device__ __forceinline__ uint32_t u32(__nv_bfloat162 v) { return *reinterpret_cast<const uint32_t*>(&v); }
constexpr uint32_t kBf16OnesPair = 0x3f803f80u;  // (1, 1) in bf16

template <bool PRECISE>
__device__ __forceinline__ FocusedPk focused_pk(uint32_t x) {
  const __nv_bfloat162 y = __hadd2(__hmax2(bf2(x), bf2(0u)), __float2bfloat162_rn(kFocusedShift));
  const __nv_bfloat162 s = __hmul2(y, y);
  __nv_bfloat162 u;
  if constexpr (PRECISE) {
    const __nv_bfloat162 ny = __hneg2(y);
    const __nv_bfloat162 e = __hfma2(ny, y, s);  // s - y^2
    u = __hfma2(s, y, __hmul2(e, ny));          // s y - e y = y^3
  } else {
    u = __hmul2(s, y);
  }
  return {u32(u), u32(s), u32(__hmul2(u, u))};
}

// r = round(v) as a bf16 pair (r, r), and (PRECISE) the remainder v - r the same way: then
// fma(u, hi, u lo) = round(u v) up to ~2^-17 instead of round(u round(v)).
template <bool PRECISE>
__device__ __forceinline__ uint32_t focused_pk_scale(uint32_t u, float v) {
  const __nv_bfloat162 hi = __float2bfloat162_rn(v);
  if constexpr (PRECISE) {
    const __nv_bfloat162 lo = __float2bfloat162_rn(v - __low2float(hi));
    return u32(__hfma2(bf2(u), hi, __hmul2(bf2(u), lo)));
  } else {
    return u32(__hmul2(bf2(u), hi));
  }
}

// focused_fold_frags on packed pairs (every row ok, D the padded width; bf16): x <- round(u) on
// the A fragments of a 16-row slab, r[i] = ||y|| / ||u|| of row g + 8i. The norms: A = the slab's
// s (then w) fragments, B = ones, so C[m][n] = the sum over row m for every n: lane (g, q) reads
// row g's in c[0] and row g + 8's in c[2]. With PRECISE, round(u) is the fp32 fold's round(y^3).
template <int KT, bool PRECISE>
__device__ __forceinline__ void focused_fold_pk(uint32_t (&x)[KT][4], float (&r)[2]) {
  float cy[4] = {}, cu[4] = {};
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
    uint32_t s[4], w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const FocusedPk f = focused_pk<PRECISE>(x[kt][i]);
      x[kt][i] = f.u, s[i] = f.s, w[i] = f.w;
    }
    mma16816<__nv_bfloat16>(cy, s, kBf16OnesPair, kBf16OnesPair);
    mma16816<__nv_bfloat16>(cu, w, kBf16OnesPair, kBf16OnesPair);
  }
  r[0] = focused_ratio(cy[0], cu[0]);
  r[1] = focused_ratio(cy[2], cu[2]);
}

// rows: focused's row statistics, for dphi_frags_any (the backward).
template <class T, int KT>
__device__ __forceinline__ void phi_frags_any(uint32_t (&x)[KT][4], int fm, const bool (&row_ok)[2], int D, int lane,
                                              bool full = false, FocusedRows* rows = nullptr) {
  if (full) {  // every row ok, D == 16 KT
    switch (fm) {
      case kElu1: return phi_frags<T, KT, kElu1, false>(x, row_ok, D, lane);
      case kElu1Pk: return phi_frags<T, KT, kElu1Pk, false>(x, row_ok, D, lane);
      case kRelu: return phi_frags<T, KT, kRelu, false>(x, row_ok, D, lane);
      case kFocused: return phi_frags<T, KT, kFocused, false>(x, row_ok, D, lane, rows);
      default: return phi_frags<T, KT, kIdentity, false>(x, row_ok, D, lane);
    }
  }
  switch (fm) {
    case kElu1: return phi_frags<T, KT, kElu1>(x, row_ok, D, lane);
    case kElu1Pk: return phi_frags<T, KT, kElu1Pk>(x, row_ok, D, lane);
    case kRelu: return phi_frags<T, KT, kRelu>(x, row_ok, D, lane);
    case kFocused: return phi_frags<T, KT, kFocused>(x, row_ok, D, lane, rows);
    default: return phi_frags<T, KT, kIdentity>(x, row_ok, D, lane);
  }
}

// This thread's entries of a [DKP] vector in shared memory, in the A-fragment column order:
// v[kt][i/2][c] = vec[kt*16 + 8*(i/2) + 2q + c].
template <int KT>
__device__ __forceinline__ void load_frag_cols(float (&v)[KT][2][2], const float* vec, int lane) {
  const int q = lane % 4;
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      v[kt][h][0] = vec[kt * 16 + 8 * h + 2 * q];
      v[kt][h][1] = vec[kt * 16 + 8 * h + 2 * q + 1];
    }
  }
}

// Row dot products of a slab: out[i] = sum over row (g + 8i) of A-fragment values times the
// vector (this thread's columns, load_frag_cols), summed over the quad.
template <class T, int KT>
__device__ __forceinline__ void row_dot_vec(float (&out)[2], const uint32_t (&a)[KT][4], const float (&v)[KT][2][2]) {
  float s[2] = {0.0f, 0.0f};
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 x = unpack2<T>(a[kt][i]);
      s[i % 2] += x.x * v[kt][i / 2][0] + x.y * v[kt][i / 2][1];
    }
  }
  out[0] = quad_sum(s[0]);
  out[1] = quad_sum(s[1]);
}

// g <- phi'(x)^T g for a slab: x the raw A fragments (KT k-steps), g fp32 in C layout (2 KT
// tiles). Columns >= D are left as they are (their g is 0 and they are never stored). focused:
// rows = the statistics phi_frags kept for the same rows (so only g.u is summed here; at columns
// >= D, g = 0 adds nothing to it).
template <class T, int KT, int FM>
__device__ __forceinline__ void dphi_frags(const uint32_t (&x)[KT][4], float (&g)[2 * KT][4], const FocusedRows& rows) {
  if (FM != kFocused) {
    if (FM == kIdentity) return;
#pragma unroll
    for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 v = unpack2<T>(x[kt][i]);
        float* gg = &g[2 * kt + i / 2][2 * (i % 2)];
        gg[0] = dphi_fast<FM>(v.x, gg[0]);
        gg[1] = dphi_fast<FM>(v.y, gg[1]);
      }
    }
    return;
  }
  // y = relu(x) + 1e-6 is computed in both passes (keeping it from one to the other took ~70
  // more registers in the key kernel: 161 -> 236); relu on the packed pairs, and x > 0 tested on
  // relu(x) (exact), without an fp32 max.
  float gu[2] = {0.0f, 0.0f};
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 y = focused_y2<T>(x[kt][i]);
      const float* gg = &g[2 * kt + i / 2][2 * (i % 2)];
      gu[i % 2] = fmaf(gg[0], y.x * y.x * y.x, fmaf(gg[1], y.y * y.y * y.y, gu[i % 2]));
    }
  }
  float a[2], b[2];  // focused_dx_ab's row factors
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    gu[j] = quad_sum(gu[j]);
    a[j] = gu[j] / rows.nu2[j];
    b[j] = rows.r[j] * gu[j] / rows.ny2[j];
  }
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 rx = unpack2<T>(relu_packed<T>(x[kt][i]));
      const int j = i % 2;
      float* gg = &g[2 * kt + i / 2][2 * j];
      gg[0] = focused_dx_y(rx.x + kFocusedShift, rx.x > 0.0f, gg[0], rows.r[j], a[j], b[j]);
      gg[1] = focused_dx_y(rx.y + kFocusedShift, rx.y > 0.0f, gg[1], rows.r[j], a[j], b[j]);
    }
  }
}

template <class T, int KT>
__device__ __forceinline__ void dphi_frags_any(const uint32_t (&x)[KT][4], float (&g)[2 * KT][4], int fm, const FocusedRows& rows) {
  switch (fm) {
    case kElu1: return dphi_frags<T, KT, kElu1>(x, g, rows);
    case kRelu: return dphi_frags<T, KT, kRelu>(x, g, rows);
    case kFocused: return dphi_frags<T, KT, kFocused>(x, g, rows);
    default: return;  // identity
  }
}

}  // namespace attnbench::kernels::bidir
