// bidir tiled kernels: the building blocks they share.
//
// Tiles. A pass streams its rows (of Q, dO or K, V) in tiles of BM = 64 rows through shared
// memory with cp.async (16-byte chunks, STAGES deep); rows past T and columns past D are zero-
// filled. Head dims are padded to DKP, DVP in {64, 128}; shared rows carry 8 extra elements
// (16 bytes), which keeps ldmatrix free of bank conflicts.
//
// Fragments (mma.sync m16n8k16, fp32 accumulate). With g = lane/4, q = lane%4:
//   A (16x16, row-major): a[0] = (row g, cols 2q..2q+1), a[1] = (row g+8, same cols),
//                         a[2] = (row g, cols 8+2q..), a[3] = (row g+8, cols 8+2q..)
//   B (16x8, "col"):      b[0] = (rows 2q..2q+1, col g), b[1] = (rows 8+2q.., col g)
//   C (16x8, fp32):       c[0], c[1] = (row g, cols 2q, 2q+1), c[2], c[3] = (row g+8, same cols)
// So the C tiles 2kt and 2kt+1 of a 16-row slab hold the same elements as the A fragment of
// k-step kt: A register i of k-step kt <-> C tile 2kt + i/2, elements 2(i%2), 2(i%2)+1.
// Row-wise work on a warp's 16-row slab (feature maps, in bidir_tiled_maps.cuh; row scales; the
// norms of `focused`) runs on these fragments: each thread holds rows g and g+8; a row's reduction
// is a sum over the 4 threads of a quad (two shuffles).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "bidir_common.cuh"
#include "bidir_tiled.h"
#include "cuda_check.h"
#include "storage.cuh"

namespace attnbench::kernels::bidir {

// ---- tile geometry ------------------------------------------------------------------------------

template <int DKP_, int DVP_>
struct Traits {
  static constexpr int DKP = DKP_, DVP = DVP_;
  static constexpr int BM = kTiledRows;
  static constexpr int KST = DKP + 8, VST = DVP + 8;      // shared row strides (elements)
  static constexpr int KT = DKP / 16, VT = DVP / 16;      // 16-wide k-steps over Dk, Dv
  static constexpr int NK = DKP / 8, NV = DVP / 8;        // 8-wide n-tiles over Dk, Dv
  static constexpr int NCOL = DVP + 8;                    // reduction output: Dv columns + 8 extra (key sums, dz)
  static_assert(NCOL % 4 == 0, "split_reduce reads the partial sums as float4");
  static constexpr int SLAB_WARPS = BM / 16;              // row work: one 16-row slab per warp
  static constexpr int RED_WARPS = DKP / 16;              // reduction MMA: one 16-row m-tile of the state per warp
  static constexpr int RED_THREADS = 32 * (RED_WARPS > SLAB_WARPS ? RED_WARPS : SLAB_WARPS);
  static constexpr int ROW_THREADS = 32 * SLAB_WARPS;
  static constexpr int STAGES = DKP + DVP <= 128 ? 3 : 2;    // tiles in flight + 1 (two streams per tile)
  static constexpr int Q_STAGES = DKP + DVP <= 128 ? 4 : 2;  // the output kernel streams Q alone
};

// The one dispatch of the tiled kernels: storage dtype x padded Dk x padded Dv.
//   return BIDIR_TILED_DISPATCH(dt, Dk, Dv, fn, args...);   calls fn<T, DKP, DVP>(args...)
#define BIDIR_TILED_DISPATCH(dt, Dk, Dv, FN, ...)                                                        \
  switch ((dt == ::attnbench::Dtype::bf16 ? 0 : 4) + (tiled_padded_dim(Dk) == kTiledDimLarge ? 2 : 0) + \
          (tiled_padded_dim(Dv) == kTiledDimLarge ? 1 : 0)) {                                          \
    case 0: return FN<__nv_bfloat16, 64, 64>(__VA_ARGS__);                                             \
    case 1: return FN<__nv_bfloat16, 64, 128>(__VA_ARGS__);                                            \
    case 2: return FN<__nv_bfloat16, 128, 64>(__VA_ARGS__);                                            \
    case 3: return FN<__nv_bfloat16, 128, 128>(__VA_ARGS__);                                           \
    case 4: return FN<__half, 64, 64>(__VA_ARGS__);                                                    \
    case 5: return FN<__half, 64, 128>(__VA_ARGS__);                                                   \
    case 6: return FN<__half, 128, 64>(__VA_ARGS__);                                                   \
    default: return FN<__half, 128, 128>(__VA_ARGS__);                                                 \
  }

// Launch with programmatic stream serialization (the kernel may start before the previous one in
// the stream ends; it calls pdl_wait() before reading what that one wrote).
template <class Kernel>
void launch_pdl(Kernel kernel, dim3 grid, dim3 block, int smem_bytes, cudaStream_t s, bool pdl, const TiledParams& p) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = static_cast<size_t>(smem_bytes);
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, p));
}

