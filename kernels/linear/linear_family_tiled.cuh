// The chunkwise-parallel tiled kernels of the causal linear families: shared configuration, shared
// memory layout, chunk loading, gates and feature maps, and the inter-chunk state update.
//
// Notation (one (b, h) slice, chunk c of C = 64 rows, r = row in the chunk, F = state rows):
//   q, k [T, Dqk], v [T, Dvv]: the engine's operands (the forward's q, k, v; a backward pass may
//     bind other tensors to these roles, see linear_family_tiled_launch.h)
//   phi_q, phi_k [C, F]: the feature maps of q and k that meet the state:
//     linear       phi(x) = x                                         (F = Dqk)
//     based        phi(x) = [1, y, y_a^2/sqrt2, y_a y_b (a<b), 0..]   y = sqrt(scale) x, F = 160
//     gated scalar phi_q = q (the row factor exp(b_r) is applied to the fp32 result),
//                  phi_k = k * exp(last - b_r)
//     gated vector phi_q = q * exp(bq_r), phi_k = k * exp(last - b_r)   (per column d)
//   b_r  = sum_{s <= r} g_s (fp32 cumulative log-gate inside the chunk), last = b_{C-1},
//   bq_r = b_r, or b_{r-1} for rwkv6 (its query reads the state before its own token).
//   S [F, Dvv]: the fp32 state before the chunk; the tensor cores read rd(S) (rounded to T).
// Per chunk: o = scale (rd(A) V + rd(phi_q) rd(S)) (+ rwkv6's bonus, / den with the normalizer),
// then S <- diag(exp(last)) S + rd(phi_k)^T V. The intra-chunk weights A are the policy's (see
// linear_family_tiled_fwd.cuh).
//
// Block: 4 warps (128 threads) own one (b, h) slice and one tile of kBV value columns; warp w owns
// chunk rows 16w..16w+15 for the intra-chunk part and state row tiles w, w+4, ... for the update.
// Shared tiles are row-major with 8 elements of padding per row (see linear_family_mma.cuh).
#pragma once

#include "linear_family_mma.cuh"

namespace attnbench::kernels::lin_tiled {

using namespace ::attnbench::kernels::lin;

enum class Feat : int { linear = 0, based = 1, gate_scalar = 2, gate_vector = 3 };

constexpr int kC = 64;          // chunk rows
constexpr int kThreads = 128;   // 4 warps
constexpr int kBasedDk = 16;    // based's Taylor form: q, k width
constexpr int kBasedF = 160;    // 1 + 16 + 16 + 120 = 153 features, padded to 10 k-steps
constexpr float kBasedEps = 1e-6f;
constexpr float kInvSqrt2 = 0.70710678118654752f;
enum GateSrc : int { kGateFixed = 0, kGateScalar = 1, kGateVector = 2 };

// What the host passes to every chunk kernel.
struct EngineParams {
  const void *q, *k, *v;   // q, k [B,H,T,Dqk]; v [B,H,T,Dvv] (the engine's roles)
  void* o;                 // [B,H,T,Dvv]
  const float* g;          // scalar [B,H,T] or vector [B,H,T,Dqk] log-gates; null for fixed gates
  const float* u;          // rwkv6 bonus [H, Dqk]
  float* den;              // normalize: den per row [B,H,T], written by v-tile 0 (for a backward)
  void* states;            // state scans: rd(state) before each chunk [B*H][NC][F][Dvv] (T)
  float* zstates;          // state scans with the normalizer: z or dz before each chunk [B*H][NC][F]
  const void* bnd_states;  // forward scan, gated backward: rd(D_c) of the reverse scan (dg boundary term)
  float* bnd;              // forward scan, gated backward: boundary partials [B*H][NV][NC][Dqk]
  const float* den_in;     // reverse scan with the normalizer: den per row
  const float* delta;      // reverse scan with the normalizer: delta per row
  int H, T, Dqk, Dvv, NV;
  float scale, eps;
  const float* corr;       // linear backward: per-row c [B,H,T] of the rank-one correction
  int corr_form;           // 0 none; 1: A_rj -= c_r, o_r -= c_r sum_{earlier} v; 2: A_rj -= c_j, o_r -= sum_{earlier} c_j v_j
  int gate;                // GateSrc
  bool lightning;          // fixed gates: the Lightning schedule (else RetNet's)
  bool bonus;              // rwkv6
  bool normalize;
  bool reverse;            // anti-causal pass: row t of the tile is time Tpad - 1 - (64 c + r)
};

// Compile-time shape of a chunk kernel.
template <class T_, Feat kFeat_, int kDk_, int kBV_, int kMinBlocks_ = 1>
struct Cfg {
  using T = T_;
  static constexpr int kMinBlocks = kMinBlocks_;  // 3: one stage, registers capped for 3 blocks an SM
  static constexpr Feat kFeat = kFeat_;
  static constexpr int kDk = kDk_;                                   // q/k width in smem
  static constexpr int kF = kFeat == Feat::based ? kBasedF : kDk;    // state rows
  static constexpr int kBV = kBV_;                                   // value columns per block
  static constexpr int kLdQ = kDk + 8, kLdV = kBV + 8, kLdF = kF + 8;
  static constexpr int kMT = kF / 16;                 // state row tiles
  static constexpr int kMTW = (kMT + 3) / 4;          // ... per warp
  static constexpr int kNT = kBV / 8;                 // n-tiles of a value row block
  static constexpr int kKT = kDk / 16;                // k-steps over q/k width
  static constexpr bool kVector = kFeat == Feat::gate_vector;
  static constexpr bool kGated = kFeat == Feat::gate_scalar || kFeat == Feat::gate_vector;

