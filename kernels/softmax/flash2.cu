// softmax/flash2: FlashAttention-2's loop order (Dao 2023, Algorithms 1 and 2), minimal fp32
// teaching kernels after the seed. See flash_minimal.cuh for the notation.
//
// Forward (block per (Q block, query head); thread r owns query row i = i0 + r):
//   Qi -> shared;  O~_i = 0, row_m = -inf, row_l = 0 (O~_i in shared memory, the rest in registers)
//   for each j (causal: only blocks with a visible key):  Kj, Vj -> shared
//     S_ij = scale Qi Kj^T (masked -> -inf);  m_new = max(row_m, rowmax(S_ij))
//     P~_ij = exp(S_ij - m_new);  row_l = e^(row_m - m_new) row_l + rowsum(P~_ij)
//     O~_i = e^(row_m - m_new) O~_i + P~_ij Vj;  row_m = m_new
//   O_i = O~_i / row_l  (the one final rescale);  L_i = row_m + log(row_l)
// Backward (block per (K/V block, kv head); the outer loop over K/V is across blocks):
//   preprocess: D_i = rowsum(dO_i o O_i);  dQ = 0
//   Kj, Vj -> shared;  dKj = dVj = 0
//   for each query head h of the group, each i (causal: from the first block that sees j):
//     Qi, dOi -> shared;  P_ij = exp(S_ij - L_i);  dP_ij = dOi Vj^T;  dS_ij = P_ij o (dP_ij - D_i)
//     dVj += P_ij^T dOi;  dKj += scale dS_ij^T Qi          (thread per key row)
//     dQ_i += scale dS_ij Kj                              (atomicAdd: blocks of other j share dQ_i)
//   dKj, dVj -> global
#include <cmath>

#include "flash_minimal.cuh"

