// Tiled softmax-family backward on Hopper, part 1: the row statistics and the dK/dV kernel.
//
// The backward runs without atomics as four kernels (FlashAttention-2's split, wgmma inside):
//   tiled_lse_pad:   L_i padded to TqP rows (fp32)
//   tiled_delta:     D_i = dO_i . o_i = diag(dO O^T) by wgmma, so that D is summed exactly as
//                    dP = dO V^T is (a row that sees one key, o = v, gets dP - D = 0 bitwise)
//   tiled_dkdv:      per key block, over the query blocks that see it (and the query heads of its
//                    GQA group):  dV += P^T dO,  dK_slot += G^T Q_slot
//   tiled_dq:        per query block, over its visible key blocks:   dQ_slot += G K_slot
//                    (softmax_tiled_dq.cuh)
// with, for every visible pair (recomputed from the score GEMM; s and ds/du from the policy):
//   P = exp(s - L_i),  dP = dO_i . v_j,  dS = P (dP - D_i),  G = dS ds/du (dS, or dZ for the
//   Lorentz score), P and G rounded to the storage dtype before their GEMMs; the gradients are
//   scaled (and, for the Lorentz score, corrected by the rank-one terms) once at the end. Both
//   kernels recompute S and dP, so the backward does 7 GEMMs of the block size where an atomic
//   dQ would do 5; in exchange every output row is written by one warpgroup, deterministically.
//
// dK/dV kernel: a CTA owns BNK = 64*NC keys of one (b, hk); each consumer warpgroup owns 64 of
// them and computes the tiles transposed (keys as the M dimension), so that P^T and G^T sit in
// registers as the A operand of dV = P^T dO and dK = G^T Q:
//   S^T = K_slot Q_slot^T,  dP^T = V dO^T           (shared x shared, K-major, N = BMQ queries)
//   dV += P^T dO,  dK += G^T Q_slot                 (registers x shared, MN-major, N = D)
// issued so that P^T is formed while dP^T runs and G^T while dV runs. K and V stay in shared
// memory; Q, dO and the row statistics stream through STAGES slots.
#pragma once

#include "softmax_tiled_tile.cuh"

namespace attnbench::kernels::tiled {

// L_i for rows i < Tq of every (b, h), zeros for the padding rows Tq <= i < TqP; kExpNeg: exp(-L_i)
// instead (the backward of a policy with weight_grad(), based; 0 for the padding rows too).
template <bool kExpNeg = false>
static __global__ void __launch_bounds__(256) tiled_lse_pad(const float* lse, float* lse_pad, int Tq, int TqP, int64_t rows) {
  const int64_t row = int64_t(blockIdx.x) * 256 + threadIdx.x;
  if (row >= rows) return;
  const int64_t bh = row / TqP;
  const int i = static_cast<int>(row % TqP);
  if constexpr (kExpNeg) lse_pad[row] = i < Tq ? expf(-lse[bh * Tq + i]) : 0.0f;
  else lse_pad[row] = i < Tq ? lse[bh * Tq + i] : 0.0f;
}

// D_i = dO_i . o_i for the 64 rows [m0, m0 + 64) of one (b, h) (rows past Tq read as zeros): the
// diagonal of dO O^T by one warpgroup's wgmma. Thread (warp w, g = lane/4, t = lane%4) holds
// row R = 16w + g + 8rr in columns 8c + 2t + e, so the diagonal element of row R sits in the
// thread with t = g/2, at c = 2w + rr, e = g%2.
template <class T, int D>
__global__ void __launch_bounds__(128) tiled_delta(const __grid_constant__ CUtensorMap dout,
                                                   const __grid_constant__ CUtensorMap o, float* dvec, int TqP) {
  constexpr uint32_t kTile = 64 * D * 2;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = align_smem(smem_raw);
  uint64_t* bar = reinterpret_cast<uint64_t*>(smem + 2 * kTile);
  const int m0 = blockIdx.x * 64, bh = blockIdx.y;
  if (threadIdx.x == 0) {
    hopper::mbar_init(bar, 1);
    hopper::fence_barrier_init();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    hopper::mbar_arrive_expect_tx(bar, 2 * kTile);
    hopper::tma_load_4d(smem, &dout, 0, m0, 0, bh, bar);
    hopper::tma_load_4d(smem + kTile, &o, 0, m0, 0, bh, bar);
  }
  hopper::mbar_wait(bar, 0);
  const uint32_t base = hopper::smem_u32(smem);
  float acc[32];
  hopper::wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    hopper::wgmma_ss<T, 64>(acc, hopper::desc_k_major(base, 64, 0, kk), hopper::desc_k_major(base + kTile, 64, 0, kk),
                            kk > 0);
  }
  hopper::wgmma_commit();
  hopper::wgmma_wait<0>();
  hopper::fence_operands(acc);
  const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, gq = lane >> 2;
  float d[2] = {0.0f, 0.0f};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    if (warp == w) {
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        d[rr] = (gq & 1) ? acc[4 * (2 * w + rr) + 2 * rr + 1] : acc[4 * (2 * w + rr) + 2 * rr];
      }
    }
  }
  if ((lane & 3) == gq / 2) {
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) dvec[int64_t(bh) * TqP + m0 + 16 * warp + gq + 8 * rr] = d[rr];
  }
}

