// based's fused forward (Dk <= 16) on wgmma, warp-specialized: one producer warpgroup builds the
// chunks' features while two consumer warpgroups hold the state and run the tensor-core products.
// The math and the rounding points are fused_based_wgp_fwd's (linear_family_tiled_fused_based_wgp.cuh):
//   y = sqrt(scale) x,  phi(x) = [1, y, y_a^2/sqrt2, y_a y_b (a < b), 0 ..]   (F = 160 rows, 153 used)
//   A_rj = 1 + s + s^2/2, s = scale q_r.k_j  for j <= r (and j a row of the sequence), else 0
//   o_r  = (rd(phi_q) rd(S) + rd(A) V)_r / den_r,   den_r = phi(q_r).z + sum_j A_rj + 1e-6  (fp32)
//   S   <- S + rd(phi_k)^T V,   z <- z + sum_j phi(k_j)  (fp32, from the inputs: based_z_add)
//
// Why: fused_based_wgp_fwd's 8 warps do both jobs, and the CUDA-core work (features, rd(A), q.z,
// z; about two thirds of its instructions) is its critical path at 2 warps a scheduler (session
// 24's profile: issue slots 34% busy, 0.45 eligible warps a scheduler). Here 12 warps share the SM:
// the consumers' registers hold S^T (80 fp32 a thread), so the producer gets few registers, moved
// to the consumers by setmaxnreg (kProducerRegs, kConsumerRegs).
//
// Block of 384 threads per (b, h):
//   prologue: the producer loads chunks 0 and 1 and waits for them (block barrier); the consumers
//     build chunk 0's query-side tiles (below).
//   warpgroup 0, the producer (warps 0..3): the cp.async loads of chunks 2.. (q, k rows and all
//     128 value columns of v, 4 stages, two chunks ahead), then for chunk j into buffers j % 2:
//     rd(phi_k)^T (warp w: features [40w, 40w + 40)), q.z (warp w: m-tile w; z of chunks < j) and
//     warp 0: z of chunks <= j into zb((j + 1) % 2) (BasedWgCfg<T, 1>'s builders, as one warpgroup).
//   warpgroups 1, 2, the consumers: value columns [64 cw, 64 cw + 64) (cw = warpgroup - 1) as
//     wgmma's M, S^T in registers; per chunk c: rd(S^T) packed, O^T = rd(S^T) rd(phi_q)^T +
//     V^T rd(A)^T (group 1), S^T += V^T rd(phi_k) (group 2), then 1 / den of rows 2 lane (+1)
//     (every warp, shuffled to the fragment's rows), the output by stmatrix.trans through the
//     warp's staging block and 16-byte row stores, as fused_based_wgp_fwd's epilogue. Chunk c + 1's query-side tiles
//     are built while chunk c's products run: rd(phi_q) (four threads a row) right after the wgmma
//     issue, rd(A) and its row sums (fused_based_wgp_fwd's split over 8 warps) after the epilogue,
//     while group 2 runs.
// Session 25 (ncu at T = 4096): c2 had the producer build every tile: 4% slower than
// fused_based_wgp_fwd, the consumers waiting at kFull for 21 k of 54 k stall samples (a producer
// warp issued at 0.17 IPC, 1225 instructions a chunk). c3 moved rd(phi_q) and q.z to the consumers:
// 0.867x fused_based_wgp_fwd's time, the consumers still waiting at kFull for 8.6 k of 46 k samples.
// c4 moved rd(A) too: 0.99x c3's time, now the producer waiting at kFree (4.8 k of 46 k samples)
// and the consumers' tile work after their epilogue, in series with their next chunk; c5 moved
// rd(phi_q) and q.z into the wgmma window (the producer's registers 80: consumers 208): 0.824x
// fused_based_wgp_fwd's time, the producer waiting at kFree for 6.2 k of 42 k samples; c6 gave q.z
// back to the producer (chunk j's, in its iteration j).
// Hand-offs (named barriers, 384 threads: the producer arrives, the consumers wait, or back):
//   kFull + b: chunk j's tiles in buffers b = j % 2 (rd(phi_k)^T, q.z, z) and its v
//     rows, and chunk j + 1's q rows (the producer waited for their loads and fenced them and its
//     stores for the async proxy); the consumers' rd(phi_q), rd(A) and row sums of chunk j
//     (written in chunk j - 1, fenced) are visible to every consumer after it too;
//   kFree + b: the consumers are done with chunk c (their wgmma groups waited, 1 / den read), so
//     buffers b and stage c % 4 may be rewritten (by chunk c + 2's tiles and chunk c + 4's loads).
//   kProd (the producer's 128 threads): chunk j's rows landed in every producer thread's view; z of
//     chunk j - 1 written (zb), and the q.z reads of zb(j % 2) of chunk j - 1 done before warp 0
//     rewrites it.
#pragma once

