// Tiled softmax-family forward on Hopper (FlashAttention-2 loop order, FlashAttention-3 machinery).
//
// One CTA owns BM = 64*NC query rows of one (b, h) and streams the visible key blocks of BN keys
// of kv head hk = h / (H/Hkv). Per key block (one "item"; a policy with two slots visits the
// blocks of each slot in turn, see softmax_tiled_scores.cuh), each consumer warpgroup computes,
// for its 64 rows:
//   S = Q_slot K_slot^T                   wgmma, both operands in shared memory (K-major)
//   k = key(S), -inf where masked          (causal j <= i + off, j < Tk, the slot's pairs)
//   m = max(m, rowmax k) when it outgrows the reference by 2^8 (else the reference stays):
//       alpha = exp(s(m_old) - s(m)),  O *= alpha,  l *= alpha
//   P~ = exp(s(k) - s(m)) (prob());  l += rowsum P~
//   O += P~ V                              wgmma, P~ from registers (rounded to the storage dtype),
//                                          V in shared memory (MN-major)
// and at the end o = O / l, L = s(m) + ln l (-inf and o = 0 for a row that sees no key). The
// producer warp streams K and V through a ring of STAGES slots with TMA (separate full/empty
// mbarriers for K and V, so S can start before V lands); Q is loaded once.
#pragma once

#include "softmax_tiled_ratio.cuh"
#include "softmax_tiled_tile.cuh"

