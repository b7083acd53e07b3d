// Warp-level tensor-core building blocks of the tiled linear-family kernels (sm_80+ mma.sync,
// ldmatrix, cp.async), written against the PTX fragment layouts.
//
// mma.sync.m16n8k16 (A 16x16 row-major, B 16x8 "col", C/D 16x8 fp32), with g = lane/4, t = lane%4:
//   A regs a[0..3], two 16-bit values each: a0 (row g, k 2t..2t+1), a1 (row g+8, k 2t..),
//                                            a2 (row g, k 2t+8..),   a3 (row g+8, k 2t+8..)
//   B regs b[0..1]: b0 (k 2t..2t+1, col g), b1 (k 2t+8.., col g)
//   C regs c[0..3]: c0,c1 (row g, cols 2t, 2t+1), c2,c3 (row g+8, cols 2t, 2t+1)
// An accumulator tile of 16 rows x 8*NT columns is float c[NT][4]; columns [16kk, 16kk+16) of it
// become the A operand of k-step kk by packing (c[2kk][0],c[2kk][1]), (c[2kk][2],c[2kk][3]),
// (c[2kk+1][0],c[2kk+1][1]), (c[2kk+1][2],c[2kk+1][3]).
//
// Shared-memory tiles are row-major with a row stride (in elements) that is a multiple of 8 and
// not of 64 (rows padded by 8 elements), so the 8 rows an ldmatrix reads fall in distinct banks.
// Operand loaders, by how the operand is stored:
//   A [M][K] (rows = M):               ldsm_a        (ldmatrix.x4)
//   A^T stored as [K][M]:              ldsm_a_trans  (ldmatrix.x4.trans)
//   B^T stored as [N][K] (K^T in QK^T): ldsm_b_nk    (ldmatrix.x4: two n-tiles of 8; ldsm_b_nk1 one)
//   B stored as [K][N] (V in PV):      ldsm_b_kn     (ldmatrix.x4.trans: two n-tiles of 8)
#pragma once

#include "linear_family_device.cuh"
#ifndef ATTNBENCH_LIN_SIM
#include "hopper.cuh"  // ex2 (vec_exp)
#endif

namespace attnbench::kernels::lin {

// x, equal in every lane of the warp, broadcast from lane 0: ptxas then knows it is warp-uniform
// (CUTLASS's canonical_warp_idx_sync), so branches on it are uniform and what is built from it
// (loop bounds, tile offsets, wgmma descriptors) may live in uniform registers. Every lane of the
// warp must call it.
__device__ __forceinline__ int warp_uniform(int x) { return __shfl_sync(0xffffffffu, x, 0); }

#ifndef ATTNBENCH_LIN_SIM
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
#endif

// ---- cp.async: 16-byte global -> shared copies, zero-filled when `valid` is false ----
#ifndef ATTNBENCH_LIN_SIM
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(src_bytes)
               : "memory");
}
// (4 bytes: for per-row floats, whose rows need not be 16-byte aligned)
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem, bool valid) {
  const int src_bytes = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
#else
inline void cp_async16(void* smem, const void* gmem, bool valid) {
  if (valid) std::memcpy(smem, gmem, 16);
  else std::memset(smem, 0, 16);
}
inline void cp_async4(void* smem, const void* gmem, bool valid) {
  if (valid) std::memcpy(smem, gmem, 4);
  else std::memset(smem, 0, 4);
}
inline void cp_async_commit() {}
template <int N>
inline void cp_async_wait() {}
#endif

// ---- exp ----
// exp(x) by ex2.approx.ftz (results below fp32's normal range flush to zero): __expf's ex2.approx
// without ftz adds a compare and two conditional multiplies around every MUFU.EX2. The vector-gate
// forward, the wgmma scans and the gated gradient kernel's element-wise loops.
#ifndef ATTNBENCH_LIN_SIM
__device__ __forceinline__ float vec_exp(float x) { return hopper::ex2(x * 1.4426950408889634f); }
#else
inline float vec_exp(float x) { return __expf(x); }
#endif

// ---- 16-bit pair packing ----
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <class T>
__device__ __forceinline__ float2 unpack2(uint32_t v);
template <>
__device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t v) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v));
}
template <>
__device__ __forceinline__ float2 unpack2<__half>(uint32_t v) {
  return __half22float2(*reinterpret_cast<const __half2*>(&v));
}