#include "linear_family_tiled_fused_based.cuh"
#include "linear_family_tiled_fused_based_wg.cuh"
#include "linear_family_tiled_fused_based_wgp.cuh"

namespace attnbench::kernels::lin_tiled {

template <class T_>
struct BasedWsCfg : BasedWgpCfg<T_> {
  using B = BasedWgpCfg<T_>;
  using P = BasedWgCfg<T_, 1, false>;  // the producer's builders: one warpgroup (kThreads 128)
  static constexpr int kThreads = 384, kStages = 4;
#ifndef ATTNBENCH_BASED_WS_PREGS
#define ATTNBENCH_BASED_WS_PREGS 88
#endif
  // setmaxnreg moves registers inside the block's launch allocation, 384 x 168 (the cap of
  // __launch_bounds__(384, 1)): a consumer count above what the producer frees never returns.
  static constexpr int kEntryRegs = 65536 / kThreads / 8 * 8;
  static constexpr int kProducerRegs = ATTNBENCH_BASED_WS_PREGS;  // (80 spills since c6; consumers at 192 spill)
  static constexpr int kConsumerRegs = (kThreads * kEntryRegs - 128 * kProducerRegs) / 256 / 8 * 8;
  static_assert(128 * kProducerRegs + 256 * kConsumerRegs <= kThreads * kEntryRegs, "the block's registers");
  static constexpr int kProd = 1, kFull = 2, kFree = 4;          // named barriers (kFull + b, kFree + b)
  static constexpr int kSmemBytes =
      1024 + kStages * B::kStageBytes + 2 * B::kBufBytes + B::kWarps * B::kOwBytes + 4 * B::kFloatsP;
  static_assert(B::kWarps == 8 && P::kThreads == 128, "two consumer warpgroups, one producer");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block");
};

// cp.async of chunk c's q, k rows and v rows (128 value columns) into a stage by the producer's
// 128 threads (pt), zero-filled past T and the widths: q, k row pt / 2, columns 8 (pt % 2) ..; v
// rows pt / 16 + 8 i (i < 8), piece pt % 16, whose swizzled offset does not depend on i.
template <class C>
__device__ __forceinline__ void based_ws_load(const EngineParams& p, unsigned char* stage, int bh, int c, int pt) {
  using T = typename C::T;
  const int nrows = min(kC, p.T - kC * c);
  const int64_t row0 = int64_t(bh) * p.T + int64_t(kC) * c;
  {
    const int r = pt >> 1, col = 8 * (pt & 1);
    const bool ok = r < nrows && col < p.Dqk;
    const int64_t off = ok ? (row0 + r) * p.Dqk + col : 0;
    T* Q = reinterpret_cast<T*>(stage + C::kVBytes) + r * C::kLdQ + col;
    cp_async16(Q, static_cast<const T*>(p.q) + off, ok);
    cp_async16(Q + kC * C::kLdQ, static_cast<const T*>(p.k) + off, ok);
  }
  const int r0 = pt >> 4, pc = pt & 15, col = 8 * pc;
  const int sv = (pc >> 3) * (kC * 128) + r0 * 128 + 16 * ((pc & 7) ^ r0);
  const T* v = static_cast<const T*>(p.v) + (row0 + r0) * p.Dvv + col;
  const bool col_ok = col < p.Dvv;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const bool ok = r0 + 8 * i < nrows && col_ok;
    cp_async16(stage + sv + 1024 * i, v + (ok ? 8 * i * p.Dvv : -(r0 * p.Dvv + col)), ok);  // (else: row0)
  }
}

