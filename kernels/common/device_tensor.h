// Device tensors and the Prepared base every CUDA implementation derives from.
//
// CudaPrepared uploads the pass's inputs (storage dtype; gates fp32) and allocates its outputs
// (pass_outputs(); storage dtype or fp32 as the spec says) on its own stream. poison_outputs()
// fills outputs with NaN (all-ones bytes are NaN in fp32, fp16 and bf16); outputs() downloads
// them as fp64 host tensors. A subclass implements run() and, for a backward, runs its own forward
// in its constructor (untimed). Host code only: no CUDA kernels here.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/algos.h"
#include "core/impl.h"
#include "cuda_check.h"

namespace attnbench::kernels {

// Owning device allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

struct DeviceTensor {
  std::vector<int64_t> shape;
  Dtype dtype = Dtype::f32;
  DeviceBuffer buf;
  int64_t numel() const { return Tensor::count(shape); }
  template <class T>
  T* as() const { return static_cast<T*>(buf.get()); }
};

DeviceTensor alloc_tensor(const std::vector<int64_t>& shape, Dtype dtype);
void upload(const Tensor& host, DeviceTensor& dev, cudaStream_t s);   // converts to dev.dtype
Tensor download(const DeviceTensor& dev, cudaStream_t s);              // synchronizes
void fill_nan(DeviceTensor& dev, cudaStream_t s);

class CudaPrepared : public Prepared {
 public:
  CudaPrepared(const Problem& p, Pass pass, Dtype dt, const Tensors& inputs);
  ~CudaPrepared() override;
  void poison_outputs() override;
  Tensors outputs() override;
  void* stream() override { return stream_; }

 protected:
  const DeviceTensor& in(const std::string& name) const { return inputs_.at(name); }
  DeviceTensor& out(const std::string& name) { return outputs_.at(name); }
  bool has_out(const std::string& name) const { return outputs_.count(name) != 0; }
  // Extra device tensors a subclass keeps (its forward's o and lse for a backward, workspaces).
  DeviceTensor& scratch(const std::string& name, const std::vector<int64_t>& shape, Dtype dtype);
  DeviceTensor& scratch(const std::string& name) { return scratch_.at(name); }

  Problem p_;
  Pass pass_;
  Dtype dt_;
  cudaStream_t stream_ = nullptr;

 private:
  std::map<std::string, DeviceTensor> inputs_, outputs_, scratch_;
};

}  // namespace attnbench::kernels
