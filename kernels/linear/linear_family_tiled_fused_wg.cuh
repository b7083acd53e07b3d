// The fused chunkwise forward on warpgroup MMA (wgmma, sm_90a): one block of two warpgroups per
// (b, h), for linear attention without the normalizer and the scalar gates (retention, lightning,
// scalar), forward and anti-causal ("rev") passes, q/k and value widths in (64, 128]. The math
// and the rounding points are those of fused_fwd (linear_family_tiled_fused.cuh) and chunk_fwd:
//   A_rj = (q_r.k_j) exp(b_r - b_j) for j <= r, else 0 (linear: no exp factor), rounded: rd(A)
//   o_r  = scale (exp(b_r) (q_r rd(S)) + sum_j rd(A_rj) v_j)
//   S   <- exp(last) S + rd(phi_k)^T V,   phi_k = k exp(last - b_j)  (k for linear)
//
// Layout. Warpgroup wg (warps 4wg..4wg+3) owns value columns n in [64wg, 64wg + 64). Everything is
// computed transposed, with the value columns as the M = 64 rows of wgmma:
//   S^T  [64 n][128 d] fp32, the m64n128 accumulator in registers (64 a thread);
//   O^T  = rd(S^T) Q^T + V^T rd(A)^T    (A operand rd(S^T) from registers: an accumulator tile
//          packed to T is the A fragment, as in linear_family_wgmma.cuh; B = Q^T is Q read
//          K-major; then A = V^T, V read M-major, B = rd(A)^T read K-major);
//   S^T <- exp(last) S^T + V^T rd(phi_k)  (B = phi_k [j][d] read N-major);
//   A    = Q K^T, warpgroup wg computing key columns [32wg, 32wg + 32) (m64n32).
// q, k, v (and phi_k) tiles are 64-column chunks with the 128-byte swizzle (one layout serves K
// as the K-major B of Q K^T and as the N-major B of the state update). So S never leaves the
// registers, the tensor cores read every shared tile once per warpgroup (no per-warp ldmatrix),
// and the products run asynchronously while the warps do the element-wise work.
//
// Per chunk c (3 cp.async stages of q, k, v; rd(A), phi_k and the output staging single-buffered):
//   wait chunk c; fence.proxy.async; B1 (__syncthreads); issue the loads of chunk c + 2;
//   [gated: the warp's b_r]; pack rd(S^T) (and S^T *= exp(last));
//   issue QK^T (group 1), rd(S^T) Q^T (group 2) [linear: and the state update V^T K (group 3)];
//   wait group 1 -> rd(A) tile (mask, gate factor, round) to shared memory [gated: rd(phi_k) rows];
//   wait group 2 -> [gated: O^T columns times exp(b_r)]; fence.proxy.async; B2 (__syncthreads);
//   issue V^T rd(A)^T [gated: and the state update V^T rd(phi_k)]; wait all;
//   O^T -> rd(scale O) into the staging tile; warpgroup barrier; 16-byte row stores to o.
// Hazards: stage (c+2)%3, rd(A), phi_k and the staging were last read in chunk c - 1, whose wgmma
// were all waited for before B1 of chunk c (the staging: before the warpgroup barrier and B1).
#pragma once

#include "linear_family_tiled.cuh"
#include "linear_family_wgmma.cuh"

