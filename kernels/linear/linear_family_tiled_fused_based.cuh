// The fused chunkwise forward of based for Dk <= 16 on the Taylor features: one block per (b, h)
// covering all value columns (Dv <= 128), the fp32 state in registers. Notation in
// linear_family_tiled.cuh; the math and the roundings are chunk_fwd's (linear_family_tiled_fwd.cuh,
// policy `based`):
//   y = sqrt(scale) x,  phi(x) = [1, y, y_a^2/sqrt2, y_a y_b (a < b), 0 ..]   (F = 160 rows, 153 used)
//   A_rj = 1 + s + s^2/2, s = scale q_r.k_j  for j <= r (and j a row of the sequence), else 0
//   o_r  = (rd(phi_q) rd(S) + rd(A) V)_r / den_r,   den_r = phi(q_r).z + sum_j A_rj + 1e-6  (fp32)
//   S   <- S + rd(phi_k)^T V,   z <- z + sum_j phi(k_j)  (fp32, from the inputs, not the rounded phi)
// with phi(q).z = n + scale q.z1 + scale^2/2 q^T Z2 q  (n = rows so far, z1 = sum k, Z2 = sum k k^T).
//
// Layout (as linear_family_tiled_fused.cuh): kWarps = Dv / 16 warps, warp w owns value columns
// [16w, 16w + 16). The state is held transposed, S^T [Dv][F], warp w holding rows 16w.. (20
// n-tiles of 8 features: 80 fp32 registers a thread); packed to T, an accumulator tile of S^T is
// the B fragment of rd(S) in Q rd(S), and S^T += V^T rd(phi_k) takes A = V^T by ldmatrix.trans.
// The features of the chunk's q and k rows are built once per chunk (not once per value tile) into
// shared memory, as are the intra-chunk weights rd(A) (20 lower-triangle 16 x 8 tiles, one mma
// each at Dk = 16) and their row sums.
//
// Pipeline (3 cp.async stages of raw q, k, v; features, A, row sums and q.z double-buffered):
//   prologue: load chunks 0, 1; wait; sync; prepare(0)
//   chunk c:  wait (chunk c+1 landed); sync [B1]; load chunk c+2 -> stage (c+2)%3;
//             z += chunk c's keys (last warp, with the normalizer);
//             output(c) (Qf, A, row sums, q.z of buffer c%2; V of stage c%3); state update(c);
//             prepare(c+1): features of chunk c+1 -> Qf, Kf[(c+1)%2]; rd(A), row sums -> [(c+1)%2];
//             with the normalizer: sync [B2]; q.z of chunk c+1 -> qz[(c+1)%2] (reads z).
// Hazards: stage (c+2)%3 was last read in chunk c-1 (output, update, z) or earlier (prepare, q.z);
// buffers (c+1)%2 were last read by output/update(c-1), before B1; z is written after B1 and read
// after B2, and its previous reads (q.z of chunk c) were before B1.
//
// Work per warp and chunk (Dv = 128): rd(phi_q) rd(S) 80 mma, rd(A) V 20, V^T rd(phi_k) 80, A
// tiles 1 to 4; the features are 80 values a thread (two threads a row).
#pragma once

#include <utility>

#include "linear_family_tiled_fused.cuh"

