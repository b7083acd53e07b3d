// The fused chunkwise forward of the vector gates (gated/vector, gated/rwkv6): one block per (b, h)
// over all value columns, the fp32 state in registers (held transposed, as in
// linear_family_tiled_fused.cuh, whose output and state-update code this kernel shares in form).
// The math and roundings are those of the emulation (reference/gated_emul.h) and of chunk_fwd's
// gate_vector policy (linear_family_tiled_fwd.cuh). Per chunk of C = 64 rows, with b_r the fp32
// cumulative log-gate (per column d), bq_r = b_r (rwkv6: b_{r-1}, b_{-1} = 0), 16-row blocks I and
// their ends e_I = b_{16I+15} (e_{-1} = 0, last = e_3):
//   o_r = scale (rd(A) V + rd(q_r exp(bq_r)) rd(S) [+ a_r v_r, rwkv6, fp32])
//   S  <- diag(exp(last)) S + rd(k_j exp(last - b_j))^T V
//   A_rj = sum_d q_rd k_jd exp(bq_rd - b_jd),  j <= r (rwkv6: j < r; a_r = sum_d q_rd u_d k_rd)
//
// Factoring. Every exp is computed once per (row, d), each factor <= 1:
//   qd_t = q_t exp(bq_t - e_{I-1})     (t in block I)       kd_s = k_s exp(e_J - b_s)   (s in block J)
// and per column, per chunk: M_IJ = exp(e_{I-1} - e_J) <= 1 (J < I), invD_I = exp(e_{I-1} - e_I) >= 1,
// P_I = exp(e_{I-1}), E_J = exp(last - e_J). Then
//   rd(q exp(bq)) = rd(qd P_I),  rd(k exp(last - b)) = rd(kd E_J)        (the state's operands)
//   A, block (I, J < I): rd(qd M_IJ) . rd(kd) on tensor cores (both factors <= 1: any dtype holds them)
//   A, diagonal block I: sum_d (qd_t invD_I) kd_s in fp32 on CUDA cores.
// The diagonal's product is exact up to fp32 rounding while no factor leaves fp32's normal range:
// every exponent above lies in [-span_I, span_I], span_I = e_{I-1} - e_I (the block's total decay),
// so spans up to kSpanMax = 80 (exp(80) = 5.5e34, exp(-80) = 1.8e-35, both normal) are safe. That
// holds for gates of ordinary size (logsigmoid(randn) sums to about -13 over 16 rows); a chunk where
// some span exceeds it computes its diagonal blocks pair by pair, exp(sum of the gates between
// s and t) read from global memory (slow, exact). The off-diagonal products of factors <= 1 can only
// underflow where the true weight is below 1e-38 anyway.
//
// Layout. kWarps = Dv / 16; warp w owns value columns 16w.. of o and S^T (64 registers at Dk = 128).
// Column phase: thread (d, part) owns gate column d and kRPT = C / kTPC consecutive rows, where kTPC =
// threads / Dk threads share a column (the lanes lane ^ (kCPW m)). Two stages of q, k, v, g (cp.async,
// one chunk ahead); per chunk three barriers:
//   B1 (chunk c landed; chunk c-1 done) -> load c+1; column phase: b, qd (over g), kd, Qt = rd(qd P)
//      over q, Kt = rd(kd E) over k, M, invD, exp(last), rwkv6's a_r partials
//   B2 -> rd(A): diagonal blocks (warps 0..3, fp32), off-diagonal tiles (tensor cores); and o = Qt rd(S)
//   B3 -> o += rd(A) V (+ a_r v_r); S^T <- exp(last) S^T + V^T Kt
#pragma once

#include "linear_family_tiled.cuh"
#include "linear_family_wgmma.cuh"