// ---- ldmatrix ----
#ifndef ATTNBENCH_LIN_SIM
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x2(uint32_t (&r)[2], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(smem_addr(p)));
}
// stmatrix.x4.trans (sm_90; the wgmma kernels only): register m of lane l holds row l / 4,
// columns 2 (l % 4) (+1) of 8x8 matrix m, stored as column l / 4 of rows 2 (l % 4) (+1); lane 8m + r
// addresses row r of matrix m (16 bytes).
__device__ __forceinline__ void stsm_x4_trans(const uint32_t (&r)[4], void* p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(smem_addr(p)), "r"(r[0]),
               "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
#else
  __trap();
#endif
}
#else
inline void ldsm_x2(uint32_t (&r)[2], const void* p) { ::sim::ldmatrix_x2(r, p); }
inline void ldsm_x4(uint32_t (&r)[4], const void* p) { ::sim::ldmatrix_x4(r, p, false); }
inline void ldsm_x4_trans(uint32_t (&r)[4], const void* p) { ::sim::ldmatrix_x4(r, p, true); }
inline void stsm_x4_trans(const uint32_t (&r)[4], void* p) { ::sim::stmatrix_x4(r, p, true); }
#endif

// A (16 x 16) at rows m0.., cols k0.. of row-major X[M][ld].
template <class T>
__device__ __forceinline__ void ldsm_a(uint32_t (&a)[4], const T* X, int ld, int m0, int k0, int lane) {
  const int mi = lane >> 3, r = lane & 7;
  ldsm_x4(a, X + (m0 + r + 8 * (mi & 1)) * ld + k0 + 8 * (mi >> 1));
}
// A (16 x 16) = (X^T)[m0.., k0..] where X is stored [K][ld] (rows = K, columns = M).
template <class T>
__device__ __forceinline__ void ldsm_a_trans(uint32_t (&a)[4], const T* X, int ld, int m0, int k0, int lane) {
  const int mi = lane >> 3, r = lane & 7;
  ldsm_x4_trans(a, X + (k0 + r + 8 * (mi >> 1)) * ld + m0 + 8 * (mi & 1));
}
// B for two n-tiles (n0.., n0+8..) x k-step k0, from B^T stored [N][ld]: b[0..1] tile n0, b[2..3] tile n0+8.
template <class T>
__device__ __forceinline__ void ldsm_b_nk(uint32_t (&b)[4], const T* X, int ld, int n0, int k0, int lane) {
  const int mi = lane >> 3, r = lane & 7;
  ldsm_x4(b, X + (n0 + r + 8 * (mi >> 1)) * ld + k0 + 8 * (mi & 1));
}
// B for one n-tile (n0..) x k-step k0, from B^T stored [N][ld] (ldmatrix.x2).
template <class T>
__device__ __forceinline__ void ldsm_b_nk1(uint32_t (&b)[2], const T* X, int ld, int n0, int k0, int lane) {
  const int mi = (lane >> 3) & 1, r = lane & 7;
  ldsm_x2(b, X + (n0 + r) * ld + k0 + 8 * mi);
}
// B for two n-tiles from B stored [K][ld] (rows = K, columns = N).
template <class T>
__device__ __forceinline__ void ldsm_b_kn(uint32_t (&b)[4], const T* X, int ld, int k0, int n0, int lane) {
  const int mi = lane >> 3, r = lane & 7;
  ldsm_x4_trans(b, X + (k0 + r + 8 * (mi & 1)) * ld + n0 + 8 * (mi >> 1));
}

// ---- the MMA ----
#ifdef ATTNBENCH_LIN_SIM
template <class T>
inline void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  ::sim::mma16816<T>(c, a, b0, b1);
}
#else
template <class T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

