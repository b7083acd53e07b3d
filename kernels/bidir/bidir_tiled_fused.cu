// bidir tiled forward in one launch: both phases of bidir_tiled_fwd.cu (same equations, same
// rounding points: Kf, Qf, KVr rounded to the storage dtype; kmean and the row scale in fp32; o
// rounded) in one kernel, with the state of a head reduced inside a thread block cluster. Tiles
// arrive by cp.async here; bidir_tiled_tma.cu is the same kernel fed by bulk tensor copies (the
// default on sm_90); this one runs where the driver makes no tensor maps, or with
// ATTNBENCH_BIDIR_FWD=fused.
//
// Grid (C, B*H) in clusters of C CTAs (C = 1, 2, 4 or 8, from the launch plan): the C CTAs of a
// cluster own one head. CTA `rank` takes an equal share of the head's 64-row K/V tiles and of its
// Q rows (slots of q_rows rows) and streams them through one cp.async pipeline of SLOTS slots:
// its K/V tiles first, then its Q slots, so the first Q slots are already in flight while the
// state is being reduced. 8 warps per CTA (two CTAs per SM at Dk, Dv <= 64): where Dk <= 64 the
// warps w and w + 4 own the same 16 state rows and split each tile's k-steps (their partials are
// added in the exchange), so twice as many warps hide the latency of the per-tile work.
//   phase 1: [KV | ksum] partial = Kf^T [V | 1] over the CTA's tiles (state_tile), fp32 in
//            registers, then into the CTA's own shared buffer `red`.
//   exchange (between two cluster barriers; cluster_state_exchange in bidir_tiled_fwd.cuh): CTA
//            `rank` owns rows [rank DKP/C, (rank+1) DKP/C) of the state; it adds those rows of the
//            C partials (distributed shared memory, in rank order: the sum does not depend on
//            timing and is the same for every CTA), rounds KVr = round(KV), forms kmean =
//            ksum / Tk, and writes both into every CTA's sKV, skm.
//   phase 2: o for the CTA's Q slots (output_slab: one 16-row slab per warp at a time).
// One launch per forward: no global partial sums, no counters, no second kernel's ramp-up, and
// the state never leaves the chip (the backward's prepare() computes it with the state kernel).
// Streamed inputs can carry the L2 evict_first policy (p.l2_evict_first): they are read once,
// so they leave L2 before lines that other work still needs or that wait to be written back.
#include "bidir_tiled_fwd.cuh"
#include "cuda_check.h"

