// The naive linear-family kernels run on the host simulator (lin_sim.h) against the CPU references:
// exact mode (fp32 accumulation, no intermediate rounding) against the fp64 reference, and
// same-precision mode against the CPU emulation it mirrors. A development check without a GPU;
// build (from the repository root, after building attnbench_reference in build/<dir>):
//   g++ -O1 -std=c++17 -DATTNBENCH_LIN_SIM -Ikernels/linear -Ikernels/common -Iharness -Ireference \
//     -I/usr/local/cuda/include -I/usr/include/eigen3 kernels/linear/sim/sim_naive.cpp \
//     build/<dir>/reference/libattnbench_reference.a build/<dir>/harness/core/libattnbench_core.a -lfmt -lpthread
#include <cstdio>

#include "based.h"
#include "based_naive.cuh"
#include "core/numerics.h"
#include "gated.h"
#include "gated_naive.cuh"
#include "linear.h"
#include "linear_naive.cuh"
#include "sim_util.h"

using namespace attnbench;
using namespace attnbench::kernels::lin_naive;
using simutil::DevBuf;

template <class T, bool SP>
Tensors run_linear(const Problem& p, Pass pass, const Tensors& in) {
  const int BH = int(p.B * p.H), T_ = int(p.Tq);
  DevBuf<T> q(in.at("q")), k(in.at("k")), v(in.at("v"));
  DevBuf<float> state(size_t(BH) * p.Dk * p.Dv), den(size_t(BH) * T_), delta(size_t(BH) * T_);
  LinearArgs a{};
  a.q = q.p(), a.k = k.p(), a.v = v.p(), a.state = state.p();
  a.T = T_, a.Dk = int(p.Dk), a.Dv = int(p.Dv), a.scale = float(p.scale()), a.eps = float(p.eps());
  a.normalize = p.normalize();
  DevBuf<T> o(size_t(BH) * T_ * p.Dv);
  a.o = o.p();
  a.den = pass == Pass::bwd ? den.p() : nullptr;
  const size_t smem_f = (kChunk * kChunk + kChunk + p.Dk) * 4;
  sim::launch({unsigned(BH)}, {kThreads}, smem_f, [&] { linear_naive_fwd<T, SP>(a); });
  Tensors out;
  if (pass == Pass::fwd) {
    out.emplace("o", o.tensor({p.B, p.H, p.Tq, p.Dv}));
    return out;
  }
  DevBuf<T> dO(in.at("do")), dq(size_t(BH) * T_ * p.Dk), dk(size_t(BH) * T_ * p.Dk), dv(size_t(BH) * T_ * p.Dv);
  DevBuf<float> dk_acc(size_t(BH) * T_ * p.Dk), dv_acc(size_t(BH) * T_ * p.Dv);
  a.dout = dO.p(), a.o_saved = o.p(), a.delta = delta.p(), a.dk_acc = dk_acc.p(), a.dv_acc = dv_acc.p();
  a.dq = dq.p(), a.dk = dk.p(), a.dv = dv.p();
  sim::launch({unsigned(BH)}, {kThreads}, (2 * kChunk * kChunk + kChunk + p.Dk) * 4,
              [&] { linear_naive_bwd_scan<T, SP>(a); });
  sim::launch({unsigned(BH)}, {kThreads}, (kChunk + p.Dk) * 4, [&] { linear_naive_bwd_rscan<T, SP>(a); });
  out.emplace("dq", dq.tensor({p.B, p.H, p.Tq, p.Dk}));
  out.emplace("dk", dk.tensor({p.B, p.H, p.Tq, p.Dk}));
  out.emplace("dv", dv.tensor({p.B, p.H, p.Tq, p.Dv}));
  return out;
}

