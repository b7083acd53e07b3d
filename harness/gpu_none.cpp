// core/gpu.h for a build without a CUDA toolkit: no GPU can be used, and every GPU entry point
// says why.
#include <cmath>
#include <stdexcept>

#include "core/gpu.h"

namespace attnbench {

const GpuInfo& gpu_info() {
  static const GpuInfo info = [] {
    GpuInfo g;
    g.why_not = "attnbench was built without CUDA (no nvcc at configure time)";
    return g;
  }();
  return info;
}

double gpu_sm_clock_mhz() { return NAN; }
double gpu_copy_bandwidth_gbps() { return NAN; }
Timing time_gpu(Prepared&, const TimingOptions&) { throw std::runtime_error(gpu_info().why_not); }
std::string gpu_sticky_error() { return ""; }

}  // namespace attnbench
