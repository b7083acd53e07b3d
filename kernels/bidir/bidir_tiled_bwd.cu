// bidir tiled backward: two kernels, one per phase, on the state the forward saved (KVr, kmean).
//
// Notation (one (b,h) slice) as in bidir_tiled_fwd.cu; dO [Tq,Dv] the gradient of o.
//   phase 1, query (reduces over Tq):
//     P = dO KVr^T [Tq,Dk]
//     simple: dQf = scale P;                    G = dO;               dKV = scale Qf^T G
//     norm:   z_i = Qf_i . kmean + 1e-6,  w_i = 1 / (Tk z_i),
//             dz_i = -(dO_i . o_i) / z_i = -w_i (Qf_i . P_i) / z_i     (o_i = w_i Qf_i KVr: no o needed)
//             dQf_i = w_i P_i + dz_i kmean;     G = round(w dO);      dKV = Qf^T G,  dkmean = Qf^T dz
//     dq = phi'(q)^T dQf;  dKVr = round(dKV)
//   phase 2, key:
//     dKf = V dKVr^T (+ dkmean / Tk),  dV = Kf dKVr,  dk = phi'(k)^T dKf
// (the roundings of the CPU emulation, reference/bidir.cpp, except that dz uses the unrounded o).
//
// Phase 1 splits Tq over `splits` blocks per head. Per 64-row tile, each warp on its 16-row slab:
// Qf = phi(Q) on fragments (stored to shared memory for the reduction), z, w, P (MMA, B = KVr),
// dz, dQf, dq (phi' on fragments, staged through the raw Q tile for 16-byte stores), G in place of
// dO. Then all warps: [dKV | dkmean] += Qf^T [G | dz_hi dz_lo] (ldmatrix.trans of Qf; dz enters
// the MMA as the 9th n-tile, split into two bf16/fp16 columns hi + lo so that the products keep
// about 16 bits of dz), and the blocks of a head meet in split_reduce().
// Phase 2 streams tiles of K and V; each warp owns a 16-row slab (no block barrier in the loop),
// and is launched as a programmatic dependent of phase 1.
#include "bidir_tiled_maps.cuh"
#include "hopper.cuh"  // named barriers

