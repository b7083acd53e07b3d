// bidir tiled forward in one launch, fed by the tensor memory accelerator (TMA, sm_90): the
// one-launch forward of bidir_tiled_fused.cu (same equations, same rounding points, same split of
// a head over a cluster of C CTAs, same state exchange: cluster_state_exchange; on the wgmma path
// with clusters of 2 in the 2x8 configuration, its push form: bidir_tiled_push.cuh) with another
// way of moving the tiles.
//
// Loads. Every streamed tile arrives by bulk tensor copies (cp.async.bulk.tensor.3d, issued by one
// thread) that complete on the slot's mbarrier `full` (transaction bytes). The tensor maps view
// q, k, v as [BH][T][D] (3-D, innermost D), in boxes of 64 columns x rows, one per 64 columns of
// the padded width DP, with the 128-byte swizzle: the shared tile is the Sw128Tile layout
// (bidir_tiled_common.cuh; conflict-free ldmatrix without padding), and the rows move as the dense
// 128-byte lines they are in memory. Every column >= D and row >= T arrives as zero. (Padded
// (DP + 8)-column boxes, the cp.async kernels' layout, measured about 0.1x of floor slower in
// session 4 and were removed in session 7.)
// No thread computes an address or waits at a block barrier for a tile: each warp waits on the
// slot's `full` barrier alone.
// Refill. A slot is refilled as soon as the last of its readers is done with it: each warp, after
// its last read of item i, adds 1 to the slot's counter (atom.acq_rel: its reads happen before);
// the warp that brings it to the item's reader count (NW, or WPG for a Q item read by one warp
// group) sets it back to 0 and issues item i + SLOTS into the slot. The reset precedes that
// issue's mbarrier arrive (a release), and every reader of item i + SLOTS adds only after its
// wait on that phase (an acquire), so each use counts from 0. So the ring runs as far ahead as the
// slowest warp allows, with no producer warp and no __syncthreads per tile. Every warp walks the
// items in order, keeping the slot s = i % SLOTS and the phase parity (i / SLOTS) & 1 as running
// values (no division in the loops).
// Stores (p.o_tma): each warp's 16-row O slab is staged in shared memory (in the boxes' layout) and
// written by bulk tensor stores (rows >= Tq and columns >= Dv lie outside the map and are not
// written), or, without o_tma, by 16-byte stores as in bidir_tiled_fused.cu.
// Diagnostics (p.diag, ATTNBENCH_BIDIR_DIAG=1): the same walk with the math skipped, to time the
// data movement alone (o is then wrong); 4: none in phase 1, 8: none in phase 2, 16: focused's
// in-place map of the K tiles skipped (the rest of the math kept); 32 (with any of these): a
// timeline printed by every CTA (stamp() below, scripts/bidir_timeline.py).
// Order (p.order): which tiles a CTA takes and where its walk starts (see the share below); the
// state's fp32 sums run in the walk's order, fixed for a given shape and launch plan. (H200: the
// rotated and rank-strided walks timed within 0.5% of the plain one; the default is plain.)
// Configurations (p.tma_cfg): 0 = 8 warps, two CTAs per SM (the smem of 4 slots each at D = 64);
// 1 = 16 warps, one CTA per SM (10 slots; the default but for focused, which runs 0:
// bidir_tiled.cu); 2 = 8 warps, one CTA per SM (11 slots). With one CTA per SM and 16 warps,
// warps 0-7 take the even Q items and 8-15 the odd ones (one 16-row slab each of a 128-row item);
// every warp still counts every item (and waits for it first, so that its count belongs to this
// use of the slot).
#include <cudaTypedefs.h>  // CUtensorMap, PFN_cuTensorMapEncodeTiled

#include "bidir_tiled_fwd.cuh"
#include "bidir_tiled_push.cuh"
#include "bidir_tiled_wg.cuh"
#include "hopper.cuh"  // named_barrier_sync
#include "cuda_check.h"