namespace attnbench::kernels::lin_tiled {

template <class T_, int kDv_, bool kSplit_ = false, int kCols_ = 32, bool kLean_ = false>
struct FusedBasedCfg {
  using T = T_;
  static constexpr bool kSplit = kSplit_;  // fused_based_fwd_split (below) instead of fused_based_fwd
  // The split kernel's lean chunk (see fused_based_fwd_split): z double-buffered, q.z on tensor
  // cores per warp (no second block barrier), the output staged for 16-byte stores.
  static constexpr bool kLean = kLean_;
  static constexpr int kCols = kSplit ? kCols_ : 16;  // value columns a warp owns (split: 16 or 32)
  static constexpr int kDk = kBasedDk, kDv = kDv_, kF = kBasedF;
  static constexpr int kWarps = (kSplit ? 2 : 1) * kDv / kCols, kThreads = 32 * kWarps;
  static constexpr int kParts = kWarps >= 16 ? 4 : kWarps == 8 ? 2 : 1;  // warps sharing a row block of A
  static constexpr int kLdQ = kDk + 8, kLdV = kDv + 8, kLdA = kC + 8, kLdF = kF + 8, kLdZ = 20;
  static constexpr int kFT = kF / 8;  // n-tiles of a warp's S^T rows
  static constexpr int kStages = 3;
  static constexpr int kQBytes = kC * kLdQ * 2, kVBytes = kC * kLdV * 2;
  static constexpr int kStageBytes = 2 * kQBytes + kVBytes;
  static constexpr int kABytes = kC * kLdA * 2;
  static constexpr int kPhiBytes = 0;                 // (FusedTile's gated buffers: none)
  static constexpr int kFeatBytes = kC * kLdF * 2;    // one feature tile [C][kLdF]
  // floats: z = {n (4, padded), z1 [16], Z2 [16][kLdZ]} (kZB floats; lean: two, chunk parity),
  // qz [2][C] (not lean), row sums [2][4 parts][C]
  static constexpr int kZ1 = 4, kZ2 = kZ1 + 16, kZB = kZ2 + 16 * kLdZ, kQz = kZB;
  static constexpr int kRs = kLean ? 2 * kZB : kQz + 2 * kC, kFloats = kRs + 8 * kC;
  static constexpr int kXBytes = kSplit ? (kWarps / 2) * 2 * 32 * kCols * 4 : 0;  // split: per pair 2 x [32][kCols] fp32
  static constexpr int kLdO = kDv + 8, kOBytes = kLean ? kC * kLdO * 2 : 0;       // lean: the output tile [C][kLdO]
  static constexpr int kSmemBytes =
      kStages * kStageBytes + 2 * kABytes + 4 * kFeatBytes + 4 * kFloats + kXBytes + kOBytes;
  static_assert(!kLean || kSplit, "the lean chunk is the split kernel's");
  static_assert(kDv == 64 || kDv == 128, "64 or 128 value columns");
  static_assert(kCols == 16 || kCols == 32, "16 or 32 value columns a warp");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory of one block");
};

template <class C>
struct FusedBasedTile : FusedTile<C> {  // Qs, Ks, Vs (stages), As (A buffers) from FusedTile
  using T = typename C::T;
  __device__ explicit FusedBasedTile(unsigned char* smem) : FusedTile<C>(smem) {}
  __device__ unsigned char* after_a() const { return this->base + C::kStages * C::kStageBytes + 2 * C::kABytes; }
  __device__ T* Qf(int i) const { return reinterpret_cast<T*>(after_a() + i * C::kFeatBytes); }
  __device__ T* Kf(int i) const { return reinterpret_cast<T*>(after_a() + (2 + i) * C::kFeatBytes); }
  __device__ float* fl() const { return reinterpret_cast<float*>(after_a() + 4 * C::kFeatBytes); }
  __device__ float* qz(int i) const { return fl() + C::kQz + i * kC; }
  __device__ float* rs(int i, int part) const { return fl() + C::kRs + (4 * i + part) * kC; }
  __device__ float* xbuf(int pair) const { return fl() + C::kFloats + pair * 2 * 32 * C::kCols; }
  __device__ float* zb(int i) const { return fl() + i * C::kZB; }  // lean: z of chunks < c at zb(c % 2)
  __device__ T* Os() const { return reinterpret_cast<T*>(xbuf(C::kWarps / 2)); }  // lean
  // den_r - phi(q_r).z - 1e-6: the intra-chunk row sums of A, over the parts
  __device__ float rowsum(int i, int r) const { return (rs(i, 0)[r] + rs(i, 1)[r]) + (rs(i, 2)[r] + rs(i, 3)[r]); }
};

// Feature index -> pair (a, b), a < b, in the order a = 0..15, b = a+1..15.
__host__ __device__ constexpr int based_pair_a(int p) {
  int a = 0;
  while (p >= 15 - a) p -= 15 - a, ++a;
  return a;
}
__host__ __device__ constexpr int based_pair_b(int p) {
  int a = 0;
  while (p >= 15 - a) p -= 15 - a, ++a;
  return a + 1 + p;
}

// Feature F of a row y (fp32), as based_features_row computes it.
template <int F>
__device__ __forceinline__ float based_feat(const float (&y)[16]) {
  if constexpr (F == 0) return 1.0f;
  else if constexpr (F < 17) return y[F - 1];
  else if constexpr (F < 33) return y[F - 17] * y[F - 17] * kInvSqrt2;
  else if constexpr (F < 153) return y[based_pair_a(F - 33)] * y[based_pair_b(F - 33)];
  else return 0.0f;
}

// Features [F0, F0 + 8) rounded to T: one 16-byte store.
template <int F0, class T>
__device__ __forceinline__ void based_feat8(const float (&y)[16], T* row) {
  uint4 u;
  u.x = pack2<T>(based_feat<F0>(y), based_feat<F0 + 1>(y));
  u.y = pack2<T>(based_feat<F0 + 2>(y), based_feat<F0 + 3>(y));
  u.z = pack2<T>(based_feat<F0 + 4>(y), based_feat<F0 + 5>(y));
  u.w = pack2<T>(based_feat<F0 + 6>(y), based_feat<F0 + 7>(y));
  *reinterpret_cast<uint4*>(row + F0) = u;
}
template <int kHalf, class T, int... I>
__device__ __forceinline__ void based_feat_half(const float (&y)[16], T* row, std::integer_sequence<int, I...>) {
  (based_feat8<kHalf * (kBasedF / 2) + 8 * I>(y, row), ...);
}

// 16 values of a row of T (16-byte aligned) as fp32.
template <class T>
__device__ __forceinline__ void load_row16(const T* x, float (&y)[16], float mul) {
  const uint4 u0 = *reinterpret_cast<const uint4*>(x), u1 = *reinterpret_cast<const uint4*>(x + 8);
  const uint32_t w[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float2 f = unpack2<T>(w[i]);
    y[2 * i] = mul * f.x, y[2 * i + 1] = mul * f.y;
  }
}

// The scores of query row block rb (16 rows) against the chunk's key n-tiles [lo, hi) (Dk <= 16:
// one k-step): acc[nt] = Q_rb K_nt^T, fp32 C tiles (the others stay 0). Q, K: [kC][kLdQ] rows of
// the storage dtype (rd(q), rd(k)); pairs of n-tiles share one ldmatrix.x4.
template <class T, int kLdQ>
__device__ __forceinline__ void based_qk_tiles(float (&acc)[8][4], const T* Q, const T* K, int rb, int lo, int hi, int lane) {
  uint32_t a[4];
  ldsm_a(a, Q, kLdQ, 16 * rb, 0, lane);
  zero_acc(acc);
#pragma unroll
  for (int np = 0; np < 4; ++np) {
    const bool t0 = 2 * np >= lo && 2 * np < hi, t1 = 2 * np + 1 >= lo && 2 * np + 1 < hi;
    if (t0 && t1) {
      uint32_t bb[4];
      ldsm_b_nk(bb, K, kLdQ, 16 * np, 0, lane);
      mma16816<T>(acc[2 * np], a, bb[0], bb[1]);
      mma16816<T>(acc[2 * np + 1], a, bb[2], bb[3]);
    } else if (t0) {
      uint32_t bb[2];
      ldsm_b_nk1(bb, K, kLdQ, 16 * np, 0, lane);
      mma16816<T>(acc[2 * np], a, bb[0], bb[1]);
    } else if (t1) {
      uint32_t bb[2];
      ldsm_b_nk1(bb, K, kLdQ, 16 * np + 8, 0, lane);
      mma16816<T>(acc[2 * np + 1], a, bb[0], bb[1]);
    }
  }
}

// The weights of row block rb's key n-tiles [lo, hi) from their scores acc (based_qk_tiles):
// A_ij = 1 + s + s^2/2, s = scale q_i.k_j, and 0 for j > i or an invalid key row j; put(r, j, x)
// stores the packed pair rd(A_{r,j}), rd(A_{r,j+1}); rsum: the fp32 (unrounded) sums of rows
// 16 rb + g and 16 rb + g + 8 over these tiles, summed over the quad.
template <class T, class Put>
__device__ __forceinline__ void based_a_weights(const float (&acc)[8][4], float scale, const Rows& rows, int c, int rb,
                                                int lo, int hi, int lane, float (&rsum)[2], Put put) {
  const int r0 = 16 * rb + (lane >> 2), r1 = r0 + 8, q4 = lane & 3;
  rsum[0] = rsum[1] = 0.0f;
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
    if (nt < lo || nt >= hi) continue;
    const int j = 8 * nt + 2 * q4;
    float x[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = e < 2 ? r0 : r1, jj = j + (e & 1);
      const float sx = scale * acc[nt][e];
      const float w = 1.0f + sx + 0.5f * sx * sx;
      x[e] = jj <= r && rows.valid(c, jj) ? w : 0.0f;
      rsum[e >> 1] += x[e];
    }
    put(r0, j, pack2<T>(x[0], x[1]));
    put(r1, j, pack2<T>(x[2], x[3]));
  }
  rsum[0] = quad_sum(rsum[0]), rsum[1] = quad_sum(rsum[1]);
}

