// bidir on the device: the feature maps element by element, shared by the naive and tiled kernels.
//
//   identity: phi(x) = x                                   phi'(x) = 1
//   elu1:     phi(x) = x > 0 ? x + 1 : exp(x)              phi'(x) = x > 0 ? 1 : exp(x)
//   relu:     phi(x) = max(x, 0)                           phi'(x) = [x > 0]
//   focused:  y = relu(x) + 1e-6, u = y^3, phi(x) = u * (||y|| / ||u||)   (a whole-row map: the
//             kernels reduce ||y||^2, ||u||^2 and g.u over the row their own way, then call the
//             per-element pieces below)
//     backward, with g = dL/dphi, r = ||y|| / ||u||:
//       du = r (g - (g.u / ||u||^2) u),  dy = 3 y^2 du + (r g.u / ||y||^2) y,  dx = [x > 0] dy
//   norm's denominator: z_i = phi(q_i) . mean_j phi(k_j) + 1e-6.
// Evaluated in fp32, as the CPU emulation (reference/bidir.cpp) does (the tiled one-launch
// forwards can take elu1 from packed bf16x2 / f16x2 operations instead, ATTNBENCH_BIDIR_EXP=pk:
// kElu1Pk below, bidir_tiled_maps.cuh).
#pragma once

#include "core/problem.h"

namespace attnbench::kernels::bidir {

constexpr float kFocusedShift = 1e-6f;  // relu(x) + 1e-6 keeps every entry positive
constexpr float kFocusedPower = 3.0f;   // FLatten's p (u = y*y*y below)
constexpr float kNormEps = 1e-6f;       // norm's denominator epsilon

// The feature map as a kernel argument.
enum FeatureMapId : int { kIdentity = 0, kElu1 = 1, kRelu = 2, kFocused = 3 };
// elu1 by packed operations on pairs of the storage dtype: the tiled one-launch forwards only
// (bidir_tiled_maps.cuh; the same map, phi rounded to the storage dtype as always, within the
// numerics rule in the GPU tests).
constexpr int kElu1Pk = 4;

inline FeatureMapId feature_map_id(FeatureMap f) {
  switch (f) {
    case FeatureMap::identity: return kIdentity;
    case FeatureMap::elu1: return kElu1;
    case FeatureMap::relu: return kRelu;
    case FeatureMap::focused: return kFocused;
  }
  return kIdentity;
}

// phi for the element-wise maps (identity, elu1, relu).
__device__ __forceinline__ float phi_elem(int fm, float x) {
  if (fm == kElu1) return x > 0.0f ? x + 1.0f : expf(x);
  if (fm == kRelu) return fmaxf(x, 0.0f);
  return x;
}

// g * phi'(x) for the element-wise maps.
__device__ __forceinline__ float dphi_elem(int fm, float x, float g) {
  if (fm == kElu1) return x > 0.0f ? g : g * expf(x);
  if (fm == kRelu) return x > 0.0f ? g : 0.0f;
  return g;
}

// focused: y of one element (0 outside the row's D columns, so padding adds nothing to the norms).
__device__ __forceinline__ float focused_y(float x, bool in_row) { return in_row ? fmaxf(x, 0.0f) + kFocusedShift : 0.0f; }
// r = ||y|| / ||u|| from the squared norms (both > 0: y >= 1e-6), as sqrt(ny2) rsqrt(nu2) with
// sqrt(ny2) = ny2 rsqrt(ny2): two MUFU.RSQ and no IEEE square root or division (a few ulps of fp32).
// The .ftz form: both sums are normal numbers (ny2 >= 1e-12 and nu2 >= (1e-6)^6 = 1e-36 > 2^-126
// wherever a row has an entry), so rsqrtf's subnormal scaling (6 instructions a call) never
// applies; an empty row (0) gives inf, as rsqrtf does, and its callers mask it.
__device__ __forceinline__ float rsqrt_ftz(float x) {
  float r;
  asm("rsqrt.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float focused_ratio(float ny2, float nu2) { return ny2 * rsqrt_ftz(ny2) * rsqrt_ftz(nu2); }

// focused backward of one element from its row's factors r = ||y||/||u||, a = g.u / ||u||^2 and
// b = r g.u / ||y||^2 (the tiled backward computes a and b once per row).
// dy = 3 y^2 du + b y with du = r (g - a u), u = y^3, as s (c1 g - c2 u) + b y with s = y^2,
// c1 = 3 r and c2 = 3 r a (row constants).
// focused_dx_y: the same from y = relu(x) + 1e-6 and pos = (x > 0), where the caller has y.
__device__ __forceinline__ float focused_dx_y(float y, bool pos, float g, float r, float a, float b) {
  const float s = y * y, c1 = kFocusedPower * r, c2 = c1 * a;
  const float dy = fmaf(s, fmaf(-c2, s * y, c1 * g), b * y);
  return pos ? dy : 0.0f;
}
__device__ __forceinline__ float focused_dx_ab(float x, float g, float r, float a, float b) {
  return focused_dx_y(fmaxf(x, 0.0f) + kFocusedShift, x > 0.0f, g, r, a, b);
}

// focused backward of one element, given the row's r = ||y||/||u||, ||y||^2, ||u||^2 and g.u.
__device__ __forceinline__ float focused_dx(float x, float g, float r, float ny2, float nu2, float gu) {
  return focused_dx_ab(x, g, r, gu / nu2, r * gu / ny2);
}

}  // namespace attnbench::kernels::bidir
