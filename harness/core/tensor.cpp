#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace attnbench {
namespace {

// splitmix64: a counter-based generator, so element n's value depends only on (seed, n) and the
// fill can be split over threads without changing the result.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in (0, 1), never 0 (Box-Muller takes its log).
double uniform01(uint64_t seed, uint64_t n) {
  const uint64_t bits = splitmix64(seed ^ splitmix64(n)) >> 11;  // 53 bits
  return (static_cast<double>(bits) + 0.5) * 0x1.0p-53;
}

template <class F>
void parallel_for(int64_t n, F&& f) {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const int64_t chunk = 1 << 16;
  const int64_t nthreads = std::min<int64_t>(hw, (n + chunk - 1) / chunk);
  if (nthreads <= 1) {
    f(0, n);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t per = (n + nthreads - 1) / nthreads;
  for (int64_t t = 0; t < nthreads; ++t) {
    const int64_t lo = t * per, hi = std::min(n, lo + per);
    if (lo < hi) pool.emplace_back([&f, lo, hi] { f(lo, hi); });
  }
  for (auto& th : pool) th.join();
}

}  // namespace

std::string Tensor::shape_string() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

void round_tensor(Dtype d, Tensor& t) {
  double* p = t.ptr();
  parallel_for(t.numel(), [p, d](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) p[i] = round_to(d, p[i]);
  });
}

void fill_normal(Tensor& t, uint64_t seed, double stddev) {
  constexpr double kTwoPi = 6.283185307179586;
  double* p = t.ptr();
  const uint64_t s = splitmix64(seed);
  parallel_for(t.numel(), [=](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const double u1 = uniform01(s, 2 * static_cast<uint64_t>(i));
      const double u2 = uniform01(s, 2 * static_cast<uint64_t>(i) + 1);
      p[i] = stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);  // Box-Muller
    }
  });
}

void fill_uniform(Tensor& t, uint64_t seed, double lo_v, double hi_v) {
  double* p = t.ptr();
  const uint64_t s = splitmix64(seed);
  parallel_for(t.numel(), [=](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) p[i] = lo_v + (hi_v - lo_v) * uniform01(s, static_cast<uint64_t>(i));
  });
}

}  // namespace attnbench
