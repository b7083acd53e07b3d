// The fused vector-gate forward (gated/vector, gated/rwkv6) on warpgroup MMA (wgmma, sm_90a):
// one block of two warpgroups per (b, h), q/k and value widths in (64, 128] (zero-padded to 128).
// The math and the factoring of the gates are those of fused_vec_fwd
// (linear_family_tiled_fused_vec.cuh, whose off-diagonal tiles of A this kernel calls unchanged;
// its column phase is vec_columns_pk below, the same factors on column pairs with one exp an
// element: session 15). Two rounding points differ (session 16): in bf16 the diagonal blocks of A
// are products of bf16 operands on tensor cores (vec_diag_tc below; fused_vec: fp32 on CUDA cores,
// still used for fp16 and for spans beyond kSpanMax), and rwkv6's bonus a_r enters rd(A)'s diagonal
// (fused_vec: added in fp32 after the products). The state products are those of fused_wg_fwd
// (linear_family_tiled_fused_wg.cuh), everything transposed with the value columns as wgmma's M:
//   Qt = rd(q exp(bq)) = rd(qd P_I),  Kt = rd(k exp(last - b)) = rd(kd E_J)   (column phase, in place)
//   O^T  = rd(S^T) Qt^T + V^T rd(A)^T   (rwkv6: A_rr = a_r)   o = rd(scale O)
//   S^T <- S^T diag(exp(last)) + V^T Kt
// Warpgroup wg (warps 4wg..4wg+3) owns value columns n in [64wg, 64wg + 64): S^T is its m64n128
// accumulator (64 registers a thread), rd(S^T) packed to T is the register A operand of
// O^T = rd(S^T) Qt^T (B = Qt [r][d], K-major), V^T is V [j][n] read M-major, rd(A)^T is rd(A) [r][j]
// read K-major, and Kt [j][d] the N-major B of the state update. Since Qt carries the query's
// decay, O^T needs no element-wise step between its two products, and the state update needs only
// Kt and V: both products of S^T are issued right after the column phase and run while the warps
// form rd(A) (warps 0..3 the diagonal blocks, warps 4..7 the six off-diagonal tiles, all on
// mma.sync in bf16).
//
// Shared memory (VecTile with C::kSwz: q, k, v as 64-column chunks of 128-byte rows with the
// 128-byte swizzle, rd(A) one such chunk; g, qd, kd fp32 in padded rows as fused_vec): two stages
// of q, k, v, g; kd; rd(A); the gate constants; a_r. The output staging tile lives in kd's space.
// Per chunk c, three barriers:
//   wait chunk c; fence.proxy.async; B1 -> issue the loads of chunk c + 1 (stage (c+1)%2);
//      column phase (vec_columns_pk): b, qd (over g), kd, Qt (over q), Kt (over k), M, invD, exp(last),
//      rwkv6's a_r partials; fence.proxy.async;
//   B2 -> pack rd(S^T), S^T *= exp(last) per column d; issue rd(S^T) Qt^T (8 k-steps, m64n64)
//      and V^T Kt (4 k-steps, m64n128), one commit group; rd(A) blocks to shared memory;
//      (rwkv6: a_r = the column halves' partials on the diagonal); fence.proxy.async;
//   B3 -> issue V^T rd(A)^T (4 k-steps, m64n64), wait all; rd(scale O)
//      into the staging tile (kd's space: kd was last read before B3), warpgroup barrier, 16-byte
//      row stores.
// Hazards: stage (c+1)%2 was last read by chunk c - 1 (its wgmma waited for before its output,
// its generic reads before B1 of chunk c); rd(A) was last read by chunk c - 1's wgmma (waited);
// the staging tile is read by the warpgroup before B1 of chunk c + 1, after which kd is rewritten.
// The blocks of rd(A) above the diagonal are zeroed once and never written.
#pragma once

#include <type_traits>

#include "linear_family_tiled_fused_vec.cuh"
#include "linear_family_tiled_fused_wg.cuh"

