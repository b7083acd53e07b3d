// bidir tiled forward: the per-tile steps that the two-launch forward (bidir_tiled_fwd.cu: state
// kernel + output kernel) and the one-launch forward (bidir_tiled_fused.cu) share. The equations
// and rounding points are in bidir_tiled_fwd.cu's header.
#pragma once

#include "bidir_tiled_maps.cuh"
#include "hopper.cuh"  // fence_proxy_async

namespace attnbench::kernels::bidir {

// Phase 1 on one tile in shared memory (K [BM][KST], V [BM][VST], slice rows row0..row0+BM-1):
// warp `warp` (< RED_WARPS) adds Kf^T [V | 1] to its rows 16 warp..16 warp+15 of the state
// [KV | ksum] (acc in C layout; tile NV holds the key sums in column 0, the product with a B
// fragment of ones). A = Kf^T comes from the K tile by ldmatrix.trans; FM (identity, elu1, relu)
// is applied to these A fragments in registers and rounded to the storage dtype (one element, one
// phi: each warp owns different columns d of K). focused needs the norms of whole K rows, which
// lie across warps here: its tile is mapped in place beforehand (focused_tile_inplace) and comes
// here as identity. A register j of k-step ks holds (d, t) = (16 warp + g + 8 (j%2),
// 16 ks + 8 (j/2) + 2q + c), c = 0, 1; entries with d >= Dk or row0 + t >= Tk are zero-filled in
// shared memory and must stay zero in Kf (elu1(0) = 1; relu(0) = 0 needs no mask); MASK = false
// where the tile is whole (row0 + BM <= Tk) and Dk == DKP. The warp takes the KSN k-steps from
// ks0 (the whole tile: ks0 = 0, KSN = BM / 16; or a share, when several warps own the same rows).
// LK, LV: the tiles' shared layouts (bidir_tiled_common.cuh; padded rows unless the TMA forward
// loads swizzled boxes).
// Loaded: called once this warp has read all it reads of the tile (the TMA forward releases the
// slot there, so the ring refills while the warp still computes: bidir_tiled_tma.cu). With a
// Loaded other than NoOp, and where the fragments fit (KSN (2 NV + 4) <= 40 registers), every
// fragment is read first, then the math runs; else Loaded runs after the math.
struct NoOp {  // a callback that does nothing (the default Loaded, AfterMap, Stamp)
  template <class... A>
  __device__ __forceinline__ void operator()(A...) const {}
};
// Phase 1's map of one A = Kf^T fragment of k-step ks in place (state_tile's, and the TMA kernel's
// wgmma phase 1): phi on the 4 registers, rounded to T; where MASK (the tile is not whole), the
// entries with d >= Dk (dok, by the fragment's two rows) or t >= tvalid stay 0 (elu1(0) = 1).
template <class T, int FM, bool MASK>
__device__ __forceinline__ void phi_kt_frag(uint32_t (&a)[4], int ks, int tvalid, const bool (&dok)[2], int q) {
  if constexpr ((FM == kElu1Pk || FM == kElu1) && !MASK) {
#pragma unroll
    for (int j = 0; j < 4; ++j) a[j] = FM == kElu1Pk ? elu1_pk_packed<T>(a[j]) : elu1_f2_packed<T>(a[j]);
  } else if constexpr (FM == kRelu) {  // relu(0) = 0: no mask needed
#pragma unroll
    for (int j = 0; j < 4; ++j) a[j] = relu_packed<T>(a[j]);
  } else if (FM != kIdentity) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = phi_pair<FM>(unpack2<T>(a[j]));
      float f0 = f.x, f1 = f.y;
      if ((FM == kElu1 || FM == kElu1Pk) && MASK) {
        const int t = ks * 16 + 8 * (j / 2) + 2 * q;
        f0 = dok[j % 2] && t < tvalid ? f0 : 0.0f;
        f1 = dok[j % 2] && t + 1 < tvalid ? f1 : 0.0f;
      }
      a[j] = pack2<T>(f0, f1);
    }
  }
}

template <class T, int DKP, int DVP, int FM, bool MASK, int KSN, class LK = PadTile<DKP + 8>, class LV = PadTile<DVP + 8>,
          class Loaded = NoOp>
