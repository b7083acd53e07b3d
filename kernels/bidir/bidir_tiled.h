// bidir tiled kernels: the one host-to-kernel interface (a plain params struct) and the launchers.
// The kernels are in bidir_tiled_fwd.cu (state, output) and bidir_tiled_bwd.cu (query, key);
// bidir_tiled.cu holds the Prepared object and the registration.
#pragma once

#include <cuda_runtime.h>

#include "core/dtype.h"

namespace attnbench::kernels::bidir {

// Supported head dims are padded to one of these (zero columns), Dk and Dv separately.
constexpr int kTiledDimSmall = 64, kTiledDimLarge = 128;
constexpr int kTiledRows = 64;  // rows of q/k/v per tile
// The TMA forward's timeline (TiledParams::diag bit 32): words per CTA in TiledParams::partial
// (0-3: start, end of phase 1, end of the exchange, end: %globaltimer ns; 4-6: SM, head, rank;
// 7-9: inside the exchange, cluster_state_exchange's stamps).
constexpr int kTimelineWords = 12;

// TiledParams::kvt, the wgmma path's state exchange (bidir_tiled_fwd.cuh, bidir_tiled_push.cuh):
// kKvtDirect: after a cluster barrier each CTA sums its owned rows from every CTA's partial
// (remote loads) and writes them into every CTA's KVr^T by 2-byte elements; kKvtStsm: the same
// sums written into the CTA's own KVr^T by stmatrix.trans, then copied to the others by 16-byte
// chunks; kKvtPush (clusters of 2 CTAs; elsewhere kKvtStsm): each CTA stores its partial of the
// partner's rows into the partner's shared memory and its KVr^T chunks likewise, by st.async on
// the receiver's mbarriers: no cluster barrier, no remote load.
constexpr int kKvtDirect = 0, kKvtStsm = 1, kKvtPush = 2;

inline int tiled_padded_dim(int64_t d) { return d <= kTiledDimSmall ? kTiledDimSmall : kTiledDimLarge; }

struct TiledParams {
  // [B,H,T,D] row-major in the storage dtype; (b,h) slice bh = b*H + h.
  const void *q, *k, *v, *dout;
  void *o, *dq, *dk, *dv;
  // Saved by the forward: KVr = round(Kf^T V) [BH][DKP][DVP] (storage dtype, padded dims) and
  // kmean = mean_j Kf_j [BH][DKP] (fp32).
  void* kv;
  float* kmean;
  // Backward: dKVr = round(dKV) [BH][DKP][DVP] (storage dtype) and dkmean = Qf^T dz [BH][DKP] (fp32).
  void* dkv;
  float* dkmean;
  // Split-T reduction workspace: partial sums [BH][splits][DKP][DVP + 8] (fp32) and one arrival
  // counter per head (zero between launches: the last block of a head resets it).
  float* partial;
  unsigned* counter;
  int BH, Tq, Tk, Dk, Dv;
  int fm;          // FeatureMapId
  int norm;        // variant: 1 norm, 0 simple
  float scale;     // simple's scale
  float tk, inv_tk;
  int splits, split_tiles;  // reduction kernels: blocks per head, tiles per block
  int chunk_tiles;          // row kernels: tiles per block
  bool pdl;                 // launch the second kernel of a pass with programmatic dependent launch
  // The one-launch forward (bidir_tiled_fused.cu): `cluster` CTAs per head (a thread block
  // cluster: 1, 2, 4 or 8), each taking an equal share of the K/V tiles and of the Q rows, in
  // slots of q_rows rows; l2_evict_first: streamed inputs carry the L2 evict_first policy.
  int cluster, q_rows;
  // heads_per_cluster (the TMA forward): the launch's thread block clusters hold this many heads'
  // CTAs (cluster * heads_per_cluster CTAs, all in one GPC), so that the hardware places the same
  // number of CTAs in every GPC: a GPC's SMs share its bandwidth, and with one head per cluster
  // the CTAs of the fuller GPCs finish last (session 12's timeline). 1: a cluster per head.
  int heads_per_cluster;
  int fused_warps;  // 8; 4 (an A/B option) where Dk <= 64
  bool l2_evict_first;
  // The TMA-fed one-launch forward (bidir_tiled_tma.cu): configuration (0: 8 warps, two CTAs per
  // SM; 1: 16 warps, one CTA per SM; 2: 8 warps, one CTA per SM) and whether O leaves by bulk
  // tensor stores (else 16-byte stores).
  int tma_cfg;
  bool o_tma;
  int order;  // the TMA forward's walk: bit 1 rank-strided tiles (else blocks), bit 0 rotated start
  // zmma (the one-launch forwards): norm's z = Qf . kmean on tensor cores from kmean's three
  // storage-dtype terms in sKV's padding columns (output_slab_smem), else fp32 dots.
  bool zmma;
  // Diagnostics of the TMA forward only (ATTNBENCH_BIDIR_DIAG=1; o is then NOT the output): the math
  // is skipped (the state stays zero, each O slab is zero-filled), so the kernel times its data
  // movement alone.
  int diag;
  // early (the TMA forward): a warp releases a ring slot as soon as its fragments of the item are
  // in registers, before the math (else after it), so the slot refills while the warp computes.
  bool early;
  // release_defer (with early, the TMA forward): 0: a warp waits for its slot counter's atomic
  // before its next instruction; 1: in phase 1 the tile's products issue before the warp reads the
  // atomic's result (and refills the slot if it was the last reader); 2: also in phase 2, where the
  // result is read once the Q slab's map is applied (the default: session 10).
  int release_defer;
  // fence_late (focused, rows mode): the fence.proxy.async after the in-place K map runs just before
  // the warp's release of the slot instead of right after the map's writes (before the barrier;
  // late is the default: session 10).
  bool fence_late;
  // group_q (the TMA forward): a Q item is waited for and released by the warp group that computes
  // it only (else by every warp).
  bool group_q;
  // focused_rows (the TMA forward, focused): each K tile is mapped in place by the warp group that
  // reads its rows (every warp a few whole rows, then a named barrier of that group), else by one
  // warp per 16-row slab and a block barrier (bidir_tiled_fwd.cuh).
  bool focused_rows;
  // focused_pipe (with focused_rows): the group maps K tile i + 1 before its products of tile i,
  // and its barrier comes after them, so the map's latency overlaps the tensor work instead of
  // preceding it.
  bool focused_pipe;
  // focused_fold (bf16 only; forward, Q side): a query row's focused features are round(u), u = y^3,
  // and its factor r = ||y|| / ||u|| multiplies the row's fp32 products instead (phi(q) r^-1 is
  // round(u) where the exact map is round(r u); one pass over the fragments instead of two). bf16
  // has fp32's exponent range, so u = y^3 (y >= 1e-6) neither under- nor overflows where r u would
  // not; fp16 keeps the exact two-pass map.
  bool focused_fold;
  // focused_pk (bf16 only; forward): focused's K map in phase 1 (the in-place rows of 8, where
  // Dk is the padded width) and the Q-side fold on whole slabs on packed bf16x2 pairs, with the
  // row norms on tensor cores (bidir_tiled_maps.cuh, focused_pk): 0 = the fp32 maps, 1 = packed
  // with u = round(round(y^2) y) and phi = round(u round(r)), 2 = packed with u and phi rounded
  // once (an fma split each).
  int focused_pk;
  // bwd_q_ws (the backward's query kernel): warp-specialized (reduction warps and slab warps, double
  // buffers between them, no block barrier in the loop) instead of every warp doing both between
  // block barriers (bidir_tiled_bwd.cu).
  bool bwd_q_ws;
  // p2_wg (the TMA forward, bf16, Dk = Dv = 64, bulk O stores, no diagnostics; the default there):
  // phase 2 on wgmma, a warpgroup's 64 Q rows at once with KVr^T and kmean's terms as B
  // (bidir_tiled_wg.cuh), in each map's default configuration (identity, relu, elu1: 1x16;
  // focused: 2x8); elsewhere ignored.
  bool p2_wg;
  // p1_wg (with p2_wg, focused in rows mode; the default there): phase 1 on wgmma as well (bidir_tiled_wg.cuh
  // state_tile_wg: the in-place mapped K tile and V straight from the ring slot).
  bool p1_wg;
  // o_stsm (with p2_wg): the O slab staged by stmatrix (4 instructions a warp and slab) instead of
  // 16 4-byte shared stores.
  bool o_stsm;
  // kvt (with p2_wg): how the state exchange moves the partials and writes KVr^T (kKvt* below).
  int kvt;
};

// Tensor maps (CUtensorMap, 128 bytes each, opaque here) of q, k, v and o for the TMA forward:
// [BH][T][D] in boxes of 64 columns x rows with the 128-byte swizzle (q: q_rows, k and v: kTiledRows, o: 16).
struct alignas(64) TiledMaps {
  alignas(64) unsigned char q[128];
  alignas(64) unsigned char k[128];
  alignas(64) unsigned char v[128];
  alignas(64) unsigned char o[128];
};

enum class TiledKernel { state, output, query, query_ws, key };

// Blocks of one kernel resident per SM (occupancy API), for the launch plan (Dk, Dv unpadded).
int tiled_fwd_blocks_per_sm(TiledKernel k, Dtype dt, int Dk, int Dv);  // state, output
int tiled_bwd_blocks_per_sm(TiledKernel k, Dtype dt, int Dk, int Dv);  // query, query_ws, key

// Launch one kernel on `s` (the grid is (splits or chunks, BH)); every launch is checked.
void launch_tiled_state(const TiledParams& p, Dtype dt, cudaStream_t s);   // KVr, kmean
void launch_tiled_output(const TiledParams& p, Dtype dt, cudaStream_t s);  // o
void launch_tiled_query(const TiledParams& p, Dtype dt, cudaStream_t s);   // dq, dKVr, dkmean
void launch_tiled_key(const TiledParams& p, Dtype dt, cudaStream_t s);     // dk, dv

// The one-launch forward: grid (cluster, BH) in clusters of `cluster` CTAs; o (the state stays in
// shared memory). For the plan: CTAs resident per SM, the most Q rows a slot holds, and whether
// clusters of `cluster` CTAs can be resident on this device.
struct FusedInfo {
  int blocks_per_sm = 0, max_q_rows = 0;
  bool cluster_fits = false;
  int max_clusters = 0;  // the TMA forward: clusters of `cluster` CTAs resident at once (0: unknown)
};
void launch_tiled_fused(const TiledParams& p, Dtype dt, cudaStream_t s);
FusedInfo tiled_fused_info(Dtype dt, int Dk, int Dv, int cluster, int warps);
// The same forward fed by bulk tensor copies (sm_90): the maps from encode_tiled_maps (false where
// the driver cannot make them; p's pointers, dims, BH and q_rows set).
void launch_tiled_tma(const TiledParams& p, const TiledMaps& m, Dtype dt, cudaStream_t s);
FusedInfo tiled_tma_info(Dtype dt, int Dk, int Dv, int cluster, int cfg);
bool encode_tiled_maps(TiledMaps& m, const TiledParams& p, Dtype dt);

}  // namespace attnbench::kernels::bidir
