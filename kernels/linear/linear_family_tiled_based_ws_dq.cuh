// based, Dk <= 16: dq of the chunkwise backward on wgmma, warp-specialized (session 27). The math
// and the rounding points are based_chunk_dq's (linear_family_tiled_based_bwd.cuh):
//   W = rd(dO / den),  delta_i = W_i.o_i  (fp32; without the normalizer W = dO, delta = 0)
//   dphi(q_i) = W_i rd(S)^T - delta_i z                         (S, z: the chunks before i's)
//   I_i = scale sum_{j <= i, j in i's chunk} rd(ds_ij (1 + s_ij)) k_j,  ds_ij = W_i.v_j - delta_i
//   dq_i = J(q_i)^T dphi(q_i) + I_i                              (based_jacobian_part)
//   S <- S + rd(phi_k)^T V,  z <- z + sum_j phi(k_j)
// Two differences: z is kept from the raw k rows in fp32 (based_z_add, as the forward's den), where
// based_chunk_dq sums rd(phi_k); ds is split over the value halves, each rounded on its own:
// rd((W_i.v_j|half 0 - delta_i)(1 + s)) + rd(W_i.v_j|half 1 (1 + s)).
//
// Why: based_chunk_dq (10 warps in lockstep, two block barriers a chunk, the products on mma.sync)
// is latency-bound: 697 us at T = 4096 (session 26), issue slots ~30% busy. Here, as in
// fused_based_ws_fwd, the products run on wgmma while the CUDA-core work is split between a
// producer and the consumers.
//
// Block of 384 threads per (b, h):
//   warpgroup 0, the producer: cp.async of chunk j + 1's q, k (unpadded rows) and v (two 128-byte
//     swizzled chunks of 64 columns), 3 stages, one chunk ahead; then for chunk j into buffers
//     b = j % 2: W (bwq_rows, from chunk j's dO, o and den in R; W swizzled as v; W and delta also
//     to global memory for based_chunk_dkv), then chunk j + 1's dO, o, den into R by cp.async
//     (landing while z is built and the producer waits at kFree), z of chunks < j in feature form
//     (bwq_zf, from the compact sums), and warp 0: the compact z of chunks <= j.
//   warpgroups 1, 2, the consumers (cw = 0, 1; S^T rows [64 cw, 64 cw + 64) in registers, as the
//     forward's): per chunk c:
//       consumer barrier | rd(S) [F][Dv] to shared memory (stmatrix.trans, K-major for wgmma's B) |
//       consumer barrier | wgmma group 0: dphi = W rd(S)^T (features 64 cw .. + 64, and 128 ..
//       159), group 1: value half cw of W V^T | group 0 waited, consumer barrier | P = dphi - delta z
//       (fp32, feature-major, in rd(S)'s place); rd(phi_k)^T of chunk c (based_wg_kfeatures, 20
//       features a warp); s = scale q k^T of the warp's 16 rows (mma.sync); group 1 waited;
//       I_cw = rd(ds_cw (1 + s)) K (mma.sync) | consumer barrier | group 2: S^T += V^T rd(phi_k);
//       the Jacobian (bb_jacobian's map over 8 warps) -> dq; group 2 waited; kFree.
// Session 27: c3 (dO, o, den loaded straight from global memory by the pre-pass): 1.11 ms at
// T = 4096, 0.57 ms without those loads (their latency was the producer's critical path); c4 (R by
// cp.async, rd(phi_k)^T still on the producer): 0.84 ms, the consumers waiting at kFull for 22% of
// the stall samples, the producer at 1660 instructions a warp and chunk (pre-pass ~800, features
// ~620) against the consumers' 866; so the features moved to the consumers.
// Hand-offs (named barriers): kFull + b (384: the producer arrives, chunk j's W, zf, delta (b) and
// stage j % 3 ready, generic stores fenced for the async proxy); kFree + b (384: the consumers arrive when
// done with chunk c: buffers b, stage c % 3, zf and delta of b may be rewritten); kProd (the
// producer's 128: chunk j's rows landed for every producer thread, the compact z of chunk j - 1
// written; then every read of R done before chunk j + 1's rows go into it); kCons (the consumers'
// 256, four a chunk: chunk c - 1's Jacobian done with P before rd(S) goes in its place; rd(S)
// staged before either warpgroup's wgmma reads it; both dphi products done before P goes in its
// place; P and I complete before the Jacobian).
#pragma once

