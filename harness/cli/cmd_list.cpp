// `attnbench list`: what can be run here.
#include <cstdio>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.h"
#include "core/algos.h"
#include "core/gpu.h"
#include "core/impl.h"

namespace attnbench::cli {

void add_list_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("list", "List algorithms, variants and implementations");
  cmd->callback([exit_code] {
    std::string text = "algorithms:\n";
    for (const auto& a : algo_specs()) {
      const char* causal = a.causal == CausalMode::optional ? "causal optional"
                           : a.causal == CausalMode::always ? "causal" : "non-causal";
      text += fmt::format("  {:<11} {:<16} {}\n", a.id, causal, a.summary);
      if (!a.variants.empty()) text += fmt::format("  {:<11} variants: {}\n", "", fmt::join(a.variants, ", "));
    }
    text += "\nimplementations (algo/impl  device  what it supports):\n";
    for (const auto& a : algo_specs()) {
      for (const Impl* i : registry().for_algo(a.id)) {
        text += fmt::format("  {:<20} {:<5} {}\n", a.id + "/" + i->name, i->device == Device::cpu ? "cpu" : "cuda",
                            i->summary);
      }
    }
    const GpuInfo& g = gpu_info();
    text += g.available ? fmt::format("\nGPU: {} ({} SMs, sm_{}{}), driver {}\n", g.name, g.sm_count, g.cc_major,
                                      g.cc_minor, g.driver)
                        : fmt::format("\nGPU: none usable ({}); CUDA implementations will be skipped\n", g.why_not);
    std::fputs(text.c_str(), stdout);
    *exit_code = 0;
  });
}

}  // namespace attnbench::cli
