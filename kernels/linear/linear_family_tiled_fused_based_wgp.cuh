// based's fused forward (Dk <= 16) on wgmma with the chunks pipelined: chunk c's two products run
// on the tensor cores while the same warps build chunk c + 1's features. The math and the
// rounding points are fused_based_fwd's (linear_family_tiled_fused_based.cuh):
//   y = sqrt(scale) x,  phi(x) = [1, y, y_a^2/sqrt2, y_a y_b (a < b), 0 ..]   (F = 160 rows, 153 used)
//   A_rj = 1 + s + s^2/2, s = scale q_r.k_j  for j <= r (and j a row of the sequence), else 0
//   o_r  = (rd(phi_q) rd(S) + rd(A) V)_r / den_r,   den_r = phi(q_r).z + sum_j A_rj + 1e-6  (fp32)
//   S   <- S + rd(phi_k)^T V,   z <- z + sum_j phi(k_j)  (fp32, from the inputs: based_z_add)
//
// Layout: fused_based_wg_fwd's with two warpgroups (BasedWgCfg<T, 2>): one block of 8 warps per
// (b, h), warpgroup wg owning value columns [64 wg, 64 wg + 64) as wgmma's M; S^T in registers
// (an m64n128 and an m64n32 accumulator); O^T = rd(S^T) rd(phi_q)^T + V^T rd(A)^T and
// S^T += V^T rd(phi_k) from the swizzled tiles rd(phi_q) [r][f], rd(A) [r][j], rd(phi_k)^T [f][j].
// What differs: the features, rd(A), its row sums and q.z are double-buffered (chunk parity), and
// built for chunk c + 1 while chunk c's wgmma groups run:
//   prologue: load chunks 0, 1; wait both; sync; prepare(0); fence.proxy.async; sync
//   chunk c:  load chunk c + 2 -> stage (c + 2) % 3; every warp: 1 / den of chunk c's rows (two a
//             lane, from q.z and the row sums of prepare(c)); pack rd(S^T); issue O^T(c) (group 1)
//             and S^T += ..(c) (group 2) from buffers c % 2 and stage c % 3 (descriptors: fixed
//             offsets from buffer 0's and stage 0's); prepare(c + 1) -> buffers (c + 1) % 2 (chunk
//             c + 1's rows landed before the previous B1: no barrier here); wait group 1; O^T / den
//             (1 / den shuffled to the fragment's rows) -> this warp's staging block
//             (stmatrix.trans) -> 16-byte stores; wait group 2; wait chunk c + 2's loads;
//             fence.proxy.async; sync [B1]
//   prepare(c): rd(phi_q), rd(phi_k)^T (fused_based_wg_fwd's builders), rd(A) and row sums; q.z of
//             chunk c's rows (warps 0..3, one m-tile each: based_qz_tc, z of chunks < c); the last
//             warp z(chunks <= c) = z(chunks < c) + chunk c's keys (z double-buffered: zb(c % 2)
//             holds the z of chunks < c).
// Session 24: chunk c + 1's loads are waited for at the end of chunk c - 1 (they were issued at its
// start), which removed session 23's second barrier a chunk (Bload, after the wgmma issue) and the
// stall of the row loads behind it, and 1 / den went from warp 0 through shared memory to every
// warp's registers: 0.535 -> 0.491 ms at T = 4096 (3.72 -> 3.39x floor_ms).
// Hazards: stage (c + 2) % 3 was last read by chunk c - 1's wgmma (waited before B1 of chunk c - 1)
// and by prepare(c - 1) (in chunk c - 2); buffers (c + 1) % 2 were last read by chunk c - 1's wgmma
// and epilogue (before B1 of chunk c - 1); zb((c + 1) % 2), read by prepare(c + 1), was written by
// prepare(c) (before B1 of chunk c - 1); prepare(c + 1) writes zb(c % 2), last read by prepare(c);
// qz(c % 2) and the row sums (c % 2), read at chunk c's start, are next written by prepare(c + 2),
// after B1 of chunk c. A warp's staging block is its own (the previous chunk's reads are before B1).
#pragma once