// Lorentz time coordinates x0 = sqrt(1/c + |x|^2) (fp32, from the storage values) of every row
// t < Tn of a [BH, Tn, D] tensor, zeros for the padding rows Tn <= t < TP. Eight lanes per row,
// 16-byte loads, summed by time_coord() (the forward computes q0 from its Q tile the same way).
// kx (not null): also the fold's K-side columns (fold_k_chunk) in the 32-byte swizzle.
template <class T, int D>
__global__ void __launch_bounds__(256) tiled_time_coords(const T* __restrict__ x, float* __restrict__ x0, int Tn,
                                                         int TP, int64_t rows, float inv_c,
                                                         uint4* __restrict__ kx = nullptr) {
  const int64_t row = int64_t(blockIdx.x) * 32 + threadIdx.x / 8;
  const int j = threadIdx.x & 7;
  uint4 chunk[D / 64];
  bool valid = false;
  if (row < rows) {
    const int64_t bh = row / TP;
    const int t = static_cast<int>(row % TP);
    valid = t < Tn;
    const uint4* src = reinterpret_cast<const uint4*>(x + (bh * Tn + (valid ? t : 0)) * D);
#pragma unroll
    for (int k = 0; k < D / 64; ++k) chunk[k] = valid ? src[j + 8 * k] : make_uint4(0, 0, 0, 0);
  } else {
#pragma unroll
    for (int k = 0; k < D / 64; ++k) chunk[k] = make_uint4(0, 0, 0, 0);
  }
  const float v = time_coord<T, D>(chunk, inv_c);  // every lane (butterfly)
  if (row < rows && j == 0) x0[row] = valid ? v : 0.0f;
  // The forward's fold (kx, its K-side columns; TP % 8 == 0, so the swizzle of row `row` is that of t).
  if (kx && row < rows && j < 2) {
    kx[row * 2 + (j ^ ((row >> 2) & 1))] = valid ? fold_k_chunk<T>(v, j) : make_uint4(0, 0, 0, 0);
  }
}

// Session 4's version of tiled_time_coords (one warp per row, 4-byte loads), kept for the A/B of
// ATTNBENCH_HYP_FWD=s4 (softmax_tiled_launch.cuh).
template <class T, int D>
__global__ void __launch_bounds__(256) tiled_time_coords_s4(const T* x, float* x0, int Tn, int TP, int64_t rows,
                                                            float inv_c) {
  const int64_t row = int64_t(blockIdx.x) * 8 + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const int64_t bh = row / TP;
  const int t = static_cast<int>(row % TP);
  float ss = 0.0f;
  if (t < Tn) {
    const int64_t src = (bh * Tn + t) * D;
#pragma unroll
    for (int k = 0; k < D / 64; ++k) {
      const float a = static_cast<float>(x[src + 64 * k + 2 * lane]);
      const float b = static_cast<float>(x[src + 64 * k + 2 * lane + 1]);
      ss += a * a + b * b;
    }
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, m);
  }
  if (lane == 0) x0[row] = t < Tn ? sqrtf(inv_c + ss) : 0.0f;
}