template <class T, bool SP>
Tensors run_based(const Problem& p, Pass pass, const Tensors& in) {
  const int BH = int(p.B * p.H), T_ = int(p.Tq), nb = (T_ + kChunk - 1) / kChunk;
  DevBuf<T> q(in.at("q")), k(in.at("k")), v(in.at("v"));
  DevBuf<float> den(size_t(BH) * T_), delta(size_t(BH) * T_);
  BasedArgs a{};
  a.q = q.p(), a.k = k.p(), a.v = v.p();
  a.T = T_, a.Dk = int(p.Dk), a.Dv = int(p.Dv), a.scale = float(p.scale()), a.normalize = p.normalize();
  DevBuf<T> o(size_t(BH) * T_ * p.Dv);
  a.o = o.p();
  a.den = pass == Pass::bwd ? den.p() : nullptr;
  sim::launch({unsigned(nb), unsigned(BH)}, {kThreads}, (kChunk * kChunk + kChunk + kChunk * p.Dv) * 4,
              [&] { based_naive_fwd<T, SP>(a); });
  Tensors out;
  if (pass == Pass::fwd) {
    out.emplace("o", o.tensor({p.B, p.H, p.Tq, p.Dv}));
    return out;
  }
  DevBuf<T> dO(in.at("do")), dq(size_t(BH) * T_ * p.Dk), dk(size_t(BH) * T_ * p.Dk), dv(size_t(BH) * T_ * p.Dv);
  a.dout = dO.p(), a.o_saved = o.p(), a.delta = delta.p(), a.dq = dq.p(), a.dk = dk.p(), a.dv = dv.p();
  sim::launch({unsigned((T_ + kThreads - 1) / kThreads), unsigned(BH)}, {kThreads}, 0,
              [&] { based_naive_delta<T, SP>(a); });
  sim::launch({unsigned(nb), unsigned(BH)}, {kThreads}, (kChunk * kChunk + kChunk * p.Dk) * 4,
              [&] { based_naive_dq<T, SP>(a); });
  sim::launch({unsigned(nb), unsigned(BH)}, {kThreads}, (2 * kChunk * kChunk + kChunk * (p.Dk + p.Dv)) * 4,
              [&] { based_naive_dkdv<T, SP>(a); });
  out.emplace("dq", dq.tensor({p.B, p.H, p.Tq, p.Dk}));
  out.emplace("dk", dk.tensor({p.B, p.H, p.Tq, p.Dk}));
  out.emplace("dv", dv.tensor({p.B, p.H, p.Tq, p.Dv}));
  return out;
}

template <class T, bool SP>
Tensors run_gated(const Problem& p, Pass pass, const Tensors& in) {
  const int BH = int(p.B * p.H), T_ = int(p.Tq), nc = (T_ + kChunk - 1) / kChunk;
  DevBuf<T> q(in.at("q")), k(in.at("k")), v(in.at("v"));
  DevBuf<float> g(in.count("g") ? in.at("g") : Tensor({1})), u(in.count("u") ? in.at("u") : Tensor({1}));
  DevBuf<float> state(size_t(BH) * p.Dk * p.Dv), ws(size_t(BH) * 5 * kChunk * p.Dk);
  GatedArgs a{};
  a.q = q.p(), a.k = k.p(), a.v = v.p();
  const std::string& var = p.variant;
  a.gate = var == "scalar" ? kScalar : (var == "vector" || var == "rwkv6") ? kVector : kFixed;
  a.lightning = var == "lightning";
  a.bonus = var == "rwkv6";
  if (a.gate != kFixed) a.g = g.p();
  if (a.bonus) a.u = u.p();
  a.state = state.p(), a.ws = ws.p();
  a.B = int(p.B), a.H = int(p.H), a.T = T_, a.Dk = int(p.Dk), a.Dv = int(p.Dv), a.scale = float(p.scale());
  Tensors out;
  if (pass == Pass::fwd) {
    DevBuf<T> o(size_t(BH) * T_ * p.Dv);
    a.o = o.p();
    sim::launch({unsigned(BH)}, {kThreads}, 0, [&] { gated_naive_fwd<T, SP>(a); });
    out.emplace("o", o.tensor({p.B, p.H, p.Tq, p.Dv}));
    return out;
  }
  DevBuf<T> dO(in.at("do")), dq(size_t(BH) * T_ * p.Dk), dk(size_t(BH) * T_ * p.Dk), dv(size_t(BH) * T_ * p.Dv);
  DevBuf<float> S_all(size_t(BH) * (nc + 1) * p.Dk * p.Dv);
  DevBuf<float> dg(a.gate == kVector ? size_t(BH) * T_ * p.Dk : size_t(BH) * T_), du(size_t(p.H) * p.Dk),
      du_part(size_t(BH) * p.Dk);
  a.dout = dO.p(), a.dq = dq.p(), a.dk = dk.p(), a.dv = dv.p(), a.S_all = S_all.p();
  if (a.gate != kFixed) a.dg = dg.p();
  if (a.bonus) a.du = du.p(), a.du_part = du_part.p();
  sim::launch({unsigned(BH)}, {kThreads}, 0, [&] { gated_naive_states<T, SP>(a); });
  sim::launch({unsigned(BH)}, {kThreads}, 0, [&] { gated_naive_bwd<T, SP>(a); });
  if (a.bonus) sim::launch({unsigned((a.H * a.Dk + 255) / 256)}, {256}, 0, [&] { gated_naive_du(a); });
  out.emplace("dq", dq.tensor({p.B, p.H, p.Tq, p.Dk}));
  out.emplace("dk", dk.tensor({p.B, p.H, p.Tq, p.Dk}));
  out.emplace("dv", dv.tensor({p.B, p.H, p.Tq, p.Dv}));
  if (a.gate == kVector) out.emplace("dg", dg.tensor({p.B, p.H, p.Tq, p.Dk}));
  if (a.gate == kScalar) out.emplace("dg", dg.tensor({p.B, p.H, p.Tq}));
  if (a.bonus) out.emplace("du", du.tensor({p.H, p.Dk}));
  return out;
}