#include "linear_family_tiled_fused_based.cuh"
#include "linear_family_tiled_fused_based_wg.cuh"

namespace attnbench::kernels::lin_tiled {

template <class T_>
struct BasedWgpCfg : BasedWgCfg<T_, 2, false> {
  using B = BasedWgCfg<T_, 2, false>;
  static constexpr int kLdOw = 24;                   // a warp's staging rows [64 r][16 n] (+8): 48 bytes
  static constexpr int kOwBytes = kC * kLdOw * 2;    // (stmatrix rows of 16 bytes without conflicts)
  // floats: zb [2] {n (4, padded), z1 [16], Z2 [16][kLdZ]}, qz [2][C], row sums [2][2 parts][C]
  static constexpr int kZB = B::kZ2 + 16 * B::kLdZ, kQzP = 2 * kZB, kRsP = kQzP + 2 * kC;
  static constexpr int kFloatsP = kRsP + 4 * kC;
  static constexpr int kBufBytes = B::kPhiQBytes + B::kPhiKBytes + B::kABytes;  // one parity's tiles
  static constexpr int kSmemBytes =
      1024 + B::kStages * B::kStageBytes + 2 * kBufBytes + B::kWarps * kOwBytes + 4 * kFloatsP;
  static_assert(kBufBytes % 1024 == 0 && kOwBytes % 16 == 0, "tile alignment");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block");
};

// cp.async of chunk c's q, k rows and v rows (all 128 value columns, two 128-byte-swizzled chunks
// of 64) into a stage, zero-filled past T and the widths: fused_based_wg_fwd's loads with the
// per-thread shared offsets fixed (sq: this thread's q / k piece; sv[i]: its v pieces) and every
// global address from the chunk's first row.
template <class C>
__device__ __forceinline__ void based_wgp_load(const EngineParams& p, unsigned char* stage, int bh, int c) {
  using T = typename C::T;
  static_assert(C::kThreads == 256 && C::kCols == 128, "two warpgroups, 128 value columns");
  const int tid = threadIdx.x, nrows = min(kC, p.T - kC * c);
  const int64_t row0 = int64_t(bh) * p.T + int64_t(kC) * c;
  if (tid < 2 * kC) {  // q, k: row tid / 2, columns 8 (tid % 2) ..
    const int r = tid >> 1, col = 8 * (tid & 1);
    const bool ok = r < nrows && col < p.Dqk;
    const int64_t off = ok ? (row0 + r) * p.Dqk + col : 0;
    T* Q = reinterpret_cast<T*>(stage + C::kVBytes) + r * C::kLdQ + col;
    cp_async16(Q, static_cast<const T*>(p.q) + off, ok);
    cp_async16(Q + kC * C::kLdQ, static_cast<const T*>(p.k) + off, ok);
  }
  // v: rows r = tid / 16 + 16 i, piece pc = tid % 16 (8 columns); swz128(r 128 + 16 (pc & 7)) is
  // r 128 + 16 ((pc & 7) ^ (r & 7)) and r & 7 does not depend on i: one offset, plus 2048 i
  const int r0 = tid >> 4, pc = tid & 15, col = 8 * pc;
  const int sv = (pc >> 3) * (kC * 128) + r0 * 128 + 16 * ((pc & 7) ^ (r0 & 7));
  const T* v = static_cast<const T*>(p.v) + (row0 + r0) * p.Dvv + col;
  const bool col_ok = col < p.Dvv;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const bool ok = r0 + 16 * i < nrows && col_ok;
    cp_async16(stage + sv + 2048 * i, v + (ok ? 16 * i * p.Dvv : -(r0 * p.Dvv + col)), ok);  // (else: row0)
  }
}

