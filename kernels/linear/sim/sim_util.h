// Helpers of the simulator checks: host "device" buffers in a storage type, and the CPU oracles.
#pragma once

#include <cmath>
#include <vector>

#include "based.h"
#include "core/algos.h"
#include "core/tensor.h"
#include "gated.h"
#include "linear.h"
#include "lin_sim.h"

namespace simutil {

using namespace attnbench;

template <class T>
T from_double(double x) {
  if constexpr (std::is_same_v<T, float>) return static_cast<float>(x);
  else if constexpr (std::is_same_v<T, __half>) return __float2half_rn(static_cast<float>(x));
  else return __float2bfloat16_rn(static_cast<float>(x));
}
template <class T>
double to_double(T x) {
  if constexpr (std::is_same_v<T, float>) return x;
  else if constexpr (std::is_same_v<T, __half>) return __half2float(x);
  else return __bfloat162float(x);
}

// A buffer standing for device memory, filled with NaN-like garbage unless given values.
template <class T>
struct DevBuf {
  std::vector<T> h;
  explicit DevBuf(size_t n) : h(n) {
    std::vector<unsigned char> junk(n * sizeof(T), 0xff);
    std::memcpy(h.data(), junk.data(), junk.size());
  }
  explicit DevBuf(const Tensor& t) : h(t.data.size()) {
    for (size_t i = 0; i < h.size(); ++i) h[i] = from_double<T>(t.data[i]);
  }
  T* p() { return h.data(); }
  Tensor tensor(const std::vector<int64_t>& shape) const {
    Tensor t(shape);
    for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = to_double(h[i]);
    return t;
  }
};

inline Tensors reference(const Problem& p, Pass pass, const Tensors& in) {
  if (p.algo == "linear") return pass == Pass::fwd ? ref::linear_forward(p, in) : ref::linear_backward(p, in);
  if (p.algo == "based") return pass == Pass::fwd ? ref::based_forward(p, in) : ref::based_backward(p, in);
  return pass == Pass::fwd ? ref::gated_forward(p, in) : ref::gated_backward(p, in);
}

inline Tensors emulation(const Problem& p, Pass pass, Dtype dt, const Tensors& in) {
  if (p.algo == "linear") {
    return pass == Pass::fwd ? ref::linear_emulate_forward(p, dt, in) : ref::linear_emulate_backward(p, dt, in);
  }
  if (p.algo == "based") {
    return pass == Pass::fwd ? ref::based_emulate_forward(p, dt, in) : ref::based_emulate_backward(p, dt, in);
  }
  return pass == Pass::fwd ? ref::gated_emulate_forward(p, dt, in) : ref::gated_emulate_backward(p, dt, in);
}

inline double max_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    const double d = std::fabs(a.data[i] - b.data[i]);
    if (!(d <= m)) m = std::isnan(d) ? INFINITY : d;
  }
  return m;
}

}  // namespace simutil
