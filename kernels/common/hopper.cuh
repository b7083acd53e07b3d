// Hopper (sm_90a) building blocks, as small PTX wrappers: mbarriers, TMA bulk tensor copies,
// warpgroup MMA (wgmma) with shared-memory descriptors, register reallocation, and the host-side
// creation of TMA tensor maps through the driver entry point (no link against libcuda).
//
// Shared-memory tiles: a tile of R rows x D columns (16-bit elements, D a multiple of 64) is stored
// as D/64 column chunks, chunk c holding columns [64c, 64c+64) of every row: R rows of 128 bytes,
// with the 128-byte swizzle (16-byte unit u of row r lives at unit u ^ (r % 8)). TMA writes that
// layout (SWIZZLE_128B, a box of {64, R, D/64}) and wgmma reads it through descriptors:
//   K-major operand (rows = M or N, columns = the reduction dim K): k-step kk (16 columns) starts
//     at chunk kk/4, byte 32*(kk%4); SBO = 1024 (8 rows x 128 B); LBO unused.
//   MN-major operand (rows = K, columns = N; B of a "transposed" product): k-step kk (16 rows)
//     starts 16*128 bytes further; LBO = R*128 (the next 64-column chunk), SBO = 1024.
// Every tile base is 1024-byte aligned (the swizzle pattern repeats every 8 rows x 128 B).
//
// Accumulator fragment of wgmma m64nNk16 (fp32), per thread of the warpgroup: warp w owns rows
// 16w..16w+15; with g = lane/4, t = lane%4, d[4c + e] is row 16w + g + 8*(e/2), column
// 8c + 2t + (e%2). The A fragment from registers (16-bit, one k-step of 16) is the same layout
// packed in pairs: a[0] = (row g, k 2t..2t+1), a[1] = (row g+8, same k), a[2] = (row g, k+8),
// a[3] = (row g+8, k+8); so accumulator columns [16kk, 16kk+16) become A registers of k-step kk
// by packing d[8kk + 2r], d[8kk + 2r + 1] into a[r].
#pragma once

#include <cuda.h>  // CUtensorMap and the driver enums (types only; the driver is reached at run time)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace attnbench::kernels::hopper {

// ---------------------------------------------------------------------------------------------
// Shared memory, barriers, fences
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}

// Makes the initialized barriers visible to the async proxy (TMA) before any copy signals them.
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}

// One arrival that also expects `bytes` more of transaction (the TMA copies signal them).
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes)
               : "memory");
}

// Wait until the phase with the given parity has completed. A fresh barrier is in phase 0, so
// waiting on parity 1 returns at once (the producer's first pass over empty slots).
// kCluster: acquire at cluster scope, for a barrier that another CTA's st.async completes (the
// writes it counted are visible to this thread once the phase is seen complete).
template <bool kCluster = false>
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  const uint32_t addr = smem_u32(bar);
  uint32_t done = 0;
  do {
    if constexpr (kCluster) {
      asm volatile(
          "{\n.reg .pred p;\nmbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
          : "=r"(done)
          : "r"(addr), "r"(parity)
          : "memory");
    } else {
      asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                   : "=r"(done)
                   : "r"(addr), "r"(parity)
                   : "memory");
    }
  } while (!done);
}

// ---------------------------------------------------------------------------------------------
// Thread block clusters: the barrier in two halves, distributed shared memory
// ---------------------------------------------------------------------------------------------

// Every thread of the cluster arrives (release: its earlier writes, e.g. mbarrier inits after
// fence_barrier_init, are visible to the cluster after the barrier) and later waits (acquire).
__device__ __forceinline__ void cluster_arrive() { asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory"); }
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory"); }

// The shared::cluster address of this CTA's shared variable at shared::cta address `a` in CTA `rank`.
__device__ __forceinline__ uint32_t mapa(uint32_t a, int rank) {
  uint32_t out;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(out) : "r"(a), "r"(rank));
  return out;
}

