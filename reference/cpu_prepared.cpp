#include "cpu_prepared.h"

#include <fmt/format.h>

namespace attnbench::ref {

double cpu_pairs_cost(const Problem& p, Pass pass) {
  const double fwd = 2.0 * static_cast<double>(p.B * p.H) * static_cast<double>(p.Dk + p.Dv) *
                     static_cast<double>(p.Tq) * static_cast<double>(p.Tk);
  return pass == Pass::fwd ? fwd : 3.5 * fwd;  // the backward recomputes the forward
}

Support cpu_cost_check(double cost) {
  if (cost <= kCpuCostLimit) return Support::yes();
  return Support::no(fmt::format("too slow on CPU (~{:.0e} flop > {:.0e}); use a GPU oracle", cost, kCpuCostLimit));
}

}  // namespace attnbench::ref

namespace attnbench::ref {

void add_cpu_impls(Registry& r, const CpuAlgo& a) {
  Impl ref;
  ref.algo = a.algo;
  ref.name = "ref";
  ref.device = Device::cpu;
  ref.summary = a.ref_summary;
  ref.supports = [cost = a.cost](const Problem& p, Pass pass, Dtype) { return cpu_cost_check(cost(p, pass)); };
  ref.cost = a.cost;
  ref.prepare = [a](const Problem& p, Pass pass, Dtype, const Tensors& in, const PrepareOptions&) {
    auto fn = pass == Pass::fwd ? a.forward : a.backward;
    return std::make_unique<CpuPrepared>(p, pass, in, [p, fn](const Tensors& x) { return fn(p, x); });
  };
  r.add(ref);

  Impl emul = ref;
  emul.name = "emul";
  emul.summary = a.emul_summary;
  emul.prepare = [a](const Problem& p, Pass pass, Dtype dt, const Tensors& in, const PrepareOptions&) {
    auto fn = pass == Pass::fwd ? a.emulate_forward : a.emulate_backward;
    return std::make_unique<CpuPrepared>(p, pass, in, [p, dt, fn](const Tensors& x) { return fn(p, dt, x); });
  };
  r.add(emul);
}

}  // namespace attnbench::ref