template <class T_, int D_, int NC_, int STAGES_>
struct DkvConfig {
  using T = T_;
  static constexpr int D = D_, NC = NC_, BNK = 64 * NC_, BMQ = 64, STAGES = STAGES_;
  static constexpr int kThreads = 128 * (NC + 1);
  static constexpr uint32_t kKBytes = BNK * D * 2, kQBytes = BMQ * D * 2;
};

// Shared memory: K[slot] and V (BNK x D), then per stage Q, dO (BMQ x D) and the row vectors
// L, D (and q0 for the Lorentz score) of BMQ fp32 each, then the barriers.
template <class Cfg, class Score>
struct DkvLayout {
  static constexpr int kVecs = Score::kLorentz ? 3 : 2;
  static constexpr uint32_t kK = 0;
  static constexpr uint32_t kV = kK + Score::kSlots * Cfg::kKBytes;
  static constexpr uint32_t kQ = kV + Cfg::kKBytes;
  static constexpr uint32_t kDO = kQ + Cfg::STAGES * Cfg::kQBytes;
  static constexpr uint32_t kVec = kDO + Cfg::STAGES * Cfg::kQBytes;
  static constexpr uint32_t kVecBytes = kVecs * Cfg::BMQ * 4;
  static constexpr uint32_t kBar = kVec + Cfg::STAGES * kVecBytes;
  static constexpr uint32_t kBytes = kBar + (1 + 2 * Cfg::STAGES) * 8 + kSmemSlack;
};

template <class Score>
struct DkvArgs {
  CUtensorMap q[2], k[2], v, dout;  // box rows: BMQ (q, dout), BNK (k, v)
  Score score;
  const float* lse;   // [B*H][TqP], L_i
  const float* dvec;  // [B*H][TqP]
  void* dk[2];        // [B, Hkv, Tk, D] per slot
  void* dv;           // [B, Hkv, Tk, D]
  float* total;       // [B, H, Tk]: total attention (the kTotal variant)
  Geometry geo;
  int H, Hkv, TqP, TkP;
};

template <class Cfg, class Score, bool kTotal>
__device__ __forceinline__ void dkv_producer(const DkvArgs<Score>& a, uint8_t* smem, uint64_t* bars, int n0, int bhk,
                                             const Phases& ph) {
  using L = DkvLayout<Cfg, Score>;
  constexpr int S = Cfg::STAGES, BMQ = Cfg::BMQ;
  uint64_t *kv_full = bars, *full = bars + 1, *empty = bars + 1 + S;
  hopper::mbar_arrive_expect_tx(kv_full, (Score::kSlots + 1) * Cfg::kKBytes);
#pragma unroll
  for (int s = 0; s < Score::kSlots; ++s) {
    hopper::tma_load_4d(smem + L::kK + s * Cfg::kKBytes, &a.k[s], 0, n0, 0, bhk, kv_full);
  }
  hopper::tma_load_4d(smem + L::kV, &a.v, 0, n0, 0, bhk, kv_full);
  const int group = a.H / a.Hkv, b = bhk / a.Hkv, hk = bhk % a.Hkv;
  int it = 0;
  for (int p = 0; p < ph.n; ++p) {
    const Phase cur = ph.at(p);
    const int slot = cur.slot;
    for (int hi = 0; hi < group; ++hi) {
      const int bh = b * a.H + hk * group + hi;
      for (int mb = cur.begin; mb < cur.end; ++mb, ++it) {
        const int st = it % S;
        const uint32_t par = (it / S) & 1;
        hopper::mbar_wait(&empty[st], par ^ 1);
        hopper::mbar_arrive_expect_tx(&full[st], (kTotal ? 1 : 2) * Cfg::kQBytes + L::kVecBytes);
        hopper::tma_load_4d(smem + L::kQ + st * Cfg::kQBytes, &a.q[slot], 0, mb * BMQ, 0, bh, &full[st]);
        if (!kTotal) hopper::tma_load_4d(smem + L::kDO + st * Cfg::kQBytes, &a.dout, 0, mb * BMQ, 0, bh, &full[st]);
        uint8_t* vec = smem + L::kVec + st * L::kVecBytes;
        const int64_t row = int64_t(bh) * a.TqP + mb * BMQ;
        hopper::bulk_load(vec, a.lse + row, BMQ * 4, &full[st]);
        hopper::bulk_load(vec + BMQ * 4, a.dvec + row, BMQ * 4, &full[st]);
        if constexpr (Score::kLorentz) hopper::bulk_load(vec + 2 * BMQ * 4, a.score.q0 + row, BMQ * 4, &full[st]);
      }
    }
  }
}