namespace attnbench::kernels::lin_tiled {

// VecCfg at widths 128/128 (8 warps = 2 warpgroups) with the swizzled layout; VecTile<WgVecCfg>
// finds these tile sizes (they shadow VecCfg's).
template <class T_, bool kBonus_>
struct WgVecCfg : VecCfg<T_, kBonus_, 128, 128> {
  using Base = VecCfg<T_, kBonus_, 128, 128>;
  static constexpr bool kSwz = true;
  static constexpr int kChunk = kC * 128;    // one 64-column chunk of 64 rows: 8 KB
  static constexpr int kTile = 2 * kChunk;   // q, k or v of a chunk (wg_load's layout)
  static constexpr int kQBytes = kTile, kVBytes = kTile;
  static constexpr int kStageBytes = 2 * kQBytes + kVBytes + Base::kFBytes;
  static constexpr int kABytes = kChunk;     // rd(A) [64 r][64 j]
  static constexpr int kLdO = 128 + 8;       // output staging rows (in kd's space)
  static constexpr int kTotFloats = 4 * 128;  // vec_columns_pk: the 16-row blocks' gate sums [4][Dk]
  static constexpr int kSmemBytes = 1024 + 2 * kStageBytes + Base::kFBytes + kABytes + Base::kConstBytes +
                                    4 * kTotFloats + Base::kRowBytes + 32;
  static_assert(kStageBytes % 1024 == 0 && Base::kFBytes % 1024 == 0, "tiles stay 1024-byte aligned");
  static_assert(kC * kLdO * 2 <= Base::kFBytes, "the staging tile fits in kd's space");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block");
  // Measurement only (ATTNBENCH_LIN_VEC=abl<N>, wrong results): parts of each chunk skipped, bits
  // kAblColumns .. kAblLoads below; 0 in every kernel that computes.
  static constexpr int kAbl = 0;
};
constexpr int kAblColumns = 1, kAblA = 2, kAblWgmma = 4, kAblStore = 8, kAblDiag = 16, kAblLoads = 32;
// Not ablations (right results, for A/B against session 15's kernel): kAblFp32Diag, the diagonal
// blocks of A in fp32 on CUDA cores (vec_diag) in bf16 too; kAblBonusEpi, rwkv6's a_r v_r added in
// fp32 after the products (not through rd(A)'s diagonal).
constexpr int kAblFp32Diag = 256, kAblBonusEpi = 512;
template <class T_, bool kBonus_, int kAbl_>
struct WgVecAblCfg : WgVecCfg<T_, kBonus_> {
  static constexpr int kAbl = kAbl_;
};

// Chunk c's q, k, v (swizzled, wg_load) and g (padded fp32 rows) into stage c % 2.
template <class C>
__device__ __forceinline__ void vec_wg_load(const EngineParams& p, const VecTile<C>& t, const Rows& rows, int bh,
                                            int c) {
  const int s = c & 1;
  wg_load<C>(p, reinterpret_cast<unsigned char*>(t.Q(s)), rows, bh, c);
  vec_load_g<C>(p, p.g + int64_t(bh) * p.T * p.Dqk, t.G(s), rows, c);
}

// Pass 1 of a column-pair phase (warp: the 16-row block I, columns d, d + 1; G = the g rows from
// column d): the block's gates into g (kept for pass 2), its totals into Tot [4][kDk], then, after
// the named barrier of the column half's four warps, the ends e_q = the totals of blocks 0..q in
// order (vec_columns_pk, and the wgmma scans' scan_columns).
template <int kLdF, int kDk>
__device__ __forceinline__ void vec_block_ends(const float* G, float* Tot, int I, int half, int d, float2 (&g)[16],
                                               float2 (&e)[4]) {
  float2 run = make_float2(0.0f, 0.0f);
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    g[i] = *reinterpret_cast<const float2*>(G + (16 * I + i) * kLdF);
    run.x += g[i].x, run.y += g[i].y;
  }
  *reinterpret_cast<float2*>(Tot + I * kDk + d) = run;
  wg_named_barrier(3 + half, 128);
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const float2 tq = *reinterpret_cast<const float2*>(Tot + q * kDk + d);
    e[q] = q == 0 ? tq : make_float2(e[q - 1].x + tq.x, e[q - 1].y + tq.y);
  }
}