__device__ __forceinline__ void state_tile(float (&acc)[DVP / 8 + 1][4], const T* cK, const T* cV, int row0,
                                           const TiledParams& p, int warp, int ks0, int lane, uint32_t ones,
                                           Loaded loaded = {}) {
  using Tr = Traits<DKP, DVP>;
  const int mi = lane / 8, r8 = lane % 8, g = lane / 4, q = lane % 4;
  const int tvalid = p.Tk - row0;  // rows of this tile inside Tk
  const bool dok[2] = {warp * 16 + g < p.Dk, warp * 16 + g + 8 < p.Dk};
  const uint32_t ak = LK::lane(smem_addr(cK), (mi / 2) * 8 + r8, (mi % 2) * 8);
  const uint32_t av = LV::lane(smem_addr(cV), (mi % 2) * 8 + r8, (mi / 2) * 8);
  // A = Kf^T of k-step ks in place: phi on the 4 registers (masked where the tile is not whole).
  auto map_a = [&](uint32_t(&a)[4], int ks) { phi_kt_frag<T, FM, MASK>(a, ks, tvalid, dok, q); };
  constexpr bool PRE = !std::is_same_v<Loaded, NoOp> && KSN * (2 * Tr::NV + 4) <= 40;
  if constexpr (PRE) {
    uint32_t a[KSN][4], b[KSN][Tr::NV / 2][4];  // B = V [t][e]: rows t = k, ldmatrix.trans
#pragma unroll
    for (int kk = 0; kk < KSN; ++kk) {
      ldsm_x4_t(a[kk], LK::at(ak, (ks0 + kk) * 16, warp * 16));
#pragma unroll
      for (int np = 0; np < Tr::NV / 2; ++np) ldsm_x4_t(b[kk][np], LV::at(av, (ks0 + kk) * 16, np * 16));
    }
    loaded();
#pragma unroll
    for (int kk = 0; kk < KSN; ++kk) {
      map_a(a[kk], ks0 + kk);
#pragma unroll
      for (int np = 0; np < Tr::NV / 2; ++np) {
        mma16816<T>(acc[2 * np], a[kk], b[kk][np][0], b[kk][np][1]);
        mma16816<T>(acc[2 * np + 1], a[kk], b[kk][np][2], b[kk][np][3]);
      }
      if (p.norm) mma16816<T>(acc[Tr::NV], a[kk], ones, ones);
    }
  } else {
#pragma unroll
    for (int kk = 0; kk < KSN; ++kk) {
      const int ks = ks0 + kk;
      uint32_t a[4];
      ldsm_x4_t(a, LK::at(ak, ks * 16, warp * 16));
      map_a(a, ks);
#pragma unroll
      for (int np = 0; np < Tr::NV / 2; ++np) {
        uint32_t b[4];  // B = V [t][e]: rows t = k, ldmatrix.trans
        ldsm_x4_t(b, LV::at(av, ks * 16, np * 16));
        mma16816<T>(acc[2 * np], a, b[0], b[1]);
        mma16816<T>(acc[2 * np + 1], a, b[2], b[3]);
      }
      if (p.norm) mma16816<T>(acc[Tr::NV], a, ones, ones);
    }
    loaded();
  }
}

// state_tile with the run-time map (focused: mapped in place beforehand, here as identity) and
// the mask only where the tile needs it.
template <class T, int DKP, int DVP, int KSN, class LK = PadTile<DKP + 8>, class LV = PadTile<DVP + 8>, class Loaded = NoOp>
__device__ __forceinline__ void state_tile_any(float (&acc)[DVP / 8 + 1][4], const T* cK, const T* cV, int row0,
                                               const TiledParams& p, int warp, int ks0, int lane, uint32_t ones,
                                               Loaded loaded = {}) {
  const bool whole = row0 + Traits<DKP, DVP>::BM <= p.Tk && p.Dk == DKP;
  if (p.fm == kElu1) {
    if (whole) {
      state_tile<T, DKP, DVP, kElu1, false, KSN, LK, LV, Loaded>(acc, cK, cV, row0, p, warp, ks0, lane, ones, loaded);
    } else {
      state_tile<T, DKP, DVP, kElu1, true, KSN, LK, LV, Loaded>(acc, cK, cV, row0, p, warp, ks0, lane, ones, loaded);
    }
  } else if (p.fm == kElu1Pk) {
    if (whole) {
      state_tile<T, DKP, DVP, kElu1Pk, false, KSN, LK, LV, Loaded>(acc, cK, cV, row0, p, warp, ks0, lane, ones, loaded);
    } else {
      state_tile<T, DKP, DVP, kElu1Pk, true, KSN, LK, LV, Loaded>(acc, cK, cV, row0, p, warp, ks0, lane, ones, loaded);
    }
  } else if (p.fm == kRelu) {
    state_tile<T, DKP, DVP, kRelu, false, KSN, LK, LV, Loaded>(acc, cK, cV, row0, p, warp, ks0, lane, ones, loaded);
  } else {
    state_tile<T, DKP, DVP, kIdentity, false, KSN, LK, LV, Loaded>(acc, cK, cV, row0, p, warp, ks0, lane, ones, loaded);
  }
}

// focused on a K tile in shared memory, in place (rows >= Tk and columns >= Dk become 0): warps
// < SLAB_WARPS each map a 16-row slab on its A fragments (the row norms are quad sums). The caller
// synchronizes the block before state_tile reads the tile.
template <class T, int DKP, int DVP, class LK = PadTile<DKP + 8>>
__device__ __forceinline__ void focused_tile_inplace(T* cK, int row0, const TiledParams& p, int warp, int lane) {
  using Tr = Traits<DKP, DVP>;
  if (warp >= Tr::SLAB_WARPS) return;
  T* slab = cK + LK::off(warp * 16, 0);
  uint32_t x[Tr::KT][4];
  load_a_frags_l<Tr::KT, LK>(x, slab, lane);
  const int row = row0 + warp * 16 + lane / 4;
  const bool row_ok[2] = {row < p.Tk, row + 8 < p.Tk};
  phi_frags<T, Tr::KT, kFocused>(x, row_ok, p.Dk, lane);
  __syncwarp();
  store_a_frags_l<Tr::KT, LK>(slab, x, lane);
}