namespace attnbench::kernels::tiled {

// Session 5 (all default on; off only for the A/B of ATTNBENCH_HYP_FWD, softmax_tiled_launch.cuh):
//   kMid:  the ratio-domain forward's mid path (softmax_tiled_ratio.cuh);
//   kQ0:   the Lorentz q0 from the Q tile in shared memory (q0_from_tile) instead of the q0 array;
//   kFast: with kMid, at D = 64, ratio_tile_fast before ratio_tile on a key block when the warp's
//          previous block went through ratio_tile's mid path or through ratio_tile_fast (so never on
//          the first block, and data that misses the mid path pays for one failed try at most per
//          change of path); it keeps the keys u live next to P~, which fits in the registers at
//          D = 64 only.
// Session 5, round 2 (the default of the ratio-domain forward in bf16; ATTNBENCH_HYP_FWD=s5 without it):
//   kFold: with kQ0, the rank-one term folded into S = Q K^T (one more k-step of 16), so the
//          accumulator is the key u = q.k - q0 k0 itself (no fma per score). The extra columns
//          carry the splits x0 = x0h + x0m + x0l (each rounded to T, exact differences; in bf16
//          the three significands cover fp32's): Q side [-q0h, -q0h, -q0m, -q0h, -q0m, -q0l, -q0m,
//          -q0l, 0 ...], K side [k0h, k0m, k0h, k0l, k0m, k0h, k0l, k0m, 0 ...], whose dot product
//          is -q0 k0 but for q0l k0l (worst 4.6e-11 relative over 20000 random bf16 splits of
//          fp32 values in [1, 300]; without the last two columns 4.2e-8). The tensor core adds the
//          products (exact) to q.k in fp32, so u carries the same kind of error as the
//          accumulator q.k already does (a few ulps of max(|q.k|, q0 k0)). Slabs of 16 columns,
//          32-byte rows with the 32-byte swizzle: the K side from tiled_time_coords (kx array,
//          already in that layout), the Q side written by the consumers from their q0.
template <class T_, int D_, int NC_, int BN_, int STAGES_, bool kMid_ = true, bool kQ0_ = true, bool kFast_ = true,
          bool kFold_ = false>
struct FwdConfig {
  using T = T_;
  static constexpr int D = D_, NC = NC_, BM = 64 * NC_, BN = BN_, STAGES = STAGES_;
  static constexpr bool kMid = kMid_, kQ0 = kQ0_, kFast = kFast_ && kMid_ && D_ == 64, kFold = kFold_ && kQ0_;
  static constexpr int kThreads = 128 * (NC + 1);
  static constexpr uint32_t kQBytes = BM * D * 2, kKVBytes = BN * D * 2;
  // Leave P~ V in flight until the next block's S = Q K^T has been issued behind it (one wait per
  // block instead of two); needs P~ to stay in registers meanwhile, which fits for D = 64.
  static constexpr bool kDeferPV = D == 64;
};

// Shared memory: Q[slot] (BM x D), then per stage K (BN x D), V (BN x D), k0 (BN fp32, Lorentz;
// kFold: the K side's 16 extra columns, BN x 32 bytes), then (kFold) the Q side's extra columns
// (BM x 32 bytes), then the barriers.
template <class Cfg, class Score>
struct FwdLayout {
  static constexpr uint32_t kQ = 0;
  static constexpr uint32_t kK = kQ + Score::kSlots * Cfg::kQBytes;
  static constexpr uint32_t kV = kK + Cfg::STAGES * Cfg::kKVBytes;
  static constexpr uint32_t kAux = kV + Cfg::STAGES * Cfg::kKVBytes;
  static constexpr bool kFold = Score::kLorentz && Cfg::kFold;
  static constexpr uint32_t kAuxBytes = !Score::kLorentz ? 0 : kFold ? Cfg::BN * 32 : Cfg::BN * 4;
  static constexpr uint32_t kQx = kAux + Cfg::STAGES * kAuxBytes;  // 32-byte swizzle: 256-byte aligned
  static constexpr uint32_t kBar = kQx + (kFold ? Cfg::BM * 32 : 0);
  static_assert(kQx % 256 == 0, "fold: the 32-byte swizzle repeats every 256 bytes");
  static constexpr uint32_t kBytes = kBar + (1 + 4 * Cfg::STAGES) * 8 + kSmemSlack;
};

template <class Score>
struct FwdArgs {
  CUtensorMap q[2], k[2], v;  // per slot; box rows BM (q) and BN (k, v)
  Score score;
  void* o;     // [B, H, Tq, D]
  float* lse;  // [B, H, Tq]
  Geometry geo;
  int H, Hkv, TqP, TkP;
};

template <class Cfg, class Score>
__device__ __forceinline__ void fwd_producer(const FwdArgs<Score>& a, uint8_t* smem, uint64_t* bars, int m0, int bh,
                                             int bhk, const Phases& ph) {
  using L = FwdLayout<Cfg, Score>;
  constexpr int S = Cfg::STAGES, BN = Cfg::BN;
  uint64_t *q_full = bars, *k_full = bars + 1, *k_empty = k_full + S, *v_full = k_empty + S, *v_empty = v_full + S;
  hopper::mbar_arrive_expect_tx(q_full, Score::kSlots * Cfg::kQBytes);
#pragma unroll
  for (int s = 0; s < Score::kSlots; ++s) {
    hopper::tma_load_4d(smem + L::kQ + s * Cfg::kQBytes, &a.q[s], 0, m0, 0, bh, q_full);
  }
  int it = 0;
  for (int p = 0; p < ph.n; ++p) {
    const Phase cur = ph.at(p);
    const int slot = cur.slot;
    for (int nb = cur.begin; nb < cur.end; ++nb, ++it) {
      const int st = it % S;
      const uint32_t par = (it / S) & 1;
      hopper::mbar_wait(&k_empty[st], par ^ 1);
      hopper::mbar_arrive_expect_tx(&k_full[st], Cfg::kKVBytes + L::kAuxBytes);
      hopper::tma_load_4d(smem + L::kK + st * Cfg::kKVBytes, &a.k[slot], 0, nb * BN, 0, bhk, &k_full[st]);
      if constexpr (L::kFold) {
        hopper::bulk_load(smem + L::kAux + st * L::kAuxBytes,
                          static_cast<const uint8_t*>(a.score.kx) + (int64_t(bhk) * a.TkP + nb * BN) * 32,
                          L::kAuxBytes, &k_full[st]);
      } else if constexpr (Score::kLorentz) {
        hopper::bulk_load(smem + L::kAux + st * L::kAuxBytes, a.score.k0 + int64_t(bhk) * a.TkP + nb * BN,
                          L::kAuxBytes, &k_full[st]);
      }
      hopper::mbar_wait(&v_empty[st], par ^ 1);
      hopper::mbar_arrive_expect_tx(&v_full[st], Cfg::kKVBytes);
      hopper::tma_load_4d(smem + L::kV + st * Cfg::kKVBytes, &a.v, 0, nb * BN, 0, bhk, &v_full[st]);
    }
  }
}

// q0 = sqrt(1/c + |q|^2) of this thread's rows (warp rows g and g + 8, g = lane/4) from the Q tile
// (BM rows, swizzled), by time_coord(): the same bits as tiled_time_coords, which the backward
// uses. The warp's 16 rows in 4 rounds of 4 (8 lanes per row); round it leaves row 4 it + lane/8 in
// lanes 8 (lane/8) .. + 7, and row rho reaches its lanes (g = rho or rho - 8) by one shuffle.
template <class T, int D, int BM>
__device__ __forceinline__ void q0_from_tile(const uint8_t* q_tile, int warp_row0, int lane, float inv_c,
                                             float (&qa)[2]) {
  const int grp = lane >> 3, j = lane & 7, g = lane >> 2;
#pragma unroll
  for (int it = 0; it < 4; ++it) {
    const int r = warp_row0 + 4 * it + grp;
    uint4 chunk[D / 64];
#pragma unroll
    for (int k = 0; k < D / 64; ++k) {
      chunk[k] = *reinterpret_cast<const uint4*>(q_tile + k * BM * 128 + r * 128 + ((j ^ (r & 7)) << 4));
    }
    const float v = __shfl_sync(0xffffffffu, time_coord<T, D>(chunk, inv_c), 8 * (g & 3));
    if ((g >> 2) == it) qa[0] = v;
    if ((g >> 2) + 2 == it) qa[1] = v;
  }
}

// kFold: K-major descriptor of a 16-column slab with 32-byte rows and the 32-byte swizzle (16-byte
// chunk j of row r at r*32 + 16 (j ^ (r/4 % 2)); 8-row groups 256 bytes apart; base 256-aligned).
__device__ __forceinline__ uint64_t desc_k_major_sw32(uint32_t addr) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(256 >> 4) << 32) | (uint64_t(3) << 62);
}
template <class Cfg, class Score>
__device__ __forceinline__ void fwd_consumer(const FwdArgs<Score>& a, uint8_t* smem, uint64_t* bars, int wg, int m0,
                                             int bh, const Phases& ph) {
  using T = typename Cfg::T;
  using L = FwdLayout<Cfg, Score>;
  constexpr int S = Cfg::STAGES, BM = Cfg::BM, BN = Cfg::BN, D = Cfg::D;
  uint64_t *q_full = bars, *k_full = bars + 1, *k_empty = k_full + S, *v_full = k_empty + S, *v_empty = v_full + S;
  const Geometry& g = a.geo;
  const Frag f = Frag::make();
  const int tile_row0 = wg * 64;                // this warpgroup's first row in the block
  const int i0 = m0 + tile_row0 + f.row;        // global rows i0 (e/2 = 0) and i0 + 8 (e/2 = 1)
  const int i_lo = m0 + tile_row0, i_hi = i_lo + 63;
  const uint32_t sbase = hopper::smem_u32(smem);

  float o_acc[D / 2];
  zero(o_acc);
  float m_ref[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};  // reference key, sum of P~
  LorentzRow row[2];  // the reference of the ratio-domain forward (Score::kRatio) instead of m_ref
  float qa[2] = {0.0f, 0.0f};  // Lorentz q0 of the two rows
  if constexpr (Score::kLorentz && !Cfg::kQ0) {
#pragma unroll
    for (int r = 0; r < 2; ++r) qa[r] = i0 + 8 * r < g.Tq ? a.score.q0[int64_t(bh) * a.TqP + i0 + 8 * r] : 0.0f;
  }
  hopper::mbar_wait(q_full, 0);
  if constexpr (Score::kLorentz && Cfg::kQ0) {
    q0_from_tile<T, D, BM>(smem + L::kQ, tile_row0 + (f.row & ~15), f.lane, a.score.inv_c, qa);
#pragma unroll
    for (int r = 0; r < 2; ++r) qa[r] = i0 + 8 * r < g.Tq ? qa[r] : 0.0f;
  }
  if constexpr (L::kFold) {  // this warpgroup's 64 rows of the Q side's extra columns
    const int t = f.lane & 3;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row_ = tile_row0 + f.row + 8 * r;
      *reinterpret_cast<uint2*>(smem + L::kQx + row_ * 32 + (((t >> 1) ^ ((row_ >> 2) & 1)) << 4) + (t & 1) * 8) =
          fold_q_quarter<T>(qa[r], t);
    }
    hopper::fence_proxy_async();  // generic-proxy stores, read by wgmma
    hopper::named_barrier_sync(1 + wg, 128);
  }

  int it = 0;
  for (int p = 0; p < ph.n; ++p) {
    const Phase cur = ph.at(p);
    const int slot = cur.slot;
    const uint32_t q_tile = sbase + L::kQ + slot * Cfg::kQBytes;
    for (int nb = cur.begin; nb < cur.end; ++nb, ++it) {
      const int st = it % S;
      const uint32_t par = (it / S) & 1;
      const int n0 = nb * BN;

      // S = Q K^T
      float s[BN / 2];
      hopper::mbar_wait(&k_full[st], par);
      const uint32_t k_tile = sbase + L::kK + st * Cfg::kKVBytes;
      hopper::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        hopper::wgmma_ss<T, BN>(s, hopper::desc_k_major(q_tile, BM, tile_row0, kk),
                                hopper::desc_k_major(k_tile, BN, 0, kk), kk > 0);
      }
      if constexpr (L::kFold) {  // + (-q0 k0): the accumulator is the key u
        hopper::wgmma_ss<T, BN>(s, desc_k_major_sw32(sbase + L::kQx + tile_row0 * 32),
                                desc_k_major_sw32(sbase + L::kAux + st * L::kAuxBytes), 1);
      }
      hopper::wgmma_commit();
      hopper::wgmma_wait<0>();  // with kDeferPV, the previous block's P~ V completes here too
      hopper::fence_operands(s);
      if constexpr (Cfg::kDeferPV) {
        hopper::fence_operands(o_acc);
        if (it > 0 && f.lane == 0) hopper::mbar_arrive(&v_empty[(it - 1) % S]);
      }

      // keys of the policy (monotone in s), -inf where masked
      const float* k0s = reinterpret_cast<const float*>(smem + L::kAux + st * L::kAuxBytes);
#pragma unroll
      for (int c = 0; c < (L::kFold ? 0 : BN / 8); ++c) {
        float2 ka = {0.0f, 0.0f};  // k0 of columns 8c + col, 8c + col + 1
        if constexpr (Score::kLorentz) ka = *reinterpret_cast<const float2*>(k0s + 8 * c + f.col);
#pragma unroll
        for (int e = 0; e < 4; ++e) s[4 * c + e] = a.score.key(s[4 * c + e], qa[e >> 1], (e & 1) ? ka.y : ka.x);
      }
      if (f.lane == 0) hopper::mbar_arrive(&k_empty[st]);  // K (and k0) no longer read
      const bool partial = !tile_full(g, a.score, slot, i_lo, i_hi, n0, n0 + BN - 1);
      Range vis[2]{};  // visible tile columns 8c + e%2 of each row, relative to this thread's first
      if (partial) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          vis[r] = keys_seen_by(g, a.score, slot, i0 + 8 * r);
          vis[r].lo -= n0 + f.col, vis[r].hi -= n0 + f.col;
        }
