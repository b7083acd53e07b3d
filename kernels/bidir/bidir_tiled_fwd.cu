// bidir tiled forward: two kernels, one per phase.
//
// Notation (one (b,h) slice): Q [Tq,Dk], K [Tk,Dk], V [Tk,Dv]; Qf = phi(Q), Kf = phi(K) rounded to
// the storage dtype (they are MMA operands); all products accumulate in fp32.
//   phase 1, state:  KV = Kf^T V [Dk,Dv] and ksum = Kf^T 1 [Dk], reduced over Tk.
//                    KVr = round(KV) (an MMA operand of phase 2), kmean = ksum / Tk (fp32).
//   phase 2, output: simple: o_i = round(scale Qf_i KVr)
//                    norm:   z_i = Qf_i . kmean + 1e-6,  o_i = round(Qf_i KVr * ((1 / Tk) / z_i))
// (the same roundings as the CPU emulation, reference/bidir.cpp; the row scale is one division per
// row, not one per element).
//
// Phase 1 splits Tk over `splits` blocks per head; each block streams its tiles of K and V and
// accumulates [KV | ksum] += Kf^T [V | 1] with the tensor cores (state_tile: phi on the A
// fragments; the key sums are the MMA's extra n-tile, a B fragment of ones). The blocks of a head
// then meet in split_reduce().
// Phase 2 streams 64-row tiles of Q; each warp owns a 16-row slab (output_slab: phi on the A
// fragments, z from the fragments, O = Qf KVr, the row scale, 16-byte stores). Phase 2 is launched
// as a programmatic dependent of phase 1: it loads its first Q tiles while phase 1 finishes, then
// waits for the state. The one-launch forward (bidir_tiled_fused.cu) runs the same two steps in
// one kernel; this pair remains for the backward's untimed state and for comparison.
#include "bidir_tiled_fwd.cuh"
#include "cuda_check.h"