template <bool SP>
Tensors run(const Problem& p, Pass pass, Dtype dt, const Tensors& in) {
  auto go = [&](auto tag) -> Tensors {
    using T = decltype(tag);
    if (p.algo == "linear") return run_linear<T, SP>(p, pass, in);
    if (p.algo == "based") return run_based<T, SP>(p, pass, in);
    return run_gated<T, SP>(p, pass, in);
  };
  if (dt == Dtype::f32) return go(float{});
  if (dt == Dtype::f16) return go(__half{});
  return go(__nv_bfloat16{});
}

int main(int argc, char** argv) {
  const std::string only = argc > 1 ? argv[1] : "";
  struct Case {
    std::string algo, variant;
    int64_t T, Dk, Dv;
    int normalize;
  };
  std::vector<Case> cases = {{"linear", "", 1, 32, 32, 0},  {"linear", "", 130, 32, 48, 0},
                             {"linear", "", 130, 48, 32, 1}, {"based", "", 63, 16, 32, -1},
                             {"based", "", 130, 32, 16, 0},  {"based", "", 1, 16, 16, -1}};
  for (const char* v : {"retention", "lightning", "scalar", "vector", "rwkv6"}) {
    cases.push_back({"gated", v, 130, 32, 48, -1});
    cases.push_back({"gated", v, 1, 16, 16, -1});
  }
  int fails = 0;
  for (const Case& c : cases) {
    if (!only.empty() && c.algo != only) continue;
    Problem p;
    p.algo = c.algo, p.variant = c.variant, p.B = 2, p.H = 2, p.Hkv = 2, p.Tq = p.Tk = c.T, p.Dk = c.Dk, p.Dv = c.Dv;
    p.causal = true;
    p.params.normalize = c.normalize;
    for (Pass pass : {Pass::fwd, Pass::bwd}) {
      for (Dtype dt : {Dtype::bf16, Dtype::f16}) {
        const Tensors in = make_inputs(p, Pass::bwd, dt, 7);
        const Tensors ref = simutil::reference(p, pass, in), emul = simutil::emulation(p, pass, dt, in);
        const Tensors exact = run<false>(p, pass, dt, in), same = run<true>(p, pass, dt, in);
        std::printf("%-7s %-9s T=%-4ld Dk=%-3ld Dv=%-3ld norm=%d %s %s:", c.algo.c_str(), c.variant.c_str(), long(c.T),
                    long(c.Dk), long(c.Dv), p.normalize() ? 1 : 0, std::string(pass_name(pass)).c_str(),
                    std::string(dtype_name(dt)).c_str());
        double pass_scale = 0;
        for (const auto& spec : pass_outputs(p, pass)) pass_scale = std::max(pass_scale, max_abs_finite(ref.at(spec.name)));
        for (const auto& spec : pass_outputs(p, pass)) {
          const Dtype st = spec.stored_as(dt);
          // exact mode against ref with emul as base; same-precision against emul (max diff in ulps of the max)
          const auto v = check_tensor(spec.name, exact.at(spec.name), ref.at(spec.name), emul.at(spec.name), dt, st, 2.0, pass_scale);
          const auto w = check_tensor(spec.name, same.at(spec.name), ref.at(spec.name), emul.at(spec.name), dt, st, 2.0, pass_scale);
          const double sd = simutil::max_diff(same.at(spec.name), emul.at(spec.name)) /
                            std::max(1e-30, max_abs_finite(emul.at(spec.name)));
          std::printf(" %s[exact %s %.2f | sp %s %.2f, vs emul %.1e]", spec.name.c_str(), v.pass ? "ok" : "FAIL",
                      v.margin(), w.pass ? "ok" : "FAIL", w.margin(), sd);
          fails += !v.pass + !w.pass;
        }
        std::printf("\n");
      }
    }
  }
  std::printf("%s: %d failures\n", fails ? "FAIL" : "PASS", fails);
  return fails ? 1 : 0;
}