namespace attnbench::kernels::bidir {
namespace {

static_assert(sizeof(CUtensorMap) == sizeof(TiledMaps::q), "TiledMaps holds CUtensorMaps");

// ---- PTX: mbarriers, bulk tensor copies ---------------------------------------------------------
// (sm_90; the kernel below is compiled empty for older targets and launched only on sm_90+)
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
#define BIDIR_TMA_PTX 1
#endif

#ifdef BIDIR_TMA_PTX
__device__ __forceinline__ void mbar_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
// One arrival that also expects `bytes` more transaction bytes in this phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}
// Wait (acquire) until the phase of parity `parity` has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, unsigned parity) {
  asm volatile(
      "{\n"
      ".reg .pred P1;\n"
      "LAB_WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
      "@P1 bra DONE;\n"
      "bra LAB_WAIT;\n"
      "DONE:\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ unsigned atomic_add_acq_rel(unsigned* p, unsigned v) {
  unsigned old;
  asm volatile("atom.acq_rel.cta.shared::cta.add.u32 %0, [%1], %2;\n" : "=r"(old) : "r"(smem_addr(p)), "r"(v) : "memory");
  return old;
}
// Box at (c0, c1, c2) of the map into shared memory, completing on `bar`, with an L2 policy.
__device__ __forceinline__ void tma_load_3d(void* dst, const void* map, int c0, int c1, int c2, uint64_t* bar, uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.L2::cache_hint"
      " [%0], [%1, {%2, %3, %4}], [%5], %6;\n" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(bar)), "l"(policy)
      : "memory");
}
// Shared memory to the box at (c0, c1, c2) of the map (elements outside the tensor are skipped).
__device__ __forceinline__ void tma_store_3d(const void* map, const void* src, int c0, int c1, int c2) {
  asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.bulk_group [%0, {%2, %3, %4}], [%1];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(smem_addr(src)), "r"(c0), "r"(c1), "r"(c2)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait_read_all() { asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
// Generic-proxy shared-memory writes before this are visible to the async proxy (TMA) after it.
__device__ __forceinline__ void fence_proxy_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void prefetch_map(const void* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}
#endif  // BIDIR_TMA_PTX

// ---- geometry -------------------------------------------------------------------------------------

// NW warps, MB_REQ CTAs per SM where at least 3 slots fit that way (else one). The tiles are
// swizzled dense boxes (Sw128Tile: rows of DKP / DVP elements, the shared memory 1024-byte aligned
// at run time, hence 1 KB of slack).
template <int DKP, int DVP, int NW_, int MB_REQ>
struct TmaCfg {
  using Tr = Traits<DKP, DVP>;
  static constexpr int NW = NW_, NTHR = 32 * NW, BM = Tr::BM;
  static constexpr int KG = NW / Tr::RED_WARPS, KSN = BM / 16 / KG;  // state rows x k-step groups
  static constexpr int KROW = DKP, VROW = DVP;  // elements a tile row takes
  static constexpr int SLOT_ELEMS = BM * (KROW + VROW), SLOT = SLOT_ELEMS * 2;
  static constexpr int QFIT = SLOT_ELEMS / KROW / 16 * 16;
  static constexpr int QR = QFIT < 256 ? QFIT : 256;                     // Q rows per item (a box has <= 256)
  static constexpr int QG = NW >= 16 ? NW / 8 : 1, WPG = NW / QG;        // Q items in turn over QG groups of WPG warps
  static constexpr int RED = DKP * Tr::NCOL * 4, OST = NW * 16 * VROW * 2;
  static constexpr int STAGE = RED > OST ? RED : OST;                    // partial state, later O staging
  static constexpr int MAXS = 12, ALIGN = 1024;
  static constexpr int FIXED = STAGE + DKP * Tr::VST * 2 + DKP * 4 + MAXS * 8 + MAXS * 4 + ALIGN;
  using LK = Sw128Tile<BM>;  // K tile
  using LV = Sw128Tile<BM>;  // V tile
  using LQ = Sw128Tile<QR>;  // Q item
  using LO = Sw128Tile<16>;  // a warp's O slab
  static constexpr int slots_for(int budget) { return (budget - FIXED) / SLOT < MAXS ? (budget - FIXED) / SLOT : MAXS; }
  static constexpr int MB = MB_REQ == 2 && slots_for(113 * 1024) >= 3 ? 2 : 1;
  // A multiple of QG: then every Q use of a slot belongs to one warp group (items j and j + SLOTS
  // share j % QG), so no warp skips a use of a slot it waits on later. A warp that skipped one
  // could reach its own item's wait while the slot's previous phase is still pending, and
  // mbarrier.try_wait.parity with the parity of the phase two ahead reads the completed phase
  // before the pending one as done: the warp would read the slot early and release it into the
  // other group's count (with 11 slots, session 7's first TMA forward hung at T = 16384 that way).
  static constexpr int SLOTS = slots_for(MB == 2 ? 113 * 1024 : 227 * 1024) / QG * QG;
  static constexpr int red_off = SLOTS * SLOT;                // 128-byte aligned: SLOT = 128 (DKP + DVP + 16)
  static constexpr int kv_off = red_off + STAGE;
  static constexpr int km_off = kv_off + DKP * Tr::VST * 2;
  static constexpr int bar_off = km_off + DKP * 4;
  static constexpr int cnt_off = bar_off + MAXS * 8;
  static constexpr int bytes = cnt_off + MAXS * 4 + ALIGN;
  static_assert(SLOTS >= 2 && SLOTS % QG == 0, "a ring of at least 2 slots, a multiple of the Q item groups");
  static_assert(QR >= 64, "a Q item holds at least 64 rows");
  static_assert(KG >= 1 && KG * Tr::RED_WARPS == NW && KSN * KG * 16 == BM, "warps split the state rows and k-steps evenly");
  static_assert(WPG * QG == NW, "Q item groups");
  static_assert(SLOT % 128 == 0 && (16 * Tr::VST * 2) % 128 == 0 && STAGE % 16 == 0, "TMA boxes 128-byte aligned");
  static_assert(SLOT % 1024 == 0 && BM * KROW * 2 % 1024 == 0 && 16 * VROW * 2 % 1024 == 0 && QR % 8 == 0,
                "swizzled boxes 1024-byte aligned");
};

template <int CFG>
struct CfgShape;
template <>
struct CfgShape<0> { static constexpr int NW = 8, MB = 2; };
template <>
struct CfgShape<1> { static constexpr int NW = 16, MB = 1; };
template <>
struct CfgShape<2> { static constexpr int NW = 8, MB = 1; };

// FM >= 0: the kernel of that feature map alone (p.fm == FM; the default 16-warp configuration,
// so that no map's registers weigh on another's: bidir_tiled.cu, session 7); FM = -1: every map,
// chosen at run time by p.fm.
// ZLATE: phase 2's row scale after the first products (output_frags; kZLate below). DIAGP: with
// phase 2's diagnostics of TiledParams::diag 128 and 256 (output_frags; a separate instantiation,
// launched only for them).
// WG: phase 2 on wgmma (bidir_tiled_wg.cuh; TiledParams::p2_wg, a separate instantiation): each
// warpgroup takes 64 rows of a Q item at once, B = KVr^T (the exchange writes it transposed).
// WG1 (with WG; TiledParams::p1_wg): phase 1 on wgmma too. focused (the default there): its K tile
// is mapped in place by rows (p.focused_rows, not pipe), the map's writes are fenced for the async
// proxy before the group barrier, and A and B come from the slot (state_tile_wg). elu1 (packed):
// A from registers after the map (state_tile_wg_rs; identity measured slower with it in session
// 20, c7, and keeps mma.sync). Either way a warp releases the slot once its group's products are
// complete. B's ones tile ([8][64], row 0 ones) lies in sKV
// during phase 1 (the exchange writes sKV only after every warp of the head's CTAs left phase 1).
template <class T, int DKP, int DVP, int NW, int MB, int FM, bool ZLATE = false, bool DIAGP = false, bool WG = false, bool WG1 = false>
__global__ void __launch_bounds__(32 * NW, TmaCfg<DKP, DVP, NW, MB>::MB)
    tma_kernel(const TiledParams p_, const __grid_constant__ TiledMaps maps) {
#ifndef BIDIR_TMA_PTX
  __trap();  // launched only on sm_90+ (bidir_tiled.cu)
#else
  TiledParams p = p_;
  if constexpr (FM >= 0) p.fm = FM;  // a constant: every switch on the map below folds
  using F = TmaCfg<DKP, DVP, NW, MB>;
  using Tr = typename F::Tr;
  using LK = typename F::LK;
  using LV = typename F::LV;
  using LQ = typename F::LQ;
  using LO = typename F::LO;
  constexpr int BM = F::BM, SLOTS = F::SLOTS, QR = F::QR;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + (1024u - smem_addr(smem_raw) % 1024u) % 1024u;
  T* slots = reinterpret_cast<T*>(smem);
  float* red = reinterpret_cast<float*>(smem + F::red_off);
  T* sKV = reinterpret_cast<T*>(smem + F::kv_off);
  float* skm = reinterpret_cast<float*>(smem + F::km_off);
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + F::bar_off);
  unsigned* cnt = reinterpret_cast<unsigned*>(smem + F::cnt_off);
  T* sO = reinterpret_cast<T*>(smem + F::red_off);  // O staging, once the exchange is over

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  // grid (C G, BH / G) in clusters of C G CTAs, G = p.heads_per_cluster: CTA x of cluster y works
  // on head y G + x / C as the head's CTA `rank`
  const int C = p.cluster, rank = blockIdx.x % C, rank0 = blockIdx.x - rank;
  const int bh = blockIdx.y * p.heads_per_cluster + blockIdx.x / C;
  // This CTA's share: n_kv of the head's nkt K/V tiles and n_q of its nqs Q items of qr rows;
  // its i-th tile is kv_tile(i), its j-th Q item q_item(j). p.order bit 1: blocks (as
  // bidir_tiled_fused.cu: tiles [kt0, kt0 + n_kv)) or rank-strided (tiles rank, rank + C, ...: the
  // C CTAs of a head read neighbouring tiles at the same time); bit 0: each CTA starts its walk at
  // a rotation bh * n / BH of its share, so the heads' concurrent accesses are not all at the same
  // offset of their slices (a stride of T*D*2 bytes, a power of two at the published shapes).
  const int nkt = (p.Tk + BM - 1) / BM, qr = p.q_rows, nqs = (p.Tq + qr - 1) / qr;
  const bool ilv = (p.order & 2) != 0;
  const int kper = (nkt + C - 1) / C, qper = (nqs + C - 1) / C;
  const int kt0 = min(rank * kper, nkt), qs0 = min(rank * qper, nqs);
  const int n_kv = ilv ? (rank < nkt ? (nkt - rank + C - 1) / C : 0) : min(kt0 + kper, nkt) - kt0;
  const int n_q = ilv ? (rank < nqs ? (nqs - rank + C - 1) / C : 0) : min(qs0 + qper, nqs) - qs0;
  const int n = n_kv + n_q;
  const int rot1 = (p.order & 1) ? static_cast<int>(static_cast<int64_t>(bh) * n_kv / p.BH) : 0;
  const int rot2 = (p.order & 1) ? static_cast<int>(static_cast<int64_t>(bh) * n_q / p.BH) : 0;
  auto kv_tile = [&](int i) {
    const int r = i + rot1 < n_kv ? i + rot1 : i + rot1 - n_kv;
    return ilv ? rank + C * r : kt0 + r;
  };
  auto q_item = [&](int j) {
    const int r = j + rot2 < n_q ? j + rot2 : j + rot2 - n_q;
    return ilv ? rank + C * r : qs0 + r;
  };
  T* og = static_cast<T*>(p.o) + static_cast<int64_t>(bh) * p.Tq * p.Dv;
  const uint64_t pol = l2_policy(p.l2_evict_first);

  // diagnostics (TiledParams::diag): no math in phase 1 (bits 1, 4), in phase 2 (bits 1, 8);
  // bit 32: a timeline. Thread 0 of every CTA writes its start, the end of phase 1, of the exchange
  // and its end (%globaltimer, ns), then its SM, head and rank, into the (here unused) partial-sum
  // scratch, kTimelineWords words a CTA; the host prints them after the launch (bidir_tiled.cu,
  // scripts/bidir_timeline.py). No call (a printf) in the kernel: ptxas would serialize the WG
  // kernels' wgmma across it.
  const bool nomath = (p.diag & 5) != 0, nomath2 = (p.diag & 9) != 0, stamps = (p.diag & 32) != 0;
  auto ts = [&] { return reinterpret_cast<uint64_t*>(p.partial) + (blockIdx.y * gridDim.x + blockIdx.x) * kTimelineWords; };
  auto stamp = [&](int k) {
    if (stamps && tid == 0) {
      uint64_t t;
      asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t)::"memory");
      ts()[k] = t;
    }
  };
  stamp(0);
  // One thread: item i into its slot s = i % SLOTS, a box per 64 columns (K, V: [BM][64] blocks;
  // Q: [qr][64] blocks QR rows apart, as LQ places them).
  auto issue = [&](int i, int s) {
    T* dst = slots + s * F::SLOT_ELEMS;
    if (i < n_kv) {
      const int row0 = kv_tile(i) * BM;
      mbar_arrive_expect_tx(&full[s], F::SLOT);
#pragma unroll
      for (int h = 0; h < DKP / 64; ++h) tma_load_3d(dst + h * BM * 64, &maps.k, 64 * h, row0, bh, &full[s], pol);
#pragma unroll
      for (int h = 0; h < DVP / 64; ++h) tma_load_3d(dst + BM * F::KROW + h * BM * 64, &maps.v, 64 * h, row0, bh, &full[s], pol);
    } else {
      mbar_arrive_expect_tx(&full[s], static_cast<unsigned>(qr * F::KROW * 2));
#pragma unroll
      for (int h = 0; h < DKP / 64; ++h) tma_load_3d(dst + h * QR * 64, &maps.q, 64 * h, q_item(i - n_kv) * qr, bh, &full[s], pol);
    }
  };
  // This warp is done reading item i (in slot s); the last of its readers refills the slot with
  // i + SLOTS. Readers: NW for a K/V item; for a Q item NW, or with p.group_q (only the item's warp
  // group waits for it and releases it) WPG.
  // release_add / release_end: the same in two steps, so that the warp's next instructions (the
  // tile's products) issue while the atomic's result is on its way (p.release_defer); the refill
  // waits for release_end.
  auto release_add = [&](int s) {
    __syncwarp();
    unsigned old = 0;
    if (lane == 0) old = atomic_add_acq_rel(&cnt[s], 1u);
    return old;
  };
  auto release_end = [&](int i, int s, unsigned old) {
    const unsigned need = p.group_q && i >= n_kv ? F::WPG : NW;
    if (lane == 0 && old == need - 1) {
      *reinterpret_cast<volatile unsigned*>(&cnt[s]) = 0u;  // the next use counts from 0
      if (i + SLOTS < n) issue(i + SLOTS, s);
    }
  };
  auto release = [&](int i, int s) { release_end(i, s, release_add(s)); };

  // The push exchange (TiledParams::kvt kKvtPush, clusters of 2: bidir_tiled_push.cuh) on the
  // last two mbarriers, past the ring's. Compiled into the two-CTAs-an-SM WG kernel only (focused's
  // 2x8): in the 16-warp ones its wait in the phase-2 loop changed their registers and cost elu1
  // ~0.3% in ms (session 22, c1).
  constexpr bool kPush = WG && F::MB == 2 && F::SLOTS <= F::MAXS - 2;
  const bool push = kPush && p.kvt == kKvtPush && C == 2;
  uint64_t* xbar = full + F::MAXS - 2;
  if (tid == 0) {
    prefetch_map(&maps.q), prefetch_map(&maps.k), prefetch_map(&maps.v), prefetch_map(&maps.o);
    for (int s = 0; s < SLOTS; ++s) mbar_init(&full[s], 1), cnt[s] = 0;
    if (push) {
      mbar_init(&xbar[0], 1), mbar_init(&xbar[1], 1);
      mbar_arrive_expect_tx(&xbar[0], kPushPartialBytes), mbar_arrive_expect_tx(&xbar[1], kPushKvtBytes);
    }
    mbar_init_fence();
  }
  const bool p1wg = WG1 && (FM != kFocused || (p.focused_rows && !p.focused_pipe && !(p.diag & 16)));
  if constexpr (WG1) {  // the ones tile of state_tile_wg: 8 rows of 64 16-bit elements, row 0 ones
    static_assert(F::kv_off % 1024 == 0 && F::KG * 4 == NW && Tr::RED_WARPS == 4, "warpgroups own the tile's row groups");
    if (p1wg && tid < 256) sKV[tid * 2] = sKV[tid * 2 + 1] = tid < 32 ? static_cast<T>(1.0f) : static_cast<T>(0.0f);
    fence_proxy_async_smem();
  }
  __syncthreads();
  if (push) hopper::cluster_arrive();  // the mbarriers above, published to the partner (waited for in the exchange)
  if (tid == 0) {
    for (int i = 0; i < SLOTS && i < n; ++i) issue(i, i);
  }

  // ---- phase 1: [KV | ksum] partial = Kf^T [V | 1] over the CTA's K/V tiles ----
  float acc[Tr::NV + 1][4] = {};
  const uint32_t ones = lane / 4 == 0 ? pack2<T>(1.0f, 1.0f) : 0u;  // B fragment: column 0 all ones
  const int wr = warp % Tr::RED_WARPS, ks0 = warp / Tr::RED_WARPS * F::KSN;
  int s = 0;
  unsigned par = 0;  // item i's slot i % SLOTS and phase parity (i / SLOTS) & 1
  auto next_slot = [&] {
    if (++s == SLOTS) s = 0, par ^= 1u;
  };
  // focused (p.focused_rows): the RED_WARPS warps that read rows [16 ks0, 16 (ks0 + KSN)) of a K
  // tile map them in place first, RPW rows each, then wait for each other only (named barrier
  // 1 + group); else 4 warps and a block barrier. With p.focused_pipe the group maps tile i + 1
  // (waiting for it first) before its products of tile i, and the barrier follows those products.
  constexpr int RPW = 16 * F::KSN / Tr::RED_WARPS;
  constexpr bool kRowsFit = RPW >= 1 && RPW % (256 / DKP) == 0;  // whole rows per lane pass (focused_rows_inplace)
  const bool fmap = p.fm == kFocused && !(p.diag & 16);
  const bool rows = fmap && kRowsFit && p.focused_rows, pipe = rows && p.focused_pipe;
  auto map_rows = [&](int it, int st) {  // this warp's rows of K tile it (in slot st), in place
    if constexpr (kRowsFit) {
      T* cK = slots + st * F::SLOT_ELEMS;
      const int r0 = 16 * ks0 + wr * RPW, row0 = kv_tile(it) * BM;
      // packed bf16 (p.focused_pk) where the warp has 8 whole rows (focused_rows_pk). With 16
      // warps (4 rows each) the fp32 pass stays: the even warps of a group mapping 8 rows each
      // ran 28% slower than the 2x8 default (session 12, call4), and a packed pass over a warp's
      // 4 rows (one ldmatrix.x4, with both phases on wgmma) 11% slower (session 21, c1: phase 1
      // 50 us against 38; code in history at 672bc48, focused_rows_pk4): not kept.
      constexpr bool kPk = std::is_same_v<T, __nv_bfloat16> && RPW == 8;
      const int pk = kPk && p.Dk == DKP ? p.focused_pk : 0;
      if constexpr (kPk) {
        if (pk == 2) focused_rows_pk<DKP, LK, true>(cK, r0, row0, p, lane);
        if (pk == 1) focused_rows_pk<DKP, LK, false>(cK, r0, row0, p, lane);
      }
      if (pk == 0 && p.Dk == DKP) focused_rows_inplace<T, DKP, RPW, LK, false>(cK, r0, row0, p, lane);
      if (pk == 0 && p.Dk != DKP) focused_rows_inplace<T, DKP, RPW, LK>(cK, r0, row0, p, lane);
      if (!p.fence_late) fence_proxy_async_smem();  // these writes precede the TMA refill of the slot
    }
  };
  // p.fence_late: the proxy fence of the in-place map just before this warp's release of the slot
  // (the refill is ordered after the release; the group's generic reads only need the barrier).
  auto fence_before_release = [&] {
    if (rows && p.fence_late) fence_proxy_async_smem();
  };
  auto group_sync = [&] { hopper::named_barrier_sync(1 + warp / Tr::RED_WARPS, 32 * Tr::RED_WARPS); };
  if (pipe && n_kv > 0) {
    mbar_wait(&full[0], 0u);
    map_rows(0, 0);
    group_sync();
  }
  for (int i = 0; i < n_kv; ++i, next_slot()) {
    mbar_wait(&full[s], par);
    T* cK = slots + s * F::SLOT_ELEMS;
    const T* cV = cK + BM * F::KROW;
    const int row0 = kv_tile(i) * BM;
    if (pipe) {
      if (i + 1 < n_kv) {
        const int s1 = s + 1 == SLOTS ? 0 : s + 1;
        const unsigned par1 = s + 1 == SLOTS ? par ^ 1u : par;
        mbar_wait(&full[s1], par1);
        map_rows(i + 1, s1);
      }
    } else if (rows) {
      map_rows(i, s);
      if (p1wg && p.fence_late) fence_proxy_async_smem();  // the mapped rows, before the group's wgmma reads them
      group_sync();
    } else if (fmap) {
      focused_tile_inplace<T, DKP, DVP, LK>(cK, row0, p, warp, lane);
      fence_proxy_async_smem();
      __syncthreads();
    }
    if constexpr (WG1) {
      if (p1wg) {
        if constexpr (FM == kFocused) {  // mapped in place above (and fenced for the async proxy)
          if (!nomath) state_tile_wg<T, F::KSN, BM>(acc, cK, cV, sKV, ks0);
        } else {
          if (!nomath) state_tile_wg_rs<T, FM, F::KSN, BM, LK>(acc, cK, cV, sKV, row0, p, wr, ks0, lane);
        }
        release(i, s);
        continue;
      }
    }
    // early release (p.early): the slot goes back once this warp's fragments are in registers.
    if (!nomath) {
      const bool defer = p.early && p.release_defer >= 1;
      unsigned old = 0;
      state_tile_any<T, DKP, DVP, F::KSN, LK, LV>(acc, cK, cV, row0, p, wr, ks0, lane, ones, [&] {
        if (p.early) fence_before_release();
        if (defer) old = release_add(s);
        else if (p.early) release(i, s);
      });
      if (defer) release_end(i, s, old);
    }
    if (nomath || !p.early) fence_before_release(), release(i, s);
    if (pipe && i + 1 < n_kv) group_sync();  // tile i + 1 is mapped
  }

  // ---- exchange ----
  stamp(1);
  if constexpr (WG) {  // with the exchange's own stamps (not in the other kernels: their registers stay as measured)
    if (push) cluster_state_exchange_push<T, NW>(acc, red, sKV, skm, p, rank, rank0, xbar, stamp);
    else cluster_state_exchange<T, DKP, DVP, NW, WG>(acc, red, sKV, skm, p, C, rank, rank0, stamp);
  } else {
    cluster_state_exchange<T, DKP, DVP, NW, WG>(acc, red, sKV, skm, p, C, rank, rank0);
  }
  stamp(2);

  // ---- phase 2: o for the CTA's Q items; warp group grp takes items j with j % QG == grp ----
  T* oslab = sO + warp * 16 * F::VROW;
  const int grp = warp / F::WPG, wg = warp % F::WPG;
  bool kvt_wait = push;  // the partner's KVr^T chunks (push exchange): waited for before the first wgmma
  auto kvt_ready = [&] {
    if constexpr (kPush) {
      if (kvt_wait) hopper::mbar_wait<true>(&xbar[1], 0), hopper::fence_proxy_async(), kvt_wait = false;
    }
  };
  for (int i = n_kv; i < n; ++i, next_slot()) {
    const int j = i - n_kv;
    if (p.group_q && j % F::QG != grp) continue;  // another group's item: not waited for, not counted
    mbar_wait(&full[s], par);
    bool released = false;
    if constexpr (WG) {
      // The warpgroup wg / 4 of the group takes slabs 4 (wg / 4) .. + 3 of the item (one a warp:
      // QR = 16 WPG), all four warps together (wgmma), so long as its first slab has a row < Tq;
      // a warp whose slab has none computes it too (from zero-filled or stale rows) but stores
      // nothing. oslab is waited for just before it is written, after the products.
      static_assert(F::QR == 16 * F::WPG && F::kv_off % 1024 == 0, "one slab a warp; KVr^T 1024-byte aligned");
      if (j % F::QG == grp) {
        const T* sq = slots + s * F::SLOT_ELEMS;
        const int r0 = q_item(j) * qr, sl = wg;
        const int nslab = min(qr, p.Tq - r0 + 15) / 16;
        if (4 * (wg / 4) < nslab) {
          uint32_t f[Tr::KT][4];
          load_a_frags_l<Tr::KT, LQ>(f, sq + LQ::off(16 * sl, 0), lane);
          const bool defer = p.early && p.release_defer >= 2;
          unsigned old = 0;
          if (defer) old = release_add(s);
          else if (p.early) release(i, s);
          released = p.early;
          output_frags_wg<T, LO>(f, oslab, sKV, r0 + 16 * sl, p, lane, [&] {
            if (defer) release_end(i, s, old);
            kvt_ready();
          }, [&] {
            if (lane == 0) bulk_wait_read_all();  // the previous bulk store has read oslab
            __syncwarp();
          });
          if (sl < nslab) {
            fence_proxy_async_smem();
            __syncwarp();
            if (lane == 0) {
              tma_store_3d(&maps.o, oslab, 0, r0 + 16 * sl, bh);
              bulk_commit();
            }
          }
        }
      }
    } else if (j % F::QG == grp) {
      const T* sq = slots + s * F::SLOT_ELEMS;
      const int r0 = q_item(j) * qr;
      const int nslab = min(qr, p.Tq - r0 + 15) / 16;  // slabs with a row < Tq
      for (int sl = wg; sl < nslab; sl += F::WPG) {
        if (p.o_tma) {  // the previous bulk store has read oslab
          if (lane == 0) bulk_wait_read_all();
          __syncwarp();
        }
        if (!nomath2) {
          uint32_t f[Tr::KT][4];  // the slab's Q fragments
          load_a_frags_l<Tr::KT, LQ>(f, sq + LQ::off(16 * sl, 0), lane);
          const bool last = p.early && sl + F::WPG >= nslab;  // this warp's last read of item i
          const bool defer = last && p.release_defer >= 2;
          unsigned old = 0;
          if (defer) old = release_add(s);
          else if (last) release(i, s);
          released = last;
          output_frags<T, DKP, DVP, LO, ZLATE, DIAGP>(f, oslab, sKV, skm, r0 + 16 * sl, p, lane, [&] {
            if (defer) release_end(i, s, old);
          });
        } else {
          for (int e = lane; e < 16 * F::VROW / 8; e += 32) reinterpret_cast<uint4*>(oslab)[e] = make_uint4(0, 0, 0, 0);
        }
        if (p.o_tma) {
          fence_proxy_async_smem();
          __syncwarp();
          if (lane == 0) {
#pragma unroll
            for (int h = 0; h < DVP / 64; ++h) tma_store_3d(&maps.o, oslab + h * 16 * 64, 64 * h, r0 + 16 * sl, bh);
            bulk_commit();
          }
        } else {
          __syncwarp();
          store_slab_rows_l<DVP, LO>(og, oslab, r0 + 16 * sl, p.Tq, p.Dv, lane);
          __syncwarp();
        }
      }
    }
    if (!released) release(i, s);
  }
  kvt_ready();  // every byte sent to this CTA has arrived before it exits
  if (p.o_tma && lane == 0) bulk_wait_all();
  stamp(3);
  if (stamps && tid == 0) {
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;\n" : "=r"(sm));
    ts()[4] = sm, ts()[5] = static_cast<uint64_t>(bh), ts()[6] = static_cast<uint64_t>(rank);
  }