namespace attnbench::kernels::bidir {
namespace {

// ---- phase 1: dq, dKVr, dkmean ---------------------------------------------------------------------

// One warp's 16-row slab of a query tile (rows row0.., raw q in qslab, dO in doslab; KVr in sKV,
// kmean in skm, fp32): Qf -> qf_dst (16 rows of stride KST, for the
// reduction), G -> g_dst (16 rows of stride VST; g_dst == doslab: in place, and nothing for
// simple, whose reduction reads dO itself), dz -> dz_dst[0..15] (norm), dq over the raw q slab and
// then to global memory.
template <class T, int DKP, int DVP>
__device__ __forceinline__ void query_slab(const TiledParams& p, T* qslab, const T* doslab, T* qf_dst, T* g_dst, float* dz_dst,
                                           const T* sKV, const float* skm, int row0, T* dqg, int lane) {
  using Tr = Traits<DKP, DVP>;
  const int g = lane / 4, mi = lane / 8, r8 = lane % 8;
  const int row = row0 + g;
  const bool row_ok[2] = {row < p.Tq, row + 8 < p.Tq};

  uint32_t f[Tr::KT][4];  // Qf (A fragments), also into shared memory for the reduction
  load_a_frags<Tr::KT, Tr::KST>(f, qslab, lane);
  FocusedRows fr{};  // focused: the rows' norms, from phi to phi'
  if (p.fm != kIdentity) {  // identity: zero fill masks
    const bool full = row0 + 16 <= p.Tq && p.Dk == DKP;  // warp-uniform (quad shuffles)
    phi_frags_any<T, Tr::KT>(f, p.fm, row_ok, p.Dk, lane, full, &fr);
  }
  store_a_frags<Tr::KT, Tr::KST>(qf_dst, f, lane);

  float pa[Tr::NK][4] = {};  // P = dO KVr^T: A = dO, B[e][d] = KVr[d][e] (ldmatrix, no trans)
#pragma unroll
  for (int kt = 0; kt < Tr::VT; ++kt) {
    uint32_t a[4];
    ldsm_x4(a, doslab + (lane % 16) * Tr::VST + kt * 16 + (lane / 16) * 8);
#pragma unroll
    for (int np = 0; np < Tr::NK / 2; ++np) {
      uint32_t b[4];
      ldsm_x4(b, sKV + (np * 16 + (mi / 2) * 8 + r8) * Tr::VST + kt * 16 + (mi % 2) * 8);
      mma16816<T>(pa[2 * np], a, b[0], b[1]);
      mma16816<T>(pa[2 * np + 1], a, b[2], b[3]);
    }
  }

  float km[Tr::KT][2][2];  // kmean at this thread's fragment columns (read here: fewer live registers)
  load_frag_cols<Tr::KT>(km, skm, lane);
  float w[2] = {p.scale, p.scale}, dz[2] = {0.0f, 0.0f};
  if (p.norm) {
    float z[2], s[2] = {0.0f, 0.0f};
    row_dot_vec<T, Tr::KT>(z, f, km);
#pragma unroll
    for (int kt = 0; kt < Tr::KT; ++kt) {  // s_i = Qf_i . P_i
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 v = unpack2<T>(f[kt][i]);
        const float* pp = &pa[2 * kt + i / 2][2 * (i % 2)];
        s[i % 2] += v.x * pp[0] + v.y * pp[1];
      }
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      z[j] += kNormEps;
      w[j] = 1.0f / (p.tk * z[j]);
      dz[j] = -w[j] * quad_sum(s[j]) / z[j];
    }
  }
#pragma unroll
  for (int nt = 0; nt < Tr::NK; ++nt) {  // dQf = w P (+ dz kmean); C tile nt <-> columns km[nt/2][nt%2]
#pragma unroll
    for (int i = 0; i < 4; ++i) pa[nt][i] = w[i / 2] * pa[nt][i] + dz[i / 2] * km[nt / 2][nt % 2][i % 2];
  }
  uint32_t x[Tr::KT][4];  // raw q again, for phi'
  load_a_frags<Tr::KT, Tr::KST>(x, qslab, lane);
  dphi_frags_any<T, Tr::KT>(x, pa, p.fm, fr);
  __syncwarp();
  store_c_tiles<Tr::NK, Tr::KST>(qslab, pa, 0, lane);  // dq over the raw q slab (read above)
  if (p.norm || g_dst != doslab) {  // G = round(w dO) (norm) or dO (simple)
    const float gw[2] = {p.norm ? w[0] : 1.0f, p.norm ? w[1] : 1.0f};
#pragma unroll
    for (int kt = 0; kt < Tr::VT; ++kt) {
      uint32_t a[4];
      ldsm_x4(a, doslab + (lane % 16) * Tr::VST + kt * 16 + (lane / 16) * 8);
      if (p.norm) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float2 v = unpack2<T>(a[i]);
          a[i] = pack2<T>(v.x * gw[i % 2], v.y * gw[i % 2]);
        }
      }
      uint32_t a2[1][4] = {{a[0], a[1], a[2], a[3]}};
      store_a_frags<1, Tr::VST>(g_dst + kt * 16, a2, lane);
    }
    if (p.norm && lane % 4 == 0) dz_dst[g] = dz[0], dz_dst[g + 8] = dz[1];
  }
  __syncwarp();
  store_slab_rows<DKP, Tr::KST>(dqg, qslab, row0, p.Tq, p.Dk, lane);
}

// The reduction warp `warp`'s share of one tile: rows 16 warp.. of [dKV | dz_hi dz_lo] +=
// Qf^T [G | dz_hi dz_lo] over the tile's BM rows. A = Qf^T (ldmatrix.trans), B = G (ldmatrix.trans);
// dz enters as the n-tile NV, column 0 = hi(dz) and column 1 = lo(dz) = dz - hi, so that the
// products keep about 16 bits of dz.
template <class T, int DKP, int DVP>
__device__ __forceinline__ void query_reduce(float (&acc)[Traits<DKP, DVP>::NV + 1][4], const T* sQf, const T* sG, const float* sdz,
                                             bool norm, int warp, int lane) {
  using Tr = Traits<DKP, DVP>;
  const int g = lane / 4, q = lane % 4, mi = lane / 8, r8 = lane % 8;
#pragma unroll
  for (int ks = 0; ks < Tr::BM / 16; ++ks) {
    uint32_t a[4];
    ldsm_x4_t(a, sQf + (ks * 16 + (mi / 2) * 8 + r8) * Tr::KST + warp * 16 + (mi % 2) * 8);
#pragma unroll
    for (int np = 0; np < Tr::NV / 2; ++np) {
      uint32_t b[4];
      ldsm_x4_t(b, sG + (ks * 16 + (mi % 2) * 8 + r8) * Tr::VST + np * 16 + (mi / 2) * 8);
      mma16816<T>(acc[2 * np], a, b[0], b[1]);
      mma16816<T>(acc[2 * np + 1], a, b[2], b[3]);
    }
    if (norm) {
      uint32_t b[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int i0 = ks * 16 + 8 * h + 2 * q;
        const float d0 = sdz[i0], d1 = sdz[i0 + 1];
        const float2 hi = unpack2<T>(pack2<T>(d0, d1));
        b[h] = g == 0 ? pack2<T>(hi.x, hi.y) : g == 1 ? pack2<T>(d0 - hi.x, d1 - hi.y) : 0u;
      }
      mma16816<T>(acc[Tr::NV], a, b[0], b[1]);
    }
  }
}

