// The Prepared object of every CPU implementation: run() calls a function that computes the
// pass's outputs from a private copy of the inputs.
#pragma once

#include <cmath>
#include <functional>
#include <utility>

#include "core/algos.h"
#include "core/impl.h"

namespace attnbench::ref {

class CpuPrepared final : public Prepared {
 public:
  using Compute = std::function<Tensors(const Tensors& inputs)>;
  CpuPrepared(const Problem& p, Pass pass, Tensors inputs, Compute compute)
      : problem_(p), pass_(pass), inputs_(std::move(inputs)), compute_(std::move(compute)) {
    poison_outputs();
  }
  void run() override { outputs_ = compute_(inputs_); }
  void poison_outputs() override {
    outputs_.clear();
    for (const auto& spec : pass_outputs(problem_, pass_)) outputs_.emplace(spec.name, Tensor(spec.shape, NAN));
  }
  Tensors outputs() override {
    Tensors out;  // exactly the outputs of the pass; extras a compute returns are dropped
    for (const auto& spec : pass_outputs(problem_, pass_)) out[spec.name] = outputs_.at(spec.name);
    return out;
  }

 private:
  Problem problem_;
  Pass pass_;
  Tensors inputs_;
  Compute compute_;
  Tensors outputs_;
};

// Estimated fp64 operations of a quadratic (all pairs) CPU reference, for refusing sizes that
// would take minutes: about (Dk + Dv) multiply-adds per visible pair, x2.5 for a backward.
double cpu_pairs_cost(const Problem& p, Pass pass);
// The limit above which CPU implementations refuse a point, and the reason they give.
constexpr double kCpuCostLimit = 4e11;
Support cpu_cost_check(double cost);

}  // namespace attnbench::ref

namespace attnbench::ref {

// One algorithm's CPU functions; add_cpu_impls() registers them as the impls `ref` (fp64) and
// `emul` (same-precision emulation, the CPU `base` of the numerics rule).
struct CpuAlgo {
  std::string algo;
  std::function<Tensors(const Problem&, const Tensors&)> forward, backward;
  std::function<Tensors(const Problem&, Dtype, const Tensors&)> emulate_forward, emulate_backward;
  std::function<double(const Problem&, Pass)> cost = cpu_pairs_cost;  // fp64 operations, estimated
  std::string ref_summary = "fp64 Eigen reference; every shape; inputs rounded to the run's dtype";
  std::string emul_summary = "CPU same-precision emulation (fp32 accumulate, dtype roundings); fp32/fp16/bf16";
};
void add_cpu_impls(Registry& r, const CpuAlgo& algo);

}  // namespace attnbench::ref
