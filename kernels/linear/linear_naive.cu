// linear, naive CUDA: host side and registration; the kernels and their math are in linear_naive.cuh.
#include "linear_naive.cuh"
#include "linear_family_host.h"
#include "linear_kernels.h"

namespace attnbench::kernels {
namespace {

using namespace lin_naive;
using namespace lin_host;

class LinearNaive final : public CudaPrepared {
 public:
  LinearNaive(const Problem& p, Pass pass, Dtype dt, const Tensors& in, bool sp) : CudaPrepared(p, pass, dt, in), sp_(sp) {
    const int64_t BH = p.B * p.H;
    workspace(ws_, "state", {BH, p.Dk * p.Dv}, Dtype::f32);
    if (pass == Pass::bwd) {
      workspace(ws_, "o", {p.B, p.H, p.Tq, p.Dv}, dt);
      workspace(ws_, "den", {p.B, p.H, p.Tq}, Dtype::f32);
      workspace(ws_, "delta", {p.B, p.H, p.Tq}, Dtype::f32);
      workspace(ws_, "dk_acc", {p.B, p.H, p.Tq, p.Dk}, Dtype::f32);
      workspace(ws_, "dv_acc", {p.B, p.H, p.Tq, p.Dv}, Dtype::f32);
      LinearArgs a = args();
      a.o = ws_.at("o").buf.get();
      a.den = ws_.at("den").as<float>();
      forward(a);  // the backward's o and den, untimed
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }

  void run() override {
    LinearArgs a = args();
    if (pass_ == Pass::fwd) {
      a.o = out("o").buf.get();
      forward(a);
      return;
    }
    a.o_saved = ws_.at("o").buf.get();
    a.den = ws_.at("den").as<float>();
    a.delta = ws_.at("delta").as<float>();
    a.dk_acc = ws_.at("dk_acc").as<float>();
    a.dv_acc = ws_.at("dv_acc").as<float>();
    a.dq = out("dq").buf.get();
    a.dk = out("dk").buf.get();
    a.dv = out("dv").buf.get();
    const int grid = static_cast<int>(p_.B * p_.H);
    const size_t smem_scan = (2 * kChunk * kChunk + kChunk + p_.Dk) * sizeof(float);
    const size_t smem_rscan = (kChunk + p_.Dk) * sizeof(float);
    ATTNBENCH_DISPATCH_DTYPE(dt_, T, {
      if (sp_) {
        linear_naive_bwd_scan<T, true><<<grid, kThreads, smem_scan, stream_>>>(a);
        CUDA_CHECK_LAUNCH("linear_naive_bwd_scan");
        linear_naive_bwd_rscan<T, true><<<grid, kThreads, smem_rscan, stream_>>>(a);
      } else {
        linear_naive_bwd_scan<T, false><<<grid, kThreads, smem_scan, stream_>>>(a);
        CUDA_CHECK_LAUNCH("linear_naive_bwd_scan");
        linear_naive_bwd_rscan<T, false><<<grid, kThreads, smem_rscan, stream_>>>(a);
      }
      CUDA_CHECK_LAUNCH("linear_naive_bwd_rscan");
    })
  }

 private:
  LinearArgs args() {
    LinearArgs a{};
    a.q = in("q").buf.get();
    a.k = in("k").buf.get();
    a.v = in("v").buf.get();
    if (pass_ == Pass::bwd) a.dout = in("do").buf.get();
    a.state = ws_.at("state").as<float>();
    a.T = static_cast<int>(p_.Tq), a.Dk = static_cast<int>(p_.Dk), a.Dv = static_cast<int>(p_.Dv);
    a.scale = static_cast<float>(p_.scale());
    a.eps = static_cast<float>(p_.eps());
    a.normalize = p_.normalize();
    return a;
  }

  void forward(const LinearArgs& a) {
    const int grid = static_cast<int>(p_.B * p_.H);
    const size_t smem = (kChunk * kChunk + kChunk + p_.Dk) * sizeof(float);
    ATTNBENCH_DISPATCH_DTYPE(dt_, T, {
      if (sp_) linear_naive_fwd<T, true><<<grid, kThreads, smem, stream_>>>(a);
      else linear_naive_fwd<T, false><<<grid, kThreads, smem, stream_>>>(a);
      CUDA_CHECK_LAUNCH("linear_naive_fwd");
    })
  }

  bool sp_;
  std::map<std::string, DeviceTensor> ws_;
};

}  // namespace

void register_linear_naive(Registry& r) {
  Impl impl;
  impl.algo = "linear";
  impl.name = "naive";
  impl.device = Device::cuda;
  impl.summary = "plain CUDA, chunked state form (C=64), fp32 accumulate; fp32/fp16/bf16; Dk, Dv <= 256; normalize on/off";
  impl.supports = [](const Problem& p, Pass, Dtype) { return naive_supports(p); };
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in,
                    const PrepareOptions& o) -> std::unique_ptr<Prepared> {
    return std::make_unique<LinearNaive>(p, pass, dt, in, o.same_precision);
  };
  r.add(impl);
}

}  // namespace attnbench::kernels