// prepare(c): the features of chunk c's q and k rows (two threads a row, 80 features each) and the
// warp's tiles of rd(A) with their partial row sums (8 warps: row block w % 4, n-tiles split at
// w % 4 + 1 between warps w and w + 4; 4 warps: row block w, all its n-tiles).
template <class C, int kAbl = 0>
__device__ void based_prepare(const EngineParams& p, const FusedBasedTile<C>& t, const Rows& rows, int c, int warp,
                              int lane) {
  using T = typename C::T;
  const int s = c % C::kStages, b = c & 1, g = lane >> 2, q4 = lane & 3;
  const T *Q = t.Qs(s), *K = t.Ks(s);
  const float rsc = sqrtf(p.scale);
  for (int idx = threadIdx.x; idx < ((kAbl & 4) ? 0 : 4 * kC); idx += C::kThreads) {  // a warp: (q, k) x (half)
    const int r = idx & (kC - 1), is_k = (idx >> 6) & 1, half = idx >> 7;
    float y[16];
    load_row16<T>((is_k ? K : Q) + r * C::kLdQ, y, rsc);
    T* row = (is_k ? t.Kf(b) : t.Qf(b)) + r * C::kLdF;
    if (half == 0) based_feat_half<0>(y, row, std::make_integer_sequence<int, kBasedF / 16>{});
    else based_feat_half<1>(y, row, std::make_integer_sequence<int, kBasedF / 16>{});
  }
  // ---- rd(A) tiles of row block rb, key n-tiles [lo, hi)
  const int rb = warp & 3, part = (warp >> 2) % C::kParts;  // n-tiles [0, 2rb + 2) in kParts parts
  const int lo = (2 * rb + 2) * part / C::kParts, hi = (2 * rb + 2) * (part + 1) / C::kParts;
  float acc[8][4];
  based_qk_tiles<T, C::kLdQ>(acc, Q, K, rb, lo, hi, lane);
  const int r0 = 16 * rb + g, r1 = r0 + 8;
  float rsum[2];
  T* A = t.As(b);
  based_a_weights<T>(acc, p.scale, rows, c, rb, lo, hi, lane, rsum,
                     [&](int r, int j, uint32_t x) { *reinterpret_cast<uint32_t*>(A + r * C::kLdA + j) = x; });
  if (q4 == 0) t.rs(b, part)[r0] = rsum[0], t.rs(b, part)[r1] = rsum[1];
}

