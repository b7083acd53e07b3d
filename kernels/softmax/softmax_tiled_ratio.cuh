// The ratio-domain forward step of the hyperbolic score with beta / sqrt(c) == 1 (LorentzScore<true>).
//
// There exp(s_ij) = 1 / (c y_hat_ij) (hat units, softmax_tiled_scores.cuh), so the online softmax
// needs no exp and no log per score:
//   P~_ij = y_ref / y_hat_ij,   y_ref = the y_hat of the row's reference key (a former row maximum).
// The keys are u = q.k - q0 k0 (one fma on the accumulator; increasing in s), so the row maximum and
// the rebase test run on u, before any multi-function op. Per score, one of two paths, chosen per
// warp and tile (a warp-uniform branch, __all_sync):
//   near (some key of the warp's 16 rows has z < z_far):  P~ = y_ref rcp(y_hat(u_c)), y_hat by one
//        rsqrt (LorentzScore::y_hat): two multi-function ops.
//   far (every key has z >= z_far = 12, i.e. u <= u_far = -12/c):  with h = 1/u (one rcp), g = h^2,
//        1/y_hat = c^2 (-u - sqrt(u^2 - 1/c^2)) = -(h/2) (1 + a + 2a^2 + 5a^3 + 14a^4 + ...),
//        a = 1/(4 z^2) = g / (4 c^2)  (the Catalan numbers' generating function; no cancellation).
//        Cut after a^2, its relative error is <= 5 a^3 / (1 - 4a)^2 < 2.7e-8 for z >= 12. With the
//        row's -y_ref/2 folded into the coefficients, P~ = h (A0 + g (A1 + g A2)): one
//        multi-function op (rcp) and four fp32 ops.
//   mid (every key has z >= z_mid = 22; kMid, the default): the series cut after a, with its
//        coefficient raised to kappa = 1.000857 (the minimax choice on a <= 1/(4 z_mid^2)):
//        1 + kappa a matches 1 + a + 2a^2 + ... within 9.2e-8 relative (cut at a with kappa = 1:
//        5.3e-7). P~ = h (A0 + g A1m), A1m = A0 kappa/(4c^2): one rcp and three fp32 ops.
//        Random-normal inputs reach it everywhere at D = 128 (z ~ D) and nearly everywhere at
//        D = 64 (the smallest z of 400 simulated 16 x 128 blocks was 23.2).
// Every path is accurate to a few fp32 ulps, so L = s(ref) + ln l keeps fp32 accuracy.
// ratio_tile_fast (D = 64, after a block that took the mid path): the mid path first, with the
// row maximum replaced by a packed 16-bit maximum of the rounded P~ against one bound per row that
// covers both the mid path's domain and the rebase test; ratio_tile only where the bound fails.
//
// Reference (FlashAttention-4's conditional rescaling): moved to the row maximum only when a key is
// 2^8 times closer than the reference (y_hat < y_ref / 2^8, tested as u > u_next, the u of that
// y_hat: u = -(Y^2 + 1/c^2) / (2Y) solves y_hat(u) = Y). The row sum l counts the reference key's
// own term as exactly 1 (l - p_self + 1 at the end), so a row that sees one key gets l = 1, P~ = 1
// after rounding, and L = s of that key exactly as eval() computes it.
#pragma once

#include "softmax_tiled_tile.cuh"

namespace attnbench::kernels::tiled {

struct LorentzRow {
  float u_next = -INFINITY;  // rebase when the tile's row maximum of u exceeds this (-inf: no reference)
  float a0 = 0.0f;           // -y_ref / 2 (0: no reference yet)
  float p_self = 0.0f;       // the reference key's own term P~, as its tile computed it
  float thr = -1.0f;         // ratio_tile_fast's bound (-1: do not try it), set by ratio_tile
};

// The far path's coefficients A0..A2 of a row, and P~ of a key u <= u_far (masked, -inf: h = -0, P~ = 0).
template <class Score>
__device__ __forceinline__ void far_coefs(const Score& sc, float a0, float (&a)[3]) {
  a[0] = a0;
  a[1] = __fmul_rn(a0, sc.far_k[0]);
  a[2] = __fmul_rn(a0, sc.far_k[1]);
}
template <class Score>
__device__ __forceinline__ float far_prob(float uu, const float (&a)[3]) {
  const float h = Score::rcp(uu);
  const float g = __fmul_rn(h, h);
  return __fmul_rn(h, __fmaf_rn(__fmaf_rn(a[2], g, a[1]), g, a[0]));
}
// The mid path's P~ = h (A0 + g A1m) of a key u <= u_mid (masked: P~ = 0 as far_prob).
template <class Score>
__device__ __forceinline__ float mid_prob(float uu, float a0, float a1m) {
  const float h = Score::rcp(uu);
  return __fmul_rn(h, __fmaf_rn(a1m, __fmul_rn(h, h), a0));
}
// The near path's P~ (NaN for a masked key; the caller zeroes those).
template <class Score>
__device__ __forceinline__ float near_prob(const Score& sc, float uu, float y_ref) {
  return __fmul_rn(y_ref, Score::rcp(sc.y_hat(fminf(uu, sc.u_clamp))));
}

// Zero P~ where masked (partial tiles; element (c, e) is tile column 8c + e%2 of row e/2).
template <int N>
__device__ __forceinline__ void zero_masked(float (&s)[N], const Range (&vis)[2]) {
#pragma unroll
  for (int c = 0; c < N / 4; ++c)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int x = 8 * c + (e & 1);
      if (x < vis[e >> 1].lo || x > vis[e >> 1].hi) s[4 * c + e] = 0.0f;
    }
}

