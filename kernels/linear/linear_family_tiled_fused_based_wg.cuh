// The fused chunkwise forward of based for Dk <= 16 on warpgroup MMA (wgmma, sm_90a). The math
// and the rounding points are fused_based_fwd's (linear_family_tiled_fused_based.cuh) and
// chunk_fwd's (policy `based`):
//   y = sqrt(scale) x,  phi(x) = [1, y, y_a^2/sqrt2, y_a y_b (a < b), 0 ..]   (F = 160 rows, 153 used)
//   A_rj = 1 + s + s^2/2, s = scale q_r.k_j  for j <= r (and j a row of the sequence), else 0
//   o_r  = (rd(phi_q) rd(S) + rd(A) V)_r / den_r,   den_r = phi(q_r).z + sum_j A_rj + 1e-6  (fp32)
//   S   <- S + rd(phi_k)^T V,   z <- z + sum_j phi(k_j)  (fp32, from the inputs: based_z_add)
//
// Selected by ATTNBENCH_BASED_FWD=wg on an sm_90 device: measured on the H200 (README.md, Session 7)
// it is correct but 1.11-1.24x slower than fused_based_fwd_split, the default.
//
// Layout. One block of one warpgroup (128 threads) per (b, h, 64 value columns): grid
// (ceil(Dv / 64), B*H), so B*H*2 blocks at Dv = 128, two of them resident on an SM (108 KB of
// shared memory and <= 255 registers each), each block's barriers and element-wise phases hidden
// behind the other's tensor-core work. The features, A and z are recomputed by both blocks of a
// (b, h): at Dk = 16 they are cheap, and q, k are 64 of the 576 bytes a row. Everything is
// transposed, the block's value columns n as wgmma's M = 64 (as fused_wg_fwd):
//   S^T [64 n][160 f] fp32: an m64n128 accumulator (features 0..127, 64 registers) and an
//        m64n32 one (features 128..159, 16 registers);
//   O^T = rd(S^T) rd(phi_q)^T + V^T rd(A)^T: A operand rd(S^T) from registers (10 k-steps over f),
//        B = rd(phi_q) [r][f] read K-major; then A = V^T (V [j][n] read M-major), B = rd(A) [r][j]
//        read K-major;
//   S^T <- S^T + V^T rd(phi_k): B = rd(phi_k)^T [f][j] read K-major (stored transposed, so that the
//        N = 160 feature rows are any multiple of 8: N-major tiles come in 64-column units).
// A = Q K^T (K = 16: 1 to 8 mma.sync a warp), its row sums, q.z (CUDA cores) and z (one warp,
// mma.sync) are fused_based_fwd's.
//
// Per chunk c (3 cp.async stages of q, k [64][24] and the block's value columns of v, 128-byte
// swizzled; features, rd(A), q.z, row sums and the output staging single-buffered):
//   wait chunk c; fence.proxy.async; B1; issue the loads of chunk c + 2;
//   rd(phi_k)^T (warp: kKF features, lane: rows 2l, 2l + 1; 4-byte stores), rd(phi_q) (kQParts
//   threads a row; 16-byte stores), rd(A) tiles and row sums (warp w: row block w % 4);
//   fence.proxy.async; B2; pack rd(S^T); issue O^T (group 1) and the state update (group 2);
//   q.z of chunk c's rows (reads z of chunks < c); B2'; wait group 1 -> O^T / den rounded into the
//   staging tile; B3; 16-byte row stores; last warp: z += chunk c's keys; wait group 2.
// Hazards: stage (c+2)%3 was last read in chunk c - 1 (features, A, z, wgmma: all done before B1
// of chunk c); the features, rd(A), q.z, row sums were last read by chunk c - 1's wgmma and
// epilogue (before B1); z is written after B3 and read after the next B1; the staging tile is
// written after B2' and its previous reads were before B1.
// Variants (template parameters, ATTNBENCH_BASED_WG): two warpgroups a block (one block per (b, h)
// at Dv = 128, value columns [64wg, 64wg + 64) to warpgroup wg, the features, A and z shared by the
// 8 warps); "overlap": the wait for group 2 moves from the end of chunk c - 1 to after chunk c's
// rd(phi_q) and rd(A) (then a barrier, the loads of chunk c + 2 and rd(phi_k)^T, whose stage and
// tile group 2 reads).
#pragma once

