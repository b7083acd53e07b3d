// Host side of the softmax-family naive kernels: a Prepared that runs the forward, or (for a
// backward) its own forward once untimed and then the dQ and dK/dV kernels. A family member
// supplies only its Score policy through make_score(); see softmax_naive.cu.
#pragma once

#include <functional>
#include <map>
#include <memory>

#include "device_tensor.h"
#include "softmax_family_naive.cuh"

namespace attnbench::kernels::naive {

// What a MakeScore functor sees: `template <class T, int S> Score operator()(FamilyAccess&) const`
// builds the policy from the device inputs (and, in a backward, the gradient outputs). A policy
// that needs per-row values before the kernels (hyperbolic: the time coordinates x0) takes a
// workspace (allocated on first use, kept by the Prepared) and enqueues its pre-pass on `stream`.
struct FamilyAccess {
  std::function<const DeviceTensor&(const std::string&)> in;
  std::function<DeviceTensor&(const std::string&)> out;
  const Problem* p;
  Pass pass;
  bool same_precision;
  cudaStream_t stream;
  std::function<DeviceTensor&(const std::string&, const std::vector<int64_t>&, Dtype)> workspace;
};

template <class MakeScore>
class FamilyNaive final : public CudaPrepared {
 public:
  FamilyNaive(const Problem& p, Pass pass, Dtype dt, const Tensors& inputs, bool same_precision, MakeScore make)
      : CudaPrepared(p, pass, dt, inputs), sp_(same_precision), make_(make) {
    scratch("o", {p.B, p.H, p.Tq, p.Dv}, dt);
    scratch("lse", {p.B, p.H, p.Tq}, Dtype::f32);
    scratch("delta", {p.B, p.H, p.Tq}, Dtype::f32);
    if (pass == Pass::bwd) {
      forward();  // the backward's o and lse, untimed
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }

  void run() override {
    if (pass_ == Pass::fwd) forward();
    else backward();
  }

 private:
  FamilyAccess access() {
    return {[this](const std::string& n) -> const DeviceTensor& { return in(n); },
            [this](const std::string& n) -> DeviceTensor& { return has_out(n) ? out(n) : scratch(n); },
            &p_,
            pass_,
            sp_,
            stream_,
            [this](const std::string& n, const std::vector<int64_t>& shape, Dtype d) -> DeviceTensor& {
              auto it = workspace_.find(n);
              if (it == workspace_.end()) it = workspace_.emplace(n, alloc_tensor(shape, d)).first;
              return it->second;
            }};
  }

  template <class T>
  FamilyParams<T> params() {
    FamilyParams<T> fp{};
    fp.v = in("v").as<T>();
    fp.o = scratch("o").as<T>();
    fp.lse = (pass_ == Pass::fwd && has_out("lse")) ? out("lse").as<float>() : scratch("lse").as<float>();
    fp.delta = scratch("delta").as<float>();
    fp.B = static_cast<int>(p_.B), fp.H = static_cast<int>(p_.H), fp.Hkv = static_cast<int>(p_.Hkv);
    fp.Tq = static_cast<int>(p_.Tq), fp.Tk = static_cast<int>(p_.Tk), fp.Dv = static_cast<int>(p_.Dv);
    fp.off = static_cast<int>(p_.Tk - p_.Tq);
    fp.causal = p_.causal;
    if (pass_ == Pass::fwd) {
      fp.o_out = out("o").as<T>();
      fp.total = has_out("total") ? out("total").as<float>() : nullptr;
    } else {
      fp.o_out = scratch("o").as<T>();
      fp.dout = in("do").as<T>();
      fp.dv = out("dv").as<T>();
    }
    return fp;
  }

  void forward() {
    ATTNBENCH_DISPATCH_DTYPE(dt_, T, {
      ATTNBENCH_DISPATCH_SLOTS(std::max(p_.Dk, p_.Dv), S, {
        FamilyParams<T> fp = params<T>();
        if (pass_ == Pass::bwd) fp.total = nullptr;
        FamilyAccess a = access();
        auto score = make_.template operator()<T, S>(a);
        const dim3 grid = rows_grid(fp.Tq, fp.B * fp.H);
        if (sp_) family_forward<T, S, true><<<grid, kThreads, 0, stream_>>>(fp, score);
        else family_forward<T, S, false><<<grid, kThreads, 0, stream_>>>(fp, score);
        CUDA_CHECK_LAUNCH("family_forward");
        if (fp.total) {
          family_total_attention<T, S><<<rows_grid(fp.Tk, fp.B * fp.H), kThreads, 0, stream_>>>(fp, score);
          CUDA_CHECK_LAUNCH("family_total_attention");
        }
      })
    })
  }

  void backward() {
    ATTNBENCH_DISPATCH_DTYPE(dt_, T, {
      ATTNBENCH_DISPATCH_SLOTS(std::max(p_.Dk, p_.Dv), S, {
        const FamilyParams<T> fp = params<T>();
        FamilyAccess a = access();
        auto score = make_.template operator()<T, S>(a);
        if (sp_) {
          family_backward_dq<T, S, true><<<rows_grid(fp.Tq, fp.B * fp.H), kThreads, 0, stream_>>>(fp, score);
          CUDA_CHECK_LAUNCH("family_backward_dq");
          family_backward_dkdv<T, S, true><<<rows_grid(fp.Tk, fp.B * fp.Hkv), kThreads, 0, stream_>>>(fp, score);
        } else {
          family_backward_dq<T, S, false><<<rows_grid(fp.Tq, fp.B * fp.H), kThreads, 0, stream_>>>(fp, score);
          CUDA_CHECK_LAUNCH("family_backward_dq");
          family_backward_dkdv<T, S, false><<<rows_grid(fp.Tk, fp.B * fp.Hkv), kThreads, 0, stream_>>>(fp, score);
        }
        CUDA_CHECK_LAUNCH("family_backward_dkdv");
      })
    })
  }

  bool sp_;
  MakeScore make_;
  std::map<std::string, DeviceTensor> workspace_;  // the policy's own buffers (see FamilyAccess)
};

// What every naive softmax-family kernel supports.
inline Support family_naive_supports(const Problem& p) {
  if (p.Dk > 256 || p.Dv > 256) return Support::no("naive supports Dk, Dv <= 256");
  if (p.Tq > (int64_t{1} << 30) || p.Tk > (int64_t{1} << 30)) return Support::no("naive supports T < 2^30");
  if (p.B * p.H > 65535) return Support::no("naive supports B*H <= 65535 (grid.y)");  // heads index grid.y
  return Support::yes();
}

}  // namespace attnbench::kernels::naive