namespace attnbench::kernels::lin_tiled {

#ifndef ATTNBENCH_LIN_VEC_SPAN_MAX
#define ATTNBENCH_LIN_VEC_SPAN_MAX 80.0f  // a sim build may move it (-1: the exact path always)
#endif
constexpr float kSpanMax = ATTNBENCH_LIN_VEC_SPAN_MAX;

template <class T_, bool kBonus_, int kDk_, int kDv_, bool kEarly_ = true, bool kBulk_ = false>
struct VecCfg {
  using T = T_;
  static constexpr bool kBonus = kBonus_;
  // kEarly: Qt rd(S) before B3, overlapping rd(A) (warps 0..3 before their diagonal block, warps
  // 4..7 after their off-diagonal tiles); else after B3 (the first measured order, for A/B).
  static constexpr bool kEarly = kEarly_;
  // kBulk: chunk loads as one bulk copy (cp.async.bulk, sm_90) per row and tensor, completing on
  // an mbarrier per stage, issued by warp 0 (A/B only: 1.6x slower on the H200, the other warps
  // wait at B1 for warp 0); else cp.async of 16 bytes per thread (the default).
  static constexpr bool kBulk = kBulk_;
  // kSwz: the q, k, v tiles and rd(A) as 64-column chunks of 128-byte rows with the 128-byte swizzle
  // (the wgmma kernel's layout, WgVecCfg in linear_family_tiled_fused_vec_wg.cuh); else padded rows.
  static constexpr bool kSwz = false;
  static constexpr int kDk = kDk_, kDv = kDv_;
  static constexpr int kWarps = kDv / 16, kThreads = 32 * kWarps;
  static constexpr int kLdQ = kDk + 8, kLdV = kDv + 8, kLdA = kC + 8;
  static constexpr int kLdF = kDk + 8;                 // fp32 rows (g, qd, kd): 8 floats of padding
  static constexpr int kKT = kDk / 16, kFT = kDk / 8;
  static constexpr int kTPC = kThreads / kDk;          // threads per gate column: 1, 2 or 4
  static constexpr int kCPW = 32 / kTPC;               // gate columns per warp
  static constexpr int kRPT = kC / kTPC;               // rows per thread in the column phase
  static constexpr int kNB = kRPT / 16;                // 16-row blocks per thread
  static constexpr int kQBytes = kC * kLdQ * 2, kVBytes = kC * kLdV * 2, kFBytes = kC * kLdF * 4;
  static constexpr int kStageBytes = 2 * kQBytes + kVBytes + kFBytes;
  static constexpr int kABytes = kC * kLdA * 2;
  static constexpr int kConstBytes = 11 * kDk * 4;     // M [6][Dk], invD [4][Dk], exp(last) [Dk]
  static constexpr int kRowBytes = (kWarps + 1) * kC * 4;  // a_r partials per warp, a_r
  static constexpr int kTotFloats = 0;                 // vec_columns_pk's block sums (its configs only)
  static constexpr int kSmemBytes = 2 * kStageBytes + kFBytes + kABytes + kConstBytes + kRowBytes + 32;
  static_assert(kDv == 64 || kDv == 128, "4 or 8 warps");
  static_assert(kDk == 64 || kDk == 128, "q/k width 64 or 128");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block");
};

template <class C>
struct VecTile {
  using T = typename C::T;
  unsigned char* base;
  __device__ explicit VecTile(unsigned char* smem) : base(smem) {}
  __device__ T* Q(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes); }
  __device__ T* K(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes + C::kQBytes); }
  __device__ T* V(int s) const { return reinterpret_cast<T*>(base + s * C::kStageBytes + 2 * C::kQBytes); }
  __device__ float* G(int s) const {  // g, then qd in place
    return reinterpret_cast<float*>(base + s * C::kStageBytes + 2 * C::kQBytes + C::kVBytes);
  }
  __device__ float* Kd() const { return reinterpret_cast<float*>(base + 2 * C::kStageBytes); }
  __device__ T* A() const { return reinterpret_cast<T*>(base + 2 * C::kStageBytes + C::kFBytes); }
  __device__ float* M() const {
    return reinterpret_cast<float*>(base + 2 * C::kStageBytes + C::kFBytes + C::kABytes);
  }
  __device__ float* InvD() const { return M() + 6 * C::kDk; }
  __device__ float* Dec() const { return M() + 10 * C::kDk; }
  __device__ float* Tot() const { return M() + 11 * C::kDk; }  // [4][Dk] (C::kTotFloats)
  __device__ float* BonP() const { return M() + 11 * C::kDk + C::kTotFloats; }  // [kWarps][C]
  __device__ float* Bon() const { return BonP() + C::kWarps * kC; }
  __device__ int* Flags() const { return reinterpret_cast<int*>(Bon() + kC); }
  __device__ uint64_t* Bar(int s) const { return reinterpret_cast<uint64_t*>(Bon() + kC + 4) + s; }  // 8-aligned
  // Element (r, d) of a 16-bit tile with rows of ld elements, or with C::kSwz of 64-column chunks
  // (1024-byte aligned) of 128-byte rows with the 128-byte swizzle.
  __device__ T* at(T* tile, int ld, int r, int d) const {
    if constexpr (C::kSwz) {
      unsigned char* b = reinterpret_cast<unsigned char*>(tile) + (d >> 6) * (kC * 128);
      return reinterpret_cast<T*>(b + swz128(r * 128 + 2 * (d & 63)));
    } else {
      return tile + r * ld + d;
    }
  }
  __device__ T* v_at(int s, int r, int n) const { return at(V(s), C::kLdV, r, n); }
  __device__ T* a_at(int r, int j) const { return at(A(), C::kLdA, r, j); }
};

