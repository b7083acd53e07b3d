// softmax/unfused: attention as separate cuBLAS GEMMs and softmax kernels, materializing the
// Tq x Tk score matrix of every head (the baseline a fused kernel is measured against).
//
// GQA: the G = H/Hkv query heads of kv head hk are contiguous in [B, H, Tq, D], so they form one
// (G Tq) x D matrix; every GEMM is one strided batch over (b, hk) with M or K = G Tq (row r of a
// group matrix is query row i = r mod Tq), and dK, dV sum over the group inside the GEMM's fp32
// accumulation, rounded once.
//
// Forward:   S = scale Q K^T               GEMM, fp32 out (dtype inputs, fp32 accumulation)
//            P = softmax_j(S) (masked)      kernel: m, l = rowmax, rowsum exp; P = exp(S - m) / l in
//                                           the dtype; L = m + log l (-inf for a row with no key)
//            O = P V                        GEMM, dtype out
//            A_j = sum_i exp(S_ij - L_i)    kernel, when total attention is asked
// Backward (S, P and L kept from the forward, run untimed in the constructor):
//            dP = dO V^T                    GEMM, fp32 out
//            dS = P o (dP - D)              kernel: P = exp(S - L) recomputed in fp32 (as the
//                                           same-precision base does), D_i = sum_j P_ij dP_ij
//                                           (= dO_i . o_i), dS in the dtype
//            dV = P^T dO,  dQ = scale dS K,  dK = scale dS^T Q     GEMMs, dtype out
// Storage fp32/fp16/bf16; fp32 runs use plain SGEMM arithmetic (CUBLAS_COMPUTE_32F, no TF32).
// Memory: per element of the B H Tq Tk score matrices, 4 + s bytes forward (S, P) and 8 + 2s
// backward (S, P, dP, dS), s = dtype size: refused beyond kMaxScoreBytes.
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <type_traits>

#include <fmt/format.h>

#include "device_tensor.h"
#include "softmax_kernels.h"
#include "storage.cuh"
#include "warp.cuh"