#include "linear_family_tiled_based_bwd.cuh"
#include "linear_family_tiled_fused_based_ws.cuh"

namespace attnbench::kernels::lin_tiled {

// The producer's feature builder (BasedWgCfg's, one warpgroup) on unpadded q, k rows.
template <class T_>
struct BasedWsDqBuild : BasedWgCfg<T_, 1, false> {
  static constexpr int kLdQ = kBasedDk;
};

// The consumers' rd(phi_k)^T builder (BasedWgCfg's with two warpgroups: 20 features a warp).
template <class T_>
struct BasedWsDqBuild2 : BasedWgCfg<T_, 2, false> {
  static constexpr int kLdQ = kBasedDk;
};

template <class T_>
struct BasedWsDqCfg {
  using T = T_;
  using Build = BasedWsDqBuild<T_>;
  using Build2 = BasedWsDqBuild2<T_>;
  static constexpr int kThreads = 384, kStages = 3, kF = kBasedF, kFUsed = 153;
  static constexpr int kLdQ = kBasedDk;                  // q, k rows unpadded (32 bytes)
  static constexpr int kVBytes = 2 * kC * 128;           // v: two swizzled chunks of 64 columns
  static constexpr int kStageBytes = kVBytes + 2 * kC * kLdQ * 2;
  static constexpr int kWBytes = 2 * kC * 128;           // W, as v
  static constexpr int kPhiKBytes = kF * 128;            // rd(phi_k)^T [f][j]
  static constexpr int kBufBytes = kWBytes + kPhiKBytes;  // one parity's tiles
  static constexpr int kSBytes = 2 * kF * 128;           // rd(S) [f][v]: two chunks of 64 value columns
  static constexpr int kLdT = kC + 4;                    // P, I rows (fragment-order writes on 32 banks)
  static constexpr int kPBytes = kFUsed * kLdT * 4;      // P = dphi^T [f][r], fp32, in rd(S)'s place
  static constexpr int kSPBytes = (kPBytes > kSBytes ? kPBytes : kSBytes) + 1023 & ~1023;
  static constexpr int kIBytes = 2 * 16 * kLdT * 4;      // I_0, I_1 ^T [a][r], fp32
  static constexpr int kRBytes = 2 * kVBytes + kC * 4;   // the pre-pass's dO, o (v's layout) and den
  static constexpr int kZC = Build::kZ2 + 16 * Build::kLdZ;  // compact z: n, z1, Z2 (based_z_add)
  static constexpr int kFloats = 2 * kZC + 2 * kF + 2 * kC;  // zc [2], zf [2], delta [2]
  static constexpr int kEntryRegs = 65536 / kThreads / 8 * 8;
  static constexpr int kProducerRegs = 104;  // (consumers 200; the producer at 96 spilled 12 bytes)
  static constexpr int kConsumerRegs = (kThreads * kEntryRegs - 128 * kProducerRegs) / 256 / 8 * 8;
  static constexpr int kProd = 1, kFull = 2, kFree = 4, kCons = 6;  // named barriers (kFull + b, kFree + b)
  static constexpr int kSmemBytes =
      1024 + kStages * kStageBytes + 2 * kBufBytes + kSPBytes + kIBytes + kRBytes + 4 * kFloats;
  static_assert(128 * kProducerRegs + 256 * kConsumerRegs <= kThreads * kEntryRegs, "the block's registers");
  static_assert(kStageBytes % 1024 == 0 && kBufBytes % 1024 == 0 && kWBytes % 1024 == 0, "tile alignment");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block");
};

// cp.async of 64 rows of 128 columns from x (rows of ld elements, the chunk's first row; rows >= nrows
// and columns >= ld zero-filled) into dst as v's tile: two 128-byte-swizzled chunks of 64 columns.
// The producer's 128 threads (pt): rows pt / 16 + 8 i, 16-byte piece pt % 16, whose swizzled
// offset does not depend on i.
template <class T>
__device__ __forceinline__ void bwq_rows128(unsigned char* dst, const T* x, int ld, int nrows, int pt) {
  const int r0 = pt >> 4, pc = pt & 15, col = 8 * pc;
  const int sv = (pc >> 3) * (kC * 128) + r0 * 128 + 16 * ((pc & 7) ^ r0);
  const T* xt = x + int64_t(r0) * ld + col;
  const bool col_ok = col < ld;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const bool ok = r0 + 8 * i < nrows && col_ok;
    cp_async16(dst + sv + 1024 * i, ok ? xt + int64_t(8 * i) * ld : x, ok);
  }
}