// rs += the row sums of P~, in 4 independent chains per row (kS5: without the additions of 0, the
// same sums bit for bit except for the sign of a zero).
template <bool kS5, int N>
__device__ __forceinline__ void row_sums(const float (&s)[N], float (&rs)[2]) {
  float part[2][4] = {};
#pragma unroll
  for (int i = 0; i < N; ++i) {
    if (kS5 && i < 16 && !(i & 1)) part[(i >> 1) & 1][(i >> 2) & 3] = s[i];
    else part[(i >> 1) & 1][(i >> 2) & 3] += s[i];
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float t = (part[r][0] + part[r][1]) + (part[r][2] + part[r][3]);
    rs[r] = kS5 ? t : rs[r] + t;
  }
}

// One key block: s holds the keys u of this thread's accumulator elements (-inf where masked; rows
// e/2 = 0, 1); on return, P~. Updates the row states; alpha (the factor of O and l) and rescale as
// the kernel's general path; rs += the row sums of P~ (kMid: rs = the row sums). kFast: also sets
// the rows' thr for ratio_tile_fast. Returns whether the block took the mid path (warp-uniform).
template <class T, bool kMid, bool kFast, class Score, int N>
__device__ __forceinline__ bool ratio_tile(const Score& sc, float (&s)[N], LorentzRow (&row)[2], bool partial,
                                           const Range (&vis)[2], float (&alpha)[2], float (&rs)[2], bool& rescale) {
  // Row maxima in 4 independent chains per row (short dependency chains), then the quad.
  float mx[2][4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    mx[0][k] = fmaxf(s[4 * k], s[4 * k + 1]);
    mx[1][k] = fmaxf(s[4 * k + 2], s[4 * k + 3]);
  }
#pragma unroll
  for (int c = 4; c < N / 4; ++c) {
    mx[0][c & 3] = fmaxf(mx[0][c & 3], fmaxf(s[4 * c], s[4 * c + 1]));
    mx[1][c & 3] = fmaxf(mx[1][c & 3], fmaxf(s[4 * c + 2], s[4 * c + 3]));
  }
  float m_row[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) m_row[r] = quad_max(fmaxf(fmaxf(mx[r][0], mx[r][1]), fmaxf(mx[r][2], mx[r][3])));
  const float m_warp = fmaxf(m_row[0], m_row[1]);
  const bool far = __all_sync(0xffffffffu, m_warp <= sc.u_far);
  const bool mid = kMid && __all_sync(0xffffffffu, m_warp <= sc.u_mid);  // u_mid < u_far: mid implies far
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (m_row[r] > row[r].u_next) {  // the first visible key, or one 2^8 times closer than the reference
      const float m = fminf(m_row[r], sc.u_clamp);
      const float y = sc.y_hat(m);
      alpha[r] = row[r].a0 == 0.0f ? 0.0f : __fmul_rn(y, Score::rcp(-2.0f * row[r].a0));
      row[r].a0 = -0.5f * y;
      const float yn = y * (1.0f / 256.0f);
      row[r].u_next = yn > sc.y_clamp ? -__fmaf_rn(0.5f, yn, __fdividef(0.5f * sc.inv_c2, yn)) : INFINITY;
      float a[3];
      far_coefs(sc, row[r].a0, a);
      const float a1m = __fmul_rn(a[0], sc.mid_k);
      row[r].p_self = mid   ? mid_prob<Score>(m, a[0], a1m)
                      : far ? far_prob<Score>(m, a)
                            : near_prob(sc, m, y);
      rescale = true;
    }
  }
  if (mid) {
    const float a1m[2] = {__fmul_rn(row[0].a0, sc.mid_k), __fmul_rn(row[1].a0, sc.mid_k)};
#pragma unroll
    for (int i = 0; i < N; ++i) s[i] = mid_prob<Score>(s[i], row[(i >> 1) & 1].a0, a1m[(i >> 1) & 1]);
  } else if (far) {
    float a[2][3];
#pragma unroll
    for (int r = 0; r < 2; ++r) far_coefs(sc, row[r].a0, a[r]);
#pragma unroll
    for (int i = 0; i < N; ++i) s[i] = far_prob<Score>(s[i], a[(i >> 1) & 1]);
  } else {
    const float y_ref[2] = {-2.0f * row[0].a0, -2.0f * row[1].a0};
#pragma unroll
    for (int i = 0; i < N; ++i) s[i] = near_prob(sc, s[i], y_ref[(i >> 1) & 1]);
    if (partial) zero_masked(s, vis);
  }
  row_sums<kMid>(s, rs);
  if constexpr (kFast) {  // ratio_tile_fast's bound; -1 (the next block goes to ratio_tile) unless mid
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row[r].thr = !mid                ? -1.0f
                   : row[r].a0 == 0.0f ? INFINITY  // no key seen: every P~ is 0
                                       : round_as<T>(mid_prob<Score>(fminf(sc.u_mid, row[r].u_next), row[r].a0,
                                                                     __fmul_rn(row[r].a0, sc.mid_k)));
    }
  }
  return mid;
}

