// Tiled softmax-family backward on Hopper, part 2: the dQ kernel (see softmax_tiled_bwd.cuh for
// the split and the notation).
//
// A CTA owns BM = 64*NC query rows of one (b, h), with Q[slot] and dO resident in shared memory;
// K, V (and k0 for the Lorentz score) of key blocks of BN keys stream through STAGES slots. Per key
// block each consumer warpgroup computes for its 64 rows:
//   S = Q_slot K_slot^T,  dP = dO V^T               (shared x shared, K-major, N = BN)
//   P = exp(s - L_i),  dS = P (dP - D_i),  G = dS ds/du, rounded to the storage dtype
// (P is formed while dP = dO V^T is in flight)
//   dQ += G K_slot                                  (registers x shared, MN-major, N = D)
// and when the slot's phase ends, dq_slot = factor (dQ - diag(q/q0) G k0) (the correction for the
// Lorentz score only).
#pragma once

#include "softmax_tiled_tile.cuh"

namespace attnbench::kernels::tiled {

template <class T_, int D_, int NC_, int BN_, int STAGES_>
struct DqConfig {
  using T = T_;
  static constexpr int D = D_, NC = NC_, BM = 64 * NC_, BN = BN_, STAGES = STAGES_;
  static constexpr int kThreads = 128 * (NC + 1);
  static constexpr uint32_t kQBytes = BM * D * 2, kKVBytes = BN * D * 2;
};

// Shared memory: Q[slot], dO (BM x D), then per stage K, V (BN x D) and k0 (BN fp32, Lorentz),
// then the barriers.
template <class Cfg, class Score>
struct DqLayout {
  static constexpr uint32_t kQ = 0;
  static constexpr uint32_t kDO = kQ + Score::kSlots * Cfg::kQBytes;
  static constexpr uint32_t kK = kDO + Cfg::kQBytes;
  static constexpr uint32_t kV = kK + Cfg::STAGES * Cfg::kKVBytes;
  static constexpr uint32_t kAux = kV + Cfg::STAGES * Cfg::kKVBytes;
  static constexpr uint32_t kAuxBytes = Score::kLorentz ? Cfg::BN * 4 : 0;
  static constexpr uint32_t kBar = kAux + Cfg::STAGES * kAuxBytes;
  static constexpr uint32_t kBytes = kBar + (1 + 2 * Cfg::STAGES) * 8 + kSmemSlack;
};

template <class Score>
struct DqArgs {
  CUtensorMap q[2], k[2], v, dout;  // box rows: BM (q, dout), BN (k, v)
  Score score;
  const float* lse;   // [B*H][TqP], L_i
  const float* dvec;  // [B*H][TqP]
  void* dq[2];        // [B, H, Tq, D] per slot
  Geometry geo;
  int H, Hkv, TqP, TkP;
};

template <class Cfg, class Score>
__device__ __forceinline__ void dq_producer(const DqArgs<Score>& a, uint8_t* smem, uint64_t* bars, int m0, int bh,
                                            int bhk, const Phases& ph) {
  using L = DqLayout<Cfg, Score>;
  constexpr int S = Cfg::STAGES, BN = Cfg::BN;
  uint64_t *q_full = bars, *full = bars + 1, *empty = bars + 1 + S;
  hopper::mbar_arrive_expect_tx(q_full, (Score::kSlots + 1) * Cfg::kQBytes);
#pragma unroll
  for (int s = 0; s < Score::kSlots; ++s) {
    hopper::tma_load_4d(smem + L::kQ + s * Cfg::kQBytes, &a.q[s], 0, m0, 0, bh, q_full);
  }
  hopper::tma_load_4d(smem + L::kDO, &a.dout, 0, m0, 0, bh, q_full);
  int it = 0;
  for (int p = 0; p < ph.n; ++p) {
    const Phase cur = ph.at(p);
    const int slot = cur.slot;
    for (int nb = cur.begin; nb < cur.end; ++nb, ++it) {
      const int st = it % S;
      const uint32_t par = (it / S) & 1;
      hopper::mbar_wait(&empty[st], par ^ 1);
      hopper::mbar_arrive_expect_tx(&full[st], 2 * Cfg::kKVBytes + L::kAuxBytes);
      hopper::tma_load_4d(smem + L::kK + st * Cfg::kKVBytes, &a.k[slot], 0, nb * BN, 0, bhk, &full[st]);
      hopper::tma_load_4d(smem + L::kV + st * Cfg::kKVBytes, &a.v, 0, nb * BN, 0, bhk, &full[st]);
      if constexpr (Score::kLorentz) {
        hopper::bulk_load(smem + L::kAux + st * L::kAuxBytes, a.score.k0 + int64_t(bhk) * a.TkP + nb * BN,
                          L::kAuxBytes, &full[st]);
      }
    }
  }
}

template <class Cfg, class Score>
__device__ __forceinline__ void dq_consumer(const DqArgs<Score>& a, uint8_t* smem, uint64_t* bars, int wg, int m0,
                                            int bh, const Phases& ph) {
  using T = typename Cfg::T;
  using L = DqLayout<Cfg, Score>;
  constexpr int S = Cfg::STAGES, BM = Cfg::BM, BN = Cfg::BN, D = Cfg::D;
  uint64_t *q_full = bars, *full = bars + 1, *empty = bars + 1 + S;
  const Geometry& g = a.geo;
  const Frag f = Frag::make();
  const int tile_row0 = wg * 64;
  const int i0 = m0 + tile_row0 + f.row;  // query rows i0 (e/2 = 0), i0 + 8 (e/2 = 1)
  const int i_lo = m0 + tile_row0, i_hi = i_lo + 63;
  const uint32_t sbase = hopper::smem_u32(smem);

  float lse[2], dd[2], qa[2] = {0.0f, 0.0f};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = i0 + 8 * r;
    const int64_t row = int64_t(bh) * a.TqP + i;
    lse[r] = i < g.Tq ? a.lse[row] : 0.0f;
    dd[r] = i < g.Tq ? a.dvec[row] : 0.0f;
    if constexpr (Score::kLorentz) qa[r] = i < g.Tq ? a.score.q0[row] : 0.0f;
  }
  float dq_acc[D / 2];
  zero(dq_acc);
  float rsum[2] = {0.0f, 0.0f};  // Lorentz: sum_j G_ij k0_j
  hopper::mbar_wait(q_full, 0);
  const uint32_t do_tile = sbase + L::kDO;