// cp.async of chunk c's q, k rows (unpadded) and v rows (bwq_rows128) into a stage by the
// producer's 128 threads (pt), zero-filled past T and the widths (based_ws_load's map on QuadParams).
template <class C>
__device__ __forceinline__ void bwq_load(const QuadParams& p, unsigned char* stage, int64_t bh, int c, int pt) {
  using T = typename C::T;
  const int nrows = min(kC, p.T - kC * c);
  const int64_t row0 = bh * p.T + int64_t(kC) * c;
  {
    const int r = pt >> 1, col = 8 * (pt & 1);
    const bool ok = r < nrows && col < p.Dk;
    const int64_t off = ok ? (row0 + r) * p.Dk + col : 0;
    T* Q = reinterpret_cast<T*>(stage + C::kVBytes) + r * C::kLdQ + col;
    cp_async16(Q, static_cast<const T*>(p.q) + off, ok);
    cp_async16(Q + kC * C::kLdQ, static_cast<const T*>(p.k) + off, ok);
  }
  bwq_rows128(stage, static_cast<const T*>(p.v) + row0 * p.Dv, p.Dv, nrows, pt);
}

// cp.async of chunk c's dO, o (with the normalizer) and den rows into R by the producer's 128
// threads (pt), zero-filled past T and the widths: dO, o as v (bwq_rows128), den one row a thread.
template <class C>
__device__ __forceinline__ void bwq_load_r(const QuadParams& p, unsigned char* R, int64_t bh, int c, int pt) {
  using T = typename C::T;
  const int nrows = min(kC, p.T - kC * c);
  const int64_t row0 = bh * p.T + int64_t(kC) * c;
  bwq_rows128(R, static_cast<const T*>(p.dout) + row0 * p.Dv, p.Dv, nrows, pt);
  if (p.normalize) bwq_rows128(R + C::kVBytes, static_cast<const T*>(p.o) + row0 * p.Dv, p.Dv, nrows, pt);
  if (pt < kC && p.normalize) cp_async4(R + 2 * C::kVBytes + 4 * pt, p.den + (pt < nrows ? row0 + pt : 0), pt < nrows);
}

// The row pre-pass of chunk c by the producer's 128 threads (pt), from R (bwq_load_r, landed):
// W = rd(dO / den) into the swizzled tile Ws (v's layout) and, with the normalizer, to global memory
// (w_out, rows < T); delta = W.o (fp32) into dl and global memory. Without the normalizer W = dO and
// delta = 0. Rows pt / 4 and pt / 4 + 32, value columns 32 (pt % 4) .. + 32 (four 16-byte units):
// a row's sum over two shuffles (c5 of session 27: with 8 columns a thread, four shuffles a row and
// the per-row stores, the pre-pass was ~850 of the producer's ~1390 instructions a warp and chunk).
template <class C, bool kNoLoads = false>
__device__ __forceinline__ void bwq_rows(const QuadParams& p, const unsigned char* R, unsigned char* Ws, float* dl,
                                         int64_t bh, int c, int pt) {
  using T = typename C::T;
  const int nrows = min(kC, p.T - kC * c);
  const int64_t row0 = bh * p.T + int64_t(kC) * c;
  const int qc = pt & 3, rr = pt >> 2;
  const float* den = reinterpret_cast<const float*>(R + 2 * C::kVBytes);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = rr + 32 * h;
    const float rd = r < nrows && p.normalize ? 1.0f / den[r] : 1.0f;
    T* wg = static_cast<T*>(p.w_out) + (row0 + r) * p.Dv + 32 * qc;
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int u = 4 * qc + k;  // the 16-byte unit of the row: value columns 8 u ..
      const int so = (u >> 3) * (kC * 128) + r * 128 + 16 * ((u & 7) ^ (r & 7));
      const uint4 d = kNoLoads ? make_uint4(0, 0, 0, 0) : *reinterpret_cast<const uint4*>(R + so);
      const uint4 ov = p.normalize && !kNoLoads ? *reinterpret_cast<const uint4*>(R + C::kVBytes + so) : make_uint4(0, 0, 0, 0);
      const uint32_t dw[4] = {d.x, d.y, d.z, d.w}, ow[4] = {ov.x, ov.y, ov.z, ov.w};
      uint32_t ww[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 x = unpack2<T>(dw[e]), y = unpack2<T>(ow[e]);
        ww[e] = p.normalize ? pack2<T>(x.x * rd, x.y * rd) : dw[e];
        const float2 wr = unpack2<T>(ww[e]);
        acc = fmaf(wr.x, y.x, fmaf(wr.y, y.y, acc));
      }
      const uint4 w = make_uint4(ww[0], ww[1], ww[2], ww[3]);
      *reinterpret_cast<uint4*>(Ws + so) = w;
      if (p.normalize && r < nrows && 8 * u < p.Dv) *reinterpret_cast<uint4*>(wg + 8 * k) = w;
    }
    acc += __shfl_xor_sync(0xffffffffu, acc, 1);  // the row's four lanes
    acc += __shfl_xor_sync(0xffffffffu, acc, 2);
    if (qc == 0) dl[r] = acc;
    if (qc == 0 && p.normalize && r < nrows) p.delta[row0 + r] = acc;
  }
}

