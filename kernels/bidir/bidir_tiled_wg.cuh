// The TMA forward's phases on warpgroup MMA (wgmma, sm_90a; bidir_tiled_tma.cu's WG and WG1
// variants; Dk = Dv = 64, bf16; the defaults there: ATTNBENCH_BIDIR_P2 and ATTNBENCH_BIDIR_P1 in
// bidir_tiled.cu).
//
// Phase 2 (output_frags_wg). The math is output_frags' (bidir_tiled_fwd.cuh): o = rs Qf KVr with
// Qf = round(phi(Q)) and rs = (1/Tk) / (Qf . kmean + 1e-6) (norm) or scale (simple). Here one
// instruction of the warpgroup computes both, for the warpgroup's 64 query rows at once:
//   [Qf KVr | Qf [hi mid lo]] = Qf [KVr | kz]   (wgmma m64n72k16, four k-steps over Dk = 64)
// A = Qf comes from the registers of the map (the mma.sync A layout is wgmma's register-A layout:
// warp w of the warpgroup holds rows 16w..16w+15), B = [KVr | kz] from shared memory, where the
// state exchange writes it transposed, KVr^T [72 rows n][64 columns d] in the K-major 128-byte
// swizzled layout (kvt_offset): rows n < 64 are KVr's columns, rows 64, 65, 66 hold kmean as three
// storage-dtype terms hi + mid + lo (its fp32 value to ~24 bits, as output_scale's zmma path),
// rows 67..71 are zero. So accumulator columns 0..63 are Qf KVr and columns 64, 65, 66 the three
// partial dots of z; the row's z is their quad sum.
// Against output_frags (one warp, one slab, mma.sync): no ldmatrix of KVr (8 KB a warp and slab,
// now read by the tensor cores once for four slabs), no separate z product, 4 wgmma instead of
// 36 mma.sync. The accumulation order over Dk differs (wgmma's internal order), not the rounding
// points.
//
// Phase 1 (state_tile_wg for focused's in-place mapped K tile, state_tile_wg_rs for the maps
// applied in registers): the state [KV | ksum] += Kf^T [V | 1] of a tile's k-steps by the
// warpgroup that owns them, B = V straight from the ring slot; the same sums as state_tile.
#pragma once

#include "bidir_tiled_fwd.cuh"
#include "hopper.cuh"

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define BIDIR_WG_ARCH 0  // not an sm_90a target: the WG kernels trap (launched on sm_90 devices only: bidir_tiled.cu)
#else
#define BIDIR_WG_ARCH 1
#endif

namespace attnbench::kernels::bidir {

// The wgmma shapes the wrappers below issue (fp32 accumulators; T = bf16 or fp16), each one PTX
// instruction with the accumulate predicate p (0: d is overwritten). BIDIR_WG_ASM(ASM) expands
// ASM("bf16") or ASM("f16") by T; off sm_90a the wrappers trap (never launched there).
#if BIDIR_WG_ARCH
#define BIDIR_WG_ASM(ASM)                                \
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {      \
    ASM("bf16");                                         \
  } else {                                               \
    ASM("f16");                                          \
  }
#else
#define BIDIR_WG_ASM(ASM) __trap();
#endif
#define BIDIR_WG_HEAD(SHAPE, TY, PRED) \
  "{\n.reg .pred p;\nsetp.ne.b32 p, " PRED ", 0;\nwgmma.mma_async.sync.aligned." SHAPE ".f32." TY "." TY " "

// d[36] (+)= A[64 x 16] B[16 x 72]: A from registers, B K-major from shared memory.
template <class T>
__device__ __forceinline__ void wgmma_rs_n72(float (&d)[36], const uint32_t (&a)[4], uint64_t desc_b, int accumulate) {
#define BIDIR_WG_N72(TY)                                                                                               \
  asm volatile(BIDIR_WG_HEAD("m64n72k16", TY, "%41") "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, "    \
               "%14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, "      \
               "%34, %35}, {%36, %37, %38, %39}, %40, p, 1, 1, 0;\n}\n"                                                   \
               : ATTNBENCH_F32(d, 0), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35])                               \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate))
  BIDIR_WG_ASM(BIDIR_WG_N72)
#undef BIDIR_WG_N72
}