// z += the keys of a chunk (one warp, on tensor cores: products of T values are exact in fp32):
// Z2 += K^T K, z1 += K^T 1, n += valid rows. K: the chunk's key rows [kC][kLdQ]; f: the floats
// n (f[0]), z1 (f[kZ1..]), Z2 (f[kZ2..], rows of kLdZ), read from fin and written to f (the same
// buffer, or the other of a double-buffered z).
template <class T, int kLdQ, int kZ1, int kZ2, int kLdZ>
__device__ __forceinline__ void based_z_add(const T* K, const float* fin, float* f, int valid_rows, int lane) {
  const int g = lane >> 2, q4 = lane & 3;
  float z2[2][4], z1[4];
  zero_acc(z2);
  z1[0] = z1[1] = z1[2] = z1[3] = 0.0f;
  const uint32_t one = pack2<T>(1.0f, 1.0f);
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    uint32_t a[4], b[4];
    ldsm_a_trans(a, K, kLdQ, 0, 16 * kk, lane);  // K^T: rows d, columns the chunk rows
    ldsm_b_kn(b, K, kLdQ, 16 * kk, 0, lane);     // K: columns d 0..7, 8..15
    mma16816<T>(z2[0], a, b[0], b[1]);
    mma16816<T>(z2[1], a, b[2], b[3]);
    mma16816<T>(z1, a, one, one);
  }
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const int col = 8 * nt + 2 * q4;
    const int i0 = kZ2 + g * kLdZ + col, i1 = kZ2 + (g + 8) * kLdZ + col;
    f[i0] = fin[i0] + z2[nt][0], f[i0 + 1] = fin[i0 + 1] + z2[nt][1];
    f[i1] = fin[i1] + z2[nt][2], f[i1 + 1] = fin[i1 + 1] + z2[nt][3];
  }
  if (q4 == 0) f[kZ1 + g] = fin[kZ1 + g] + z1[0], f[kZ1 + g + 8] = fin[kZ1 + g + 8] + z1[2];
  if (lane == 0) f[0] = fin[0] + float(valid_rows);
}
// z (lean: of chunks <= c into zb((c + 1) % 2), from zb(c % 2)) += chunk c's keys.
template <class C>
__device__ void based_z_update(const FusedBasedTile<C>& t, const Rows& rows, int c, int lane) {
  const float* fin = C::kLean ? t.zb(c & 1) : t.fl();
  float* fout = C::kLean ? t.zb((c + 1) & 1) : t.fl();
  based_z_add<typename C::T, C::kLdQ, C::kZ1, C::kZ2, C::kLdZ>(t.Ks(c % C::kStages), fin, fout,
                                                              min(kC, rows.T - kC * c), lane);
}

// qz[r] = phi(q_r).z = n + scale q.z1 + scale^2/2 q^T Z2 q for a chunk's query rows Q [kC][kLdQ]
// (f as in based_z_add): four threads a row, thread i of a row taking a = i, i + 4, i + 8, i + 12
// (Z2 row stride 20: no bank conflicts); kThreads threads, a multiple of 4 dividing 4 kC.
template <class T, int kThreads, int kLdQ, int kZ1, int kZ2, int kLdZ>
__device__ __forceinline__ void based_qz_rows(float scale, const T* Q, const float* f, float* qz) {
  for (int idx = threadIdx.x; idx < 4 * kC; idx += kThreads) {
    const int r = idx >> 2, qt = idx & 3;
    float q[16];
    load_row16<T>(Q + r * kLdQ, q, 1.0f);
    float acc1 = 0.0f, acc2 = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int a = qt + 4 * i;
      const float* z2 = f + kZ2 + a * kLdZ;
      float inner = 0.0f;
#pragma unroll
      for (int m = 0; m < 4; ++m) {
        const float4 zz = *reinterpret_cast<const float4*>(z2 + 4 * m);
        inner += zz.x * q[4 * m] + zz.y * q[4 * m + 1] + zz.z * q[4 * m + 2] + zz.w * q[4 * m + 3];
      }
      const float qa = qt == 0 ? q[4 * i] : qt == 1 ? q[4 * i + 1] : qt == 2 ? q[4 * i + 2] : q[4 * i + 3];
      acc1 += qa * f[kZ1 + a];
      acc2 += qa * inner;
    }
    float part = scale * acc1 + 0.5f * scale * scale * acc2;
    part = quad_sum(part);
    if (qt == 0) qz[r] = f[0] + part;
  }
}
// qz[c % 2] for chunk c's rows.
template <class C>
__device__ void based_qz(const EngineParams& p, const FusedBasedTile<C>& t, int c) {
  based_qz_rows<typename C::T, C::kThreads, C::kLdQ, C::kZ1, C::kZ2, C::kLdZ>(p.scale, t.Qs(c % C::kStages), t.fl(),
                                                                             t.qz(c & 1));
}