// Packed 16-bit max, and the larger half as fp32.
template <class T>
__device__ __forceinline__ uint32_t max2(uint32_t x, uint32_t y) {
  uint32_t r;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) asm("max.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(x), "r"(y));
  else asm("max.f16x2 %0, %1, %2;" : "=r"(r) : "r"(x), "r"(y));
  return r;
}
template <class T>
__device__ __forceinline__ float max_of_halves(uint32_t x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return fmaxf(__uint_as_float(x << 16), __uint_as_float(x & 0xffff0000u));
  } else {
    const __half2 h = *reinterpret_cast<const __half2*>(&x);
    return fmaxf(__low2float(h), __high2float(h));
  }
}

// The mid path without the row maximum, for a key block after one that took the mid path (every
// row that sees a key has its reference): P~ of every key by the mid path against the current
// reference, straight into the A operand pa (rounded to T) and the row sums rs; then the check, on
// the rounded P~: every row's largest P~ is below thr, the mid P~ of min(u_mid, u_next) rounded to
// T. P~ increases with u and rounding is monotone, so then every key has u <= u_mid (the mid path
// holds) and none asks for a rebase: ratio_tile would have computed the same P~ (the sums in
// another order). Returns that (warp-uniform); when false, pa and rs are garbage and s (the keys u,
// unchanged) goes to ratio_tile. Per key: the mid path, half a packed max and the rounding (done
// anyway), instead of ratio_tile's fp32 maximum and its quad reduction.
template <class T, class Score, int N>
__device__ __forceinline__ bool ratio_tile_fast(const Score& sc, const float (&s)[N], const LorentzRow (&row)[2],
                                                uint32_t (&pa)[N / 8][4], float (&rs)[2]) {
  const float a1m[2] = {__fmul_rn(row[0].a0, sc.mid_k), __fmul_rn(row[1].a0, sc.mid_k)};
  float part[2][2];    // row sums, 2 chains per row (registers: the keys u stay live meanwhile)
  uint32_t mx[2];      // packed maxima, one chain per row
  // k-step kk: elements 8kk .. 8kk + 7 = (c, e) with c = 2kk + (q >> 1), q = 2(c % 2) + e/2;
  // pa[kk][q] = (row q & 1, columns 16kk + 8(q >> 1) + 2t, + 1).
#pragma unroll
  for (int kk = 0; kk < N / 8; ++kk) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int i = 8 * kk + 2 * q, r = q & 1, ch = q >> 1;
      const float p0 = mid_prob<Score>(s[i], row[r].a0, a1m[r]);
      const float p1 = mid_prob<Score>(s[i + 1], row[r].a0, a1m[r]);
      pa[kk][q] = hopper::pack2<T>(p0, p1);
      mx[r] = kk == 0 && q < 2 ? pa[kk][q] : max2<T>(mx[r], pa[kk][q]);
      part[r][ch] = kk == 0 ? p0 + p1 : (part[r][ch] + p0) + p1;
    }
  }
  bool ok = true;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    ok = ok && max_of_halves<T>(mx[r]) < row[r].thr;
    rs[r] = part[r][0] + part[r][1];
  }
  return __all_sync(0xffffffffu, ok);
}

// The row's l (reference term counted as exactly 1) and L = s(ref) + ln l; inv = 1/l (0: no key).
template <class Score>
__device__ __forceinline__ void ratio_finish(const Score& sc, const LorentzRow& row, float l_sum, float& inv,
                                             float& lse) {
  const float l = row.a0 != 0.0f ? __fadd_rn(__fsub_rn(l_sum, row.p_self), 1.0f) : 0.0f;
  inv = l > 0.0f ? 1.0f / l : 0.0f;
  lse = l > 0.0f ? sc.s_of_y_hat(-2.0f * row.a0) + __log2f(l) * kLn2 : -INFINITY;
}

}  // namespace attnbench::kernels::tiled