// focused on R whole rows [r0, r0 + R) of a K tile in shared memory (layout LK), in place, by one
// warp (the TMA forward's phase 1, p.focused_rows): a row is LPR lanes of CPL 16-byte chunks (8
// columns each; lane j of a row takes chunks j, j + LPR, ..., so that each 16-byte load of the warp
// reads chunks 0..LPR-1 of RPP rows: conflict-free under the 128-byte swizzle); y = relu(x) + 1e-6
// (0 at columns >= Dk), u = y^3, the row's ||y||^2 and ||u||^2 are the sums over its lanes (xor
// shuffles), phi = u ||y|| / ||u|| rounded to the dtype, and rows >= Tk become 0. The caller orders
// these writes before the group's reads (named barrier) and before the slot's TMA refill
// (fence.proxy.async). MASK = false where Dk == DKP (no column test); relu on the packed pairs, r by
// focused_ratio. CPL = 2 where R allows (session 10: half the shuffles and ratios an element of
// CPL = 1; session 8: the pass was ~160 instructions for 8 elements a lane, the column tests and
// the IEEE square roots and division a third of them).
template <class T, int DKP, int R, class LK, bool MASK = true>
__device__ __forceinline__ void focused_rows_inplace(T* cK, int r0, int row0, const TiledParams& p, int lane) {
  constexpr int CPL = R % (512 / DKP) == 0 ? 2 : 1;  // chunks per lane
  constexpr int LPR = DKP / 8 / CPL, RPP = 32 / LPR;  // lanes per row, rows per pass
  static_assert(LPR <= 32 && R % RPP == 0, "whole rows per pass");
#pragma unroll
  for (int pass = 0; pass < R / RPP; ++pass) {
    const int r = r0 + pass * RPP + lane / LPR, c0 = (lane % LPR) * 8;
    uint4* ptr[CPL];
    uint32_t w[CPL][4];
#pragma unroll
    for (int h = 0; h < CPL; ++h) {
      ptr[h] = reinterpret_cast<uint4*>(cK + LK::off(r, c0 + h * 8 * LPR));
      const uint4 raw = *ptr[h];
      w[h][0] = raw.x, w[h][1] = raw.y, w[h][2] = raw.z, w[h][3] = raw.w;
    }
    float u[CPL][8], ny2 = 0.0f, nu2 = 0.0f;
#pragma unroll
    for (int h = 0; h < CPL; ++h) {
      const int c = c0 + h * 8 * LPR;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 v = focused_y2<T>(w[h][j]);
        const float y0 = !MASK || c + 2 * j < p.Dk ? v.x : 0.0f, y1 = !MASK || c + 2 * j + 1 < p.Dk ? v.y : 0.0f;
        const float s0 = y0 * y0, s1 = y1 * y1;
        u[h][2 * j] = s0 * y0, u[h][2 * j + 1] = s1 * y1;
        ny2 += s0 + s1;
        nu2 = fmaf(u[h][2 * j], u[h][2 * j], fmaf(u[h][2 * j + 1], u[h][2 * j + 1], nu2));
      }
    }
#pragma unroll
    for (int m = 1; m < LPR; m *= 2) {
      ny2 += __shfl_xor_sync(0xffffffffu, ny2, m);
      nu2 += __shfl_xor_sync(0xffffffffu, nu2, m);
    }
    const float rr = row0 + r < p.Tk ? focused_ratio(ny2, nu2) : 0.0f;
#pragma unroll
    for (int h = 0; h < CPL; ++h) {
      uint32_t o[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) o[j] = pack2<T>(u[h][2 * j] * rr, u[h][2 * j + 1] * rr);
      *ptr[h] = make_uint4(o[0], o[1], o[2], o[3]);
    }
  }
}

// focused_rows_inplace on packed bf16 pairs (focused_pk, TiledParams::focused_pk; Dk == DKP): the
// warp's 8 rows [r0, r0 + 8) by ldmatrix as 8x8 blocks (register c of lane (g, q): row r0 + g,
// columns 8c + 2q, +1), the row norms by mma with A = [s of the rows; w of the rows] (A rows 0-7
// and 8-15) and B = ones, so lane (g, q) reads row g's ||y||^2 in c[0] and ||u||^2 in c[2] (no
// shuffles); phi = round(r u) (focused_pk_scale), rows >= Tk 0; stmatrix writes phi back where
// ldmatrix read it. By the source, ~70 instructions a warp for 8 rows of 64 columns (PRECISE
// ~100; not profiled), against the ~159 SASS instructions session 10 counted for the fp32 pass.
template <int DKP, class LK, bool PRECISE>
__device__ __forceinline__ void focused_rows_pk(__nv_bfloat16* cK, int r0, int row0, const TiledParams& p, int lane) {
  constexpr int NX = DKP / 32;  // ldmatrix.x4 per row block: 4 chunks of 8 columns each
  uint32_t addr[NX], x[NX][4], s[NX][4], w[NX][4];
  const uint32_t base = smem_addr(cK);
#pragma unroll
  for (int h = 0; h < NX; ++h) {
    addr[h] = LK::lane(base, r0 + lane % 8, (4 * h + lane / 8) * 8);
    ldsm_x4(x[h], addr[h]);
  }
#pragma unroll
  for (int h = 0; h < NX; ++h) {
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      const FocusedPk f = focused_pk<PRECISE>(x[h][m]);
      x[h][m] = f.u, s[h][m] = f.s, w[h][m] = f.w;
    }
  }
  float c[4] = {};