// phi(q_r).z for the rows r = 16 mt + g, 16 mt + g + 8 of a chunk's queries Q [kC][kLdQ] (the lean
// chunk: every warp its own rows, no block barrier), f as in based_z_add. The product P = Q Z2 is
// one m-tile on tensor cores in tf32: Q's values (bf16 or fp16) are exact in tf32 and Z2 is split
// as hi + lo (3xTF32 without the a_lo term, which is 0), so P is fp32-accurate; then
//   phi(q_r).z = n + sum_a q_ra (scale^2/2 P_ra + scale z1_a)   (the quad holds a = 8 nt + 2 q4 (+1)).
// mma.m16n8k8.tf32 fragments: A a0 (g, q4), a1 (g + 8, q4), a2 (g, q4 + 4), a3 (g + 8, q4 + 4);
// B b0 (k = q4, n = g), b1 (k = q4 + 4, n = g); C (g, 2 q4 (+1)), (g + 8, 2 q4 (+1)).
template <class C>
__device__ __forceinline__ void based_qz_tc(float scale, const typename C::T* Q, const float* f, int mt, int lane,
                                            float (&qz)[2]) {
  using T = typename C::T;
  const int g = lane >> 2, q4 = lane & 3, r0 = 16 * mt + g, r1 = r0 + 8;
  const T *q0 = Q + r0 * C::kLdQ, *q1 = Q + r1 * C::kLdQ;
  float acc[2][4];
  zero_acc(acc);
#pragma unroll
  for (int kk = 0; kk < 2; ++kk) {
    const int k0 = 8 * kk + q4;
    const uint32_t a[4] = {tf32_exact(float(q0[k0])), tf32_exact(float(q1[k0])), tf32_exact(float(q0[k0 + 4])),
                           tf32_exact(float(q1[k0 + 4]))};
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      uint32_t h0, l0, h1, l1;  // Z2 (k0, 8 nt + g), (k0 + 4, 8 nt + g)
      tf32_split(f[C::kZ2 + k0 * C::kLdZ + 8 * nt + g], h0, l0);
      tf32_split(f[C::kZ2 + (k0 + 4) * C::kLdZ + 8 * nt + g], h1, l1);
      mma1688_tf32(acc[nt], a, l0, l1);
      mma1688_tf32(acc[nt], a, h0, h1);
    }
  }
  const float h = 0.5f * scale * scale;
  float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const int a = 8 * nt + 2 * q4;
    const float2 x0 = unpack2<T>(*reinterpret_cast<const uint32_t*>(q0 + a));
    const float2 x1 = unpack2<T>(*reinterpret_cast<const uint32_t*>(q1 + a));
    const float w0 = scale * f[C::kZ1 + a], w1 = scale * f[C::kZ1 + a + 1];
    s0 += x0.x * (h * acc[nt][0] + w0) + x0.y * (h * acc[nt][1] + w1);
    s1 += x1.x * (h * acc[nt][2] + w0) + x1.y * (h * acc[nt][3] + w1);
  }
  qz[0] = f[0] + quad_sum(s0), qz[1] = f[0] + quad_sum(s1);
}

// 1 / x (x > 0, normal): one MUFU.RCP (rcp.approx.ftz, within 1 ulp), for the output's row factors.
#ifndef ATTNBENCH_LIN_SIM
__device__ __forceinline__ float based_rcp(float x) { return hopper::rcp(x); }
#else
inline float based_rcp(float x) { return 1.0f / x; }
#endif