// Stores into another CTA's shared memory (shared::cluster addresses from mapa) that complete on
// that CTA's mbarrier `bar` (its shared::cluster address) as 4, 8 or 16 transaction bytes; the
// receiver waits for them (mbar_wait<true>) instead of the two CTAs meeting at a cluster barrier.
__device__ __forceinline__ void st_async(uint32_t a, uint32_t x, uint32_t bar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];" ::"r"(a), "r"(x), "r"(bar) : "memory");
}
__device__ __forceinline__ void st_async(uint32_t a, uint32_t x, uint32_t y, uint32_t bar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v2.b32 [%0], {%1, %2}, [%3];" ::"r"(a), "r"(x), "r"(y),
               "r"(bar)
               : "memory");
}
__device__ __forceinline__ void st_async(uint32_t a, const uint4& x, uint32_t bar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.b32 [%0], {%1, %2, %3, %4}, [%5];" ::"r"(a), "r"(x.x),
               "r"(x.y), "r"(x.z), "r"(x.w), "r"(bar)
               : "memory");
}

// Generic-proxy writes to shared memory made visible to the async proxy (wgmma, TMA).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

// Barrier among `threads` threads (a multiple of 32) on hardware barrier `id` (1..15; 0 is
// __syncthreads).
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
// Arrive at barrier `id` without waiting (the producer side: its shared-memory writes before the
// arrive are visible to the threads that bar.sync on the same barrier after it completes).
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// Register reallocation between warpgroups (needs a register cap at kernel entry, i.e.
// __launch_bounds__(threads, 1)); every warp of a warpgroup executes the same one.
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kRegs));
}

// ---------------------------------------------------------------------------------------------
// TMA and bulk copies (global -> shared), completing on an mbarrier
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ void prefetch_tensor_map(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// One box of a 4-d tensor map at coordinates (c0, c1, c2, c3), innermost first.
__device__ __forceinline__ void tma_load_4d(void* dst, const CUtensorMap* map, int c0, int c1, int c2, int c3,
                                            uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];" ::"r"(smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_u32(bar))
      : "memory");
}

// A contiguous copy of `bytes` (a multiple of 16; both addresses 16-byte aligned).
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                   smem_u32(dst)),
               "l"(src), "r"(bytes), "r"(smem_u32(bar))
               : "memory");
}

// ---------------------------------------------------------------------------------------------
// wgmma
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
}

// Keeps the compiler from moving accesses of accumulator registers across a wgmma boundary.
template <int R>
__device__ __forceinline__ void fence_operands(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// Shared-memory matrix descriptor, 128-byte swizzle.
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t((lbo & 0x3FFFF) >> 4) << 16) |
         (uint64_t((sbo & 0x3FFFF) >> 4) << 32) | (uint64_t(1) << 62);
}
// K-major tile of `rows` rows, from row `row0` (a multiple of 8): k-step kk.
__device__ __forceinline__ uint64_t desc_k_major(uint32_t tile, int rows, int row0, int kk) {
  return smem_desc(tile + (kk >> 2) * rows * 128 + row0 * 128 + (kk & 3) * 32, 16, 1024);
}
// MN-major tile of `rows` rows (the K dim): k-step kk covers rows [16kk, 16kk+16).
__device__ __forceinline__ uint64_t desc_mn_major(uint32_t tile, int rows, int kk) {
  return smem_desc(tile + kk * 2048, rows * 128, 1024);
}

// Byte offset of element (r, c) in a tile of `rows` rows (for plain loads of a swizzled tile).
__device__ __forceinline__ uint32_t swizzled_offset(int rows, int r, int c) {
  const int chunk = c >> 6, byte = (c & 63) * 2;
  return chunk * rows * 128 + r * 128 + ((((byte >> 4) ^ (r & 7))) << 4) + (byte & 15);
}

