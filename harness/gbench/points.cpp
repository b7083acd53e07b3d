#include "points.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <set>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "core/algos.h"
#include "core/gpu.h"
#include "errors.h"
#include "host_info.h"
#include "names.h"

namespace attnbench::gbench {
namespace {

enum class Kind { pass, unchecked, fail, skipped, error };

// What a point's first run found out; kept for its later calls.
struct Outcome {
  Kind kind = Kind::error;
  std::string message;  // the SkipWithError text (fail, skipped, error) or the label (pass, unchecked)
  std::optional<TensorVerdict> worst;  // the deciding tensor, when checked
};

constexpr std::size_t kMaxKept = std::size_t{1} << 20;  // iteration times kept for the median

bool timed(Kind k) { return k == Kind::pass || k == Kind::unchecked; }

struct Registered {
  uint64_t id = 0;
  Point point;
  std::optional<Outcome> outcome;
};

// The one prepared point kept between Google Benchmark's calls of a benchmark; a point that runs
// frees its predecessor before allocating.
struct Held {
  uint64_t owner = 0;  // Registered::id; 0: none
  std::unique_ptr<Prepared> prep;
  void reset() {
    prep.reset();
    owner = 0;
  }
};

Held& held() {
  static Held h;
  return h;
}

Tally& tally_mut() {
  static Tally t;
  return t;
}

int& tally_slot(Kind k) {
  Tally& t = tally_mut();
  switch (k) {
    case Kind::pass: return t.pass;
    case Kind::unchecked: return t.unchecked;
    case Kind::fail: return t.fail;
    case Kind::skipped: return t.skipped;
    case Kind::error: break;
  }
  return t.error;
}

// Records a point's outcome, counting each point once under its latest kind.
void set_outcome(Registered& r, Outcome o) {
  if (r.outcome) --tally_slot(r.outcome->kind);
  ++tally_slot(o.kind);
  r.outcome = std::move(o);
}

Outcome make(Kind k, std::string message) {
  Outcome o;
  o.kind = k;
  o.message = std::move(message);
  return o;
}

Tensors point_inputs(const Point& pt) {
  return make_inputs(pt.problem, pt.pass, pt.dtype, point_seed(pt.seed, pt.problem, pt.dtype));
}

// Untimed runs before the timed loop; CPU references are slow, so at most one (as the sweep does).
void warm_up(Prepared& prep, const Point& pt) {
  const int n = pt.impl->device == Device::cuda ? pt.timing.warmup : std::min(pt.timing.warmup, 1);
  for (int i = 0; i < n; ++i) prep.run();
}

// Steps 1-3 of points.h. When the point may be timed, its prepared state is left in held().
Outcome prepare_and_check(const Registered& r) {
  const Point& pt = r.point;
  held().reset();
  if (!pt.impl) return make(Kind::skipped, fmt::format("skipped: implementation '{}' is not in this build", pt.impl_name));
  try {
    if (pt.impl->device == Device::cuda && !gpu_info().available) {
      return make(Kind::skipped, "skipped: " + gpu_info().why_not);
    }
    const Support sup = pt.impl->supports(pt.problem, pt.pass, pt.dtype);
    if (!sup.ok) return make(Kind::skipped, "skipped: " + sup.reason);
    const Tensors inputs = point_inputs(pt);
    auto prep = pt.impl->prepare(pt.problem, pt.pass, pt.dtype, inputs, PrepareOptions{});
    Outcome o;
    if (pt.check) {
      CheckSources sources(pt.problem, pt.dtype, inputs, pt.oracle);
      std::string why_ref, why_base, oracle_name;
      const Tensors* ref = sources.oracle(pt.pass, pt.impl->device, &why_ref, &oracle_name);
      const Tensors* base = ref ? sources.base(pt.pass, pt.impl->device, &why_base) : nullptr;
      if (!ref || !base) return make(Kind::skipped, "skipped: no oracle (" + (ref ? why_base : why_ref) + ")");
      prep->poison_outputs();
      prep->run();
      const Verdict v = check_outputs(pt.problem, pt.pass, pt.dtype, pt.k, prep->outputs(), *ref, *base);
      const TensorVerdict& w = v.worst();
      if (!v.pass) return make(Kind::fail, "check failed: " + w.why);
      o = make(Kind::pass, fmt::format("pass (oracle {}; worst {}: err {:.2e}, base {:.2e}, floor {:.2e})",
                                       oracle_name, w.tensor, w.err, w.err_base, w.floor));
      o.worst = w;
    } else {
      o = make(Kind::unchecked, pt.microbench ? "reference microbenchmark (unchecked)" : "unchecked");
    }
    warm_up(*prep, pt);
    held().prep = std::move(prep);
    held().owner = r.id;
    return o;
  } catch (const OutOfDeviceMemory&) {
    held().reset();
    return make(Kind::skipped, "skipped: out of device memory");
  } catch (const std::exception& e) {
    held().reset();
    return make(Kind::error, std::string("error: ") + e.what());
  }
}

// A point already checked whose prepared state was freed meanwhile (repetitions interleaved with
// other points): prepare again, without a second check.
void reprepare(Registered& r) {
  held().reset();
  try {
    auto prep = r.point.impl->prepare(r.point.problem, r.point.pass, r.point.dtype, point_inputs(r.point),
                                      PrepareOptions{});
    warm_up(*prep, r.point);
    held().prep = std::move(prep);
    held().owner = r.id;
  } catch (const OutOfDeviceMemory&) {
    held().reset();
    set_outcome(r, make(Kind::skipped, "skipped: out of device memory"));
  } catch (const std::exception& e) {
    held().reset();
    set_outcome(r, make(Kind::error, std::string("error: ") + e.what()));
  }
}

void set_if_finite(benchmark::State& st, const char* name, double v) {
  if (std::isfinite(v)) st.counters[name] = v;  // a NaN would not be valid JSON
}

void run_point(benchmark::State& st, Registered& r) {
  if (!r.outcome) {
    set_outcome(r, prepare_and_check(r));
  } else if (timed(r.outcome->kind) && held().owner != r.id) {
    reprepare(r);
  }
  const Outcome& o = *r.outcome;
  if (!timed(o.kind)) {
    st.SkipWithError(o.message.c_str());  // never timed
    return;
  }
  const Point& pt = r.point;
  const bool on_gpu = pt.impl->device == Device::cuda;
  const bool by_bytes = is_memory_bound_family(pt.problem.algo);
  // Measured once per process, outside the timed loop.
  const double copy_gbps = !by_bytes ? NAN : on_gpu ? gpu_copy_bandwidth_gbps() : host_copy_bandwidth_gbps();
  Prepared& prep = *held().prep;
  // Every iteration's time is kept too (up to kMaxKept), for the harness's own median and noise.
  std::vector<double> ms;
  auto keep = [&ms](double t) {
    if (ms.size() < kMaxKept) ms.push_back(t);
  };
  try {
    if (on_gpu) {
      // One sample per iteration through the harness's own timer: L2 flush (unless --hot), then
      // CUDA events around run() on the implementation's stream.
      TimingOptions one = pt.timing;
      one.warmup = 0;
      one.min_samples = one.max_samples = 1;
      for (auto _ : st) {
        const double t = time_gpu(prep, one).median;
        st.SetIterationTime(t * 1e-3);
        keep(t);
      }
    } else {
      using clock = std::chrono::steady_clock;
      for (auto _ : st) {
        const auto t0 = clock::now();
        prep.run();
        keep(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
      }
    }
  } catch (const std::exception& e) {
    held().reset();
    set_outcome(r, make(Kind::error, std::string("error: ") + e.what()));
    st.SkipWithError(r.outcome->message.c_str());
    return;
  }
  const Timing tm = summarize(std::move(ms));
  set_if_finite(st, "ms_median", tm.median);  // the CSV's ms_median and noise, over these iterations
  set_if_finite(st, "noise", tm.noise);
  using benchmark::Counter;
  const double flops = model_flops(pt.problem, pt.pass);
  if (flops > 0) st.counters["TFLOP/s"] = Counter(flops / 1e12, Counter::kIsIterationInvariantRate);
  if (by_bytes) {
    const double bytes = model_bytes(pt.problem, pt.pass, pt.dtype);
    st.counters["GB/s"] = Counter(bytes / 1e9, Counter::kIsIterationInvariantRate);
    // floor_ratio = time / floor time, floor = the minimal bytes at the measured copy bandwidth:
    // 1 means running at copy speed. Counted as (floor seconds per iteration) rate, inverted.
    if (std::isfinite(copy_gbps) && copy_gbps > 0) {
      st.counters["floor_ratio"] =
          Counter(bytes / (copy_gbps * 1e9), Counter::kIsIterationInvariantRate | Counter::kInvert);
    }
  }
  if (!pt.microbench) st.counters["pass"] = o.kind == Kind::pass ? 1 : 0;
  if (o.worst) {
    set_if_finite(st, "err", o.worst->err);
    set_if_finite(st, "err_base", o.worst->err_base);
    set_if_finite(st, "err_floor", o.worst->floor);
    set_if_finite(st, "rel_rms", o.worst->rel_rms);
  }
  if (on_gpu) set_if_finite(st, "sm_clock_mhz", gpu_sm_clock_mhz());
  st.SetLabel(o.message);
}

}  // namespace

std::vector<Point> collect_points(const std::vector<Sweep>& sweeps, int* duplicates) {
  std::vector<Point> all;
  for (const Sweep& sw : sweeps) {
    const SweepOptions& opt = sw.options;
    std::vector<SweepPoint> expanded;
    try {
      expanded = expand_points(opt);
    } catch (const UsageError& e) {
      if (sw.where.empty()) throw;
      throw UsageError(sw.where + ": " + e.what());
    }
    for (const SweepPoint& sp : expanded) {
      // The sweep's order: per point, passes, then implementations.
      for (Pass pass : opt.passes) {
        std::vector<std::pair<std::string, const Impl*>> impls;
        if (!opt.impls.empty() || sw.absent_impls.empty()) {
          for (const Impl* i : select_impls(sp.problem.algo, opt.impls)) impls.emplace_back(i->name, i);
        }
        for (const auto& n : sw.absent_impls) impls.emplace_back(n, nullptr);
        for (const auto& [name, impl] : impls) {
          Point pt;
          pt.problem = sp.problem;
          pt.dtype = sp.dtype;
          pt.pass = pass;
          pt.impl = impl;
          pt.impl_name = name;
          pt.check = opt.check;
          pt.oracle = opt.oracle;
          pt.k = opt.k;
          pt.timing = opt.timing;
          pt.seed = opt.seed;
          all.push_back(std::move(pt));
        }
      }
    }
  }
  std::vector<NamedProblem> named;
  for (const Point& pt : all) named.push_back({pt.problem, pt.impl_name, pt.pass, pt.dtype});
  const VaryingParams varying = varying_params(named);
  std::set<std::string> taken;
  std::vector<Point> out;
  for (std::size_t i = 0; i < all.size(); ++i) {
    all[i].name = point_name(named[i], varying);
    if (!taken.insert(all[i].name).second) {
      if (duplicates) ++*duplicates;
      continue;
    }
    out.push_back(std::move(all[i]));
  }
  return out;
}

void register_points(const std::vector<Point>& points) {
  static uint64_t next_id = 0;
  for (const Point& pt : points) {
    auto r = std::make_shared<Registered>();
    r->id = ++next_id;
    r->point = pt;
    auto* b = benchmark::RegisterBenchmark(pt.name.c_str(), [r](benchmark::State& st) { run_point(st, *r); });
    if (pt.impl && pt.impl->device == Device::cuda) {
      b->UseManualTime();
    } else {
      b->UseRealTime();
    }
  }
}

const Tally& tally() { return tally_mut(); }

void release_prepared() { held().reset(); }

}  // namespace attnbench::gbench