// d[4] (+)= A[64 x 16] B[16 x 8]: A M-major, B K-major, both from shared memory.
template <class T>
__device__ __forceinline__ void wgmma_ss_n8_ta(float (&d)[4], uint64_t desc_a, uint64_t desc_b, int accumulate) {
#define BIDIR_WG_N8(TY)                                                                                   \
  asm volatile(BIDIR_WG_HEAD("m64n8k16", TY, "%6") "{%0, %1, %2, %3}, %4, %5, p, 1, 1, 1, 0;\n}\n"        \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                            \
               : "l"(desc_a), "l"(desc_b), "r"(accumulate))
  BIDIR_WG_ASM(BIDIR_WG_N8)
#undef BIDIR_WG_N8
}

// d[4] (+)= A[64 x 16] B[16 x 8]: A from registers, B K-major from shared memory.
template <class T>
__device__ __forceinline__ void wgmma_rs_n8(float (&d)[4], const uint32_t (&a)[4], uint64_t desc_b, int accumulate) {
#define BIDIR_WG_RS8(TY)                                                                                    \
  asm volatile(BIDIR_WG_HEAD("m64n8k16", TY, "%9") "{%0, %1, %2, %3}, {%4, %5, %6, %7}, %8, p, 1, 1, 0;\n}\n" \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                              \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate))
  BIDIR_WG_ASM(BIDIR_WG_RS8)
#undef BIDIR_WG_RS8
}

#if BIDIR_WG_ARCH
// Phase 1's wgmma products of a tile issued: commit them, wait until they are complete, and keep
// the compiler from moving accesses of the state acc across that point.
__device__ __forceinline__ void wg_state_complete(float (&acc)[9][4]) {
  hopper::wgmma_commit();
  hopper::wgmma_wait<0>();
  hopper::fence_operands(reinterpret_cast<float(&)[36]>(acc[0][0]));
}
#endif

// Phase 1 on wgmma for a K tile mapped in place (focused's rows mode; the TMA kernel's WG1
// variant): the warpgroup of the RED_WARPS = 4 warps that own the tile's rows [16 ks0, 16 (ks0 +
// KSN)) adds Kf^T [V | 1] over those rows to its state, warp w holding rows d = 16w.. in acc's C
// layout (as state_tile):
//   acc[0..7] += Kf^T V      (m64n64k16 a k-step: A = Kf^T, the K tile read M-major; B = V, N-major)
//   acc[8]    += Kf^T ones   (m64n8k16: B = `ones`, K-major [8][64], row 0 all ones: column 0 the key sums)
// Both tiles are the slot's Sw128 boxes (TMA layout), 1024-byte aligned, 64 columns (Dk = Dv = 64).
// Returns once the products are complete (the slot may then be released).
template <class T, int KSN, int BM>
__device__ __forceinline__ void state_tile_wg(float (&acc)[9][4], const T* cK, const T* cV, const T* ones, int ks0) {
#if BIDIR_WG_ARCH
  hopper::wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < KSN; ++kk) {
    const int ks = ks0 + kk;
    const uint64_t da = hopper::desc_mn_major(smem_addr(cK), BM, ks);
    hopper::wgmma_ss<T, 64, 1, 1>(reinterpret_cast<float(&)[32]>(acc[0][0]), da, hopper::desc_mn_major(smem_addr(cV), BM, ks), 1);
    wgmma_ss_n8_ta<T>(acc[8], da, hopper::smem_desc(smem_addr(ones) + (ks & 3) * 32, 16, 1024), 1);
  }
  wg_state_complete(acc);
#else
  __trap();
#endif
}