namespace attnbench::kernels::bidir {
namespace {

template <int DKP, int DVP, int NW_>
struct Fused {
  using Tr = Traits<DKP, DVP>;
  // NW warps (8; 4 as an A/B option where DKP = 64): warp w owns rows 16 (w % RED_WARPS).. of the
  // state and, where NW > RED_WARPS, the k-steps of its group w / RED_WARPS (KG groups of KSN
  // k-steps per tile); in phase 2 each warp takes 16-row slabs of the Q slot.
  static constexpr int NW = NW_, NTHR = 32 * NW;
  static constexpr int KG = NW / Tr::RED_WARPS, KSN = Tr::BM / 16 / KG;
  static constexpr int BM = Tr::BM;
  static constexpr int SLOT_ELEMS = BM * (Tr::KST + Tr::VST);  // one K/V tile, or one Q slot
  static constexpr int SLOT = SLOT_ELEMS * 2;                   // bytes
  static constexpr int QFIT = SLOT_ELEMS / Tr::KST;             // Q rows that fit a slot
  static constexpr int QR = QFIT >= 16 * NW ? QFIT / (16 * NW) * (16 * NW) : QFIT / 16 * 16;  // most Q rows per slot
  static constexpr int NCOL = Tr::NCOL;                         // red: Dv columns, then ksum (column DVP)
  static constexpr int FIXED = DKP * NCOL * 4 + DKP * Tr::VST * 2 + DKP * 4;
  // Slots: two CTAs per SM with 3 or 4 slots each where that fits (227 KB per SM, 1 KB reserved
  // per CTA), else one CTA per SM with up to 6.
  static constexpr int SLOTS2 = (113 * 1024 - FIXED) / SLOT;
  static constexpr int MIN_BLOCKS = SLOTS2 >= 3 ? 2 : 1;
  static constexpr int SLOTS = SLOTS2 >= 3 ? (SLOTS2 < 4 ? SLOTS2 : 4) : ((227 * 1024 - FIXED) / SLOT < 6 ? (227 * 1024 - FIXED) / SLOT : 6);
  static constexpr int red_off = SLOTS * SLOT;               // fp32 [DKP][NCOL]: the partial state, later O staging
  static constexpr int kv_off = red_off + DKP * NCOL * 4;    // KVr [DKP][VST]
  static constexpr int km_off = kv_off + DKP * Tr::VST * 2;  // kmean [DKP] fp32
  static constexpr int bytes = km_off + DKP * 4;
  static_assert(SLOTS >= 3, "a pipeline of at least 3 slots");
  static_assert(QR >= 64, "a Q slot holds at least 64 rows");
  static_assert(NW * 16 * Tr::VST * 2 <= DKP * NCOL * 4, "the O staging fits in the partial-state buffer");
  static_assert(KG * Tr::RED_WARPS == NW && KSN * KG * 16 == BM, "warps split the state rows and the k-steps evenly");
};

// Phase 1 over the CTA's n_kv K/V tiles (items 0..n_kv-1 of the pipeline of n items).
template <class T, int DKP, int DVP, int NW, class Load>
__device__ __forceinline__ void fused_state_loop(float (&acc)[DVP / 8 + 1][4], T* slots, int n_kv, int n, int kt0,
                                                 Load& load, const TiledParams& p, uint32_t ones) {
  using F = Fused<DKP, DVP, NW>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wr = warp % F::Tr::RED_WARPS, ks0 = warp / F::Tr::RED_WARPS * F::KSN;
  for (int i = 0; i < n_kv; ++i) {
    cp_async_wait<F::SLOTS - 2>();
    __syncthreads();  // item i visible to all; every warp is done with item i-1
    if (i + F::SLOTS - 1 < n) load(i + F::SLOTS - 1);
    cp_async_commit();
    T* cK = slots + (i % F::SLOTS) * F::SLOT_ELEMS;
    const T* cV = cK + F::BM * F::Tr::KST;
    const int row0 = (kt0 + i) * F::BM;
    if (p.fm == kFocused) {  // the row norms need whole K rows: mapped in place first
      focused_tile_inplace<T, DKP, DVP>(cK, row0, p, warp, lane);
      __syncthreads();
    }
    state_tile_any<T, DKP, DVP, F::KSN>(acc, cK, cV, row0, p, wr, ks0, lane, ones);
  }
}

template <class T, int DKP, int DVP, int NW>
__global__ void __launch_bounds__(Fused<DKP, DVP, NW>::NTHR, Fused<DKP, DVP, NW>::MIN_BLOCKS) fused_kernel(const TiledParams p) {
  using F = Fused<DKP, DVP, NW>;
  using Tr = typename F::Tr;
  constexpr int NTHR = F::NTHR, BM = F::BM;
  extern __shared__ __align__(16) unsigned char smem[];
  T* slots = reinterpret_cast<T*>(smem);
  float* red = reinterpret_cast<float*>(smem + F::red_off);
  T* sKV = reinterpret_cast<T*>(smem + F::kv_off);
  float* skm = reinterpret_cast<float*>(smem + F::km_off);
  T* sO = reinterpret_cast<T*>(smem + F::red_off);  // O staging, once the exchange is over

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int C = p.cluster, rank = blockIdx.x, bh = blockIdx.y;
  // This CTA's share: K/V tiles [kt0, kt0 + n_kv), Q slots [qs0, qs0 + n_q) of qr rows.
  const int nkt = (p.Tk + BM - 1) / BM, kper = (nkt + C - 1) / C;
  const int kt0 = min(rank * kper, nkt), n_kv = min(kt0 + kper, nkt) - kt0;
  const int qr = p.q_rows, nqs = (p.Tq + qr - 1) / qr, qper = (nqs + C - 1) / C;
  const int qs0 = min(rank * qper, nqs), n_q = min(qs0 + qper, nqs) - qs0;
  const int n = n_kv + n_q;
  const T* kg = static_cast<const T*>(p.k) + static_cast<int64_t>(bh) * p.Tk * p.Dk;
  const T* vg = static_cast<const T*>(p.v) + static_cast<int64_t>(bh) * p.Tk * p.Dv;
  const T* qg = static_cast<const T*>(p.q) + static_cast<int64_t>(bh) * p.Tq * p.Dk;
  T* og = static_cast<T*>(p.o) + static_cast<int64_t>(bh) * p.Tq * p.Dv;

  const uint64_t pol = l2_policy(p.l2_evict_first);
  auto load = [&](int i) {  // pipeline item i into slot i % SLOTS
    T* s = slots + (i % F::SLOTS) * F::SLOT_ELEMS;
    if (i < n_kv) {
      const int r0 = (kt0 + i) * BM;
      load_rows_async_pol<DKP, Tr::KST, NTHR>(s, kg, r0, BM, p.Tk, p.Dk, tid, pol);
      load_rows_async_pol<DVP, Tr::VST, NTHR>(s + BM * Tr::KST, vg, r0, BM, p.Tk, p.Dv, tid, pol);
    } else {
      load_rows_async_pol<DKP, Tr::KST, NTHR>(s, qg, (qs0 + i - n_kv) * qr, qr, p.Tq, p.Dk, tid, pol);
    }
  };
#pragma unroll
  for (int s = 0; s < F::SLOTS - 1; ++s) {
    if (s < n) load(s);
    cp_async_commit();
  }

  // ---- phase 1 ----
  float acc[Tr::NV + 1][4] = {};  // rows 16*warp.. of [KV | ksum]; tile NV: the key sums
  const uint32_t ones = lane / 4 == 0 ? pack2<T>(1.0f, 1.0f) : 0u;  // B fragment: column 0 all ones
  fused_state_loop<T, DKP, DVP, NW>(acc, slots, n_kv, n, kt0, load, p, ones);

  // ---- exchange ----
  cluster_state_exchange<T, DKP, DVP, NW>(acc, red, sKV, skm, p, C, rank);

  // ---- phase 2 ----
  T* oslab = sO + warp * 16 * Tr::VST;
  for (int i = n_kv; i < n; ++i) {
    cp_async_wait<F::SLOTS - 2>();
    __syncthreads();
    if (i + F::SLOTS - 1 < n) load(i + F::SLOTS - 1);
    cp_async_commit();
    const T* sq = slots + (i % F::SLOTS) * F::SLOT_ELEMS;
    const int r0 = (qs0 + i - n_kv) * qr;
    const int nslab = min(qr, p.Tq - r0 + 15) / 16;  // slabs with a row < Tq
    for (int sl = warp; sl < nslab; sl += NW) output_slab<T, DKP, DVP>(sq + sl * 16 * Tr::KST, oslab, sKV, skm, r0 + 16 * sl, p, og, lane);
  }
  cp_async_wait<0>();
}

template <class T, int DKP, int DVP, int NW>
void allow_fused() {
  static const bool allowed = (allow_smem(fused_kernel<T, DKP, DVP, NW>, Fused<DKP, DVP, NW>::bytes), true);
  (void)allowed;
}

template <class T, int DKP, int DVP, int NW>
cudaLaunchConfig_t fused_config(const TiledParams& p, cudaLaunchAttribute (&attr)[1], cudaStream_t s) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(p.cluster, p.BH);
  cfg.blockDim = dim3(Fused<DKP, DVP, NW>::NTHR);
  cfg.dynamicSmemBytes = Fused<DKP, DVP, NW>::bytes;
  cfg.stream = s;
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = static_cast<unsigned>(p.cluster);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = p.cluster > 1 ? 1 : 0;
  return cfg;
}

template <class T, int DKP, int DVP, int NW>
void launch_fused_nw(const TiledParams& p, cudaStream_t s) {
  allow_fused<T, DKP, DVP, NW>();
  cudaLaunchAttribute attr[1];
  const cudaLaunchConfig_t cfg = fused_config<T, DKP, DVP, NW>(p, attr, s);
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, fused_kernel<T, DKP, DVP, NW>, p));
  CUDA_CHECK_LAUNCH("bidir tiled fused_kernel");
}