namespace attnbench::kernels::flash {
namespace {

__global__ void __launch_bounds__(Br) flash2_forward_kernel(FlashParams p) {
  extern __shared__ float smem[];
  const int ldk = ld(p.Dk), ldv = ld(p.Dv);
  float* Qi = smem;            // (Br, Dk)
  float* Kj = Qi + Br * ldk;   // (Bc, Dk)
  float* Vj = Kj + Bc * ldk;   // (Bc, Dv)
  float* S = Vj + Bc * ldv;    // (Br, Bc): scores, then P~
  float* O = S + Br * ld(Bc);  // (Br, Dv): O~_i, unnormalized
  const int tx = threadIdx.x;
  const int bh = blockIdx.x, b = bh / p.H, h = bh % p.H, hk = h / (p.H / p.Hkv);
  const int i0 = blockIdx.y * Br, i = i0 + tx;
  float* Si = S + tx * ld(Bc);
  float* Oi = O + tx * ldv;

  load_tile(Qi, p.q + q_row(p, b, h, i0) * p.Dk, Br, p.Tq - i0, p.Dk);
  for (int d = 0; d < p.Dv; ++d) Oi[d] = 0.0f;
  float row_m = -INFINITY, row_l = 0.0f;

  for (int j0 = 0; j0 < kv_end(p, i0); j0 += Bc) {
    __syncthreads();  // Qi loaded; the previous Kj, Vj consumed
    load_tile(Kj, p.k + k_row(p, b, hk, j0) * p.Dk, Bc, p.Tk - j0, p.Dk);
    load_tile(Vj, p.v + k_row(p, b, hk, j0) * p.Dv, Bc, p.Tk - j0, p.Dv);
    __syncthreads();
    if (i >= p.Tq) continue;
    // S_ij = scale Qi Kj^T; m_new = max(row_m, rowmax(S_ij))
    float m_new = row_m;
    for (int c = 0; c < Bc; ++c) {
      const float s = visible(p, i, j0 + c) ? p.scale * dot(Qi + tx * ldk, Kj + c * ldk, p.Dk) : -INFINITY;
      Si[c] = s;
      m_new = fmaxf(m_new, s);
    }
    if (m_new == -INFINITY) continue;  // no visible key so far
    // P~ = exp(S_ij - m_new); row_l = e^(row_m - m_new) row_l + rowsum(P~)
    const float alpha = expf(row_m - m_new);  // 0 when row_m = -inf
    float l_tilde = 0.0f;
    for (int c = 0; c < Bc; ++c) {
      Si[c] = expf(Si[c] - m_new);  // masked: exp(-inf) = 0
      l_tilde += Si[c];
    }
    row_l = alpha * row_l + l_tilde;
    // O~_i = e^(row_m - m_new) O~_i + P~ Vj
    for (int d = 0; d < p.Dv; ++d) {
      float pv = 0.0f;
      for (int c = 0; c < Bc; ++c) pv += Si[c] * Vj[c * ldv + d];
      Oi[d] = alpha * Oi[d] + pv;
    }
    row_m = m_new;
  }
  if (i >= p.Tq) return;
  // O_i = O~_i / row_l; L_i = row_m + log(row_l). A row that sees no key: o = 0, L = -inf.
  const int64_t row = q_row(p, b, h, i);
  const float inv_l = row_l > 0.0f ? 1.0f / row_l : 0.0f;
  for (int d = 0; d < p.Dv; ++d) p.o[row * p.Dv + d] = Oi[d] * inv_l;
  p.lse[row] = row_l > 0.0f ? row_m + logf(row_l) : -INFINITY;
}

// D_i = rowsum(dO_i o O_i), one thread per query row.
__global__ void flash2_backward_preprocess(FlashParams p) {
  const int64_t rows = int64_t(p.B) * p.H * p.Tq;
  const int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  p.delta[row] = dot(p.dout + row * p.Dv, p.o + row * p.Dv, p.Dv);
}

__global__ void __launch_bounds__(Bc) flash2_backward_kernel(FlashParams p) {
  extern __shared__ float smem[];
  const BwdTiles t(smem, p.Dk, p.Dv);
  const int bhk = blockIdx.x, b = bhk / p.Hkv, hk = bhk % p.Hkv, group = p.H / p.Hkv;
  const int j0 = blockIdx.y * Bc;

  bwd_begin_key_block(p, t, b, hk, j0);
  // P_ij = exp(S_ij - L_i), D_i from the preprocess.
  const auto stats = [&p](int64_t row, const float*) { return RowStats{p.lse[row], 1.0f, p.delta[row]}; };
  for (int h = hk * group; h < (hk + 1) * group; ++h) {
    for (int i0 = first_query_block(p, j0); i0 < p.Tq; i0 += Br) {
      bwd_query_block<true>(p, t, b, h, i0, j0, stats);  // dQ_i: shared with the blocks of other j
    }
  }
  bwd_end_key_block(p, t, b, hk, j0);
}

}  // namespace

void flash2_forward(const FlashParams& p, cudaStream_t s) {
  const size_t smem = flash2_forward_smem(p.Dk, p.Dv);
  allow_smem(flash2_forward_kernel, smem);
  const dim3 grid(p.B * p.H, (p.Tq + Br - 1) / Br);
  flash2_forward_kernel<<<grid, Br, smem, s>>>(p);
  CUDA_CHECK_LAUNCH("flash2_forward_kernel");
}

void flash2_backward(const FlashParams& p, cudaStream_t s) {
  const int64_t rows = int64_t(p.B) * p.H * p.Tq;
  constexpr int kThreads = 256;
  flash2_backward_preprocess<<<static_cast<unsigned>((rows + kThreads - 1) / kThreads), kThreads, 0, s>>>(p);
  CUDA_CHECK_LAUNCH("flash2_backward_preprocess");
  CUDA_CHECK(cudaMemsetAsync(p.dq, 0, sizeof(float) * rows * p.Dk, s));  // dQ is accumulated atomically
  const size_t smem = flash_backward_smem(p.Dk, p.Dv);
  allow_smem(flash2_backward_kernel, smem);
  const dim3 grid(p.B * p.Hkv, (p.Tk + Bc - 1) / Bc);
  flash2_backward_kernel<<<grid, Bc, smem, s>>>(p);
  CUDA_CHECK_LAUNCH("flash2_backward_kernel");
}

}  // namespace attnbench::kernels::flash