// The column phase (vec_columns' factors, operands and roundings; see the header of
// linear_family_tiled_fused_vec.cuh) on column pairs: warp w owns the 16-row block I = w >> 1 and
// the columns d = 64 (w & 1) + 2 lane, d + 1. A warp's shared-memory accesses are whole rows of its
// 64 columns (fp32 pairs of 8 bytes, 16-bit pairs of 4), free of bank conflicts; vec_columns' warps
// (16 columns, two 32-row parts) conflict two ways and access 16-bit elements one by one. Each
// thread's gates stay in registers between the passes, and a block's loads all issue before its
// stores. The blocks' totals meet through shared memory (Tot) under a named barrier of the four
// warps of a column half: e_I = e_{I-1} + (block I's running sum), in order, so b_r = e_{I-1} +
// (its running sum from the block's start), as vec_columns forms b across its parts.
template <class C>
__device__ void vec_columns_pk(const EngineParams& p, const VecTile<C>& t, int s, int c, int h, int warp, int lane) {
  using T = typename C::T;
  static_assert(C::kSwz && C::kDk == 128 && C::kThreads == 256, "the wgmma kernel's shape");
  const int I = warp >> 1, half = warp & 1, d = 64 * half + 2 * lane, r0 = 16 * I;
  float* G = t.G(s) + d;
  float* Kd = t.Kd() + d;
  // pass 1: the block's gates (kept) and its total
  float2 g[16], e[4];
  vec_block_ends<C::kLdF, C::kDk>(G, t.Tot(), I, half, d, g, e);
  const float2 last = e[3];
  const float2 ref_q = I == 0 ? make_float2(0.0f, 0.0f) : I == 1 ? e[0] : I == 2 ? e[1] : e[2];  // e_{I-1}
  const float2 e_i = I == 0 ? e[0] : I == 1 ? e[1] : I == 2 ? e[2] : e[3];
  if (I == 0) {  // per column: M_IJ, invD_I, exp(last), and the span test
    bool big = false;
#pragma unroll
    for (int i = 0; i < 6; ++i) {
      int Ii, Jj;
      vec_tile_ij(i, Ii, Jj);
      *reinterpret_cast<float2*>(t.M() + i * C::kDk + d) =
          make_float2(vec_exp(e[Ii - 1].x - e[Jj].x), vec_exp(e[Ii - 1].y - e[Jj].y));
    }
#pragma unroll
    for (int Ii = 0; Ii < 4; ++Ii) {
      const float2 prev = Ii == 0 ? make_float2(0.0f, 0.0f) : e[Ii - 1];
      *reinterpret_cast<float2*>(t.InvD() + Ii * C::kDk + d) =
          make_float2(vec_exp(prev.x - e[Ii].x), vec_exp(prev.y - e[Ii].y));
      big = big || prev.x - e[Ii].x > kSpanMax || prev.y - e[Ii].y > kSpanMax;
    }
    *reinterpret_cast<float2*>(t.Dec() + d) = make_float2(vec_exp(last.x), vec_exp(last.y));
    if (big) t.Flags()[c & 1] = 1;
  }
  // pass 2: per row, the factors and operands; the block's q and k pairs loaded first
  const float2 P = make_float2(vec_exp(ref_q.x), vec_exp(ref_q.y));
  const float2 E = make_float2(vec_exp(last.x - e_i.x), vec_exp(last.y - e_i.y));
  uint32_t qb[16], kb[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    qb[i] = *reinterpret_cast<const uint32_t*>(t.at(t.Q(s), 0, r0 + i, d));
    kb[i] = *reinterpret_cast<const uint32_t*>(t.at(t.K(s), 0, r0 + i, d));
  }
  float2 ud = make_float2(0.0f, 0.0f);
  if (C::kBonus && d < p.Dqk) ud = *reinterpret_cast<const float2*>(p.u + h * p.Dqk + d);
  float bon[C::kBonus ? 16 : 1];
  // One exp per element: x_u = exp(g_u) <= 1, and the factors as running products of them,
  //   exp(bq_t - e_{I-1}) = prod_{r0 <= u <= t} x_u   (rwkv6: u < t),
  //   exp(e_I - b_s)      = prod_{s < u <= r0 + 15} x_u,
  // each within ~16 roundings of fp32 (the direct form rounds the sums b instead), with the same
  // underflow to zero where the true factor is below fp32's normal range.
#pragma unroll
  for (int i = 0; i < 16; ++i) g[i] = make_float2(vec_exp(g[i].x), vec_exp(g[i].y));
  float2 f = make_float2(1.0f, 1.0f);
#pragma unroll
  for (int i = 0; i < 16; ++i) {  // queries, forward
    const int r = r0 + i;
    if constexpr (!C::kBonus) f.x *= g[i].x, f.y *= g[i].y;
    const float2 qv = unpack2<T>(qb[i]);
    const float2 qd = make_float2(qv.x * f.x, qv.y * f.y);
    *reinterpret_cast<float2*>(G + r * C::kLdF) = qd;
    *reinterpret_cast<uint32_t*>(t.at(t.Q(s), 0, r, d)) = pack2<T>(qd.x * P.x, qd.y * P.y);
    if constexpr (C::kBonus) {
      const float2 kv = unpack2<T>(kb[i]);
      bon[i] = qv.x * kv.x * ud.x + qv.y * kv.y * ud.y;
      f.x *= g[i].x, f.y *= g[i].y;
    }
  }
  f = make_float2(1.0f, 1.0f);
#pragma unroll
  for (int i = 15; i >= 0; --i) {  // keys, backward
    const int r = r0 + i;
    const float2 kv = unpack2<T>(kb[i]);
    const float2 kd = make_float2(kv.x * f.x, kv.y * f.y);
    *reinterpret_cast<float2*>(Kd + r * C::kLdF) = kd;
    *reinterpret_cast<uint32_t*>(t.at(t.K(s), 0, r, d)) = pack2<T>(kd.x * E.x, kd.y * E.y);
    f.x *= g[i].x, f.y *= g[i].y;
  }
  if constexpr (C::kBonus) {  // a_r over this warp's 64 columns: reduce-scatter over the lanes
    int row = r0;
    reduce_scatter<16, 16>(bon, lane, row);  // lanes l, l ^ 1 hold halves of row `row`'s sum
    const float a = bon[0] + __shfl_xor_sync(0xffffffffu, bon[0], 1);
    if ((lane & 1) == 0) t.BonP()[half * kC + row] = a;
  }
}