// Dynamic shared memory above 48 KB must be allowed per kernel, once.
template <class Kernel>
void allow_smem(Kernel kernel, int bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

template <class Kernel>
int resident_blocks(Kernel kernel, int threads, int bytes) {
  allow_smem(kernel, bytes);
  int n = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads, bytes));
  return n;
}

// ---- PTX wrappers (sm_80+; griddepcontrol sm_90+) -----------------------------------------------

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// 16 bytes global -> shared, asynchronously; zero-filled when !valid (src is then not read).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}
// The same with an L2 cache policy (createpolicy below): streamed tiles are read once.
__device__ __forceinline__ void cp_async16_pol(void* dst, const void* src, bool valid, uint64_t policy) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0), "l"(policy)
               : "memory");
}
// L2 policy for all lines of an access: evict_first (data read once: it leaves L2 before lines
// that others still use or that wait to be written back) or evict_normal (the default order).
__device__ __forceinline__ uint64_t l2_policy(bool evict_first) {
  uint64_t p;
  if (evict_first) {
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(p));
  } else {
    asm volatile("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;\n" : "=l"(p));
  }
  return p;
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// ldmatrix x4 (and .trans) at a shared address (32-bit, or a generic pointer into shared memory).
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t a) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t a) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) { ldsm_x4(r, smem_addr(p)); }
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void* p) { ldsm_x4_t(r, smem_addr(p)); }
// stmatrix x4: the inverse of ldsm_x4 (each lane's registers back to where ldsm_x4 read them);
// register m of lane (g, q) holds row g, columns 2q, 2q + 1 of 8x8 matrix m. TRANS (.trans): the
// matrix is stored transposed, its column c as the 16-byte row that lane 8m + c addresses.
template <bool TRANS = false>
__device__ __forceinline__ void stsm_x4(uint32_t a, const uint32_t (&r)[4], int lane) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  (void)lane;
  if constexpr (TRANS) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(a), "r"(r[0]), "r"(r[1]),
                 "r"(r[2]), "r"(r[3])
                 : "memory");
  } else {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(a), "r"(r[0]), "r"(r[1]), "r"(r[2]),
                 "r"(r[3])
                 : "memory");
  }
#else
#pragma unroll
  for (int m = 0; m < 4; ++m) {
    if constexpr (TRANS) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {  // element (g, 2q + c) goes to row 2q + c, column g
        const uint32_t row = __shfl_sync(0xffffffffu, a, 8 * m + 2 * (lane % 4) + c);
        asm volatile("st.shared.u16 [%0], %1;\n" ::"r"(row + 2u * (lane / 4)), "h"(static_cast<unsigned short>(r[m] >> (16 * c)))
                     : "memory");
      }
    } else {  // row g of matrix m: lane 8m + g addresses it
      const uint32_t row = __shfl_sync(0xffffffffu, a, 8 * m + lane / 4);
      asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(row + 4u * (lane % 4)), "r"(r[m]) : "memory");
    }
  }
#endif
}
// stmatrix x1 with .trans: matrix 0 of stsm_x4<true>, lanes 0-7 addressing.
__device__ __forceinline__ void stsm_x1_t(uint32_t a, uint32_t r, int lane) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  (void)lane;
  asm volatile("stmatrix.sync.aligned.m8n8.x1.trans.shared.b16 [%0], {%1};\n" ::"r"(a), "r"(r) : "memory");
#else
#pragma unroll
  for (int c = 0; c < 2; ++c) {
    const uint32_t row = __shfl_sync(0xffffffffu, a, 2 * (lane % 4) + c);
    asm volatile("st.shared.u16 [%0], %1;\n" ::"r"(row + 2u * (lane / 4)), "h"(static_cast<unsigned short>(r >> (16 * c))) : "memory");
  }
#endif
}
__device__ __forceinline__ void sts32(uint32_t a, uint32_t v) { asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(a), "r"(v) : "memory"); }