// grid (1, B*H); C::kThreads threads; shared memory C::kSmemBytes.
// kAbl (measurement only, ATTNBENCH_BASED_ABL; wrong results): bits skip 1 the rd(phi_q) rd(S)
// product, 2 the state update, 4 the feature construction, 8 the output stores.
template <class C, int kAbl = 0>
__global__ void __launch_bounds__(C::kThreads, 1) fused_based_fwd(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem);
  const FusedBasedTile<C> t(smem);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
  const int bh = blockIdx.y, n0 = 16 * warp;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, false, false};
  T* o = static_cast<T*>(p.o) + int64_t(bh) * p.T * p.Dvv;
  float st[C::kFT][4];  // S^T rows n0 + g (+8), columns f = 8 ft + 2 q4 (+1)
  zero_acc(st);
  for (int i = threadIdx.x; i < C::kFloats; i += C::kThreads) t.fl()[i] = 0.0f;  // z, qz, row sums

  fused_load<C>(p, t, rows, bh, 0);
  if (NC > 1) fused_load<C>(p, t, rows, bh, 1);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  based_prepare<C, kAbl>(p, t, rows, 0, warp, lane);  // qz of chunk 0 is 0 (z = 0)

  for (int c = 0; c < NC; ++c) {
    cp_async_wait<0>();  // chunk c + 1 (issued one chunk ago)
    __syncthreads();     // B1
    if (c + 2 < NC) fused_load<C>(p, t, rows, bh, c + 2);
    cp_async_commit();
    if (p.normalize && warp == C::kWarps - 1) based_z_update<C>(t, rows, c, lane);
    const int s = c % C::kStages, b = c & 1;
    const T *Qf = t.Qf(b), *Kf = t.Kf(b), *V = t.Vs(s), *A = t.As(b);

    // ---- o (rows 0..63, this warp's 16 columns) = rd(phi_q) rd(S) + rd(A) V
    float oa[4][2][4];
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) zero_acc(oa[mt]);
#pragma unroll
    for (int kk = 0; kk < ((kAbl & 1) ? 0 : C::kF / 16); ++kk) {
      uint32_t bs[4];  // rd(S)[16kk.., n0..]: (bs[0], bs[2]) columns n0.., (bs[1], bs[3]) columns n0+8..
      acc_to_a<T>(st, kk, bs);
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        uint32_t a[4];
        ldsm_a(a, Qf, C::kLdF, 16 * mt, 16 * kk, lane);
        mma16816<T>(oa[mt][0], a, bs[0], bs[2]);
        mma16816<T>(oa[mt][1], a, bs[1], bs[3]);
      }
    }
    causal_av<T>(oa, A, C::kLdA, V, C::kLdV, n0, lane);
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int r = 16 * mt + g + 8 * i;
        if (!rows.valid(c, r)) continue;
        float f = 1.0f;
        if (p.normalize) f = 1.0f / (t.qz(b)[r] + t.rowsum(b, r) + kBasedEps);
        const int64_t row = int64_t(rows.time(c, r)) * p.Dvv;
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          const int col = n0 + 8 * nt + 2 * q4;
          if (!(kAbl & 8) && col < p.Dvv) {
            *reinterpret_cast<uint32_t*>(o + row + col) = pack2<T>(f * oa[mt][nt][2 * i], f * oa[mt][nt][2 * i + 1]);
          }
        }
      }
    }

    // ---- S^T <- S^T + V^T rd(phi_k)
#pragma unroll
    for (int kk = 0; kk < ((kAbl & 2) ? 0 : 4); ++kk) {
      uint32_t a[4];
      ldsm_a_trans(a, V, C::kLdV, n0, 16 * kk, lane);
#pragma unroll
      for (int np = 0; np < C::kFT / 2; ++np) {
        uint32_t bk[4];
        ldsm_b_kn(bk, Kf, C::kLdF, 16 * kk, 16 * np, lane);
        mma_pair<T>(st, np, a, bk);
      }
    }
    if (c + 1 < NC) {
      based_prepare<C, kAbl>(p, t, rows, c + 1, warp, lane);
      if (p.normalize) {
        __syncthreads();  // B2: z holds chunks 0..c
        based_qz<C>(p, t, c + 1);
      }
    }
  }
}

// The lean chunk's loads: chunk c's q, k, v rows into stage c % 3 by cp.async, every address from
// the chunk's first row (rows past T and columns past the widths zero-filled), trip counts fixed.
template <class C>
__device__ __forceinline__ void based_load_lean(const EngineParams& p, const FusedTile<C>& t, int bh, int c) {
  using T = typename C::T;
  constexpr int kSegQ = C::kDk / 8, kSegV = C::kDv / 8, kNQ = kC * kSegQ, kNV = kC * kSegV;
  const int s = c % C::kStages, nrows = min(kC, p.T - kC * c);
  const int64_t row0 = int64_t(bh) * p.T + int64_t(kC) * c;
  const T* q = static_cast<const T*>(p.q) + row0 * p.Dqk;
  const T* k = static_cast<const T*>(p.k) + row0 * p.Dqk;
  const T* v = static_cast<const T*>(p.v) + row0 * p.Dvv;
#pragma unroll
  for (int i = 0; i < (kNQ + C::kThreads - 1) / C::kThreads; ++i) {
    const int idx = threadIdx.x + i * C::kThreads, r = idx / kSegQ, col = (idx % kSegQ) * 8;
    if (kNQ % C::kThreads != 0 && idx >= kNQ) break;
    const bool ok = r < nrows && col < p.Dqk;
    const int off = ok ? r * p.Dqk + col : 0;
    cp_async16(t.Qs(s) + r * C::kLdQ + col, q + off, ok);
    cp_async16(t.Ks(s) + r * C::kLdQ + col, k + off, ok);
  }
#pragma unroll
  for (int i = 0; i < (kNV + C::kThreads - 1) / C::kThreads; ++i) {
    const int idx = threadIdx.x + i * C::kThreads, r = idx / kSegV, col = (idx % kSegV) * 8;
    if (kNV % C::kThreads != 0 && idx >= kNV) break;
    const bool ok = r < nrows && col < p.Dvv;
    cp_async16(t.Vs(s) + r * C::kLdV + col, v + (ok ? r * p.Dvv + col : 0), ok);
  }
}
template <class C>
__device__ __forceinline__ void based_load(const EngineParams& p, const FusedBasedTile<C>& t, const Rows& rows, int bh,
                                           int c) {
  if constexpr (C::kLean) based_load_lean<C>(p, t, bh, c);
  else fused_load<C>(p, t, rows, bh, c);
}

