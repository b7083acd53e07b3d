#include "core/timing.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace attnbench {
namespace {

// Linear interpolation between order statistics (the "type 7" quantile of R and numpy).
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return NAN;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

Timing summarize(std::vector<double> ms) {
  Timing t;
  t.samples = static_cast<int>(ms.size());
  if (ms.empty()) return t;
  std::sort(ms.begin(), ms.end());
  t.median = quantile(ms, 0.5);
  t.p20 = quantile(ms, 0.2);
  t.p80 = quantile(ms, 0.8);
  t.min = ms.front();
  t.noise = t.median > 0 ? (quantile(ms, 0.75) - quantile(ms, 0.25)) / t.median : 0.0;
  return t;
}

Timing time_cpu(Prepared& p, const TimingOptions& opt) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < opt.warmup; ++i) p.run();
  std::vector<double> ms;
  double used = 0;
  while (static_cast<int>(ms.size()) < opt.max_samples &&
         (static_cast<int>(ms.size()) < opt.min_samples || used < opt.budget_ms)) {
    const auto t0 = clock::now();
    p.run();
    const double dt = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    ms.push_back(dt);
    used += dt;
    // A slow CPU reference: stop after 3 samples once they alone overrun the budget.
    if (ms.size() >= 3 && used > 4 * opt.budget_ms) break;
  }
  return summarize(std::move(ms));
}

}  // namespace attnbench
