// Host-side helpers shared by the linear-family CUDA implementations (naive and tiled).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "device_tensor.h"

namespace attnbench::kernels::lin_host {

// A workspace tensor a Prepared keeps (allocated once, reused by every run).
inline DeviceTensor& workspace(std::map<std::string, DeviceTensor>& ws, const std::string& name,
                               const std::vector<int64_t>& shape, Dtype dt) {
  auto it = ws.find(name);
  if (it == ws.end() || it->second.shape != shape || it->second.dtype != dt) {
    ws.erase(name);
    it = ws.emplace(name, alloc_tensor(shape, dt)).first;
  }
  return it->second;
}

// The naive kernels keep per-slice fp32 state in global memory and loop over T: no O(T^2) memory.
inline Support naive_supports(const Problem& p) {
  if (p.Dk > 256 || p.Dv > 256) return Support::no("naive supports Dk, Dv <= 256");
  if (p.Tq > (int64_t{1} << 30)) return Support::no("naive supports T < 2^30");
  if (p.B * p.H > (int64_t{1} << 30)) return Support::no("naive supports B*H < 2^30");
  return Support::yes();
}

// Dynamic shared memory above 48 KB needs an opt-in per kernel.
template <class K>
void allow_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  }
}

}  // namespace attnbench::kernels::lin_host