  // Shared memory (bytes). One stage: q, k, v tiles (+ vector gates). Then the rounded state,
  // based's feature tiles, the vector gate's K~ tile and diagonal scratch, per-row values, z.
  static constexpr int kQBytes = kC * kLdQ * 2, kVBytes = kC * kLdV * 2;
  static constexpr int kGBytes = kVector ? kC * kDk * 4 : 0;
  static constexpr int kStageBytes = 2 * kQBytes + kVBytes + kGBytes;
  static constexpr int kSBytes = kF * kLdV * 2;
  static constexpr int kFeatBytes = kFeat == Feat::based ? 2 * kC * kLdF * 2 : 0;
  static constexpr int kKgBytes = kVector ? kC * kLdQ * 2 : 0;
  static constexpr int kDiagLd = 33;
  static constexpr int kDiagBytes = kVector ? 4 * 2 * 16 * kDiagLd * 4 : 0;
  static constexpr int kRowBytes = 4 * kC * 4;        // b (scalar gates), bonus, q.z, den
  static constexpr int kZBytes = kFeat == Feat::based ? (1 + 16 + 256) * 4 : kDk * 4;
  static constexpr int kFixedBytes = kSBytes + kFeatBytes + kKgBytes + kDiagBytes + kRowBytes + kZBytes;
  static constexpr int kStages = kMinBlocks < 3 && 2 * kStageBytes + kFixedBytes <= 110 * 1024 ? 2 : 1;
  static constexpr int kSmemBytes = kStages * kStageBytes + kFixedBytes;
};

// The per-block view of shared memory. Stage buffers are found by arithmetic (a run-time index
// into an array of pointers would put the whole view in local memory).
template <class C>
struct Tile {
  using T = typename C::T;
  unsigned char* stage0;
  T* Ss;            // rd(S) [kF][kLdV]
  T *Qf, *Kf;       // based features [C][kLdF]
  T* Kg;            // vector gates: K~ [C][kLdQ]
  float* diag;      // vector gates: per-warp scratch of the diagonal blocks
  float *brow, *bon, *qz, *den;  // per row: b (scalar gates), bonus a_r, q.z, den
  float* z;         // normalizer: sum of earlier phi_k (linear: [kDk]; based: z0, z1[16], Z2[16][16])

  __device__ T* Qs(int s) const { return reinterpret_cast<T*>(stage0 + s * C::kStageBytes); }
  __device__ T* Ks(int s) const { return reinterpret_cast<T*>(stage0 + s * C::kStageBytes + C::kQBytes); }
  __device__ T* Vs(int s) const { return reinterpret_cast<T*>(stage0 + s * C::kStageBytes + 2 * C::kQBytes); }
  __device__ float* Gs(int s) const {
    return reinterpret_cast<float*>(stage0 + s * C::kStageBytes + 2 * C::kQBytes + C::kVBytes);
  }