// z of the chunks so far in feature form (fp32, unrounded) from the compact sums zc of the raw k
// rows (based_z_add: n, z1 = sum k, Z2 = sum k k^T): z_0 = n, z_{1+a} = sqrt(scale) z1_a,
// z_{17+a} = scale Z2_aa / sqrt2, z_{pair(a, b)} = scale Z2_ab, 0 past the 153 features.
template <class C>
__device__ __forceinline__ void bwq_zf(const float* zc, float* zf, float rsc, float scale, int pt) {
  using B = typename C::Build;
  for (int f = pt; f < kBasedF; f += 128) {
    float z = 0.0f;
    if (f == 0) z = zc[0];
    else if (f < 17) z = rsc * zc[B::kZ1 + f - 1];
    else if (f < 33) z = scale * kInvSqrt2 * zc[B::kZ2 + (f - 17) * (B::kLdZ + 1)];
    else if (f < 153) z = scale * zc[B::kZ2 + based_pair_a(f - 33) * B::kLdZ + based_pair_b(f - 33)];
    zf[f] = z;
  }
}

// The Jacobian's dispatch on the part (warp-uniform): rows of the stage's q, P and I of the block.
template <class C>
__device__ __forceinline__ void bwq_jacobian(const float* P, const float* I, const typename C::T* Q, int r, int part,
                                             float rsc, typename C::T* out, int Dk) {
  using T = typename C::T;
  if (out == nullptr || 4 * part >= Dk) return;
  switch (part) {
    case 0: based_jacobian_part<T, C::kLdQ, C::kLdT, 2, 0>(P, I, Q, r, rsc, out); break;
    case 1: based_jacobian_part<T, C::kLdQ, C::kLdT, 2, 1>(P, I, Q, r, rsc, out); break;
    case 2: based_jacobian_part<T, C::kLdQ, C::kLdT, 2, 2>(P, I, Q, r, rsc, out); break;
    default: based_jacobian_part<T, C::kLdQ, C::kLdT, 2, 3>(P, I, Q, r, rsc, out); break;
  }
}