// The end of the query kernels: the reduction warps' [dKV | dkmean] partial sums, met across the
// head's blocks in split_reduce (warps < DKP / 16 hold acc).
template <class T, int DKP, int DVP, int NTHR>
__device__ __forceinline__ void query_finish(const TiledParams& p, float (&acc)[Traits<DKP, DVP>::NV + 1][4], int bh, int split, int lane) {
  using Tr = Traits<DKP, DVP>;
  if (p.norm && lane % 4 == 0) {  // dkmean partial: hi + lo columns
    acc[Tr::NV][0] += acc[Tr::NV][1];
    acc[Tr::NV][2] += acc[Tr::NV][3];
  }
  T* dkv = static_cast<T*>(p.dkv) + static_cast<int64_t>(bh) * DKP * DVP;
  float* dkmean = p.dkmean + static_cast<int64_t>(bh) * DKP;
  const float alpha = p.norm ? 1.0f : p.scale;
  split_reduce<DKP, Tr::NCOL, Tr::NV + 1, NTHR>(p, acc, bh, split, DVP + (p.norm ? 1 : 0), [&](int d, int e, float s) {
    if (e < DVP) dkv[d * DVP + e] = from_f32<T>(alpha * s);  // dKVr
    else dkmean[d] = s;
  });
}

// A query kernel block's share of its head: tiles [t0, t1) of split `split` (blockIdx.x) of head bh
// (blockIdx.y), and the head's Q, dO and dq slices.
template <class T>
struct QuerySlice {
  int split, bh, t0, t1;
  const T *q, *dout;
  T* dq;
  __device__ explicit QuerySlice(const TiledParams& p) : split(blockIdx.x), bh(blockIdx.y) {
    const int ntiles = (p.Tq + kTiledRows - 1) / kTiledRows;
    t0 = split * p.split_tiles, t1 = min(t0 + p.split_tiles, ntiles);
    q = static_cast<const T*>(p.q) + static_cast<int64_t>(bh) * p.Tq * p.Dk;
    dout = static_cast<const T*>(p.dout) + static_cast<int64_t>(bh) * p.Tq * p.Dv;
    dq = static_cast<T*>(p.dq) + static_cast<int64_t>(bh) * p.Tq * p.Dk;
  }
};

// The head's state (written by the forward before this launch) into shared memory: KVr [DKP][VST]
// and kmean [DKP] fp32 (0 for simple), by all NTHR threads.
template <class T, int DKP, int DVP, int NTHR>
__device__ __forceinline__ void load_state(const TiledParams& p, T* sKV, float* skm, int bh, int tid) {
  using Tr = Traits<DKP, DVP>;
  const T* kv = static_cast<const T*>(p.kv) + static_cast<int64_t>(bh) * DKP * DVP;
  for (int idx = tid; idx < DKP * DVP / 8; idx += NTHR) {
    const int d = idx / (DVP / 8), c = idx % (DVP / 8);
    *reinterpret_cast<uint4*>(sKV + d * Tr::VST + c * 8) = *reinterpret_cast<const uint4*>(kv + d * DVP + c * 8);
  }
  for (int d = tid; d < DKP; d += NTHR) skm[d] = p.norm ? p.kmean[static_cast<int64_t>(bh) * DKP + d] : 0.0f;
}