// Phase 1 on wgmma for a map applied in registers (elu1, packed; the TMA kernel's WG1 variant):
// warp w of the warpgroup that owns the tile's k-steps [ks0, ks0 + KSN) loads its A = Kf^T fragments (rows d = 16 w.., ldmatrix.trans as state_tile), maps them (phi_kt_frag,
// masked where the tile is not whole), then
//   acc[0..7] += Kf^T V      (m64n64k16: B = V from the slot, N-major)
//   acc[8]    += Kf^T ones   (norm only; m64n8k16: B = `ones`, K-major [8][64], row 0 ones)
// V's fragments are no longer loaded by every warp (state_tile: 4 ldmatrix.x4 a k-step and warp).
// Returns once the products are complete.
template <class T, int FM, int KSN, int BM, class LK>
__device__ __forceinline__ void state_tile_wg_rs(float (&acc)[9][4], const T* cK, const T* cV, const T* ones, int row0,
                                                 const TiledParams& p, int warp, int ks0, int lane) {
  const int mi = lane / 8, r8 = lane % 8, g = lane / 4, q = lane % 4;
  const uint32_t ak = LK::lane(smem_addr(cK), (mi / 2) * 8 + r8, (mi % 2) * 8);
  uint32_t a[KSN][4];
#pragma unroll
  for (int kk = 0; kk < KSN; ++kk) ldsm_x4_t(a[kk], LK::at(ak, (ks0 + kk) * 16, warp * 16));
  const int tvalid = p.Tk - row0;
  const bool dok[2] = {warp * 16 + g < p.Dk, warp * 16 + g + 8 < p.Dk};
  if (row0 + BM <= p.Tk && p.Dk == 64) {
#pragma unroll
    for (int kk = 0; kk < KSN; ++kk) phi_kt_frag<T, FM, false>(a[kk], ks0 + kk, tvalid, dok, q);
  } else {
#pragma unroll
    for (int kk = 0; kk < KSN; ++kk) phi_kt_frag<T, FM, true>(a[kk], ks0 + kk, tvalid, dok, q);
  }
#if BIDIR_WG_ARCH
  hopper::wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < KSN; ++kk) {
    const int ks = ks0 + kk;
    hopper::wgmma_rs<T, 64, 1>(reinterpret_cast<float(&)[32]>(acc[0][0]), a[kk], hopper::desc_mn_major(smem_addr(cV), BM, ks), 1);
    if (p.norm) wgmma_rs_n8<T>(acc[8], a[kk], hopper::smem_desc(smem_addr(ones) + (ks & 3) * 32, 16, 1024), 1);
  }
  wg_state_complete(acc);
#else
  __trap();
#endif
}

// One warp's 16-row slab of the warpgroup's 64 (all four warps call it together): Qf = round(phi
// (Q)) in place (output_map), after_map(), the wgmma above, the row scale, then before_store()
// and o = round(rs acc) into oslab (p.o_stsm: by stmatrix). kvt: KVr^T in shared memory (kvt_offset's layout, 1024-byte
// aligned).
template <class T, class LO, class AfterMap, class BeforeStore>
__device__ __forceinline__ void output_frags_wg(uint32_t (&f)[4][4], T* oslab, const T* kvt, int row0, const TiledParams& p,
                                                int lane, AfterMap after_map, BeforeStore before_store) {
  float fr[2];
  output_map<T, 64, 64>(f, row0, p, lane, fr);
  after_map();
  float d[36];
#if BIDIR_WG_ARCH
  hopper::wgmma_fence();  // f was written by the map
#pragma unroll
  for (int kt = 0; kt < 4; ++kt) {
    wgmma_rs_n72<T>(d, f[kt], hopper::smem_desc(smem_addr(kvt) + 32 * kt, 16, 1024), kt > 0);
  }
  hopper::wgmma_commit();
  hopper::wgmma_wait<0>();
  hopper::fence_operands(d);
#else
  __trap();
#endif
  const int q = lane % 4;
  const bool fold = std::is_same_v<T, __nv_bfloat16> && p.fm == kFocused && p.focused_fold;
  float rs[2] = {p.scale, p.scale};
  if (p.norm) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {  // columns 64, 65 (quad lane 0) and 66 (quad lane 1): hi, mid, lo
      const float part = q == 0 ? d[32 + 2 * j] + d[33 + 2 * j] : (q == 1 ? d[32 + 2 * j] : 0.0f);
      rs[j] = p.inv_tk / (fr[j] * quad_sum(part) + kNormEps);
    }
  }
  if (fold) rs[0] *= fr[0], rs[1] *= fr[1];
  before_store();
  if (p.o_stsm) {
    output_store<T, LO, true>(reinterpret_cast<float(&)[4][4]>(d[0]), rs, oslab, 0, lane);
    output_store<T, LO, true>(reinterpret_cast<float(&)[4][4]>(d[16]), rs, oslab, 1, lane);
  } else {
    output_store<T, LO>(reinterpret_cast<float(&)[4][4]>(d[0]), rs, oslab, 0, lane);
    output_store<T, LO>(reinterpret_cast<float(&)[4][4]>(d[16]), rs, oslab, 1, lane);
  }
}

}  // namespace attnbench::kernels::bidir
