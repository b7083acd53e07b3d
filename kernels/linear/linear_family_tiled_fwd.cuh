// The tiled chunkwise forward kernel of the causal linear families (also the anti-causal passes
// of some backwards, which bind other tensors to q, k, v). Notation in linear_family_tiled.cuh.
//
// Per chunk, warp w owns query rows r = 16w..16w+15 and computes, against the chunk's keys j:
//   intra-chunk weights A_rj (0 unless j <= r; rwkv6: j < r), by policy:
//     linear       A = q_r.k_j                                (tensor cores, fp32 accumulate)
//     based        A = 1 + s + s^2/2,  s = scale q_r.k_j
//     gated scalar A = (q_r.k_j) exp(b_r - b_j)                (fixed gates: retention, lightning)
//     gated vector A = sum_d q_rd k_jd exp(bq_rd - b_jd):  for key blocks J < w on tensor cores
//                  with both factors <= 1,  (q_r * exp(bq_r - b_{16J+15})) . rd(k_j * exp(b_{16J+15} - b_j)),
//                  and the diagonal 16 x 16 block in fp32 on CUDA cores, factored about b_{16w}
//   o_r = scale (rd(A) V + rd(phi_q) rd(S)) [+ a_r v_r, rwkv6 bonus a_r = q_r.(u*k_r), fp32]
//   with the normalizer: linear o_r /= scale (q_r.z + rowsum A_r) + eps,
//                        based  o_r /= phi_q.z + rowsum A_r + 1e-6   (z = sum of earlier phi_k)
// The normalizer's backward (linear) adds a rank-one correction with per-row c (corr_form):
//   1: A_rj -= c_r, o_r -= c_r sum_{earlier chunks} v_j;   2: A_rj -= c_j, o_r -= sum_{earlier} c_j v_j
// (the running sums fp32, in z), so that rd(A) is the emulation's rd(dM) = rd(W V^T - delta).
// then the state update (linear_family_tiled.cuh). fp32 accumulation throughout; A, phi and S are
// rounded to the storage type as tensor-core operands, as the same-precision emulations do.
#pragma once

#include "linear_family_tiled.cuh"

namespace attnbench::kernels::lin_tiled {

// Vector gates: the intra-chunk weights of warp w's rows into sc (16 x 64), unmasked.
template <class C, bool kBonus>
__device__ void vector_intra(const Tile<C>& t, const typename C::T* Q, const typename C::T* K, const float* B,
                             int warp, int lane, float (&sc)[8][4]) {
  using T = typename C::T;
  const int g = lane >> 2, q4 = lane & 3;
  // Off-diagonal key blocks J < w: both factors are <= 1, so any storage type holds them.
#pragma unroll
  for (int J = 0; J < 3; ++J) {
    if (J >= warp) continue;
    const float* ref = B + (16 * J + 15) * C::kDk;
#pragma unroll
    for (int kk = 0; kk < C::kKT; ++kk) {
      uint32_t a[4];
#pragma unroll
      for (int ri = 0; ri < 4; ++ri) {
        const int row = 16 * warp + g + 8 * (ri & 1), col = 16 * kk + 2 * q4 + 8 * (ri >> 1);
        float x[2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          x[e] = to_f32(Q[row * C::kLdQ + col + e]) * __expf(bq_at<kBonus>(B, C::kDk, row, col + e) - ref[col + e]);
        }
        a[ri] = pack2<T>(x[0], x[1]);
      }
      uint32_t b[4];
      ldsm_b_nk(b, t.Kg, C::kLdQ, 16 * J, 16 * kk, lane);
      mma_pair<T>(sc, J, a, b);
    }
  }
  // Diagonal block, fp32: q_rd exp(bq_rd - c_d) times k_jd exp(c_d - b_jd), c = b at row 16w,
  // through per-warp scratch in slices of 32 columns.
  float* qd = t.diag + warp * 2 * 16 * C::kDiagLd;
  float* kd = qd + 16 * C::kDiagLd;
  const float* cref = B + 16 * warp * C::kDk;
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int d0 = 0; d0 < C::kDk; d0 += 32) {
    const int d = d0 + lane;
    if (d < C::kDk) {
      for (int rr = 0; rr < 16; ++rr) {
        const int row = 16 * warp + rr;
        qd[rr * C::kDiagLd + lane] = to_f32(Q[row * C::kLdQ + d]) * __expf(bq_at<kBonus>(B, C::kDk, row, d) - cref[d]);
        kd[rr * C::kDiagLd + lane] = to_f32(K[row * C::kLdQ + d]) * __expf(cref[d] - B[row * C::kDk + d]);
      }
    } else {
      for (int rr = 0; rr < 16; ++rr) qd[rr * C::kDiagLd + lane] = kd[rr * C::kDiagLd + lane] = 0.0f;
    }
    __syncwarp();
    for (int dd = 0; dd < 32; ++dd) {
      const float q0 = qd[g * C::kDiagLd + dd], q1 = qd[(g + 8) * C::kDiagLd + dd];
      const float k0 = kd[(2 * q4) * C::kDiagLd + dd], k1 = kd[(2 * q4 + 1) * C::kDiagLd + dd];
      const float k2 = kd[(2 * q4 + 8) * C::kDiagLd + dd], k3 = kd[(2 * q4 + 9) * C::kDiagLd + dd];
      acc[0] += q0 * k0, acc[1] += q0 * k1, acc[2] += q1 * k0, acc[3] += q1 * k1;
      acc[4] += q0 * k2, acc[5] += q0 * k3, acc[6] += q1 * k2, acc[7] += q1 * k3;
    }
    __syncwarp();
  }
#pragma unroll
  for (int J = 0; J < 4; ++J) {
    if (J != warp) continue;
#pragma unroll
    for (int e = 0; e < 4; ++e) sc[2 * J][e] += acc[e], sc[2 * J + 1][e] += acc[4 + e];
  }
}