// ---- bulk copies on an mbarrier (sm_90); the host simulator copies at once ----
#if defined(ATTNBENCH_LIN_SIM)
inline void vec_mbar_init(uint64_t*) {}
inline void vec_mbar_expect(uint64_t*, uint32_t) {}
inline void vec_mbar_wait(uint64_t*, uint32_t) {}
inline void vec_fence_proxy() {}
inline void vec_bulk(void* dst, const void* src, uint32_t bytes, uint64_t*) { std::memcpy(dst, src, bytes); }
#elif !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
__device__ __forceinline__ void vec_mbar_init(uint64_t* bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(smem_addr(bar)) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void vec_mbar_expect(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void vec_mbar_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  } while (!done);
}
// This thread's generic-proxy accesses of shared memory ordered before later async-proxy ones.
__device__ __forceinline__ void vec_fence_proxy() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void vec_bulk(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   smem_addr(dst)),
               "l"(src), "r"(bytes), "r"(smem_addr(bar))
               : "memory");
}
#else
__device__ __forceinline__ void vec_mbar_init(uint64_t*) {}
__device__ __forceinline__ void vec_mbar_expect(uint64_t*, uint32_t) {}
__device__ __forceinline__ void vec_mbar_wait(uint64_t*, uint32_t) {}
__device__ __forceinline__ void vec_fence_proxy() {}
__device__ __forceinline__ void vec_bulk(void*, const void*, uint32_t, uint64_t*) { __trap(); }  // never launched
#endif

// Off-diagonal tile i of A: (row block I, key block J), J < I.
__device__ __forceinline__ void vec_tile_ij(int i, int& I, int& J) {
  I = i == 0 ? 1 : i < 3 ? 2 : 3;
  J = i == 0 ? 0 : i < 3 ? i - 1 : i - 3;
}

// cp.async of chunk c's gate rows (g: this (b, h)'s) into G (fp32, rows of C::kLdF; zero outside
// [0, T) and Dqk).
template <class C>
__device__ __forceinline__ void vec_load_g(const EngineParams& p, const float* g, float* G, const Rows& rows, int c) {
  constexpr int kSegG = C::kDk / 4;
  for (int idx = threadIdx.x; idx < kC * kSegG; idx += C::kThreads) {
    const int r = idx / kSegG, col = (idx % kSegG) * 4, tm = rows.time(c, r);
    const bool ok = tm < p.T && col < p.Dqk;
    cp_async16(G + r * C::kLdF + col, g + (ok ? int64_t(tm) * p.Dqk + col : 0), ok);
  }
}

// cp.async of chunk c's q, k, v, g rows into stage c % 2 (zero-filled outside [0, T) and the widths).
template <class C>
__device__ void vec_load(const EngineParams& p, const VecTile<C>& t, const Rows& rows, int bh, int c) {
  using T = typename C::T;
  const int s = c & 1;
  const T* q = static_cast<const T*>(p.q) + int64_t(bh) * p.T * p.Dqk;
  const T* k = static_cast<const T*>(p.k) + int64_t(bh) * p.T * p.Dqk;
  const T* v = static_cast<const T*>(p.v) + int64_t(bh) * p.T * p.Dvv;
  const float* g = p.g + int64_t(bh) * p.T * p.Dqk;
  constexpr int kSegQ = C::kDk / 8, kSegV = C::kDv / 8;
  for (int idx = threadIdx.x; idx < kC * kSegQ; idx += C::kThreads) {
    const int r = idx / kSegQ, col = (idx % kSegQ) * 8, tm = rows.time(c, r);
    const bool ok = tm < p.T && col < p.Dqk;
    const int64_t off = ok ? int64_t(tm) * p.Dqk + col : 0;
    cp_async16(t.Q(s) + r * C::kLdQ + col, q + off, ok);
    cp_async16(t.K(s) + r * C::kLdQ + col, k + off, ok);
  }
  for (int idx = threadIdx.x; idx < kC * kSegV; idx += C::kThreads) {
    const int r = idx / kSegV, col = (idx % kSegV) * 8, tm = rows.time(c, r);
    const bool ok = tm < p.T && col < p.Dvv;
    cp_async16(t.V(s) + r * C::kLdV + col, v + (ok ? int64_t(tm) * p.Dvv + col : 0), ok);
  }
  vec_load_g<C>(p, g, t.G(s), rows, c);
}