  int it = 0;
  for (int p = 0; p < ph.n; ++p) {
    const Phase cur = ph.at(p);
    const int slot = cur.slot;
    const uint32_t q_tile = sbase + L::kQ + slot * Cfg::kQBytes;
    for (int nb = cur.begin; nb < cur.end; ++nb, ++it) {
      const int st = it % S;
      const uint32_t par = (it / S) & 1;
      const int n0 = nb * BN;
      const uint32_t k_tile = sbase + L::kK + st * Cfg::kKVBytes;
      const uint32_t v_tile = sbase + L::kV + st * Cfg::kKVBytes;
      hopper::mbar_wait(&full[st], par);

      // S = Q K^T and dP = dO V^T as two groups: P is formed while dP is in flight
      float s[BN / 2], dp[BN / 2];
      hopper::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        hopper::wgmma_ss<T, BN>(s, hopper::desc_k_major(q_tile, BM, tile_row0, kk),
                                hopper::desc_k_major(k_tile, BN, 0, kk), kk > 0);
      }
      hopper::wgmma_commit();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        hopper::wgmma_ss<T, BN>(dp, hopper::desc_k_major(do_tile, BM, tile_row0, kk),
                                hopper::desc_k_major(v_tile, BN, 0, kk), kk > 0);
      }
      hopper::wgmma_commit();
      hopper::wgmma_wait<1>();
      hopper::fence_operands(s);

      // P ds/du (column j = n0 + 8c + f.col + e%2), then G = P (dP - D) ds/du
      const float* k0s = reinterpret_cast<const float*>(smem + L::kAux + st * L::kAuxBytes);
      Range vis[2] = {{0, BN}, {0, BN}};  // visible tile columns 8c + e%2, relative to this thread's first
      if (!tile_full(g, a.score, slot, i_lo, i_hi, n0, n0 + BN - 1)) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          vis[r] = keys_seen_by(g, a.score, slot, i0 + 8 * r);
          vis[r].lo -= n0 + f.col, vis[r].hi -= n0 + f.col;
        }
      }