#endif
}

template <class T, int DKP, int DVP, int NW, int MB>
cudaLaunchConfig_t tma_config(const TiledParams& p, cudaLaunchAttribute (&attr)[1], cudaStream_t s) {
  cudaLaunchConfig_t cfg{};
  const int hw = p.cluster * std::max(p.heads_per_cluster, 1);  // CTAs of a launch cluster
  cfg.gridDim = dim3(hw, p.BH / std::max(p.heads_per_cluster, 1));
  cfg.blockDim = dim3(32 * NW);
  cfg.dynamicSmemBytes = TmaCfg<DKP, DVP, NW, MB>::bytes;
  cfg.stream = s;
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = static_cast<unsigned>(hw);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = hw > 1 ? 1 : 0;
  return cfg;
}

// ZLATE in each map's default configuration at the published shape (bidir_tiled.cu: 1x16 for
// identity, relu, elu1; 2x8 for focused), where session 14 measured it (call5, same binary: fwd x
// floor -0.3 .. -0.9% but for elu1 and focused at T = 4096, unchanged); the other kernels keep the
// scale first (their registers, e.g. the 254 of the all-maps kernels at D = 128, stay as they are).
template <int DKP, int DVP, int CFG, int FM>
constexpr bool kZLate = DKP == 64 && DVP == 64 && (CFG == 1 ? FM == kIdentity || FM == kRelu || FM == kElu1 : CFG == 0 && FM == kFocused);

