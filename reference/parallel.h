// Run fn(task) for task in [0, n) on all cores. The references split work by (b, head) slice, so
// tasks write disjoint outputs and need no locks.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace attnbench::ref {

// The worker threads the references use: one per hardware thread.
inline int64_t cpu_workers() { return std::max(1u, std::thread::hardware_concurrency()); }

template <class F>
void parallel_tasks(int64_t n, F&& fn) {
  const int64_t workers = std::min<int64_t>(n, cpu_workers());
  if (workers <= 1) {
    for (int64_t t = 0; t < n; ++t) fn(t);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool;
  for (int64_t w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      try {
        for (int64_t t = next++; t < n && !failed; t = next++) fn(t);
      } catch (...) {
        if (!failed.exchange(true)) error = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace attnbench::ref