// The block variant (TiledParams::bwd_q_ws = 0): every warp does a slab of each tile, then (block
// barrier) the reduction, then another barrier; G overwrites dO in place.
template <int DKP, int DVP>
struct QuerySmem {
  using Tr = Traits<DKP, DVP>;
  static constexpr int q_elems = Tr::BM * Tr::KST, do_elems = Tr::BM * Tr::VST;
  static constexpr int q_off = 0;                                              // raw Q [STAGES][BM][KST]
  static constexpr int do_off = q_off + Tr::STAGES * q_elems * 2;              // dO, then G [STAGES][BM][VST]
  static constexpr int qf_off = do_off + Tr::STAGES * do_elems * 2;            // Qf [BM][KST]
  static constexpr int kv_off = qf_off + q_elems * 2;                          // KVr [DKP][VST]
  static constexpr int km_off = kv_off + DKP * Tr::VST * 2;                    // kmean [DKP] fp32
  static constexpr int dz_off = km_off + DKP * 4;                              // dz [BM] fp32
  static constexpr int bytes = dz_off + Tr::BM * 4;
};

// 64/64: at most 170 registers, so that 3 blocks (the shared-memory limit) fit on an SM.
template <class T, int DKP, int DVP>
__global__ void __launch_bounds__(Traits<DKP, DVP>::RED_THREADS, DKP + DVP <= 128 ? 3 : 1) query_kernel(const TiledParams p) {
  using Tr = Traits<DKP, DVP>;
  using Sm = QuerySmem<DKP, DVP>;
  constexpr int NTHR = Tr::RED_THREADS, BM = Tr::BM;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem + Sm::q_off);
  T* sdO = reinterpret_cast<T*>(smem + Sm::do_off);
  T* sQf = reinterpret_cast<T*>(smem + Sm::qf_off);
  T* sKV = reinterpret_cast<T*>(smem + Sm::kv_off);
  float* skm = reinterpret_cast<float*>(smem + Sm::km_off);
  float* sdz = reinterpret_cast<float*>(smem + Sm::dz_off);
  pdl_launch_dependents();

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const QuerySlice<T> sl(p);
  const int split = sl.split, bh = sl.bh, t0 = sl.t0, t1 = sl.t1;
  const T *qg = sl.q, *dog = sl.dout;
  T* dqg = sl.dq;

  auto load = [&](int t) {
    const int stage = (t - t0) % Tr::STAGES;
    load_rows_async<BM, DKP, Tr::KST, NTHR>(sQ + stage * Sm::q_elems, qg, t * BM, p.Tq, p.Dk, tid);
    load_rows_async<BM, DVP, Tr::VST, NTHR>(sdO + stage * Sm::do_elems, dog, t * BM, p.Tq, p.Dv, tid);
  };
#pragma unroll
  for (int s = 0; s < Tr::STAGES - 1; ++s) {
    if (t0 + s < t1) load(t0 + s);
    cp_async_commit();
  }
  load_state<T, DKP, DVP, NTHR>(p, sKV, skm, bh, tid);
  __syncthreads();

  float acc[Tr::NV + 1][4] = {};  // rows 16*warp.. of [dKV | dz_hi dz_lo] (reduction warps)
  for (int t = t0; t < t1; ++t) {
    cp_async_wait<Tr::STAGES - 2>();
    __syncthreads();  // tile t visible; every warp is done with tile t-1 (sQf, sdz, its stage)
    if (t + Tr::STAGES - 1 < t1) load(t + Tr::STAGES - 1);
    cp_async_commit();
    T* cQ = sQ + ((t - t0) % Tr::STAGES) * Sm::q_elems;
    T* cdO = sdO + ((t - t0) % Tr::STAGES) * Sm::do_elems;
    if (warp < Tr::SLAB_WARPS) {
      T* doslab = cdO + warp * 16 * Tr::VST;
      query_slab<T, DKP, DVP>(p, cQ + warp * 16 * Tr::KST, doslab, sQf + warp * 16 * Tr::KST, doslab, sdz + warp * 16, sKV, skm,
                              t * BM + warp * 16, dqg, lane);
    }
    __syncthreads();  // Qf, G, dz of the whole tile in shared memory
    if (warp < Tr::RED_WARPS) query_reduce<T, DKP, DVP>(acc, sQf, cdO, sdz, p.norm, warp, lane);
  }
  query_finish<T, DKP, DVP, NTHR>(p, acc, bh, split, lane);
}

