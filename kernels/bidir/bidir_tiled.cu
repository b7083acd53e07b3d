// bidir, tiled CUDA: the Prepared object, the launch plan and the registration. The kernels and
// their equations are in bidir_tiled_fwd.cu and bidir_tiled_bwd.cu.
//
// forward  = one launch: a cluster of CTAs per head builds the state, reduces it in distributed
//            shared memory, then streams Q -> o; its tiles arrive by bulk tensor copies
//            (bidir_tiled_tma.cu, the default on sm_90) or by cp.async (bidir_tiled_fused.cu,
//            where no tensor maps can be made); or, where that kernel would leave much of the GPU
//            idle (few heads, long rows), two launches:
//            state kernel (KVr = round(Kf^T V), kmean; Tk split over blocks, then reduced)
//          + output kernel (o from Qf, KVr, kmean)
// backward = query kernel (dq; dKVr = round(Qf^T G), dkmean = Qf^T dz; Tq split, then reduced;
//            warp-specialized at Dk <= 64: reduction warps and slab warps, bidir_tiled_bwd.cu)
//          + key kernel (dk, dv)
// The backward reads the state its forward saved (KVr, kmean: Dk x Dv + Dk values per head, as
// FlashAttention saves its log-normalizers); prepare() runs that forward, untimed. Each pass is
// two launches, the second a programmatic dependent of the first; every pass reads each input
// once and writes each output once (plus the small per-head state and partial sums).
//
// Knobs for A/B runs on a device (environment, read when a problem is prepared):
//   ATTNBENCH_BIDIR_FWD=fused|tma|two  force the forward's path: one launch fed by cp.async
//                                    (fused) or by bulk tensor copies (tma), or two launches
//                                    (default: the plan below)
//   ATTNBENCH_BIDIR_TMA=2x8|1x16|1x8 the TMA forward's CTAs per SM x warps per CTA (default 1x16,
//                                    2x8 for focused at Dk, Dv <= 64; 1x8 where Dk or Dv > 64:
//                                    16 warps spill there)
//   ATTNBENCH_BIDIR_OSTORE=tma|st    the TMA forward's O stores: bulk tensor stores or 16-byte stores
//   ATTNBENCH_BIDIR_ORDER=blk|rot|ilv|rotilv  the TMA forward's walk over tiles (TiledParams::order)
//   ATTNBENCH_BIDIR_EXP=pk|f32       elu1 in the one-launch forwards: every operation on packed pairs
//                                    of the storage dtype (elu1_pk_packed: ex2.approx.bf16x2 /
//                                    f16x2 of x log2 e rounded to the dtype), or ex2.approx.f32 per
//                                    element with x + 1 and the pick on packed pairs (f32). Until
//                                    session 6, h2 was ex2.approx.f16x2 on fp32-converted pairs.
//   ATTNBENCH_BIDIR_FOCUSED=pipe|rows|block  focused in the TMA forward's phase 1: each K tile
//                                    mapped in place by the warp group that reads its rows, a named
//                                    barrier per group (rows; pipe: tile i + 1 mapped before the
//                                    products of tile i, TiledParams::focused_pipe), or by 4 warps
//                                    and a block barrier (block)
//   ATTNBENCH_BIDIR_FOCUSED2=fold|exact  focused on the query side of the forward (bf16): round(u)
//                                    with r = ||y|| / ||u|| on the fp32 products, one pass (fold),
//                                    or round(r u) after a pass for the norms (exact; fp16 always)
//   ATTNBENCH_BIDIR_FOCUSEDPK=0|1|2  focused in the forward (bf16): the K map of phase 1 (where a warp
//                                    maps 8 whole rows and Dk is the padded width) and the Q-side
//                                    fold on whole slabs by packed bf16x2 operations with the row
//                                    norms on tensor cores (TiledParams::focused_pk: 1 rounds u
//                                    and r u twice, 2 once), or the fp32 maps (0)
//   ATTNBENCH_BIDIR_HWCLUSTER=1|2|4|8 the TMA forward's launch clusters: this many CTAs of several
//                                    heads (TiledParams::heads_per_cluster), where every cluster is
//                                    resident at once and BH divides; 1 (or the head's CTAs): a
//                                    cluster per head
//   ATTNBENCH_BIDIR_CLUSTER=1|2|4|8  force the one-launch forward's CTAs per head
//   ATTNBENCH_BIDIR_L2=first|normal  L2 policy of the streamed inputs (default first)
//   ATTNBENCH_BIDIR_ZMMA=1|0         norm's z in the one-launch forwards on tensor cores (default) or
//                                    by fp32 dots
//   ATTNBENCH_BIDIR_EARLY=1|0        the TMA forward's warps release a ring slot once their
//                                    fragments of it are in registers (before the math) or after it
//   ATTNBENCH_BIDIR_RELEASE=0|1|2    the TMA forward's early slot release: the warp waits for its
//                                    counter's atomic at once (0), or issues the tile's products
//                                    first (1: phase 1; 2, the default: also phase 2, after the
//                                    slab's map) (TiledParams::release_defer)
//   ATTNBENCH_BIDIR_FENCE=late|now   focused's in-place K map: its proxy fence just before the slot's
//                                    release (late, the default) or right after the map's writes
//                                    (now) (TiledParams::fence_late)
//   ATTNBENCH_BIDIR_GROUPQ=1|0       the TMA forward's Q items waited for and released only by the warp
//                                    group that computes them (else by all warps)
//   ATTNBENCH_BIDIR_DIAG=1|4|8|16|128|256 diagnostics, wrong output (TiledParams::diag): the TMA forward
//                                    with no math (its data movement alone), or none in phase 1 (4)
//                                    or in phase 2 (8) only, or without focused's in-place K map (16);
//                                    32 (added to any of these, or alone: right output) prints a
//                                    timeline per CTA after every launch (scripts/bidir_timeline.py;
//                                    32 alone keeps the wgmma kernels: ATTNBENCH_BIDIR_P2); 128: phase 2's
//                                    products without KVr's shared reads, 256: without the row scale
//                                    (bf16, the default kernels of identity, elu1, focused only)
//   ATTNBENCH_BIDIR_P2=wg|mma        the TMA forward's phase 2 on wgmma (a warpgroup's 64 Q rows a
//                                    time, KVr^T and kmean's terms as B: bidir_tiled_wg.cuh; the
//                                    default where it exists: bf16, Dk, Dv <= 64, each map's default
//                                    configuration, no diagnostics) or on mma.sync (a warp's slab)
//   ATTNBENCH_BIDIR_P1=wg|mma        with phase 2 on wgmma, phase 1 on wgmma too (bidir_tiled_wg.cuh:
//                                    focused in rows mode and elu1 (packed); the default for both)
//   ATTNBENCH_BIDIR_OSTSM=1|0        with phase 2 on wgmma, the O slab staged in shared memory by
//                                    stmatrix (4 a warp and slab) or by 16 4-byte stores
//   ATTNBENCH_BIDIR_KVT=direct|stsm|push  with phase 2 on wgmma, how the state exchange moves the
//                                    state (TiledParams::kvt): after a cluster barrier, each CTA's
//                                    owned rows from every CTA's partial by remote loads, into every
//                                    CTA's KVr^T by 2-byte elements (direct) or into its own by
//                                    stmatrix.trans, then to the others by 16-byte chunks (stsm);
//                                    push (clusters of 2 CTAs in the 2x8 configuration, else stsm):
//                                    the partials and the chunks stored into the partner by st.async,
//                                    no cluster barrier (bidir_tiled_push.cuh)
//   ATTNBENCH_BIDIR_BWDQ=ws|block    the backward's query kernel: warp-specialized (reduction and slab
//                                    warps, TiledParams::bwd_q_ws) or every warp doing both between
//                                    block barriers
//   ATTNBENCH_BIDIR_FUSED_WARPS=4|8  warps per CTA of the one-launch forward (default 8; 4 only
//                                    where Dk <= 64)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bidir_kernels.h"
#include "bidir_tiled.h"
#include "bidir_common.cuh"
#include "core/gpu.h"
#include "cuda_check.h"
#include "device_tensor.h"