#pragma unroll
        for (int c = 0; c < BN / 8; ++c)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int x = 8 * c + (e & 1);
            if (x < vis[e >> 1].lo || x > vis[e >> 1].hi) s[4 * c + e] = -INFINITY;
          }
      }

      // online softmax against the running reference m_ref (moved only when the row maximum
      // outgrows it by 2^8, see rebase()); P~ = exp(s - s(m_ref)), rounded to T for P~ V
      float alpha[2] = {1.0f, 1.0f}, rs[2] = {0.0f, 0.0f};
      bool rescale = false;
      uint32_t pa[BN / 16][4];
      bool have_pa = false;
      if constexpr (Score::kRatio) {
        if constexpr (Cfg::kFast) {  // row.thr < 0: the warp's previous block missed the mid path (or none yet)
          if (__all_sync(0xffffffffu, row[0].thr >= 0.0f)) have_pa = ratio_tile_fast<T>(a.score, s, row, pa, rs);
        }
        if (!have_pa) ratio_tile<T, Cfg::kMid, Cfg::kFast>(a.score, s, row, partial, vis, alpha, rs, rescale);
      } else {
        float mx[2] = {m_ref[0], m_ref[1]}, base[2];
#pragma unroll
        for (int c = 0; c < BN / 8; ++c) {
          mx[0] = fmaxf(mx[0], fmaxf(s[4 * c], s[4 * c + 1]));
          mx[1] = fmaxf(mx[1], fmaxf(s[4 * c + 2], s[4 * c + 3]));
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          mx[r] = quad_max(mx[r]);
          if (a.score.rebase(mx[r], m_ref[r])) {
            alpha[r] = m_ref[r] == -INFINITY ? 0.0f : a.score.prob(m_ref[r], mx[r]);
            m_ref[r] = mx[r];
            rescale = true;
          }
          base[r] = m_ref[r] == -INFINITY ? 0.0f : m_ref[r];  // nothing visible yet: P~ = 0
        }
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) {
          const float pk = a.score.prob(s[i], base[(i >> 1) & 1]);
          rs[(i >> 1) & 1] += a.score.sum_term(pk, s[i], base[(i >> 1) & 1]);
          s[i] = pk;
        }
      }
      if (!have_pa) to_a_operand<T>(s, pa);
