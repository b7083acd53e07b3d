// Warpgroup MMA (wgmma, sm_90a) for the linear-family kernels, with the host simulator's
// emulation (sim/lin_sim.h) under ATTNBENCH_LIN_SIM. The conventions are those of
// kernels/common/hopper.cuh (used by the softmax kernels on the device):
//   Tiles of 16-bit elements are stored as 64-column chunks of R rows x 128 bytes with the 128-byte
//   swizzle (16-byte unit u of row r at unit u ^ (r % 8)), every chunk 1024-byte aligned.
//   K-major operand (rows = M or N, columns = the reduction dim K): k-step kk starts at chunk kk/4,
//     byte 32 (kk % 4); SBO = 1024 (8 rows), LBO unused (16).
//   MN-major operand (rows = K, columns = M or N): k-step kk starts 16 rows (2048 bytes) further;
//     LBO = the next 64-column chunk, SBO = 1024.
// Fragments of wgmma m64nNk16 (fp32 accumulate), thread (warp w of the warpgroup, g = lane/4,
// t = lane%4): d[4i + e] is row 16w + g + 8(e/2), column 8i + 2t + (e%2); an A fragment from
// registers is the mma.sync m16n8k16 A layout of rows 16w.. (a[0] row g k 2t.., a[1] row g+8,
// a[2] row g k 2t+8.., a[3] row g+8 k 2t+8..).
#pragma once

#include "linear_family_mma.cuh"
#ifndef ATTNBENCH_LIN_SIM
#include "hopper.cuh"  // the wgmma instructions
#endif

namespace attnbench::kernels::lin {

// Byte offset inside a 1024-aligned chunk of 128-byte rows: the 128-byte swizzle.
__device__ __forceinline__ int swz128(int off) { return off ^ (((off >> 7) & 7) << 4); }

#ifdef ATTNBENCH_LIN_SIM
using WgDesc = ::sim::WgDesc;
inline WgDesc wg_desc(const void* p, int lbo, int sbo) { return {static_cast<const unsigned char*>(p), lbo, sbo}; }
template <int N, class T>
struct Wgmma {
  template <int kTransA, int kTransB>
  static void ss(float (&d)[N / 2], WgDesc a, WgDesc b) {
    ::sim::wgmma<T, N>(d, nullptr, a, kTransA != 0, b, kTransB != 0);
  }
  template <int kTransB>
  static void rs(float (&d)[N / 2], const uint32_t (&a)[4], WgDesc b) {
    ::sim::wgmma<T, N>(d, a, WgDesc{}, false, b, kTransB != 0);
  }
};
inline WgDesc wg_desc_add(WgDesc d, int bytes) { return {d.p + bytes, d.lbo, d.sbo}; }
inline void wg_fence() {}
inline void wg_commit() {}
template <int N>
inline void wg_wait() {}
inline void fence_proxy_async() {}
template <int R>
inline void wg_fence_operands(float (&)[R]) {}
inline void wg_named_barrier(int id, int threads) { ::sim::named_barrier(id, threads); }
inline void wg_named_arrive(int id, int threads) { ::sim::named_barrier_arrive(id, threads); }
template <int kRegs>
inline void wg_setmaxnreg_inc() {}
template <int kRegs>
inline void wg_setmaxnreg_dec() {}
#else
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LIN_WG_ARCH 0  // not an sm_90a target: the wgmma kernels are not launched (fused_wg_supported)
#else
#define LIN_WG_ARCH 1
#endif
using WgDesc = uint64_t;
// The device side is hopper.cuh's (descriptor with the 128-byte swizzle, wgmma fences and groups,
// proxy fence, named barrier); the wgmma ones are empty off sm_90a, where these kernels never run.
__device__ __forceinline__ WgDesc wg_desc(const void* p, int lbo, int sbo) {
  return hopper::smem_desc(smem_addr(p), static_cast<uint32_t>(lbo), static_cast<uint32_t>(sbo));
}
// The descriptor of the tile `bytes` further on (a multiple of 16; the 14-bit address field does
// not carry: shared addresses are below 256 KB).
__device__ __forceinline__ WgDesc wg_desc_add(WgDesc d, int bytes) { return d + uint64_t(bytes >> 4); }
__device__ __forceinline__ void wg_fence() {
#if LIN_WG_ARCH
  hopper::wgmma_fence();
#endif
}
__device__ __forceinline__ void wg_commit() {
#if LIN_WG_ARCH
  hopper::wgmma_commit();
#endif
}
template <int N>
__device__ __forceinline__ void wg_wait() {
#if LIN_WG_ARCH
  hopper::wgmma_wait<N>();
#endif
}
using hopper::fence_proxy_async;
template <int R>
__device__ __forceinline__ void wg_fence_operands(float (&d)[R]) { hopper::fence_operands(d); }
__device__ __forceinline__ void wg_named_barrier(int id, int threads) { hopper::named_barrier_sync(id, threads); }
__device__ __forceinline__ void wg_named_arrive(int id, int threads) { hopper::named_barrier_arrive(id, threads); }
// Register reallocation between warpgroups (sm_90a; a no-op elsewhere, where these kernels never run).
template <int kRegs>
__device__ __forceinline__ void wg_setmaxnreg_inc() {
#if LIN_WG_ARCH
  hopper::setmaxnreg_inc<kRegs>();
#endif
}
template <int kRegs>
__device__ __forceinline__ void wg_setmaxnreg_dec() {
#if LIN_WG_ARCH
  hopper::setmaxnreg_dec<kRegs>();
#endif
}

// D[64 x N] += A[64 x 16] B[16 x N]. ss: A and B from descriptors (kTransA = 1: A M-major;
// kTransB = 1: B N-major); rs: A from registers. The instructions are hopper.cuh's wrappers
// (N = 32, 64, 128), always accumulating.
template <int N, class T>
struct Wgmma {
  template <int kTransA, int kTransB>
  static __device__ __forceinline__ void ss(float (&d)[N / 2], WgDesc a, WgDesc b) {
#if LIN_WG_ARCH
    hopper::wgmma_ss<T, N, kTransA, kTransB>(d, a, b, 1);
#else
    __trap();
#endif
  }
  template <int kTransB>
  static __device__ __forceinline__ void rs(float (&d)[N / 2], const uint32_t (&a)[4], WgDesc b) {
#if LIN_WG_ARCH
    hopper::wgmma_rs<T, N, kTransB>(d, a, b, 1);
#else
    __trap();
#endif
  }
};
#endif

}  // namespace attnbench::kernels::lin