// Bulk variant of vec_load, by warp 0: rows of chunk c inside [0, T) by one bulk copy per tensor,
// the rest of the 64 rows zeroed (generic stores; only the last chunk has any). Columns beyond
// Dqk, Dvv were zeroed once at the start and are never written by a copy (nor made nonzero by
// the column phase: 0 times a finite factor).
template <class C>
__device__ void vec_load_bulk(const EngineParams& p, const VecTile<C>& t, int bh, int c, int lane) {
  using T = typename C::T;
  const int s = c & 1, n = min(kC, p.T - kC * c);
  const uint32_t rq = p.Dqk * 2, rv = p.Dvv * 2, rg = p.Dqk * 4;
  uint64_t* bar = t.Bar(s);
  if (lane == 0) vec_mbar_expect(bar, uint32_t(n) * (2 * rq + rv + rg));
  __syncwarp();
  const int64_t row0 = int64_t(bh) * p.T + int64_t(kC) * c;
  const T* q = static_cast<const T*>(p.q) + row0 * p.Dqk;
  const T* k = static_cast<const T*>(p.k) + row0 * p.Dqk;
  const T* v = static_cast<const T*>(p.v) + row0 * p.Dvv;
  const float* g = p.g + row0 * p.Dqk;
  for (int r = lane; r < kC; r += 32) {
    if (r < n) {
      vec_bulk(t.Q(s) + r * C::kLdQ, q + int64_t(r) * p.Dqk, rq, bar);
      vec_bulk(t.K(s) + r * C::kLdQ, k + int64_t(r) * p.Dqk, rq, bar);
      vec_bulk(t.V(s) + r * C::kLdV, v + int64_t(r) * p.Dvv, rv, bar);
      vec_bulk(t.G(s) + r * C::kLdF, g + int64_t(r) * p.Dqk, rg, bar);
    } else {
      const uint4 z = make_uint4(0u, 0u, 0u, 0u);
      for (int i = 0; i < C::kDk / 8; ++i) {
        reinterpret_cast<uint4*>(t.Q(s) + r * C::kLdQ)[i] = z;
        reinterpret_cast<uint4*>(t.K(s) + r * C::kLdQ)[i] = z;
      }
      for (int i = 0; i < C::kDv / 8; ++i) reinterpret_cast<uint4*>(t.V(s) + r * C::kLdV)[i] = z;
      for (int i = 0; i < C::kDk / 4; ++i) reinterpret_cast<uint4*>(t.G(s) + r * C::kLdF)[i] = z;
    }
  }
}

// Bulk variant: the columns beyond the tensors' widths, zero in both stages (once).
template <class C>
__device__ void vec_zero_pad(const EngineParams& p, const VecTile<C>& t) {
  using T = typename C::T;
  for (int s = 0; s < 2; ++s) {
    for (int idx = threadIdx.x; idx < kC * C::kDk; idx += C::kThreads) {
      const int r = idx / C::kDk, d = idx % C::kDk;
      if (d < p.Dqk) continue;
      t.Q(s)[r * C::kLdQ + d] = from_f32<T>(0.0f);
      t.K(s)[r * C::kLdQ + d] = from_f32<T>(0.0f);
      t.G(s)[r * C::kLdF + d] = 0.0f;
    }
    for (int idx = threadIdx.x; idx < kC * C::kDv; idx += C::kThreads) {
      const int r = idx / C::kDv, d = idx % C::kDv;
      if (d >= p.Dvv) t.V(s)[r * C::kLdV + d] = from_f32<T>(0.0f);
    }
  }
}

template <int N>
__device__ __forceinline__ float pick(const float (&x)[N], int i) {
  float r = x[0];
#pragma unroll
  for (int j = 1; j < N; ++j) r = i == j ? x[j] : r;
  return r;
}

// Sums x[0..N) over the lanes l ^ m (m < 2M): lane l keeps a slice of N / 2M rows, the upper half at
// each step where bit m of l is set; row += the slice's offset.
template <int M, int N, int L>
__device__ __forceinline__ void reduce_scatter(float (&x)[L], int lane, int& row) {
  if constexpr (M >= 1) {
    const bool up = (lane & M) != 0;
#pragma unroll
    for (int i = 0; i < N / 2; ++i) {
      const float keep = up ? x[N / 2 + i] : x[i], send = up ? x[i] : x[N / 2 + i];
      x[i] = keep + __shfl_xor_sync(0xffffffffu, send, M);
    }
    row += up ? N / 2 : 0;
    reduce_scatter<M / 2, N / 2>(x, lane, row);
  }
}

