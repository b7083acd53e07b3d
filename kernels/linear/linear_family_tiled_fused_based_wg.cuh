// The fused chunkwise forward of based for Dk <= 16 on warpgroup MMA (wgmma, sm_90a). The math
// and the rounding points are fused_based_fwd's (linear_family_tiled_fused_based.cuh) and
// chunk_fwd's (policy `based`):
//   y = sqrt(scale) x,  phi(x) = [1, y, y_a^2/sqrt2, y_a y_b (a < b), 0 ..]   (F = 160 rows, 153 used)
//   A_rj = 1 + s + s^2/2, s = scale q_r.k_j  for j <= r (and j a row of the sequence), else 0
//   o_r  = (rd(phi_q) rd(S) + rd(A) V)_r / den_r,   den_r = phi(q_r).z + sum_j A_rj + 1e-6  (fp32)
//   S   <- S + rd(phi_k)^T V,   z <- z + sum_j phi(k_j)  (fp32, from the inputs: based_z_add)
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
// Per chunk c (3 cp.async stages of q, k [64][24] and the block's 64 columns of v, 128-byte
// swizzled; features, rd(A), q.z, row sums and the output staging single-buffered):
//   wait chunk c; fence.proxy.async; B1; issue the loads of chunk c + 2;
//   rd(phi_q) (thread: row, half the features; 16-byte stores), rd(phi_k)^T (warp: 40 features,
//   lane: rows 2l, 2l + 1; 4-byte stores), rd(A) tiles and row sums (warp w: row block w), q.z of
//   chunk c's rows (reads z of chunks < c); fence.proxy.async; B2;
//   pack rd(S^T); issue O^T (group 1) and the state update (group 2); warp 3: z += chunk c's keys;
//   wait group 1 -> O^T / den rounded into the staging tile; B3; 16-byte row stores; wait group 2.
// Hazards: stage (c+2)%3 was last read in chunk c - 1 (features, A, q.z, z, wgmma: all done before
// B1 of chunk c); the features, rd(A), q.z, row sums were last read by chunk c - 1's wgmma and
// epilogue (before B1); z is written after B2 and read after the next B1; the staging tile is
// written after B2 and its previous reads were before B1.
#pragma once

#include <utility>

#include "linear_family_tiled_fused_based.cuh"
#include "linear_family_tiled_fused_wg.cuh"