namespace attnbench::kernels {
namespace {

constexpr double kMaxScoreBytes = 16.0 * (1ull << 30);  // 16 GiB of materialized score matrices
constexpr int kRowThreads = 256;                         // softmax / dS kernels: one block per row
constexpr int kColThreads = 256;                         // total attention: one thread per key

#define CUBLAS_CHECK(call)                                                                          \
  do {                                                                                              \
    const cublasStatus_t st_ = (call);                                                              \
    if (st_ == CUBLAS_STATUS_ALLOC_FAILED) throw OutOfDeviceMemory(#call);                          \
    if (st_ != CUBLAS_STATUS_SUCCESS) {                                                             \
      throw std::runtime_error(fmt::format("{}: {} ({}:{})", #call, cublasGetStatusString(st_), __FILE__, __LINE__)); \
    }                                                                                               \
  } while (0)

template <class T>
constexpr cudaDataType_t cuda_type() {
  if constexpr (std::is_same_v<T, float>) return CUDA_R_32F;
  else if constexpr (std::is_same_v<T, __half>) return CUDA_R_16F;
  else return CUDA_R_16BF;
}

// Row-major C = alpha op(A) op(B) + beta C, batched with strides; lda/ldb/ldc are the row-major
// row lengths of the stored matrices. cuBLAS is column-major, where a row-major matrix is its
// transpose: C^T = op(B)^T op(A)^T, so the operands swap and the transposes carry over.
struct Operand {
  const void* ptr;
  cudaDataType_t type;
  int ld;
  long long stride;
};
void gemm_rm(cublasHandle_t handle, bool transA, bool transB, int M, int N, int K, float alpha, Operand A, Operand B,
             void* C, cudaDataType_t c_type, int ldc, long long c_stride, int batch) {
  const float beta = 0.0f;
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          N, M, K, &alpha, B.ptr, B.type, B.ld, B.stride, A.ptr, A.type, A.ld, A.stride,
                                          &beta, C, c_type, ldc, c_stride, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

struct RowParams {
  int Tq, Tk, off;  // query row i of a [B, H, Tq] row index is r mod Tq
  bool causal;
};

__device__ __forceinline__ int visible_keys(const RowParams& p, int i) {
  return p.causal ? max(0, min(p.Tk, i + p.off + 1)) : p.Tk;
}

// Block-wide reductions (blockDim.x = kRowThreads); every thread gets the result.
template <class Op>
__device__ float block_reduce(float v, Op op, float* partial) {
  for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  __syncthreads();  // partial may still be read by a previous reduction
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = partial[0];
  for (int w = 1; w < kRowThreads / kWarpSize; ++w) v = op(v, partial[w]);
  return v;
}

// One block per query row r of [B, H, Tq]: P_r = exp(S_r - m) / l over the visible keys (0 past
// them), L_r = m + log l.
template <class T>
__global__ void __launch_bounds__(kRowThreads) softmax_rows(RowParams p, const float* S, T* P, float* lse) {
  __shared__ float partial[kRowThreads / kWarpSize];
  const int64_t r = blockIdx.x;
  const int i = static_cast<int>(r % p.Tq), vis = visible_keys(p, i);
  const float* s = S + r * p.Tk;
  T* prob = P + r * p.Tk;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < vis; j += kRowThreads) m = fmaxf(m, s[j]);
  m = block_reduce(m, [](float a, float b) { return fmaxf(a, b); }, partial);
  float l = 0.0f;
  for (int j = threadIdx.x; j < vis; j += kRowThreads) l += expf(s[j] - m);
  l = block_reduce(l, [](float a, float b) { return a + b; }, partial);
  for (int j = threadIdx.x; j < p.Tk; j += kRowThreads) prob[j] = from_f32<T>(j < vis ? expf(s[j] - m) / l : 0.0f);
  if (threadIdx.x == 0) lse[r] = vis ? m + logf(l) : -INFINITY;
}

// A_j = sum_i exp(S_ij - L_i) over the query rows that see key j: one thread per key, one head
// per blockIdx.x.
__global__ void __launch_bounds__(kColThreads) total_attention(RowParams p, const float* S, const float* lse, float* total) {
  const int64_t bh = blockIdx.x;
  const int j = blockIdx.y * kColThreads + threadIdx.x;
  if (j >= p.Tk) return;
  float a = 0.0f;
  for (int i = p.causal ? max(0, j - p.off) : 0; i < p.Tq; ++i) {
    const int64_t r = bh * p.Tq + i;
    a += expf(S[r * p.Tk + j] - lse[r]);
  }
  total[bh * p.Tk + j] = a;
}

// One block per query row r, with P = exp(S_r - L_r) recomputed in fp32 over the visible keys:
// D_r = sum_j P_rj dP_rj, then dS_r = P (dP_r - D_r) stored in the dtype (0 past the visible keys).
// D_r = dO_r . o_r in exact arithmetic (o = P V); summed from P and dP in fp32 it carries no
// rounding of o, and a row with one visible key (P = 1) gets dS = 0 exactly, as it should.
template <class T>
__global__ void __launch_bounds__(kRowThreads) softmax_grad_rows(RowParams p, const float* S, const float* lse, const float* dP, T* dS) {
  __shared__ float partial[kRowThreads / kWarpSize];
  const int64_t r = blockIdx.x;
  const int i = static_cast<int>(r % p.Tq), vis = visible_keys(p, i);
  const float L = lse[r];
  const float* s = S + r * p.Tk;
  const float* dp = dP + r * p.Tk;
  float d = 0.0f;
  for (int j = threadIdx.x; j < vis; j += kRowThreads) d += expf(s[j] - L) * dp[j];
  const float D = block_reduce(d, [](float a, float b) { return a + b; }, partial);
  for (int j = threadIdx.x; j < p.Tk; j += kRowThreads) {
    dS[r * p.Tk + j] = from_f32<T>(j < vis ? expf(s[j] - L) * (dp[j] - D) : 0.0f);
  }
}

double score_bytes(const Problem& p, Pass pass, Dtype dt) {
  const double elems = double(p.B) * double(p.H) * double(p.Tq) * double(p.Tk);
  const double s = dtype_bytes(dt);
  return elems * (pass == Pass::fwd ? 4 + s : 8 + 2 * s);
}

class Unfused final : public CudaPrepared {
 public:
  Unfused(const Problem& p, Pass pass, Dtype dt, const Tensors& inputs) : CudaPrepared(p, pass, dt, inputs) {
    CUBLAS_CHECK(cublasCreate(&handle_));
    CUBLAS_CHECK(cublasSetStream(handle_, stream_));
    const std::vector<int64_t> scores = {p.B, p.H, p.Tq, p.Tk};
    scratch("S", scores, Dtype::f32);
    scratch("P", scores, dt);
    scratch("o", {p.B, p.H, p.Tq, p.Dv}, dt);
    scratch("lse", {p.B, p.H, p.Tq}, Dtype::f32);
    if (pass == Pass::bwd) {
      scratch("dP", scores, Dtype::f32);
      scratch("dS", scores, dt);
      forward();  // S, P, o and L for the backward, untimed
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }
  ~Unfused() override {
    cudaStreamSynchronize(stream_);
    cublasDestroy(handle_);
  }

  void run() override {
    ATTNBENCH_DISPATCH_DTYPE(dt_, T, {
      if (pass_ == Pass::fwd) forward_as<T>();
      else backward_as<T>();
    })
  }

 private:
  void forward() { ATTNBENCH_DISPATCH_DTYPE(dt_, T, { forward_as<T>(); }) }

  RowParams row_params() const {
    return {static_cast<int>(p_.Tq), static_cast<int>(p_.Tk), static_cast<int>(p_.off()), p_.causal};
  }
  // Shapes of one GEMM batch (b, hk): group rows Mq = G Tq.
  int Mq() const { return static_cast<int>(p_.group() * p_.Tq); }
  int batch() const { return static_cast<int>(p_.B * p_.Hkv); }
  template <class T>
  Operand op(const DeviceTensor& t, int64_t ld, int64_t rows) const {
    return {t.buf.get(), t.dtype == Dtype::f32 ? CUDA_R_32F : cuda_type<T>(), static_cast<int>(ld), rows * ld};
  }

  template <class T>
  void forward_as() {
    const bool fwd = pass_ == Pass::fwd;
    const int Tk = static_cast<int>(p_.Tk), Dk = static_cast<int>(p_.Dk), Dv = static_cast<int>(p_.Dv);
    const int64_t rows = p_.B * p_.H * p_.Tq;
    DeviceTensor& S = scratch("S");
    DeviceTensor& P = scratch("P");
    DeviceTensor& o = fwd ? out("o") : scratch("o");
    float* lse = (fwd && has_out("lse") ? out("lse") : scratch("lse")).as<float>();
    // S = scale Q K^T: (Mq x Dk) (Tk x Dk)^T
    gemm_rm(handle_, false, true, Mq(), Tk, Dk, static_cast<float>(p_.scale()), op<T>(in("q"), Dk, Mq()),
            op<T>(in("k"), Dk, Tk), S.buf.get(), CUDA_R_32F, Tk, int64_t(Mq()) * Tk, batch());
    softmax_rows<T><<<static_cast<unsigned>(rows), kRowThreads, 0, stream_>>>(row_params(), S.as<float>(), P.as<T>(), lse);
    CUDA_CHECK_LAUNCH("softmax_rows");
    // O = P V: (Mq x Tk) (Tk x Dv)
    gemm_rm(handle_, false, false, Mq(), Dv, Tk, 1.0f, op<T>(P, Tk, Mq()), op<T>(in("v"), Dv, Tk), o.buf.get(),
            cuda_type<T>(), Dv, int64_t(Mq()) * Dv, batch());
    if (fwd && has_out("total")) {
      const dim3 grid(static_cast<unsigned>(p_.B * p_.H), static_cast<unsigned>((Tk + kColThreads - 1) / kColThreads));
      total_attention<<<grid, kColThreads, 0, stream_>>>(row_params(), S.as<float>(), lse, out("total").as<float>());
      CUDA_CHECK_LAUNCH("total_attention");
    }
  }

  template <class T>
  void backward_as() {
    const int Tk = static_cast<int>(p_.Tk), Dk = static_cast<int>(p_.Dk), Dv = static_cast<int>(p_.Dv);
    const int64_t rows = p_.B * p_.H * p_.Tq;
    const float scale = static_cast<float>(p_.scale());
    DeviceTensor &S = scratch("S"), &P = scratch("P"), &dP = scratch("dP"), &dS = scratch("dS");
    // dP = dO V^T: (Mq x Dv) (Tk x Dv)^T
    gemm_rm(handle_, false, true, Mq(), Tk, Dv, 1.0f, op<T>(in("do"), Dv, Mq()), op<T>(in("v"), Dv, Tk), dP.buf.get(),
            CUDA_R_32F, Tk, int64_t(Mq()) * Tk, batch());
    softmax_grad_rows<T><<<static_cast<unsigned>(rows), kRowThreads, 0, stream_>>>(
        row_params(), S.as<float>(), scratch("lse").as<float>(), dP.as<float>(), dS.as<T>());
    CUDA_CHECK_LAUNCH("softmax_grad_rows");
    // dV = P^T dO: (Mq x Tk)^T (Mq x Dv), summed over the group's rows
    gemm_rm(handle_, true, false, Tk, Dv, Mq(), 1.0f, op<T>(P, Tk, Mq()), op<T>(in("do"), Dv, Mq()), out("dv").buf.get(),
            cuda_type<T>(), Dv, int64_t(Tk) * Dv, batch());
    // dQ = scale dS K: (Mq x Tk) (Tk x Dk)
    gemm_rm(handle_, false, false, Mq(), Dk, Tk, scale, op<T>(dS, Tk, Mq()), op<T>(in("k"), Dk, Tk), out("dq").buf.get(),
            cuda_type<T>(), Dk, int64_t(Mq()) * Dk, batch());
    // dK = scale dS^T Q: (Mq x Tk)^T (Mq x Dk), summed over the group's rows
    gemm_rm(handle_, true, false, Tk, Dk, Mq(), scale, op<T>(dS, Tk, Mq()), op<T>(in("q"), Dk, Mq()), out("dk").buf.get(),
            cuda_type<T>(), Dk, int64_t(Tk) * Dk, batch());
  }

  cublasHandle_t handle_ = nullptr;
};

}  // namespace

void register_softmax_unfused(Registry& r) {
  Impl impl;
  impl.algo = "softmax";
  impl.name = "unfused";
  impl.device = Device::cuda;
  impl.summary = "cuBLAS GEMM + softmax kernel + GEMM, scores materialized (<= 16 GiB); fp32/fp16/bf16; any Tq, Tk, D; GQA";
  impl.supports = [](const Problem& p, Pass pass, Dtype dt) {
    const double bytes = score_bytes(p, pass, dt);
    if (bytes > kMaxScoreBytes) {
      return Support::no(fmt::format("materializes B*H*Tq*Tk scores: {:.1f} GiB > 16 GiB", bytes / (1ull << 30)));
    }
    if (p.group() * p.Tq > INT32_MAX || p.Tk > INT32_MAX || p.B * p.H * p.Tq > INT32_MAX) {
      return Support::no("G*Tq, Tk and B*H*Tq must be < 2^31 (cuBLAS dimensions, one block per row)");
    }
    return Support::yes();
  };
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in, const PrepareOptions&) -> std::unique_ptr<Prepared> {
    return std::make_unique<Unfused>(p, pass, dt, in);
  };
  r.add(impl);
}

}  // namespace attnbench::kernels