// grid (1, B*H); C::kThreads (384) threads; shared memory C::kSmemBytes.
template <class C>
__global__ void __launch_bounds__(C::kThreads, 1) fused_based_ws_fwd(EngineParams p) {
  using T = typename C::T;
  using P = typename C::P;
  LIN_DYN_SMEM(unsigned char, smem_raw);
  unsigned char* base = LIN_WG_ALIGN1024(smem_raw);
  unsigned char* bufs = base + C::kStages * C::kStageBytes;
  auto PhiQ = [&](int b) { return bufs + b * C::kBufBytes; };
  auto PhiK = [&](int b) { return bufs + b * C::kBufBytes + C::kPhiQBytes; };
  auto As = [&](int b) { return bufs + b * C::kBufBytes + C::kPhiQBytes + C::kPhiKBytes; };
  float* fz = reinterpret_cast<float*>(bufs + 2 * C::kBufBytes + C::kWarps * C::kOwBytes);
  auto zb = [&](int b) { return fz + b * C::kZB; };
  auto qz = [&](int b) { return fz + C::kQzP + b * kC; };
  auto rs = [&](int b) { return fz + C::kRsP + b * 2 * kC; };
  auto stage = [&](int c) { return base + (c % C::kStages) * C::kStageBytes; };
  // The warp and warpgroup as warp-uniform values (warp_uniform): the roles' branch is uniform, and
  // the consumers' wgmma descriptors (built from the warpgroup and the chunk index) live in uniform
  // registers. Session 26: the warpgroup so (097fdfb) took the kernel's R2UR from 52 to 30 and
  // its time to 0.948x; the warp so too (e44c607) to 5 R2UR and 0.944x again (2.68 -> 2.43x floor
  // at T = 4096; consumers 815 -> 676 instructions a warp and chunk).
  const int tid = threadIdx.x, warp = warp_uniform(tid >> 5), lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int wgi = warp >> 2;
  const int bh = blockIdx.y;
  const int NC = (p.T + kC - 1) / kC;
  for (int i = tid; i < C::kFloatsP; i += C::kThreads) fz[i] = 0.0f;
  for (int i = tid; i < C::kABytes / 16; i += C::kThreads) {  // rd(A) above the diagonal tiles stays 0
    reinterpret_cast<uint4*>(As(0))[i] = make_uint4(0, 0, 0, 0);
    reinterpret_cast<uint4*>(As(1))[i] = make_uint4(0, 0, 0, 0);
  }
  if (warp < 4) {  // chunks 0 and 1, landed and visible to every thread before the roles split
    based_ws_load<C>(p, stage(0), bh, 0, tid);
    if (NC > 1) based_ws_load<C>(p, stage(1), bh, 1, tid);
    cp_async_commit();
    cp_async_wait<0>();
  }
  __syncthreads();

  if (wgi == 0) {
    // ---- the producer warpgroup
    wg_setmaxnreg_dec<C::kProducerRegs>();
    const float rsc = sqrtf(p.scale);
    cp_async_commit();  // (two empty groups: the loop's group count as if chunks 0, 1 were its own)
    cp_async_commit();
    for (int j = 0; j < NC; ++j) {
      const int b = j & 1;
      if (j >= 2) wg_named_barrier(C::kFree + b, C::kThreads);  // chunk j - 2 consumed
      if (j + 2 < NC) based_ws_load<C>(p, stage(j + 2), bh, j + 2, tid);
      cp_async_commit();
      cp_async_wait<1>();  // chunks j and j + 1 (the consumers build chunk j + 1's rd(phi_q) in chunk j)
      fence_proxy_async();  // chunk j's v rows, for the consumers' wgmma
      wg_named_barrier(C::kProd, P::kThreads);
      const T* Q = reinterpret_cast<const T*>(stage(j) + C::kVBytes);
      const T* K = Q + kC * C::kLdQ;
      based_wg_kfeatures<P>(K, PhiK(b), rsc, tid);
      if (p.normalize) {  // q.z of chunk j's rows (warp w: m-tile w; z of chunks < j, in zb(b) since
        float x[2];       // the previous kProd), then warp 0: z of chunks <= j
        based_qz_tc<C>(p.scale, Q, zb(b), warp, lane, x);
        if (t4 == 0) qz(b)[16 * warp + g] = x[0], qz(b)[16 * warp + g + 8] = x[1];
        if (warp == 0) based_z_add<T, C::kLdQ, C::kZ1, C::kZ2, C::kLdZ>(K, zb(b), zb(b ^ 1), min(kC, p.T - kC * j), lane);
      }
      fence_proxy_async();  // the tiles (generic stores) before the consumers' wgmma reads them
      wg_named_arrive(C::kFull + b, C::kThreads);
    }
  } else {
    // ---- the consumer warpgroups: cw = 0, 1 own value columns [64 cw, 64 cw + 64)
    wg_setmaxnreg_inc<C::kConsumerRegs>();
    const int cwarp = warp - 4, cw = wgi - 1, wi = cwarp & 3;
    const float rsc = sqrtf(p.scale);
    const Rows rows{p.T, NC, NC * kC, false, false};
    T* Ow = reinterpret_cast<T*>(bufs + 2 * C::kBufBytes + cwarp * C::kOwBytes);  // this warp's staging block
    T* o = static_cast<T*>(p.o) + int64_t(bh) * p.T * p.Dvv;
    float st[64], st2[16];  // S^T rows n = 64cw + 16wi + g (+8), features 8i + 2t4 (+1): st[4i + e], st2 (128 + ..)
#pragma unroll
    for (int i = 0; i < 64; ++i) st[i] = 0.0f;
#pragma unroll
    for (int i = 0; i < 16; ++i) st2[i] = 0.0f;
    // chunk c's query-side tiles into buffers c % 2: rd(phi_q) (four threads a row); rd(A) and its
    // row sums (fused_based_wgp_fwd's split over 8 warps)
    auto qside = [&](int c) {
      based_wg_qfeatures<typename C::B>(reinterpret_cast<const T*>(stage(c) + C::kVBytes), PhiQ(c & 1), rsc,
                                        tid - 128);  // (256 threads)
    };
    auto aside = [&](int c) {
      const T* Q = reinterpret_cast<const T*>(stage(c) + C::kVBytes);
      based_wg_a<typename C::B>(p, Q, Q + kC * C::kLdQ, As(c & 1), rs(c & 1), rows, c, cwarp, lane);
    };
    qside(0);
    aside(0);
    fence_proxy_async();  // (visible to every consumer's wgmma after kFull + 0)
    // wgmma descriptors of buffer 0 and stage 0; buffer b, stage s are fixed byte offsets on
    const WgDesc dq0 = wg_k_major(PhiQ(0), 0, 0), da0 = wg_k_major(As(0), 0, 0), dk0 = wg_k_major(PhiK(0), 0, 0);
    const WgDesc dv0 = wg_mn_major(base + cw * (kC * 128), 0);  // this warpgroup's 64 value columns
    T* ow_st = Ow + (8 * ((lane >> 3) >> 1) + (lane & 7)) * C::kLdOw + 8 * ((lane >> 3) & 1);
    const int o_col = 64 * cw + 16 * wi + 8 * (lane & 1), o_row = lane >> 1;
    T* const o_thr = o + int64_t(o_row) * p.Dvv + o_col;  // this lane's first output row piece

    for (int c = 0; c < NC; ++c) {
      const int b = c & 1, sb = (c % C::kStages) * C::kStageBytes, bb = b * C::kBufBytes;
      wg_named_barrier(C::kFull + b, C::kThreads);
      uint32_t sa[10][4];  // rd(S^T) as the A fragments of the 10 k-steps over f
      based_wg_pack_state<T>(st, st2, sa);
      float acc_o[32];
#pragma unroll
      for (int i = 0; i < 32; ++i) acc_o[i] = 0.0f;
      wg_fence();
      wg_fence_operands(acc_o);
      wg_fence_operands(st);
      wg_fence_operands(st2);
      const WgDesc dq = wg_desc_add(dq0, bb), da = wg_desc_add(da0, bb), dk = wg_desc_add(dk0, bb);
      const WgDesc dv = wg_desc_add(dv0, sb);
#pragma unroll
      for (int kk = 0; kk < 10; ++kk) {
        Wgmma<64, T>::template rs<0>(acc_o, sa[kk], wg_desc_add(dq, (kk >> 2) * (kC * 128) + (kk & 3) * 32));
      }
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        Wgmma<64, T>::template ss<1, 0>(acc_o, wg_desc_add(dv, kk * 2048), wg_desc_add(da, kk * 32));
      }
      wg_commit();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        Wgmma<128, T>::template ss<1, 0>(st, wg_desc_add(dv, kk * 2048), wg_desc_add(dk, kk * 32));
        Wgmma<32, T>::template ss<1, 0>(st2, wg_desc_add(dv, kk * 2048), wg_desc_add(dk, 128 * 128 + kk * 32));
      }
      wg_commit();
      // 1 / den of rows 2 lane, 2 lane + 1 (after the wgmma issue: its shared loads off the path
      // from kFull to the issue)
      const float2 fr = based_wgp_rden(p.normalize, qz(b), rs(b), lane);
      if (c + 1 < NC) qside(c + 1);  // while the products run (registers: sa, acc_o are live)

      // ---- o: fused_based_wgp_fwd's epilogue (O^T / den rounded, stmatrix.trans into the warp's
      // block, 16-byte row stores)
      float2 rd[8];  // rows 8 i + 2 t4 (+1): lane 4 i + t4's pair
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        rd[i] = make_float2(__shfl_sync(0xffffffffu, fr.x, 4 * i + t4), __shfl_sync(0xffffffffu, fr.y, 4 * i + t4));
      }
      wg_wait<1>();
      wg_fence_operands(acc_o);