#pragma unroll
  for (int h = 0; h < NX; ++h) {
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {  // columns 32 h + 16 kk .. + 15: chunks 2 kk, 2 kk + 1 of block h
      const uint32_t a[4] = {s[h][2 * kk], w[h][2 * kk], s[h][2 * kk + 1], w[h][2 * kk + 1]};
      mma16816<__nv_bfloat16>(c, a, kBf16OnesPair, kBf16OnesPair);
    }
  }
  const float r = row0 + r0 + lane / 4 < p.Tk ? focused_ratio(c[0], c[2]) : 0.0f;
#pragma unroll
  for (int h = 0; h < NX; ++h) {
#pragma unroll
    for (int m = 0; m < 4; ++m) x[h][m] = focused_pk_scale<PRECISE>(x[h][m], r);
    stsm_x4(addr[h], x[h], lane);
  }
}

// KVr^T for phase 2 on wgmma (bidir_tiled_wg.cuh; Dk = Dv = 64): [72 rows n][64 columns d] of the
// storage dtype, K-major with the 128-byte swizzle (16-byte unit u of row n at unit u ^ (n % 8)):
// rows n < 64 hold KVr's column n, rows 64, 65, 66 kmean's terms hi, mid, lo, rows 67..71 zero.
// kvt_offset: the byte offset of element (n, d).
constexpr int kWgN = 72;
__device__ __forceinline__ int kvt_offset(int n, int d) { return n * 128 + (((d >> 3) ^ (n & 7)) << 4) + (d & 7) * 2; }
template <class T>
__device__ __forceinline__ void kvt_store(T* kvt, int n, int d, float x) {
  *reinterpret_cast<uint16_t*>(reinterpret_cast<unsigned char*>(kvt) + kvt_offset(n, d)) = static_cast<uint16_t>(pack2<T>(x, 0.0f));
}

// kmean as three storage-dtype terms hi + mid + lo (its fp32 value to ~24 bits): the z of phase 2
// on tensor cores (output_slab_smem's p.zmma, and KVr^T's rows 64..66 on the wgmma path).
template <class T>
__device__ __forceinline__ float3 kmean_terms(float km) {
  const float hi = unpack2<T>(pack2<T>(km, 0.0f)).x, mid = unpack2<T>(pack2<T>(km - hi, 0.0f)).x;
  return make_float3(hi, mid, km - hi - mid);
}

// KVr^T's columns d0 .. d0 + rows (a CTA's owned state rows; rows a multiple of 8) in this CTA's
// sKV by stmatrix.trans, kmean's terms with them (TiledParams::kvt kKvtStsm, kKvtPush). part(r),
// r = 0 .. np - 1: partial r of [KV | ksum] as fp32 rows of NCOL, summed in that order. A warp
// takes an 8 x 32 block of KVr (rows d, columns n) as four 8x8 blocks of KVr^T: each lane sums its
// two columns of one row (float2 loads), and lane 8m + c addresses the 16-byte chunk (row n = nb +
// 8m + c of KVr^T, 8 rows d) that stmatrix writes (no 2-byte stores, which fall 8 to a bank).
// kmean's terms likewise, a warp an 8x8 block (rows 64..71 of KVr^T). skm is not written: the
// wgmma phase 2 reads kmean from KVr^T's rows 64..66 only.
template <class T, int NW, class Part>
__device__ __forceinline__ void kvt_owned_stsm(T* sKV, int d0, int rows, int np, Part part, const TiledParams& p, int warp,
                                               int lane) {
  constexpr int NCOL = Traits<64, 64>::NCOL, DVP = 64;
  const int g = lane / 4, q = lane % 4;
  const uint32_t kvt = smem_addr(sKV);
  for (int t = warp; t < rows / 8 * 2; t += NW) {
    const int db = d0 + 8 * (t / 2), nb = 32 * (t % 2);
    float2 v[4] = {};
#pragma unroll 2
    for (int r = 0; r < np; ++r) {
      const float* src = part(r) + (db + g) * NCOL + nb + 2 * q;
      float2 x[4];
#pragma unroll
      for (int m = 0; m < 4; ++m) x[m] = *reinterpret_cast<const float2*>(src + 8 * m);
#pragma unroll
      for (int m = 0; m < 4; ++m) v[m].x += x[m].x, v[m].y += x[m].y;
    }
    const uint32_t pk[4] = {pack2<T>(v[0].x, v[0].y), pack2<T>(v[1].x, v[1].y), pack2<T>(v[2].x, v[2].y), pack2<T>(v[3].x, v[3].y)};
    stsm_x4<true>(kvt + kvt_offset(nb + lane, db), pk, lane);  // lane 8m + c: row nb + 8m + c
  }
  for (int t = warp; t < rows / 8; t += NW) {
    const int d = d0 + 8 * t + g;
    float s = 0.0f;
    for (int r = 0; r < np; ++r) s += part(r)[d * NCOL + DVP];
    const float km = p.norm ? s * p.inv_tk : 0.0f;
    const float3 z = kmean_terms<T>(km);
    stsm_x1_t(kvt + kvt_offset(DVP + lane % 8, d0 + 8 * t), q == 0 ? pack2<T>(z.x, z.y) : q == 1 ? pack2<T>(z.z, 0.0f) : 0u, lane);
  }
}