// Per-chunk preparation before the intra-chunk part: gate sums, feature tiles, per-row values.
template <class C, bool kBonus>
__device__ void prepare_chunk(const EngineParams& p, const Tile<C>& t, const Rows& rows, int bh, int h, int c, int s,
                              float fixed) {
  using T = typename C::T;
  const T *Q = t.Qs(s), *K = t.Ks(s);
  if constexpr (C::kFeat == Feat::linear) {
    if (p.corr_form) {
      for (int r = threadIdx.x; r < kC; r += kThreads) {
        t.brow[r] = rows.valid(c, r) ? p.corr[int64_t(bh) * p.T + rows.time(c, r)] : 0.0f;
      }
    }
    if (p.normalize) {
      for (int r = threadIdx.x; r < kC; r += kThreads) {
        float acc = 0.0f;
        for (int d = 0; d < C::kDk; ++d) acc += to_f32(Q[r * C::kLdQ + d]) * t.z[d];
        t.qz[r] = acc;
      }
    }
  } else if constexpr (C::kFeat == Feat::based) {
    // one thread per row: threads 0..63 the q rows (and q.z), 64..127 the k rows
    const float rs = sqrtf(p.scale);
    const int r = threadIdx.x & (kC - 1);
    const bool is_q = threadIdx.x < kC;
    const T* X = is_q ? Q : K;
    float y[16];
#pragma unroll
    for (int a = 0; a < 16; ++a) y[a] = rs * to_f32(X[r * C::kLdQ + a]);
    based_features_row<T>(y, (is_q ? t.Qf : t.Kf) + r * C::kLdF);
    if (p.normalize && is_q) {  // q.z = z0 + y.z1 + y^T Z2 y
      float acc = t.z[0];
#pragma unroll
      for (int a = 0; a < 16; ++a) {
        float inner = t.z[1 + a];
#pragma unroll
        for (int b = 0; b < 16; ++b) inner += t.z[17 + 16 * a + b] * y[b];
        acc += y[a] * inner;
      }
      t.qz[r] = acc;
    }
  } else if constexpr (C::kFeat == Feat::gate_scalar) {
    scalar_gate_cumsum(p, t.brow, rows, bh, c, fixed);
  } else {  // gate_vector
    float* B = t.Gs(s);
    vector_gate_cumsum<C>(B);
    __syncthreads();
    for (int idx = threadIdx.x; idx < kC * C::kDk; idx += kThreads) {  // K~ = rd(k exp(b_{16J+15} - b))
      const int r = idx / C::kDk, d = idx % C::kDk, ref = (r | 15) * C::kDk + d;
      t.Kg[r * C::kLdQ + d] = from_f32<T>(to_f32(K[r * C::kLdQ + d]) * __expf(B[ref] - B[r * C::kDk + d]));
    }
    if (kBonus) {
      const float* u = p.u + h * p.Dqk;
      for (int r = threadIdx.x; r < kC; r += kThreads) {
        float acc = 0.0f;
        for (int d = 0; d < p.Dqk; ++d) acc += to_f32(Q[r * C::kLdQ + d]) * to_f32(K[r * C::kLdQ + d]) * u[d];
        t.bon[r] = acc;
      }
    }
  }
}