template <class Cfg, class Score>
__device__ __forceinline__ void dkv_consumer(const DkvArgs<Score>& a, uint8_t* smem, uint64_t* bars, int wg, int n0,
                                             int bhk, const Phases& ph) {
  using T = typename Cfg::T;
  using L = DkvLayout<Cfg, Score>;
  constexpr int S = Cfg::STAGES, BNK = Cfg::BNK, BMQ = Cfg::BMQ, D = Cfg::D;
  uint64_t *kv_full = bars, *full = bars + 1, *empty = bars + 1 + S;
  const Geometry& g = a.geo;
  const Frag f = Frag::make();
  const int tile_row0 = wg * 64;
  const int j0 = n0 + tile_row0 + f.row;  // key rows j0 (e/2 = 0), j0 + 8 (e/2 = 1)
  const int j_lo = n0 + tile_row0, j_hi = j_lo + 63;
  const int group = a.H / a.Hkv;
  const uint32_t sbase = hopper::smem_u32(smem);

  float ka[2] = {0.0f, 0.0f};  // Lorentz k0 of the two key rows
  if constexpr (Score::kLorentz) {
#pragma unroll
    for (int r = 0; r < 2; ++r) ka[r] = j0 + 8 * r < g.Tk ? a.score.k0[int64_t(bhk) * a.TkP + j0 + 8 * r] : 0.0f;
  }
  float dv_acc[D / 2], dk_acc[D / 2];
  zero(dv_acc);
  zero(dk_acc);
  float rsum[2] = {0.0f, 0.0f};  // Lorentz: sum_i G_ij q0_i
  hopper::mbar_wait(kv_full, 0);
  const uint32_t v_tile = sbase + L::kV;

  int it = 0;
  for (int p = 0; p < ph.n; ++p) {
    const Phase cur = ph.at(p);
    const int slot = cur.slot;
    const uint32_t k_tile = sbase + L::kK + slot * Cfg::kKBytes;
    for (int hi = 0; hi < group; ++hi) {
      for (int mb = cur.begin; mb < cur.end; ++mb, ++it) {
        const int st = it % S;
        const uint32_t par = (it / S) & 1;
        const uint32_t q_tile = sbase + L::kQ + st * Cfg::kQBytes;
        const uint32_t do_tile = sbase + L::kDO + st * Cfg::kQBytes;
        hopper::mbar_wait(&full[st], par);

        // S^T = K Q^T and dP^T = V dO^T, as two groups: P^T is formed while dP^T is in flight
        float s[BMQ / 2], dp[BMQ / 2];
        hopper::wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          hopper::wgmma_ss<T, BMQ>(s, hopper::desc_k_major(k_tile, BNK, tile_row0, kk),
                                   hopper::desc_k_major(q_tile, BMQ, 0, kk), kk > 0);
        }
        hopper::wgmma_commit();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          hopper::wgmma_ss<T, BMQ>(dp, hopper::desc_k_major(v_tile, BNK, tile_row0, kk),
                                   hopper::desc_k_major(do_tile, BMQ, 0, kk), kk > 0);
        }
        hopper::wgmma_commit();
        hopper::wgmma_wait<1>();
        hopper::fence_operands(s);

        // P^T (column i = query mb*BMQ + 8c + f.col + e%2), packed for dV; s keeps P ds/du
        const float* vec = reinterpret_cast<const float*>(smem + L::kVec + st * L::kVecBytes);
        const int i_lo = mb * BMQ;
        Range vis[2] = {{0, BMQ}, {0, BMQ}};  // visible tile columns 8c + e%2, relative to this thread's first
        if (!tile_full(g, a.score, slot, i_lo, i_lo + BMQ - 1, j_lo, j_hi)) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            vis[r] = queries_seeing(g, a.score, slot, j0 + 8 * r);
            vis[r].lo -= i_lo + f.col, vis[r].hi -= i_lo + f.col;
          }
        }
        uint32_t pa[BMQ / 16][4], ga[BMQ / 16][4];
