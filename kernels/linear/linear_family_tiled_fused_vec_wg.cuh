// The fused vector-gate forward (gated/vector, gated/rwkv6) on warpgroup MMA (wgmma, sm_90a):
// one block of two warpgroups per (b, h), q/k and value widths in (64, 128] (zero-padded to 128).
// The math, the factoring of the gates and every rounding point are those of fused_vec_fwd
// (linear_family_tiled_fused_vec.cuh, whose column phase, diagonal and off-diagonal blocks of A
// this kernel calls unchanged); the state products are those of fused_wg_fwd
// (linear_family_tiled_fused_wg.cuh), everything transposed with the value columns as wgmma's M:
//   Qt = rd(q exp(bq)) = rd(qd P_I),  Kt = rd(k exp(last - b)) = rd(kd E_J)   (column phase, in place)
//   O^T  = rd(S^T) Qt^T + V^T rd(A)^T   [+ a_r v_r, rwkv6, fp32]   o = rd(scale O)
//   S^T <- S^T diag(exp(last)) + V^T Kt
// Warpgroup wg (warps 4wg..4wg+3) owns value columns n in [64wg, 64wg + 64): S^T is its m64n128
// accumulator (64 registers a thread), rd(S^T) packed to T is the register A operand of
// O^T = rd(S^T) Qt^T (B = Qt [r][d], K-major), V^T is V [j][n] read M-major, rd(A)^T is rd(A) [r][j]
// read K-major, and Kt [j][d] the N-major B of the state update. Since Qt carries the query's
// decay, O^T needs no element-wise step between its two products, and the state update needs only
// Kt and V: both products of S^T are issued right after the column phase and run while the warps
// form rd(A) (warps 0..3 the diagonal blocks in fp32, warps 4..7 the six off-diagonal tiles on
// mma.sync, as fused_vec).
//
// Shared memory (VecTile with C::kSwz: q, k, v as 64-column chunks of 128-byte rows with the
// 128-byte swizzle, rd(A) one such chunk; g, qd, kd fp32 in padded rows as fused_vec): two stages
// of q, k, v, g; kd; rd(A); the gate constants; a_r. The output staging tile lives in kd's space.
// Per chunk c, three barriers:
//   wait chunk c; fence.proxy.async; B1 -> issue the loads of chunk c + 1 (stage (c+1)%2);
//      column phase (vec_columns): b, qd (over g), kd, Qt (over q), Kt (over k), M, invD, exp(last),
//      rwkv6's a_r partials; fence.proxy.async;
//   B2 -> a_r; pack rd(S^T), S^T *= exp(last) per column d; issue rd(S^T) Qt^T (8 k-steps, m64n64)
//      and V^T Kt (4 k-steps, m64n128), one commit group; rd(A) blocks to shared memory;
//      fence.proxy.async;
//   B3 -> issue V^T rd(A)^T (4 k-steps, m64n64), wait all; [rwkv6: O^T += a_r v_r]; rd(scale O)
//      into the staging tile (kd's space: kd was last read before B3), warpgroup barrier, 16-byte
//      row stores.
// Hazards: stage (c+1)%2 was last read by chunk c - 1 (its wgmma waited for before its output,
// its generic reads before B1 of chunk c); rd(A) was last read by chunk c - 1's wgmma (waited);
// the staging tile is read by the warpgroup before B1 of chunk c + 1, after which kd is rewritten.
// The blocks of rd(A) above the diagonal are zeroed once and never written.
#pragma once

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
  static constexpr int kSmemBytes =
      1024 + 2 * kStageBytes + Base::kFBytes + kABytes + Base::kConstBytes + Base::kRowBytes + 32;
  static_assert(kStageBytes % 1024 == 0 && Base::kFBytes % 1024 == 0, "tiles stay 1024-byte aligned");
  static_assert(kC * kLdO * 2 <= Base::kFBytes, "the staging tile fits in kd's space");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block");
  // Measurement only (ATTNBENCH_LIN_VEC=abl<N>, wrong results): parts of each chunk skipped, bits
  // kAblColumns .. kAblLoads below; 0 in every kernel that computes.
  static constexpr int kAbl = 0;
};
constexpr int kAblColumns = 1, kAblA = 2, kAblWgmma = 4, kAblStore = 8, kAblDiag = 16, kAblLoads = 32;
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

// grid (1, B*H); 256 threads; shared memory C::kSmemBytes. Forward order only.
template <class C>
__global__ void __launch_bounds__(256, 1) fused_vec_wg_fwd(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem_raw);
  const VecTile<C> t(LIN_WG_ALIGN1024(smem_raw));
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, t4 = lane & 3;
  const int wg = warp >> 2, wi = warp & 3;
  const int bh = blockIdx.y, h = bh % p.H;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, false, false};
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
    if constexpr (!(C::kAbl & kAblColumns)) vec_columns<C>(p, t, s, c, h, warp, lane);
    fence_proxy_async();  // Qt, Kt (generic stores) before the wgmma reads
    __syncthreads();      // B2
    if (tid == 0) t.Flags()[(c + 1) & 1] = 0;
    vec_bonus_sum<C>(t);
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
        if constexpr (!(C::kAbl & kAblDiag)) vec_diag<C>(p, t, rows, s, bh, c, warp, lane);
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
    if constexpr (C::kBonus) {  // O^T[n][r] += a_r v_rn (fp32), as fused_vec before the scale
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
