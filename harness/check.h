// Checking one implementation's outputs by the numerics rule, and where the rule's `ref` and
// `base` come from (shared by the sweep, the GPU tests and the benchmark front end).
#pragma once

#include <optional>
#include <string>

#include "core/impl.h"
#include "core/numerics.h"

namespace attnbench {

// Compare every output of the pass (pass_outputs()) by the rule. A tensor missing from x or the
// oracle fails.
Verdict check_outputs(const Problem& p, Pass pass, Dtype dt, double k, const Tensors& x, const Tensors& ref,
                      const Tensors& base);

// The oracle (`ref` of the rule) and the same-precision `base` of one point, computed lazily and
// once per pass:
//   oracle: the fp64 CPU reference;
//   base:   for a CUDA implementation under test, the naive CUDA kernel in same-precision mode
//           where one exists; otherwise the CPU emulation.
class CheckSources {
 public:
  CheckSources(const Problem& p, Dtype dt, const Tensors& inputs) : p_(p), dt_(dt), in_(inputs) {}
  // nullptr (and *why says why) when no oracle can run at this size.
  const Tensors* oracle(Pass pass, std::string* why, std::string* oracle_name);
  const Tensors* base(Pass pass, Device device, std::string* why);

 private:
  struct Slot {
    bool done = false;
    std::optional<Tensors> value;
    std::string why;
  };
  void fill(Slot& s, const Impl* impl, Pass pass, Dtype dt, const PrepareOptions& o, const char* missing);

  Problem p_;
  Dtype dt_;
  const Tensors& in_;
  Slot oracle_[2], cpu_base_[2], gpu_base_[2];
};

}  // namespace attnbench
