// One benchmark point: which algorithm, its shape, and its parameters.
//
// Shapes follow DESIGN.md: tensors are row-major [B, H, T, D]; queries have Tq rows and keys/values
// Tk (softmax family; the causal mask is bottom-right aligned, off = Tk - Tq); linear families use
// Tq == Tk == T. Dk is the query/key head dim, Dv the value head dim. Query head h reads kv head
// h / (H / Hkv).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace attnbench {

enum class Pass { fwd, bwd };
std::string_view pass_name(Pass p);
std::optional<Pass> parse_pass(std::string_view s);

// Feature maps of bidirectional linear attention, applied to q and k before the op.
enum class FeatureMap { identity, elu1, relu, focused };
std::string_view feature_map_name(FeatureMap f);
std::optional<FeatureMap> parse_feature_map(std::string_view s);

// Algorithm parameters. A NaN or negative sentinel means "the algorithm's default" and is
// resolved by effective_*() below, so a point prints the values actually used.
struct Params {
  double scale = -1;          // < 0: default (1/sqrt(Dk) for the softmax family, 1 for linear)
  int64_t window = -1;        // piecewise threshold w on dist = i + off - j; < 0: Tk / 2
  double curvature = 1.0;     // hyperbolic c > 0
  double beta = 1.0;          // hyperbolic temperature
  int normalize = -1;         // linear (default off) and based (default on); < 0: default
  double eps = -1;            // linear normalizer eps (default 1e-5)
  FeatureMap feature_map = FeatureMap::identity;  // bidir
  bool lse = true;            // softmax family: also return the log-normalizer L [B,H,Tq]
  bool total_attention = false;  // softmax family: also return A_j = sum_i P_ij [B,H,Tk]
};

struct Problem {
  std::string algo;     // softmax, piecewise, hyperbolic, linear, based, gated, bidir
  std::string variant;  // gated: retention|lightning|scalar|vector|rwkv6; bidir: norm|simple
  int64_t B = 1, H = 1, Hkv = 1, Tq = 1, Tk = 1, Dk = 1, Dv = 1;
  bool causal = false;
  Params params;

  double scale() const;      // the scale actually used
  int64_t window() const;
  bool normalize() const;
  double eps() const;
  int64_t off() const { return Tk - Tq; }  // causal: key j visible from query i iff j <= i + off
  int64_t group() const { return H / Hkv; }

  // "B=2 H=16 Hkv=16 Tq=1024 Tk=1024 Dk=64 Dv=64 causal" for progress lines and errors.
  std::string shape_string() const;
  // The CSV `params` column: the effective parameters that matter for this algo, "k=v;k=v".
  std::string params_string() const;
};

// Number of (i, j) pairs visible under the mask: the softmax-family FLOP model counts these.
double visible_pairs(const Problem& p);

}  // namespace attnbench