#pragma unroll
        for (int c = 0; c < BMQ / 8; ++c) {
          const int col = 8 * c + f.col;
          const float2 lse = *reinterpret_cast<const float2*>(vec + col);
          float2 q0 = make_float2(0.0f, 0.0f);
          if constexpr (Score::kLorentz) q0 = *reinterpret_cast<const float2*>(vec + 2 * BMQ + col);
          float P[4];
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int x = 4 * c + e, r = e >> 1, cc = e & 1;
            if constexpr (has_weight_grad<Score>::value) {  // lse holds w = exp(-L)
              const bool vis_x = 8 * c + cc >= vis[r].lo && 8 * c + cc <= vis[r].hi;
              const float2 w = a.score.weight_grad(s[x]);
              const float wl = cc ? lse.y : lse.x;
              P[e] = vis_x ? __fmul_rn(w.x, wl) : 0.0f;
              s[x] = vis_x ? __fmul_rn(w.y, wl) : 0.0f;
            } else {
              const ScoreEval ev = a.score.eval(s[x], cc ? q0.y : q0.x, ka[r]);
              const bool vis_x = 8 * c + cc >= vis[r].lo && 8 * c + cc <= vis[r].hi;
              P[e] = vis_x ? hopper::ex2(__fmul_rn(__fsub_rn(ev.s, cc ? lse.y : lse.x), kLog2e)) : 0.0f;
              s[x] = P[e] * ev.dsdu;
            }
          }
          pa[c >> 1][2 * (c & 1)] = hopper::pack2<T>(P[0], P[1]);
          pa[c >> 1][2 * (c & 1) + 1] = hopper::pack2<T>(P[2], P[3]);
        }

        // dV += P^T dO, in flight while G is formed
        hopper::fence_operands(dv_acc);
        hopper::wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BMQ / 16; ++kk) {
          hopper::wgmma_rs<T, D>(dv_acc, pa[kk], hopper::desc_mn_major(do_tile, BMQ, kk), 1);
        }
        hopper::wgmma_commit();
        hopper::wgmma_wait<1>();  // dP^T
        hopper::fence_operands(dp);

        // G^T = P (dP - D) ds/du