#pragma unroll
      for (int r = 0; r < 2; ++r) l_run[r] = l_run[r] * alpha[r] + rs[r];
      if (rescale) {
#pragma unroll
        for (int i = 0; i < D / 2; ++i) o_acc[i] *= alpha[(i >> 1) & 1];
      }

      // O += P~ V
      hopper::mbar_wait(&v_full[st], par);
      const uint32_t v_tile = sbase + L::kV + st * Cfg::kKVBytes;
      hopper::fence_operands(o_acc);
      hopper::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        hopper::wgmma_rs<T, D>(o_acc, pa[kk], hopper::desc_mn_major(v_tile, BN, kk), 1);
      }
      hopper::wgmma_commit();
      if constexpr (!Cfg::kDeferPV) {
        hopper::wgmma_wait<0>();
        hopper::fence_operands(o_acc);
        if (f.lane == 0) hopper::mbar_arrive(&v_empty[st]);
      }
    }
  }
  if constexpr (Cfg::kDeferPV) {
    hopper::wgmma_wait<0>();
    hopper::fence_operands(o_acc);
    if (it > 0 && f.lane == 0) hopper::mbar_arrive(&v_empty[(it - 1) % S]);
  }

  // o = O / l, L = s(m_ref) + ln l
  float inv[2], lse[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float l = final_row_sum(a.score, quad_sum(l_run[r]), m_ref[r]);  // based: + eps / a_ref
    if constexpr (Score::kRatio) {
      ratio_finish(a.score, row[r], l, inv[r], lse[r]);
    } else {
      inv[r] = l > 0.0f ? 1.0f / l : 0.0f;
      lse[r] = l > 0.0f ? a.score.natural(m_ref[r]) + __log2f(l) * kLn2 : -INFINITY;
    }
  }
  T* o = static_cast<T*>(a.o) + int64_t(bh) * g.Tq * D;
  store_tile<T, D>(o, m0 + tile_row0, g.Tq, f, o_acc, inv);
  if ((f.lane & 3) == 0) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      if (i0 + 8 * r < g.Tq) a.lse[int64_t(bh) * g.Tq + i0 + 8 * r] = lse[r];
    }
  }
}