#pragma unroll
      for (int i0 = 0; i0 < 8; i0 += 2) {
        uint32_t x[4];
#pragma unroll
        for (int m = 0; m < 4; ++m) {
          const int i = i0 + (m >> 1), h = m & 1;
          x[m] = pack2<T>(rd[i].x * acc_o[4 * i + 2 * h], rd[i].y * acc_o[4 * i + 2 * h + 1]);
        }
        stsm_x4_trans(x, ow_st + 8 * i0 * C::kLdOw);
      }
      __syncwarp();
      uint4 orow[4];  // rows o_row + 16 k, 8 columns from o_col
#pragma unroll
      for (int k = 0; k < 4; ++k) orow[k] = *reinterpret_cast<const uint4*>(Ow + (o_row + 16 * k) * C::kLdOw + 8 * (lane & 1));
      const int nrows = min(kC, p.T - kC * c);
      T* oc = o_thr + int64_t(kC) * c * p.Dvv;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        if (o_row + 16 * k < nrows && o_col < p.Dvv) *reinterpret_cast<uint4*>(oc + 16 * k * p.Dvv) = orow[k];
      }
      // ---- chunk c + 1's rd(A) while the state update runs (qside(c + 1) ran while both groups did):
      // its rows landed before kFull + b; buffers b ^ 1 were last read by chunk c - 1's wgmma, waited
      // for by every consumer before kFull + b
      if (c + 1 < NC) {
        aside(c + 1);
        fence_proxy_async();  // chunk c + 1's tiles before its wgmma (after kFull + (b ^ 1))
      }
      wg_wait<0>();
      wg_fence_operands(st);
      wg_fence_operands(st2);
      if (c + 2 < NC) wg_named_arrive(C::kFree + b, C::kThreads);  // (only where the producer will wait)
    }
  }
}

}  // namespace attnbench::kernels::lin_tiled