#pragma unroll
        for (int c = 0; c < BMQ / 8; ++c) {
          const int col = 8 * c + f.col;
          const float2 dd = *reinterpret_cast<const float2*>(vec + BMQ + col);
          float2 q0 = make_float2(0.0f, 0.0f);
          if constexpr (Score::kLorentz) q0 = *reinterpret_cast<const float2*>(vec + 2 * BMQ + col);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int x = 4 * c + e, cc = e & 1;
            dp[x] = s[x] * (dp[x] - (cc ? dd.y : dd.x));
            if constexpr (Score::kLorentz) rsum[e >> 1] += round_as<T>(dp[x]) * (cc ? q0.y : q0.x);
          }
        }
        to_a_operand<T>(dp, ga);

        // dK += G^T Q
        hopper::fence_operands(dk_acc);
        hopper::wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BMQ / 16; ++kk) {
          hopper::wgmma_rs<T, D>(dk_acc, ga[kk], hopper::desc_mn_major(q_tile, BMQ, kk), 1);
        }
        hopper::wgmma_commit();
        hopper::wgmma_wait<0>();
        hopper::fence_operands(dv_acc);
        hopper::fence_operands(dk_acc);
        if (f.lane == 0) hopper::mbar_arrive(&empty[st]);
      }
    }

    // dk_slot = factor (dK - diag(k/k0) sum_i G_ij q0_i) (the correction for the Lorentz score)
    if constexpr (Score::kLorentz) {
      const uint8_t* kt = smem + L::kK + slot * Cfg::kKBytes;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float corr = quad_sum(rsum[r]) / ka[r];
#pragma unroll
        for (int c = 0; c < D / 8; ++c)
#pragma unroll
          for (int cc = 0; cc < 2; ++cc) {
            dk_acc[4 * c + 2 * r + cc] -= tile_elem<T>(kt, BNK, tile_row0 + f.row + 8 * r, 8 * c + f.col + cc) * corr;
          }
        rsum[r] = 0.0f;
      }
    }
    const float factor[2] = {a.score.grad_factor(), a.score.grad_factor()};
    store_tile<T, D>(static_cast<T*>(a.dk[slot]) + int64_t(bhk) * g.Tk * D, j_lo, g.Tk, f, dk_acc, factor);
    zero(dk_acc);
  }
  const float one[2] = {1.0f, 1.0f};
  store_tile<T, D>(static_cast<T*>(a.dv) + int64_t(bhk) * g.Tk * D, j_lo, g.Tk, f, dv_acc, one);
}

// Total attention A_j = sum_i P_ij = sum_i exp(s_ij - L_i) per query head (a forward output),
// on the dK/dV kernel's schedule: S^T = K Q^T only, row sums of P^T in fp32.
template <class Cfg, class Score>
__device__ __forceinline__ void total_consumer(const DkvArgs<Score>& a, uint8_t* smem, uint64_t* bars, int wg, int n0,
                                               int bhk, const Phases& ph) {
  using T = typename Cfg::T;
  using L = DkvLayout<Cfg, Score>;
  constexpr int S = Cfg::STAGES, BNK = Cfg::BNK, BMQ = Cfg::BMQ, D = Cfg::D;
  uint64_t *kv_full = bars, *full = bars + 1, *empty = bars + 1 + S;
  const Geometry& g = a.geo;
  const Frag f = Frag::make();
  const int tile_row0 = wg * 64;
  const int j0 = n0 + tile_row0 + f.row;
  const int j_lo = n0 + tile_row0, j_hi = j_lo + 63;
  const int group = a.H / a.Hkv, b = bhk / a.Hkv, hk = bhk % a.Hkv;
  const uint32_t sbase = hopper::smem_u32(smem);
  float ka[2] = {0.0f, 0.0f};
  if constexpr (Score::kLorentz) {
#pragma unroll
    for (int r = 0; r < 2; ++r) ka[r] = j0 + 8 * r < g.Tk ? a.score.k0[int64_t(bhk) * a.TkP + j0 + 8 * r] : 0.0f;
  }
  hopper::mbar_wait(kv_full, 0);

  int it = 0;
  for (int p = 0; p < ph.n; ++p) {
    const Phase cur = ph.at(p);
    const int slot = cur.slot;
    const uint32_t k_tile = sbase + L::kK + slot * Cfg::kKBytes;
    for (int hi = 0; hi < group; ++hi) {
      float asum[2] = {0.0f, 0.0f};
      for (int mb = cur.begin; mb < cur.end; ++mb, ++it) {
        const int st = it % S;
        const uint32_t par = (it / S) & 1;
        const uint32_t q_tile = sbase + L::kQ + st * Cfg::kQBytes;
        hopper::mbar_wait(&full[st], par);
        float s[BMQ / 2];
        hopper::wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          hopper::wgmma_ss<T, BMQ>(s, hopper::desc_k_major(k_tile, BNK, tile_row0, kk),
                                   hopper::desc_k_major(q_tile, BMQ, 0, kk), kk > 0);
        }
        hopper::wgmma_commit();
        hopper::wgmma_wait<0>();
        hopper::fence_operands(s);
        const float* vec = reinterpret_cast<const float*>(smem + L::kVec + st * L::kVecBytes);
        const int i_lo = mb * BMQ;
        Range vis[2] = {{0, BMQ}, {0, BMQ}};
        if (!tile_full(g, a.score, slot, i_lo, i_lo + BMQ - 1, j_lo, j_hi)) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            vis[r] = queries_seeing(g, a.score, slot, j0 + 8 * r);
            vis[r].lo -= i_lo + f.col, vis[r].hi -= i_lo + f.col;
          }
        }
#pragma unroll
        for (int c = 0; c < BMQ / 8; ++c)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int r = e >> 1, cc = e & 1, col = 8 * c + f.col + cc;
            const float qa = Score::kLorentz ? vec[2 * BMQ + col] : 0.0f;
            const float sc = a.score.eval(s[4 * c + e], qa, ka[r]).s;
            if (8 * c + cc >= vis[r].lo && 8 * c + cc <= vis[r].hi) {
              asum[r] += hopper::ex2(__fmul_rn(__fsub_rn(sc, vec[col]), kLog2e));
            }
          }
        if (f.lane == 0) hopper::mbar_arrive(&empty[st]);
      }
      // this slot's part of A_j for head h (a second slot adds to the first)
      float* total = a.total + (int64_t(b) * a.H + hk * group + hi) * g.Tk;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float sum = quad_sum(asum[r]);
        const int j = j0 + 8 * r;
        if ((f.lane & 3) == 0 && j < g.Tk) total[j] = (p == 0 ? 0.0f : total[j]) + sum;
      }
    }
  }
}

