// Test-only CUDA implementations that fail on purpose, so the harness's handling of device faults
// can be tested on a real GPU (registered only with ATTNBENCH_TEST_IMPLS=1):
//
//   softmax/fault_test  run() launches a kernel that stores through a wild pointer. The store is
//                       an illegal address: the error is sticky, so the process's CUDA context
//                       is unusable afterwards (every later CUDA call fails). With isolation the
//                       row is `error:...illegal memory access...` and the next row runs in a
//                       new worker; without it every later CUDA row says the context is gone.
//   softmax/oom_test    prepare() asks for twice the GPU's memory: OutOfDeviceMemory, a
//                       `skipped:out of device memory` row; the context stays usable.
#include <cstdint>

#include "core/gpu.h"
#include "device_tensor.h"
#include "fault_test.h"

namespace attnbench::kernels {
namespace {

// An address no allocation has: passed in from the host so the compiler cannot see it coming.
constexpr std::uintptr_t kWildAddress = 0x10;

__global__ void store_through_wild_pointer(float* wild) { wild[threadIdx.x] = 1.0f; }

class FaultPrepared final : public CudaPrepared {
 public:
  using CudaPrepared::CudaPrepared;
  void run() override {
    store_through_wild_pointer<<<1, 32, 0, stream_>>>(reinterpret_cast<float*>(kWildAddress));
    CUDA_CHECK_LAUNCH("store_through_wild_pointer");
  }
};

class OomPrepared final : public CudaPrepared {
 public:
  OomPrepared(const Problem& p, Pass pass, Dtype dt, const Tensors& in) : CudaPrepared(p, pass, dt, in) {
    const int64_t floats = 2 * static_cast<int64_t>(gpu_info().memory_bytes) / 4;  // twice the device memory
    scratch("too_big", {floats}, Dtype::f32);  // throws OutOfDeviceMemory
  }
  void run() override {}
};

}  // namespace

void register_fault_test(Registry& r) {
  Impl fault;
  fault.algo = "softmax";
  fault.name = "fault_test";
  fault.device = Device::cuda;
  fault.summary = "test only (ATTNBENCH_TEST_IMPLS=1): a kernel that stores through a wild pointer";
  fault.supports = [](const Problem&, Pass, Dtype) { return Support::yes(); };
  fault.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in,
                     const PrepareOptions&) -> std::unique_ptr<Prepared> {
    return std::make_unique<FaultPrepared>(p, pass, dt, in);
  };
  r.add(fault);
  Impl oom = fault;
  oom.name = "oom_test";
  oom.summary = "test only (ATTNBENCH_TEST_IMPLS=1): asks for twice the GPU's memory";
  oom.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in,
                   const PrepareOptions&) -> std::unique_ptr<Prepared> {
    return std::make_unique<OomPrepared>(p, pass, dt, in);
  };
  r.add(oom);
}

}  // namespace attnbench::kernels