// rwkv6 with kAblBonusEpi (after B2): a_r = the two column halves' partials of row r.
template <class C>
__device__ __forceinline__ void vec_bonus_sum_pk(const VecTile<C>& t) {
  if (C::kBonus && threadIdx.x < kC) t.Bon()[threadIdx.x] = t.BonP()[threadIdx.x] + t.BonP()[kC + threadIdx.x];
}

// Diagonal block I of A on tensor cores (bf16; warp I < 4, session 16): A_tr = rd(qd_t invD_I) .
// rd(kd_r) over d, masked to r <= t (rwkv6: r < t, and A_tt = rd(a_t) from BonP, the two column
// halves' partials). vec_diag sums the same products in fp32; here the operands round to bf16 as in
// the off-diagonal tiles (vec_offdiag), and qd invD = q exp(bq - e_I) is at most exp(span_I) <=
// exp(kSpanMax) (the flag sends larger spans to vec_diag's exact path): bf16 holds it, fp16 does not.
template <class C, bool kBonA>
__device__ void vec_diag_tc(const VecTile<C>& t, int s, int I, int lane) {
  using T = typename C::T;
  static_assert(std::is_same<T, __nv_bfloat16>::value, "fp16 cannot hold qd invD");
  const int g = lane >> 2, q4 = lane & 3;
  float sc[2][4];
  vec_block_mma<C>(t, s, I, I, t.InvD() + I * C::kDk, sc, lane);
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int tt = g + 8 * hr, ss = 8 * nt + 2 * q4;  // row, first of the two keys (in the block)
      float x[2];
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const bool keep = C::kBonus ? ss + e < tt : ss + e <= tt;
        x[e] = keep ? sc[nt][2 * hr + e] : 0.0f;
        if (kBonA && ss + e == tt) x[e] = t.BonP()[16 * I + tt] + t.BonP()[kC + 16 * I + tt];
      }
      *reinterpret_cast<uint32_t*>(t.a_at(16 * I + tt, 16 * I + ss)) = pack2<T>(x[0], x[1]);
    }
  }
}

// grid (1, B*H); 256 threads; shared memory C::kSmemBytes. Forward order only.
template <class C>
__global__ void __launch_bounds__(256, 1) fused_vec_wg_fwd(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem_raw);
  const VecTile<C> t(LIN_WG_ALIGN1024(smem_raw));
  // (warp_uniform: uniform role branches, and wgmma descriptors in uniform registers)
  const int tid = threadIdx.x, warp = warp_uniform(tid >> 5), lane = tid & 31, t4 = lane & 3;
  const int wg = warp >> 2, wi = warp & 3;
  const int bh = blockIdx.y, h = bh % p.H;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, false, false};
  // rwkv6: a_r enters rd(A)'s diagonal (else the fp32 epilogue O^T += a_r v_r, kAblBonusEpi)
  constexpr bool kBonA = C::kBonus && !(C::kAbl & kAblBonusEpi);
  // bf16: the diagonal blocks of A on tensor cores (vec_diag_tc) unless a span is too large
  constexpr bool kTcDiag = std::is_same<T, __nv_bfloat16>::value && !(C::kAbl & kAblFp32Diag);
  T* o = static_cast<T*>(p.o) + int64_t(bh) * p.T * p.Dvv;
  T* Ost = reinterpret_cast<T*>(t.Kd());  // the output staging tile [r][n] (kd is dead after B3)
  float st[64];  // S^T rows n = 64wg + 16wi + g (+8), columns d = 8i + 2t4 (+1): st[4i + e]
