#include "core/numerics.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace attnbench {

double rel_rms_cap(Dtype dtype) {
  switch (dtype) {
    case Dtype::f32: return 1e-5;
    case Dtype::f16: return 5e-3;
    case Dtype::bf16: return 2e-2;
  }
  return 0;
}

double TensorVerdict::margin() const {
  const double bound = k * err_base + floor;
  if (bound > 0) return err / bound;
  return err > 0 ? INFINITY : 0.0;
}

double max_abs_finite(const Tensor& t) {
  double m = 0;
  for (double v : t.data) {
    if (std::isfinite(v)) m = std::max(m, std::fabs(v));
  }
  return m;
}

TensorVerdict check_tensor(const std::string& name, const Tensor& x, const Tensor& ref, const Tensor& base,
                           Dtype run_dtype, Dtype store_dtype, double k, double pass_scale) {
  TensorVerdict v;
  v.tensor = name;
  v.k = k;
  v.cap = rel_rms_cap(run_dtype);
  if (x.numel() != ref.numel() || base.numel() != ref.numel()) {
    v.why = fmt::format("{}: size mismatch (x {}, ref {}, base {})", name, x.numel(), ref.numel(), base.numel());
    return v;
  }
  // One pass over the elements, in fixed chunks reduced in chunk order (deterministic whatever
  // the number of threads), spread over the cores: published sizes hold 1e8+ elements.
  struct Partial {
    int64_t compared = 0, nonfinite = 0, base_nonfinite = 0;
    double err = 0, err_base = 0, floor = 0, sq_diff = 0, sq_ref = 0, sq_base = 0;
  };
  constexpr int64_t kChunk = int64_t{1} << 18;
  const int64_t n = ref.numel(), chunks = (n + kChunk - 1) / kChunk;
  std::vector<Partial> parts(static_cast<std::size_t>(chunks));
  auto scan = [&](int64_t c) {
    Partial& q = parts[static_cast<std::size_t>(c)];
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
      const double r = ref.data[i], a = x.data[i], b = base.data[i];
      if (std::isnan(r)) continue;  // not computed by the oracle
      ++q.compared;
      if (std::isinf(r)) {          // e.g. lse of a fully masked row: must match exactly
        if (a != r) ++q.nonfinite;
        if (b != r) ++q.base_nonfinite;
        continue;
      }
      if (!std::isfinite(a)) {
        ++q.nonfinite;
      } else {
        const double d = std::fabs(a - r);
        q.err = std::max(q.err, d);
        q.sq_diff += d * d;
      }
      if (!std::isfinite(b)) {
        ++q.base_nonfinite;
      } else {
        q.err_base = std::max(q.err_base, std::fabs(b - r));
        q.sq_base += (b - r) * (b - r);
      }
      q.floor = std::max(q.floor, std::fabs(round_to(store_dtype, r) - r));
      q.sq_ref += r * r;
    }
  };
  const int64_t workers = std::min<int64_t>(chunks, std::max(1u, std::thread::hardware_concurrency()));
  if (workers <= 1) {
    for (int64_t c = 0; c < chunks; ++c) scan(c);
  } else {
    std::atomic<int64_t> next{0};
    std::vector<std::thread> pool;
    for (int64_t w = 0; w < workers; ++w) {
      pool.emplace_back([&] {
        for (int64_t c = next++; c < chunks; c = next++) scan(c);
      });
    }
    for (auto& t : pool) t.join();
  }
  double sq_diff = 0, sq_ref = 0, sq_base = 0;
  for (const Partial& q : parts) {
    v.compared += q.compared;
    v.nonfinite += q.nonfinite;
    v.base_nonfinite += q.base_nonfinite;
    v.err = std::max(v.err, q.err);
    v.err_base = std::max(v.err_base, q.err_base);
    v.floor = std::max(v.floor, q.floor);
    sq_diff += q.sq_diff;
    sq_ref += q.sq_ref;
    sq_base += q.sq_base;
  }
  v.floor *= 2.0;
  auto relative = [sq_ref](double sq) { return sq_ref > 0 ? std::sqrt(sq / sq_ref) : (sq > 0 ? INFINITY : 0.0); };
  v.rel_rms = relative(sq_diff);
  v.rel_rms_base = relative(sq_base);
  const double scale = std::max(pass_scale, max_abs_finite(ref));
  if (v.rel_rms_base > v.cap && v.err_base <= kIllConditionedUlps * unit_roundoff(run_dtype) * scale) {
    v.ill_conditioned = true;
    v.cap = k * v.rel_rms_base;
  }

  const double bound = k * v.err_base + v.floor;
  if (v.compared == 0) {
    v.why = fmt::format("{}: nothing compared (the oracle computed no element)", name);
  } else if (v.nonfinite > 0) {
    v.why = fmt::format("{}: {} NaN/Inf where ref is finite (or mismatched Inf)", name, v.nonfinite);
  } else if (v.base_nonfinite > 0) {
    v.why = fmt::format("{}: base has {} NaN/Inf where ref is finite; cannot judge", name, v.base_nonfinite);
  } else if (!(v.err <= bound)) {
    v.why = fmt::format("{}: err {:.3g} > {}*err_base {:.3g} + floor {:.3g}", name, v.err, k, v.err_base, v.floor);
  } else if (!(v.rel_rms <= v.cap)) {
    v.why = fmt::format("{}: rel_rms {:.3g} > cap {:.3g}{}", name, v.rel_rms, v.cap,
                        v.ill_conditioned ? " (ill-conditioned: k * rel_rms_base)" : "");
  } else {
    v.pass = true;
  }
  return v;
}

const TensorVerdict& Verdict::worst() const {
  if (tensors.empty()) throw std::logic_error("Verdict::worst on an empty verdict");
  for (const auto& t : tensors) {
    if (!t.pass) return t;
  }
  return *std::max_element(tensors.begin(), tensors.end(),
                           [](const TensorVerdict& a, const TensorVerdict& b) { return a.margin() < b.margin(); });
}

std::string Verdict::summary() const {
  if (tensors.empty()) return "fail: no tensors checked";
  if (pass) return "pass";
  return "fail: " + worst().why;
}

}  // namespace attnbench
