// The two state scans of the gated backward (vector, rwkv6) on warpgroup MMA (wgmma, sm_90a), q/k
// and value widths in (64, 128] (zero-padded to 128): one block of two warpgroups per (b, h) walks
// the chunks with the state in registers, as fused_vec_wg_fwd (linear_family_tiled_fused_vec_wg.cuh)
// does, and stores what chunk_scan (linear_family_tiled_scan.cuh, the math and the stored layouts)
// stores: rd(S_c), the boundary partials bnd, and rd(D_c). Session 17; chunk_scan (512 blocks of 4
// warps on mma.sync, one stage) stays for the other widths and under ATTNBENCH_LIN_GBWD=oldscan.
//   forward (X = k, Y = v):  store rd(S_c);   S^T <- S^T diag(exp(last)) + V^T Kt,  Kt = rd(k exp(last - b))
//                            bnd_{c-1}[d] = sum_e S_c[d,e] rd(D_{c-1})[d,e]  (fp32 S_c), bnd_{NC-1} = 0
//   reverse (X = q, Y = dO), chunks from the last:
//                            store rd(scale D_c); D^T <- D^T diag(exp(last)) + dO^T Qt,  Qt = rd(q exp(bq))
// The operands Kt and Qt are the forward kernel's (vec_columns_pk's running products: one exp an
// element), not chunk_scan's exp(last - b) per element: the same values to fp32 rounding.
//
// Layout: warpgroup wg owns value columns n in [64wg, 64wg + 64): the state's transpose is its
// m64n128 accumulator st (64 registers a thread: rows n = 64wg + 16wi + g (+8), columns d = 8i + 2t4
// (+1), st[4i + e]). The stored states are [d][n] (chunk_scan's layout, read by gated_bwd_chunk2):
// rd(st) packed along d is exchanged with lane ^ 4 (the neighbouring n), so each lane stores a
// 4-byte pair along n: lane g even (d, n .. n+1), g odd (d+1, n-1 .. n). The D words of the
// boundary term come in by the same pattern and go back by the same exchange.
//
// Per chunk c (two stages of X, Y (swizzled 64-column chunks) and g (fp32 rows)), two barriers:
//   wait chunk c; fence.proxy.async; B1 -> issue the loads of chunk c + 1;
//     forward: the partials of bnd_{c-1} (st = S_c, the D words loaded during chunk c - 1) over
//     this warp's 16 columns n, reduced over the lanes of one d (shuffles) into Part[warp][d];
//     column phase: b's block totals, exp(last), Kt or Qt in place of X;  fence.proxy.async;
//   B2 -> forward: bnd_{c-1}[d] of warpgroup wg = sum of its 4 warps' partials (the NV = 2 value
//     tiles of chunk_scan are the two warpgroups); pack rd(out_scale st), st *= exp(last) per d;
//     issue V^T Kt (4 k-steps, m64n128); store rd(state) words; forward: load the rd(D_c) words for
//     chunk c + 1; wait.
// Hazards: stage (c+1)%2 was last read by chunk c - 1 (its wgmma waited for before B1 of chunk c);
// Tot, Dec and Part are rewritten only after B1 of the next chunk, after their last reads.
#pragma once

#include "linear_family_tiled_fused_vec_wg.cuh"

namespace attnbench::kernels::lin_tiled {

template <class T_, bool kBonus_>
struct ScanWgCfg {
  using T = T_;
  static constexpr bool kBonus = kBonus_;
  static constexpr int kDk = 128, kDv = 128, kThreads = 256;
  static constexpr int kChunk = kC * 128;   // one 64-column chunk of 64 rows: 8 KB
  static constexpr int kTile = 2 * kChunk;  // X or Y of a chunk
  static constexpr int kLdF = kDk + 8;      // g rows (fp32)
  static constexpr int kFBytes = kC * kLdF * 4;
  static constexpr int kStageBytes = 2 * kTile + kFBytes;
  // Dec [Dk], Tot [4][Dk], Part [8 warps][Dk]
  static constexpr int kSmemBytes = 1024 + 2 * kStageBytes + (1 + 4 + 8) * kDk * 4;
  static_assert(kStageBytes % 1024 == 0, "stages stay 1024-byte aligned");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block");
};

template <class C>
struct ScanWgTile {
  using T = typename C::T;
  unsigned char* base;
  __device__ explicit ScanWgTile(unsigned char* smem) : base(smem) {}
  __device__ T* X(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes); }
  __device__ T* Y(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes + C::kTile); }
  __device__ float* G(int s) const { return reinterpret_cast<float*>(base + s * C::kStageBytes + 2 * C::kTile); }
  __device__ float* Dec() const { return reinterpret_cast<float*>(base + 2 * C::kStageBytes); }
  __device__ float* Tot() const { return Dec() + C::kDk; }
  __device__ float* Part() const { return Tot() + 4 * C::kDk; }
  // element (r, d) of a swizzled tile of 64-column chunks
  __device__ T* at(T* tile, int r, int d) const {
    unsigned char* b = reinterpret_cast<unsigned char*>(tile) + (d >> 6) * C::kChunk;
    return reinterpret_cast<T*>(b + swz128(r * 128 + 2 * (d & 63)));
  }
};