namespace attnbench::kernels::lin_tiled {

template <class T_, Feat kFeat_>
struct WgCfg {
  using T = T_;
  static constexpr Feat kFeat = kFeat_;
  static constexpr bool kGated = kFeat == Feat::gate_scalar;
  static constexpr int kWidth = 128;                    // q/k width and value columns (zero-padded)
  static constexpr int kThreads = 256, kStages = 3;
  static constexpr int kChunk = kC * 128;               // one 64-column chunk of 64 rows: 8 KB
  static constexpr int kTile = 2 * kChunk;              // a q, k, v or phi_k tile of a chunk: 16 KB
  static constexpr int kStageBytes = 3 * kTile;
  static constexpr int kABytes = kChunk;                // rd(A) [64 r][64 j]
  static constexpr int kPhiBytes = kGated ? kTile : 0;
  static constexpr int kLdO = kWidth + 8;               // output staging rows (272 bytes)
  static constexpr int kOBytes = kC * kLdO * 2;
  static constexpr int kBBytes = kGated ? 8 * kC * 4 : 0;  // b per warp
  static constexpr int kSmemBytes = 1024 + kStages * kStageBytes + kABytes + kPhiBytes + kOBytes + kBBytes;
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block");
};

// cp.async of chunk c's q, k, v rows into a stage (zero-filled outside [0, T) and the widths).
template <class C>
__device__ void wg_load(const EngineParams& p, unsigned char* stage, const Rows& rows, int bh, int c) {
  using T = typename C::T;
  const T* q = static_cast<const T*>(p.q) + int64_t(bh) * p.T * p.Dqk;
  const T* k = static_cast<const T*>(p.k) + int64_t(bh) * p.T * p.Dqk;
  const T* v = static_cast<const T*>(p.v) + int64_t(bh) * p.T * p.Dvv;
  for (int idx = threadIdx.x; idx < kC * 16; idx += C::kThreads) {  // 16-byte piece pc of row r
    const int r = idx >> 4, pc = idx & 15, col = 8 * pc, tm = rows.time(c, r);
    const int off = (pc >> 3) * C::kChunk + swz128(r * 128 + (pc & 7) * 16);
    const bool okq = tm < p.T && col < p.Dqk, okv = tm < p.T && col < p.Dvv;
    const int64_t oq = okq ? int64_t(tm) * p.Dqk + col : 0, ov = okv ? int64_t(tm) * p.Dvv + col : 0;
    cp_async16(stage + off, q + oq, okq);
    cp_async16(stage + C::kTile + off, k + oq, okq);
    cp_async16(stage + 2 * C::kTile + off, v + ov, okv);
  }
}

// K-major operand at rows row0.. of a tile of 64-column chunks: k-step kk.
__device__ __forceinline__ WgDesc wg_k_major(const unsigned char* tile, int row0, int kk) {
  return wg_desc(tile + (kk >> 2) * (kC * 128) + row0 * 128 + (kk & 3) * 32, 16, 1024);
}
// MN-major operand (rows = the reduction dim): k-step kk = rows [16kk, 16kk + 16).
__device__ __forceinline__ WgDesc wg_mn_major(const unsigned char* tile, int kk) {
  return wg_desc(tile + kk * 2048, kC * 128, 1024);
}

// The first 1024-byte aligned byte of the dynamic shared memory (the swizzled tiles' alignment; the
// simulator swizzles the host address, so it aligns that). A macro: as a function, ptxas gave
// fused_wg_fwd<gate_scalar> 2 more registers.
#ifdef ATTNBENCH_LIN_SIM
#define LIN_WG_ALIGN1024(smem) ((smem) + ((1024 - (reinterpret_cast<uintptr_t>(smem) & 1023)) & 1023))
#else
#define LIN_WG_ALIGN1024(smem) ((smem) + ((1024 - (smem_addr(smem) & 1023)) & 1023))
#endif

// rd(S^T) (the m64n128 accumulator st) as the register A fragments of the 8 k-steps over d.
template <class T>
__device__ __forceinline__ void wg_pack_state(const float (&st)[64], uint32_t (&sa)[8][4]) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
#pragma unroll
    for (int r = 0; r < 4; ++r) sa[kk][r] = pack2<T>(st[8 * kk + 2 * r], st[8 * kk + 2 * r + 1]);
  }
}