namespace attnbench::kernels {
namespace {

using namespace bidir;

int sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return v;
  }();
  return n;
}

int ceil_div(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

// Every kernel: as many blocks per head as fill the GPU once (all resident, equal work, each
// streaming its tiles through a cp.async pipeline), so no block waits for a second wave, the
// per-block prologue (the state in shared memory) is paid once, and the reduction kernels' partial
// sums stay few. Returns the tiles per block.
int tiles_per_block(int64_t rows, int BH, int blocks_per_sm) {
  const int ntiles = ceil_div(rows, kTiledRows);
  const int per_head = static_cast<int>(std::max<int64_t>(1, int64_t{sm_count()} * std::max(blocks_per_sm, 1) / BH));
  return ceil_div(ntiles, std::min(per_head, ntiles));
}

void plan_splits(TiledParams& p, int64_t rows, int blocks_per_sm) {
  p.split_tiles = tiles_per_block(rows, p.BH, blocks_per_sm);
  p.splits = ceil_div(ceil_div(rows, kTiledRows), p.split_tiles);
}

void plan_chunks(TiledParams& p, int64_t rows, int blocks_per_sm) {
  p.chunk_tiles = tiles_per_block(rows, p.BH, blocks_per_sm);
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// The one-launch forward's CTAs per head: the power of two C <= 8 (and <= the K/V tiles, so
// every CTA has state to add) whose grid of BH*C CTAs best fills whole waves of the resident
// capacity; a larger C must fill clearly better (2%), since each CTA adds an exchange. Returns the
// fill (the fraction of the resident slots busy, averaged over the waves) through `fill`.
// info(c): the kernel's FusedInfo for clusters of c CTAs.
template <class Info>
int plan_cluster(int BH, int capacity, int ktiles, Info&& info, double* fill) {
  int best = 1;
  double best_fill = -1;
  for (int c = 1; c <= 8; c *= 2) {
    if (c > 1 && (c > ktiles || !info(c).cluster_fits)) break;
    const int64_t ctas = int64_t{BH} * c, waves = (ctas + capacity - 1) / capacity;
    const double f = static_cast<double>(ctas) / static_cast<double>(waves * capacity);
    if (f > best_fill + 0.02) best = c, best_fill = f;
  }
  *fill = best_fill;
  return best;
}

// The one-launch forward's kernel: cp.async-fed (bidir_tiled_fused.cu) or TMA-fed
// (bidir_tiled_tma.cu), and the TMA kernel's configuration (TiledParams::tma_cfg). H200, B=8 H=16
// D=64 bf16 norm, fwd ms at T = 4096/8192/16384 (results/h200-20261121-s3/bidir2_call2_ab.csv):
//   identity: cp.async 0.0860/0.1640/0.3137, TMA 2x8 0.0848/0.1608/0.3104, TMA 1x16 0.0859/0.1640/0.3133
//   elu1:     cp.async 0.1113/0.2111/0.4098, TMA 2x8 0.0955/0.1782/0.3370, + exp h2 0.0890/0.1696/0.3232,
//             TMA 1x16 + exp h2 0.0883/0.1657/0.3173
enum class OneLaunch { fused, tma };
constexpr OneLaunch kDefaultOneLaunch = OneLaunch::tma;
// Default: 16 warps, one CTA per SM (1x8 where Dk or Dv > 64), elu1 exp by ex2.approx.f16x2: the
// configuration of the checked sweep in bidir2_call2_table.md (every published point measured);
// 2x8 was ~1% faster on identity at T >= 4096, ~1-2% slower on elu1, and not swept.
// Boxes (session 4, results/h200-20261121-s4/bidir_sw2_ab.csv, fwd x floor at T = 4096/8192/16384):
// dense 64-column boxes with the 128-byte swizzle, identity 1.257/1.194/1.149, elu1 1.405/1.325/1.291;
// padded (D + 8)-column boxes 1.359/1.291/1.235 and 1.407/1.338/1.290; with no math
// (ATTNBENCH_BIDIR_DIAG=1) the swizzled kernel moves its bytes in 1.178/1.130/1.096.
// z on tensor cores (bidir_zmma_ab.csv, same run): identity 1.254/1.185/1.141 (fp32 dots
// 1.258/1.198/1.150), elu1 1.369/1.315/1.287 (1.409/1.332/1.299).
// Tried and dropped (bidir_qpf_ab.csv): prefetching the Q items past the ring into L2 when the
// first Q item enters it (cp.async.bulk.prefetch.tensor), to keep DRAM busy over the state
// exchange: identity at T = 4096 1.261 -> 1.322 / 1.369 / 1.401 with 8 / 16 / 32 items (worse with
// every N, at every T); commit b312665 and its revert.
// Session 5 (fwd x floor at T = 4096/8192/16384, norm, bf16; results/h200-20261121-s5/):
//   bidir_call2_ab.csv: session 4's default (late release, elu1 by ex2.approx.f16x2) identity
//   1.253/1.195/1.142, elu1 1.372/1.288/1.259; early release (ATTNBENCH_BIDIR_EARLY=1) elu1
//   1.365/1.275/1.241; elu1 by ex2.approx.f32 on packed pairs (EXP=f32) 1.332/1.257/1.198; both
//   1.324/1.243/1.197 (identity unchanged, 1.256/1.194/1.143); no math 1.181/1.131/1.099.
//   bidir_call3_ab.csv (another machine, everything ~2% slower): the new default (both) vs the old,
//   elu1 1.392/1.304/1.259 vs 1.431/1.348/1.304; no math in phase 2 only (DIAG=8) identity
//   1.205/1.151/1.106 (= no math at all, 1.209/1.146/1.107), in phase 1 only (DIAG=4) no change:
//   the math that costs is phase 2's. Dropped: two slabs per warp with o stored from registers by
//   4-byte stores (1.87/1.82/1.72: partial-sector writes).
//   bidir_call4_ab.csv: Q items waited for and released by their warp group only (GROUPQ=1) vs by
//   all 16 warps: identity 1.251/1.188/1.135 vs 1.268/1.212/1.149, elu1 1.328/1.266/1.227 vs
//   1.362/1.265/1.227; the checked sweep of that call (bidir_call4_table.md) ran with GROUPQ=1.
// Session 6 (results/h200-20261122-s6/bidir/): ncu of the elu1 forward at T = 4096 (call3): issue
//   slots 50% busy, 0.97 eligible warps of 3.97 per scheduler, stalls mostly fixed-latency waits;
//   phase 2 executes ~577 instructions per 16-row slab and warp (elu1 ~176 of them, the Qf KVr
//   products and O staging ~140, the item/slot bookkeeping ~200), phase 1 ~143 per tile and warp.
//   call4_ab.csv, fwd x floor at T = 4096/8192/16384: elu1 on packed pairs (EXP=pk, 7 instructions
//   a pair against 10-11) 1.33/1.28/1.25 vs 1.34/1.27/1.25: no gain, not the default; relu on
//   packed pairs (now always, exact) 1.26/1.19/1.15 (session-6 call3 before it: 1.28/1.22/1.18,
//   another machine); focused mapped by row groups with named barriers (FOCUSED=rows, the default)
//   1.97/1.88/1.84 vs the 4-warp block-barrier mapping 2.66/2.56/2.52.
// Session 7 (results/h200-s7-20261121/, README there), branch s7-bidir (merged in session 8):
//   per-use slot counts and running slot/parity (no division), focused's query side folded
//   (ATTNBENCH_BIDIR_FOCUSED2 above), one TMA kernel per feature map for the 16-warp and the 2x8
//   configurations where Dk, Dv <= 64 (spill-free but the 16-warp focused, 16 B), padded boxes
//   removed, and (as on main) a ring that is a multiple of the Q item groups (10 slots: with 11, a
//   warp that skipped the other group's use of a slot could pass its own wait a phase early by mbarrier parity aliasing; call3 hung at
//   T = 16384). call2 (87a202f, every map): focused 1.83 / 1.73 / 1.69x floor with the fold against
//   2.00 / 1.91 / 1.87 exact, and the 2x8 configuration fastest on every map (identity 1.30 / 1.23
//   / 1.18, elu1 1.35 / 1.28 / 1.23, focused 1.64 / 1.53 / 1.48) on a machine that timed identity
//   ~7% slower than session 6's; call3 (b890414): identity 1.23 / 1.17x at T = 4096 / 8192.
// Session 8 (results/h200-s8-20261121/call2, s7-bidir at 8f53ef2 against main's 4fa0ca7 built in the
//   same run, BIDIR_CHECK_BASE_BIN; fwd x floor at T = 4096 / 8192 / 16384): 896/896 bidir GPU
//   tests (1x16 and 2x8). 1x16: identity 1.23 / 1.17 / 1.13 (main 1.24 / 1.18 / 1.13), relu 1.24 /
//   1.18 / 1.13 (1.26 / 1.19 / 1.14), elu1 1.26 / 1.23 / 1.20 (1.31 / 1.24 / 1.20), focused 1.69 /
//   1.61 / 1.57 (1.93 / 1.85 / 1.81; exact map 1.83 / 1.76 / 1.72). 2x8: identity 1.26 / 1.19 /
//   1.14, relu 1.27 / 1.19 / 1.14, elu1 1.30 / 1.23 / 1.17, focused 1.56 / 1.46 / 1.42: the default
//   for focused at Dk, Dv <= 64 (kDefaultTmaCfgFocused).
//   call3 (focused, 2x8): without the in-place K map (DIAG=16) 1.35 / 1.24 / 1.19; call5 (ncu,
//   T = 4096): the map added ~313 warp instructions per K tile (50.7 M against 30.2 M), issue
//   slots 55% busy against 40%; call4: mapping tile i + 1 before the products of tile i
//   (ATTNBENCH_BIDIR_FOCUSED=pipe) gained <= 1%: issue work, not latency. call6 (6b50aeb against
//   22414fb, same run): the map without column tests where Dk == DKP, relu on packed pairs and r
//   by two rsqrt (focused_ratio), in phase 1 and in the phase-2 fold: focused 1.45 / 1.35 / 1.33
//   against 1.57 / 1.47 / 1.42, the other maps unchanged; 1344/1344 bidir GPU tests.
// Session 9 (results/h200-s9-20261121/, README there), the backward (bwd ms, norm, bf16, B=8 H=16
//   D=64): the maps on full slabs without masks (packed relu / elu1, focused's y by focused_y2) and
//   focused's row norms kept from phi to phi' (call1, same run against 46722bc): focused 0.1103 ->
//   0.0917 at T = 1024, 0.3188 -> 0.2468 at 4096; elu1 0.0887 -> 0.0794, 0.2479 -> 0.2167. ncu
//   then put the time in the query kernel (identity 42.4 us against the key kernel's 23.0 at
//   T = 1024; 12 warps an SM, issue slots 40% busy, two block barriers a tile). call2: the
//   warp-specialized query kernel (ATTNBENCH_BIDIR_BWDQ, kDefaultBwdQWs) against the block one,
//   same binary: identity 0.0651 -> 0.0549 at 1024, 0.1833 -> 0.1674 at 4096; focused 0.0924 ->
//   0.0837, 0.2470 -> 0.2346; 896/896 bidir GPU tests. call3: the focused fold in the backward
//   (round(u), r on the rows' products) gained ~5% and failed one bf16 case of the numerics rule
//   (simple, T = 1: dk): reverted.
// Session 10 (results/h200-s10-20261121/, README there; norm, bf16, B=8 H=16 D=64). call1 (bb6e68a,
//   DIAG A/B, fwd ms at T = 1024 / 4096): focused 0.0319 / 0.0908, without the in-place K map
//   (DIAG=16) 0.0311 / 0.0847, no phase-1 math (4) 0.0310 / 0.0854, no phase-2 math (8) 0.0261 /
//   0.0832; identity 0.0266 / 0.0779, (8) 0.0224 / 0.0740: phase 2's math costs even identity ~4 us.
//   ncu + SASS source (focused, T = 4096): the K map 209 instructions per warp and tile (31% of
//   44.0 M), the phase-2 fold 306 per slab (23%). d1ff4b7: bf16 unpack by bit operations, r by
//   rsqrt.approx.ftz, the K map with two chunks a lane, the backward's phi keeping u, its phi'
//   testing x > 0 on the packed relu: 159 and 254 instructions (39.0 M); call2/call4 sweeps: focused
//   fwd 1.37 / 1.31 / 1.28 x floor at T = 4096 / 8192 / 16384 (1.42 / 1.33 / 1.30 before), fwd+bwd
//   2.45 at T = 1024 (2.59). call3 (same binary): the O staging wait moved after the products
//   (dabdc50, reverted): no gain; 1x16 for focused 9-12% slower than 2x8. call4: elu1 by packed
//   pairs (EXP=pk) 0.0802 / 0.0803 ms at T = 4096 (no gain). call5 (e48cbe0, same binary, fwd ms
//   at T = 4096 / 8192 / 16384, another machine): RELEASE=2 + FENCE=late (now the default) against
//   0 + now: elu1 0.0814 / 0.1574 / 0.3059 against 0.0831 / 0.1607 / 0.3148, focused 0.0879 /
//   0.1662 / 0.3269 against 0.0898 / 0.1689 / 0.3308, identity equal (0.0780 / 0.1497 / 0.2879);
//   RELEASE=1 alone: elu1 as 2, focused unchanged; FENCE=late alone: focused 0.0885 / 0.1652 /
//   0.3245. 448/448 bidir GPU tests under the default and under RELEASE=2 + FENCE=late.
// Session 12 (results/h200-s12-20261121/, README there; norm, bf16, B=8 H=16 D=64, fwd x floor at
//   T = 4096 / 8192 / 16384). call1 (13e2af9, same binary): focused's maps on packed bf16x2 pairs
//   with the row norms on tensor cores (ATTNBENCH_BIDIR_FOCUSEDPK; bidir_tiled_maps.cuh focused_pk):
//   fp32 maps (0) 1.41 / 1.31 / 1.28, packed (1) 1.31 / 1.24 / 1.20, packed with u and r u rounded
//   once (2) 1.35 / 1.28 / 1.26; 448/448 bidir GPU tests under 1 and under 2; call2: the checked
//   sweep under 1, norm and simple fwd, T = 128 .. 16384, err / (2 err_base + floor) <= 0.42 (2:
//   <= 0.45). call2's timeline (ATTNBENCH_BIDIR_DIAG=32) at T = 4096: identity's CTAs, one an SM,
//   equal work, end between 60 and 75 us, by SM (GPC bandwidth shares); call3 (f5d00c7): launch
//   clusters of several heads (ATTNBENCH_BIDIR_HWCLUSTER), to even the CTAs per GPC, never fit this
//   GPU (15 of the 16 clusters of 8, 30 of the 32 clusters of 4 resident at once): default 1.
//   call4 (473cdbf): the 16-warp configuration for focused (packed map on 8-row pairs) 1.70 / 1.66
//   / 1.63 against 2x8's 1.33 / 1.27 / 1.24: 2x8 stays; 448/448 bidir GPU tests. call5 (6a9a2b2,
//   main's kernels): 448/448; identity 1.226 / 1.162 / 1.118, relu 1.238 / 1.170 / 1.124, elu1
//   1.290 / 1.235 / 1.212, focused 1.323 / 1.264 / 1.233.
// Session 13 (results/h200-s13-20261121/, README there): phase-2 work stealing across heads in
//   the TMA forward (each CTA publishes its state after the exchange; Q items past the ring's first
//   SLOTS claimed in chunks by atomic adds, by the owner or by thieves; a head switch by a bulk copy
//   of the state and two group barriers; commits ace1bc7 .. c880393), tried in four calls and
//   removed: slower in every mode, map and T. Chunks of 1 / 2 / 4 (call1): identity 1.53 / 1.48 /
//   1.44 at T = 4096 against 1.23 without; guided thieves, no cascades, owner chunks of 8 (call3):
//   >= 1.42; only a share's last 4 or 8 items movable (call4): identity 1.39 / 1.40 against 1.24,
//   1.157 against 1.125 at T = 16384. A claim made in the ring's refill path cost about 1 us of
//   kernel time; 460/460 bidir GPU tests with stealing on (and its own tests, a thief mode).
// Session 14 (results/h200-s14-20261121/, README there; norm, bf16, B=8 H=16 D=64, fwd x floor at
//   T = 4096 / 8192 / 16384). call1 (cf170eb): more CTAs a head in several waves, so that the
//   block scheduler balances the SMs (ATTNBENCH_BIDIR_CLUSTER): identity 1x16 c1 / c2 / c4 / c8
//   1.229 / 1.333 / 1.817 / 2.248 at 4096, 2x8 c4 / c8 1.666 / 1.901; every map and T slower (a
//   cluster's exchange took 3.5-18 us). call2-3 (fade2ac): phase 2 in Q pairs (a warp's slab of two
//   of its group's items at once, two independent chains): elu1 1.318 against 1.303, identity 1.245
//   against 1.235, with bulk or 16-byte O stores alike; removed. call3 (ncu, T = 4096): elu1 37.7 M
//   warp instructions against identity's 24.8 M, issue slots 50% against 38% busy; the K map adds
//   40 instructions a warp and tile, the Q map 167 a slab. call4 (734975b): phase 1 in lockstep (no
//   warp more than L tiles ahead, by per-slot `empty` barriers): elu1 1.339 with L = 2 against 1.295
//   (the exchange's wait for the last warps fell 4.7 -> 2.1 us, phase 1 rose 37.3 -> 42.8 us);
//   removed. No math in phase 1 (DIAG=4) / phase 2 (8): elu1 1.284 / 1.203 against 1.295, identity
//   1.235 / 1.167 against 1.232: at T = 4096 the time the math costs is phase 2's. call5 (e4963df,
//   same binary): a slab's first products issued before its row scale (output_frags' ZLATE):
//   identity 1.234 / 1.168 / 1.127 against 1.237 / 1.175 / 1.129, relu 1.249 / 1.176 / 1.131
//   against 1.258 / 1.183 / 1.136, elu1 1.307 / 1.239 / 1.222 against 1.307 / 1.253 / 1.224,
//   focused 1.335 / 1.275 / 1.242 against 1.335 / 1.278 / 1.247; 448/448 bidir GPU tests under
//   each: the default since then (bidir_tiled_tma.cu kZLate). call6 (2860df4, main's kernels):
//   448/448; identity 1.235 / 1.168 / 1.125, relu 1.246 / 1.176 / 1.129, elu1 1.307 / 1.242 /
//   1.223, focused 1.341 / 1.276 / 1.242; the checked sweep (norm fwd, T = 128 .. 16384) 32/32.
//   call7 (7460190): phase 2's math in parts at T = 4096 (DIAG 128: no KVr reads, 256: no row
//   scale, 384: neither, 8: no phase-2 math): identity 1.222 / 1.221 / 1.194 / 1.168 against
//   1.241, elu1 1.306 / 1.302 / 1.279 / 1.203 against 1.316, focused 1.344 / 1.332 / 1.317 /
//   1.250 against 1.342: most of elu1's and focused's phase-2 cost is the Q map and the products.
constexpr int kDefaultTmaCfg = 1;
constexpr int kDefaultTmaCfgFocused = 0;  // 2x8
constexpr bool kDefaultOTma = true;
constexpr int kDefaultOrder = 0;
constexpr bool kDefaultZmma = true;
constexpr bool kDefaultEarly = true;   // session 5, above
constexpr bool kDefaultGroupQ = true;  // session 5, above
constexpr int kDefaultReleaseDefer = 2;  // session 10 (call5), above
constexpr bool kDefaultFenceLate = true;  // session 10 (call5), above
constexpr bool kDefaultExpPk = false;  // elu1 in the one-launch forwards: ex2.approx.f32 on packed pairs (session 5, above)
constexpr bool kDefaultFocusedRows = true;  // session 6, above
constexpr bool kDefaultFocusedPipe = false;  // session 8, call4 / call6: no gain
constexpr bool kDefaultFocusedFold = true;  // session 7, above
constexpr bool kDefaultBwdQWs = true;  // session 9 (call2), above
constexpr int kDefaultFocusedPk = 1;  // session 12, above
constexpr int kDefaultHwCluster = 1;  // session 12, above
// Phase 2 of the TMA forward on wgmma (ATTNBENCH_BIDIR_P2=wg|mma; bidir_tiled_wg.cuh), session 20
// (results/h200-s20-20261122/c1, same binary, fwd x floor at T = 4096 / 8192 / 16384, mma -> wg):
// identity 1.235 / 1.170 / 1.128 -> 1.185 / 1.132 / 1.102, relu 1.250 / 1.180 / 1.132 -> 1.194 /
// 1.137 / 1.104, elu1 1.303 / 1.248 / 1.221 -> 1.257 / 1.219 / 1.192, focused 1.344 / 1.275 / 1.240
// -> 1.305 / 1.238 / 1.207; 448/448 bidir GPU tests under wg.
constexpr bool kDefaultP2Wg = true;
// elu1's packed map (kElu1Pk, ATTNBENCH_BIDIR_EXP=pk) where phase 2 runs on wgmma (bf16, 1x16):
// session 20 (results/h200-s20-20261122/c2, same binary, fwd x floor at T = 4096 / 8192 / 16384):
// 1.267 / 1.221 / 1.198 (f32 exps) -> 1.251 / 1.203 / 1.174; 448/448 bidir GPU tests under pk.
constexpr bool kDefaultElu1PkWg = true;
// focused (2x8) on the wgmma phase 2: each warp releases a ring slot after its math on it
// (ATTNBENCH_BIDIR_EARLY=0), session 20 (results/h200-s20-20261122/c4, same binary, fwd x floor at
// T = 4096 / 8192): early 1.320 / 1.244, late 1.296 / 1.212.
constexpr bool kDefaultEarlyFocusedWg = false;
// focused's phase 1 on wgmma (state_tile_wg; ATTNBENCH_BIDIR_P1=wg|mma), session 20
// (results/h200-s20-20261122/c6, same binary, two runs each, fwd x floor at T = 4096 / 8192 /
// 16384): mma 1.282-1.296 / 1.204-1.216 / 1.167-1.181, wg 1.282-1.288 / 1.194-1.199 / 1.138;
// 448/448 bidir GPU tests under wg.
constexpr bool kDefaultP1WgFocused = true;
// elu1 (packed, 1x16) likewise (state_tile_wg_rs), session 20 (results/h200-s20-20261122/c7, same
// binary, two runs each): mma 1.252-1.254 / 1.205-1.206 / 1.177-1.178, wg 1.248-1.251 / 1.192-1.193
// / 1.161-1.162; identity was not faster with it (1.189-1.190 against 1.197-1.199 at T = 4096):
// it keeps mma.sync (its wgmma phase 1 was removed after c7). 448/448 bidir GPU tests under P1=wg.
constexpr bool kDefaultP1WgElu1 = true;
// The O slab staged by stmatrix on the wgmma phase 2 (ATTNBENCH_BIDIR_OSTSM), session 21
// (results/h200-s21-20261122, same binary, fwd x floor at T = 4096 / 8192 / 16384): c1 focused
// 1.279 / 1.196 / 1.139 and 1.282 / 1.195 / 1.140 against 1.286 / 1.198 / 1.140 and 1.288 / 1.194
// / 1.142, identity and elu1 unchanged; c4 with KVT=stsm below.
constexpr bool kDefaultOStsm = true;
// How the state exchange moves the state on the wgmma path (ATTNBENCH_BIDIR_KVT).
// Session 21 (results/h200-s21-20261122; the timeline's exchange stamps, T = 4096, us median): the
// 2-byte stores of `direct` fall 8 to a bank, and at C = 2 (focused) ~2300 of them a CTA go to the
// partner; `stsm` (own rows by stmatrix.trans, then 16-byte copies to the partner) took elu1's
// exchange 2.37 -> 1.82 us and focused's owned-rows step 3.0 -> 2.2 us, fwd x floor at T = 4096 /
// 8192 / 16384 elu1 1.236 / 1.187 / 1.155 and 1.234 / 1.186 / 1.148 against 1.244 / 1.193 / 1.154 and
// 1.248 / 1.190 / 1.154. (c2, c5: a thread summing one column of 8 rows, and every CTA summing all
// rows itself, were no faster; both removed, as was `copy`, stsm's copies without stmatrix.)
// Session 22 (results/h200-s22-20261122, c1, one binary, each label twice): `push` (clusters of 2
// CTAs: focused's 2x8) took focused's exchange 4.9 -> 2.9 us (no cluster barrier, no remote load)
// and its fwd x floor to 1.245 / 1.178 / 1.131 and 1.245 / 1.179 / 1.131 against stsm's 1.283 /
// 1.199 / 1.141 and 1.280 / 1.196 / 1.141 (ms -2.9% / -1.6% / -0.8%); 448/448 bidir GPU tests
// under push, also with every map forced to clusters of 2 (its 16-warp form, since removed: c1).
constexpr int kDefaultKvt = kKvtPush;

class TiledBidir : public CudaPrepared {
 public:
  TiledBidir(const Problem& p, Pass pass, Dtype dt, const Tensors& inputs) : CudaPrepared(p, pass, dt, inputs) {
    const int DKP = tiled_padded_dim(p.Dk), DVP = tiled_padded_dim(p.Dv);
    TiledParams b{};
    b.BH = static_cast<int>(p.B * p.H);
    b.Tq = static_cast<int>(p.Tq), b.Tk = static_cast<int>(p.Tk), b.Dk = static_cast<int>(p.Dk), b.Dv = static_cast<int>(p.Dv);
    b.fm = feature_map_id(p.params.feature_map);
    b.norm = p.variant == "norm" ? 1 : 0;
    b.focused_fold = dt == Dtype::bf16 &&
                     (env("ATTNBENCH_BIDIR_FOCUSED2") ? std::strcmp(env("ATTNBENCH_BIDIR_FOCUSED2"), "exact") != 0 : kDefaultFocusedFold);
    b.focused_pk = dt == Dtype::bf16 ? (env("ATTNBENCH_BIDIR_FOCUSEDPK") ? std::atoi(env("ATTNBENCH_BIDIR_FOCUSEDPK")) : kDefaultFocusedPk) : 0;
    b.scale = static_cast<float>(p.scale());
    b.tk = static_cast<float>(p.Tk);
    b.inv_tk = 1.0f / b.tk;
    int dev = 0, major = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    b.pdl = major >= 9;
    b.l2_evict_first = !(env("ATTNBENCH_BIDIR_L2") && std::strcmp(env("ATTNBENCH_BIDIR_L2"), "normal") == 0);
    b.q = in("q").buf.get(), b.k = in("k").buf.get(), b.v = in("v").buf.get();
    b.kv = scratch("kv", {b.BH, DKP, DVP}, dt).buf.get();
    b.kmean = scratch("kmean", {b.BH, DKP}, Dtype::f32).as<float>();

    state_ = b;
    plan_splits(state_, p.Tk, tiled_fwd_blocks_per_sm(TiledKernel::state, dt, b.Dk, b.Dv));
    int max_splits = state_.splits;
    if (pass == Pass::fwd) {
      second_ = b;
      second_.o = out("o").buf.get();
      plan_chunks(second_, p.Tq, tiled_fwd_blocks_per_sm(TiledKernel::output, dt, b.Dk, b.Dv));
      fused_ = second_;
      plan_fused(p, dt, major);
    } else {
      b.dout = in("do").buf.get();
      b.dq = out("dq").buf.get(), b.dk = out("dk").buf.get(), b.dv = out("dv").buf.get();
      b.dkv = scratch("dkv", {b.BH, DKP, DVP}, dt).buf.get();
      b.dkmean = scratch("dkmean", {b.BH, DKP}, Dtype::f32).as<float>();
      first_ = b;
      first_.bwd_q_ws = DKP == kTiledDimSmall &&
                        (env("ATTNBENCH_BIDIR_BWDQ") ? std::strcmp(env("ATTNBENCH_BIDIR_BWDQ"), "block") != 0 : kDefaultBwdQWs);
      plan_splits(first_, p.Tq, tiled_bwd_blocks_per_sm(first_.bwd_q_ws ? TiledKernel::query_ws : TiledKernel::query, dt, b.Dk, b.Dv));
      second_ = b;
      plan_chunks(second_, p.Tk, tiled_bwd_blocks_per_sm(TiledKernel::key, dt, b.Dk, b.Dv));
      max_splits = std::max(max_splits, first_.splits);
    }
    float* partial = scratch("partial", {b.BH, max_splits, DKP, DVP + 8}, Dtype::f32).as<float>();
    DeviceTensor& counter = scratch("counter", {b.BH}, Dtype::f32);  // unsigned counters, 4 bytes each
    CUDA_CHECK(cudaMemsetAsync(counter.buf.get(), 0, counter.buf.bytes(), stream_));
    for (TiledParams* t : {&state_, &first_, &second_, &fused_}) {  // fused_: the TMA forward's timeline (diag 32)
      t->partial = partial;
      t->counter = counter.as<unsigned>();
    }
    if (pass == Pass::bwd) {  // the forward's state, once, untimed
      launch_tiled_state(state_, dt_, stream_);
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }

  void run() override {
    if (pass_ == Pass::fwd && use_fused_ && one_ == OneLaunch::tma) {
      if (fused_.diag & 32) {  // words a kernel does not stamp read 0 (the exchange's: WG kernels only)
        CUDA_CHECK(cudaMemsetAsync(fused_.partial, 0, sizeof(uint64_t) * kTimelineWords * fused_.BH * fused_.cluster, stream_));
      }
      launch_tiled_tma(fused_, maps_, dt_, stream_);
      if (fused_.diag & 32) print_timeline();
    } else if (pass_ == Pass::fwd && use_fused_) {
      launch_tiled_fused(fused_, dt_, stream_);
    } else if (pass_ == Pass::fwd) {
      launch_tiled_state(state_, dt_, stream_);
      launch_tiled_output(second_, dt_, stream_);
    } else {
      launch_tiled_query(first_, dt_, stream_);
      launch_tiled_key(second_, dt_, stream_);
    }
  }

 private:
  // The TMA forward's timeline (ATTNBENCH_BIDIR_DIAG=32): after the launch, one line a CTA,
  // `bidir-ts bh rank sm t0 t1 t2 t3 t7 t8 t9` (scripts/bidir_timeline.py), from the words the kernel left
  // in the partial-sum scratch (kTimelineWords a CTA).
  void print_timeline() {
    const int ctas = fused_.BH * fused_.cluster;
    std::vector<uint64_t> w(static_cast<size_t>(ctas) * kTimelineWords);
    CUDA_CHECK(cudaMemcpyAsync(w.data(), fused_.partial, w.size() * sizeof(uint64_t), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (int c = 0; c < ctas; ++c) {
      const uint64_t* t = &w[static_cast<size_t>(c) * kTimelineWords];
      auto u = [&](int k) { return static_cast<unsigned long long>(t[k]); };
      std::printf("bidir-ts %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu\n", u(5), u(6), u(4), u(0), u(1), u(2), u(3), u(7), u(8),
                  u(9));
    }
  }

  // The forward's path. One launch where clusters exist (sm_90+) and its grid keeps at least 60%
  // of the resident slots busy, or the problem is small (<= 64 MB moved, where launch latency and
  // ramp-up dominate and one launch wins even on a partly idle GPU); else two launches, whose
  // split-T state kernel spreads any number of heads over the whole GPU. The one-launch kernel is
  // the TMA-fed one where its tensor maps can be made, else the cp.async-fed one.
  void plan_fused(const Problem& p, Dtype dt, int major) {
    one_ = kDefaultOneLaunch;
    if (const char* e = env("ATTNBENCH_BIDIR_FWD")) {
      if (std::strcmp(e, "tma") == 0) one_ = OneLaunch::tma;
      if (std::strcmp(e, "fused") == 0) one_ = OneLaunch::fused;
    }
    if (major < 9) one_ = OneLaunch::fused;
    if (!plan_one_launch(p, dt, major) && one_ == OneLaunch::tma) {
      one_ = OneLaunch::fused;  // no tensor maps from this driver
      plan_one_launch(p, dt, major);
    }
  }

  // Plans the one_ kernel (clusters, Q rows, use_fused_); false where its tensor maps failed.
  bool plan_one_launch(const Problem& p, Dtype dt, int major) {
    const int ktiles = ceil_div(p.Tk, kTiledRows);
    const char* w = env("ATTNBENCH_BIDIR_FUSED_WARPS");
    const int warps = fused_.fused_warps = w && std::atoi(w) == 4 && p.Dk <= kTiledDimSmall ? 4 : 8;
    const bool small = p.Dk <= kTiledDimSmall && p.Dv <= kTiledDimSmall;
    int cfg = fused_.fm == kFocused && small ? kDefaultTmaCfgFocused : kDefaultTmaCfg;
    if (const char* e = env("ATTNBENCH_BIDIR_TMA")) {
      if (std::strcmp(e, "2x8") == 0) cfg = 0;
      if (std::strcmp(e, "1x16") == 0) cfg = 1;
      if (std::strcmp(e, "1x8") == 0) cfg = 2;
    }
    if (cfg == 1 && !small) cfg = 2;  // 16 warps spill at D = 128
    fused_.tma_cfg = cfg;
    fused_.o_tma = kDefaultOTma;
    if (const char* e = env("ATTNBENCH_BIDIR_OSTORE")) fused_.o_tma = std::strcmp(e, "st") != 0;
    fused_.diag = env("ATTNBENCH_BIDIR_DIAG") ? std::atoi(env("ATTNBENCH_BIDIR_DIAG")) : 0;
    fused_.zmma = env("ATTNBENCH_BIDIR_ZMMA") ? std::strcmp(env("ATTNBENCH_BIDIR_ZMMA"), "0") != 0 : kDefaultZmma;
    fused_.early = env("ATTNBENCH_BIDIR_EARLY") ? std::strcmp(env("ATTNBENCH_BIDIR_EARLY"), "0") != 0 : kDefaultEarly;
    fused_.release_defer = env("ATTNBENCH_BIDIR_RELEASE") ? std::atoi(env("ATTNBENCH_BIDIR_RELEASE")) : kDefaultReleaseDefer;
    fused_.fence_late = env("ATTNBENCH_BIDIR_FENCE") ? std::strcmp(env("ATTNBENCH_BIDIR_FENCE"), "late") == 0 : kDefaultFenceLate;
    fused_.group_q = env("ATTNBENCH_BIDIR_GROUPQ") ? std::strcmp(env("ATTNBENCH_BIDIR_GROUPQ"), "0") != 0 : kDefaultGroupQ;
    fused_.focused_rows = env("ATTNBENCH_BIDIR_FOCUSED") ? std::strcmp(env("ATTNBENCH_BIDIR_FOCUSED"), "block") != 0 : kDefaultFocusedRows;
    fused_.focused_pipe = env("ATTNBENCH_BIDIR_FOCUSED") ? std::strcmp(env("ATTNBENCH_BIDIR_FOCUSED"), "pipe") == 0 : kDefaultFocusedPipe;
    fused_.order = kDefaultOrder;
    if (const char* e = env("ATTNBENCH_BIDIR_ORDER")) {
      fused_.order = (std::strstr(e, "rot") ? 1 : 0) | (std::strstr(e, "ilv") ? 2 : 0);
    }
    auto info = [&](int c) {
      return one_ == OneLaunch::tma ? tiled_tma_info(dt, fused_.Dk, fused_.Dv, c, cfg) : tiled_fused_info(dt, fused_.Dk, fused_.Dv, c, warps);
    };
    const FusedInfo info1 = info(1);
    double fill = 0;
    int c = plan_cluster(fused_.BH, sm_count() * std::max(info1.blocks_per_sm, 1), ktiles, info, &fill);
    if (const char* e = env("ATTNBENCH_BIDIR_CLUSTER")) {
      const int want = std::atoi(e);
      if ((want == 1 || want == 2 || want == 4 || want == 8) && info(want).cluster_fits) c = want;
    }
    fused_.cluster = c;
    // Launch clusters of several heads (TiledParams::heads_per_cluster), where BH divides evenly
    // and every cluster of them is resident at once.
    fused_.heads_per_cluster = 1;
    const char* hwc = env("ATTNBENCH_BIDIR_HWCLUSTER");
    const int hw = hwc ? std::atoi(hwc) : kDefaultHwCluster;
    if (one_ == OneLaunch::tma && hw > c && hw <= 8 && hw % c == 0 && fused_.BH % (hw / c) == 0) {
      const FusedInfo ih = info(hw);
      if (ih.cluster_fits && int64_t{ih.max_clusters} * hw >= int64_t{fused_.BH} * c) fused_.heads_per_cluster = hw / c;
    }
    if (hwc && fused_.heads_per_cluster * c != hw) {
      std::fprintf(stderr, "bidir tiled: ATTNBENCH_BIDIR_HWCLUSTER=%d not used here (%d CTAs a head, BH=%d; clusters of %d CTAs: %d resident)\n",
                   hw, c, fused_.BH, hw, hw > c && hw <= 8 ? info(hw).max_clusters : 0);
    }
    // Q slots: an equal share of the rows per CTA, in whole 16-row slabs, at most a slot's worth.
    const int64_t share = (p.Tq + c - 1) / c;
    fused_.q_rows = static_cast<int>(std::clamp<int64_t>((share + 15) / 16 * 16, 16, info1.max_q_rows));
    const int64_t bytes = p.B * p.H * ((p.Tq + p.Tk) * p.Dk + p.Tk * p.Dv + p.Tq * p.Dv) * static_cast<int64_t>(dtype_bytes(dt));
    use_fused_ = major >= 9 && info1.blocks_per_sm > 0 && (fill >= 0.6 || bytes <= (int64_t{64} << 20));
    if (const char* e = env("ATTNBENCH_BIDIR_FWD")) {
      if (std::strcmp(e, "fused") == 0 || std::strcmp(e, "tma") == 0) use_fused_ = major >= 9 && info1.blocks_per_sm > 0;
      if (std::strcmp(e, "two") == 0) use_fused_ = false;
    }
    // elu1 by packed operations on pairs of the storage dtype (kernel-internal map id kElu1Pk), or
    // by ex2.approx.f32 (kElu1; on whole tiles elu1_f2_packed).
    // The default: packed where phase 2 runs on wgmma (kDefaultElu1PkWg), else kDefaultExpPk.
    const char* p2 = env("ATTNBENCH_BIDIR_P2");
    const bool want_wg = p2 ? std::strcmp(p2, "wg") == 0 : kDefaultP2Wg;
    // (wgmma: sm_90 devices only, as the linear families' wgmma kernels; the build targets sm_90a)
    const bool wg_ok = want_wg && major == 9 && one_ == OneLaunch::tma && dt == Dtype::bf16 && small && fused_.o_tma && (fused_.diag & ~32) == 0;
    const char* x = env("ATTNBENCH_BIDIR_EXP");
    const bool pk = x ? std::strcmp(x, "pk") == 0 : (wg_ok && cfg == 1 ? kDefaultElu1PkWg : kDefaultExpPk);
    fused_.fm = pk && state_.fm == kElu1 ? kElu1Pk : state_.fm;
    // Phase 2's diagnostics 128 / 256 exist in the bf16 default TMA kernels of identity, elu1 and
    // focused at Dk, Dv <= 64 only (bidir_tiled_tma.cu launch_tma_maps); elsewhere they do nothing.
    const bool diag_p2 = one_ == OneLaunch::tma && dt == Dtype::bf16 && small &&
                         (cfg == 1 ? fused_.fm == kIdentity || fused_.fm == kElu1 : cfg == 0 && fused_.fm == kFocused);
    if ((fused_.diag & 384) && use_fused_ && !diag_p2) {
      std::fprintf(stderr, "bidir tiled: ATTNBENCH_BIDIR_DIAG=%d: bits 128 and 256 not used here (bf16 default kernels of identity, elu1, focused at Dk, Dv <= 64 only)\n",
                   fused_.diag);
    }
    // Phase 2 on wgmma (ATTNBENCH_BIDIR_P2=wg): bf16 at Dk, Dv <= 64, each map's default
    // configuration, bulk O stores, no diagnostics (bidir_tiled_tma.cu launch_tma_maps).
    fused_.p2_wg = wg_ok && (cfg == 1 ? fused_.fm == kIdentity || fused_.fm == kRelu || fused_.fm == kElu1 || fused_.fm == kElu1Pk
                             : cfg == 0 && fused_.fm == kFocused);
    if (p2 && std::strcmp(p2, "wg") == 0 && !fused_.p2_wg && use_fused_) {
      std::fprintf(stderr, "bidir tiled: ATTNBENCH_BIDIR_P2=wg not used here (bf16 TMA forward at Dk, Dv <= 64, each map's default configuration, no diagnostics)\n");
    }
    // focused's phase 1 on wgmma as well (ATTNBENCH_BIDIR_P1=wg|mma, kDefaultP1WgFocused).
    const char* p1 = env("ATTNBENCH_BIDIR_P1");
    const bool p1_default = fused_.fm == kFocused ? kDefaultP1WgFocused : fused_.fm == kElu1Pk ? kDefaultP1WgElu1 : false;
    fused_.p1_wg = fused_.p2_wg && (fused_.fm == kFocused || fused_.fm == kElu1Pk) &&
                   (p1 ? std::strcmp(p1, "wg") == 0 : p1_default);
    // The O slab by stmatrix on the wgmma phase 2 (ATTNBENCH_BIDIR_OSTSM=1|0, kDefaultOStsm).
    fused_.o_stsm = fused_.p2_wg && (env("ATTNBENCH_BIDIR_OSTSM") ? std::strcmp(env("ATTNBENCH_BIDIR_OSTSM"), "0") != 0 : kDefaultOStsm);
    // How the exchange moves the state (ATTNBENCH_BIDIR_KVT=direct|stsm|push, kDefaultKvt); push
    // exists for clusters of 2 CTAs in the 2x8 configuration (else stsm).
    fused_.kvt = kDefaultKvt;
    if (const char* e = env("ATTNBENCH_BIDIR_KVT")) {
      const bool known = !std::strcmp(e, "direct") || !std::strcmp(e, "stsm") || !std::strcmp(e, "push");
      if (!known) std::fprintf(stderr, "bidir tiled: ATTNBENCH_BIDIR_KVT=%s unknown (direct, stsm or push); the default is used\n", e);
      if (known) fused_.kvt = !std::strcmp(e, "direct") ? kKvtDirect : !std::strcmp(e, "stsm") ? kKvtStsm : kKvtPush;
    }
    if (fused_.kvt == kKvtPush && (fused_.cluster != 2 || cfg != 0)) fused_.kvt = kKvtStsm;
    if (!fused_.p2_wg) fused_.kvt = kKvtDirect;
    // focused on the wgmma phase 2 releases its ring slots after the math (kDefaultEarlyFocusedWg).
    if (!env("ATTNBENCH_BIDIR_EARLY") && fused_.p2_wg && fused_.fm == kFocused) fused_.early = kDefaultEarlyFocusedWg;
    if (use_fused_ && one_ == OneLaunch::tma) return encode_tiled_maps(maps_, fused_, dt);
    return true;
  }

  TiledParams state_{}, first_{}, second_{}, fused_{};
  TiledMaps maps_{};
  OneLaunch one_ = OneLaunch::fused;
  bool use_fused_ = false;
};

Support tiled_supports(const Problem& p, Pass, Dtype dt) {
  if (dt != Dtype::bf16 && dt != Dtype::f16) {
    return Support::no("tiled: bf16 and fp16 only (tensor-core operands); fp32 runs use naive");
  }
  if (p.Dk % 8 != 0 || p.Dv % 8 != 0 || p.Dk > kTiledDimLarge || p.Dv > kTiledDimLarge) {
    return Support::no("tiled: Dk and Dv must be multiples of 8 up to 128 (got Dk=" + std::to_string(p.Dk) +
                       ", Dv=" + std::to_string(p.Dv) + ")");
  }
  if (p.B * p.H > 65535) return Support::no("tiled: B*H must be <= 65535 (one grid row per head)");
  if (p.Tq > (1 << 30) || p.Tk > (1 << 30)) return Support::no("tiled: Tq and Tk must be <= 2^30");
  if (gpu_info().available && gpu_info().cc_major < 8) return Support::no("tiled: needs compute capability 8.0+ (mma.sync bf16, cp.async)");
  return Support::yes();
}

}  // namespace

void register_bidir_tiled(Registry& r) {
  Impl impl;
  impl.algo = "bidir";
  impl.name = "tiled";
  impl.device = Device::cuda;
  impl.summary = "two phases per pass (state reduced over T, then per row); forward in one launch (a cluster of CTAs per "
                 "head fed by bulk tensor copies, state reduced in distributed shared memory) on sm_90, backward in two; mma.sync, fp32 accumulate, "
                 "feature maps fused; bf16/fp16; Dk, Dv multiples of 8 up to 128; any Tq, Tk";
  impl.supports = tiled_supports;
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in, const PrepareOptions&) -> std::unique_ptr<Prepared> {
    return std::make_unique<TiledBidir>(p, pass, dt, in);
  };
  r.add(impl);
}

}  // namespace attnbench::kernels