  __device__ explicit Tile(unsigned char* smem) : stage0(smem) {
    unsigned char* p = smem + C::kStages * C::kStageBytes;
    Ss = reinterpret_cast<T*>(p);
    p += C::kSBytes;
    Qf = reinterpret_cast<T*>(p);
    Kf = reinterpret_cast<T*>(p + C::kFeatBytes / 2);
    p += C::kFeatBytes;
    Kg = reinterpret_cast<T*>(p);
    p += C::kKgBytes;
    diag = reinterpret_cast<float*>(p);
    p += C::kDiagBytes;
    brow = reinterpret_cast<float*>(p);
    bon = brow + kC, qz = bon + kC, den = qz + kC;
    p += C::kRowBytes;
    z = reinterpret_cast<float*>(p);
  }
};

// Where chunk c (in processing order) and its rows live in time.
struct Rows {
  int T, NC, Tpad;
  bool reverse;    // rows reversed (anti-causal pass)
  bool backward;   // chunks in reverse order, rows forward (the reverse state scan)
  __device__ int chunk(int c) const { return backward ? NC - 1 - c : c; }
  __device__ int time(int c, int r) const {
    if (reverse) return Tpad - 1 - (kC * c + r);
    return kC * chunk(c) + r;
  }
  __device__ bool valid(int c, int r) const { return time(c, r) < T; }
};

// cp.async loads of one chunk's q, k, v tiles (and vector gates) into a stage. Rows outside
// [0, T) and columns beyond the tensor are zero-filled.
template <class C, bool kLoadQ = true>
__device__ void load_chunk(const EngineParams& p, const Tile<C>& t, const Rows& rows, int bh, int v0, int c,
                           int s) {
  using T = typename C::T;
  const T* q = static_cast<const T*>(p.q) + int64_t(bh) * p.T * p.Dqk;
  const T* k = static_cast<const T*>(p.k) + int64_t(bh) * p.T * p.Dqk;
  const T* v = static_cast<const T*>(p.v) + int64_t(bh) * p.T * p.Dvv;
  constexpr int kSegQ = C::kDk / 8, kSegV = C::kBV / 8;
  for (int idx = threadIdx.x; idx < kC * kSegQ; idx += kThreads) {
    const int r = idx / kSegQ, col = (idx % kSegQ) * 8, tm = rows.time(c, r);
    const bool ok = tm < p.T && col < p.Dqk;
    const int64_t off = ok ? int64_t(tm) * p.Dqk + col : 0;
    if (kLoadQ) cp_async16(t.Qs(s) + r * C::kLdQ + col, q + off, ok);
    cp_async16(t.Ks(s) + r * C::kLdQ + col, k + off, ok);
  }
  for (int idx = threadIdx.x; idx < kC * kSegV; idx += kThreads) {
    const int r = idx / kSegV, col = (idx % kSegV) * 8, tm = rows.time(c, r);
    const bool ok = tm < p.T && v0 + col < p.Dvv;
    cp_async16(t.Vs(s) + r * C::kLdV + col, v + (ok ? int64_t(tm) * p.Dvv + v0 + col : 0), ok);
  }
  if constexpr (C::kVector) {  // forward order only (no reverse pass has vector gates)
    const float* g = p.g + int64_t(bh) * p.T * p.Dqk;
    constexpr int kSegG = C::kDk / 4;
    for (int idx = threadIdx.x; idx < kC * kSegG; idx += kThreads) {
      const int r = idx / kSegG, col = (idx % kSegG) * 4, tm = rows.time(c, r);
      const bool ok = tm < p.T && col < p.Dqk;
      cp_async16(t.Gs(s) + r * C::kDk + col, g + (ok ? int64_t(tm) * p.Dqk + col : 0), ok);
    }
  }
}

// The fixed per-head log-gate (fp64 as the reference computes it, then fp32).
__device__ __forceinline__ float fixed_log_gate(bool lightning, int h, int H) {
  if (lightning) return static_cast<float>(-exp2(-8.0 * double(h + 1) / double(H)));
  return static_cast<float>(log1p(-exp2(-5.0 - double(h))));
}

// Scalar and fixed gates: brow[r] = b_r = sum_{s <= r} g_s of chunk c, by one warp (lane l rows
// 2l, 2l+1; an inclusive scan of the pair sums over the lanes). An anti-causal pass reads g_{t+1}
// at row time t (the decay between two rows is that of the gates strictly after the earlier one).
// The warp syncs before writing (its reads of the previous chunk's brow are done) and after.
__device__ __forceinline__ void warp_gate_cumsum(const EngineParams& p, float* brow, const Rows& rows, int bh, int c,
                                                 float fixed, int lane) {
  float x[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = 2 * lane + i, tm = rows.time(c, r) + (p.reverse ? 1 : 0);
    if (p.gate == kGateFixed) x[i] = fixed;
    else x[i] = tm < p.T ? p.g[int64_t(bh) * p.T + tm] : 0.0f;
  }
  x[1] += x[0];
  float run = x[1];
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const float y = __shfl_up_sync(0xffffffffu, run, off);
    if (lane >= off) run += y;
  }
  __syncwarp();
  brow[2 * lane] = run - x[1] + x[0];
  brow[2 * lane + 1] = run;
  __syncwarp();
}
// The same by warp 0 of the block (chunk_fwd).
__device__ __forceinline__ void scalar_gate_cumsum(const EngineParams& p, float* brow, const Rows& rows, int bh,
                                                   int c, float fixed) {
  if (threadIdx.x < 32) warp_gate_cumsum(p, brow, rows, bh, c, fixed, threadIdx.x);
}

