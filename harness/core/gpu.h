// The harness's window onto the GPU, free of CUDA types so that harness/ compiles without a CUDA
// toolkit. Implemented by kernels/common/gpu_runtime.cu, or by harness/gpu_none.cpp in a
// CPU-only build (which reports that no GPU can be used, and why).
#pragma once

#include <string>

#include "core/timing.h"

namespace attnbench {

struct GpuInfo {
  bool available = false;
  std::string why_not;        // when !available: "built without CUDA", "no CUDA device: ..."
  std::string name;           // "NVIDIA H200"
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
  long long l2_bytes = 0;
  long long memory_bytes = 0;
  std::string driver;         // "580.159.04 (CUDA 13.0)"
  std::string runtime;        // "13.0"
};

const GpuInfo& gpu_info();          // queried once
double gpu_sm_clock_mhz();          // current SM clock (NVML); NaN when unknown
double gpu_copy_bandwidth_gbps();   // device-to-device copy, bytes read + written; measured once
// CUDA events around each run(); warm-up, optional L2 flush before each timed run, budget.
Timing time_gpu(Prepared& p, const TimingOptions& opt);
// Empty while this process's CUDA context is usable; otherwise the error that broke it (an
// illegal address or a trap in a kernel is sticky: every later CUDA call fails the same way, and
// only a new process can use the GPU again). Synchronizes the device.
std::string gpu_sticky_error();

}  // namespace attnbench
