// The two state scans of the gated backward with data-dependent gates (scalar, vector, rwkv6),
// mirroring gated_emul.h: they store per chunk what the chunk-parallel gradient kernel
// (linear_family_tiled_gbwd.cuh) reads. Notation in linear_family_tiled.cuh; X is the k role.
//   reverse scan (X = q, Y = dO), chunks from the last, run first:
//     store rd(D_c)  (dL/dS at the end of chunk c; D = 0 after the last chunk),
//     D <- diag(exp(last)) D + scale rd(q * exp(bq))^T dO
//   forward scan (X = k, Y = v), chunks in order:
//     store rd(S_c)  (the state before chunk c),   S <- diag(exp(last)) S + rd(k * exp(last - b))^T V
//     bnd_c[d] = sum_e S_{c+1}[d,e] rd(D_c)[d,e]  (fp32 S; this value tile's part of the dg
//     boundary term; bnd_{NC-1} = 0). The gradient kernel's dk reads the same rd(D_c), so D's
//     rounding cancels between bnd_c and -k dk on the pairs across the chunk's end, where the two
//     nearly cancel (with rd(S_{c+1}) D_c it did not: fp16 with strong gates put dg over its cap).
// The states are [B*H][NC][Dk][Dv] in the storage type; bnd is [B*H][NV][NC][Dk] fp32.
// Since session 17 the vector gates at widths in (64, 128] on sm_90 run the wgmma scans of
// linear_family_tiled_scan_wg.cuh instead (same stores; ATTNBENCH_LIN_GBWD=oldscan keeps these).
#pragma once

#include <type_traits>

#include "linear_family_tiled.cuh"

