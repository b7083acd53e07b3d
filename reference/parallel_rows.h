// The references split work by (b, head) slice. With fewer slices than cores (the sampled oracle
// checks one slice of a large problem: harness/check.cpp) each slice is also split over its row
// blocks: part k of `parts` takes blocks k, k + parts, ... (interleaved, so causal rows of
// growing cost spread evenly) and writes into its own zeroed copy of the outputs; the copies are
// then summed in a fixed order. Rows that one part writes are zero in every other copy, so they
// come out exact; what the parts accumulate (dK, dV, total attention) is summed in the same order
// on every run with the same core count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "parallel.h"

namespace attnbench::ref {

// fn(task, part, parts, out): do blocks part, part + parts, ... (< nblocks) of slice `task`,
// writing into `out` (the real outputs when parts == 1, else a private zeroed copy).
template <class F>
void parallel_row_blocks(int64_t tasks, int64_t nblocks, Tensors& out, F&& fn) {
  const int64_t cores = cpu_workers();
  const int64_t parts = tasks >= cores ? 1 : std::clamp<int64_t>(cores / std::max<int64_t>(tasks, 1), 1, nblocks);
  if (parts == 1) {
    parallel_tasks(tasks, [&](int64_t task) { fn(task, int64_t{0}, int64_t{1}, out); });
    return;
  }
  std::vector<Tensors> partial(static_cast<std::size_t>(tasks * parts));
  for (Tensors& t : partial) {
    for (const auto& [name, x] : out) t.emplace(name, Tensor(x.shape));
  }
  parallel_tasks(tasks * parts, [&](int64_t u) { fn(u / parts, u % parts, parts, partial[static_cast<std::size_t>(u)]); });
  constexpr int64_t kChunk = int64_t{1} << 18;
  for (auto& [name, x] : out) {
    const std::string& n = name;
    double* dst = x.ptr();
    parallel_tasks((x.numel() + kChunk - 1) / kChunk, [&](int64_t c) {
      const int64_t lo = c * kChunk, hi = std::min(x.numel(), lo + kChunk);
      for (const Tensors& t : partial) {
        const double* src = t.at(n).ptr();
        for (int64_t i = lo; i < hi; ++i) dst[i] += src[i];
      }
    });
  }
}

}  // namespace attnbench::ref
