// Host tensors: a shape and fp64 values. Every implementation takes its inputs and returns its
// outputs as Tensors, so one checker serves CPU and GPU implementations alike. Values of
// low-precision runs are kept exactly (fp16/bf16/fp32 values are all representable in double).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace attnbench {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<double> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s, double fill = 0.0)
      : shape(std::move(s)), data(static_cast<std::size_t>(count(shape)), fill) {}

  static int64_t count(const std::vector<int64_t>& s) {
    return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<int64_t>());
  }
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  double* ptr() { return data.data(); }
  const double* ptr() const { return data.data(); }
  std::string shape_string() const;  // "[2, 16, 1024, 64]"
};

// Named tensors of one pass: inputs ("q", "k", "v", "g", "do", ...) or outputs ("o", "lse",
// "dq", ...). std::map keeps a stable, sorted order for reports.
using Tensors = std::map<std::string, Tensor>;

// Round every element to `d` in place.
void round_tensor(Dtype d, Tensor& t);

// Deterministic fills, parallel over elements; the same (seed, index) always gives the same value.
void fill_normal(Tensor& t, uint64_t seed, double stddev = 1.0);
void fill_uniform(Tensor& t, uint64_t seed, double lo, double hi);

}  // namespace attnbench