#include <utility>

#include "linear_family_tiled_fused_based.cuh"
#include "linear_family_tiled_fused_wg.cuh"

namespace attnbench::kernels::lin_tiled {

template <class T_, int kWG_ = 1, bool kOverlap_ = false>
struct BasedWgCfg {
  using T = T_;
  static constexpr int kWG = kWG_;                      // warpgroups a block: 1 (two blocks an SM) or 2
                                                        // (one block per (b, h) at Dv = 128: ATTNBENCH_BASED_WG=wg2)
  static constexpr bool kOverlap = kOverlap_;           // the state update of chunk c - 1 overlaps chunk c's
                                                        // rd(phi_q), rd(A), q.z (ATTNBENCH_BASED_WG=overlap)
  static constexpr int kThreads = 128 * kWG, kWarps = 4 * kWG, kStages = 3;
  static constexpr int kCols = 64 * kWG;                // value columns a block
  static constexpr int kLdQ = kBasedDk + 8;             // q, k rows: 48 bytes (ldmatrix without conflicts)
  static constexpr int kVBytes = kWG * kC * 128;        // v: 64 rows x 64-column chunks, 128-byte swizzle
  static constexpr int kQBytes = kC * kLdQ * 2;
  static constexpr int kStageBytes = kVBytes + 2 * kQBytes;  // v first (1024-byte aligned)
  static constexpr int kPhiQBytes = 3 * kC * 128;       // rd(phi_q) [r][f]: 3 chunks of 64 features
  static constexpr int kPhiKBytes = kBasedF * 128;      // rd(phi_k)^T [f][j]
  static constexpr int kABytes = kC * 128;              // rd(A) [r][j]
  static constexpr int kLdO = kCols + 8;                // output staging rows
  static constexpr int kOBytes = kC * kLdO * 2;
  static constexpr int kQParts = 2 * kWG, kQF = kBasedF / kQParts;  // a q row's features: kQParts threads
  static constexpr int kKF = kBasedF / kWarps;          // rd(phi_k)^T rows a warp
  // floats: n (4, padded), z1 [16], Z2 [16][kLdZ], qz [C], row sums [2 parts][C]
  static constexpr int kLdZ = 20, kZ1 = 4, kZ2 = kZ1 + 16, kQz = kZ2 + 16 * kLdZ, kRs = kQz + kC, kFloats = kRs + 2 * kC;
  static constexpr int kSmemBytes =
      1024 + kStages * kStageBytes + kPhiQBytes + kPhiKBytes + kABytes + kOBytes + 4 * kFloats;
  static_assert(kWG == 1 || kWG == 2, "one or two warpgroups");
  static_assert(kStageBytes % 1024 == 0 && kPhiQBytes % 1024 == 0 && kPhiKBytes % 1024 == 0, "tile alignment");
  static_assert(kQF % 8 == 0 && kKF * kWarps == kBasedF, "feature split");
  static_assert(kWG == 2 ? kSmemBytes <= 227 * 1024 : 2 * (kSmemBytes + 1024) <= 228 * 1024, "blocks an SM");
};

// cp.async of chunk c's q, k rows and value columns [v0, v0 + kCols) into a stage (zero-filled
// outside [0, T) and the widths).
template <class C>
__device__ void based_wg_load(const EngineParams& p, unsigned char* stage, const Rows& rows, int bh, int v0, int c) {
  using T = typename C::T;
  const T* q = static_cast<const T*>(p.q) + int64_t(bh) * p.T * p.Dqk;
  const T* k = static_cast<const T*>(p.k) + int64_t(bh) * p.T * p.Dqk;
  const T* v = static_cast<const T*>(p.v) + int64_t(bh) * p.T * p.Dvv;
  T* Q = reinterpret_cast<T*>(stage + C::kVBytes);
  T* K = Q + kC * C::kLdQ;
  for (int idx = threadIdx.x; idx < kC * 2; idx += C::kThreads) {
    const int r = idx >> 1, col = 8 * (idx & 1), tm = rows.time(c, r);
    const bool ok = tm < p.T && col < p.Dqk;
    const int64_t off = ok ? int64_t(tm) * p.Dqk + col : 0;
    cp_async16(Q + r * C::kLdQ + col, q + off, ok);
    cp_async16(K + r * C::kLdQ + col, k + off, ok);
  }
  constexpr int kPieces = C::kCols / 8;
  for (int idx = threadIdx.x; idx < kC * kPieces; idx += C::kThreads) {
    const int r = idx / kPieces, pc = idx % kPieces, col = v0 + 8 * pc, tm = rows.time(c, r);
    const bool ok = tm < p.T && col < p.Dvv;
    cp_async16(stage + (pc >> 3) * (kC * 128) + swz128(r * 128 + 16 * (pc & 7)),
               v + (ok ? int64_t(tm) * p.Dvv + col : 0), ok);
  }
}

// rd(phi_q) features [F0, F0 + 8) of row r: one 16-byte store into the swizzled [r][f] chunks.
template <int F0, class T>
__device__ __forceinline__ void based_wg_q8(const float (&y)[16], unsigned char* phiq, int r) {
  uint4 u;
  u.x = pack2<T>(based_feat<F0>(y), based_feat<F0 + 1>(y));
  u.y = pack2<T>(based_feat<F0 + 2>(y), based_feat<F0 + 3>(y));
  u.z = pack2<T>(based_feat<F0 + 4>(y), based_feat<F0 + 5>(y));
  u.w = pack2<T>(based_feat<F0 + 6>(y), based_feat<F0 + 7>(y));
  *reinterpret_cast<uint4*>(phiq + (F0 / 64) * (kC * 128) + swz128(r * 128 + (F0 % 64) * 2)) = u;
}
template <int F0, class T, int... I>
__device__ __forceinline__ void based_wg_q_part(const float (&y)[16], unsigned char* phiq, int r,
                                                std::integer_sequence<int, I...>) {
  (based_wg_q8<F0 + 8 * I, T>(y, phiq, r), ...);
}
// rd(phi_k)^T rows [F0, F0 + N), columns j = 2 lane, 2 lane + 1 (y0, y1): 4-byte stores. Row f's
// swizzled piece is f 128 + (4 lane ^ 16 (f % 8)) (4 lane < 128): pk[f % 8] + f 128, pk[s] =
// phik + (4 lane ^ 16 s) computed once, so each store is one address register plus an immediate.
template <int F0, class T, int... I>
__device__ __forceinline__ void based_wg_k_rows(const float (&y0)[16], const float (&y1)[16],
                                                unsigned char* const (&pk)[8], std::integer_sequence<int, I...>) {
  ((*reinterpret_cast<uint32_t*>(pk[(F0 + I) & 7] + (F0 + I) * 128) =
        pack2<T>(based_feat<F0 + I>(y0), based_feat<F0 + I>(y1))),
   ...);
}
// part P of a q row (features [P kQF, P kQF + kQF)), the part a runtime index (warp-uniform)
template <class C, int P = 0>
__device__ __forceinline__ void based_wg_q_dispatch(int part, const float (&y)[16], unsigned char* phiq, int r) {
  if constexpr (P + 1 < C::kQParts) {
    if (part != P) return based_wg_q_dispatch<C, P + 1>(part, y, phiq, r);
  }
  based_wg_q_part<P * C::kQF, typename C::T>(y, phiq, r, std::make_integer_sequence<int, C::kQF / 8>{});
}
template <class C, int W = 0>
__device__ __forceinline__ void based_wg_k_dispatch(int warp, const float (&y0)[16], const float (&y1)[16],
                                                    unsigned char* const (&pk)[8]) {
  if constexpr (W + 1 < C::kWarps) {
    if (warp != W) return based_wg_k_dispatch<C, W + 1>(warp, y0, y1, pk);
  }
  based_wg_k_rows<W * C::kKF, typename C::T>(y0, y1, pk, std::make_integer_sequence<int, C::kKF>{});
}

// The feature tiles of a chunk from its q rows (rd(phi_q): kQParts threads a row, 16-byte stores)
// and its k rows (rd(phi_k)^T: warp w rows [w kKF, w kKF + kKF), lane l columns 2l, 2l + 1); the
// inputs raw, scaled by sqrt(scale) here.
template <class C>
__device__ __forceinline__ void based_wg_qfeatures(const typename C::T* Q, unsigned char* phiq, float rsc, int tid) {
  static_assert(kBasedF == 160 && C::kThreads == C::kQParts * kC, "threads for the q features");
  const int r = tid & (kC - 1);
  float y[16];
  load_row16<typename C::T>(Q + r * C::kLdQ, y, rsc);
  based_wg_q_dispatch<C>(warp_uniform(tid / kC), y, phiq, r);  // (kC = 64: two warps a part)
}
template <class C>
__device__ __forceinline__ void based_wg_kfeatures(const typename C::T* K, unsigned char* phik, float rsc, int tid) {
  using T = typename C::T;
  const int warp = warp_uniform(tid >> 5), lane = tid & 31;  // (the dispatch on warp: uniform)
  float y0[16], y1[16];
  load_row16<T>(K + (2 * lane) * C::kLdQ, y0, rsc);
  load_row16<T>(K + (2 * lane + 1) * C::kLdQ, y1, rsc);
  unsigned char* pk[8];
#pragma unroll
  for (int s = 0; s < 8; ++s) pk[s] = phik + ((4 * lane) ^ (16 * s));
  based_wg_k_dispatch<C>(warp, y0, y1, pk);
}

// rd(A) of row block rb = warp % 4 (16 rows), key n-tiles [0, 2rb + 2) (the rest of rd(A) stays
// zero; with 8 warps split at rb + 1 between warps rb and rb + 4), into the swizzled [r][j] tile,
// and the rows' partial sums of A (fp32, unrounded) into rs[part].
template <class C>
__device__ __forceinline__ void based_wg_a(const EngineParams& p, const typename C::T* Q, const typename C::T* K,
                                           unsigned char* As, float* rs, const Rows& rows, int c, int warp, int lane) {
  using T = typename C::T;
  const int g = lane >> 2, q4 = lane & 3;
  const int rb = warp & 3, part = warp >> 2;
  const int lo = C::kWG == 1 ? 0 : (rb + 1) * part, hi = C::kWG == 1 ? 2 * rb + 2 : (rb + 1) * (part + 1);
  float acc[8][4];
  based_qk_tiles<T, C::kLdQ>(acc, Q, K, rb, lo, hi, lane);
  const int r0 = 16 * rb + g, r1 = r0 + 8;
  float rsum[2];
  based_a_weights<T>(acc, p.scale, rows, c, rb, lo, hi, lane, rsum,
                     [&](int r, int j, uint32_t x) { *reinterpret_cast<uint32_t*>(As + swz128(r * 128 + 2 * j)) = x; });
  if (q4 == 0) rs[part * kC + r0] = rsum[0], rs[part * kC + r1] = rsum[1];
}

// rd(S^T) (the m64n128 accumulator st, features 0..127, and the m64n32 one st2, 128..159) as the
// register A fragments of the 10 k-steps over f.
template <class T>
__device__ __forceinline__ void based_wg_pack_state(const float (&st)[64], const float (&st2)[16],
                                                    uint32_t (&sa)[10][4]) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
#pragma unroll
    for (int r = 0; r < 4; ++r) sa[kk][r] = pack2<T>(st[8 * kk + 2 * r], st[8 * kk + 2 * r + 1]);
  }