// tf32 products (fp32 operands rounded to 10 mantissa bits, to nearest; fp32 accumulators):
// tf32_rna(x) is cvt.rna.tf32.f32 on finite x, mma1688_tf32 is mma.sync.m16n8k8 with A 16 x 8 (a0 (g, q4),
// a1 (g + 8, q4), a2 (g, q4 + 4), a3 (g + 8, q4 + 4)), B 8 x 8 (b0 (q4, g), b1 (q4 + 4, g)) and
// C as mma16816's. tf32_split(x) = (hi, lo), x ~ hi + lo with both tf32 (hi = rd(x), lo =
// rd(x - hi)): three products hi hi' + hi lo' + lo hi' (3xTF32) carry fp32-like products
// (relative error ~2^-21 instead of tf32's 2^-11).
#ifdef ATTNBENCH_LIN_SIM
inline uint32_t tf32_rna(float x) { return ::sim::tf32_rna(x); }
inline float tf32_value(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
inline uint32_t tf32_exact(float x) {  // x already a tf32 value (e.g. a bf16 or fp16 one)
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
inline void mma1688_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  ::sim::mma1688_tf32(c, a, b0, b1);
}
#else
// For finite x, as the simulator's: half a tf32 ulp added to the magnitude bits, the 13 low bits
// cleared (two integer instructions; cvt.rna.tf32.f32 is a longer sequence on sm_90 that also
// handles NaN and infinity, which the gated gradients never hold).
__device__ __forceinline__ uint32_t tf32_rna(float x) { return (__float_as_uint(x) + 0x1000u) & 0xffffe000u; }
__device__ __forceinline__ float tf32_value(uint32_t u) { return __uint_as_float(u); }
__device__ __forceinline__ uint32_t tf32_exact(float x) { return __float_as_uint(x); }  // x already a tf32 value
__device__ __forceinline__ void mma1688_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif
__device__ __forceinline__ void tf32_split(float x, uint32_t& hi, uint32_t& lo) {
  hi = tf32_rna(x);
  lo = tf32_rna(x - tf32_value(hi));
}

// acc[2np], acc[2np+1] += a * (two n-tiles of b).
template <class T, int NT>
__device__ __forceinline__ void mma_pair(float (&acc)[NT][4], int np, const uint32_t (&a)[4], const uint32_t (&b)[4]) {
  mma16816<T>(acc[2 * np], a, b[0], b[1]);
  mma16816<T>(acc[2 * np + 1], a, b[2], b[3]);
}

// oa[mt] += rd(A)[16mt.., 16kk..] V[16kk.., n0..n0+16) over the chunk's lower block triangle
// (kk <= mt: the causal intra-chunk weights of a 64-row chunk, zero above the diagonal blocks), for
// the 16 value columns from n0 (two n-tiles). The fused forwards' rd(A) V.
template <class T>
__device__ __forceinline__ void causal_av(float (&oa)[4][2][4], const T* A, int ldA, const T* V, int ldV, int n0, int lane) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    uint32_t b[4];
    ldsm_b_kn(b, V, ldV, 16 * kk, n0, lane);
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
      if (mt < kk) continue;
      uint32_t a[4];
      ldsm_a(a, A, ldA, 16 * mt, 16 * kk, lane);
      mma16816<T>(oa[mt][0], a, b[0], b[1]);
      mma16816<T>(oa[mt][1], a, b[2], b[3]);
    }
  }
}

// Accumulator columns [16kk, 16kk+16) as an A operand (rounded to T).
template <class T, int NT>
__device__ __forceinline__ void acc_to_a(const float (&c)[NT][4], int kk, uint32_t (&a)[4]) {
  a[0] = pack2<T>(c[2 * kk][0], c[2 * kk][1]);
  a[1] = pack2<T>(c[2 * kk][2], c[2 * kk][3]);
  a[2] = pack2<T>(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = pack2<T>(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

template <int NT>
__device__ __forceinline__ void zero_acc(float (&c)[NT][4]) {
#pragma unroll
  for (int i = 0; i < NT; ++i) c[i][0] = c[i][1] = c[i][2] = c[i][3] = 0.0f;
}

// Sum over the 4 lanes of a quad (the lanes holding one accumulator row).
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Store accumulator tile rows into a row-major smem tile of T (rounded), at (row0, col0).
template <class T, int NT>
__device__ __forceinline__ void store_acc_smem(T* X, int ld, int row0, int col0, const float (&c)[NT][4], int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int col = col0 + 8 * nt + 2 * t;
    *reinterpret_cast<uint32_t*>(X + (row0 + g) * ld + col) = pack2<T>(c[nt][0], c[nt][1]);
    *reinterpret_cast<uint32_t*>(X + (row0 + g + 8) * ld + col) = pack2<T>(c[nt][2], c[nt][3]);
  }
}

}  // namespace attnbench::kernels::lin