// The warp-specialized variant (TiledParams::bwd_q_ws = 1, the default): warps 0..RED_WARPS-1
// only reduce, warps RED_WARPS.. (SLAB_WARPS of them) each own one 16-row slab of every tile,
// streamed by their own cp.async pipeline (as the key kernel's warps: no block barrier in the
// loop). A slab warp hands Qf, G and dz of tile t to the reduction warps through double buffers
// (b = t % 2) and two named barriers per buffer: FULL(b), arrived at by the slab warps when the
// tile is written and waited on by the reduction warps; EMPTY(b), the reverse, before the slab warps
// write tile t + 2 there. So the slab work of tile t + 1 runs beside the reduction of tile t.
template <int DKP, int DVP>
struct QueryWsSmem {
  using Tr = Traits<DKP, DVP>;
  static constexpr int q_elems = Tr::BM * Tr::KST, do_elems = Tr::BM * Tr::VST;
  static constexpr int q_off = 0;                                    // raw Q, then dq [STAGES][BM][KST]
  static constexpr int do_off = q_off + Tr::STAGES * q_elems * 2;    // dO [STAGES][BM][VST]
  static constexpr int qf_off = do_off + Tr::STAGES * do_elems * 2;  // Qf [2][BM][KST]
  static constexpr int g_off = qf_off + 2 * q_elems * 2;             // G [2][BM][VST]
  static constexpr int kv_off = g_off + 2 * do_elems * 2;            // KVr [DKP][VST]
  static constexpr int km_off = kv_off + DKP * Tr::VST * 2;          // kmean [DKP] fp32
  static constexpr int dz_off = km_off + DKP * 4;                    // dz [2][BM] fp32
  static constexpr int bytes = dz_off + 2 * Tr::BM * 4;
};

template <int DKP, int DVP>
constexpr int kQueryWsThreads = 32 * (Traits<DKP, DVP>::RED_WARPS + Traits<DKP, DVP>::SLAB_WARPS);

// 64/64: 8 warps, 102 KB of shared memory: 2 blocks an SM, 128 registers a thread at entry; in the
// loop the reduction warps hold 80 and the slab warps 176 (setmaxnreg: the same 256 a pair).
constexpr int kWsRegs = 128, kWsRedRegs = 80, kWsSlabRegs = 176;
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
constexpr bool kCanMoveRegs = true;  // setmaxnreg: sm_90a
#else
constexpr bool kCanMoveRegs = false;
#endif
template <class T, int DKP, int DVP>
__global__ void __launch_bounds__(kQueryWsThreads<DKP, DVP>, DKP + DVP <= 128 ? 2 : 1) query_ws_kernel(const TiledParams p) {
  using Tr = Traits<DKP, DVP>;
  using Sm = QueryWsSmem<DKP, DVP>;
  constexpr int NTHR = kQueryWsThreads<DKP, DVP>, BM = Tr::BM, NRED = Tr::RED_WARPS;
  constexpr int kFull = 1, kEmpty = 3;  // named barriers kFull + b and kEmpty + b
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem + Sm::q_off);
  T* sdO = reinterpret_cast<T*>(smem + Sm::do_off);
  T* sQf = reinterpret_cast<T*>(smem + Sm::qf_off);
  T* sG = reinterpret_cast<T*>(smem + Sm::g_off);
  T* sKV = reinterpret_cast<T*>(smem + Sm::kv_off);
  float* skm = reinterpret_cast<float*>(smem + Sm::km_off);
  float* sdz = reinterpret_cast<float*>(smem + Sm::dz_off);
  pdl_launch_dependents();

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const QuerySlice<T> sl(p);
  const int split = sl.split, bh = sl.bh, t0 = sl.t0, t1 = sl.t1;
  const T *qg = sl.q, *dog = sl.dout;
  T* dqg = sl.dq;
  const int ws = warp - NRED;  // slab warps: the slab index

  auto load = [&](int t) {  // this slab warp's 16 rows of tile t
    const int stage = (t - t0) % Tr::STAGES;
    load_rows_async<16, DKP, Tr::KST, 32>(sQ + stage * Sm::q_elems + ws * 16 * Tr::KST, qg, t * BM + ws * 16, p.Tq, p.Dk, lane);
    load_rows_async<16, DVP, Tr::VST, 32>(sdO + stage * Sm::do_elems + ws * 16 * Tr::VST, dog, t * BM + ws * 16, p.Tq, p.Dv, lane);
  };
  if (warp >= NRED) {
#pragma unroll
    for (int s = 0; s < Tr::STAGES - 1; ++s) {
      if (t0 + s < t1) load(t0 + s);
      cp_async_commit();
    }
  }
  load_state<T, DKP, DVP, NTHR>(p, sKV, skm, bh, tid);
  __syncthreads();

  float acc[Tr::NV + 1][4] = {};  // reduction warps: rows 16*warp.. of [dKV | dz_hi dz_lo]
  // 64/64: registers move from the reduction warp group (acc and two fragments) to the slab warp
  // group (P, Qf, phi's rows) for the loop, and back after it (kWsRegs below).
  constexpr bool kMoveRegs = kCanMoveRegs && DKP + DVP <= 128 && NRED == 4 && Tr::SLAB_WARPS == 4;
  if (warp >= NRED) {
    if constexpr (kMoveRegs) hopper::setmaxnreg_inc<kWsSlabRegs>();
    for (int t = t0; t < t1; ++t) {
      const int it = t - t0, b = it & 1;
      cp_async_wait<Tr::STAGES - 2>();
      __syncwarp();  // tile t's slab visible to the warp; every lane is done with tile t - 1's stage
      if (t + Tr::STAGES - 1 < t1) load(t + Tr::STAGES - 1);
      cp_async_commit();
      if (it >= 2) hopper::named_barrier_sync(kEmpty + b, NTHR);  // tile t - 2 reduced: buffer b free
      query_slab<T, DKP, DVP>(p, sQ + (it % Tr::STAGES) * Sm::q_elems + ws * 16 * Tr::KST,
                              sdO + (it % Tr::STAGES) * Sm::do_elems + ws * 16 * Tr::VST, sQf + b * Sm::q_elems + ws * 16 * Tr::KST,
                              sG + b * Sm::do_elems + ws * 16 * Tr::VST, sdz + b * BM + ws * 16, sKV, skm, t * BM + ws * 16, dqg, lane);
      hopper::named_barrier_arrive(kFull + b, NTHR);
    }
    if constexpr (kMoveRegs) hopper::setmaxnreg_dec<kWsRegs>();
  } else {
    if constexpr (kMoveRegs) hopper::setmaxnreg_dec<kWsRedRegs>();
    for (int t = t0; t < t1; ++t) {
      const int it = t - t0, b = it & 1;
      hopper::named_barrier_sync(kFull + b, NTHR);
      query_reduce<T, DKP, DVP>(acc, sQf + b * Sm::q_elems, sG + b * Sm::do_elems, sdz + b * BM, p.norm, warp, lane);
      if (t + 2 < t1) hopper::named_barrier_arrive(kEmpty + b, NTHR);  // (only where a slab warp will wait)
    }
    if constexpr (kMoveRegs) hopper::setmaxnreg_inc<kWsRegs>();
  }
  query_finish<T, DKP, DVP, NTHR>(p, acc, bh, split, lane);
}