template <class T, int DKP, int DVP, int CFG, int FM, bool DIAGP = false, bool ZLATE = kZLate<DKP, DVP, CFG, FM>, bool WG = false,
          bool WG1 = false>
void launch_tma_cfg(const TiledParams& p, const TiledMaps& m, cudaStream_t s) {
  constexpr int NW = CfgShape<CFG>::NW, MB = CfgShape<CFG>::MB;
  static const bool allowed =
      (allow_smem(tma_kernel<T, DKP, DVP, NW, MB, FM, ZLATE, DIAGP, WG, WG1>, TmaCfg<DKP, DVP, NW, MB>::bytes), true);
  (void)allowed;
  cudaLaunchAttribute attr[1];
  const cudaLaunchConfig_t cfg = tma_config<T, DKP, DVP, NW, MB>(p, attr, s);
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, tma_kernel<T, DKP, DVP, NW, MB, FM, ZLATE, DIAGP, WG, WG1>, p, m));
  CUDA_CHECK_LAUNCH("bidir tiled tma_kernel");
}

// The kernel the plan asks for (FM: see tma_kernel). Where Dk and Dv are <= 64 (the published
// shape) the 16-warp configuration 1 (the default there) and the 2x8 configuration 0 have one
// kernel per map; configuration 1 runs only there (bidir_tiled.cu), so it exists only there.
template <int DKP, int DVP>
constexpr bool kPerMap = DKP == 64 && DVP == 64;
template <int CFG, int DKP, int DVP>
constexpr int kCfgExists = CFG != 1 || kPerMap<DKP, DVP>;
template <class T, int DKP, int DVP, int CFG>
constexpr int info_fm() { return CFG != 2 && kPerMap<DKP, DVP> ? kIdentity : -1; }

