#include "check.h"

#include <fmt/format.h>

#include "core/algos.h"

namespace attnbench {

Verdict check_outputs(const Problem& p, Pass pass, Dtype dt, double k, const Tensors& x, const Tensors& ref,
                      const Tensors& base) {
  Verdict v;
  v.pass = true;
  for (const auto& spec : pass_outputs(p, pass)) {
    const Dtype store = spec.storage_dtype ? dt : Dtype::f32;
    TensorVerdict tv;
    if (!x.count(spec.name) || !ref.count(spec.name) || !base.count(spec.name)) {
      tv.tensor = spec.name;
      tv.k = k;
      tv.why = fmt::format("{}: missing from {}", spec.name,
                           !x.count(spec.name) ? "the output" : !ref.count(spec.name) ? "the oracle" : "the base");
    } else {
      tv = check_tensor(spec.name, x.at(spec.name), ref.at(spec.name), base.at(spec.name), dt, store, k);
    }
    v.pass = v.pass && tv.pass;
    v.tensors.push_back(std::move(tv));
  }
  return v;
}

void CheckSources::fill(Slot& s, const Impl* impl, Pass pass, Dtype dt, const PrepareOptions& o, const char* missing) {
  s.done = true;
  if (!impl) {
    s.why = missing;
    return;
  }
  const Support sup = impl->supports(p_, pass, dt);
  if (!sup.ok) {
    s.why = fmt::format("{}: {}", impl->name, sup.reason);
    return;
  }
  auto prep = impl->prepare(p_, pass, dt, in_, o);
  prep->poison_outputs();
  prep->run();
  s.value = prep->outputs();
}

const Tensors* CheckSources::oracle(Pass pass, std::string* why, std::string* oracle_name) {
  Slot& s = oracle_[pass == Pass::fwd ? 0 : 1];
  if (!s.done) fill(s, registry().find(p_.algo, "ref"), pass, dt_, PrepareOptions{}, "no fp64 reference");
  *why = s.why;
  if (oracle_name) *oracle_name = "ref";
  return s.value ? &*s.value : nullptr;
}

const Tensors* CheckSources::base(Pass pass, Device device, std::string* why) {
  const int i = pass == Pass::fwd ? 0 : 1;
  if (device == Device::cuda) {
    Slot& s = gpu_base_[i];
    if (!s.done) fill(s, registry().find(p_.algo, "naive"), pass, dt_, PrepareOptions{true}, "no naive CUDA kernel");
    if (s.value) {
      *why = "";
      return &*s.value;
    }
  }
  Slot& s = cpu_base_[i];
  if (!s.done) fill(s, registry().find(p_.algo, "emul"), pass, dt_, PrepareOptions{}, "no CPU emulation");
  *why = s.why;
  return s.value ? &*s.value : nullptr;
}

}  // namespace attnbench