// The normalizer's running sums after a chunk (linear: z += colsum k; based: z0, z1, Z2).
template <class C>
__device__ void update_z(const EngineParams& p, const Tile<C>& t, const Rows& rows, int c, int s) {
  const typename C::T* K = t.Ks(s);
  if constexpr (C::kFeat == Feat::linear) {
    for (int d = threadIdx.x; d < C::kDk; d += kThreads) {
      float acc = 0.0f;
      for (int r = 0; r < kC; ++r) acc += to_f32(K[r * C::kLdQ + d]);
      t.z[d] += acc;
    }
  } else if constexpr (C::kFeat == Feat::based) {
    const float rs = sqrtf(p.scale);
    for (int e = threadIdx.x; e < 256; e += kThreads) {  // Z2_ab += sum_r y_a y_b / 2
      const int a = e / 16, b = e % 16;
      float acc = 0.0f;
      for (int r = 0; r < kC; ++r) acc += to_f32(K[r * C::kLdQ + a]) * to_f32(K[r * C::kLdQ + b]);
      t.z[17 + e] += 0.5f * p.scale * acc;
    }
    if (threadIdx.x < 16) {
      float acc = 0.0f;
      for (int r = 0; r < kC; ++r) acc += to_f32(K[r * C::kLdQ + threadIdx.x]);
      t.z[1 + threadIdx.x] += rs * acc;
    }
    if (threadIdx.x == 0) {
      int n = 0;
      for (int r = 0; r < kC; ++r) n += rows.valid(c, r) ? 1 : 0;
      t.z[0] += float(n);
    }
  }
}