// Column phase of chunk c (stage s): see the header. Thread (d, part): rows [part kRPT, + kRPT).
template <class C>
__device__ void vec_columns(const EngineParams& p, const VecTile<C>& t, int s, int c, int h, int warp, int lane) {
  using T = typename C::T;
  const int part = lane / C::kCPW, d = warp * C::kCPW + lane % C::kCPW, r0 = part * C::kRPT;
  float* G = t.G(s) + d;
  float* Kd = t.Kd() + d;
  T* const Q = C::kSwz ? t.Q(s) : t.Q(s) + d;  // element (r, d) by qk(Q, r): padded rows or swizzled chunks
  T* const K = C::kSwz ? t.K(s) : t.K(s) + d;
  auto qk = [&](T* tile, int r) -> T& {
    if constexpr (C::kSwz) return *t.at(tile, 0, r, d);
    else return tile[r * C::kLdQ];
  };
  // pass 1: running sums at the ends of this thread's blocks; every part's, by shuffles. The gates
  // stay in registers for pass 2 where a thread has at most 32 rows (kKeepG).
  constexpr bool kKeepG = C::kRPT <= 32;
  float gk[kKeepG ? C::kRPT : 1];
  float loc[C::kNB];
  float run = 0.0f;
#pragma unroll
  for (int i = 0; i < C::kRPT; ++i) {
    const float gi = G[(r0 + i) * C::kLdF];
    if constexpr (kKeepG) gk[i] = gi;
    run += gi;
    if ((i & 15) == 15) loc[i >> 4] = run;
  }
  float got[C::kTPC][C::kNB], all[C::kTPC][C::kNB];  // got[m]: part ^ m's (warp-uniform masks)
#pragma unroll
  for (int m = 0; m < C::kTPC; ++m)
#pragma unroll
    for (int j = 0; j < C::kNB; ++j) got[m][j] = m == 0 ? loc[j] : __shfl_xor_sync(0xffffffffu, loc[j], C::kCPW * m);
#pragma unroll
  for (int q = 0; q < C::kTPC; ++q)
#pragma unroll
    for (int j = 0; j < C::kNB; ++j) {
      all[q][j] = got[0][j];
#pragma unroll
      for (int m = 1; m < C::kTPC; ++m) all[q][j] = (q ^ part) == m ? got[m][j] : all[q][j];
    }
  // e_I = (sum of the earlier parts' totals, in order) + the part's running sum (as pass 2 forms b)
  float e[4], off = 0.0f, my_off = 0.0f;
#pragma unroll
  for (int q = 0; q < C::kTPC; ++q) {
    my_off = q == part ? off : my_off;
#pragma unroll
    for (int j = 0; j < C::kNB; ++j) e[q * C::kNB + j] = off + all[q][j];
    off = off + all[q][C::kNB - 1];
  }
  const float last = e[3];
  if (part == 0) {
    float* M = t.M() + d;
    bool big = false;
#pragma unroll
    for (int i = 0; i < 6; ++i) {
      int I, J;
      vec_tile_ij(i, I, J);
      M[i * C::kDk] = __expf(e[I - 1] - e[J]);
    }
#pragma unroll
    for (int I = 0; I < 4; ++I) {
      const float prev = I == 0 ? 0.0f : e[I - 1];
      t.InvD()[I * C::kDk + d] = __expf(prev - e[I]);
      big = big || prev - e[I] > kSpanMax;
    }
    t.Dec()[d] = __expf(last);
    if (big) t.Flags()[c & 1] = 1;
  }
  // pass 2: per row, the factors and operands
  const float ud = C::kBonus && d < p.Dqk ? p.u[h * p.Dqk + d] : 0.0f;
  constexpr int kNG = C::kRPT > 32 ? 32 : C::kRPT;  // rwkv6: rows per reduce-scatter group
  float bon[C::kBonus ? kNG : 1];
  float bprev = my_off;  // b_{r0 - 1} (0 for part 0)
  run = 0.0f;
#pragma unroll
  for (int nb = 0; nb < C::kNB; ++nb) {
    const int I = part * C::kNB + nb;
    const float ref_q = I == 0 ? 0.0f : pick(e, I - 1), e_i = pick(e, I);
    const float P = __expf(ref_q), E = __expf(last - e_i);
    // The block's loads first, then its math and stores: the compiler may not move a load above
    // a store to the same tiles, so loads interleaved with the stores would each wait in turn.
    float gb[16];
    T qb[16], kb[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const int r = r0 + 16 * nb + i;
      if constexpr (kKeepG) gb[i] = gk[16 * nb + i];
      else gb[i] = G[r * C::kLdF];
      qb[i] = qk(Q, r);
      kb[i] = qk(K, r);
    }
#pragma unroll
    for (int i = 16 * nb; i < 16 * nb + 16; ++i) {
      const int r = r0 + i;
      run += gb[i - 16 * nb];
      const float b = my_off + run, bq = C::kBonus ? bprev : b;
      bprev = b;
      const float qv = to_f32(qb[i - 16 * nb]), kv = to_f32(kb[i - 16 * nb]);
      const float qd = qv * __expf(bq - ref_q), kd = kv * __expf(e_i - b);
      G[r * C::kLdF] = qd;
      Kd[r * C::kLdF] = kd;
      qk(Q, r) = from_f32<T>(qd * P);
      qk(K, r) = from_f32<T>(kd * E);
      if constexpr (C::kBonus) bon[i % kNG] = qv * kv * ud;
    }
    if constexpr (C::kBonus) {
      if ((16 * nb + 16) % kNG == 0) {  // a_r over this warp's columns: reduce-scatter over the part's lanes
        int row = r0 + 16 * nb + 16 - kNG;
        reduce_scatter<C::kCPW / 2, kNG>(bon, lane, row);
        float* bp = t.BonP() + warp * kC;
#pragma unroll
        for (int i = 0; i < kNG / C::kCPW; ++i) bp[row + i] = bon[i];
      }
    }
  }
}