// Chunk c's X (p.k), Y (p.v) rows, swizzled, and g rows into stage c % 2 (zero outside [0, T) and
// the widths).
template <class C>
__device__ void scan_wg_load(const EngineParams& p, const ScanWgTile<C>& t, const Rows& rows, int bh, int c) {
  using T = typename C::T;
  const int s = c & 1;
  const T* x = static_cast<const T*>(p.k) + int64_t(bh) * p.T * p.Dqk;
  const T* y = static_cast<const T*>(p.v) + int64_t(bh) * p.T * p.Dvv;
  unsigned char* X = reinterpret_cast<unsigned char*>(t.X(s));
  unsigned char* Y = reinterpret_cast<unsigned char*>(t.Y(s));
  for (int idx = threadIdx.x; idx < kC * 16; idx += C::kThreads) {  // 16-byte piece pc of row r
    const int r = idx >> 4, pc = idx & 15, col = 8 * pc, tm = rows.time(c, r);
    const int off = (pc >> 3) * C::kChunk + swz128(r * 128 + (pc & 7) * 16);
    const bool okx = tm < p.T && col < p.Dqk, oky = tm < p.T && col < p.Dvv;
    cp_async16(X + off, x + (okx ? int64_t(tm) * p.Dqk + col : 0), okx);
    cp_async16(Y + off, y + (oky ? int64_t(tm) * p.Dvv + col : 0), oky);
  }
  vec_load_g<C>(p, p.g + int64_t(bh) * p.T * p.Dqk, t.G(s), rows, c);
}

// The column phase of a scan (vec_columns_pk's first pass and its Kt or Qt, nothing else): warp w
// owns the 16-row block I = w >> 1 and the columns d = 64 (w & 1) + 2 lane, d + 1. Forward: X <-
// rd(k exp(last - b)) = rd(kd E) with kd_s = k_s prod_{s < u <= 16I + 15} exp(g_u), E = exp(last -
// e_I); reverse: X <- rd(q exp(bq)) = rd(qd P) with qd_t = q_t prod_{16I <= u <= t} exp(g_u) (rwkv6:
// u < t), P = exp(e_{I-1}). Warps of block 0 also write exp(last) per column (Dec).
template <class C, bool kRev>
__device__ void scan_columns(const ScanWgTile<C>& t, int s, int warp, int lane) {
  using T = typename C::T;
  const int I = warp >> 1, half = warp & 1, d = 64 * half + 2 * lane, r0 = 16 * I;
  float2 g[16], e[4];
  vec_block_ends<C::kLdF, C::kDk>(t.G(s) + d, t.Tot(), I, half, d, g, e);
  if (I == 0) *reinterpret_cast<float2*>(t.Dec() + d) = make_float2(vec_exp(e[3].x), vec_exp(e[3].y));
  uint32_t xb[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) xb[i] = *reinterpret_cast<const uint32_t*>(t.at(t.X(s), r0 + i, d));
#pragma unroll
  for (int i = 0; i < 16; ++i) g[i] = make_float2(vec_exp(g[i].x), vec_exp(g[i].y));
  float2 f = make_float2(1.0f, 1.0f);
  if constexpr (kRev) {
    const float2 ref = I == 0 ? make_float2(0.0f, 0.0f) : I == 1 ? e[0] : I == 2 ? e[1] : e[2];  // e_{I-1}
    const float2 P = make_float2(vec_exp(ref.x), vec_exp(ref.y));
#pragma unroll
    for (int i = 0; i < 16; ++i) {  // queries, forward
      if constexpr (!C::kBonus) f.x *= g[i].x, f.y *= g[i].y;
      const float2 qv = unpack2<T>(xb[i]);
      *reinterpret_cast<uint32_t*>(t.at(t.X(s), r0 + i, d)) = pack2<T>(qv.x * f.x * P.x, qv.y * f.y * P.y);
      if constexpr (C::kBonus) f.x *= g[i].x, f.y *= g[i].y;
    }
  } else {
    const float2 ei = I == 0 ? e[0] : I == 1 ? e[1] : I == 2 ? e[2] : e[3];
    const float2 E = make_float2(vec_exp(e[3].x - ei.x), vec_exp(e[3].y - ei.y));
#pragma unroll
    for (int i = 15; i >= 0; --i) {  // keys, backward
      const float2 kv = unpack2<T>(xb[i]);
      *reinterpret_cast<uint32_t*>(t.at(t.X(s), r0 + i, d)) = pack2<T>(kv.x * f.x * E.x, kv.y * f.y * E.y);
      f.x *= g[i].x, f.y *= g[i].y;
    }
  }
}