// ---- phase 2: dk, dv -------------------------------------------------------------------------------

template <int DKP, int DVP>
struct KeySmem {
  using Tr = Traits<DKP, DVP>;
  static constexpr int k_elems = Tr::BM * Tr::KST, v_elems = Tr::BM * Tr::VST;
  static constexpr int k_off = 0;                                      // raw K, then dk [STAGES][BM][KST]
  static constexpr int v_off = k_off + Tr::STAGES * k_elems * 2;       // V, then dv [STAGES][BM][VST]
  static constexpr int kv_off = v_off + Tr::STAGES * v_elems * 2;      // dKVr [DKP][VST]
  static constexpr int km_off = kv_off + DKP * Tr::VST * 2;            // dkmean / Tk [DKP] fp32
  static constexpr int bytes = km_off + DKP * 4;
};

template <class T, int DKP, int DVP>
__global__ void __launch_bounds__(Traits<DKP, DVP>::ROW_THREADS) key_kernel(const TiledParams p) {
  using Tr = Traits<DKP, DVP>;
  using Sm = KeySmem<DKP, DVP>;
  constexpr int NTHR = Tr::ROW_THREADS, BM = Tr::BM;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sK = reinterpret_cast<T*>(smem + Sm::k_off);
  T* sV = reinterpret_cast<T*>(smem + Sm::v_off);
  T* sKV = reinterpret_cast<T*>(smem + Sm::kv_off);
  float* skm = reinterpret_cast<float*>(smem + Sm::km_off);

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4;
  const int bh = blockIdx.y;
  const int ntiles = (p.Tk + BM - 1) / BM;
  const int t0 = blockIdx.x * p.chunk_tiles, t1 = min(t0 + p.chunk_tiles, ntiles);
  const int64_t kbase = static_cast<int64_t>(bh) * p.Tk;
  const T* kg = static_cast<const T*>(p.k) + kbase * p.Dk;
  const T* vg = static_cast<const T*>(p.v) + kbase * p.Dv;
  T* dkg = static_cast<T*>(p.dk) + kbase * p.Dk;
  T* dvg = static_cast<T*>(p.dv) + kbase * p.Dv;

  auto load = [&](int t) {  // this warp's 16-row slab of tile t
    const int stage = (t - t0) % Tr::STAGES;
    load_rows_async<16, DKP, Tr::KST, 32>(sK + stage * Sm::k_elems + warp * 16 * Tr::KST, kg, t * BM + warp * 16, p.Tk, p.Dk, lane);
    load_rows_async<16, DVP, Tr::VST, 32>(sV + stage * Sm::v_elems + warp * 16 * Tr::VST, vg, t * BM + warp * 16, p.Tk, p.Dv, lane);
  };
#pragma unroll
  for (int s = 0; s < Tr::STAGES - 1; ++s) {
    if (t0 + s < t1) load(t0 + s);
    cp_async_commit();
  }

  pdl_wait();  // dKVr and dkmean come from the query kernel
  {
    const T* dkv = static_cast<const T*>(p.dkv) + static_cast<int64_t>(bh) * DKP * DVP;
    for (int idx = tid; idx < DKP * DVP / 8; idx += NTHR) {
      const int d = idx / (DVP / 8), c = idx % (DVP / 8);
      *reinterpret_cast<uint4*>(sKV + d * Tr::VST + c * 8) = *reinterpret_cast<const uint4*>(dkv + d * DVP + c * 8);
    }
    for (int d = tid; d < DKP; d += NTHR) skm[d] = p.norm ? p.dkmean[static_cast<int64_t>(bh) * DKP + d] / p.tk : 0.0f;
  }
  __syncthreads();
  float km[Tr::KT][2][2];  // dkmean / Tk at this thread's fragment columns
  load_frag_cols<Tr::KT>(km, skm, lane);

  const int mi = lane / 8, r8 = lane % 8;
  for (int t = t0; t < t1; ++t) {
    cp_async_wait<Tr::STAGES - 2>();
    __syncwarp();
    if (t + Tr::STAGES - 1 < t1) load(t + Tr::STAGES - 1);
    cp_async_commit();
    T* kslab = sK + ((t - t0) % Tr::STAGES) * Sm::k_elems + warp * 16 * Tr::KST;
    T* vslab = sV + ((t - t0) % Tr::STAGES) * Sm::v_elems + warp * 16 * Tr::VST;
    const int row = t * BM + warp * 16 + g;
    const bool row_ok[2] = {row < p.Tk, row + 8 < p.Tk};

    uint32_t f[Tr::KT][4];  // Kf, A fragments
    load_a_frags<Tr::KT, Tr::KST>(f, kslab, lane);
    FocusedRows fr{};  // focused: the rows' norms, from phi to phi'
    if (p.fm != kIdentity) {  // identity: zero fill masks
      const bool full = t * BM + warp * 16 + 16 <= p.Tk && p.Dk == DKP;  // warp-uniform (quad shuffles)
      phi_frags_any<T, Tr::KT>(f, p.fm, row_ok, p.Dk, lane, full, &fr);
    }

    {  // dKf = V dKVr^T + dkmean / Tk: A = V, B[e][d] = dKVr[d][e] (ldmatrix, no trans); then dk
      float dkf[Tr::NK][4] = {};
#pragma unroll
      for (int kt = 0; kt < Tr::VT; ++kt) {
        uint32_t a[4];
        ldsm_x4(a, vslab + (lane % 16) * Tr::VST + kt * 16 + (lane / 16) * 8);
#pragma unroll
        for (int np = 0; np < Tr::NK / 2; ++np) {
          uint32_t b[4];
          ldsm_x4(b, sKV + (np * 16 + (mi / 2) * 8 + r8) * Tr::VST + kt * 16 + (mi % 2) * 8);
          mma16816<T>(dkf[2 * np], a, b[0], b[1]);
          mma16816<T>(dkf[2 * np + 1], a, b[2], b[3]);
        }
      }
#pragma unroll
      for (int nt = 0; nt < Tr::NK; ++nt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) dkf[nt][i] += km[nt / 2][nt % 2][i % 2];
      }
      uint32_t x[Tr::KT][4];  // raw k, for phi'
      load_a_frags<Tr::KT, Tr::KST>(x, kslab, lane);
      dphi_frags_any<T, Tr::KT>(x, dkf, p.fm, fr);
      __syncwarp();
      store_c_tiles<Tr::NK, Tr::KST>(kslab, dkf, 0, lane);  // dk over the raw k slab
    }
#pragma unroll
    for (int nc = 0; nc < DVP / 64; ++nc) {  // dV = Kf dKVr: B = dKVr [d][e] (ldmatrix.trans); 64 columns at a time
      float dv[8][4] = {};
#pragma unroll
      for (int kt = 0; kt < Tr::KT; ++kt) {
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          ldsm_x4_t(b, sKV + (kt * 16 + (mi % 2) * 8 + r8) * Tr::VST + nc * 64 + np * 16 + (mi / 2) * 8);
          mma16816<T>(dv[2 * np], f[kt], b[0], b[1]);
          mma16816<T>(dv[2 * np + 1], f[kt], b[2], b[3]);
        }
      }
      __syncwarp();
      store_c_tiles<8, Tr::VST>(vslab, dv, nc * 64, lane);  // dv over the v slab (all of it read above)
    }
    __syncwarp();
    store_slab_rows<DKP, Tr::KST>(dkg, kslab, t * BM + warp * 16, p.Tk, p.Dk, lane);
    store_slab_rows<DVP, Tr::VST>(dvg, vslab, t * BM + warp * 16, p.Tk, p.Dv, lane);
  }
}