#pragma unroll
  for (int kk = 0; kk < 2; ++kk) {
#pragma unroll
    for (int r = 0; r < 4; ++r) sa[8 + kk][r] = pack2<T>(st2[8 * kk + 2 * r], st2[8 * kk + 2 * r + 1]);
  }
}

// grid (ceil(Dv / C::kCols), B*H); C::kThreads threads; shared memory C::kSmemBytes.
template <class C>
__global__ void __launch_bounds__(C::kThreads, C::kWG == 1 ? 2 : 1) fused_based_wg_fwd(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem_raw);
  unsigned char* base = LIN_WG_ALIGN1024(smem_raw);
  unsigned char* PhiQ = base + C::kStages * C::kStageBytes;
  unsigned char* PhiK = PhiQ + C::kPhiQBytes;
  unsigned char* As = PhiK + C::kPhiKBytes;
  T* Ost = reinterpret_cast<T*>(As + C::kABytes);
  float* fz = reinterpret_cast<float*>(As + C::kABytes + C::kOBytes);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int wg = warp >> 2, wi = warp & 3;
  const int bh = blockIdx.y, v0 = C::kCols * blockIdx.x;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, false, false};
  const float rsc = sqrtf(p.scale);
  T* o = static_cast<T*>(p.o) + int64_t(bh) * p.T * p.Dvv;
  float st[64], st2[16];  // S^T rows n = 64wg + 16wi + g (+8), features 8i + 2t4 (+1): st[4i + e], st2 (128 + ..)