// grid (value tiles, B*H); 128 threads; shared memory C::kSmemBytes.
template <class C, bool kBonus>
__global__ void __launch_bounds__(kThreads, C::kMinBlocks) chunk_fwd(EngineParams p) {
  using T = typename C::T;
  LIN_DYN_SMEM(unsigned char, smem);
  const Tile<C> t(smem);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
  const int vt = blockIdx.x, bh = blockIdx.y, h = bh % p.H, v0 = vt * C::kBV;
  const int NC = (p.T + kC - 1) / kC;
  const Rows rows{p.T, NC, NC * kC, p.reverse, false};
  const float fixed = (C::kFeat == Feat::gate_scalar && p.gate == kGateFixed) ? fixed_log_gate(p.lightning, h, p.H) : 0.0f;
  State<C> st;
  st.zero();
  zero_smem_state<C>(t.Ss);
  if (p.normalize || p.corr_form) {
    for (int i = threadIdx.x; i < C::kZBytes / 4; i += kThreads) t.z[i] = 0.0f;
  }
  load_chunk<C>(p, t, rows, bh, v0, 0, 0);
  cp_async_commit();
  T* o = static_cast<T*>(p.o) + int64_t(bh) * p.T * p.Dvv;

  for (int c = 0; c < NC; ++c) {
    const int s = C::kStages == 2 ? (c & 1) : 0;
    if (C::kStages == 2 && c + 1 < NC) {
      load_chunk<C>(p, t, rows, bh, v0, c + 1, s ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T *Q = t.Qs(s), *K = t.Ks(s), *V = t.Vs(s);
    const float* B = t.Gs(s);
    prepare_chunk<C, kBonus>(p, t, rows, bh, h, c, s, fixed);
    __syncthreads();

    // ---- intra-chunk weights of this warp's 16 rows against the chunk's 64 keys
    float sc[8][4];
    zero_acc(sc);
    if constexpr (C::kVector) {
      vector_intra<C, kBonus>(t, Q, K, B, warp, lane, sc);
    } else {
#pragma unroll
      for (int kk = 0; kk < C::kKT; ++kk) {
        uint32_t a[4];
        ldsm_a(a, Q, C::kLdQ, 16 * warp, 16 * kk, lane);
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          if (np > warp) continue;
          uint32_t b[4];
          ldsm_b_nk(b, K, C::kLdQ, 16 * np, 16 * kk, lane);
          mma_pair<T>(sc, np, a, b);
        }
      }
    }
    const int r0 = 16 * warp + g, r1 = r0 + 8;
    float rsum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e < 2 ? r0 : r1, j = 8 * nt + 2 * q4 + (e & 1);
        bool keep = kBonus ? j < r : j <= r;
        const float x = sc[nt][e];
        float a = x;
        if constexpr (C::kFeat == Feat::based) {
          keep = keep && rows.valid(c, j);
          const float sx = p.scale * x;
          a = 1.0f + sx + 0.5f * sx * sx;
        } else if constexpr (C::kFeat == Feat::gate_scalar) {
          a = keep ? x * __expf(t.brow[r] - t.brow[j]) : 0.0f;
        } else if constexpr (C::kFeat == Feat::linear) {
          if (p.corr_form) a = x - t.brow[p.corr_form == 1 ? r : j];
        }
        a = keep ? a : 0.0f;
        sc[nt][e] = a;
        rsum[e >> 1] += a;
      }
    }
    uint32_t af[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      if (kk <= warp) acc_to_a<T>(sc, kk, af[kk]);
    }

    // ---- output rows: scale (rd(phi_q) rd(S) + rd(A) V) (+ bonus) (/ den)
    float oa[C::kNT][4];
    zero_acc(oa);
    const T* Xq = C::kFeat == Feat::based ? t.Qf : Q;
    constexpr int kLdX = C::kFeat == Feat::based ? C::kLdF : C::kLdQ;
#pragma unroll
    for (int kk = 0; kk < C::kF / 16; ++kk) {
      uint32_t a[4];
      ldsm_a(a, Xq, kLdX, 16 * warp, 16 * kk, lane);
      if constexpr (C::kVector) {  // phi_q = rd(q * exp(bq)) in registers
        const int d = 16 * kk + 2 * q4;
        a[0] = scale_pair<T>(a[0], __expf(bq_at<kBonus>(B, C::kDk, r0, d)), __expf(bq_at<kBonus>(B, C::kDk, r0, d + 1)));
        a[1] = scale_pair<T>(a[1], __expf(bq_at<kBonus>(B, C::kDk, r1, d)), __expf(bq_at<kBonus>(B, C::kDk, r1, d + 1)));
        a[2] = scale_pair<T>(a[2], __expf(bq_at<kBonus>(B, C::kDk, r0, d + 8)), __expf(bq_at<kBonus>(B, C::kDk, r0, d + 9)));
        a[3] = scale_pair<T>(a[3], __expf(bq_at<kBonus>(B, C::kDk, r1, d + 8)), __expf(bq_at<kBonus>(B, C::kDk, r1, d + 9)));
      }
#pragma unroll
      for (int np = 0; np < C::kNT / 2; ++np) {
        uint32_t b[4];
        ldsm_b_kn(b, t.Ss, C::kLdV, 16 * kk, 16 * np, lane);
        mma_pair<T>(oa, np, a, b);
      }
    }
    if constexpr (C::kFeat == Feat::gate_scalar) {  // the query's decay since the chunk start, fp32
      const float e0 = __expf(t.brow[r0]), e1 = __expf(t.brow[r1]);
#pragma unroll
      for (int nt = 0; nt < C::kNT; ++nt) oa[nt][0] *= e0, oa[nt][1] *= e0, oa[nt][2] *= e1, oa[nt][3] *= e1;
    }
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      if (kk > warp) continue;
#pragma unroll
      for (int np = 0; np < C::kNT / 2; ++np) {
        uint32_t b[4];
        ldsm_b_kn(b, V, C::kLdV, 16 * kk, 16 * np, lane);
        mma_pair<T>(oa, np, af[kk], b);
      }
    }
    float den[2] = {1.0f, 1.0f};
    if (p.normalize) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int r = i == 0 ? r0 : r1;
        const float rs = quad_sum(rsum[i]);
        den[i] = C::kFeat == Feat::based ? t.qz[r] + rs + kBasedEps : p.scale * (t.qz[r] + rs) + p.eps;
      }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = i == 0 ? r0 : r1;
      if (!rows.valid(c, r)) continue;
      const int tm = rows.time(c, r);
      const float f = (C::kFeat == Feat::based ? 1.0f : p.scale) / den[i];
      const float bon = kBonus ? t.bon[r] : 0.0f;