#pragma unroll
  for (int i = 0; i < 64; ++i) st[i] = 0.0f;
  for (int i = tid; i < C::kABytes / 16; i += C::kThreads) reinterpret_cast<uint4*>(t.A())[i] = make_uint4(0u, 0u, 0u, 0u);
  if (tid == 0) t.Flags()[0] = t.Flags()[1] = 0;
  vec_wg_load<C>(p, t, rows, bh, 0);
  cp_async_commit();

  for (int c = 0; c < NC; ++c) {
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();  // B1: chunk c landed; chunk c - 1 done everywhere
    if (c + 1 < NC && !(C::kAbl & kAblLoads)) vec_wg_load<C>(p, t, rows, bh, c + 1);
    cp_async_commit();
    const int s = c & 1;
    if constexpr (!(C::kAbl & kAblColumns)) vec_columns_pk<C>(p, t, s, c, h, warp, lane);
    fence_proxy_async();  // Qt, Kt (generic stores) before the wgmma reads
    __syncthreads();      // B2
    if (tid == 0) t.Flags()[(c + 1) & 1] = 0;
    if constexpr (C::kBonus && !kBonA) vec_bonus_sum_pk<C>(t);
    const unsigned char* Qt = reinterpret_cast<const unsigned char*>(t.Q(s));
    const unsigned char* Kt = reinterpret_cast<const unsigned char*>(t.K(s));
    const unsigned char* Vw = reinterpret_cast<const unsigned char*>(t.V(s)) + wg * C::kChunk;  // 64 value columns
    const unsigned char* As = reinterpret_cast<const unsigned char*>(t.A());

    uint32_t sa[8][4];  // rd(S^T) as the A fragments of the 8 k-steps over d
    wg_pack_state<T>(st, sa);
    {
      const float* dec = t.Dec();  // exp(last) per column d
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        const float2 dd = *reinterpret_cast<const float2*>(dec + 8 * i + 2 * t4);
        st[4 * i] *= dd.x, st[4 * i + 1] *= dd.y, st[4 * i + 2] *= dd.x, st[4 * i + 3] *= dd.y;
      }
    }
    float acc_o[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) acc_o[i] = 0.0f;
    wg_fence();
    wg_fence_operands(acc_o);
    wg_fence_operands(st);
    if constexpr (!(C::kAbl & kAblWgmma)) {
#pragma unroll
      for (int kk = 0; kk < 8; ++kk) Wgmma<64, T>::template rs<0>(acc_o, sa[kk], wg_k_major(Qt, 0, kk));
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) Wgmma<128, T>::template ss<1, 1>(st, wg_mn_major(Vw, kk), wg_mn_major(Kt, kk));
    }
    wg_commit();

    // ---- rd(A): warps 0..3 diagonal block `warp` (fp32), warps 4..7 the off-diagonal tiles
    if constexpr (!(C::kAbl & kAblA)) {
      if (warp < 4) {
        if constexpr (C::kAbl & kAblDiag) {
        } else if constexpr (kTcDiag) {
          if (!t.Flags()[c & 1]) vec_diag_tc<C, kBonA>(t, s, warp, lane);
          else vec_diag<C, kBonA>(p, t, rows, s, bh, c, warp, lane);
        } else {
          vec_diag<C, kBonA>(p, t, rows, s, bh, c, warp, lane);
        }
      } else {
        vec_offdiag_warp<C>(t, s, warp, lane);
      }
    }
    fence_proxy_async();
    __syncthreads();  // B3: rd(A) and a_r ready
    wg_fence();
    wg_fence_operands(acc_o);
    if constexpr (!(C::kAbl & kAblWgmma)) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) Wgmma<64, T>::template ss<1, 0>(acc_o, wg_mn_major(Vw, kk), wg_k_major(As, 0, kk));
    }
    wg_commit();
    wg_wait<0>();
    wg_fence_operands(acc_o);
    wg_fence_operands(st);
    if constexpr (C::kBonus && !kBonA) {  // O^T[n][r] += a_r v_rn (fp32), as fused_vec before the scale
      const int n0 = 64 * wg + 16 * wi + (lane >> 2);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = 8 * i + 2 * t4 + (e & 1), n = n0 + 8 * (e >> 1);
          acc_o[4 * i + e] += t.Bon()[r] * to_f32(*t.v_at(s, r, n));
        }
      }
    }
    if constexpr (!(C::kAbl & kAblStore)) wg_store_o<C>(p, rows, c, acc_o, Ost, o, tid);
  }
}

}  // namespace attnbench::kernels::lin_tiled