#pragma unroll
  for (int i = 0; i < 64; ++i) st[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < 16; ++i) st2[i] = 0.0f;
  for (int i = tid; i < C::kFloats; i += C::kThreads) fz[i] = 0.0f;  // z
  for (int i = tid; i < C::kABytes / 16; i += C::kThreads) reinterpret_cast<uint4*>(As)[i] = make_uint4(0, 0, 0, 0);

  based_wg_load<C>(p, base, rows, bh, v0, 0);
  cp_async_commit();
  if (NC > 1) based_wg_load<C>(p, base + C::kStageBytes, rows, bh, v0, 1);
  cp_async_commit();

  for (int c = 0; c < NC; ++c) {
    cp_async_wait<1>();  // chunk c (chunk c + 1 may be in flight)
    fence_proxy_async();
    __syncthreads();  // B1
    const unsigned char* Vs = base + (c % C::kStages) * C::kStageBytes;
    const T* Q = reinterpret_cast<const T*>(Vs + C::kVBytes);
    const T* K = Q + kC * C::kLdQ;
    const unsigned char* Vw = Vs + wg * (kC * 128);  // this warpgroup's 64 value columns
    if constexpr (!C::kOverlap) {
      if (c + 2 < NC) based_wg_load<C>(p, base + ((c + 2) % C::kStages) * C::kStageBytes, rows, bh, v0, c + 2);
      cp_async_commit();
      based_wg_kfeatures<C>(K, PhiK, rsc, tid);
    }
    based_wg_qfeatures<C>(Q, PhiQ, rsc, tid);
    based_wg_a<C>(p, Q, K, As, fz + C::kRs, rows, c, warp, lane);
    if constexpr (C::kOverlap) {  // chunk c - 1's state update: done in every warp before its stage and
      wg_wait<0>();               // rd(phi_k)^T are rewritten
      wg_fence_operands(st);
      wg_fence_operands(st2);
      __syncthreads();  // Bx
      if (c + 2 < NC) based_wg_load<C>(p, base + ((c + 2) % C::kStages) * C::kStageBytes, rows, bh, v0, c + 2);
      cp_async_commit();
      based_wg_kfeatures<C>(K, PhiK, rsc, tid);
    }
    fence_proxy_async();
    __syncthreads();  // B2: the features, rd(A) and row sums of every warp

    uint32_t sa[10][4];  // rd(S^T) as the A fragments of the 10 k-steps over f
    based_wg_pack_state<T>(st, st2, sa);
    float acc_o[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) acc_o[i] = 0.0f;
    wg_fence();
    wg_fence_operands(acc_o);
    wg_fence_operands(st);
    wg_fence_operands(st2);
#pragma unroll
    for (int kk = 0; kk < 10; ++kk) Wgmma<64, T>::template rs<0>(acc_o, sa[kk], wg_k_major(PhiQ, 0, kk));
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) Wgmma<64, T>::template ss<1, 0>(acc_o, wg_mn_major(Vw, kk), wg_k_major(As, 0, kk));
    wg_commit();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      Wgmma<128, T>::template ss<1, 0>(st, wg_mn_major(Vw, kk), wg_k_major(PhiK, 0, kk));
      Wgmma<32, T>::template ss<1, 0>(st2, wg_mn_major(Vw, kk), wg_k_major(PhiK, 128, kk));
    }
    wg_commit();
    if (p.normalize) {  // q.z of chunk c's rows (z of chunks < c) while the products run
      based_qz_rows<T, C::kThreads, C::kLdQ, C::kZ1, C::kZ2, C::kLdZ>(p.scale, Q, fz, fz + C::kQz);
      __syncthreads();  // B2': q.z of every row
    }
    wg_wait<1>();
    wg_fence_operands(acc_o);

    // ---- o: O^T (rows n = 64wg + 16wi + g (+8), columns r = 8i + 2t4 (+1)) / den_r, rounded into
    // the staging tile Ost [r][n], then 16-byte row stores
    {
      uint16_t* os = reinterpret_cast<uint16_t*>(Ost);
      const int n0 = 64 * wg + 16 * wi + g;
      const float* qz = fz + C::kQz;
      const float* rs = fz + C::kRs;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int r = 8 * i + 2 * t4;
        float f0 = 1.0f, f1 = 1.0f;
        if (p.normalize) {
          f0 = 1.0f / (qz[r] + (rs[r] + rs[kC + r]) + kBasedEps);
          f1 = 1.0f / (qz[r + 1] + (rs[r + 1] + rs[kC + r + 1]) + kBasedEps);
        }
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          const uint32_t pk = pack2<T>(f0 * acc_o[4 * i + 2 * hf], f1 * acc_o[4 * i + 2 * hf + 1]);
          os[r * C::kLdO + n0 + 8 * hf] = uint16_t(pk & 0xffffu);
          os[(r + 1) * C::kLdO + n0 + 8 * hf] = uint16_t(pk >> 16);
        }
      }
    }
    __syncthreads();  // B3: the staging tile
    for (int idx = tid; idx < kC * (C::kCols / 8); idx += C::kThreads) {
      const int r = idx / (C::kCols / 8), col = 8 * (idx % (C::kCols / 8));
      if (!rows.valid(c, r) || v0 + col >= p.Dvv) continue;
      *reinterpret_cast<uint4*>(o + int64_t(rows.time(c, r)) * p.Dvv + v0 + col) =
          *reinterpret_cast<const uint4*>(Ost + r * C::kLdO + col);
    }
    if (p.normalize && warp == C::kWarps - 1) {  // z += chunk c's keys (read again after the next B1)
      based_z_add<T, C::kLdQ, C::kZ1, C::kZ2, C::kLdZ>(K, fz, fz, min(kC, p.T - kC * c), lane);
    }
    if constexpr (!C::kOverlap) {
      wg_wait<0>();
      wg_fence_operands(st);
      wg_fence_operands(st2);
    }
  }
  if constexpr (C::kOverlap) wg_wait<0>();
}

}  // namespace attnbench::kernels::lin_tiled