#pragma unroll
      for (int nt = 0; nt < C::kNT; ++nt) {
        const int col = 8 * nt + 2 * q4;
        float x0 = oa[nt][2 * i], x1 = oa[nt][2 * i + 1];
        if (kBonus) {
          x0 += bon * to_f32(V[r * C::kLdV + col]);
          x1 += bon * to_f32(V[r * C::kLdV + col + 1]);
        }
        if (C::kFeat == Feat::linear && p.corr_form) {
          const float cr = p.corr_form == 1 ? t.brow[r] : 1.0f;
          x0 -= cr * t.z[col];
          x1 -= cr * t.z[col + 1];
        }
        if (v0 + col < p.Dvv) {
          *reinterpret_cast<uint32_t*>(o + int64_t(tm) * p.Dvv + v0 + col) = pack2<T>(f * x0, f * x1);
        }
      }
      if (p.den && p.normalize && vt == 0 && q4 == 0) p.den[int64_t(bh) * p.T + tm] = den[i];
    }
    __syncthreads();  // every read of Ss is done

    // ---- state update
    const T* Xk = C::kFeat == Feat::based ? t.Kf : K;
    if constexpr (C::kFeat == Feat::gate_scalar) {  // phi_k = rd(k exp(last - b_j)): a factor per chunk row j
      const float last = t.brow[kC - 1], dk = __expf(last);
      const float* brow = t.brow;
      st.update(Xk, kLdX, V, warp, lane, [dk](int) { return dk; }, [=](uint32_t (&a)[4], int, int kk) {
        const int j = 16 * kk + 2 * q4;
        const float f0 = __expf(last - brow[j]), f1 = __expf(last - brow[j + 1]);
        const float f8 = __expf(last - brow[j + 8]), f9 = __expf(last - brow[j + 9]);
        a[0] = scale_pair<T>(a[0], f0, f1), a[1] = scale_pair<T>(a[1], f0, f1);
        a[2] = scale_pair<T>(a[2], f8, f9), a[3] = scale_pair<T>(a[3], f8, f9);
      });
    } else if constexpr (C::kVector) {  // phi_k = rd(k * exp(last - b_j)), per element (state row f, chunk row j)
      st.update(Xk, kLdX, V, warp, lane, [B](int f) { return __expf(B[(kC - 1) * C::kDk + f]); },
                [=](uint32_t (&a)[4], int mt, int kk) {
                  const int f = 16 * mt + g, j = 16 * kk + 2 * q4;
                  auto e = [B](int ff, int jj) { return __expf(B[(kC - 1) * C::kDk + ff] - B[jj * C::kDk + ff]); };
                  a[0] = scale_pair<T>(a[0], e(f, j), e(f, j + 1));
                  a[1] = scale_pair<T>(a[1], e(f + 8, j), e(f + 8, j + 1));
                  a[2] = scale_pair<T>(a[2], e(f, j + 8), e(f, j + 9));
                  a[3] = scale_pair<T>(a[3], e(f + 8, j + 8), e(f + 8, j + 9));
                });
    } else {
      st.update(Xk, kLdX, V, warp, lane, [](int) { return 1.0f; }, NoFix{});
    }
    st.to_smem(t.Ss, warp, lane, 1.0f);
    if (p.normalize) update_z<C>(p, t, rows, c, s);
    if (C::kFeat == Feat::linear && p.corr_form) {  // the correction's running sum over value rows
      for (int col = threadIdx.x; col < C::kBV; col += kThreads) {
        float acc = 0.0f;
        for (int r = 0; r < kC; ++r) acc += (p.corr_form == 2 ? t.brow[r] : 1.0f) * to_f32(V[r * C::kLdV + col]);
        t.z[col] += acc;
      }
    }
    __syncthreads();
    if (C::kStages == 1 && c + 1 < NC) {
      load_chunk<C>(p, t, rows, bh, v0, c + 1, 0);
      cp_async_commit();
    }
  }
}

}  // namespace attnbench::kernels::lin_tiled