#define ATTNBENCH_ACC_N32 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}"
#define ATTNBENCH_ACC_N64                                                                                   \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
  "%23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define ATTNBENCH_ACC_N128                                                                                  \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
  "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "    \
  "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define ATTNBENCH_F8(d, i) \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define ATTNBENCH_F16(d, i) ATTNBENCH_F8(d, i), ATTNBENCH_F8(d, i + 8)
#define ATTNBENCH_F32(d, i) ATTNBENCH_F8(d, i), ATTNBENCH_F8(d, i + 8), ATTNBENCH_F8(d, i + 16), ATTNBENCH_F8(d, i + 24)
#define ATTNBENCH_F64(d) ATTNBENCH_F32(d, 0), ATTNBENCH_F32(d, 32)

// D[64 x N] (+)= A[64 x 16] B[16 x N]: A and B from shared memory; PTA/PTB: the operands of the
// transpose immediates (TA = 0: A K-major, 1: M-major; TB = 0: B K-major, 1: N-major).
#define ATTNBENCH_WGMMA_SS(N, TY, ACC, PA, PB, PP, PTA, PTB, ...)                                              \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " PP ", 0;\nwgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY \
               "." TY " " ACC ", " PA ", " PB ", p, 1, 1, " PTA ", " PTB ";\n}\n"                               \
               : __VA_ARGS__                                                                                     \
               : "l"(desc_a), "l"(desc_b), "r"(accumulate), "n"(TA), "n"(TB))
// D[64 x N] (+)= A[64 x 16] B[16 x N]: A from registers, B from shared memory (TB as above).
#define ATTNBENCH_WGMMA_RS(N, TY, ACC, PA, PB, PP, PTB, ...)                                                     \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " PP ", 0;\nwgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY  \
               "." TY " " ACC ", " PA ", " PB ", p, 1, 1, " PTB ";\n}\n"                                         \
               : __VA_ARGS__                                                                                      \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate), "n"(TB))

// T: __nv_bfloat16 or __half; N: 32, 64 or 128. accumulate = 0 overwrites d. Defaults: both
// operands K-major (the softmax kernels' Q K^T, dO V^T).
template <class T, int N, int TA = 0, int TB = 0>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  static_assert(N == 32 || N == 64 || N == 128, "wgmma_ss: N is 32, 64 or 128");
  constexpr bool bf = std::is_same_v<T, __nv_bfloat16>;
  if constexpr (N == 32 && bf) {
    ATTNBENCH_WGMMA_SS(32, "bf16", ATTNBENCH_ACC_N32, "%16", "%17", "%18", "%19", "%20", ATTNBENCH_F16(d, 0));
  } else if constexpr (N == 32) {
    ATTNBENCH_WGMMA_SS(32, "f16", ATTNBENCH_ACC_N32, "%16", "%17", "%18", "%19", "%20", ATTNBENCH_F16(d, 0));
  } else if constexpr (N == 64 && bf) {
    ATTNBENCH_WGMMA_SS(64, "bf16", ATTNBENCH_ACC_N64, "%32", "%33", "%34", "%35", "%36", ATTNBENCH_F32(d, 0));
  } else if constexpr (N == 64) {
    ATTNBENCH_WGMMA_SS(64, "f16", ATTNBENCH_ACC_N64, "%32", "%33", "%34", "%35", "%36", ATTNBENCH_F32(d, 0));
  } else if constexpr (bf) {
    ATTNBENCH_WGMMA_SS(128, "bf16", ATTNBENCH_ACC_N128, "%64", "%65", "%66", "%67", "%68", ATTNBENCH_F64(d));
  } else {
    ATTNBENCH_WGMMA_SS(128, "f16", ATTNBENCH_ACC_N128, "%64", "%65", "%66", "%67", "%68", ATTNBENCH_F64(d));
  }
}

