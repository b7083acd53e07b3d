// gated, naive CUDA: host side and registration; the kernels and their math are in gated_naive.cuh.
#include "gated_naive.cuh"
#include "linear_family_host.h"
#include "linear_kernels.h"

namespace attnbench::kernels {
namespace {

using namespace lin_naive;
using namespace lin_host;

class GatedNaive final : public CudaPrepared {
 public:
  GatedNaive(const Problem& p, Pass pass, Dtype dt, const Tensors& in, bool sp) : CudaPrepared(p, pass, dt, in), sp_(sp) {
    const int64_t BH = p.B * p.H, nc = (p.Tq + kChunk - 1) / kChunk;
    workspace(ws_, "state", {BH, p.Dk * p.Dv}, Dtype::f32);
    workspace(ws_, "chunk", {BH, 5 * kChunk * p.Dk}, Dtype::f32);
    if (pass == Pass::bwd) {
      workspace(ws_, "S_all", {BH, (nc + 1) * p.Dk * p.Dv}, Dtype::f32);
      if (p.variant == "rwkv6") workspace(ws_, "du_part", {BH, p.Dk}, Dtype::f32);
    }
  }

  void run() override {
    GatedArgs a{};
    a.q = in("q").buf.get();
    a.k = in("k").buf.get();
    a.v = in("v").buf.get();
    const std::string& var = p_.variant;
    a.gate = var == "scalar" ? kScalar : (var == "vector" || var == "rwkv6") ? kVector : kFixed;
    a.lightning = var == "lightning";
    a.bonus = var == "rwkv6";
    if (a.gate != kFixed) a.g = in("g").as<float>();
    if (a.bonus) a.u = in("u").as<float>();
    a.state = ws_.at("state").as<float>();
    a.ws = ws_.at("chunk").as<float>();
    a.B = static_cast<int>(p_.B), a.H = static_cast<int>(p_.H), a.T = static_cast<int>(p_.Tq);
    a.Dk = static_cast<int>(p_.Dk), a.Dv = static_cast<int>(p_.Dv);
    a.scale = static_cast<float>(p_.scale());
    const int grid = static_cast<int>(p_.B * p_.H);
    if (pass_ == Pass::fwd) {
      a.o = out("o").buf.get();
      ATTNBENCH_DISPATCH_DTYPE(dt_, T, {
        if (sp_) gated_naive_fwd<T, true><<<grid, kThreads, 0, stream_>>>(a);
        else gated_naive_fwd<T, false><<<grid, kThreads, 0, stream_>>>(a);
        CUDA_CHECK_LAUNCH("gated_naive_fwd");
      })
      return;
    }
    a.dout = in("do").buf.get();
    a.dq = out("dq").buf.get();
    a.dk = out("dk").buf.get();
    a.dv = out("dv").buf.get();
    if (a.gate != kFixed) a.dg = out("dg").as<float>();
    if (a.bonus) {
      a.du = out("du").as<float>();
      a.du_part = ws_.at("du_part").as<float>();
    }
    a.S_all = ws_.at("S_all").as<float>();
    ATTNBENCH_DISPATCH_DTYPE(dt_, T, {
      if (sp_) {
        gated_naive_states<T, true><<<grid, kThreads, 0, stream_>>>(a);
        CUDA_CHECK_LAUNCH("gated_naive_states");
        gated_naive_bwd<T, true><<<grid, kThreads, 0, stream_>>>(a);
      } else {
        gated_naive_states<T, false><<<grid, kThreads, 0, stream_>>>(a);
        CUDA_CHECK_LAUNCH("gated_naive_states");
        gated_naive_bwd<T, false><<<grid, kThreads, 0, stream_>>>(a);
      }
      CUDA_CHECK_LAUNCH("gated_naive_bwd");
    })
    if (a.bonus) {
      gated_naive_du<<<(a.H * a.Dk + 255) / 256, 256, 0, stream_>>>(a);
      CUDA_CHECK_LAUNCH("gated_naive_du");
    }
  }

 private:
  bool sp_;
  std::map<std::string, DeviceTensor> ws_;
};

}  // namespace

void register_gated_naive(Registry& r) {
  Impl impl;
  impl.algo = "gated";
  impl.name = "naive";
  impl.device = Device::cuda;
  impl.summary = "plain CUDA, chunkwise form (C=64, exact exp differences), fp32 accumulate; fp32/fp16/bf16; "
                 "every variant; Dk, Dv <= 256; gradients of q, k, v, g, u";
  impl.supports = [](const Problem& p, Pass, Dtype) { return naive_supports(p); };
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in,
                    const PrepareOptions& o) -> std::unique_ptr<Prepared> {
    return std::make_unique<GatedNaive>(p, pass, dt, in, o.same_precision);
  };
  r.add(impl);
}

}  // namespace attnbench::kernels
