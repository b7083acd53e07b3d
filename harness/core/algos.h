// What each algorithm is, independent of how it is computed: its variants, its inputs (names,
// shapes, how they are drawn), its outputs per pass, its FLOP and byte models, and which problems
// are well-formed. The reference, the kernels and the harness all read tensor names from here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/problem.h"
#include "core/tensor.h"

namespace attnbench {

enum class CausalMode { optional, always, never };

struct AlgoSpec {
  std::string id;
  std::vector<std::string> variants;  // empty: the algorithm has none
  CausalMode causal = CausalMode::optional;
  bool softmax_family = false;        // has Tq/Tk, Hkv, lse and total-attention outputs
  std::string summary;
};

// How an input is drawn. Data-dependent log-gates are logsigmoid(randn) (DESIGN.md); inputs
// that feed a normalizer denominator without a positive feature map are drawn positive, so the
// denominator stays away from zero and the problem stays well conditioned.
enum class Draw { normal, positive, logsigmoid };

struct InputSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool gate = false;            // stored fp32 whatever the storage dtype (DESIGN: gates are fp32)
  bool differentiable = true;   // the backward returns "d" + name
  Draw draw = Draw::normal;
};

struct OutputSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool storage_dtype = true;    // stored in the run's dtype (false: fp32, e.g. lse, gate grads)
  Dtype stored_as(Dtype run) const { return storage_dtype ? run : Dtype::f32; }  // the check's rounding
};

const std::vector<AlgoSpec>& algo_specs();
const AlgoSpec* find_algo(std::string_view id);
std::string algo_ids_joined();  // "softmax, piecewise, ..." for error messages

// Inputs of the forward; the backward takes these plus "do" (the gradient of "o").
std::vector<InputSpec> forward_inputs(const Problem& p);
std::vector<OutputSpec> forward_outputs(const Problem& p);
std::vector<OutputSpec> backward_outputs(const Problem& p);  // "d<name>" per differentiable input
std::vector<OutputSpec> pass_outputs(const Problem& p, Pass pass);

// Draw the inputs of a pass, rounded to `dtype` (gates stay fp32). The forward inputs depend only
// on (problem, dtype, seed), so a point's fwd and bwd see the same q, k, v.
Tensors make_inputs(const Problem& p, Pass pass, Dtype dtype, uint64_t seed);

// Empty when the problem is well formed; otherwise one line naming the offending parameter,
// e.g. "--Hkv: must divide H (H=6, Hkv=4)".
std::string validate_problem(const Problem& p);

// FLOP model (softmax family: 2*B*H*(Dk+Dv)*visible pairs; bwd = 2.5x fwd); 0 where the op is
// judged by bytes instead.
double model_flops(const Problem& p, Pass pass);
// Minimal bytes: each input read once and each output written once, in their storage dtypes.
double model_bytes(const Problem& p, Pass pass, Dtype dtype);
// The CSV `flop_model` column: "matmul-pairs" or "min-bytes".
std::string_view model_name(const Problem& p);
bool is_memory_bound_family(std::string_view algo);

}  // namespace attnbench