// Named barrier of the 64 threads of a warp pair (id 1.. ; 0 is __syncthreads).
__device__ __forceinline__ void pair_barrier(int id) {
#ifdef ATTNBENCH_LIN_SIM
  ::sim::named_barrier(id, 64);
#else
  asm volatile("bar.sync %0, 64;\n" ::"r"(id) : "memory");
#endif
}

// The split layout: warp (vg, fh) = (w % (kWarps/2), w / (kWarps/2)) owns value columns
// [kCols vg, kCols vg + kCols) and state features [80fh, 80fh + 80): S^T kCols x 80 in registers
// (st[10 mv + ft]: value m-tile mv, feature n-tile ft). At kCols = 32 each A fragment of rd(phi_q)
// feeds 4 mma instead of 2, and each B fragment of rd(phi_k) 4 instead of 2 (half the ldmatrix
// traffic of the two state products); at kCols = 16 the block has twice the warps (16 at Dv = 128,
// 40 state registers a thread) to hide latency. The two feature halves' partial outputs meet
// through shared memory (xbuf, a named barrier per pair): warp fh finishes rows [32fh, 32fh + 32).
// rd(A) V is split by key block: fh 0 takes blocks 0 and 3, fh 1 blocks 1 and 2 (5 tiles each).
// Same math, same roundings as fused_based_fwd.
template <class C>
__global__ void __launch_bounds__(C::kThreads, 1) fused_based_fwd_split(EngineParams p) {
  using T = typename C::T;
  static_assert(C::kSplit, "split configuration");
  LIN_DYN_SMEM(unsigned char, smem);
  const FusedBasedTile<C> t(smem);
  constexpr int kPairs = C::kWarps / 2, kHF = kBasedF / 2, kMV = C::kCols / 16, kNT = 2 * kMV;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
  const int vg = warp % kPairs, fh = warp / kPairs, n0 = C::kCols * vg, f0 = kHF * fh;
  const int bh = blockIdx.y;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, false, false};
  T* o = static_cast<T*>(p.o) + int64_t(bh) * p.T * p.Dvv;
  float st[10 * kMV][4];  // S^T rows n0 + 16 mv + g (+8), features f0 + 8 ft + 2 q4 (+1), at st[10 mv + ft]
  zero_acc(st);
  for (int i = threadIdx.x; i < C::kFloats; i += C::kThreads) t.fl()[i] = 0.0f;  // z, qz, row sums

  based_load<C>(p, t, rows, bh, 0);
  if (NC > 1) based_load<C>(p, t, rows, bh, 1);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  based_prepare<C>(p, t, rows, 0, warp, lane);  // qz of chunk 0 is 0 (z = 0)

  for (int c = 0; c < NC; ++c) {
    cp_async_wait<0>();  // chunk c + 1 (issued one chunk ago)
    __syncthreads();     // B1
    if (c + 2 < NC) based_load<C>(p, t, rows, bh, c + 2);
    cp_async_commit();
    if (p.normalize && warp == C::kWarps - 1) based_z_update<C>(t, rows, c, lane);
    const int s = c % C::kStages, b = c & 1;
    const T *Qf = t.Qf(b), *Kf = t.Kf(b), *V = t.Vs(s), *A = t.As(b);

    // ---- partial o (rows 0..63, columns n0..) = rd(phi_q)[:, half] rd(S)[half, :] + rd(A) V (2 key blocks)
    float oa[4][kNT][4];
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) zero_acc(oa[mt]);
#pragma unroll
    for (int kk = 0; kk < kHF / 16; ++kk) {
      uint32_t bs[kMV][4];  // rd(S)[f0 + 16kk.., n0 + 16mv..]: see fused_based_fwd
#pragma unroll
      for (int mv = 0; mv < kMV; ++mv) acc_to_a<T>(st, 5 * mv + kk, bs[mv]);
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        uint32_t a[4];
        ldsm_a(a, Qf, C::kLdF, 16 * mt, f0 + 16 * kk, lane);
#pragma unroll
        for (int mv = 0; mv < kMV; ++mv) {
          mma16816<T>(oa[mt][2 * mv], a, bs[mv][0], bs[mv][2]);
          mma16816<T>(oa[mt][2 * mv + 1], a, bs[mv][1], bs[mv][3]);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int kk = fh == 0 ? 3 * i : 1 + i;  // fh 0: key blocks 0, 3; fh 1: 1, 2
      uint32_t bv[kMV][4];
#pragma unroll
      for (int mv = 0; mv < kMV; ++mv) ldsm_b_kn(bv[mv], V, C::kLdV, 16 * kk, n0 + 16 * mv, lane);
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        if (mt < kk) continue;
        uint32_t a[4];
        ldsm_a(a, A, C::kLdA, 16 * mt, 16 * kk, lane);
#pragma unroll
        for (int mv = 0; mv < kMV; ++mv) {
          mma16816<T>(oa[mt][2 * mv], a, bv[mv][0], bv[mv][1]);
          mma16816<T>(oa[mt][2 * mv + 1], a, bv[mv][2], bv[mv][3]);
        }
      }
    }
    // ---- lean: phi(q).z of this warp's final rows (z of chunks < c: zb(c % 2))
    [[maybe_unused]] float qz[2][2];
    if constexpr (C::kLean) {
      if (p.normalize) {
#pragma unroll
        for (int j = 0; j < 2; ++j) based_qz_tc<C>(p.scale, t.Qs(s), t.zb(b), 2 * fh + j, lane, qz[j]);
      }
    }
    // ---- the two halves meet: row blocks of the other half go to xbuf[fh], ours come from xbuf[1 - fh]
    {
      float* xo = t.xbuf(vg) + fh * 32 * C::kCols;
      const float* xi = t.xbuf(vg) + (1 - fh) * 32 * C::kCols;
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        if ((mt >> 1) == fh) continue;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          *reinterpret_cast<float4*>(xo + (((mt & 1) * kNT + nt) * 32 + lane) * 4) =
              make_float4(oa[mt][nt][0], oa[mt][nt][1], oa[mt][nt][2], oa[mt][nt][3]);
        }
      }
      pair_barrier(1 + vg);
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        if ((mt >> 1) != fh) continue;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const float4 x = *reinterpret_cast<const float4*>(xi + (((mt & 1) * kNT + nt) * 32 + lane) * 4);
          oa[mt][nt][0] += x.x, oa[mt][nt][1] += x.y, oa[mt][nt][2] += x.z, oa[mt][nt][3] += x.w;
        }
      }
    }
    if constexpr (C::kLean) {
      // rows [32 fh, 32 fh + 32) x columns [n0, n0 + kCols): scaled by 1 / den, rounded, staged in
      // this warp's block of Os, then stored 16 bytes a lane (a row's kCols columns contiguous).
      T* Os = t.Os();
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {  // (static indices into oa: mt = 2 fh + j)
        if ((mt >> 1) != fh) continue;
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const int r = 16 * mt + g + 8 * i;
          const float f = p.normalize ? based_rcp(qz[mt & 1][i] + t.rowsum(b, r) + kBasedEps) : 1.0f;
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt) {
            *reinterpret_cast<uint32_t*>(Os + r * C::kLdO + n0 + 8 * nt + 2 * q4) =
                pack2<T>(f * oa[mt][nt][2 * i], f * oa[mt][nt][2 * i + 1]);
          }
        }
      }
      __syncwarp();
      constexpr int kSeg = C::kCols / 8;  // 16-byte pieces of a row; kSeg a lane
      const int nrows = min(kC, p.T - kC * c);
      T* oc = o + int64_t(kC) * c * p.Dvv;