#pragma unroll
      for (int c = 0; c < BN / 8; ++c)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int x = 4 * c + e, r = e >> 1, col = 8 * c + f.col + (e & 1);
          float ka = 0.0f;
          if constexpr (Score::kLorentz) ka = k0s[col];
          if constexpr (has_weight_grad<Score>::value) {  // lse holds w = exp(-L): P ds'/du / scale = w (1 + s)
            const bool vis_x = 8 * c + (e & 1) >= vis[r].lo && 8 * c + (e & 1) <= vis[r].hi;
            s[x] = vis_x ? __fmul_rn(a.score.weight_grad(s[x]).y, lse[r]) : 0.0f;
          } else {
            const ScoreEval ev = a.score.eval(s[x], qa[r], ka);
            const bool vis_x = 8 * c + (e & 1) >= vis[r].lo && 8 * c + (e & 1) <= vis[r].hi;
            s[x] = vis_x ? hopper::ex2(__fmul_rn(__fsub_rn(ev.s, lse[r]), kLog2e)) * ev.dsdu : 0.0f;
          }
        }
      hopper::wgmma_wait<0>();
      hopper::fence_operands(dp);
#pragma unroll
      for (int x = 0; x < BN / 2; ++x) {
        s[x] *= dp[x] - dd[(x >> 1) & 1];
        if constexpr (Score::kLorentz) rsum[(x >> 1) & 1] += round_as<T>(s[x]) * k0s[8 * (x >> 2) + f.col + (x & 1)];
      }
      uint32_t ga[BN / 16][4];
      to_a_operand<T>(s, ga);

      // dQ += G K
      hopper::fence_operands(dq_acc);
      hopper::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        hopper::wgmma_rs<T, D>(dq_acc, ga[kk], hopper::desc_mn_major(k_tile, BN, kk), 1);
      }
      hopper::wgmma_commit();
      hopper::wgmma_wait<0>();
      hopper::fence_operands(dq_acc);
      if (f.lane == 0) hopper::mbar_arrive(&empty[st]);
    }

    // dq_slot = factor (dQ - diag(q/q0) sum_j G_ij k0_j)
    if constexpr (Score::kLorentz) {
      const uint8_t* qt = smem + L::kQ + slot * Cfg::kQBytes;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float corr = quad_sum(rsum[r]) / qa[r];
#pragma unroll
        for (int c = 0; c < D / 8; ++c)
#pragma unroll
          for (int cc = 0; cc < 2; ++cc) {
            dq_acc[4 * c + 2 * r + cc] -= tile_elem<T>(qt, BM, tile_row0 + f.row + 8 * r, 8 * c + f.col + cc) * corr;
          }
        rsum[r] = 0.0f;
      }
    }
    const float factor[2] = {a.score.grad_factor(), a.score.grad_factor()};
    store_tile<T, D>(static_cast<T*>(a.dq[slot]) + int64_t(bh) * g.Tq * D, i_lo, g.Tq, f, dq_acc, factor);
    zero(dq_acc);
  }
}

template <class Cfg, class Score>
__global__ void __launch_bounds__(Cfg::kThreads, 1) tiled_dq(const __grid_constant__ DqArgs<Score> a) {
  using L = DqLayout<Cfg, Score>;
  constexpr int S = Cfg::STAGES, NC = Cfg::NC;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = align_smem(smem_raw);
  uint64_t* bars = reinterpret_cast<uint64_t*>(smem + L::kBar);  // q_full, full[S], empty[S]
  if (threadIdx.x == 0) {
    hopper::mbar_init(bars, 1);
    for (int s = 0; s < S; ++s) {
      hopper::mbar_init(bars + 1 + s, 1);
      hopper::mbar_init(bars + 1 + S + s, 4 * NC);
    }
    hopper::fence_barrier_init();
  }
  __syncthreads();

  const int m0 = (gridDim.x - 1 - blockIdx.x) * Cfg::BM;  // longest rows first (causal)
  const int bh = blockIdx.y, b = bh / a.H, h = bh % a.H, bhk = b * a.Hkv + h / (a.H / a.Hkv);
  const Phases ph = a.score.query_phases(a.geo, m0, min(m0 + Cfg::BM, a.geo.Tq) - 1, Cfg::BN);
  const int wg = threadIdx.x / 128;
  if (wg == 0) {
    hopper::setmaxnreg_dec<RegSplit<NC>::kProducer>();
    if (threadIdx.x == 0) dq_producer<Cfg, Score>(a, smem, bars, m0, bh, bhk, ph);
  } else {
    hopper::setmaxnreg_inc<RegSplit<NC>::kConsumer>();
    dq_consumer<Cfg, Score>(a, smem, bars, wg - 1, m0, bh, ph);
  }
}

}  // namespace attnbench::kernels::tiled