// Diagonal block I of A (warp I < 4): lane (half hh, rows rg + 4i, keys cg + 4j), d in half hh.
// kBonA (rwkv6 in fused_vec_wg_fwd): A_rr = rd(a_r), a_r from vec_columns_pk's two column-half
// partials (BonP [2][C]), so that rd(A) V carries the bonus; else A_rr = 0 there (strict j < r).
template <class C, bool kBonA = false>
__device__ void vec_diag(const EngineParams& p, const VecTile<C>& t, const Rows& rows, int s, int bh, int c, int I,
                         int lane) {
  using T = typename C::T;
  const int hh = lane >> 4, rg = (lane >> 2) & 3, cg = lane & 3;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  constexpr int kHalf = C::kDk / 2;
  if (!t.Flags()[c & 1]) {
    const float* Qd = t.G(s) + 16 * I * C::kLdF;
    const float* Kd = t.Kd() + 16 * I * C::kLdF;
    const float* iD = t.InvD() + I * C::kDk;
#pragma unroll 2
    for (int d = hh * kHalf; d < hh * kHalf + kHalf; d += 4) {
      const float4 w = *reinterpret_cast<const float4*>(iD + d);
      float4 qv[4], kv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        qv[i] = *reinterpret_cast<const float4*>(Qd + (rg + 4 * i) * C::kLdF + d);
        qv[i].x *= w.x, qv[i].y *= w.y, qv[i].z *= w.z, qv[i].w *= w.w;
        kv[i] = *reinterpret_cast<const float4*>(Kd + (cg + 4 * i) * C::kLdF + d);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j <= i; ++j) {  // keys cg + 4j > rows rg + 4i for j > i: masked
          acc[i][j] += qv[i].x * kv[j].x;
          acc[i][j] += qv[i].y * kv[j].y;
          acc[i][j] += qv[i].z * kv[j].z;
          acc[i][j] += qv[i].w * kv[j].w;
        }
    }
  } else {  // a span beyond kSpanMax in this chunk: exp(sum_{s < x <= t'} g_x) per pair (t' = t, rwkv6 t - 1)
    const T* q = static_cast<const T*>(p.q) + int64_t(bh) * p.T * p.Dqk;
    const T* k = static_cast<const T*>(p.k) + int64_t(bh) * p.T * p.Dqk;
    const float* g = p.g + int64_t(bh) * p.T * p.Dqk;
    for (int d = hh * kHalf; d < hh * kHalf + kHalf && d < p.Dqk; ++d) {
      float ex[4][4], qv[4], kv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int tq = rows.time(c, 16 * I + rg + 4 * i), tk = rows.time(c, 16 * I + cg + 4 * i);
        qv[i] = tq < p.T ? to_f32(q[int64_t(tq) * p.Dqk + d]) : 0.0f;
        kv[i] = tk < p.T ? to_f32(k[int64_t(tk) * p.Dqk + d]) : 0.0f;
#pragma unroll
        for (int j = 0; j < 4; ++j) ex[i][j] = 0.0f;
      }
      for (int x = 1; x < 16; ++x) {
        const int tm = rows.time(c, 16 * I + x);
        const float gx = tm < p.T ? g[int64_t(tm) * p.Dqk + d] : 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int tt = rg + 4 * i - (C::kBonus ? 1 : 0), ss = cg + 4 * j;
            ex[i][j] += x > ss && x <= tt ? gx : 0.0f;
          }
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += qv[i] * kv[j] * __expf(ex[i][j]);
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] += __shfl_xor_sync(0xffffffffu, acc[i][j], 16);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if ((i >> 1) != hh) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int tt = rg + 4 * i, ss = cg + 4 * j;
      const bool keep = C::kBonus ? ss < tt : ss <= tt;
      float x = keep ? acc[i][j] : 0.0f;
      if (kBonA && ss == tt) x = t.BonP()[16 * I + tt] + t.BonP()[kC + 16 * I + tt];
      *t.a_at(16 * I + tt, 16 * I + ss) = from_f32<T>(x);
    }
  }
}