// grid (1, B*H); C::kThreads (384) threads; shared memory C::kSmemBytes. Writes dq (p.out) and, with
// the normalizer, W (p.w_out) and delta (p.delta) for based_chunk_dkv. kAbl (measurement only, wrong
// results; instantiated under -DATTNBENCH_BASED_WSDQ_ABL): bit 0 the pre-pass without its global
// loads, bit 1 the consumers without the Jacobian.
template <class C, int kAbl = 0>
__global__ void __launch_bounds__(C::kThreads, 1) based_ws_dq(QuadParams p) {
  using T = typename C::T;
  using B = typename C::Build;
  LIN_DYN_SMEM(unsigned char, smem_raw);
  unsigned char* base = LIN_WG_ALIGN1024(smem_raw);
  unsigned char* bufs = base + C::kStages * C::kStageBytes;
  unsigned char* Sr = bufs + 2 * C::kBufBytes;  // rd(S)
  float* P = reinterpret_cast<float*>(Sr);  // (in rd(S)'s place once every dphi product is done)
  float* I = reinterpret_cast<float*>(Sr + C::kSPBytes);
  unsigned char* R = Sr + C::kSPBytes + C::kIBytes;
  float* fl = reinterpret_cast<float*>(R + C::kRBytes);
  auto Wb = [&](int b) { return bufs + b * C::kBufBytes; };
  auto PhiK = [&](int b) { return bufs + b * C::kBufBytes + C::kWBytes; };
  auto zc = [&](int b) { return fl + b * C::kZC; };
  auto zf = [&](int b) { return fl + 2 * C::kZC + b * C::kF; };
  auto dl = [&](int b) { return fl + 2 * C::kZC + 2 * C::kF + b * kC; };
  auto stage = [&](int c) { return base + (c % C::kStages) * C::kStageBytes; };
  auto Qs = [&](int c) { return reinterpret_cast<const T*>(stage(c) + C::kVBytes); };
  const int tid = threadIdx.x, warp = warp_uniform(tid >> 5), lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int wgi = warp >> 2;
  const int64_t bh = blockIdx.y;
  const int NC = (p.T + kC - 1) / kC;
  const float rsc = sqrtf(p.scale);
  for (int i = tid; i < C::kZC; i += C::kThreads) zc(0)[i] = 0.0f;  // z of no chunk
  __syncthreads();

  if (wgi == 0) {
    // ---- the producer warpgroup
    wg_setmaxnreg_dec<C::kProducerRegs>();
    bwq_load<C>(p, stage(0), bh, 0, tid);
    cp_async_commit();
    bwq_load_r<C>(p, R, bh, 0, tid);
    cp_async_commit();
    for (int j = 0; j < NC; ++j) {
      const int b = j & 1;
      if (j >= 2) wg_named_barrier(C::kFree + b, C::kThreads);  // chunk j - 2 consumed
      if (j + 1 < NC) bwq_load<C>(p, stage(j + 1), bh, j + 1, tid);
      cp_async_commit();
      cp_async_wait<1>();  // chunk j's rows and R (the groups before chunk j + 1's)
      wg_named_barrier(C::kProd, 128);
      const T* K = Qs(j) + kC * C::kLdQ;
      bwq_rows<C, (kAbl & 1) != 0>(p, R, Wb(b), dl(b), bh, j, tid);
      wg_named_barrier(C::kProd, 128);  // every read of R done: chunk j + 1's rows into it, landing
      if (j + 1 < NC) bwq_load_r<C>(p, R, bh, j + 1, tid);  // while z is built and at kFree
      cp_async_commit();
      bwq_zf<C>(zc(b), zf(b), rsc, p.scale, tid);
      if (warp == 0) based_z_add<T, C::kLdQ, B::kZ1, B::kZ2, B::kLdZ>(K, zc(b), zc(b ^ 1), min(kC, p.T - kC * j), lane);
      fence_proxy_async();  // W, rd(phi_k)^T (generic stores) and chunk j's v before the consumers' wgmma
      wg_named_arrive(C::kFull + b, C::kThreads);
    }
  } else {
    // ---- the consumer warpgroups: cw = 0, 1 own S^T rows (value columns) [64 cw, 64 cw + 64)
    wg_setmaxnreg_inc<C::kConsumerRegs>();
    const int cwarp = warp - 4, cw = wgi - 1, wi = cwarp & 3;
    T* dq = static_cast<T*>(p.out) + bh * p.T * p.Dk;
    float st[64], st2[16];  // S^T rows 64cw + 16wi + g (+8), features 8i + 2t4 (+1): st[4i + e], st2 (128 + ..)
#pragma unroll
    for (int i = 0; i < 64; ++i) st[i] = 0.0f;
#pragma unroll
    for (int i = 0; i < 16; ++i) st2[i] = 0.0f;
    // rd(S) staging: lane l gives row 8 (l / 16) + l % 8 (+ 8 i0) of matrix l / 8, the 16-byte unit
    // (2 wi + (l / 8) % 2) ^ (l % 8) of value chunk cw (stmatrix.trans of the S^T fragments)
    unsigned char* const s_st =
        Sr + cw * (C::kF * 128) + (8 * (lane >> 4) + (lane & 7)) * 128 + 16 * ((2 * wi + ((lane >> 3) & 1)) ^ (lane & 7));
    const WgDesc dW0 = wg_desc(Wb(0), 16, 1024), dS0 = wg_desc(Sr, 16, 1024), dK0 = wg_k_major(PhiK(0), 0, 0);
    const WgDesc dVm0 = wg_mn_major(base + cw * (kC * 128), 0);  // v half cw as V^T (A, M-major)
    const WgDesc dVk0 = wg_desc(base + cw * (kC * 128), 16, 1024);  // v half cw as B (K-major: rows j)
    float* Icw = I + cw * 16 * C::kLdT;

    for (int c = 0; c < NC; ++c) {
      const int b = c & 1, sb = (c % C::kStages) * C::kStageBytes, bb = b * C::kBufBytes;
      wg_named_barrier(C::kFull + b, C::kThreads);
      wg_named_barrier(C::kCons, 256);  // chunk c - 1's Jacobian done with P (rd(S)'s place)
#pragma unroll
      for (int i0 = 0; i0 < 20; i0 += 2) {  // rd(S) [f][v] <- S^T
        uint32_t x[4];
#pragma unroll
        for (int m = 0; m < 4; ++m) {
          const int i = i0 + (m >> 1), h = m & 1;
          x[m] = i < 16 ? pack2<T>(st[4 * i + 2 * h], st[4 * i + 2 * h + 1])
                        : pack2<T>(st2[4 * (i - 16) + 2 * h], st2[4 * (i - 16) + 2 * h + 1]);
        }
        stsm_x4_trans(x, s_st + 1024 * i0);
      }
      fence_proxy_async();
      wg_named_barrier(C::kCons, 256);

      float acc_p[32], acc_p2[16], acc_d[32];  // dphi (features 64 cw .. and 128 ..), W V^T half cw
#pragma unroll
      for (int i = 0; i < 32; ++i) acc_p[i] = 0.0f, acc_d[i] = 0.0f;
#pragma unroll
      for (int i = 0; i < 16; ++i) acc_p2[i] = 0.0f;
      wg_fence();
      wg_fence_operands(acc_p);
      wg_fence_operands(acc_p2);
      wg_fence_operands(acc_d);
      wg_fence_operands(st);
      wg_fence_operands(st2);
      const WgDesc dW = wg_desc_add(dW0, bb), dK = wg_desc_add(dK0, bb);
#pragma unroll
      for (int kk = 0; kk < 8; ++kk) {  // group 0: dphi = W rd(S)^T (K = value columns)
        const WgDesc a = wg_desc_add(dW, (kk >> 2) * (kC * 128) + (kk & 3) * 32);
        const int sk = (kk >> 2) * (C::kF * 128) + (kk & 3) * 32;
        Wgmma<64, T>::template ss<0, 0>(acc_p, a, wg_desc_add(dS0, sk + 64 * cw * 128));
        Wgmma<32, T>::template ss<0, 0>(acc_p2, a, wg_desc_add(dS0, sk + 128 * 128));  // (used by warpgroup 0)
      }
      wg_commit();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {  // group 1: value half cw of W V^T
        Wgmma<64, T>::template ss<0, 0>(acc_d, wg_desc_add(dW, cw * (kC * 128) + kk * 32), wg_desc_add(dVk0, sb + kk * 32));
      }
      wg_commit();
      const float* dlb = dl(b);
      const float* zfb = zf(b);
      const int i0 = 16 * wi + g;  // this thread's rows i0, i0 + 8
      const float d0 = dlb[i0], d1 = dlb[i0 + 8];
      wg_wait<1>();
      wg_fence_operands(acc_p);
      wg_fence_operands(acc_p2);
      wg_named_barrier(C::kCons, 256);  // both warpgroups' dphi products done with rd(S): P in its place
      // P = dphi - delta z (f < 153)
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        const int f = 64 * cw + 8 * n + 2 * t4;
        const float2 z = *reinterpret_cast<const float2*>(zfb + f);
        float* pf = P + f * C::kLdT + i0;
        pf[0] = acc_p[4 * n] - d0 * z.x, pf[C::kLdT] = acc_p[4 * n + 1] - d0 * z.y;
        pf[8] = acc_p[4 * n + 2] - d1 * z.x, pf[C::kLdT + 8] = acc_p[4 * n + 3] - d1 * z.y;
      }
      if (cw == 0) {
#pragma unroll
        for (int n = 0; n < 4; ++n) {
          const int f = 128 + 8 * n + 2 * t4;
          const float2 z = *reinterpret_cast<const float2*>(zfb + f);
          float* pf = P + f * C::kLdT + i0;
          if (f < C::kFUsed) pf[0] = acc_p2[4 * n] - d0 * z.x, pf[8] = acc_p2[4 * n + 2] - d1 * z.x;
          if (f + 1 < C::kFUsed) pf[C::kLdT] = acc_p2[4 * n + 1] - d0 * z.y, pf[C::kLdT + 8] = acc_p2[4 * n + 3] - d1 * z.y;
        }
      }
      const T* Q = Qs(c);
      const T* K = Q + kC * C::kLdQ;
      // rd(phi_k)^T of chunk c (20 features a warp; buffers b were last read by chunk c - 2's update)
      based_wg_kfeatures<typename C::Build2>(K, PhiK(b), rsc, tid - 128);
      fence_proxy_async();  // (for the update's wgmma, after the next consumer barrier)
      // the intra-chunk piece of value half cw: rows 16 wi .. (keys n-tiles < 2 wi + 2)
      float sc[8][4];
      zero_acc(sc);
      based_qk_tiles<T, C::kLdQ>(sc, Q, K, wi, 0, 2 * wi + 2, lane);
      const int valid = min(kC, p.T - kC * c);
      const float dsub0 = cw == 0 ? d0 : 0.0f, dsub1 = cw == 0 ? d1 : 0.0f;
      wg_wait<0>();
      wg_fence_operands(acc_d);
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        if (nt >= 2 * wi + 2) continue;  // (zero: keys past the row block)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = i0 + 8 * (e >> 1), j = 8 * nt + 2 * t4 + (e & 1);
          const float sx = p.scale * sc[nt][e];
          sc[nt][e] = j <= i && i < valid ? round_as<T>((acc_d[4 * nt + e] - (e >> 1 ? dsub1 : dsub0)) * (1.0f + sx)) : 0.0f;
        }
      }
      float acc_i[2][4];
      zero_acc(acc_i);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        if (kk > wi) continue;
        uint32_t a[4], bk[4];
        acc_to_a<T>(sc, kk, a);
        ldsm_b_kn(bk, K, C::kLdQ, 16 * kk, 0, lane);
        mma_pair<T>(acc_i, 0, a, bk);
      }
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) Icw[(8 * nt + 2 * t4 + (e & 1)) * C::kLdT + i0 + 8 * (e >> 1)] = p.scale * acc_i[nt][e];
      }
      wg_named_barrier(C::kCons, 256);  // P, I_0, I_1 and rd(phi_k)^T complete
      wg_fence();
      wg_fence_operands(st);
      wg_fence_operands(st2);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {  // group 2: S^T += V^T rd(phi_k)
        Wgmma<128, T>::template ss<1, 0>(st, wg_desc_add(dVm0, sb + kk * 2048), wg_desc_add(dK, kk * 32));
        Wgmma<32, T>::template ss<1, 0>(st2, wg_desc_add(dVm0, sb + kk * 2048), wg_desc_add(dK, 128 * 128 + kk * 32));
      }
      wg_commit();  // group 2, waited after the Jacobian

      if (!(kAbl & 2)) {
        const int r = 32 * (cwarp >> 2) + lane;
        bwq_jacobian<C>(P, I, Q, r, cwarp & 3, rsc, r < valid ? dq + (int64_t(kC) * c + r) * p.Dk : nullptr, p.Dk);
      }
      wg_wait<0>();
      wg_fence_operands(st);
      wg_fence_operands(st2);
      if (c + 2 < NC) wg_named_arrive(C::kFree + b, C::kThreads);
    }
  }
}

}  // namespace attnbench::kernels::lin_tiled
