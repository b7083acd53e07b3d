// The state exchange without cluster barriers or remote loads (TiledParams::kvt kKvtPush): the
// TMA forward's wgmma kernels (bidir_tiled_tma.cu) when a head is split over a cluster of C = 2
// CTAs, as in focused's 2x8 configuration.
//
// The sums are cluster_state_exchange's (bidir_tiled_fwd.cuh): CTA `rank` owns the state rows
// [32 rank, 32 rank + 32), forms them from the two CTAs' partials, rounds KVr = round(KV), forms
// kmean = ksum / Tk, and every CTA ends with the whole KVr^T (kvt_offset's layout). The transport
// differs. There, after a cluster barrier each CTA loads the partner's partial of its rows from the
// partner's shared memory, and a second cluster barrier ends the exchange; at T = 4096 focused's
// exchange took 5.4 us against elu1's 1.8 (one CTA a head), of which the first barrier 2.0-2.3,
// the remote loads ~1.4 and the last barrier 0.45 (session 21's timeline). Here each CTA stores
// what the other needs into the other's shared memory (st.async) and waits only for the bytes
// it receives (the mbarriers xbar[0], xbar[1]):
//   1. the CTA's partial: warp groups KG - 1 .. 1 store / add theirs in order, then group 0 adds
//      its own (each row's sum of the groups in that fixed order). Owned rows go into red; the
//      partner's rows, by st.async, into the partner's red, row d at row d ^ 32 (the rows the
//      partner does not own, which it leaves free), completing on the partner's xbar[0]:
//      kPushPartialBytes, 32 rows of 64 sums and the key sums;
//   2. wait on xbar[0]: the partner's partial of the owned rows has arrived;
//   3. the owned rows, own + partner (two terms: the same value in either order), into KVr^T by
//      kvt_owned_stsm, then those 16-byte chunks into the partner's sKV by st.async on its
//      xbar[1] (kPushKvtBytes);
//   4. (the caller) wait on xbar[1] (mbar_wait<true>, then the async-proxy fence) before phase
//      2's first wgmma reads sKV: after the first Q item's map, so the wait overlaps it.
// Between the groups (step 1) the partner's rows wait in sKV past the ones tile (KVr^T rows 8..,
// 8 KB = 32 rows x 64 floats) and their key sums in skm. Both are free there: phase 1 reads only
// the ones tile, nothing reads skm on the wgmma path, and the partner writes this CTA's sKV (step
// 3) only once it has received this CTA's partial, which is sent after these reads.
// The caller: xbar[0], xbar[1] initialized with one arrival each and the expect_tx of their bytes,
// fenced (fence.mbarrier_init) and published by hopper::cluster_arrive() after the block barrier
// that follows the init; this function waits for that barrier phase (cluster_wait) before its
// first st.async. No CTA reads another's shared memory and each waits for every byte sent to it,
// so no cluster barrier is needed before a CTA exits.
// stamp(k) (TiledParams::diag 32): 7 once the partial is sent, 8 once the partner's has arrived,
// 9 once the KVr^T chunks are sent.
#pragma once

#include "bidir_tiled_fwd.cuh"
#include "hopper.cuh"

namespace attnbench::kernels::bidir {

constexpr unsigned kPushPartialBytes = 32 * (64 + 1) * 4;  // 32 rows x (64 sums + the key sum), fp32
constexpr unsigned kPushKvtBytes = kWgN * 4 * 16;          // KVr^T's 72 rows x 4 owned 16-byte chunks

template <class T, int NW, class Stamp = NoOp>
__device__ __forceinline__ void cluster_state_exchange_push(const float (&acc)[9][4], float* red, T* sKV, float* skm,
                                                            const TiledParams& p, int rank, int rank0, uint64_t* xbar,
                                                            Stamp stamp = {}) {
  using Tr = Traits<64, 64>;
  constexpr int NCOL = Tr::NCOL, NV = Tr::NV, KG = NW / Tr::RED_WARPS;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  const int wr = warp % Tr::RED_WARPS, grp = warp / Tr::RED_WARPS, partner = rank0 + (rank ^ 1);
  const bool own = wr / 2 == rank;  // this warp's rows 16 wr .. 16 wr + 15 are among the owned 32 rank ..
  float* wait_rows = reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(sKV) + 1024);  // [32][64]: the partner's rows
  // Where this warp's element (row, col) of the partial waits between the groups (col < 64: KV; col
  // 64: the key sum).
  auto at = [&](int row, int col) -> float* {
    if (own) return red + row * NCOL + col;
    return col < 64 ? wait_rows + (row % 32) * 64 + col : skm + row;
  };
  hopper::cluster_wait();  // the partner's mbarriers are initialized
  for (int gi = KG - 1; gi >= 1; --gi) {
    if (grp == gi) {
#pragma unroll
      for (int nt = 0; nt <= NV; ++nt) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = 16 * wr + g + 8 * h, col = nt * 8 + 2 * q;
          if (nt < NV) {
            float2* a = reinterpret_cast<float2*>(at(row, col));
            float2 v = make_float2(acc[nt][2 * h], acc[nt][2 * h + 1]);
            if (gi < KG - 1) v.x += a->x, v.y += a->y;
            *a = v;
          } else if (q == 0) {
            float* a = at(row, 64);
            *a = gi < KG - 1 ? acc[nt][2 * h] + *a : acc[nt][2 * h];
          }
        }
      }
    }
    __syncthreads();
  }
  if (grp == 0) {
    const uint32_t to_red = hopper::mapa(smem_addr(red), partner), to_bar = hopper::mapa(smem_addr(xbar), partner);
#pragma unroll
    for (int nt = 0; nt <= NV; ++nt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = 16 * wr + g + 8 * h, col = nt * 8 + 2 * q;
        if (nt == NV && q != 0) continue;
        float2 v = make_float2(acc[nt][2 * h], acc[nt][2 * h + 1]);
        if (KG > 1) {
          const float* a = at(row, nt < NV ? col : 64);
          v.x += a[0];
          if (nt < NV) v.y += a[1];
        }
        const uint32_t dst = to_red + static_cast<uint32_t>(((row ^ 32) * NCOL + (nt < NV ? col : 64)) * 4);
        if (nt < NV) {
          if (own) *reinterpret_cast<float2*>(red + row * NCOL + col) = v;
          else hopper::st_async(dst, __float_as_uint(v.x), __float_as_uint(v.y), to_bar);
        } else {
          if (own) red[row * NCOL + 64] = v.x;
          else hopper::st_async(dst, __float_as_uint(v.x), to_bar);
        }
      }
    }
  }
  __syncthreads();  // the owned rows are complete in red; the waiting rows were read
  stamp(7);
  hopper::mbar_wait<true>(&xbar[0], 0);
  stamp(8);
  const float* recv = red + (rank == 0 ? 32 : -32) * NCOL;  // the partner's partial: owned row d at red row d ^ 32
  kvt_owned_stsm<T, NW>(sKV, 32 * rank, 32, 2, [&](int r) { return r == 0 ? static_cast<const float*>(red) : recv; }, p, warp,
                        lane);
  hopper::fence_proxy_async();  // this thread's KVr^T writes, before wgmma reads them
  __syncthreads();
  const uint32_t to_kvt = hopper::mapa(smem_addr(sKV), partner), to_bar1 = hopper::mapa(smem_addr(&xbar[1]), partner);
  kvt_owned_chunks<NW>(sKV, 32 * rank, 32, [&](int off, const uint4& x) { hopper::st_async(to_kvt + off, x, to_bar1); });
  stamp(9);
}

}  // namespace attnbench::kernels::bidir