template <class T, int DKP, int DVP, int CFG>
FusedInfo tma_info_cfg(int cluster) {
  constexpr int NW = CfgShape<CFG>::NW, MB = CfgShape<CFG>::MB, FM = info_fm<T, DKP, DVP, CFG>();
  using F = TmaCfg<DKP, DVP, NW, MB>;
  FusedInfo info;
  info.blocks_per_sm = resident_blocks(tma_kernel<T, DKP, DVP, NW, MB, FM, kZLate<DKP, DVP, CFG, FM>>, F::NTHR, F::bytes);
  info.max_q_rows = F::QR;
  info.cluster_fits = cluster == 1;
  if (cluster > 1) {
    TiledParams p{};
    p.cluster = cluster, p.BH = 1;
    cudaLaunchAttribute attr[1];
    cudaLaunchConfig_t cfg = tma_config<T, DKP, DVP, NW, MB>(p, attr, nullptr);
    int n = 0;
    if (cudaOccupancyMaxActiveClusters(&n, tma_kernel<T, DKP, DVP, NW, MB, FM, kZLate<DKP, DVP, CFG, FM>>, &cfg) == cudaSuccess) {
      info.cluster_fits = n > 0;
      info.max_clusters = n;
    } else {
      (void)cudaGetLastError();  // no clusters on this device
    }
  }
  return info;
}