// The owned 16-byte chunks of KVr^T's 72 rows (columns d0 .. d0 + rows; kvt_owned_stsm wrote
// them) handed to put(byte offset, chunk), a thread a chunk: the copies to the cluster's other CTAs.
template <int NW, class T, class Put>
__device__ __forceinline__ void kvt_owned_chunks(const T* sKV, int d0, int rows, Put put) {
  const int cpr = rows / 8;  // chunks of a KVr^T row that this CTA owns
  for (int v = threadIdx.x; v < kWgN * cpr; v += 32 * NW) {
    const int off = kvt_offset(v / cpr, d0 + 8 * (v % cpr));
    put(off, *reinterpret_cast<const uint4*>(reinterpret_cast<const unsigned char*>(sKV) + off));
  }
}

// The one-launch forwards' state exchange (bidir_tiled_fused.cu, bidir_tiled_tma.cu), by all NW
// warps of each of the C CTAs of a cluster (C = 1: no cluster). acc: this warp's phase-1 partial
// [KV | ksum] rows 16 (w % RED_WARPS).. in C layout (warp groups w / RED_WARPS hold partials of
// the same rows over different k-steps). red: fp32 [DKP][NCOL] of this CTA; sKV [DKP][VST], skm
// [DKP]: every CTA's copy is complete on return.
//   1. the CTA's partial into red: group 0 stores, the other groups add theirs, in order;
//   2. (cluster barrier) CTA `rank` owns rows [rank DKP/C, (rank+1) DKP/C): it adds those rows of
//      the C partials (distributed shared memory, in rank order: the sum does not depend on
//      timing and is the same for every CTA), rounds KVr = round(KV), forms kmean = ksum / Tk,
//      and writes both into every CTA's sKV, skm;
//   3. (cluster barrier) after it no CTA reads another's red again, so red may be reused.
// rank0: the cluster rank of the head's first CTA (the launch's clusters may hold several heads:
// TiledParams::heads_per_cluster; then the barriers span all of them).
// KVT (DKP = DVP = 64): sKV holds KVr^T with kmean's terms (kvt_offset's layout) instead, for
// phase 2 on wgmma; its writes are fenced for the async proxy before the last barrier. p.kvt:
// kKvtDirect, each thread's 8 sums of a row as 8 2-byte elements into 8 rows of every CTA's KVr^T;
// else (kKvtStsm) kvt_owned_stsm into this CTA's copy and, after a block barrier, its owned chunks
// into the other CTAs' as 16-byte stores (288 a CTA at C = 2 instead of ~2300 2-byte ones: session
// 21). Same values, same order of the sums. (kKvtPush: cluster_state_exchange_push.)
// stamp(k) (the TMA forward's timeline, TiledParams::diag 32): k = 7 once every warp of the CTA has
// stored its partial, 8 after the cluster barrier, 9 after the owned rows' writes.
template <class T, int DKP, int DVP, int NW, bool KVT = false, class Stamp = NoOp>
__device__ __forceinline__ void cluster_state_exchange(const float (&acc)[DVP / 8 + 1][4], float* red, T* sKV, float* skm,
                                                       const TiledParams& p, int C, int rank, int rank0 = 0, Stamp stamp = {}) {
  static_assert(!KVT || (DKP == 64 && DVP == 64), "KVr^T for Dk = Dv = 64");
  using Tr = Traits<DKP, DVP>;
  constexpr int NTHR = 32 * NW, KG = NW / Tr::RED_WARPS, NCOL = Tr::NCOL;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
  for (int grp = 0; grp < KG; ++grp) {
    if (warp / Tr::RED_WARPS == grp) {
#pragma unroll
      for (int nt = 0; nt <= Tr::NV; ++nt) {
        const int row = (warp % Tr::RED_WARPS) * 16 + g, col = nt * 8 + 2 * q;
        float2* r0 = reinterpret_cast<float2*>(red + row * NCOL + col);
        float2* r1 = reinterpret_cast<float2*>(red + (row + 8) * NCOL + col);
        float2 v0 = make_float2(acc[nt][0], acc[nt][1]), v1 = make_float2(acc[nt][2], acc[nt][3]);
        if (grp > 0) v0.x += r0->x, v0.y += r0->y, v1.x += r1->x, v1.y += r1->y;
        *r0 = v0, *r1 = v1;
      }
    }
    if (grp + 1 < KG) __syncthreads();
  }
  stamp(7);
  if (C > 1) cluster_sync(); else __syncthreads();
  stamp(8);
  const int rows = DKP / C, d0 = rank * rows;  // C divides DKP (C <= 8, DKP >= 64)
  constexpr int G = DVP / 8;                   // 8-column groups of a row
  auto part = [&](int r) -> const float* { return C > 1 ? cluster_map(red, rank0 + r) : red; };
  if constexpr (KVT) {
    if (p.kvt != kKvtDirect) {
      kvt_owned_stsm<T, NW>(sKV, d0, rows, C, part, p, warp, lane);
      if (C > 1) {
        __syncthreads();
        kvt_owned_chunks<NW>(sKV, d0, rows, [&](int off, const uint4& x) {
          for (int r = 0; r < C; ++r) {
            if (r != rank) *reinterpret_cast<uint4*>(reinterpret_cast<unsigned char*>(cluster_map(sKV, rank0 + r)) + off) = x;
          }
        });
      }
    } else {
      for (int u = tid; u < rows * (G + 1); u += NTHR) {  // (d, 8 columns e) of KVr, then (d, kmean's terms)
        const int d = d0 + u % rows, e = (u / rows) * 8;
        float s[8] = {};
        for (int r = 0; r < C; ++r) {
          const float* src = part(r) + d * NCOL + e;
          if (e < DVP) {
#pragma unroll
            for (int j = 0; j < 8; ++j) s[j] += src[j];
          } else {
            s[0] += src[0];
          }
        }
        if (e == DVP) {
          const float km = p.norm ? s[0] * p.inv_tk : 0.0f;
          const float3 z = kmean_terms<T>(km);
          s[0] = z.x, s[1] = z.y, s[2] = z.z;
        }
        for (int r = 0; r < C; ++r) {
          T* dst = C > 1 ? cluster_map(sKV, rank0 + r) : sKV;
#pragma unroll
          for (int j = 0; j < 8; ++j) kvt_store(dst, e + j, d, s[j]);
        }
      }
    }
  } else {
    for (int u = tid; u < rows * G; u += NTHR) {
      const int d = d0 + u / G, e = (u % G) * 8;
      float s[8] = {};
      for (int r = 0; r < C; ++r) {
        const float4* src = reinterpret_cast<const float4*>(part(r) + d * NCOL + e);
        const float4 a = src[0], b = src[1];
        s[0] += a.x, s[1] += a.y, s[2] += a.z, s[3] += a.w, s[4] += b.x, s[5] += b.y, s[6] += b.z, s[7] += b.w;
      }
      const uint4 kvr = make_uint4(pack2<T>(s[0], s[1]), pack2<T>(s[2], s[3]), pack2<T>(s[4], s[5]), pack2<T>(s[6], s[7]));
      for (int r = 0; r < C; ++r) *reinterpret_cast<uint4*>((C > 1 ? cluster_map(sKV, rank0 + r) : sKV) + d * Tr::VST + e) = kvr;
    }
    for (int d = d0 + tid; d < d0 + rows; d += NTHR) {
      float s = 0.0f;
      for (int r = 0; r < C; ++r) s += part(r)[d * NCOL + DVP];
      const float km = p.norm ? s * p.inv_tk : 0.0f;
      // kmean's terms in the padding columns DVP.. of sKV row d (output_slab_smem's p.zmma)
      const float3 z = kmean_terms<T>(km);
      const uint4 kz = make_uint4(pack2<T>(z.x, z.y), pack2<T>(z.z, 0.0f), 0u, 0u);
      for (int r = 0; r < C; ++r) {
        (C > 1 ? cluster_map(skm, rank0 + r) : skm)[d] = km;
        *reinterpret_cast<uint4*>((C > 1 ? cluster_map(sKV, rank0 + r) : sKV) + d * Tr::VST + DVP) = kz;
      }
    }
  }
  stamp(9);
  if constexpr (KVT) hopper::fence_proxy_async();  // this thread's KVr^T writes, before wgmma reads them
  if (C > 1) cluster_sync(); else __syncthreads();  // sKV, skm complete here; no CTA reads red again
  if constexpr (KVT) hopper::fence_proxy_async();  // the other threads' (and CTAs') writes, seen by this thread's wgmma
}