// o of chunk c from O^T (n = 64wg + 16wi + g (+8), r = 8i + 2t4 (+1)): rd(scale O) into the staging
// tile Ost [r][n] (rows of C::kLdO), warpgroup barrier, the warpgroup's 64 columns to o by 16-byte
// row stores. Ost is rewritten no earlier than after the next __syncthreads.
template <class C>
__device__ __forceinline__ void wg_store_o(const EngineParams& p, const Rows& rows, int c, const float (&acc_o)[32],
                                           typename C::T* Ost, typename C::T* o, int tid) {
  using T = typename C::T;
  const int warp = tid >> 5, lane = tid & 31, wg = warp >> 2, wi = warp & 3, g = lane >> 2, t4 = lane & 3;
  uint16_t* os = reinterpret_cast<uint16_t*>(Ost);
  const int n0 = 64 * wg + 16 * wi + g;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int r = 8 * i + 2 * t4;
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const uint32_t pk = pack2<T>(p.scale * acc_o[4 * i + 2 * hf], p.scale * acc_o[4 * i + 2 * hf + 1]);
      os[r * C::kLdO + n0 + 8 * hf] = uint16_t(pk & 0xffffu);
      os[(r + 1) * C::kLdO + n0 + 8 * hf] = uint16_t(pk >> 16);
    }
  }
  wg_named_barrier(1 + wg, 128);
  for (int idx = tid & 127; idx < kC * 8; idx += 128) {  // the warpgroup's 64 columns, 16-byte pieces
    const int r = idx >> 3, col = 64 * wg + 8 * (idx & 7);
    if (!rows.valid(c, r) || col >= p.Dvv) continue;
    *reinterpret_cast<uint4*>(o + int64_t(rows.time(c, r)) * p.Dvv + col) =
        *reinterpret_cast<const uint4*>(Ost + r * C::kLdO + col);
  }
}

// grid (1, B*H); 256 threads; shared memory C::kSmemBytes.
template <class C>
__global__ void __launch_bounds__(256, 1) fused_wg_fwd(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem_raw);
  unsigned char* base = LIN_WG_ALIGN1024(smem_raw);
  unsigned char* As = base + C::kStages * C::kStageBytes;
  unsigned char* Phi = As + C::kABytes;
  T* Ost = reinterpret_cast<T*>(Phi + C::kPhiBytes);
  const int tid = threadIdx.x, warp = warp_uniform(tid >> 5), lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int wg = warp >> 2, wi = warp & 3;
  float* bw = reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(Ost) + C::kOBytes) + warp * kC;
  const int bh = blockIdx.y, h = bh % p.H;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, p.reverse, false};
  const float fixed = (C::kGated && p.gate == kGateFixed) ? fixed_log_gate(p.lightning, h, p.H) : 0.0f;
  T* o = static_cast<T*>(p.o) + int64_t(bh) * p.T * p.Dvv;
  float st[64];  // S^T rows 64wg + 16wi + g (+8), columns d = 8i + 2t4 (+1): st[4i + e]
