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

// Which oracle stands in for `ref` (the CSV `oracle` column names the one used):
//   ref          the fp64 CPU reference on the whole problem;
//   ref-sampled  the fp64 CPU reference on one (batch, head-group) slice: the last batch and the
//                last kv head with its query heads (every head for gates that depend on the head
//                index: retention, lightning); everything else is not compared (tensors with
//                no batch axis, like rwkv6's du, only when B = 1);
//   naive-fp32   the naive CUDA kernel run in fp32 on the same (dtype-rounded) inputs: for
//                fp16/bf16 runs of CUDA implementations at sizes the CPU cannot reach.
//                Outputs stored in fp32 (lse, gate gradients) come from ref-sampled instead,
//                since the fp32 run is no more exact than the base there; the name says so:
//                "naive-fp32; lse: ref-sampled(b=1,h=31..31)".
// auto picks ref when the CPU can do it within its cost limit, else naive-fp32 where it applies,
// else ref-sampled.
enum class OracleMode { automatic, ref, sampled, naive };
std::optional<OracleMode> parse_oracle_mode(const std::string& s);

class CheckSources {
 public:
  CheckSources(const Problem& p, Dtype dt, const Tensors& inputs, OracleMode mode = OracleMode::automatic)
      : p_(p), dt_(dt), in_(inputs), mode_(mode) {}
  // The oracle for an implementation on `device`; nullptr (and *why) when none can run.
  const Tensors* oracle(Pass pass, Device device, std::string* why, std::string* oracle_name);
  // The same-precision base: the naive CUDA kernel in same-precision mode for a CUDA
  // implementation under test (where one exists; on the sampled oracle's slice alone when
  // oracle() chose ref-sampled), otherwise the CPU emulation.
  const Tensors* base(Pass pass, Device device, std::string* why);

 private:
  struct Slot {
    bool done = false;
    std::optional<Tensors> value;
    std::string why, name;
  };
  void fill(Slot& s, const Impl* impl, Pass pass, Dtype dt, const PrepareOptions& o, const char* missing);
  void fill_sampled(Slot& s, Pass pass);
  void with_fp32_outputs_from_sampled(Slot& s, Pass pass);
  void fill_on_slice(Slot& s, const Impl* impl, Pass pass, Dtype dt, const PrepareOptions& o, const char* missing,
                     bool check_support = true);

  Problem p_;
  Dtype dt_;
  const Tensors& in_;
  OracleMode mode_;
  Slot ref_[2], sampled_[2], naive_fp32_[2], cpu_base_[2], gpu_base_[2];
  bool sampled_oracle_[2] = {false, false};  // oracle() chose ref-sampled for the pass
};

}  // namespace attnbench
