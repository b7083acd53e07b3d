#include "ref_bench.h"

#include <fmt/format.h>

#include "core/algos.h"
#include "names.h"

namespace attnbench::gbench {
namespace {

struct RefShape {
  int64_t H, T;
};
constexpr RefShape kRefShapes[] = {{4, 256}, {2, 1024}};
constexpr int64_t kRefD = 64;
constexpr int64_t kBasedDk = 16;  // Based's typical feature dim (DESIGN.md)

}  // namespace

std::vector<Point> reference_microbenchmarks(const std::set<std::string>& algos) {
  std::vector<Point> out;
  for (const AlgoSpec& spec : algo_specs()) {
    if (!algos.count(spec.id)) continue;
    const std::vector<std::string> variants = spec.variants.empty() ? std::vector<std::string>{""} : spec.variants;
    for (const char* impl_name : {"ref", "emul"}) {
      const Impl* impl = registry().find(spec.id, impl_name);
      if (!impl) continue;
      const bool emul = impl->name == "emul";
      for (const auto& variant : variants) {
        for (Pass pass : {Pass::fwd, Pass::bwd}) {
          for (const RefShape& s : kRefShapes) {
            Point pt;
            Problem& p = pt.problem;
            p.algo = spec.id;
            p.variant = variant;
            p.B = 1;
            p.H = p.Hkv = s.H;
            p.Tq = p.Tk = s.T;
            p.Dk = spec.id == "based" ? kBasedDk : kRefD;
            p.Dv = kRefD;
            p.causal = spec.causal != CausalMode::never;
            pt.dtype = emul ? Dtype::bf16 : Dtype::f32;
            pt.pass = pass;
            pt.impl = impl;
            pt.impl_name = impl->name;
            pt.check = false;
            pt.microbench = true;
            pt.name = fmt::format("BM_{}_{}_{}{}/{}{}", impl->name, spec.id, pass_name(pass),
                                  variant.empty() ? "" : "/" + variant, emul ? "bf16/" : "", shape_segments(p));
            out.push_back(std::move(pt));
          }
        }
      }
    }
  }
  return out;
}

}  // namespace attnbench::gbench
