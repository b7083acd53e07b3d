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

// kElu1H2: elu1 whose exp comes from ex2.approx.f16x2 (the one-launch forwards' elu1 under
// ATTNBENCH_BIDIR_EXP=h2; two MUFU.EX2.F16 on sm_90): exp(x) = 2^t, t = x log2(e) rounded to fp16
// (relative error of 2^t from that rounding <= 2^-11 ln2 |t|), 2^t with relative error ~2^-9.9,
// then rounded to the storage dtype as every phi is. A kernel-internal map id (bidir_common.cuh),
// never a user's.

template <int FM>
__device__ __forceinline__ float phi_fast(float x) {
  if (FM == kElu1 || FM == kElu1H2) return x > 0.0f ? x + 1.0f : __expf(x);
  if (FM == kRelu) return fmaxf(x, 0.0f);
  return x;
}
// phi of two elements (kElu1H2: both exps in one ex2.approx.f16x2; for x > 0, where x + 1 is
// taken, t may be inf).
template <int FM>
__device__ __forceinline__ float2 phi_pair(float2 x) {
  if (FM == kElu1H2) {
    const __half2 t = __floats2half2_rn(x.x * 1.4426950408889634f, x.y * 1.4426950408889634f);
    const uint32_t tb = *reinterpret_cast<const uint32_t*>(&t);
    uint32_t eb;
    asm("ex2.approx.f16x2 %0, %1;\n" : "=r"(eb) : "r"(tb));
    const float2 e = __half22float2(*reinterpret_cast<const __half2*>(&eb));
    return make_float2(x.x > 0.0f ? x.x + 1.0f : e.x, x.y > 0.0f ? x.y + 1.0f : e.y);
  }
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

// kElu1H2 on a packed pair of the storage dtype, with the roundings of
// pack2<T>(phi_pair<kElu1H2>(unpack2<T>(a))): e = 2^t from the same t and ex2 (for fp16 no
// conversion of e at all), then elu1_pick. Used where no element needs a mask.
template <class T>
__device__ __forceinline__ uint32_t elu1_h2_packed(uint32_t a) {
  const float2 x = unpack2<T>(a);
  const __half2 t = __floats2half2_rn(x.x * 1.4426950408889634f, x.y * 1.4426950408889634f);
  uint32_t e;
  asm("ex2.approx.f16x2 %0, %1;\n" : "=r"(e) : "r"(*reinterpret_cast<const uint32_t*>(&t)));
  if constexpr (!std::is_same_v<T, __half>) {
    const float2 ef = __half22float2(*reinterpret_cast<const __half2*>(&e));
    e = pack2<T>(ef.x, ef.y);
  }
  return elu1_pick<T>(a, e);
}

// kElu1 on a packed pair of the storage dtype where no element needs a mask: e = 2^(x log2(e))
// by two ex2.approx.ftz.f32 (the __expf of phi_fast, relative error ~2^-22), rounded to the
// storage dtype, then elu1_pick. For bf16 this is fewer instructions than elu1_h2_packed (no fp16
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

// x <- round(phi(x)) on the A fragments of a 16-row slab; rows with !row_ok[i] (i = 0: row g,
// 1: row g+8) and columns >= D become 0. focused: the row norms are quad sums. MASK = false: the
// caller knows every row is ok and D is the padded width (no per-element tests).
template <class T, int KT, int FM, bool MASK = true>
__device__ __forceinline__ void phi_frags(uint32_t (&x)[KT][4], const bool (&row_ok)[2], int D, int lane) {
  const int q = lane % 4;
  float r[2] = {0.0f, 0.0f};
  if (FM == kFocused) {
    float ny2[2] = {0.0f, 0.0f}, nu2[2] = {0.0f, 0.0f};
#pragma unroll
    for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const bool in_row = !MASK || kt * 16 + 8 * (i / 2) + 2 * q < D;
        const float2 v = unpack2<T>(x[kt][i]);
        const float y0 = focused_y(v.x, in_row), y1 = focused_y(v.y, in_row);
        const float u0 = y0 * y0 * y0, u1 = y1 * y1 * y1;
        ny2[i % 2] += y0 * y0 + y1 * y1;
        nu2[i % 2] += u0 * u0 + u1 * u1;
      }
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) r[j] = sqrtf(quad_sum(ny2[j])) / sqrtf(quad_sum(nu2[j]));
  }
  if constexpr ((FM == kElu1H2 || FM == kElu1) && !MASK) {
#pragma unroll
    for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) x[kt][i] = FM == kElu1H2 ? elu1_h2_packed<T>(x[kt][i]) : elu1_f2_packed<T>(x[kt][i]);
    }
  } else {
#pragma unroll
    for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const bool ok = !MASK || (row_ok[i % 2] && kt * 16 + 8 * (i / 2) + 2 * q < D);
        const float2 v = unpack2<T>(x[kt][i]);
        float f0, f1;
        if (FM == kFocused) {
          const float y0 = focused_y(v.x, true), y1 = focused_y(v.y, true);
          f0 = y0 * y0 * y0 * r[i % 2], f1 = y1 * y1 * y1 * r[i % 2];
        } else {
          const float2 f = phi_pair<FM>(v);
          f0 = f.x, f1 = f.y;
        }
        x[kt][i] = pack2<T>(ok ? f0 : 0.0f, ok ? f1 : 0.0f);
      }
    }
  }
}

