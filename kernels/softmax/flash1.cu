// softmax/flash1: FlashAttention-1's loop order (Dao et al. 2022, Algorithms 1 and 4), minimal
// fp32 teaching kernels after the seed. One thread block per head walks every tile pair: the
// outer loop over K/V blocks, the inner loop over Q blocks; O, row_l and row_m live in global
// memory and are updated after every (i, j) tile pair. See flash_minimal.cuh for the notation.
//
// Forward (block per query head; thread r owns query row i = i0 + r of every Q block):
//   for each j:  Kj, Vj -> shared
//     for each i: Qi -> shared
//       S_ij = scale Qi Kj^T (masked -> -inf);  m~ = rowmax(S_ij);  P~ = exp(S_ij - m~);  l~ = rowsum(P~)
//       m_new = max(m_i, m~);  l_new = e^(m_i - m_new) l_i + e^(m~ - m_new) l~
//       O_i = ( l_i e^(m_i - m_new) O_i + e^(m~ - m_new) P~ Vj ) / l_new       (global memory)
//       m_i = m_new, l_i = l_new                                               (global memory)
//   L_i = m_i + log l_i (-inf for a row that sees no key)
// Backward (block per kv head and its query heads; no atomics: the block owns every row it writes):
//   for each j:  Kj, Vj -> shared, dKj = dVj = 0
//     for each query head h of the group, each i: Qi, dOi -> shared
//       P_ij = exp(S_ij - m_i) / l_i;  dP_ij = dOi Vj^T;  D_i = rowsum(dOi o O_i)
//       dS_ij = P_ij o (dP_ij - D_i)
//       dVj += P_ij^T dOi;  dKj += scale dS_ij^T Qi  (thread per key row)
//       dQ_i += scale dS_ij Kj                     (thread per query row, global memory)
//     dKj, dVj -> global
#include <cmath>

#include "flash_minimal.cuh"