namespace attnbench::kernels::lin_tiled {

template <class T_, bool kOverlap_ = false>
struct BasedWgCfg {
  using T = T_;
  static constexpr bool kOverlap = kOverlap_;           // the state update of chunk c - 1 overlaps chunk c's
                                                        // rd(phi_q), rd(A), q.z (ATTNBENCH_BASED_WG=overlap)
  static constexpr int kThreads = 128, kStages = 3;
  static constexpr int kCols = 64;                      // value columns a block
  static constexpr int kLdQ = kBasedDk + 8;             // q, k rows: 48 bytes (ldmatrix without conflicts)
  static constexpr int kVBytes = kC * 128;              // v: 64 rows x 64 columns, 128-byte swizzle
  static constexpr int kQBytes = kC * kLdQ * 2;
  static constexpr int kStageBytes = kVBytes + 2 * kQBytes;  // 14 KB: v first (1024-byte aligned)
  static constexpr int kPhiQBytes = 3 * kC * 128;       // rd(phi_q) [r][f]: 3 chunks of 64 features
  static constexpr int kPhiKBytes = kBasedF * 128;      // rd(phi_k)^T [f][j]
  static constexpr int kABytes = kC * 128;              // rd(A) [r][j]
  static constexpr int kLdO = kCols + 8;                // output staging rows (144 bytes)
  static constexpr int kOBytes = kC * kLdO * 2;
  // floats: n (4, padded), z1 [16], Z2 [16][kLdZ], qz [C], row sums [C]
  static constexpr int kLdZ = 20, kZ1 = 4, kZ2 = kZ1 + 16, kQz = kZ2 + 16 * kLdZ, kRs = kQz + kC, kFloats = kRs + kC;
  static constexpr int kSmemBytes =
      1024 + kStages * kStageBytes + kPhiQBytes + kPhiKBytes + kABytes + kOBytes + 4 * kFloats;
  static_assert(kStageBytes % 1024 == 0 && kPhiQBytes % 1024 == 0 && kPhiKBytes % 1024 == 0, "tile alignment");
  static_assert(2 * (kSmemBytes + 1024) <= 228 * 1024, "two blocks an SM");
};

// cp.async of chunk c's q, k rows and value columns [v0, v0 + 64) into a stage (zero-filled
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
  for (int idx = threadIdx.x; idx < kC * 8; idx += C::kThreads) {
    const int r = idx >> 3, pc = idx & 7, col = v0 + 8 * pc, tm = rows.time(c, r);
    const bool ok = tm < p.T && col < p.Dvv;
    cp_async16(stage + swz128(r * 128 + 16 * pc), v + (ok ? int64_t(tm) * p.Dvv + col : 0), ok);
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
template <int kHalf, class T, int... I>
__device__ __forceinline__ void based_wg_q_half(const float (&y)[16], unsigned char* phiq, int r,
                                                std::integer_sequence<int, I...>) {
  (based_wg_q8<kHalf * (kBasedF / 2) + 8 * I, T>(y, phiq, r), ...);
}
// rd(phi_k)^T rows [F0, F0 + 40), columns j = 2 lane, 2 lane + 1 (y0, y1): 4-byte stores.
template <int F0, class T, int... I>
__device__ __forceinline__ void based_wg_k40(const float (&y0)[16], const float (&y1)[16], unsigned char* phik,
                                             int lane, std::integer_sequence<int, I...>) {
  ((*reinterpret_cast<uint32_t*>(phik + swz128((F0 + I) * 128 + 4 * lane)) =
        pack2<T>(based_feat<F0 + I>(y0), based_feat<F0 + I>(y1))),
   ...);
}

// The feature tiles of a chunk from its q rows (rd(phi_q)) and its k rows (rd(phi_k)^T); the
// inputs raw, scaled by sqrt(scale) here.
template <class C>
__device__ __forceinline__ void based_wg_qfeatures(const typename C::T* Q, unsigned char* phiq, float rsc, int tid) {
  using T = typename C::T;
  static_assert(C::kThreads == 128 && kBasedF == 160, "two threads a q row, four warps of 40 k features");
  const int r = tid & (kC - 1);
  float y[16];
  load_row16<T>(Q + r * C::kLdQ, y, rsc);
  if (tid < kC) based_wg_q_half<0, T>(y, phiq, r, std::make_integer_sequence<int, kBasedF / 16>{});
  else based_wg_q_half<1, T>(y, phiq, r, std::make_integer_sequence<int, kBasedF / 16>{});
}
template <class C>
__device__ __forceinline__ void based_wg_kfeatures(const typename C::T* K, unsigned char* phik, float rsc, int tid) {
  using T = typename C::T;
  const int warp = tid >> 5, lane = tid & 31;
  float y0[16], y1[16];
  load_row16<T>(K + (2 * lane) * C::kLdQ, y0, rsc);
  load_row16<T>(K + (2 * lane + 1) * C::kLdQ, y1, rsc);
  constexpr auto s40 = std::make_integer_sequence<int, 40>{};
  switch (warp) {
    case 0: based_wg_k40<0, T>(y0, y1, phik, lane, s40); break;
    case 1: based_wg_k40<40, T>(y0, y1, phik, lane, s40); break;
    case 2: based_wg_k40<80, T>(y0, y1, phik, lane, s40); break;
    default: based_wg_k40<120, T>(y0, y1, phik, lane, s40); break;
  }
}

// rd(A) of row block w (16 rows), key n-tiles [0, 2w + 2) (the rest of rd(A) stays zero), into
// the swizzled [r][j] tile, and the rows' sums of A (fp32, unrounded) into rs.
template <class C>
__device__ __forceinline__ void based_wg_a(const EngineParams& p, const typename C::T* Q, const typename C::T* K,
                                           unsigned char* As, float* rs, const Rows& rows, int c, int warp, int lane) {
  using T = typename C::T;
  const int g = lane >> 2, q4 = lane & 3;
  uint32_t a[4];
  ldsm_a(a, Q, C::kLdQ, 16 * warp, 0, lane);
  float acc[8][4];
  zero_acc(acc);
#pragma unroll
  for (int np = 0; np < 4; ++np) {
    if (np > warp) continue;
    uint32_t bb[4];
    ldsm_b_nk(bb, K, C::kLdQ, 16 * np, 0, lane);
    mma16816<T>(acc[2 * np], a, bb[0], bb[1]);
    mma16816<T>(acc[2 * np + 1], a, bb[2], bb[3]);
  }
  const int r0 = 16 * warp + g, r1 = r0 + 8;
  float rsum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
    if (nt >= 2 * warp + 2) continue;
    const int j = 8 * nt + 2 * q4;
    float x[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = e < 2 ? r0 : r1, jj = j + (e & 1);
      const float sx = p.scale * acc[nt][e];
      const float w = 1.0f + sx + 0.5f * sx * sx;
      x[e] = jj <= r && rows.valid(c, jj) ? w : 0.0f;
      rsum[e >> 1] += x[e];
    }
    *reinterpret_cast<uint32_t*>(As + swz128(r0 * 128 + 2 * j)) = pack2<T>(x[0], x[1]);
    *reinterpret_cast<uint32_t*>(As + swz128(r1 * 128 + 2 * j)) = pack2<T>(x[2], x[3]);
  }
  rsum[0] = quad_sum(rsum[0]), rsum[1] = quad_sum(rsum[1]);
  if (q4 == 0) rs[r0] = rsum[0], rs[r1] = rsum[1];
}

// grid (ceil(Dv / 64), B*H); 128 threads; shared memory C::kSmemBytes.
template <class C>
__global__ void __launch_bounds__(128, 2) fused_based_wg_fwd(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem_raw);
  unsigned char* base = LIN_WG_ALIGN1024(smem_raw);
  unsigned char* PhiQ = base + C::kStages * C::kStageBytes;
  unsigned char* PhiK = PhiQ + C::kPhiQBytes;
  unsigned char* As = PhiK + C::kPhiKBytes;
  T* Ost = reinterpret_cast<T*>(As + C::kABytes);
  float* fz = reinterpret_cast<float*>(As + C::kABytes + C::kOBytes);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int bh = blockIdx.y, v0 = C::kCols * blockIdx.x;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, false, false};
  const float rsc = sqrtf(p.scale);
  T* o = static_cast<T*>(p.o) + int64_t(bh) * p.T * p.Dvv;
  float st[64], st2[16];  // S^T rows n = 16 warp + g (+8), features 8i + 2t4 (+1): st[4i + e], st2 (128 + ..)
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
    if constexpr (!C::kOverlap) {
      if (c + 2 < NC) based_wg_load<C>(p, base + ((c + 2) % C::kStages) * C::kStageBytes, rows, bh, v0, c + 2);
      cp_async_commit();
      based_wg_kfeatures<C>(K, PhiK, rsc, tid);
    }
    based_wg_qfeatures<C>(Q, PhiQ, rsc, tid);
    based_wg_a<C>(p, Q, K, As, fz + C::kRs, rows, c, warp, lane);
    if (p.normalize) based_qz_rows<T, C::kThreads, C::kLdQ, C::kZ1, C::kZ2, C::kLdZ>(p.scale, Q, fz, fz + C::kQz);
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
    __syncthreads();  // B2: the features, rd(A), q.z and row sums of every warp

    uint32_t sa[10][4];  // rd(S^T) as the A fragments of the 10 k-steps over f
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
    for (int kk = 0; kk < 4; ++kk) Wgmma<64, T>::template ss<1, 0>(acc_o, wg_mn_major(Vs, kk), wg_k_major(As, 0, kk));
    wg_commit();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      Wgmma<128, T>::template ss<1, 0>(st, wg_mn_major(Vs, kk), wg_k_major(PhiK, 0, kk));
      Wgmma<32, T>::template ss<1, 0>(st2, wg_mn_major(Vs, kk), wg_k_major(PhiK, 128, kk));
    }
    wg_commit();
    if (p.normalize && warp == 3) {
      based_z_add<T, C::kLdQ, C::kZ1, C::kZ2, C::kLdZ>(K, fz, min(kC, p.T - kC * c), lane);
    }
    wg_wait<1>();
    wg_fence_operands(acc_o);

    // ---- o: O^T (rows n = 16 warp + g (+8), columns r = 8i + 2t4 (+1)) / den_r, rounded into the
    // staging tile Ost [r][n], then 16-byte row stores
    {
      uint16_t* os = reinterpret_cast<uint16_t*>(Ost);
      const int n0 = 16 * warp + g;
      const float* qz = fz + C::kQz;
      const float* rs = fz + C::kRs;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int r = 8 * i + 2 * t4;
        float f0 = 1.0f, f1 = 1.0f;
        if (p.normalize) f0 = 1.0f / (qz[r] + rs[r] + kBasedEps), f1 = 1.0f / (qz[r + 1] + rs[r + 1] + kBasedEps);
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          const uint32_t pk = pack2<T>(f0 * acc_o[4 * i + 2 * hf], f1 * acc_o[4 * i + 2 * hf + 1]);
          os[r * C::kLdO + n0 + 8 * hf] = uint16_t(pk & 0xffffu);
          os[(r + 1) * C::kLdO + n0 + 8 * hf] = uint16_t(pk >> 16);
        }
      }
    }
    __syncthreads();  // B3: the staging tile
    for (int idx = tid; idx < kC * 8; idx += C::kThreads) {
      const int r = idx >> 3, col = 8 * (idx & 7);
      if (!rows.valid(c, r) || v0 + col >= p.Dvv) continue;
      *reinterpret_cast<uint4*>(o + int64_t(rows.time(c, r)) * p.Dvv + v0 + col) =
          *reinterpret_cast<const uint4*>(Ost + r * C::kLdO + col);
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