// Phase 2's map of one slab's Q fragments in place: Qf = round(phi(Q)) (rows >= Tq and columns
// >= Dk stay 0), or with focused folded (bf16, p.focused_fold) round(u), and fr = the rows' r
// (else 1): output_frags' first step.
template <class T, int DKP, int DVP>
__device__ __forceinline__ void output_map(uint32_t (&f)[Traits<DKP, DVP>::KT][4], int row0, const TiledParams& p, int lane,
                                           float (&fr)[2]) {
  using Tr = Traits<DKP, DVP>;
  const int row = row0 + lane / 4;
  // fr: the focused rows' factor r where the map is folded (f holds round(u); every product of f
  // is r^-1 times the exact map's, so r multiplies z and the output: focused_fold_frags)
  fr[0] = fr[1] = 1.0f;
  const bool fold = std::is_same_v<T, __nv_bfloat16> && p.fm == kFocused && p.focused_fold;
  if (p.fm != kIdentity) {
    const bool row_ok[2] = {row < p.Tq, row + 8 < p.Tq};
    const bool full = row0 + 16 <= p.Tq && p.Dk == DKP;
    if (fold) {
      if constexpr (std::is_same_v<T, __nv_bfloat16>) {
        if (full && p.focused_pk == 2) focused_fold_pk<Tr::KT, true>(f, fr);
        else if (full && p.focused_pk == 1) focused_fold_pk<Tr::KT, false>(f, fr);
        else if (full) focused_fold_frags<T, Tr::KT, false>(f, row_ok, p.Dk, lane, fr);
        else focused_fold_frags<T, Tr::KT>(f, row_ok, p.Dk, lane, fr);
      }
    } else {
      phi_frags_any<T, Tr::KT>(f, p.fm, row_ok, p.Dk, lane, full);
    }
  }
}