namespace attnbench::kernels::flash {
namespace {

__global__ void __launch_bounds__(Br) flash1_forward_kernel(FlashParams p) {
  extern __shared__ float smem[];
  const int ldk = ld(p.Dk), ldv = ld(p.Dv);
  float* Qi = smem;            // (Br, Dk)
  float* Kj = Qi + Br * ldk;   // (Bc, Dk)
  float* Vj = Kj + Bc * ldk;   // (Bc, Dv)
  float* S = Vj + Bc * ldv;    // (Br, Bc): scores, then P~
  const int tx = threadIdx.x;
  const int bh = blockIdx.x, b = bh / p.H, h = bh % p.H, hk = h / (p.H / p.Hkv);
  float* Si = S + tx * ld(Bc);

  // O = 0, l = 0, m = -inf. Thread tx initializes rows tx, tx + Br, ...: the rows it owns below.
  for (int i = tx; i < p.Tq; i += Br) {
    const int64_t row = q_row(p, b, h, i);
    for (int d = 0; d < p.Dv; ++d) p.o[row * p.Dv + d] = 0.0f;
    p.row_l[row] = 0.0f;
    p.row_m[row] = -INFINITY;
  }

  for (int j0 = 0; j0 < p.Tk; j0 += Bc) {
    __syncthreads();  // the previous Kj, Vj are consumed
    load_tile(Kj, p.k + k_row(p, b, hk, j0) * p.Dk, Bc, p.Tk - j0, p.Dk);
    load_tile(Vj, p.v + k_row(p, b, hk, j0) * p.Dv, Bc, p.Tk - j0, p.Dv);
    for (int i0 = first_query_block(p, j0); i0 < p.Tq; i0 += Br) {
      __syncthreads();  // Kj, Vj loaded; the previous Qi consumed
      load_tile(Qi, p.q + q_row(p, b, h, i0) * p.Dk, Br, p.Tq - i0, p.Dk);
      __syncthreads();
      const int i = i0 + tx;
      if (i >= p.Tq) continue;
      // S_ij = scale Qi Kj^T and m~ = rowmax(S_ij)
      float m_tilde = -INFINITY;
      for (int c = 0; c < Bc; ++c) {
        const float s = visible(p, i, j0 + c) ? p.scale * dot(Qi + tx * ldk, Kj + c * ldk, p.Dk) : -INFINITY;
        Si[c] = s;
        m_tilde = fmaxf(m_tilde, s);
      }
      if (m_tilde == -INFINITY) continue;  // no visible key in this block
      // P~ = exp(S_ij - m~), l~ = rowsum(P~)
      float l_tilde = 0.0f;
      for (int c = 0; c < Bc; ++c) {
        Si[c] = expf(Si[c] - m_tilde);  // masked: exp(-inf) = 0
        l_tilde += Si[c];
      }
      const int64_t row = q_row(p, b, h, i);
      const float m_i = p.row_m[row], l_i = p.row_l[row];
      const float m_new = fmaxf(m_i, m_tilde);
      const float l_new = expf(m_i - m_new) * l_i + expf(m_tilde - m_new) * l_tilde;
      // O_i = (l_i e^(m_i - m_new) O_i + e^(m~ - m_new) P~ Vj) / l_new
      const float keep = l_i * expf(m_i - m_new) / l_new, add = expf(m_tilde - m_new) / l_new;
      float* Oi = p.o + row * p.Dv;
      for (int d = 0; d < p.Dv; ++d) {
        float pv = 0.0f;
        for (int c = 0; c < Bc; ++c) pv += Si[c] * Vj[c * ldv + d];
        Oi[d] = keep * Oi[d] + add * pv;
      }
      p.row_m[row] = m_new;
      p.row_l[row] = l_new;
    }
  }
  // L_i = m_i + log l_i, by the thread that owns row i.
  for (int i = tx; i < p.Tq; i += Br) {
    const int64_t row = q_row(p, b, h, i);
    p.lse[row] = p.row_l[row] > 0.0f ? p.row_m[row] + logf(p.row_l[row]) : -INFINITY;
  }
}

__global__ void __launch_bounds__(Br) flash1_backward_kernel(FlashParams p) {
  extern __shared__ float smem[];
  const BwdTiles t(smem, p.Dk, p.Dv);
  const int tx = threadIdx.x;
  const int bhk = blockIdx.x, b = bhk / p.Hkv, hk = bhk % p.Hkv, group = p.H / p.Hkv;

  // dQ = 0 for the query heads of this group; thread tx owns rows tx, tx + Br, ... as below.
  for (int h = hk * group; h < (hk + 1) * group; ++h) {
    for (int i = tx; i < p.Tq; i += Br) {
      for (int d = 0; d < p.Dk; ++d) p.dq[q_row(p, b, h, i) * p.Dk + d] = 0.0f;
    }
  }
  // P_ij = exp(S_ij - m_i) / l_i, D_i = rowsum(dOi o O_i): FA1 keeps no log-normalizer or delta.
  const auto stats = [&p](int64_t row, const float* dO_i) {
    return RowStats{p.row_m[row], p.row_l[row], dot(dO_i, p.o + row * p.Dv, p.Dv)};
  };
  for (int j0 = 0; j0 < p.Tk; j0 += Bc) {
    __syncthreads();  // the previous Kj, Vj are consumed
    bwd_begin_key_block(p, t, b, hk, j0);
    for (int h = hk * group; h < (hk + 1) * group; ++h) {
      for (int i0 = first_query_block(p, j0); i0 < p.Tq; i0 += Br) {
        bwd_query_block<false>(p, t, b, h, i0, j0, stats);  // dQ_i: global memory this thread owns
      }
    }
    bwd_end_key_block(p, t, b, hk, j0);
  }
}

}  // namespace

void flash1_forward(const FlashParams& p, cudaStream_t s) {
  const size_t smem = flash1_forward_smem(p.Dk, p.Dv);
  allow_smem(flash1_forward_kernel, smem);
  flash1_forward_kernel<<<p.B * p.H, Br, smem, s>>>(p);
  CUDA_CHECK_LAUNCH("flash1_forward_kernel");
}

void flash1_backward(const FlashParams& p, cudaStream_t s) {
  const size_t smem = flash_backward_smem(p.Dk, p.Dv);
  allow_smem(flash1_backward_kernel, smem);
  flash1_backward_kernel<<<p.B * p.Hkv, Bc, smem, s>>>(p);
  CUDA_CHECK_LAUNCH("flash1_backward_kernel");
}

}  // namespace attnbench::kernels::flash