// The exchange of the stored layout: w packs (d, d + 1) of column n (this lane's pair) or, coming
// back, the lane's stored word; lane g even ends with the pair (lo of its own word, lo of lane ^ 4's),
// g odd with (hi of lane ^ 4's, hi of its own). Applied to rd(st) it gives the words stored along n,
// applied to the loaded words it gives (D[d][n], D[d + 1][n]) back.
__device__ __forceinline__ uint32_t scan_wg_swap(uint32_t w, bool odd) {
  const uint32_t o = __shfl_xor_sync(0xffffffffu, w, 4);
  return odd ? (o >> 16) | (w & 0xffff0000u) : (w & 0xffffu) | (o << 16);
}

// Sums x[0..N) over the lanes l ^ m (m = M, M / 2, .., 4: the lanes g of one t4): lane l keeps N / 8
// of them, x[j] = the sum of entry m0 + j (reduce_scatter's steps without the last two).
template <int M, int N, int L>
__device__ __forceinline__ void scan_wg_rs(float (&x)[L], int lane, int& m0) {
  if constexpr (M >= 4) {
    const bool up = (lane & M) != 0;
#pragma unroll
    for (int j = 0; j < N / 2; ++j) {
      const float keep = up ? x[N / 2 + j] : x[j], send = up ? x[j] : x[N / 2 + j];
      x[j] = keep + __shfl_xor_sync(0xffffffffu, send, M);
    }
    m0 += up ? N / 2 : 0;
    scan_wg_rs<M / 2, N / 2>(x, lane, m0);
  }
}

// grid (1, B*H); 256 threads; shared memory C::kSmemBytes.
template <class C, bool kRev>
__global__ void __launch_bounds__(256, 1) vec_wg_scan(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem_raw);
  const ScanWgTile<C> t(LIN_WG_ALIGN1024(smem_raw));
  const int tid = threadIdx.x, warp = warp_uniform(tid >> 5), lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int wg = warp >> 2, wi = warp & 3;  // (warp_uniform: uniform roles and wgmma descriptors)
  const int bh = blockIdx.y, NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, false, kRev};
  const float out_scale = kRev ? p.scale : 1.0f;
  T* states = static_cast<T*>(p.states) + int64_t(bh) * NC * C::kDk * p.Dvv;
  const T* dsts = !kRev && p.bnd ? static_cast<const T*>(p.bnd_states) + int64_t(bh) * NC * C::kDk * p.Dvv : nullptr;
  // this lane's stored words: (i, hr) at row 8i + 2t4 + odd, column n0 + 8hr - odd
  const bool odd = (g & 1) != 0;
  const int n0 = 64 * wg + 16 * wi + g, srow = 2 * t4 + (odd ? 1 : 0), scol = n0 - (odd ? 1 : 0);
  auto word_off = [&](int cc, int i, int hr) { return (int64_t(cc) * C::kDk + 8 * i + srow) * p.Dvv + scol + 8 * hr; };
  float st[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) st[i] = 0.0f;
  uint32_t dw[32];  // forward: the rd(D_{c-1}) words of this lane
  scan_wg_load<C>(p, t, rows, bh, 0);
  cp_async_commit();

  for (int c = 0; c < NC; ++c) {
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();  // B1
    if (c + 1 < NC) scan_wg_load<C>(p, t, rows, bh, c + 1);
    cp_async_commit();
    const int s = c & 1, cc = rows.chunk(c);
    if (dsts && c > 0) {  // partials of bnd_{c-1} over this warp's columns n, per d
      float acc[32];
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        acc[2 * i] = acc[2 * i + 1] = 0.0f;
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const float2 dd = unpack2<T>(scan_wg_swap(dw[2 * i + hr], odd));  // D[d][n], D[d + 1][n]
          acc[2 * i] += st[4 * i + 2 * hr] * dd.x;
          acc[2 * i + 1] += st[4 * i + 2 * hr + 1] * dd.y;
        }
      }
      int m0 = 0;
      scan_wg_rs<16, 32>(acc, lane, m0);  // over the lanes of one t4: 4 partials a lane, m0 + j