// ---- launch ------------------------------------------------------------------------------------

// The warp-specialized kernel where DKP = 64 (at DKP = 128 its 12 warps would get too few registers
// each; the host plans bwd_q_ws only there).
template <class T, int DKP, int DVP>
void launch_query_typed(const TiledParams& p, cudaStream_t s) {
  if constexpr (DKP == kTiledDimSmall) {
    if (p.bwd_q_ws) {
      constexpr int bytes = QueryWsSmem<DKP, DVP>::bytes;
      static const bool allowed = (allow_smem(query_ws_kernel<T, DKP, DVP>, bytes), true);
      (void)allowed;
      query_ws_kernel<T, DKP, DVP><<<dim3(p.splits, p.BH), kQueryWsThreads<DKP, DVP>, bytes, s>>>(p);
      CUDA_CHECK_LAUNCH("bidir tiled query_ws_kernel");
      return;
    }
  }
  constexpr int bytes = QuerySmem<DKP, DVP>::bytes;
  static const bool allowed = (allow_smem(query_kernel<T, DKP, DVP>, bytes), true);
  (void)allowed;
  query_kernel<T, DKP, DVP><<<dim3(p.splits, p.BH), Traits<DKP, DVP>::RED_THREADS, bytes, s>>>(p);
  CUDA_CHECK_LAUNCH("bidir tiled query_kernel");
}