namespace attnbench::kernels::bidir {
namespace {

// ---- phase 1: KV = Kf^T V, ksum = Kf^T 1 ---------------------------------------------------------

template <int DKP, int DVP>
struct StateSmem {
  using Tr = Traits<DKP, DVP>;
  static constexpr int k_elems = Tr::BM * Tr::KST, v_elems = Tr::BM * Tr::VST;
  static constexpr int bytes = Tr::STAGES * (k_elems + v_elems) * 2;
};

template <class T, int DKP, int DVP>
__global__ void __launch_bounds__(Traits<DKP, DVP>::RED_THREADS) state_kernel(const TiledParams p) {
  using Tr = Traits<DKP, DVP>;
  using Sm = StateSmem<DKP, DVP>;
  constexpr int NTHR = Tr::RED_THREADS, BM = Tr::BM;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sK = reinterpret_cast<T*>(smem);          // [STAGES][BM][KST]
  T* sV = sK + Tr::STAGES * Sm::k_elems;       // [STAGES][BM][VST]
  pdl_launch_dependents();

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int split = blockIdx.x, bh = blockIdx.y;
  const int ntiles = (p.Tk + BM - 1) / BM;
  const int t0 = split * p.split_tiles, t1 = min(t0 + p.split_tiles, ntiles);
  const T* k = static_cast<const T*>(p.k) + static_cast<int64_t>(bh) * p.Tk * p.Dk;
  const T* v = static_cast<const T*>(p.v) + static_cast<int64_t>(bh) * p.Tk * p.Dv;

  const uint64_t pol = l2_policy(p.l2_evict_first);
  auto load = [&](int t) {
    const int stage = (t - t0) % Tr::STAGES;
    load_rows_async_pol<DKP, Tr::KST, NTHR>(sK + stage * Sm::k_elems, k, t * BM, BM, p.Tk, p.Dk, tid, pol);
    load_rows_async_pol<DVP, Tr::VST, NTHR>(sV + stage * Sm::v_elems, v, t * BM, BM, p.Tk, p.Dv, tid, pol);
  };
#pragma unroll
  for (int s = 0; s < Tr::STAGES - 1; ++s) {
    if (t0 + s < t1) load(t0 + s);
    cp_async_commit();
  }

  float acc[Tr::NV + 1][4] = {};  // rows 16*warp.. of [KV | ksum]; tile NV: the key sums
  const uint32_t ones = lane / 4 == 0 ? pack2<T>(1.0f, 1.0f) : 0u;  // B fragment: column 0 all ones
  for (int t = t0; t < t1; ++t) {
    cp_async_wait<Tr::STAGES - 2>();
    __syncthreads();  // tile t visible to all; every warp is done with tile t-1
    if (t + Tr::STAGES - 1 < t1) load(t + Tr::STAGES - 1);
    cp_async_commit();
    T* cK = sK + ((t - t0) % Tr::STAGES) * Sm::k_elems;
    const T* cV = sV + ((t - t0) % Tr::STAGES) * Sm::v_elems;
    if (p.fm == kFocused) {  // Kf = phi(K) in place: the row norms need whole rows
      focused_tile_inplace<T, DKP, DVP>(cK, t * BM, p, warp, lane);
      __syncthreads();
    }
    if (warp < Tr::RED_WARPS) state_tile_any<T, DKP, DVP, BM / 16>(acc, cK, cV, t * BM, p, warp, 0, lane, ones);
  }

  T* kv = static_cast<T*>(p.kv) + static_cast<int64_t>(bh) * DKP * DVP;
  float* kmean = p.kmean + static_cast<int64_t>(bh) * DKP;
  split_reduce<DKP, Tr::NCOL, Tr::NV + 1, NTHR>(p, acc, bh, split, DVP + (p.norm ? 1 : 0), [&](int d, int e, float s) {
    if (e < DVP) kv[d * DVP + e] = from_f32<T>(s);  // KVr
    else kmean[d] = s * p.inv_tk;
  });
}

// ---- phase 2: o = Qf KVr, scaled -----------------------------------------------------------------

template <int DKP, int DVP>
struct OutputSmem {
  using Tr = Traits<DKP, DVP>;
  static constexpr int q_elems = Tr::BM * Tr::KST;
  static constexpr int q_off = 0;
  static constexpr int kv_off = q_off + Tr::Q_STAGES * q_elems * 2;       // KVr [DKP][VST]
  static constexpr int o_off = kv_off + DKP * Tr::VST * 2;              // O staging [BM][VST]
  static constexpr int km_off = o_off + Tr::BM * Tr::VST * 2;           // kmean [DKP] fp32
  static constexpr int bytes = km_off + DKP * 4;
};

template <class T, int DKP, int DVP>
__global__ void __launch_bounds__(Traits<DKP, DVP>::ROW_THREADS) output_kernel(const TiledParams p) {
  using Tr = Traits<DKP, DVP>;
  using Sm = OutputSmem<DKP, DVP>;
  constexpr int NTHR = Tr::ROW_THREADS, BM = Tr::BM;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem + Sm::q_off);
  T* sKV = reinterpret_cast<T*>(smem + Sm::kv_off);
  T* sO = reinterpret_cast<T*>(smem + Sm::o_off);
  float* skm = reinterpret_cast<float*>(smem + Sm::km_off);

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int bh = blockIdx.y;
  const int ntiles = (p.Tq + BM - 1) / BM;
  const int t0 = blockIdx.x * p.chunk_tiles, t1 = min(t0 + p.chunk_tiles, ntiles);
  const T* qg = static_cast<const T*>(p.q) + static_cast<int64_t>(bh) * p.Tq * p.Dk;
  T* og = static_cast<T*>(p.o) + static_cast<int64_t>(bh) * p.Tq * p.Dv;

  // Each warp loads, transforms and stores only its own 16-row slab of every tile.
  const uint64_t pol = l2_policy(p.l2_evict_first);
  auto load = [&](int t) {
    T* slab = sQ + ((t - t0) % Tr::Q_STAGES) * Sm::q_elems + warp * 16 * Tr::KST;
    load_rows_async_pol<DKP, Tr::KST, 32>(slab, qg, t * BM + warp * 16, 16, p.Tq, p.Dk, lane, pol);
  };
#pragma unroll
  for (int s = 0; s < Tr::Q_STAGES - 1; ++s) {
    if (t0 + s < t1) load(t0 + s);
    cp_async_commit();
  }