#pragma unroll
  for (int i = 0; i < 64; ++i) st[i] = 0.0f;

  wg_load<C>(p, base, rows, bh, 0);
  cp_async_commit();
  if (NC > 1) wg_load<C>(p, base + C::kStageBytes, rows, bh, 1);
  cp_async_commit();

  for (int c = 0; c < NC; ++c) {
    cp_async_wait<1>();  // chunk c (chunk c + 1 may be in flight)
    fence_proxy_async();
    __syncthreads();     // B1
    if (c + 2 < NC) wg_load<C>(p, base + ((c + 2) % C::kStages) * C::kStageBytes, rows, bh, c + 2);
    cp_async_commit();
    const unsigned char* Q = base + (c % C::kStages) * C::kStageBytes;
    const unsigned char* K = Q + C::kTile;
    const unsigned char* Vw = Q + 2 * C::kTile + wg * C::kChunk;  // this warpgroup's 64 value columns
    if constexpr (C::kGated) warp_gate_cumsum(p, bw, rows, bh, c, fixed, lane);  // the warp's copy of b

    uint32_t sa[8][4];  // rd(S^T) as the A fragments of the 8 k-steps over d
    wg_pack_state<T>(st, sa);
    if constexpr (C::kGated) {
      const float d = __expf(bw[kC - 1]);
#pragma unroll
      for (int i = 0; i < 64; ++i) st[i] *= d;
    }
    float acc_a[16], acc_o[32];
#pragma unroll
    for (int i = 0; i < 16; ++i) acc_a[i] = 0.0f;
#pragma unroll
    for (int i = 0; i < 32; ++i) acc_o[i] = 0.0f;
    wg_fence();
    wg_fence_operands(acc_a);
    wg_fence_operands(acc_o);
    wg_fence_operands(st);
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) Wgmma<32, T>::template ss<0, 0>(acc_a, wg_k_major(Q, 0, kk), wg_k_major(K, 32 * wg, kk));
    wg_commit();
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) Wgmma<64, T>::template rs<0>(acc_o, sa[kk], wg_k_major(Q, 0, kk));
    wg_commit();
    if constexpr (!C::kGated) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) Wgmma<128, T>::template ss<1, 1>(st, wg_mn_major(Vw, kk), wg_mn_major(K, kk));
      wg_commit();
      wg_wait<2>();
    } else {
      wg_wait<1>();
    }
    wg_fence_operands(acc_a);

    // ---- rd(A): rows r = 16wi + g (+8), keys j = 32wg + 8i + 2t4 (+1)
    {
      const int r0 = 16 * wi + g, r1 = r0 + 8;
      float e0 = 0.0f, e1 = 0.0f;
      if constexpr (C::kGated) e0 = bw[r0], e1 = bw[r1];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int j = 32 * wg + 8 * i + 2 * t4;
        float x[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e < 2 ? r0 : r1, jj = j + (e & 1);
          float val = acc_a[4 * i + e];
          if constexpr (C::kGated) val *= __expf((e < 2 ? e0 : e1) - bw[jj]);
          x[e] = jj <= r ? val : 0.0f;
        }
        *reinterpret_cast<uint32_t*>(As + swz128(r0 * 128 + 2 * j)) = pack2<T>(x[0], x[1]);
        *reinterpret_cast<uint32_t*>(As + swz128(r1 * 128 + 2 * j)) = pack2<T>(x[2], x[3]);
      }
    }
    // ---- rd(phi_k) = rd(k exp(last - b_j)): the warp's 8 rows, 16-byte pieces (same layout as K)
    if constexpr (C::kGated) {
      const float last = bw[kC - 1];
#pragma unroll
      for (int i = lane; i < 8 * 16; i += 32) {
        const int j = 8 * warp + (i >> 4), pc = i & 15;
        const int off = (pc >> 3) * C::kChunk + swz128(j * 128 + (pc & 7) * 16);
        const float f = __expf(last - bw[j]);
        uint4 u = *reinterpret_cast<const uint4*>(K + off);
        u.x = scale_pair<T>(u.x, f, f), u.y = scale_pair<T>(u.y, f, f);
        u.z = scale_pair<T>(u.z, f, f), u.w = scale_pair<T>(u.w, f, f);
        *reinterpret_cast<uint4*>(Phi + off) = u;
      }
    }
    if constexpr (C::kGated) wg_wait<0>();
    else wg_wait<1>();
    wg_fence_operands(acc_o);
    if constexpr (C::kGated) {  // the query's decay since the chunk start, fp32: columns r of O^T
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float f0 = __expf(bw[8 * i + 2 * t4]), f1 = __expf(bw[8 * i + 2 * t4 + 1]);
        acc_o[4 * i] *= f0, acc_o[4 * i + 2] *= f0, acc_o[4 * i + 1] *= f1, acc_o[4 * i + 3] *= f1;
      }
    }
    fence_proxy_async();
    __syncthreads();  // B2: rd(A) and phi_k of every warp
    wg_fence();
    wg_fence_operands(acc_o);
    wg_fence_operands(st);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) Wgmma<64, T>::template ss<1, 0>(acc_o, wg_mn_major(Vw, kk), wg_k_major(As, 0, kk));
    if constexpr (C::kGated) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) Wgmma<128, T>::template ss<1, 1>(st, wg_mn_major(Vw, kk), wg_mn_major(Phi, kk));
    }
    wg_commit();
    wg_wait<0>();
    wg_fence_operands(acc_o);
    wg_fence_operands(st);

    // ---- o: O^T rounded into the staging tile, then to o
    wg_store_o<C>(p, rows, c, acc_o, Ost, o, tid);
  }
}

}  // namespace attnbench::kernels::lin_tiled