#pragma unroll
      for (int j = 0; j < 4; ++j) {  // partial m = 2i + (d's parity)
        const int m = m0 + j;
        t.Part()[warp * C::kDk + 8 * (m >> 1) + 2 * t4 + (m & 1)] = acc[j];
      }
    }
    scan_columns<C, kRev>(t, s, warp, lane);
    fence_proxy_async();  // X's generic stores before the wgmma reads
    __syncthreads();      // B2
    if (dsts) {
      const int d = tid & 127, w0 = 4 * (tid >> 7);
      float* bo = p.bnd + (int64_t(bh) * p.NV + (tid >> 7)) * NC * p.Dqk + d;
      if (c > 0 && d < p.Dqk) {
        const float* part = t.Part() + d;
        bo[int64_t(c - 1) * p.Dqk] =
            part[w0 * C::kDk] + part[(w0 + 1) * C::kDk] + part[(w0 + 2) * C::kDk] + part[(w0 + 3) * C::kDk];
      }
      if (c == NC - 1 && d < p.Dqk) bo[int64_t(c) * p.Dqk] = 0.0f;  // no state after the last chunk
    }
    uint32_t sa[8][4];  // rd(out_scale st) packed along d: word (i, hr) = sa[i >> 1][2 (i & 1) + hr]
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
#pragma unroll
      for (int r = 0; r < 4; ++r) sa[kk][r] = pack2<T>(out_scale * st[8 * kk + 2 * r], out_scale * st[8 * kk + 2 * r + 1]);
    }
    {
      const float* dec = t.Dec();
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        const float2 dd = *reinterpret_cast<const float2*>(dec + 8 * i + 2 * t4);
        st[4 * i] *= dd.x, st[4 * i + 1] *= dd.y, st[4 * i + 2] *= dd.x, st[4 * i + 3] *= dd.y;
      }
    }
    const unsigned char* Xt = reinterpret_cast<const unsigned char*>(t.X(s));
    const unsigned char* Yw = reinterpret_cast<const unsigned char*>(t.Y(s)) + wg * C::kChunk;  // 64 value columns
    wg_fence();
    wg_fence_operands(st);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) Wgmma<128, T>::template ss<1, 1>(st, wg_mn_major(Yw, kk), wg_mn_major(Xt, kk));
    wg_commit();
    // rd(state) before this chunk's update, while the products run
#pragma unroll
    for (int i = 0; i < 16; ++i) {
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const uint32_t w = scan_wg_swap(sa[i >> 1][2 * (i & 1) + hr], odd);
        if (scol + 8 * hr < p.Dvv) *reinterpret_cast<uint32_t*>(states + word_off(cc, i, hr)) = w;
      }
    }
    if (dsts && c + 1 < NC) {  // the rd(D_c) words for bnd_c, used after B1 of chunk c + 1
#pragma unroll
      for (int i = 0; i < 16; ++i) {
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          dw[2 * i + hr] = scol + 8 * hr < p.Dvv ? *reinterpret_cast<const uint32_t*>(dsts + word_off(cc, i, hr)) : 0u;
        }
      }
    }
    wg_wait<0>();
    wg_fence_operands(st);
  }
}

}  // namespace attnbench::kernels::lin_tiled