template <class T, int KT>
__device__ __forceinline__ void phi_frags_any(uint32_t (&x)[KT][4], int fm, const bool (&row_ok)[2], int D, int lane,
                                              bool full = false) {
  if (full) {  // every row ok, D == 16 KT
    switch (fm) {
      case kElu1: return phi_frags<T, KT, kElu1, false>(x, row_ok, D, lane);
      case kElu1H2: return phi_frags<T, KT, kElu1H2, false>(x, row_ok, D, lane);
      case kRelu: return phi_frags<T, KT, kRelu, false>(x, row_ok, D, lane);
      case kFocused: return phi_frags<T, KT, kFocused, false>(x, row_ok, D, lane);
      default: return phi_frags<T, KT, kIdentity, false>(x, row_ok, D, lane);
    }
  }
  switch (fm) {
    case kElu1: return phi_frags<T, KT, kElu1>(x, row_ok, D, lane);
    case kElu1H2: return phi_frags<T, KT, kElu1H2>(x, row_ok, D, lane);
    case kRelu: return phi_frags<T, KT, kRelu>(x, row_ok, D, lane);
    case kFocused: return phi_frags<T, KT, kFocused>(x, row_ok, D, lane);
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
// tiles). Columns >= D are left as they are (their g is 0 and they are never stored).
template <class T, int KT, int FM>
__device__ __forceinline__ void dphi_frags(const uint32_t (&x)[KT][4], float (&g)[2 * KT][4], int D, int lane) {
  const int q = lane % 4;
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
  float ny2[2] = {0.0f, 0.0f}, nu2[2] = {0.0f, 0.0f}, gu[2] = {0.0f, 0.0f};
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const bool in_row = kt * 16 + 8 * (i / 2) + 2 * q < D;
      const float2 v = unpack2<T>(x[kt][i]);
      const float y0 = focused_y(v.x, in_row), y1 = focused_y(v.y, in_row);
      const float u0 = y0 * y0 * y0, u1 = y1 * y1 * y1;
      const float* gg = &g[2 * kt + i / 2][2 * (i % 2)];
      ny2[i % 2] += y0 * y0 + y1 * y1;
      nu2[i % 2] += u0 * u0 + u1 * u1;
      gu[i % 2] += gg[0] * u0 + gg[1] * u1;
    }
  }
  float r[2];
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    ny2[j] = quad_sum(ny2[j]), nu2[j] = quad_sum(nu2[j]), gu[j] = quad_sum(gu[j]);
    r[j] = sqrtf(ny2[j]) / sqrtf(nu2[j]);
  }
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 v = unpack2<T>(x[kt][i]);
      const int j = i % 2;
      float* gg = &g[2 * kt + i / 2][2 * j];
      gg[0] = focused_dx(v.x, gg[0], r[j], ny2[j], nu2[j], gu[j]);
      gg[1] = focused_dx(v.y, gg[1], r[j], ny2[j], nu2[j], gu[j]);
    }
  }
}

template <class T, int KT>
__device__ __forceinline__ void dphi_frags_any(const uint32_t (&x)[KT][4], float (&g)[2 * KT][4], int fm, int D, int lane) {
  switch (fm) {
    case kElu1: return dphi_frags<T, KT, kElu1>(x, g, D, lane);
    case kRelu: return dphi_frags<T, KT, kRelu>(x, g, D, lane);
    case kFocused: return dphi_frags<T, KT, kFocused>(x, g, D, lane);
    default: return;  // identity
  }
}

}  // namespace attnbench::kernels::bidir
