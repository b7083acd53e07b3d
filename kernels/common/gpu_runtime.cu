// core/gpu.h on a CUDA build: device facts, the copy-bandwidth ceiling, and the timing engine.
//
// Timing (DESIGN.md): warm-up runs first; before each timed run an L2-sized buffer (twice the L2)
// is overwritten so the run starts cold (unless --hot); CUDA events bracket each run on the
// implementation's stream; sampling stops at max_samples, or once min_samples are in and the
// timed runs have used the budget. The SM clock is read through NVML (loaded at run time, so
// the build needs no NVML).
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "core/gpu.h"
#include "cuda_check.h"

namespace attnbench {
namespace {

// The few NVML entry points we use, resolved with dlopen.
struct Nvml {
  using Handle = void*;
  bool ok = false;
  Handle device = nullptr;
  int (*get_clock)(Handle, int, unsigned*) = nullptr;
  std::string driver;

  Nvml() {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_LAZY);
    if (!lib) return;
    auto init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
    auto by_bus = reinterpret_cast<int (*)(const char*, Handle*)>(dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2"));
    auto drv = reinterpret_cast<int (*)(char*, unsigned)>(dlsym(lib, "nvmlSystemGetDriverVersion"));
    get_clock = reinterpret_cast<int (*)(Handle, int, unsigned*)>(dlsym(lib, "nvmlDeviceGetClockInfo"));
    if (!init || !by_bus || !get_clock || init() != 0) return;
    char bus[64] = {0};
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetPCIBusId(bus, sizeof bus, dev) != cudaSuccess) return;
    if (by_bus(bus, &device) != 0) return;
    char version[96] = {0};
    if (drv && drv(version, sizeof version) == 0) driver = version;
    ok = true;
  }
};

Nvml& nvml() {
  static Nvml n;
  return n;
}

}  // namespace

const GpuInfo& gpu_info() {
  static const GpuInfo info = [] {
    GpuInfo g;
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
      cudaGetLastError();
      g.why_not = std::string("no CUDA device: ") + (e != cudaSuccess ? cudaGetErrorString(e) : "none found");
      return g;
    }
    int dev = 0;
    cudaDeviceProp prop{};
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
      g.why_not = "no CUDA device: cudaGetDeviceProperties failed";
      return g;
    }
    g.available = true;
    g.name = prop.name;
    g.sm_count = prop.multiProcessorCount;
    g.cc_major = prop.major;
    g.cc_minor = prop.minor;
    g.l2_bytes = prop.l2CacheSize;
    g.memory_bytes = static_cast<long long>(prop.totalGlobalMem);
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    const std::string drv_cuda = std::to_string(drv / 1000) + "." + std::to_string((drv % 1000) / 10);
    g.driver = nvml().driver.empty() ? "CUDA " + drv_cuda : nvml().driver + " (CUDA " + drv_cuda + ")";
    g.runtime = std::to_string(rt / 1000) + "." + std::to_string((rt % 1000) / 10);
    return g;
  }();
  return info;
}

double gpu_sm_clock_mhz() {
  if (!gpu_info().available || !nvml().ok) return NAN;
  unsigned mhz = 0;
  constexpr int kNvmlClockSm = 1;
  return nvml().get_clock(nvml().device, kNvmlClockSm, &mhz) == 0 ? static_cast<double>(mhz) : NAN;
}

double gpu_copy_bandwidth_gbps() {
  static const double bw = [] {
    if (!gpu_info().available) return static_cast<double>(NAN);
    const std::size_t bytes = std::size_t{1} << 30;  // 1 GiB each way: far beyond L2
    void *a = nullptr, *b = nullptr;
    CUDA_CHECK(cudaMalloc(&a, bytes));
    CUDA_CHECK(cudaMalloc(&b, bytes));
    CUDA_CHECK(cudaMemset(a, 1, bytes));
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    std::vector<float> ms;
    for (int rep = 0; rep < 12; ++rep) {
      CUDA_CHECK(cudaEventRecord(e0));
      CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
      CUDA_CHECK(cudaEventRecord(e1));
      CUDA_CHECK(cudaEventSynchronize(e1));
      float t = 0;
      CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
      if (rep >= 2) ms.push_back(t);  // the first two warm up
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    std::sort(ms.begin(), ms.end());
    const double median_ms = ms[ms.size() / 2];
    return 2.0 * static_cast<double>(bytes) / (median_ms * 1e-3) / 1e9;  // bytes read + written
  }();
  return bw;
}

std::string gpu_sticky_error() {
  if (!gpu_info().available) return "";
  if (cudaDeviceSynchronize() == cudaSuccess) return "";
  cudaGetLastError();  // clears an error that is not sticky; a sticky one is returned again below
  const cudaError_t e = cudaDeviceSynchronize();
  if (e == cudaSuccess) return "";
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

Timing time_gpu(Prepared& p, const TimingOptions& opt) {
  static std::mutex flush_mutex;
  static void* flush_buf = nullptr;
  static std::size_t flush_bytes = 0;
  if (opt.flush_l2) {
    std::lock_guard<std::mutex> lock(flush_mutex);
    if (!flush_buf) {
      flush_bytes = static_cast<std::size_t>(std::max<long long>(gpu_info().l2_bytes, 1 << 20)) * 2;
      CUDA_CHECK(cudaMalloc(&flush_buf, flush_bytes));
    }
  }
  const auto stream = static_cast<cudaStream_t>(p.stream());
  for (int i = 0; i < opt.warmup; ++i) p.run();
  CUDA_CHECK(cudaStreamSynchronize(stream));
  CUDA_CHECK(cudaGetLastError());

  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  double used = 0;
  const auto wall0 = std::chrono::steady_clock::now();
  unsigned flush_value = 0;
  while (static_cast<int>(ms.size()) < opt.max_samples &&
         (static_cast<int>(ms.size()) < opt.min_samples || used < opt.budget_ms)) {
    if (opt.flush_l2) CUDA_CHECK(cudaMemsetAsync(flush_buf, static_cast<int>(++flush_value & 0xff), flush_bytes, stream));
    CUDA_CHECK(cudaEventRecord(start, stream));
    p.run();
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    CUDA_CHECK(cudaGetLastError());
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
    used += t;
    const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall0).count();
    if (static_cast<int>(ms.size()) >= 3 && wall > 10 * opt.budget_ms) break;  // slow oracle-class runs
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return summarize(std::move(ms));
}

}  // namespace attnbench