template <class T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Programmatic dependent launch: let the next kernel of the stream start its prologue now; wait
// until the previous kernel of the stream has finished and its writes are visible.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Thread block clusters (sm_90+; the host launches clusters only there): a barrier over every
// thread of the cluster (release/acquire: shared-memory writes before it are visible to every CTA
// of the cluster after it), and the generic address of the same shared variable in CTA `rank`.
__device__ __forceinline__ void cluster_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
}
template <class P>
__device__ __forceinline__ P* cluster_map(P* p, int rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint64_t out;
  asm volatile("mapa.u64 %0, %1, %2;\n" : "=l"(out) : "l"(reinterpret_cast<uint64_t>(p)), "r"(rank));
  return reinterpret_cast<P*>(out);
#else
  return p;
#endif
}

// ---- packing ------------------------------------------------------------------------------------

template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

template <class T>
__device__ __forceinline__ float2 unpack2(uint32_t v);
// bf16 -> fp32 is a move of the 16 bits into the high half: lo = v << 16, hi = v & 0xffff0000
// (two instructions a pair; __bfloat1622float2 compiled to three: PRMT, SHF, IMAD).
template <>
__device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t v) {
  return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
}
template <>
__device__ __forceinline__ float2 unpack2<__half>(uint32_t v) {
  return __half22float2(*reinterpret_cast<__half2*>(&v));
}

__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v;
}

// ---- tiles: global <-> shared ---------------------------------------------------------------------

// Rows [row0, row0 + R) of a [T, D] slice into shared rows of stride ST, DP/8 chunks per row, by
// NTHR threads (thread `tid`); rows >= T and columns >= D are zero-filled.
template <int R, int DP, int ST, int NTHR, class T>
__device__ __forceinline__ void load_rows_async(T* s, const T* g, int row0, int rows, int D, int tid) {
  constexpr int CH = DP / 8;
#pragma unroll
  for (int idx = tid; idx < R * CH; idx += NTHR) {
    const int r = idx / CH, c = idx % CH;
    const bool valid = row0 + r < rows && c * 8 < D;
    cp_async16(s + r * ST + c * 8, valid ? g + static_cast<int64_t>(row0 + r) * D + c * 8 : g, valid);
  }
}

// Rows [row0, row0 + nr) of a [T, D] slice (nr at run time) into shared rows of stride ST, with an
// L2 policy; rows >= row_end and columns >= D are zero-filled.
template <int DP, int ST, int NTHR, class T>
__device__ __forceinline__ void load_rows_async_pol(T* s, const T* g, int row0, int nr, int row_end, int D, int tid,
                                                    uint64_t policy) {
  constexpr int CH = DP / 8;
  for (int idx = tid; idx < nr * CH; idx += NTHR) {
    const int r = idx / CH, c = idx % CH;
    const bool valid = row0 + r < row_end && c * 8 < D;
    cp_async16_pol(s + r * ST + c * 8, valid ? g + static_cast<int64_t>(row0 + r) * D + c * 8 : g, valid, policy);
  }
}