// 1 / den of a chunk's rows 2 lane, 2 lane + 1 from its q.z and the two parts of its row sums of
// rd(A)'s weights: den = q.z + sum_j A + eps (fp32); 1 without the normalizer.
__device__ __forceinline__ float2 based_wgp_rden(bool normalize, const float* qz, const float* rs, int lane) {
  if (!normalize) return make_float2(1.0f, 1.0f);
  const int r = 2 * lane;
  const float2 z = *reinterpret_cast<const float2*>(qz + r);
  const float2 r0 = *reinterpret_cast<const float2*>(rs + r);
  const float2 r1 = *reinterpret_cast<const float2*>(rs + kC + r);
  return make_float2(based_rcp(z.x + (r0.x + r1.x) + kBasedEps), based_rcp(z.y + (r0.y + r1.y) + kBasedEps));
}

// grid (1, B*H); C::kThreads (256) threads; shared memory C::kSmemBytes.
template <class C>
__global__ void __launch_bounds__(C::kThreads, 1) fused_based_wgp_fwd(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem_raw);
  unsigned char* base = LIN_WG_ALIGN1024(smem_raw);
  unsigned char* bufs = base + C::kStages * C::kStageBytes;
  auto PhiQ = [&](int b) { return bufs + b * C::kBufBytes; };
  auto PhiK = [&](int b) { return bufs + b * C::kBufBytes + C::kPhiQBytes; };
  auto As = [&](int b) { return bufs + b * C::kBufBytes + C::kPhiQBytes + C::kPhiKBytes; };
  const int tid = threadIdx.x, warp = warp_uniform(tid >> 5), lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int wg = warp >> 2, wi = warp & 3;
  T* Ow = reinterpret_cast<T*>(bufs + 2 * C::kBufBytes + warp * C::kOwBytes);  // this warp's staging block
  float* fz = reinterpret_cast<float*>(bufs + 2 * C::kBufBytes + C::kWarps * C::kOwBytes);
  auto zb = [&](int b) { return fz + b * C::kZB; };
  auto qz = [&](int b) { return fz + C::kQzP + b * kC; };
  auto rs = [&](int b) { return fz + C::kRsP + b * 2 * kC; };
  const int bh = blockIdx.y;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, false, false};
  const float rsc = sqrtf(p.scale);
  T* o = static_cast<T*>(p.o) + int64_t(bh) * p.T * p.Dvv;
  float st[64], st2[16];  // S^T rows n = 64wg + 16wi + g (+8), features 8i + 2t4 (+1): st[4i + e], st2 (128 + ..)
