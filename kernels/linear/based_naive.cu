// based, naive CUDA: host side and registration; the kernels and their math are in based_naive.cuh.
#include "based_naive.cuh"
#include "linear_family_host.h"
#include "linear_kernels.h"

namespace attnbench::kernels {
namespace {

using namespace lin_naive;
using namespace lin_host;

class BasedNaive final : public CudaPrepared {
 public:
  BasedNaive(const Problem& p, Pass pass, Dtype dt, const Tensors& in, bool sp) : CudaPrepared(p, pass, dt, in), sp_(sp) {
    if (pass == Pass::bwd) {
      workspace(ws_, "o", {p.B, p.H, p.Tq, p.Dv}, dt);
      workspace(ws_, "den", {p.B, p.H, p.Tq}, Dtype::f32);
      workspace(ws_, "delta", {p.B, p.H, p.Tq}, Dtype::f32);
      BasedArgs a = args();
      a.o = ws_.at("o").buf.get();
      a.den = ws_.at("den").as<float>();
      forward(a);  // the backward's o and den, untimed
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }

  void run() override {
    BasedArgs a = args();
    if (pass_ == Pass::fwd) {
      a.o = out("o").buf.get();
      forward(a);
      return;
    }
    a.o_saved = ws_.at("o").buf.get();
    a.den = ws_.at("den").as<float>();
    a.delta = ws_.at("delta").as<float>();
    a.dq = out("dq").buf.get();
    a.dk = out("dk").buf.get();
    a.dv = out("dv").buf.get();
    const int BH = static_cast<int>(p_.B * p_.H), nb = static_cast<int>((p_.Tq + kChunk - 1) / kChunk);
    const dim3 rows_grid(static_cast<unsigned>((p_.Tq + kThreads - 1) / kThreads), BH), blocks(nb, BH);
    const size_t smem_dq = (kChunk * kChunk + kChunk * p_.Dk) * sizeof(float);
    const size_t smem_dkdv = (2 * kChunk * kChunk + kChunk * (p_.Dk + p_.Dv)) * sizeof(float);
    ATTNBENCH_DISPATCH_DTYPE(dt_, T, {
      if (sp_) launch_bwd<T, true>(a, rows_grid, blocks, smem_dq, smem_dkdv);
      else launch_bwd<T, false>(a, rows_grid, blocks, smem_dq, smem_dkdv);
    })
  }

 private:
  template <class T, bool SP>
  void launch_bwd(const BasedArgs& a, dim3 rows_grid, dim3 blocks, size_t smem_dq, size_t smem_dkdv) {
    based_naive_delta<T, SP><<<rows_grid, kThreads, 0, stream_>>>(a);
    CUDA_CHECK_LAUNCH("based_naive_delta");
    allow_smem(based_naive_dq<T, SP>, smem_dq);
    based_naive_dq<T, SP><<<blocks, kThreads, smem_dq, stream_>>>(a);
    CUDA_CHECK_LAUNCH("based_naive_dq");
    allow_smem(based_naive_dkdv<T, SP>, smem_dkdv);
    based_naive_dkdv<T, SP><<<blocks, kThreads, smem_dkdv, stream_>>>(a);
    CUDA_CHECK_LAUNCH("based_naive_dkdv");
  }

  BasedArgs args() {
    BasedArgs a{};
    a.q = in("q").buf.get();
    a.k = in("k").buf.get();
    a.v = in("v").buf.get();
    if (pass_ == Pass::bwd) a.dout = in("do").buf.get();
    a.T = static_cast<int>(p_.Tq), a.Dk = static_cast<int>(p_.Dk), a.Dv = static_cast<int>(p_.Dv);
    a.scale = static_cast<float>(p_.scale());
    a.normalize = p_.normalize();
    return a;
  }

  void forward(const BasedArgs& a) {
    const dim3 blocks(static_cast<unsigned>((p_.Tq + kChunk - 1) / kChunk), static_cast<unsigned>(p_.B * p_.H));
    const size_t smem = (kChunk * kChunk + kChunk + kChunk * p_.Dv) * sizeof(float);
    ATTNBENCH_DISPATCH_DTYPE(dt_, T, {
      if (sp_) {
        allow_smem(based_naive_fwd<T, true>, smem);
        based_naive_fwd<T, true><<<blocks, kThreads, smem, stream_>>>(a);
      } else {
        allow_smem(based_naive_fwd<T, false>, smem);
        based_naive_fwd<T, false><<<blocks, kThreads, smem, stream_>>>(a);
      }
      CUDA_CHECK_LAUNCH("based_naive_fwd");
    })
  }

  bool sp_;
  std::map<std::string, DeviceTensor> ws_;
};

}  // namespace

void register_based_naive(Registry& r) {
  Impl impl;
  impl.algo = "based";
  impl.name = "naive";
  impl.device = Device::cuda;
  impl.summary = "plain CUDA, quadratic tiled form (64-row blocks), fp32 accumulate; fp32/fp16/bf16; Dk, Dv <= 256";
  impl.supports = [](const Problem& p, Pass, Dtype) {
    if (p.Tq > (int64_t{1} << 20)) return Support::no("naive based is quadratic in T: T <= 2^20");
    return naive_supports(p);
  };
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in,
                    const PrepareOptions& o) -> std::unique_ptr<Prepared> {
    return std::make_unique<BasedNaive>(p, pass, dt, in, o.same_precision);
  };
  r.add(impl);
}

}  // namespace attnbench::kernels