// ---- shared tile layouts ---------------------------------------------------------------------------
// Element offset of (row r, column c) in a shared tile of 2-byte elements; c is a multiple of 2 (one
// 32-bit word) wherever a helper below writes, and of 8 (one 16-byte ldmatrix row) wherever it reads.
// PadTile: rows of stride ST = DP + 8 elements (16 bytes of padding per row): the 8 rows of one
// ldmatrix sit in 8 different bank groups (the cp.async kernels; the TMA forward's padded boxes).
//
// Addresses in the loops come in two parts, so that a lane keeps one register per tile: lane(base,
// rl, cl), the shared byte address of the lane's own row rl and column cl, once; then at(a, R, C) for
// rows R + rl and columns C + cl, with R a multiple of 8 and the 8-column chunk bits of C and cl
// disjoint (C a multiple of 16 where cl is 0 or 8, say): an add for PadTile; for Sw128Tile one XOR
// of the chunk bits (the swizzle of C) and an add (rows and column blocks).
template <int ST>
struct PadTile {
  __device__ static __forceinline__ int off(int r, int c) { return r * ST + c; }
  __device__ static __forceinline__ uint32_t lane(uint32_t base, int rl, int cl) { return base + 2u * static_cast<uint32_t>(off(rl, cl)); }
  __device__ static __forceinline__ uint32_t at(uint32_t a, int R, int C) { return a + 2u * static_cast<uint32_t>(R * ST + C); }
};
// Sw128Tile: the layout the tensor memory accelerator writes with CU_TENSOR_MAP_SWIZZLE_128B. The
// tile is DP/64 column blocks, each [ROWS][64] (128-byte rows, one bulk copy box each, 1024-byte
// aligned); within a block the 16-byte chunk j of row r lies at chunk j ^ (r % 8). So the 8 rows of
// one ldmatrix (same j, 8 consecutive r) again sit in 8 different bank groups, with no padding: the
// boxes are the dense rows of the tensor, which the TMA moves at full speed (the padded boxes'
// (D + 8)-column rows, 8 columns out of bounds, cost ~10% of the forward's floor on the H200:
// results/h200-20261121-s4/bidir_diag.md). A slab pointer tile + off(16 s, 0) keeps the pattern
// (16 s % 8 == 0).
template <int ROWS>
struct Sw128Tile {
  static_assert(ROWS % 8 == 0, "column blocks 1024-byte aligned");
  __device__ static __forceinline__ int off(int r, int c) {
    return (c >> 6) * (ROWS * 64) + r * 64 + ((((c >> 3) & 7) ^ (r & 7)) << 3) + (c & 7);
  }
  // (base 1024-byte aligned: the chunk bits of an address are those of its offset)
  __device__ static __forceinline__ uint32_t lane(uint32_t base, int rl, int cl) { return base + 2u * static_cast<uint32_t>(off(rl, cl)); }
  __device__ static __forceinline__ uint32_t at(uint32_t a, int R, int C) {
    return (a ^ static_cast<uint32_t>((C & 56) << 1)) + 2u * static_cast<uint32_t>((C >> 6) * (ROWS * 64) + R * 64);
  }
};

// A warp's 16 shared rows (layout L, DP/8 chunks) to rows [row0, row0+16) of a [T, D] slice,
// 16 bytes per store; rows >= T and columns >= D are skipped.
template <int DP, class L, class T>
__device__ __forceinline__ void store_slab_rows_l(T* g, const T* s, int row0, int rows, int D, int lane) {
  constexpr int CH = DP / 8;
#pragma unroll
  for (int idx = lane; idx < 16 * CH; idx += 32) {
    const int r = idx / CH, c = idx % CH;
    if (row0 + r < rows && c * 8 < D) {
      *reinterpret_cast<uint4*>(g + static_cast<int64_t>(row0 + r) * D + c * 8) = *reinterpret_cast<const uint4*>(s + L::off(r, c * 8));
    }
  }
}
template <int DP, int ST, class T>
__device__ __forceinline__ void store_slab_rows(T* g, const T* s, int row0, int rows, int D, int lane) {
  store_slab_rows_l<DP, PadTile<ST>>(g, s, row0, rows, D, lane);
}

// The A fragments of a 16-row slab (layout L), all KT k-steps.
template <int KT, class L, class T>
__device__ __forceinline__ void load_a_frags_l(uint32_t (&a)[KT][4], const T* slab, int lane) {
  const uint32_t la = L::lane(smem_addr(slab), lane % 16, (lane / 16) * 8);
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) ldsm_x4(a[kt], L::at(la, 0, kt * 16));
}
template <int KT, int ST, class T>
__device__ __forceinline__ void load_a_frags(uint32_t (&a)[KT][4], const T* slab, int lane) {
  load_a_frags_l<KT, PadTile<ST>>(a, slab, lane);
}

// Store fp32 C-layout values of a 16-row slab (N/8 tiles) into shared rows (layout L) as T.
template <int NT, class L, class T>
__device__ __forceinline__ void store_c_tiles_l(T* slab, const float (&c)[NT][4], int col0, int lane) {
  const uint32_t la = L::lane(smem_addr(slab), lane / 4, 2 * (lane % 4));  // row g, column 2q
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    sts32(L::at(la, 0, col0 + nt * 8), pack2<T>(c[nt][0], c[nt][1]));
    sts32(L::at(la, 8, col0 + nt * 8), pack2<T>(c[nt][2], c[nt][3]));
  }
}
// The same by stmatrix (sm_90; NT even, col0 a multiple of 16): the C layout of two adjacent n8
// tiles is the register layout of stmatrix.x4's four 8x8 matrices (rows 0-7 and 8-15 of tile nt,
// then of nt + 1), whose row addresses are ldsm_x4's (lane l: row l % 16, column 8 (l / 16)). One
// instruction for four sts32.
template <int NT, class L, class T>
__device__ __forceinline__ void store_c_tiles_sm(T* slab, const float (&c)[NT][4], int col0, int lane) {
  static_assert(NT % 2 == 0, "pairs of n8 tiles");
  const uint32_t la = L::lane(smem_addr(slab), lane % 16, (lane / 16) * 8);
#pragma unroll
  for (int nt = 0; nt < NT; nt += 2) {
    const uint32_t r[4] = {pack2<T>(c[nt][0], c[nt][1]), pack2<T>(c[nt][2], c[nt][3]), pack2<T>(c[nt + 1][0], c[nt + 1][1]),
                           pack2<T>(c[nt + 1][2], c[nt + 1][3])};
    stsm_x4(L::at(la, 0, col0 + nt * 8), r, lane);
  }
}
template <int NT, int ST, class T>
__device__ __forceinline__ void store_c_tiles(T* slab, const float (&c)[NT][4], int col0, int lane) {
  store_c_tiles_l<NT, PadTile<ST>>(slab, c, col0, lane);
}