// The row scale of a mapped slab: o = rs Qf KVr with rs = scale (simple) or (1/Tk) / (Qf . kmean
// + 1e-6) (norm; z on tensor cores with p.zmma), times fr where focused is folded.
template <class T, int DKP, int DVP>
__device__ __forceinline__ void output_scale(const uint32_t (&f)[Traits<DKP, DVP>::KT][4], const T* sKV, const float* skm,
                                             const TiledParams& p, int lane, const float (&fr)[2], float (&rs)[2]) {
  using Tr = Traits<DKP, DVP>;
  const int q = lane % 4;
  const bool fold = std::is_same_v<T, __nv_bfloat16> && p.fm == kFocused && p.focused_fold;
  rs[0] = rs[1] = p.scale;  // o = rs * acc
  if (p.norm && p.zmma) {
    // z = Qf . kmean on tensor cores: B = sKV's padding columns DVP.. = [hi, mid, lo, 0...] of
    // kmean (cluster_state_exchange), two k-steps per ldmatrix.x4 (lane l: row 16 kt + l); the
    // C tile's columns 0, 1 (quad lane 0) and 2 (quad lane 1) hold the three partial dots.
    float zc[4] = {};
#pragma unroll
    for (int kt = 0; kt < Tr::KT; kt += 2) {
      uint32_t b[4];
      ldsm_x4_t(b, sKV + (kt * 16 + lane) * Tr::VST + DVP);
      mma16816<T>(zc, f[kt], b[0], b[1]);
      mma16816<T>(zc, f[kt + 1], b[2], b[3]);
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const float part = q == 0 ? zc[2 * j] + zc[2 * j + 1] : (q == 1 ? zc[2 * j] : 0.0f);
      rs[j] = p.inv_tk / (fr[j] * quad_sum(part) + kNormEps);
    }
  } else if (p.norm) {
    float z[2] = {0.0f, 0.0f};  // Qf . kmean over this thread's columns, then the quad
#pragma unroll
    for (int kt = 0; kt < Tr::KT; ++kt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 x = unpack2<T>(f[kt][i]);
        const float2 m = *reinterpret_cast<const float2*>(skm + kt * 16 + 8 * (i / 2) + 2 * q);
        z[i % 2] += x.x * m.x + x.y * m.y;
      }
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) rs[j] = p.inv_tk / (fr[j] * quad_sum(z[j]) + kNormEps);
  }
  if (fold) rs[0] *= fr[0], rs[1] *= fr[1];
}

// acc = Qf KVr over output columns [32 nc, 32 nc + 32) of a mapped slab (KVr [DKP][VST] in shared
// memory, read by ldmatrix.trans).
// NOKVR (a diagnostic, wrong output): B is `breg` in every k-step instead of KVr's fragments (the
// same tensor work without its shared-memory reads).
template <class T, int DKP, int DVP, bool NOKVR = false>
__device__ __forceinline__ void output_products(const uint32_t (&f)[Traits<DKP, DVP>::KT][4], float (&acc)[4][4], const T* sKV,
                                                int nc, int lane, uint32_t breg = 0) {
  using Tr = Traits<DKP, DVP>;
  const int mi = lane / 8, r8 = lane % 8;
#pragma unroll
  for (int nt = 0; nt < 4; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
  for (int kt = 0; kt < Tr::KT; ++kt) {
#pragma unroll
    for (int np = 0; np < 2; ++np) {
      uint32_t b[4] = {breg, breg, breg, breg};  // B = KVr [d][e]: rows d = k, ldmatrix.trans
      if constexpr (!NOKVR) ldsm_x4_t(b, sKV + (kt * 16 + (mi % 2) * 8 + r8) * Tr::VST + nc * 32 + np * 16 + (mi / 2) * 8);
      mma16816<T>(acc[2 * np], f[kt], b[0], b[1]);
      mma16816<T>(acc[2 * np + 1], f[kt], b[2], b[3]);
    }
  }
}

// o = round(rs acc) into those columns of oslab (SM: by stmatrix, store_c_tiles_sm).
template <class T, class LO, bool SM = false>
__device__ __forceinline__ void output_store(float (&acc)[4][4], const float (&rs)[2], T* oslab, int nc, int lane) {
#pragma unroll
  for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[nt][i] *= rs[i / 2];
  }
  if constexpr (SM) {
    store_c_tiles_sm<4, LO>(oslab, acc, nc * 32, lane);
  } else {
    store_c_tiles_l<4, LO>(oslab, acc, nc * 32, lane);
  }
}