// Vector gates: Gs [C][kDk] becomes b in place (one thread per column, in order).
template <class C>
__device__ __forceinline__ void vector_gate_cumsum(float* G) {
  for (int d = threadIdx.x; d < C::kDk; d += kThreads) {
    float s = 0.0f;
    for (int r = 0; r < kC; ++r) {
      s += G[r * C::kDk + d];
      G[r * C::kDk + d] = s;
    }
  }
}

template <bool kBonus>
__device__ __forceinline__ float bq_at(const float* b, int ld, int r, int d) {
  if constexpr (kBonus) return r == 0 ? 0.0f : b[(r - 1) * ld + d];
  else return b[r * ld + d];
}

// based: the Taylor features of one row of 16 values y (already times sqrt(scale)), written as T
// into row X in pairs (32-bit stores); the feature index is a compile-time constant throughout.
template <class T>
__device__ __forceinline__ void based_features_row(const float (&y)[16], T* X) {
  uint32_t* out = reinterpret_cast<uint32_t*>(X);
  float pending = 0.0f;
  int f = 0;
  auto put = [&](float val) {
    if (f & 1) out[f >> 1] = pack2<T>(pending, val);
    else pending = val;
    ++f;
  };
  put(1.0f);
#pragma unroll
  for (int a = 0; a < 16; ++a) put(y[a]);
#pragma unroll
  for (int a = 0; a < 16; ++a) put(y[a] * y[a] * kInvSqrt2);
#pragma unroll
  for (int a = 0; a < 16; ++a)
#pragma unroll
    for (int b = a + 1; b < 16; ++b) put(y[a] * y[b]);
#pragma unroll
  for (int i = 0; i < kBasedF - 153; ++i) put(0.0f);
}

// The state registers of a warp: row tiles mt = warp + 4i (i < kMTW, mt < kMT), kBV columns.
template <class C>
struct State {
  float s[C::kMTW][C::kNT][4];
  __device__ void zero() {
#pragma unroll
    for (int i = 0; i < C::kMTW; ++i) zero_acc(s[i]);
  }
  // S <- diag(decay) S + X^T V, X = rows [C][ldx] of the chunk's k (T), V = Vs. fix(a, mt, kk) turns
  // each A fragment of X^T (state rows 16mt.., chunk rows 16kk..) into phi_k in registers.
  template <class DecayFn, class FixFn>
  __device__ void update(const typename C::T* X, int ldx, const typename C::T* V, int warp, int lane, DecayFn decay,
                         FixFn fix) {
    using T = typename C::T;
    const int g = lane >> 2;
#pragma unroll
    for (int i = 0; i < C::kMTW; ++i) {
      const int mt = warp + 4 * i;
      if (mt >= C::kMT) continue;
      const float d0 = decay(16 * mt + g), d1 = decay(16 * mt + g + 8);
#pragma unroll
      for (int nt = 0; nt < C::kNT; ++nt) {
        s[i][nt][0] *= d0, s[i][nt][1] *= d0, s[i][nt][2] *= d1, s[i][nt][3] *= d1;
      }
#pragma unroll
      for (int kk = 0; kk < kC / 16; ++kk) {
        uint32_t a[4];
        ldsm_a_trans(a, X, ldx, 16 * mt, 16 * kk, lane);
        fix(a, mt, kk);
#pragma unroll
        for (int np = 0; np < C::kNT / 2; ++np) {
          uint32_t b[4];
          ldsm_b_kn(b, V, C::kLdV, 16 * kk, 16 * np, lane);
          mma_pair<T>(s[i], np, a, b);
        }
      }
    }
  }
  // rd(factor * S) into the shared tile Ss [kF][kLdV].
  __device__ void to_smem(typename C::T* Ss, int warp, int lane, float factor) const {
#pragma unroll
    for (int i = 0; i < C::kMTW; ++i) {
      const int mt = warp + 4 * i;
      if (mt >= C::kMT) continue;
      float x[C::kNT][4];
#pragma unroll
      for (int nt = 0; nt < C::kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) x[nt][e] = factor * s[i][nt][e];
      store_acc_smem<typename C::T>(Ss, C::kLdV, 16 * mt, 0, x, lane);
    }
  }
};

// A packed pair (lo, hi) of T times (x, y), rounded back to T.
template <class T>
__device__ __forceinline__ uint32_t scale_pair(uint32_t v, float x, float y) {
  const float2 f = unpack2<T>(v);
  return pack2<T>(f.x * x, f.y * y);
}

// No change to the fragments (phi_k = k).
struct NoFix {
  __device__ void operator()(uint32_t (&)[4], int, int) const {}
};

// Zero the rounded state tile.
template <class C>
__device__ __forceinline__ void zero_smem_state(typename C::T* Ss) {
  uint32_t* w = reinterpret_cast<uint32_t*>(Ss);
  for (int i = threadIdx.x; i < C::kSBytes / 4; i += kThreads) w[i] = 0u;
}

}  // namespace attnbench::kernels::lin_tiled