// kTotal: the total-attention pass of the forward instead of the gradients.
template <class Cfg, class Score, bool kTotal>
__global__ void __launch_bounds__(Cfg::kThreads, 1) tiled_dkdv(const __grid_constant__ DkvArgs<Score> a) {
  using L = DkvLayout<Cfg, Score>;
  constexpr int S = Cfg::STAGES, NC = Cfg::NC;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = align_smem(smem_raw);
  uint64_t* bars = reinterpret_cast<uint64_t*>(smem + L::kBar);  // kv_full, full[S], empty[S]
  if (threadIdx.x == 0) {
    hopper::mbar_init(bars, 1);
    for (int s = 0; s < S; ++s) {
      hopper::mbar_init(bars + 1 + s, 1);
      hopper::mbar_init(bars + 1 + S + s, 4 * NC);
    }
    hopper::fence_barrier_init();
  }
  __syncthreads();

  // Under a causal mask the first key blocks are seen by the most query rows: they go first.
  const int n0 = blockIdx.x * Cfg::BNK;
  const int bhk = blockIdx.y;
  const Phases ph = a.score.key_phases(a.geo, n0, min(n0 + Cfg::BNK, a.geo.Tk) - 1, Cfg::BMQ);
  const int wg = threadIdx.x / 128;
  if (wg == 0) {
    hopper::setmaxnreg_dec<RegSplit<NC>::kProducer>();
    if (threadIdx.x == 0) dkv_producer<Cfg, Score, kTotal>(a, smem, bars, n0, bhk, ph);
  } else {
    hopper::setmaxnreg_inc<RegSplit<NC>::kConsumer>();
    if constexpr (kTotal) total_consumer<Cfg, Score>(a, smem, bars, wg - 1, n0, bhk, ph);
    else dkv_consumer<Cfg, Score>(a, smem, bars, wg - 1, n0, bhk, ph);
  }
}

}  // namespace attnbench::kernels::tiled