// sc = rd(qd_I f) rd(kd_J)^T over d: the 16 x 16 block (I, J) of A on tensor cores, f a per-column
// factor (M_IJ for the off-diagonal tiles; invD_I for the wgmma kernel's diagonal blocks).
template <class C>
__device__ __forceinline__ void vec_block_mma(const VecTile<C>& t, int s, int I, int J, const float* f, float (&sc)[2][4],
                                              int lane) {
  using T = typename C::T;
  const int g = lane >> 2, q4 = lane & 3;
  const float* q0 = t.G(s) + (16 * I + g) * C::kLdF;
  const float* q1 = q0 + 8 * C::kLdF;
  const float* k0 = t.Kd() + (16 * J + g) * C::kLdF;
  const float* k1 = k0 + 8 * C::kLdF;
  zero_acc(sc);
#pragma unroll
  for (int kk = 0; kk < C::kKT; ++kk) {
    const int d = 16 * kk + 2 * q4;
    const float2 m0 = *reinterpret_cast<const float2*>(f + d), m1 = *reinterpret_cast<const float2*>(f + d + 8);
    const float2 x0 = *reinterpret_cast<const float2*>(q0 + d), x1 = *reinterpret_cast<const float2*>(q1 + d);
    const float2 x2 = *reinterpret_cast<const float2*>(q0 + d + 8), x3 = *reinterpret_cast<const float2*>(q1 + d + 8);
    uint32_t a[4];
    a[0] = pack2<T>(x0.x * m0.x, x0.y * m0.y);
    a[1] = pack2<T>(x1.x * m0.x, x1.y * m0.y);
    a[2] = pack2<T>(x2.x * m1.x, x2.y * m1.y);
    a[3] = pack2<T>(x3.x * m1.x, x3.y * m1.y);
    const float2 y0 = *reinterpret_cast<const float2*>(k0 + d), y1 = *reinterpret_cast<const float2*>(k0 + d + 8);
    const float2 y2 = *reinterpret_cast<const float2*>(k1 + d), y3 = *reinterpret_cast<const float2*>(k1 + d + 8);
    mma16816<T>(sc[0], a, pack2<T>(y0.x, y0.y), pack2<T>(y1.x, y1.y));
    mma16816<T>(sc[1], a, pack2<T>(y2.x, y2.y), pack2<T>(y3.x, y3.y));
  }
}

// Off-diagonal tile i of A: rd(qd M_IJ) rd(kd)^T, 16 x 16, on tensor cores.
template <class C>
__device__ void vec_offdiag(const VecTile<C>& t, int s, int i, int lane) {
  using T = typename C::T;
  const int g = lane >> 2, q4 = lane & 3;
  int I, J;
  vec_tile_ij(i, I, J);
  float sc[2][4];
  vec_block_mma<C>(t, s, I, J, t.M() + i * C::kDk, sc, lane);
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const int col = 16 * J + 8 * nt + 2 * q4, r = 16 * I + g;
    *reinterpret_cast<uint32_t*>(t.a_at(r, col)) = pack2<T>(sc[nt][0], sc[nt][1]);
    *reinterpret_cast<uint32_t*>(t.a_at(r + 8, col)) = pack2<T>(sc[nt][2], sc[nt][3]);
  }
}

// rwkv6 (after B2): a_r = the sum of the warps' partials of row r (threads r < C).
template <class C>
__device__ __forceinline__ void vec_bonus_sum(const VecTile<C>& t) {
  if (C::kBonus && threadIdx.x < kC) {
    float a = 0.0f;
#pragma unroll
    for (int w = 0; w < C::kWarps; ++w) a += t.BonP()[w * kC + threadIdx.x];
    t.Bon()[threadIdx.x] = a;
  }
}

// Off-diagonal tiles of warps 4.. (8 warps; with 4 warps every warp): tiles i0 and i0 + 4 (< 6).
template <class C>
__device__ __forceinline__ void vec_offdiag_warp(const VecTile<C>& t, int s, int warp, int lane) {
  const int i0 = C::kWarps == 8 ? warp - 4 : warp;
  if (i0 >= 0) {
    vec_offdiag<C>(t, s, i0, lane);
    if (i0 + 4 < 6) vec_offdiag<C>(t, s, i0 + 4, lane);
  }
}

