// Timing: samples -> median, p20, p80, min, noise (IQR / median), as DESIGN.md reports them.
// CPU implementations are timed with a steady clock; CUDA ones with events (core/gpu.h).
#pragma once

#include <vector>

#include "core/impl.h"

namespace attnbench {

struct TimingOptions {
  int warmup = 3;          // untimed runs first (module load, caches, clocks)
  int min_samples = 10;    // at least this many timed runs...
  int max_samples = 200;   // ...and at most this many,
  double budget_ms = 400;  // stopping once the timed runs have used this much time
  bool flush_l2 = true;    // GPU: overwrite an L2-sized buffer before each timed run (cold)
};

struct Timing {
  double median = 0, p20 = 0, p80 = 0, min = 0, noise = 0;  // milliseconds; noise = (p75-p25)/median
  int samples = 0;
};

Timing summarize(std::vector<double> ms);
Timing time_cpu(Prepared& p, const TimingOptions& opt);

}  // namespace attnbench