// Configuration CFG (0 or 1) with one kernel per map (kPerMap) or the all-maps kernel.
template <class T, int DKP, int DVP, int CFG>
void launch_tma_maps(const TiledParams& p, const TiledMaps& m, cudaStream_t s) {
  if constexpr (kPerMap<DKP, DVP> && std::is_same_v<T, __nv_bfloat16>) {  // phase 2 on wgmma (bf16, each map's default configuration)
    if (p.p2_wg) {
      if constexpr (CFG == 1) {
        if (p.fm == kElu1Pk && p.p1_wg) return launch_tma_cfg<T, DKP, DVP, CFG, kElu1Pk, false, false, true, true>(p, m, s);
        if (p.fm == kElu1) return launch_tma_cfg<T, DKP, DVP, CFG, kElu1, false, false, true>(p, m, s);
        if (p.fm == kElu1Pk) return launch_tma_cfg<T, DKP, DVP, CFG, kElu1Pk, false, false, true>(p, m, s);
        if (p.fm == kIdentity) return launch_tma_cfg<T, DKP, DVP, CFG, kIdentity, false, false, true>(p, m, s);
        if (p.fm == kRelu) return launch_tma_cfg<T, DKP, DVP, CFG, kRelu, false, false, true>(p, m, s);
      } else {
        if (p.fm == kFocused && p.p1_wg) return launch_tma_cfg<T, DKP, DVP, CFG, kFocused, false, false, true, true>(p, m, s);
        if (p.fm == kFocused) return launch_tma_cfg<T, DKP, DVP, CFG, kFocused, false, false, true>(p, m, s);
      }
    }
  }
  if constexpr (kPerMap<DKP, DVP> && std::is_same_v<T, __nv_bfloat16>) {  // phase 2's diagnostics (bf16, default kernels)
    if (p.diag & 384) {
      if constexpr (CFG == 1) {
        if (p.fm == kElu1) return launch_tma_cfg<T, DKP, DVP, CFG, kElu1, true>(p, m, s);
        if (p.fm == kIdentity) return launch_tma_cfg<T, DKP, DVP, CFG, kIdentity, true>(p, m, s);
      } else {
        if (p.fm == kFocused) return launch_tma_cfg<T, DKP, DVP, CFG, kFocused, true>(p, m, s);
      }
    }
  }
  if constexpr (kPerMap<DKP, DVP>) {
    switch (p.fm) {
      case kElu1: return launch_tma_cfg<T, DKP, DVP, CFG, kElu1>(p, m, s);
      case kElu1Pk: return launch_tma_cfg<T, DKP, DVP, CFG, kElu1Pk>(p, m, s);
      case kRelu: return launch_tma_cfg<T, DKP, DVP, CFG, kRelu>(p, m, s);
      case kFocused: return launch_tma_cfg<T, DKP, DVP, CFG, kFocused>(p, m, s);
      default: return launch_tma_cfg<T, DKP, DVP, CFG, kIdentity>(p, m, s);
    }
  } else if constexpr (CFG != 1) {
    launch_tma_cfg<T, DKP, DVP, CFG, -1>(p, m, s);
  } else {
    throw std::runtime_error("bidir tiled: the 16-warp TMA forward exists for Dk, Dv <= 64 only");
  }
}