template <class T, int DKP, int DVP>
void launch_key_typed(const TiledParams& p, cudaStream_t s) {
  constexpr int bytes = KeySmem<DKP, DVP>::bytes;
  static const bool allowed = (allow_smem(key_kernel<T, DKP, DVP>, bytes), true);
  (void)allowed;
  const int ntiles = (p.Tk + kTiledRows - 1) / kTiledRows;
  launch_pdl(key_kernel<T, DKP, DVP>, dim3((ntiles + p.chunk_tiles - 1) / p.chunk_tiles, p.BH),
             dim3(Traits<DKP, DVP>::ROW_THREADS), bytes, s, p.pdl, p);
  CUDA_CHECK_LAUNCH("bidir tiled key_kernel");
}

template <class T, int DKP, int DVP>
int blocks_per_sm_typed(TiledKernel k) {
  if (k == TiledKernel::query) {
    return resident_blocks(query_kernel<T, DKP, DVP>, Traits<DKP, DVP>::RED_THREADS, QuerySmem<DKP, DVP>::bytes);
  }
  if constexpr (DKP == kTiledDimSmall) {
    if (k == TiledKernel::query_ws) return resident_blocks(query_ws_kernel<T, DKP, DVP>, kQueryWsThreads<DKP, DVP>, QueryWsSmem<DKP, DVP>::bytes);
  }
  return resident_blocks(key_kernel<T, DKP, DVP>, Traits<DKP, DVP>::ROW_THREADS, KeySmem<DKP, DVP>::bytes);
}

}  // namespace

void launch_tiled_query(const TiledParams& p, Dtype dt, cudaStream_t s) {
  BIDIR_TILED_DISPATCH(dt, p.Dk, p.Dv, launch_query_typed, p, s);
}

void launch_tiled_key(const TiledParams& p, Dtype dt, cudaStream_t s) {
  BIDIR_TILED_DISPATCH(dt, p.Dk, p.Dv, launch_key_typed, p, s);
}

int tiled_bwd_blocks_per_sm(TiledKernel k, Dtype dt, int Dk, int Dv) {
  BIDIR_TILED_DISPATCH(dt, Dk, Dv, blocks_per_sm_typed, k);
}

}  // namespace attnbench::kernels::bidir