  pdl_wait();  // KVr and kmean come from the state kernel
  {
    const T* kv = static_cast<const T*>(p.kv) + static_cast<int64_t>(bh) * DKP * DVP;
    for (int idx = tid; idx < DKP * DVP / 8; idx += NTHR) {
      const int d = idx / (DVP / 8), c = idx % (DVP / 8);
      *reinterpret_cast<uint4*>(sKV + d * Tr::VST + c * 8) = *reinterpret_cast<const uint4*>(kv + d * DVP + c * 8);
    }
    for (int d = tid; d < DKP; d += NTHR) skm[d] = p.norm ? p.kmean[static_cast<int64_t>(bh) * DKP + d] : 0.0f;
  }
  __syncthreads();

  T* oslab = sO + warp * 16 * Tr::VST;
  for (int t = t0; t < t1; ++t) {
    cp_async_wait<Tr::Q_STAGES - 2>();
    __syncwarp();
    if (t + Tr::Q_STAGES - 1 < t1) load(t + Tr::Q_STAGES - 1);
    cp_async_commit();
    const T* slab = sQ + ((t - t0) % Tr::Q_STAGES) * Sm::q_elems + warp * 16 * Tr::KST;
    output_slab<T, DKP, DVP>(slab, oslab, sKV, skm, t * BM + warp * 16, p, og, lane);
  }
}

// ---- launch ------------------------------------------------------------------------------------

template <class T, int DKP, int DVP>
void launch_state_typed(const TiledParams& p, cudaStream_t s) {
  constexpr int bytes = StateSmem<DKP, DVP>::bytes;
  static const bool allowed = (allow_smem(state_kernel<T, DKP, DVP>, bytes), true);
  (void)allowed;
  state_kernel<T, DKP, DVP><<<dim3(p.splits, p.BH), Traits<DKP, DVP>::RED_THREADS, bytes, s>>>(p);
  CUDA_CHECK_LAUNCH("bidir tiled state_kernel");
}

template <class T, int DKP, int DVP>
void launch_output_typed(const TiledParams& p, cudaStream_t s) {
  constexpr int bytes = OutputSmem<DKP, DVP>::bytes;
  static const bool allowed = (allow_smem(output_kernel<T, DKP, DVP>, bytes), true);
  (void)allowed;
  const int ntiles = (p.Tq + kTiledRows - 1) / kTiledRows;
  launch_pdl(output_kernel<T, DKP, DVP>, dim3((ntiles + p.chunk_tiles - 1) / p.chunk_tiles, p.BH),
             dim3(Traits<DKP, DVP>::ROW_THREADS), bytes, s, p.pdl, p);
  CUDA_CHECK_LAUNCH("bidir tiled output_kernel");
}

template <class T, int DKP, int DVP>
int blocks_per_sm_typed(TiledKernel k) {
  if (k == TiledKernel::state) {
    return resident_blocks(state_kernel<T, DKP, DVP>, Traits<DKP, DVP>::RED_THREADS, StateSmem<DKP, DVP>::bytes);
  }
  return resident_blocks(output_kernel<T, DKP, DVP>, Traits<DKP, DVP>::ROW_THREADS, OutputSmem<DKP, DVP>::bytes);
}

}  // namespace

void launch_tiled_state(const TiledParams& p, Dtype dt, cudaStream_t s) {
  BIDIR_TILED_DISPATCH(dt, p.Dk, p.Dv, launch_state_typed, p, s);
}

void launch_tiled_output(const TiledParams& p, Dtype dt, cudaStream_t s) {
  BIDIR_TILED_DISPATCH(dt, p.Dk, p.Dv, launch_output_typed, p, s);
}

int tiled_fwd_blocks_per_sm(TiledKernel k, Dtype dt, int Dk, int Dv) {
  BIDIR_TILED_DISPATCH(dt, Dk, Dv, blocks_per_sm_typed, k);
}

}  // namespace attnbench::kernels::bidir