template <class T, int DKP, int DVP>
void launch_tma_typed(const TiledParams& p, const TiledMaps& m, cudaStream_t s) {
  if (p.tma_cfg == 1) return launch_tma_maps<T, DKP, DVP, 1>(p, m, s);
  if (p.tma_cfg == 2) return launch_tma_cfg<T, DKP, DVP, 2, -1>(p, m, s);
  launch_tma_maps<T, DKP, DVP, 0>(p, m, s);
}

template <class T, int DKP, int DVP>
FusedInfo tma_info_typed(int cluster, int cfg) {
  if (cfg == 1) {
    if constexpr (kCfgExists<1, DKP, DVP>) return tma_info_cfg<T, DKP, DVP, 1>(cluster);
    return FusedInfo{};  // not made: no CTA resident
  }
  return cfg == 2 ? tma_info_cfg<T, DKP, DVP, 2>(cluster) : tma_info_cfg<T, DKP, DVP, 0>(cluster);
}

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// [BH][T][D] in the storage dtype; boxes of 64 columns (128 bytes) x box_rows with the 128-byte
// swizzle.
bool encode_map(void* out, Dtype dt, const void* base, int D, int T, int BH, int box_rows) {
  const PFN_cuTensorMapEncodeTiled_v12000 fn = encode_fn();
  if (!fn) return false;
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(D), static_cast<cuuint64_t>(T), static_cast<cuuint64_t>(BH)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(D) * 2, static_cast<cuuint64_t>(T) * D * 2};  // bytes
  const cuuint32_t box[3] = {64, static_cast<cuuint32_t>(box_rows), 1};
  const cuuint32_t estr[3] = {1, 1, 1};
  const CUtensorMapDataType ty = dt == Dtype::bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  return fn(static_cast<CUtensorMap*>(out), ty, 3, const_cast<void*>(base), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace

void launch_tiled_tma(const TiledParams& p, const TiledMaps& m, Dtype dt, cudaStream_t s) {
  BIDIR_TILED_DISPATCH(dt, p.Dk, p.Dv, launch_tma_typed, p, m, s);
}

FusedInfo tiled_tma_info(Dtype dt, int Dk, int Dv, int cluster, int cfg) {
  BIDIR_TILED_DISPATCH(dt, Dk, Dv, tma_info_typed, cluster, cfg);
}

bool encode_tiled_maps(TiledMaps& m, const TiledParams& p, Dtype dt) {
  return encode_map(m.q, dt, p.q, p.Dk, p.Tq, p.BH, p.q_rows) && encode_map(m.k, dt, p.k, p.Dk, p.Tk, p.BH, kTiledRows) &&
         encode_map(m.v, dt, p.v, p.Dv, p.Tk, p.BH, kTiledRows) && encode_map(m.o, dt, p.o, p.Dv, p.Tq, p.BH, 16);
}

}  // namespace attnbench::kernels::bidir
