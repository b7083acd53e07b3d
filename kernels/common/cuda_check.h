// Every CUDA call and every launch is checked. A failure throws: std::runtime_error with the call,
// file and line, or OutOfDeviceMemory (the sweep records `skipped:out of device memory`).
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/impl.h"

namespace attnbench::kernels {

[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* what, const char* file, int line) {
  const std::string msg = std::string(what) + ": " + cudaGetErrorString(e) + " (" + file + ":" + std::to_string(line) + ")";
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the sticky-free allocation error so the sweep can go on
    throw OutOfDeviceMemory(msg);
  }
  throw std::runtime_error(msg);
}

}  // namespace attnbench::kernels

#define CUDA_CHECK(call)                                                                       \
  do {                                                                                         \
    const cudaError_t attnbench_err_ = (call);                                                 \
    if (attnbench_err_ != cudaSuccess) {                                                       \
      ::attnbench::kernels::throw_cuda_error(attnbench_err_, #call, __FILE__, __LINE__);       \
    }                                                                                          \
  } while (0)

// After a <<<...>>> launch: catches bad configurations at once (errors inside the kernel surface
// at the next synchronizing call, which is checked too).
#define CUDA_CHECK_LAUNCH(name)                                                                \
  do {                                                                                         \
    const cudaError_t attnbench_err_ = cudaGetLastError();                                     \
    if (attnbench_err_ != cudaSuccess) {                                                       \
      ::attnbench::kernels::throw_cuda_error(attnbench_err_, "launch of " name, __FILE__, __LINE__); \
    }                                                                                          \
  } while (0)