namespace attnbench::kernels::lin_tiled {

// The vector-gate scans' configuration since session 7: chunk_fwd's Cfg without the tiles the
// scans never touch (K~ and the diagonal scratch, 34 KB at Dk = 128), one stage: 97 KB at Dk = 128,
// two blocks an SM (Cfg's 131 KB: one), so one block's loads overlap the other's chunk (session 5
// ran the scans with Cfg itself: reverse 1.77 -> 1.05 ms, forward 3.77 -> 2.06 ms, vector T = 4096,
// H200). kPre (ATTNBENCH_LIN_GBWD=scanpre,
// forward scan, an A/B switch): rd(D_{cc-1}) of the boundary term comes into the Ss room (unused
// by the scans) by cp.async with the chunk's tiles, instead of element by element from global
// memory inside the state-store loop.
template <class Base, bool kPre = false>
struct ScanCfg : Base {
  static constexpr bool kPreD = kPre;
  static constexpr int kKgBytes = 0, kDiagBytes = 0;
  static constexpr int kFixedBytes = Base::kSBytes + Base::kFeatBytes + Base::kRowBytes + Base::kZBytes;
  static constexpr int kStages = 1;
  static constexpr int kSmemBytes = Base::kStageBytes + kFixedBytes;
};

// C::kPreD where C defines it (ScanCfg), else false.
template <class C, class = void>
struct PreD : std::false_type {};
template <class C>
struct PreD<C, std::void_t<decltype(C::kPreD)>> : std::bool_constant<C::kPreD> {};

// grid (value tiles, B*H); 128 threads; shared memory C::kSmemBytes.
template <class C, bool kBonus, bool kRev>
__global__ void __launch_bounds__(kThreads, 1) chunk_scan(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem);
  const Tile<C> t(smem);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
  const int vt = blockIdx.x, bh = blockIdx.y, h = bh % p.H, v0 = vt * C::kBV;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, false, kRev};
  const float fixed = (C::kFeat == Feat::gate_scalar && p.gate == kGateFixed) ? fixed_log_gate(p.lightning, h, p.H) : 0.0f;
  const float out_scale = kRev ? p.scale : 1.0f;
  T* states = static_cast<T*>(p.states) + int64_t(bh) * NC * C::kF * p.Dvv;
  // forward scan of the gated backward: rd(D_c) of the reverse scan (run first), for the boundary term
  const T* d_states =
      !kRev && p.bnd ? static_cast<const T*>(p.bnd_states) + int64_t(bh) * NC * C::kF * p.Dvv : nullptr;
  // ScanCfg<_, true>: rd(D_{cc-1}) by cp.async into Ss (loaded with the chunk's tiles)
  constexpr bool kPreD = PreD<C>::value && !kRev;
  static_assert(!kPreD || C::kStages == 1, "a one-stage configuration");
  auto load_d = [&](int c) {
    const int cn = rows.chunk(c);
    if (!kPreD || !d_states || cn == 0) return;
    const T* src = d_states + int64_t(cn - 1) * C::kF * p.Dvv + v0;
    constexpr int kSeg = C::kBV / 8;
    for (int idx = threadIdx.x; idx < C::kF * kSeg; idx += kThreads) {
      const int f = idx / kSeg, col = (idx % kSeg) * 8;
      const bool ok = v0 + col < p.Dvv;
      cp_async16(t.Ss + f * C::kLdV + col, src + (ok ? int64_t(f) * p.Dvv + col : 0), ok);
    }
  };
  State<C> st;
  st.zero();
  load_chunk<C, false>(p, t, rows, bh, v0, 0, 0);
  load_d(0);
  cp_async_commit();
  for (int c = 0; c < NC; ++c) {
    const int s = C::kStages == 2 ? (c & 1) : 0, cc = rows.chunk(c);
    if (C::kStages == 2 && c + 1 < NC) {
      load_chunk<C, false>(p, t, rows, bh, v0, c + 1, s ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    T* X = t.Ks(s);
    const T* Y = t.Vs(s);
    float* B = t.Gs(s);
    if constexpr (C::kVector) {
      vector_gate_cumsum<C>(B);
    } else {
      scalar_gate_cumsum(p, t.brow, rows, bh, c, fixed);
    }
    __syncthreads();
    // phi of the X rows in place: k * exp(last - b) (forward), q * exp(bq) (reverse)
    for (int idx = threadIdx.x; idx < kC * C::kDk; idx += kThreads) {
      const int r = idx / C::kDk, d = idx % C::kDk;
      float e;
      if constexpr (C::kVector) {
        e = kRev ? bq_at<kBonus>(B, C::kDk, r, d) : B[(kC - 1) * C::kDk + d] - B[r * C::kDk + d];
      } else {
        e = kRev ? t.brow[r] : t.brow[kC - 1] - t.brow[r];
      }
      X[r * C::kLdQ + d] = from_f32<T>(to_f32(X[r * C::kLdQ + d]) * __expf(e));
    }
    // store rd(state) before this chunk's update; the forward scan also forms the boundary term of
    // the chunk before (its state S_cc is S_{c+1} of chunk cc - 1)
#pragma unroll
    for (int i = 0; i < C::kMTW; ++i) {
      const int mt = warp + 4 * i;
      if (mt >= C::kMT) continue;
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int f = 16 * mt + g + 8 * hr;
        float bsum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < C::kNT; ++nt) {
          const int col = v0 + 8 * nt + 2 * q4;
          const float x0 = out_scale * st.s[i][nt][2 * hr], x1 = out_scale * st.s[i][nt][2 * hr + 1];
          if (col < p.Dvv) {
            const int64_t off = (int64_t(cc) * C::kF + f) * p.Dvv + col;
            *reinterpret_cast<uint32_t*>(states + off) = pack2<T>(x0, x1);
            if (d_states && cc > 0) {
              const int64_t prv = off - int64_t(C::kF) * p.Dvv;
              if constexpr (kPreD) {
                const uint32_t w = *reinterpret_cast<const uint32_t*>(t.Ss + f * C::kLdV + 8 * nt + 2 * q4);
                const float2 dd = unpack2<T>(w);
                bsum += x0 * dd.x + x1 * dd.y;
              } else {
                bsum += x0 * to_f32(d_states[prv]) + x1 * to_f32(d_states[prv + 1]);
              }
            }
          }
        }
        if (d_states) {
          bsum = quad_sum(bsum);
          float* bo = p.bnd + (int64_t(bh) * p.NV + vt) * NC * p.Dqk + f;
          if (q4 == 0 && f < p.Dqk && cc > 0) bo[int64_t(cc - 1) * p.Dqk] = bsum;
          if (q4 == 0 && f < p.Dqk && cc == NC - 1) bo[int64_t(cc) * p.Dqk] = 0.0f;  // no state after the last
        }
      }
    }
    __syncthreads();
    if constexpr (C::kVector) {
      st.update(X, C::kLdQ, Y, warp, lane, [B](int f) { return __expf(B[(kC - 1) * C::kDk + f]); }, NoFix{});
    } else {
      const float dk = __expf(t.brow[kC - 1]);
      st.update(X, C::kLdQ, Y, warp, lane, [dk](int) { return dk; }, NoFix{});
    }
    __syncthreads();
    if (C::kStages == 1 && c + 1 < NC) {
      load_chunk<C, false>(p, t, rows, bh, v0, c + 1, 0);
      load_d(c + 1);
      cp_async_commit();
    }
  }
}

}  // namespace attnbench::kernels::lin_tiled