// grid (1, B*H); C::kThreads threads; shared memory C::kSmemBytes. Forward order only.
template <class C>
__global__ void __launch_bounds__(C::kThreads, 1) fused_vec_fwd(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem);
  const VecTile<C> t(smem);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
  const int bh = blockIdx.y, h = bh % p.H, n0 = 16 * warp;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, false, false};
  T* o = static_cast<T*>(p.o) + int64_t(bh) * p.T * p.Dvv;
  float st[C::kFT][4];  // S^T rows n0 + g (+8), columns f = 8 ft + 2 q4 (+1)
  zero_acc(st);
  if (threadIdx.x == 0) t.Flags()[0] = t.Flags()[1] = 0;
  if constexpr (C::kBulk) {
    if (threadIdx.x == 0) vec_mbar_init(t.Bar(0)), vec_mbar_init(t.Bar(1));
    vec_zero_pad<C>(p, t);
    vec_fence_proxy();
    __syncthreads();
    if (warp == 0) vec_load_bulk<C>(p, t, bh, 0, lane);
  } else {
    vec_load<C>(p, t, rows, bh, 0);
    cp_async_commit();
  }

  for (int c = 0; c < NC; ++c) {
    if constexpr (C::kBulk) {
      vec_mbar_wait(t.Bar(c & 1), (c >> 1) & 1);  // chunk c's copies (and warp 0's zeroed rows, by B1)
      vec_fence_proxy();  // this thread's accesses of stage (c+1)%2 (chunk c-1) before the copies into it
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // B1: chunk c landed; chunk c-1 done everywhere
    if constexpr (C::kBulk) {
      if (warp == 0 && c + 1 < NC) vec_load_bulk<C>(p, t, bh, c + 1, lane);
    } else {
      if (c + 1 < NC) vec_load<C>(p, t, rows, bh, c + 1);
      cp_async_commit();
    }
    const int s = c & 1;
    vec_columns<C>(p, t, s, c, h, warp, lane);
    __syncthreads();  // B2
    if (threadIdx.x == 0) t.Flags()[(c + 1) & 1] = 0;
    vec_bonus_sum<C>(t);
    const T *Q = t.Q(s), *V = t.V(s), *A = t.A(), *Kx = t.K(s);
    // ---- o (rows 0..63, this warp's 16 columns) = Qt rd(S) + rd(A) V (+ a_r v_r)
    float oa[4][2][4];
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) zero_acc(oa[mt]);
    auto inter = [&] {  // oa += Qt rd(S)
#pragma unroll
      for (int kk = 0; kk < C::kKT; ++kk) {
        uint32_t b[4];  // rd(S)[16kk.., n0..]: (b[0], b[2]) columns n0.., (b[1], b[3]) columns n0+8..
        acc_to_a<T>(st, kk, b);
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
          uint32_t a[4];
          ldsm_a(a, Q, C::kLdQ, 16 * mt, 16 * kk, lane);
          mma16816<T>(oa[mt][0], a, b[0], b[2]);
          mma16816<T>(oa[mt][1], a, b[1], b[3]);
        }
      }
    };
    auto offdiag = [&] { vec_offdiag_warp<C>(t, s, warp, lane); };
    if (C::kEarly && C::kWarps == 8) {  // tensor-core and FMA work of the two warps of a scheduler overlap
      if (warp < 4) {
        inter();
        vec_diag<C>(p, t, rows, s, bh, c, warp, lane);
      } else {
        offdiag();
        inter();
      }
    } else {
      if (warp < 4) vec_diag<C>(p, t, rows, s, bh, c, warp, lane);
      offdiag();
      if (C::kEarly) inter();
    }
    __syncthreads();  // B3: rd(A), a_r ready
    if (!C::kEarly) inter();
    causal_av<T>(oa, A, C::kLdA, V, C::kLdV, n0, lane);
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int r = 16 * mt + g + 8 * i;
        if (!rows.valid(c, r)) continue;
        const int64_t row = int64_t(rows.time(c, r)) * p.Dvv;
        const float bon = C::kBonus ? t.Bon()[r] : 0.0f;
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          const int col = n0 + 8 * nt + 2 * q4;
          float x0 = oa[mt][nt][2 * i], x1 = oa[mt][nt][2 * i + 1];
          if constexpr (C::kBonus) {
            const float2 vv = unpack2<T>(*reinterpret_cast<const uint32_t*>(V + r * C::kLdV + col));
            x0 += bon * vv.x, x1 += bon * vv.y;
          }
          if (col < p.Dvv) *reinterpret_cast<uint32_t*>(o + row + col) = pack2<T>(p.scale * x0, p.scale * x1);
        }
      }
    }

    // ---- S^T <- S^T diag(exp(last)) + V^T Kt
    {
      const float* dec = t.Dec();
#pragma unroll
      for (int ft = 0; ft < C::kFT; ++ft) {
        const float2 dd = *reinterpret_cast<const float2*>(dec + 8 * ft + 2 * q4);
        st[ft][0] *= dd.x, st[ft][1] *= dd.y, st[ft][2] *= dd.x, st[ft][3] *= dd.y;
      }
    }
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      ldsm_a_trans(a, V, C::kLdV, n0, 16 * kk, lane);
#pragma unroll
      for (int np = 0; np < C::kFT / 2; ++np) {
        uint32_t b[4];
        ldsm_b_kn(b, Kx, C::kLdQ, 16 * kk, 16 * np, lane);
        mma_pair<T>(st, np, a, b);
      }
    }
  }
}

}  // namespace attnbench::kernels::lin_tiled