// Store packed A fragments back into shared rows (layout L; the positions ldsm_x4 read them from).
template <int KT, class L, class T>
__device__ __forceinline__ void store_a_frags_l(T* slab, const uint32_t (&a)[KT][4], int lane) {
  const int g = lane / 4, q = lane % 4;
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      *reinterpret_cast<uint32_t*>(slab + L::off(g + 8 * (i % 2), kt * 16 + 8 * (i / 2) + 2 * q)) = a[kt][i];
    }
  }
}
template <int KT, int ST, class T>
__device__ __forceinline__ void store_a_frags(T* slab, const uint32_t (&a)[KT][4], int lane) {
  store_a_frags_l<KT, PadTile<ST>>(slab, a, lane);
}

// ---- the split-T reduction ------------------------------------------------------------------------

// The reduction kernels accumulate, per head, S = X^T Y [DKP][NCOL] over their split of the rows,
// warp w owning rows 16w..16w+15 of S in C layout (acc[NV + 1][4]). Each block stores its partial
// sum; the last block of the head to arrive (counter) adds the partials in split order, so the
// result does not depend on timing, and hands each S[d][e] (e < ncols) to `finish`.
template <int DKP, int NCOL, int NT, int NTHR, class Finish>
__device__ __forceinline__ void split_reduce(const TiledParams& p, const float (&acc)[NT][4], int bh, int split, int ncols,
                                             Finish&& finish) {
  __shared__ int s_last;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
  float* base = p.partial + static_cast<int64_t>(bh) * p.splits * DKP * NCOL;
  if (warp < DKP / 16) {
    float* part = base + static_cast<int64_t>(split) * DKP * NCOL;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const int row = warp * 16 + g, col = nt * 8 + 2 * q;
      *reinterpret_cast<float2*>(part + row * NCOL + col) = make_float2(acc[nt][0], acc[nt][1]);
      *reinterpret_cast<float2*>(part + (row + 8) * NCOL + col) = make_float2(acc[nt][2], acc[nt][3]);
    }
  }
  __threadfence();
  __syncthreads();
  if (tid == 0) s_last = atomicAdd(&p.counter[bh], 1u) == static_cast<unsigned>(p.splits - 1);
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  // Each thread sums its float4s of S over the splits: PER independent loads per split in flight.
  constexpr int V4 = DKP * NCOL / 4, PER = (V4 + NTHR - 1) / NTHR;
  float4 sum[PER];
#pragma unroll
  for (int j = 0; j < PER; ++j) sum[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int sp = 0; sp < p.splits; ++sp) {
    const float4* src = reinterpret_cast<const float4*>(base + static_cast<int64_t>(sp) * DKP * NCOL);
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      if (tid + j * NTHR < V4) {
        const float4 v = __ldcg(src + tid + j * NTHR);
        sum[j].x += v.x, sum[j].y += v.y, sum[j].z += v.z, sum[j].w += v.w;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int idx = tid + j * NTHR;
    if (idx >= V4) continue;
    const int d = idx * 4 / NCOL, e = idx * 4 % NCOL;  // NCOL % 4 == 0: a float4 never crosses a row
    const float v[4] = {sum[j].x, sum[j].y, sum[j].z, sum[j].w};
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      if (e + c < ncols) finish(d, e + c, v[c]);
    }
  }
  if (tid == 0) p.counter[bh] = 0u;
}

}  // namespace attnbench::kernels::bidir