#pragma unroll
      for (int i = 0; i < kSeg; ++i) {
        const int idx = lane + 32 * i, r = 32 * fh + idx / kSeg, col = n0 + 8 * (idx % kSeg);
        if (r < nrows && col < p.Dvv) {
          *reinterpret_cast<uint4*>(oc + r * p.Dvv + col) = *reinterpret_cast<const uint4*>(Os + r * C::kLdO + col);
        }
      }
    } else {
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        if ((mt >> 1) != fh) continue;
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const int r = 16 * mt + g + 8 * i;
          if (!rows.valid(c, r)) continue;
          float f = 1.0f;
          if (p.normalize) f = 1.0f / (t.qz(b)[r] + t.rowsum(b, r) + kBasedEps);
          const int64_t row = int64_t(rows.time(c, r)) * p.Dvv;
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt) {
            const int col = n0 + 8 * nt + 2 * q4;
            if (col < p.Dvv) {
              *reinterpret_cast<uint32_t*>(o + row + col) = pack2<T>(f * oa[mt][nt][2 * i], f * oa[mt][nt][2 * i + 1]);
            }
          }
        }
      }
    }

    // ---- S^T[n0.., f0..] <- S^T + V^T[n0.., :] rd(phi_k)[:, f0..]
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[kMV][4];
#pragma unroll
      for (int mv = 0; mv < kMV; ++mv) ldsm_a_trans(a[mv], V, C::kLdV, n0 + 16 * mv, 16 * kk, lane);
#pragma unroll
      for (int np = 0; np < kHF / 16; ++np) {
        uint32_t bk[4];
        ldsm_b_kn(bk, Kf, C::kLdF, 16 * kk, f0 + 16 * np, lane);
#pragma unroll
        for (int mv = 0; mv < kMV; ++mv) mma_pair<T>(st, 5 * mv + np, a[mv], bk);
      }
    }
    if (c + 1 < NC) {
      based_prepare<C>(p, t, rows, c + 1, warp, lane);
      if (!C::kLean && p.normalize) {
        __syncthreads();  // B2: z holds chunks 0..c
        based_qz<C>(p, t, c + 1);
      }
    }
  }
}

}  // namespace attnbench::kernels::lin_tiled