#pragma unroll
  for (int i = 0; i < 64; ++i) st[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < 16; ++i) st2[i] = 0.0f;
  for (int i = tid; i < C::kFloatsP; i += C::kThreads) fz[i] = 0.0f;
  for (int i = tid; i < C::kABytes / 16; i += C::kThreads) {  // rd(A) above the diagonal tiles stays 0
    reinterpret_cast<uint4*>(As(0))[i] = make_uint4(0, 0, 0, 0);
    reinterpret_cast<uint4*>(As(1))[i] = make_uint4(0, 0, 0, 0);
  }
  auto stage = [&](int c) { return base + (c % C::kStages) * C::kStageBytes; };

  // prepare(c): chunk c's tiles into buffers c % 2 (its rows landed and visible to every thread)
  auto prepare = [&](int c) {
    const int b = c & 1;
    const T* Q = reinterpret_cast<const T*>(stage(c) + C::kVBytes);
    const T* K = Q + kC * C::kLdQ;
    based_wg_kfeatures<C>(K, PhiK(b), rsc, tid);
    based_wg_qfeatures<C>(Q, PhiQ(b), rsc, tid);
    based_wg_a<C>(p, Q, K, As(b), rs(b), rows, c, warp, lane);
    if (p.normalize) {
      if (warp < 4) {
        float x[2];
        based_qz_tc<C>(p.scale, Q, zb(b), warp, lane, x);
        if (t4 == 0) qz(b)[16 * warp + g] = x[0], qz(b)[16 * warp + g + 8] = x[1];
      }
      if (warp == C::kWarps - 1) {
        based_z_add<T, C::kLdQ, C::kZ1, C::kZ2, C::kLdZ>(K, zb(b), zb(b ^ 1), min(kC, p.T - kC * c), lane);
      }
    }
  };

  based_wgp_load<C>(p, stage(0), bh, 0);
  cp_async_commit();
  if (NC > 1) based_wgp_load<C>(p, stage(1), bh, 1);
  cp_async_commit();
  cp_async_wait<0>();  // chunks 0 and 1
  __syncthreads();
  prepare(0);
  fence_proxy_async();
  __syncthreads();

  // wgmma descriptors of buffer 0 and stage 0; buffer b, stage s are fixed byte offsets on
  const WgDesc dq0 = wg_k_major(PhiQ(0), 0, 0), da0 = wg_k_major(As(0), 0, 0), dk0 = wg_k_major(PhiK(0), 0, 0);
  const WgDesc dv0 = wg_mn_major(base + wg * (kC * 128), 0);  // this warpgroup's 64 value columns
  // the output: stmatrix rows of this lane (matrix lane / 8, row lane % 8) and its 16-byte pieces
  T* ow_st = Ow + (8 * ((lane >> 3) >> 1) + (lane & 7)) * C::kLdOw + 8 * ((lane >> 3) & 1);
  const int o_col = 64 * wg + 16 * wi + 8 * (lane & 1), o_row = lane >> 1;
  T* const o_thr = o + int64_t(o_row) * p.Dvv + o_col;  // this lane's first output row piece

  for (int c = 0; c < NC; ++c) {
    const int b = c & 1, sb = (c % C::kStages) * C::kStageBytes, bb = b * C::kBufBytes;
    if (c + 2 < NC) based_wgp_load<C>(p, stage(c + 2), bh, c + 2);
    cp_async_commit();
    // 1 / den of chunk c's rows 2 lane, 2 lane + 1 (its q.z and row sums were written before B1),
    // in every warp: shuffled to the epilogue's rows there
    const float2 fr = based_wgp_rden(p.normalize, qz(b), rs(b), lane);

    uint32_t sa[10][4];  // rd(S^T) as the A fragments of the 10 k-steps over f
    based_wg_pack_state<T>(st, st2, sa);
    float acc_o[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) acc_o[i] = 0.0f;
    wg_fence();
    wg_fence_operands(acc_o);
    wg_fence_operands(st);
    wg_fence_operands(st2);
    // (k-step offsets as wg_k_major / wg_mn_major compute them)
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

    if (c + 1 < NC) prepare(c + 1);  // chunk c + 1's tiles while the products run (its rows landed before B1)

    // ---- o: O^T (n = 64wg + 16wi + g (+8), r = 8i + 2t4 (+1)) / den_r, rounded; stored transposed
    // (stmatrix.trans) into the warp's block Ow [r][16 n], then 16-byte row stores of 32 bytes a row.
    // 1 / den is gathered before the wait, the staged rows all loaded before the first store (no
    // load-store pairs in series).
    float2 rd[8];  // rows 8 i + 2 t4 (+1): lane 4 i + t4's pair
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      rd[i] = make_float2(__shfl_sync(0xffffffffu, fr.x, 4 * i + t4), __shfl_sync(0xffffffffu, fr.y, 4 * i + t4));
    }
    wg_wait<1>();
    wg_fence_operands(acc_o);
    {
#pragma unroll
      for (int i0 = 0; i0 < 8; i0 += 2) {  // matrices m = (i0 + m / 2, half m % 2): rows r of i, columns 8 half..
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
    }
    wg_wait<0>();
    wg_fence_operands(st);
    wg_fence_operands(st2);
    cp_async_wait<0>();   // chunk c + 2 (issued at this chunk's start; prepare(c + 2) reads it in chunk c + 1)
    fence_proxy_async();  // chunk c + 1's tiles (generic stores) before the wgmma reads them
    __syncthreads();      // B1
  }
}

}  // namespace attnbench::kernels::lin_tiled
