#include "run_options.h"

#include <fmt/format.h>

#include "core/algos.h"
#include "dump.h"
#include "core/impl.h"
#include "errors.h"
#include "options.h"

namespace attnbench::cli {
namespace {


std::vector<std::string> all_algos_with_impls() {
  std::vector<std::string> out;
  for (const auto& a : algo_specs()) {
    if (!registry().for_algo(a.id).empty()) out.push_back(a.id);
  }
  return out;
}

}  // namespace

SweepOptions to_sweep(const RunArgs& a) {
  SweepOptions o;
  o.algos = a.algo == "all" ? all_algos_with_impls() : split_list("--algo", a.algo);
  if (!a.variant.empty()) o.variants = split_list("--variant", a.variant);
  if (!a.impl.empty()) o.impls = split_list("--impl", a.impl);
  o.dtypes = parse_dtypes(a.dtype);
  o.passes = parse_passes(a.pass);
  o.causal = parse_causal(a.causal);
  o.normalize = parse_normalize(a.normalize);
  o.feature_maps = parse_feature_maps(a.feature_map);
  const std::pair<const char*, const std::string*> axes[] = {{"B", &a.B},   {"H", &a.H},   {"Hkv", &a.Hkv},
                                                             {"T", &a.T},   {"Tq", &a.Tq}, {"Tk", &a.Tk},
                                                             {"D", &a.D},   {"Dk", &a.Dk}, {"Dv", &a.Dv}};
  for (const auto& [name, text] : axes) {
    const std::string axis = name;
    if (!text->empty()) {
      o.axes.set(axis, *text);
    } else if (axis == "B" || axis == "H" || axis == "T" || axis == "D") {  // empty only when given so
      throw UsageError(fmt::format("--{}: empty value", axis));
    }
  }
  if (!a.scale.empty()) {
    o.params.scale = parse_double("--scale", a.scale);
    if (o.params.scale < 0) throw UsageError(fmt::format("--scale: must be >= 0 (got {})", a.scale));
  }
  if (!a.window.empty()) {
    const double w = parse_double("--window", a.window);
    if (w < 0 || w != static_cast<double>(static_cast<int64_t>(w))) {
      throw UsageError(fmt::format("--window: must be a whole number >= 0 (got {})", a.window));
    }
    o.params.window = static_cast<int64_t>(w);
  }
  if (!a.curvature.empty()) o.params.curvature = parse_double("--curvature", a.curvature);
  if (!a.beta.empty()) o.params.beta = parse_double("--beta", a.beta);
  if (!a.eps.empty()) {
    o.params.eps = parse_double("--eps", a.eps);
    if (o.params.eps <= 0) throw UsageError(fmt::format("--eps: must be > 0 (got {})", a.eps));
  }
  o.params.lse = a.lse;
  o.params.total_attention = a.total;
  o.check = a.check;
  const auto oracle = parse_oracle_mode(a.oracle);
  if (!oracle) throw UsageError(fmt::format("--oracle: unknown '{}' (allowed: auto, ref, sampled, naive)", a.oracle));
  o.oracle = *oracle;
  o.k = a.k;
  o.seed = a.seed;
  if (!(a.budget_ms > 0)) throw UsageError(fmt::format("--budget-ms: must be > 0 (got {})", a.budget_ms));
  if (a.warmup < 0) throw UsageError(fmt::format("--warmup: must be >= 0 (got {})", a.warmup));
  if (a.min_samples < 1) throw UsageError(fmt::format("--min-samples: must be >= 1 (got {})", a.min_samples));
  if (a.max_samples < a.min_samples) {
    throw UsageError(fmt::format("--max-samples: must be >= --min-samples ({} < {})", a.max_samples, a.min_samples));
  }
  o.timing.budget_ms = a.budget_ms;
  o.timing.warmup = a.warmup;
  o.timing.min_samples = a.min_samples;
  o.timing.max_samples = a.max_samples;
  o.timing.flush_l2 = !a.hot;
  if (!a.dump.empty()) {
    prepare_dump_dir(a.dump);  // an unwritable folder is bad input, not an error row per point
    o.dump_dir = a.dump;
  }
  return o;
}


void add_run_options(CLI::App* cmd, RunArgs& a) {
  cmd->add_option("--algo", a.algo, "Algorithms, comma-separated, or 'all'")->capture_default_str();
  cmd->add_option("--variant", a.variant, "Variants (gated: retention,lightning,scalar,vector,rwkv6; bidir: norm,simple); default all");
  cmd->add_option("--impl", a.impl, "Implementations (ref, emul, naive, tiled, flash1, flash2, unfused); default every one usable here");
  cmd->add_option("--dtype", a.dtype, "Storage dtypes: fp32, fp16, bf16")->capture_default_str();
  cmd->add_option("--pass", a.pass, "Passes: fwd, bwd")->capture_default_str();
  cmd->add_option("--causal", a.causal, "yes, no or both (algorithms where the mask is optional)")->capture_default_str();
  cmd->add_option("--B", a.B, "Batch: list, range a:b[:xN|+N], or derived like 32768/T")->capture_default_str();
  cmd->add_option("--H", a.H, "Query heads (e.g. 2048/D)")->capture_default_str();
  cmd->add_option("--Hkv", a.Hkv, "Key/value heads (default H; must divide H)");
  cmd->add_option("--T", a.T, "Sequence length (sets Tq and Tk)")->capture_default_str();
  cmd->add_option("--Tq", a.Tq, "Query length (default T)");
  cmd->add_option("--Tk", a.Tk, "Key length (default T; >= Tq for causal kernels)");
  cmd->add_option("--D", a.D, "Head dim (sets Dk and Dv)")->capture_default_str();
  cmd->add_option("--Dk", a.Dk, "Query/key head dim (default D)");
  cmd->add_option("--Dv", a.Dv, "Value head dim (default D)");
  cmd->add_option("--normalize", a.normalize, "linear/based normalizer: default, on, off, both")->capture_default_str();
  cmd->add_option("--feature-map", a.feature_map, "bidir feature maps: identity, elu1, relu, focused, all")->capture_default_str();
  cmd->add_option("--scale", a.scale, "Score scale (default 1/sqrt(Dk); linear: 1)");
  cmd->add_option("--window", a.window, "piecewise distance threshold w (default Tk/2)");
  cmd->add_option("--curvature", a.curvature, "hyperbolic curvature c > 0 (default 1)");
  cmd->add_option("--beta", a.beta, "hyperbolic temperature (default 1)");
  cmd->add_option("--eps", a.eps, "linear normalizer eps (default 1e-5)");
  cmd->add_flag("--lse,!--no-lse", a.lse, "softmax family: also return the log-normalizer (default on)");
  cmd->add_flag("--total-attention", a.total, "softmax family: also return total attention A_j = sum_i P_ij");
  cmd->add_flag("--check,!--no-check", a.check, "Check numerics against the oracle before timing (default on)");
  cmd->add_option("--oracle", a.oracle,
                  "What stands in for ref: auto, ref (fp64 CPU), sampled (fp64 CPU on one batch/head slice), naive (CUDA fp32)")
      ->capture_default_str();
  cmd->add_option("--k", a.k, "The rule's k: pass iff err <= k*err_base + floor")->capture_default_str();
  cmd->add_option("--budget-ms", a.budget_ms, "Timing budget per row, ms")->capture_default_str();
  cmd->add_option("--warmup", a.warmup, "Untimed runs before timing")->capture_default_str();
  cmd->add_option("--min-samples", a.min_samples, "Fewest timed runs")->capture_default_str();
  cmd->add_option("--max-samples", a.max_samples, "Most timed runs")->capture_default_str();
  cmd->add_flag("--hot", a.hot, "GPU: do not flush L2 before each timed run");
  cmd->add_option("--seed", a.seed, "Seed of the random inputs")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& s) {  // digits only: strtoull would wrap "-1" and saturate 2^64 silently
            const bool digits = !s.empty() && s.size() <= 20 && s.find_first_not_of("0123456789") == std::string::npos;
            return digits && (s.size() < 20 || s <= "18446744073709551615") ? std::string()
                                                                          : "must be an integer 0 .. 2^64-1";
          },
          "UINT64"));
  cmd->add_option("--dump", a.dump, "Write each row's inputs and outputs (and oracle, base) as .npy under DIR/<row>/");
  cmd->add_option("--out", a.out, "CSV to append to (default results/<run>/results.csv)");
}

RunArgs parse_run_line(const std::string& line, const std::string& where) {
  std::vector<std::string> words;
  std::string cur;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
    } else if ((c == ' ' || c == '\t') && !quoted) {
      if (!cur.empty()) words.push_back(cur), cur.clear();
    } else {
      cur += c;
    }
  }
  if (quoted) throw UsageError(where + ": unterminated quote");
  if (!cur.empty()) words.push_back(cur);
  RunArgs a;
  CLI::App app{"sweep line"};
  add_run_options(&app, a);
  app.allow_extras(false);
  std::vector<std::string> argv(words.rbegin(), words.rend());  // CLI11 parses a reversed vector
  try {
    app.parse(argv);
  } catch (const CLI::ParseError& e) {
    throw UsageError(fmt::format("{}: {}", where, e.what()));
  }
  return a;
}

}  // namespace attnbench::cli