// Phase 2 on one 16-row slab of Q (shared rows of stride KST; slice rows row0..row0+15), by one
// warp: Qf = round(phi(Q)) on the A fragments, the row scale rs (simple: scale; norm:
// (1/Tk) / (Qf . kmean + 1e-6), with kmean [DKP] fp32 in shared memory), o = round(rs Qf KVr)
// with KVr [DKP][VST] in shared memory, 32 output columns at a time (fewer live registers),
// into `oslab` (16 rows of stride VST, this warp's). The caller stores oslab (output_slab: 16-byte
// stores; the TMA forward: one bulk tensor store). LQ, LO: the layouts of the Q tile (slab = tile +
// LQ::off(16 s, 0)) and of oslab.
// output_frags: the same from the slab's Q fragments already in registers (f, A layout; the TMA
// forward reads them, releases the slot, then computes).
// after_map() runs once the map is applied (the TMA forward's deferred slot release ends there).
// ZLATE (the TMA forward's default kernels: bidir_tiled_tma.cu kZLate): the first 32 columns'
// products issue before the row scale, so that the scale's dependent chain (z's mma steps, the quad
// sum, the reciprocal) runs while they do.
// DIAGP (diagnostics, wrong output; TiledParams::diag): 128: the products without KVr's shared
// reads (output_products' NOKVR); 256: no row scale chain (rs = 1/Tk).
template <class T, int DKP, int DVP, class LO = PadTile<DVP + 8>, bool ZLATE = false, bool DIAGP = false, class AfterMap = NoOp>
__device__ __forceinline__ void output_frags(uint32_t (&f)[Traits<DKP, DVP>::KT][4], T* oslab, const T* sKV, const float* skm,
                                             int row0, const TiledParams& p, int lane, AfterMap after_map = {}) {
  float fr[2];
  output_map<T, DKP, DVP>(f, row0, p, lane, fr);
  after_map();
  float rs[2], acc[4][4];
  const bool nokvr = DIAGP && (p.diag & 128) != 0;
  const uint32_t breg = __float_as_uint(p.scale);  // a run-time value: no constant folding
  auto products = [&](int nc) {
    if (nokvr) output_products<T, DKP, DVP, DIAGP>(f, acc, sKV, nc, lane, breg);
    else output_products<T, DKP, DVP>(f, acc, sKV, nc, lane);
  };
  if constexpr (ZLATE) products(0);
  if (DIAGP && (p.diag & 256)) rs[0] = rs[1] = p.inv_tk;
  else output_scale<T, DKP, DVP>(f, sKV, skm, p, lane, fr, rs);
#pragma unroll
  for (int nc = 0; nc < DVP / 32; ++nc) {
    if (!ZLATE || nc > 0) products(nc);
    output_store<T, LO>(acc, rs, oslab, nc, lane);
  }
}

template <class T, int DKP, int DVP, class LQ = PadTile<DKP + 8>, class LO = PadTile<DVP + 8>>
__device__ __forceinline__ void output_slab_smem(const T* slab, T* oslab, const T* sKV, const float* skm, int row0,
                                                 const TiledParams& p, int lane) {
  uint32_t f[Traits<DKP, DVP>::KT][4];  // Q, A fragments (Qf once output_frags maps them)
  load_a_frags_l<Traits<DKP, DVP>::KT, LQ>(f, slab, lane);
  output_frags<T, DKP, DVP, LO>(f, oslab, sKV, skm, row0, p, lane);
}

// output_slab_smem, then 16-byte stores of the slab into og (rows >= Tq are not stored).
template <class T, int DKP, int DVP>
__device__ __forceinline__ void output_slab(const T* slab, T* oslab, const T* sKV, const float* skm, int row0,
                                            const TiledParams& p, T* og, int lane) {
  output_slab_smem<T, DKP, DVP>(slab, oslab, sKV, skm, row0, p, lane);
  __syncwarp();
  store_slab_rows<DVP, Traits<DKP, DVP>::VST>(og, oslab, row0, p.Tq, p.Dv, lane);
  __syncwarp();  // oslab is free for the warp's next slab
}

}  // namespace attnbench::kernels::bidir
