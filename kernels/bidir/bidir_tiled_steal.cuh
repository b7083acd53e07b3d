// bidir tiled forward (the TMA kernel, bidir_tiled_tma.cu): phase-2 work stealing across heads.
//
// Why. A static split ends with its slowest CTA, and the SMs of an H200 do not stream equally
// fast: at B=8 H=16 D=64 T=4096 identity's CTAs (one an SM, equal work) end between 60 and 75 us,
// and the end time belongs to the SM (session 12's timeline, ATTNBENCH_BIDIR_DIAG=32). Moving Q
// items from slow CTAs to fast ones lets the kernel end near the mean.
//
// What moves. Phase 1 (the state of a head) stays static. After the exchange every CTA publishes
// its head's state (sKV then skm, exactly as they lie in shared memory: the "blob") to global
// memory and sets the ready bit of its pool word. A CTA's Q share is its first SLOTS items
// (static, as without stealing: the ring's first refills after phase 1 may be issued by any warp)
// and a pool of the rest. The pool word of CTA u counts the items claimed from its pool (low 31
// bits; bit 31: u's blob is ready). Every claim is one atomic add of the chunk size K to a pool
// word, by the owner (its own pool first) or by a thief (any ready pool), so an item is claimed
// once and nobody waits for anybody: a pool that is not ready is skipped, never waited for.
//
// How it enters the ring. The ring's items past the static ones are chosen when their slot is
// refilled (issue time, SLOTS items ahead of their use) by the warp that refills it, from a small
// claim machine per warp group in shared memory (ClaimState). The refills of one group's items
// happen in the order of their ring indices (each refill of index x happens before the last
// release of index x + QG - SLOTS, which is the group's next refill), so the group's machine is
// advanced by one warp at a time, in index order. What the machine chose is in the slot's
// descriptor (StealDesc, written before the slot's mbarrier arrive, read after its wait):
//   - a Q item of head h (the TMA load of its rows as for an own item);
//   - the state of head h (a 1-D bulk copy of h's blob into the slot), before the group's first
//     item of h: the group's warps meet at a named barrier (all done with the old state), copy the
//     blob into the group's state buffer (sKV itself with one group; a buffer per group with two,
//     since the other group may still be on its own items), meet again, and go on with h;
//   - the end: no item is left that this group could take; its warps leave the loop.
// The last CTA to finish zeroes every pool word (and the count of finished CTAs), so each launch
// starts from zero with no memset.
#pragma once

#include "bidir_tiled_common.cuh"