// Default: B MN-major (the softmax kernels' P V, dS K).
template <class T, int N, int TB = 1>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc_b,
                                         int accumulate) {
  static_assert(N == 32 || N == 64 || N == 128, "wgmma_rs: N is 32, 64 or 128");
  constexpr bool bf = std::is_same_v<T, __nv_bfloat16>;
  if constexpr (N == 32 && bf) {
    ATTNBENCH_WGMMA_RS(32, "bf16", ATTNBENCH_ACC_N32, "{%16, %17, %18, %19}", "%20", "%21", "%22", ATTNBENCH_F16(d, 0));
  } else if constexpr (N == 32) {
    ATTNBENCH_WGMMA_RS(32, "f16", ATTNBENCH_ACC_N32, "{%16, %17, %18, %19}", "%20", "%21", "%22", ATTNBENCH_F16(d, 0));
  } else if constexpr (N == 64 && bf) {
    ATTNBENCH_WGMMA_RS(64, "bf16", ATTNBENCH_ACC_N64, "{%32, %33, %34, %35}", "%36", "%37", "%38", ATTNBENCH_F32(d, 0));
  } else if constexpr (N == 64) {
    ATTNBENCH_WGMMA_RS(64, "f16", ATTNBENCH_ACC_N64, "{%32, %33, %34, %35}", "%36", "%37", "%38", ATTNBENCH_F32(d, 0));
  } else if constexpr (bf) {
    ATTNBENCH_WGMMA_RS(128, "bf16", ATTNBENCH_ACC_N128, "{%64, %65, %66, %67}", "%68", "%69", "%70", ATTNBENCH_F64(d));
  } else {
    ATTNBENCH_WGMMA_RS(128, "f16", ATTNBENCH_ACC_N128, "{%64, %65, %66, %67}", "%68", "%69", "%70", ATTNBENCH_F64(d));
  }
}

// Two fp32 values as one register of packed 16-bit T (x in the low half).
template <class T>
__device__ __forceinline__ uint32_t pack2(float x, float y) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(x, y);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float lg2(float x) {
  float y;
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float rcp(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// ---------------------------------------------------------------------------------------------
// Host: tensor maps
// ---------------------------------------------------------------------------------------------

// cuTensorMapEncodeTiled, resolved once through the runtime's driver entry point.
using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

inline EncodeTiledFn encode_tiled_fn() {
  static EncodeTiledFn fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q);
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !p) {
      throw std::runtime_error("cuTensorMapEncodeTiled is not available from the driver");
    }
    return reinterpret_cast<EncodeTiledFn>(p);
  }();
  return fn;
}

// Tensor map over a row-major [BH, T, D] tensor of 16-bit elements (D a multiple of 64), seen as
// 4-d {64, T, D/64, BH} so that one box {64, box_rows, D/64, 1} lands as the chunked, 128-byte
// swizzled tile described above. Rows past T read as zeros.
inline CUtensorMap make_tile_map(const void* base, bool bf16, int64_t D, int64_t T, int64_t BH, int box_rows) {
  CUtensorMap map;
  const cuuint64_t dims[4] = {64, static_cast<cuuint64_t>(T), static_cast<cuuint64_t>(D / 64),
                              static_cast<cuuint64_t>(BH)};
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(D * 2), 128, static_cast<cuuint64_t>(T * D * 2)};
  const cuuint32_t box[4] = {64, static_cast<cuuint32_t>(box_rows), static_cast<cuuint32_t>(D / 64), 1};
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  const CUresult r = encode_tiled_fn()(
      &map, bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4, const_cast<void*>(base),
      dims, strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    throw std::runtime_error("cuTensorMapEncodeTiled failed (" + std::to_string(static_cast<int>(r)) +
                             ") for D=" + std::to_string(D) + " T=" + std::to_string(T) +
                             " BH=" + std::to_string(BH) + " box_rows=" + std::to_string(box_rows));
  }
  return map;
}

}  // namespace attnbench::kernels::hopper