template <class Cfg, class Score>
__global__ void __launch_bounds__(Cfg::kThreads, 1) tiled_forward(const __grid_constant__ FwdArgs<Score> a) {
  using L = FwdLayout<Cfg, Score>;
  constexpr int S = Cfg::STAGES, NC = Cfg::NC;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = align_smem(smem_raw);
  uint64_t* bars = reinterpret_cast<uint64_t*>(smem + L::kBar);  // q_full, k_full[S], k_empty[S], v_full[S], v_empty[S]
  if (threadIdx.x == 0) {
    hopper::mbar_init(bars, 1);
    for (int s = 0; s < S; ++s) {
      hopper::mbar_init(bars + 1 + s, 1);
      hopper::mbar_init(bars + 1 + S + s, 4 * NC);
      hopper::mbar_init(bars + 1 + 2 * S + s, 1);
      hopper::mbar_init(bars + 1 + 3 * S + s, 4 * NC);
    }
    hopper::fence_barrier_init();
  }
  __syncthreads();

  // Longest rows first: under a causal mask the last query blocks see the most keys.
  const int m0 = (gridDim.x - 1 - blockIdx.x) * Cfg::BM;
  const int bh = blockIdx.y, b = bh / a.H, h = bh % a.H, bhk = b * a.Hkv + h / (a.H / a.Hkv);
  const Phases ph = a.score.query_phases(a.geo, m0, min(m0 + Cfg::BM, a.geo.Tq) - 1, Cfg::BN);
  const int wg = threadIdx.x / 128;
  if (wg == 0) {
    hopper::setmaxnreg_dec<RegSplit<NC>::kProducer>();
    if (threadIdx.x == 0) fwd_producer<Cfg, Score>(a, smem, bars, m0, bh, bhk, ph);
  } else {
    hopper::setmaxnreg_inc<RegSplit<NC>::kConsumer>();
    fwd_consumer<Cfg, Score>(a, smem, bars, wg - 1, m0, bh, ph);
  }
}

}  // namespace attnbench::kernels::tiled
