// softmax/flash1 and softmax/flash2, host side: what they support, the Prepared that runs them,
// and the total-attention kernel both use. The kernels are in flash1.cu and flash2.cu; the
// notation in flash_minimal.cuh.
//
// Total attention (when asked): A_j = sum_i P_ij = sum_i exp(S_ij - L_i), after the forward has
// L. One block per (K block, query head), thread c owns key row j = j0 + c, Q blocks stream
// through shared memory.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>

#include <fmt/format.h>

#include "device_tensor.h"
#include "flash_minimal.cuh"
#include "softmax_kernels.h"

namespace attnbench::kernels {
namespace flash {
namespace {

__global__ void __launch_bounds__(Bc) flash_total_attention_kernel(FlashParams p) {
  extern __shared__ float smem[];
  const int ldk = ld(p.Dk);
  float* Kj = smem;           // (Bc, Dk)
  float* Qi = Kj + Bc * ldk;  // (Br, Dk)
  float* L = Qi + Br * ldk;   // (Br)
  const int tx = threadIdx.x;
  const int bh = blockIdx.x, b = bh / p.H, h = bh % p.H, hk = h / (p.H / p.Hkv);
  const int j0 = blockIdx.y * Bc, j = j0 + tx;
  load_tile(Kj, p.k + k_row(p, b, hk, j0) * p.Dk, Bc, p.Tk - j0, p.Dk);
  float A_j = 0.0f;
  for (int i0 = first_query_block(p, j0); i0 < p.Tq; i0 += Br) {
    __syncthreads();  // Kj loaded; the previous Qi, L consumed
    load_tile(Qi, p.q + q_row(p, b, h, i0) * p.Dk, Br, p.Tq - i0, p.Dk);
    if (i0 + tx < p.Tq) L[tx] = p.lse[q_row(p, b, h, i0 + tx)];
    __syncthreads();
    for (int r = 0; r < Br; ++r) {
      if (visible(p, i0 + r, j)) A_j += expf(p.scale * dot(Qi + r * ldk, Kj + tx * ldk, p.Dk) - L[r]);
    }
  }
  if (j < p.Tk) p.total[(int64_t(b) * p.H + h) * p.Tk + j] = A_j;
}

}  // namespace

void flash_total_attention(const FlashParams& p, cudaStream_t s) {
  const size_t smem = flash_total_smem(p.Dk);
  allow_smem(flash_total_attention_kernel, smem);
  const dim3 grid(p.B * p.H, (p.Tk + Bc - 1) / Bc);
  flash_total_attention_kernel<<<grid, Bc, smem, s>>>(p);
  CUDA_CHECK_LAUNCH("flash_total_attention_kernel");
}

namespace {

enum class Order { fa1, fa2 };

// The opt-in shared memory per block of the current device; -1 when no device answers.
int device_smem_limit() {
  static const int limit = [] {
    int dev = 0, bytes = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
      cudaGetLastError();
      return -1;
    }
    return bytes;
  }();
  return limit;
}

constexpr int64_t kMaxHeadDim = 256;       // shared tiles are sized by D (the seed's design)
constexpr int64_t kMaxSeq = int64_t{1} << 20;  // tile index is a grid y dimension (< 65536 tiles)

Support flash_supports(const Problem& p, Pass pass, Dtype dt, Order order) {
  if (dt != Dtype::f32) return Support::no("fp32 only: the minimal teaching kernels store and compute in fp32");
  if (p.Dk > kMaxHeadDim || p.Dv > kMaxHeadDim) {
    return Support::no("Dk, Dv <= 256: shared-memory tiles are sized by the head dim");
  }
  if (p.Tq > kMaxSeq || p.Tk > kMaxSeq) return Support::no("Tq, Tk <= 2^20: the tile index is a grid dimension");
  if (p.B * std::max(p.H, p.Hkv) > INT32_MAX) return Support::no("B*H < 2^31: batch x heads is a grid dimension");
  const int Dk = static_cast<int>(p.Dk), Dv = static_cast<int>(p.Dv);
  size_t smem = pass == Pass::bwd ? flash_backward_smem(Dk, Dv)
                                  : (order == Order::fa1 ? flash1_forward_smem(Dk, Dv) : flash2_forward_smem(Dk, Dv));
  if (pass == Pass::fwd && p.params.total_attention) smem = std::max(smem, flash_total_smem(Dk));
  const int limit = device_smem_limit();
  if (limit >= 0 && smem > static_cast<size_t>(limit)) {
    return Support::no(fmt::format("needs {} KiB of shared memory per block at Dk={} Dv={}; the device allows {} KiB",
                                   (smem + 1023) / 1024, Dk, Dv, limit / 1024));
  }
  return Support::yes();
}

class FlashMinimal final : public CudaPrepared {
 public:
  FlashMinimal(const Problem& p, Pass pass, const Tensors& inputs, Order order)
      : CudaPrepared(p, pass, Dtype::f32, inputs), order_(order) {
    scratch("o", {p.B, p.H, p.Tq, p.Dv}, Dtype::f32);
    for (const char* name : {"lse", "row_m", "row_l", "delta"}) scratch(name, {p.B, p.H, p.Tq}, Dtype::f32);
    if (pass == Pass::bwd) {
      forward();  // the backward's o and lse (FA1: row_m, row_l), untimed
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }

  void run() override {
    if (pass_ == Pass::fwd) forward();
    else backward();
  }

 private:
  FlashParams params() {
    FlashParams f{};
    f.q = in("q").as<float>();
    f.k = in("k").as<float>();
    f.v = in("v").as<float>();
    const bool fwd = pass_ == Pass::fwd;
    f.o = fwd ? out("o").as<float>() : scratch("o").as<float>();
    f.lse = fwd && has_out("lse") ? out("lse").as<float>() : scratch("lse").as<float>();
    f.row_m = scratch("row_m").as<float>();
    f.row_l = scratch("row_l").as<float>();
    f.delta = scratch("delta").as<float>();
    f.total = fwd && has_out("total") ? out("total").as<float>() : nullptr;
    if (!fwd) {
      f.dout = in("do").as<float>();
      f.dq = out("dq").as<float>();
      f.dk = out("dk").as<float>();
      f.dv = out("dv").as<float>();
    }
    f.B = static_cast<int>(p_.B), f.H = static_cast<int>(p_.H), f.Hkv = static_cast<int>(p_.Hkv);
    f.Tq = static_cast<int>(p_.Tq), f.Tk = static_cast<int>(p_.Tk);
    f.Dk = static_cast<int>(p_.Dk), f.Dv = static_cast<int>(p_.Dv);
    f.off = static_cast<int>(p_.off());
    f.causal = p_.causal;
    f.scale = static_cast<float>(p_.scale());
    return f;
  }

  void forward() {
    FlashParams f = params();
    if (pass_ == Pass::bwd) f.total = nullptr;
    if (order_ == Order::fa1) flash1_forward(f, stream_);
    else flash2_forward(f, stream_);
    if (f.total) flash_total_attention(f, stream_);
  }

  void backward() {
    const FlashParams f = params();
    if (order_ == Order::fa1) flash1_backward(f, stream_);
    else flash2_backward(f, stream_);
  }

  Order order_;
};

void add(Registry& r, const char* name, Order order, const char* summary) {
  Impl impl;
  impl.algo = "softmax";
  impl.name = name;
  impl.device = Device::cuda;
  impl.summary = summary;
  impl.supports = [order](const Problem& p, Pass pass, Dtype dt) { return flash_supports(p, pass, dt, order); };
  impl.prepare = [order](const Problem& p, Pass pass, Dtype, const Tensors& in, const PrepareOptions&) -> std::unique_ptr<Prepared> {
    return std::make_unique<FlashMinimal>(p, pass, in, order);
  };
  r.add(impl);
}

}  // namespace
}  // namespace flash

void register_flash_minimal(Registry& r) {
  flash::add(r, "flash1", flash::Order::fa1,
             "minimal FlashAttention-1 loop order (seed): fp32 only, thread per row, Br=Bc=32; Dk, Dv <= 256 "
             "(shared memory permitting); any Tq, Tk; causal; GQA");
  flash::add(r, "flash2", flash::Order::fa2,
             "minimal FlashAttention-2 loop order (seed): fp32 only, thread per row, Br=Bc=32; Dk, Dv <= 256 "
             "(shared memory permitting); any Tq, Tk; causal; GQA");
}

}  // namespace attnbench::kernels