namespace attnbench::kernels::bidir {

// A pool word: the items claimed (low 30 bits), bit 30: a thief took some (the owner then does
// not steal in turn, with kStealNoCascade), bit 31: the blob is ready.
constexpr unsigned kPoolReady = 0x80000000u, kPoolRobbed = 0x40000000u, kPoolCount = 0x3fffffffu;
// steal_next's `sizes`: chunk | own_chunk << 9 | min_rem << 18 (each below 512) | these flags.
constexpr int kStealGuided = 1 << 27;     // a thief takes half the victim's unclaimed items (at least chunk)
constexpr int kStealNoCascade = 1 << 28;  // a robbed owner does not steal
__host__ __device__ constexpr int steal_sizes(int chunk, int own_chunk, int min_rem, bool guided, bool no_cascade) {
  return chunk | own_chunk << 9 | min_rem << 18 | (guided ? kStealGuided : 0) | (no_cascade ? kStealNoCascade : 0);
}

// The state's bytes: KVr [DKP][DVP + 8] in the storage dtype (kmean's terms in the padding
// columns) then kmean [DKP] fp32; the TMA kernel keeps sKV and skm adjacent in this order.
constexpr int steal_blob_bytes(int dkp, int dvp) { return dkp * (dvp + 8) * 2 + dkp * 4; }
template <int DKP, int DVP>
constexpr int kStealBlobBytes = steal_blob_bytes(DKP, DVP);

// A slot's descriptor for the items chosen at issue time: head >= 0: Q item `item` of that head;
// kDescState: the state of head `item` (cta `aux`'s blob); kDescEnd: the group's end.
constexpr int kDescState = -2, kDescEnd = -1;
struct StealDesc {
  int head, item;
};

// A warp group's claim machine (shared memory): the chunk being issued (items [next, end) of
// cta's pool), the head whose state the group's consumers hold, and the mode.
// own_last (a test mode, TiledParams::diag 64): steal first, then the own pool, so that nearly
// every pool item runs in another CTA than its owner.
// The chunk: items base + stride * k of CTA cta's pool (head `head`), k in [next, end).
struct ClaimState {
  int cta, head, base, stride, next, end;
  int loaded, mode, tries, own_last, pad[2];  // mode: 0 own pool, 1 stealing, 2 done
};

// The Q items of the CTAs of one head (the TMA kernel's share, any rank; stealing needs the
// unrotated walks): nqs items of q_rows, split over C ranks in blocks (or rank-strided with
// `ilv`); a rank's j-th item is first(rank) + stride() * j.
// A rank's first fixed(rank, SLOTS) items are its own (static); the rest are its pool: all past
// the first SLOTS, or with `tail` > 0 only its last `tail` items (but never one of the first SLOTS).
struct QShare {
  int nqs, C, qper, tail;
  bool ilv;
  __device__ __forceinline__ int fixed(int rank, int slots) const {
    const int n = count(rank);
    return tail > 0 && n - tail > slots ? n - tail : slots;
  }
  __device__ __forceinline__ int count(int rank) const {
    const int qs0 = min(rank * qper, nqs);
    return ilv ? (rank < nqs ? (nqs - rank + C - 1) / C : 0) : min(qs0 + qper, nqs) - qs0;
  }
  __device__ __forceinline__ int first(int rank) const { return ilv ? rank : min(rank * qper, nqs); }
  __device__ __forceinline__ int stride() const { return ilv ? C : 1; }
};

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
__device__ __forceinline__ unsigned steal_atomic_add(unsigned* p, unsigned v) {
  unsigned old;
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;\n" : "=r"(old) : "l"(p), "r"(v) : "memory");
  return old;
}
__device__ __forceinline__ unsigned steal_load(const unsigned* p) {
  unsigned v;
  asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void steal_fence_proxy_global() { asm volatile("fence.proxy.async.global;\n" ::: "memory"); }
// A plain arrival (no transaction bytes): completes the slot's phase with no data.
__device__ __forceinline__ void mbar_arrive_plain(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
// `bytes` (a multiple of 16) from global to shared memory by one bulk copy completing on `bar`.
__device__ __forceinline__ void bulk_copy_g2s(void* dst, const void* src, unsigned bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(smem_addr(dst)),
               "l"(src), "r"(bytes), "r"(smem_addr(bar))
               : "memory");
}

// One warp: this CTA's state (the blob at `state` in shared memory) to cta's slot of the global
// blobs, then the ready bit of cta's pool word (a release: a thief's acquiring claim sees the blob).
template <int BYTES>
__device__ __forceinline__ void steal_publish(const void* state, void* blobs, unsigned* pool, int cta, int lane) {
  static_assert(BYTES % 16 == 0, "bulk copies move multiples of 16 bytes");
  const uint4* src = static_cast<const uint4*>(state);
  uint4* dst = reinterpret_cast<uint4*>(static_cast<unsigned char*>(blobs) + static_cast<int64_t>(cta) * BYTES);
  for (int e = lane; e < BYTES / 16; e += 32) dst[e] = src[e];
  __syncwarp();
  if (lane == 0) {
    __threadfence();
    steal_fence_proxy_global();  // thieves read the blob by bulk copies (the async proxy)
    asm volatile("red.release.gpu.global.or.b32 [%0], %1;\n" ::"l"(pool + cta), "r"(kPoolReady) : "memory");
  }
}

// Lane 0 of the warp refilling a slot: the group's next item where its chunk has one and the
// group holds that head's state (the common case, inlined at the refill); false: steal_next.
__device__ __forceinline__ bool steal_fast(ClaimState* cs, StealDesc* d) {
  const int next = cs->next;
  if (next >= cs->end || cs->head != cs->loaded) return false;
  cs->next = next + 1;
  *d = StealDesc{cs->head, cs->base + cs->stride * next};
  return true;
}

// One warp: the ready pool (of the 256 CTAs from `cta` + 1 on, cyclically: with fewer, every CTA,
// the own last) with the most unclaimed items, at least min_rem, or -1 where none has that many. psize(u): the size of
// u's pool. Every lane gets the answer.
template <class PoolSize>
__device__ __forceinline__ int steal_pick(const unsigned* pool, int ncta, int cta, int lane, int min_rem, PoolSize psize, int* rem_out) {
  const int w = min(ncta, 256);
  int best_rem = 0, best_u = -1;
#pragma unroll
  for (int t = 0; t < 8; ++t) {
    const int k = lane + 32 * t;
    if (k < w) {
      int u = cta + 1 + k;
      if (u >= ncta) u -= ncta;
      const unsigned word = steal_load(pool + u);
      const int rem = (word & kPoolReady) ? psize(u) - static_cast<int>(word & kPoolCount) : 0;
      if (rem >= min_rem && rem > best_rem) best_rem = rem, best_u = u;
    }
  }
  const int top = static_cast<int>(__reduce_max_sync(~0u, static_cast<unsigned>(best_rem)));
  *rem_out = top;
  if (top <= 0) return -1;
  const unsigned who = __ballot_sync(~0u, best_rem == top);
  return __shfl_sync(~0u, best_u, __ffs(who) - 1);
}

// The whole warp: the next descriptor of a warp group's claim machine `cs` (CTA `cta` of ncta;
// pools of share's items past the first SLOTS), where steal_fast has none. A new chunk comes from
// the own pool while it lasts (own_chunk items), then from the fullest ready pool (chunk items);
// the head's state goes first where the group holds another's. sizes: steal_sizes() (one argument,
// for the caller's registers). Not inlined: it runs
// once a chunk, off the hot loop, whose registers it must not raise (session 13: inlined at the
// refills, it made the 128-register kernels spill).
template <int SLOTS>
__device__ __noinline__ StealDesc steal_next(ClaimState* cs, unsigned* pool, int sizes, int cta, int ncta, QShare share, int lane) {
  const int C = share.C, chunk = sizes & 511, own_chunk = sizes >> 9 & 511, min_rem = sizes >> 18 & 511;
  auto psize = [&](int u) { return max(share.count(u % C) - share.fixed(u % C, SLOTS), 0); };
  ClaimState c = *cs;
  while (c.next >= c.end && c.mode != 2) {  // a new chunk
    int rem = 0;
    const int v = c.mode == 0 ? cta : steal_pick(pool, ncta, cta, lane, min_rem, psize, &rem);
    if (v < 0) {
      c.mode = c.own_last && c.mode == 1 ? 0 : 2;
      continue;
    }
    const int k = c.mode == 0 ? own_chunk : (sizes & kStealGuided) ? max(chunk, (rem + 1) / 2) : chunk;
    unsigned old = 0;
    if (lane == 0) {
      old = steal_atomic_add(pool + v, static_cast<unsigned>(k));
      if (c.mode == 1 && (old & kPoolCount) < static_cast<unsigned>(psize(v))) atomicOr(pool + v, kPoolRobbed);
    }
    old = __shfl_sync(~0u, old, 0);
    const int got = static_cast<int>(old & kPoolCount), ps = psize(v);
    if (got < ps) {
      c.cta = v, c.head = v / C, c.base = share.first(v % C) + share.stride() * share.fixed(v % C, SLOTS), c.stride = share.stride();
      c.next = got, c.end = min(got + k, ps), c.tries = 0;
    } else if (c.mode == 0) {
      c.mode = c.own_last || ((sizes & kStealNoCascade) && (old & kPoolRobbed)) ? 2 : 1;
    } else if (++c.tries >= 4) {
      c.mode = c.own_last ? 0 : 2;  // the thief lost four races in a row: what is left is nearly done
    }
  }
  StealDesc d{kDescEnd, 0};
  if (c.mode != 2 && c.head != c.loaded) {
    d = StealDesc{kDescState, c.cta}, c.loaded = c.head;
  } else if (c.mode != 2) {
    d = StealDesc{c.head, c.base + c.stride * c.next}, ++c.next;
  }
  __syncwarp();
  if (lane == 0) *cs = c;
  __syncwarp();
  return d;
}

// Thread 0 of each CTA at its end (after a block barrier): the last one zeroes the pool words and
// the finished count (pool[ncta]) for the next launch.
__device__ __forceinline__ void steal_finish(unsigned* pool, int ncta) {
  __threadfence();
  if (atomicAdd(pool + ncta, 1u) == static_cast<unsigned>(ncta - 1)) {
    for (int u = 0; u <= ncta; ++u) pool[u] = 0u;
    __threadfence();
  }
}
#endif

}  // namespace attnbench::kernels::bidir
