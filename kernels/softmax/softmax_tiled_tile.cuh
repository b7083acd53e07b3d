// Register-tile helpers shared by the tiled softmax-family kernels: one warpgroup holds a 64-row
// tile of a wgmma accumulator (layout in common/hopper.cuh: d[4c + e] is row g + 8*(e/2) of the
// warp's 16 rows, column 8c + 2t + e%2, with g = lane/4, t = lane%4).
//
// Kernel shape (all three kernels): warpgroup 0 is the producer (one thread issues TMA copies
// into a ring of shared-memory stages, each with a "full" and an "empty" mbarrier); warpgroups
// 1..NC are consumers, each owning 64 rows of the block. Consumers release a stage with one
// arrival per warp, so "empty" barriers count 4*NC arrivals.
#pragma once

#include "hopper.cuh"
#include "softmax_tiled_scores.cuh"
#include "storage.cuh"

namespace attnbench::kernels::tiled {

// The dynamic shared-memory window rounded up to 1024 bytes (the swizzle atom); launches ask for
// kSmemSlack extra bytes to allow it.
constexpr int kSmemSlack = 1024;
__device__ __forceinline__ uint8_t* align_smem(uint8_t* raw) {
  const uint32_t a = hopper::smem_u32(raw);
  return raw + ((1024u - (a & 1023u)) & 1023u);
}

// Registers of each role after setmaxnreg: with NC = 2 consumers (384 threads, 168 at entry)
// 24 / 240; with NC = 3 (512 threads, 128 at entry) 32 / 160. Both sum to at most 64K.
template <int NC>
struct RegSplit {
  static constexpr int kProducer = NC == 2 ? 24 : 32;
  static constexpr int kConsumer = NC == 2 ? 240 : 160;
};

// Where this thread's accumulator elements sit in its warpgroup's 64-row tile.
struct Frag {
  int row;  // tile row of e = 0, 1 (e = 2, 3: row + 8), in [0, 64)
  int col;  // tile column of c = 0, e = 0 (element (c, e): col + 8c + e%2)
  int lane;
  __device__ static Frag make() {
    const int tid = threadIdx.x & 127, lane = tid & 31;
    return {(tid >> 5) * 16 + (lane >> 2), 2 * (lane & 3), lane};
  }
};

// Row statistics live in the 4 threads of a quad (lanes 4g..4g+3): reduce across it.
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Accumulator columns [16kk, 16kk + 16) of a 64 x N tile as the A operand (16-bit T) of k-step kk.
template <class T, int R>
__device__ __forceinline__ void to_a_operand(const float (&d)[R], uint32_t (&a)[R / 8][4]) {
#pragma unroll
  for (int kk = 0; kk < R / 8; ++kk)
#pragma unroll
    for (int r = 0; r < 4; ++r) a[kk][r] = hopper::pack2<T>(d[8 * kk + 2 * r], d[8 * kk + 2 * r + 1]);
}

template <int R>
__device__ __forceinline__ void zero(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) d[i] = 0.0f;
}

// Store a 64 x D accumulator tile, times factor[r] for the rows of e/2 = r, into the row-major
// [n_rows, D] matrix `mat`, whose row row0 is tile row 0; rows >= n_rows are not written.
template <class T, int D>
__device__ __forceinline__ void store_tile(T* mat, int row0, int n_rows, const Frag& f, const float (&d)[D / 2],
                                          const float (&factor)[2]) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + f.row + 8 * r;
    if (row >= n_rows) continue;
    T* dst = mat + int64_t(row) * D + f.col;
#pragma unroll
    for (int c = 0; c < D / 8; ++c) {
      *reinterpret_cast<uint32_t*>(dst + 8 * c) =
          hopper::pack2<T>(d[4 * c + 2 * r] * factor[r], d[4 * c + 2 * r + 1] * factor[r]);
    }
  }
}

// Lorentz time coordinate x0 = sqrt(1/c + |x|^2) (fp32, from the storage values) of a row of D
// elements, summed in one fixed order wherever it is computed (tiled_time_coords from global
// memory, the forward from its Q tile), so that both give the same bits: the row is D/8 16-byte
// chunks of 8 elements; lane j of an 8-lane group holds chunks j and j + 8 (D = 128) and sums their
// squares in element order; the group adds its 8 partial sums by a butterfly (xor 1, 2, 4), which
// leaves the same bits in every lane (fp32 addition is commutative). Every lane must call it.
template <class T, int D>
__device__ __forceinline__ float time_coord(const uint4 (&chunk)[D / 64], float inv_c) {
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < D / 64; ++k) {
    const T* x = reinterpret_cast<const T*>(&chunk[k]);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float v = static_cast<float>(x[e]);
      ss = __fmaf_rn(v, v, ss);
    }
  }
#pragma unroll
  for (int m = 1; m < 8; m <<= 1) ss = __fadd_rn(ss, __shfl_xor_sync(0xffffffffu, ss, m));
  return __fsqrt_rn(__fadd_rn(inv_c, ss));
}

// The hyperbolic forward's fold (ATTNBENCH_HYP_FWD=fold, softmax_tiled_fwd.cuh): extra columns of Q
// and K whose dot product is -q0 k0 but for the term q0l k0l (~2^-36 relative in bf16).
// The split x = h + m + l (each rounded to T; the differences are exact in fp32; in bf16 the three
// 8-bit significands cover fp32's 24, so the split is exact or nearly).
template <class T>
__device__ __forceinline__ void split3(float x, float& h, float& m, float& l) {
  h = round_as<T>(x);
  const float r = __fsub_rn(x, h);
  m = round_as<T>(r);
  l = round_as<T>(__fsub_rn(r, m));
}
// The fold's K-side row of x0 (16 elements, 2 chunks of 16 bytes): [h, m, h, l, m, h, l, m, 0 ...].
template <class T>
__device__ __forceinline__ uint4 fold_k_chunk(float x0, int j) {
  float h, m, l;
  split3<T>(x0, h, m, l);
  if (j) return make_uint4(0, 0, 0, 0);
  return make_uint4(hopper::pack2<T>(h, m), hopper::pack2<T>(h, l), hopper::pack2<T>(m, h), hopper::pack2<T>(l, m));
}
// The fold's Q-side row of q0, quarter t (4 elements) of [-h, -h, -m, -h, -m, -l, -m, -l, 0 ...]
// (8 bytes): against the K side, -(hh + hm + mh + hl + mm + lh + ml + lm) of q0 = h + m + l.
template <class T>
__device__ __forceinline__ uint2 fold_q_quarter(float q0, int t) {
  float h, m, l;
  split3<T>(q0, h, m, l);
  if (t == 0) return make_uint2(hopper::pack2<T>(-h, -h), hopper::pack2<T>(-m, -h));
  if (t == 1) return make_uint2(hopper::pack2<T>(-m, -l), hopper::pack2<T>(-m, -l));
  return make_uint2(0, 0);
}

// Element (r, c) of a swizzled shared tile of `rows` rows (see hopper.cuh), as fp32.
template <class T>
__device__ __forceinline__ float tile_elem(const uint8_t* tile, int rows, int r, int c) {
  const T v = *reinterpret_cast<const T*>(tile + hopper::swizzled_offset(rows, r, c));
  return static_cast<float>(v);
}

}  // namespace attnbench::kernels::tiled