template <class T, int DKP, int DVP, int NW>
FusedInfo fused_info_nw(int cluster) {
  using F = Fused<DKP, DVP, NW>;
  FusedInfo info;
  info.blocks_per_sm = resident_blocks(fused_kernel<T, DKP, DVP, NW>, F::NTHR, F::bytes);
  info.max_q_rows = F::QR;
  info.cluster_fits = cluster == 1;
  if (cluster > 1) {
    TiledParams p{};
    p.cluster = cluster, p.BH = 1;
    cudaLaunchAttribute attr[1];
    cudaLaunchConfig_t cfg = fused_config<T, DKP, DVP, NW>(p, attr, nullptr);
    int n = 0;
    if (cudaOccupancyMaxActiveClusters(&n, fused_kernel<T, DKP, DVP, NW>, &cfg) == cudaSuccess) {
      info.cluster_fits = n > 0;
    } else {
      (void)cudaGetLastError();  // no clusters on this device
    }
  }
  return info;
}

// 8 warps, or 4 where asked for and DKP = 64 (one warp per 16 state rows needs 8 for DKP = 128).
template <class T, int DKP, int DVP>
void launch_fused_typed(const TiledParams& p, cudaStream_t s) {
  if constexpr (DKP == 64) {
    if (p.fused_warps == 4) return launch_fused_nw<T, DKP, DVP, 4>(p, s);
  }
  launch_fused_nw<T, DKP, DVP, 8>(p, s);
}

template <class T, int DKP, int DVP>
FusedInfo fused_info_typed(int cluster, int warps) {
  if constexpr (DKP == 64) {
    if (warps == 4) return fused_info_nw<T, DKP, DVP, 4>(cluster);
  }
  return fused_info_nw<T, DKP, DVP, 8>(cluster);
}

}  // namespace

void launch_tiled_fused(const TiledParams& p, Dtype dt, cudaStream_t s) {
  BIDIR_TILED_DISPATCH(dt, p.Dk, p.Dv, launch_fused_typed, p, s);
}

FusedInfo tiled_fused_info(Dtype dt, int Dk, int Dv, int cluster, int warps) {
  BIDIR_TILED_DISPATCH(dt, Dk, Dv, fused_info_typed, cluster, warps);
}

}  // namespace attnbench::kernels::bidir
