#include "device_tensor.h"

#include <cstring>
#include <thread>

namespace attnbench::kernels {

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes) CUDA_CHECK(cudaMalloc(&ptr_, bytes));
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

DeviceTensor alloc_tensor(const std::vector<int64_t>& shape, Dtype dtype) {
  DeviceTensor t;
  t.shape = shape;
  t.dtype = dtype;
  t.buf = DeviceBuffer(static_cast<std::size_t>(t.numel()) * dtype_bytes(dtype));
  return t;
}

namespace {

// Host-side conversion, split over threads for the large tensors of published sizes.
template <class F>
void host_parallel(int64_t n, F&& f) {
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(std::thread::hardware_concurrency(), n >> 18));
  std::vector<std::thread> pool;
  const int64_t per = (n + workers - 1) / workers;
  for (int64_t w = 0; w < workers; ++w) {
    const int64_t lo = w * per, hi = std::min(n, lo + per);
    if (lo < hi) pool.emplace_back([&f, lo, hi] { f(lo, hi); });
  }
  for (auto& t : pool) t.join();
}

}  // namespace

void upload(const Tensor& host, DeviceTensor& dev, cudaStream_t s) {
  const int64_t n = host.numel();
  if (n != dev.numel()) throw std::logic_error("upload: size mismatch");
  if (dev.dtype == Dtype::f32) {
    std::vector<float> tmp(static_cast<std::size_t>(n));
    host_parallel(n, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) tmp[i] = static_cast<float>(host.data[i]);
    });
    CUDA_CHECK(cudaMemcpyAsync(dev.buf.get(), tmp.data(), n * 4, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
  } else {
    std::vector<uint16_t> tmp(static_cast<std::size_t>(n));
    const Dtype d = dev.dtype;
    host_parallel(n, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) tmp[i] = to_bits16(d, round_to(d, host.data[i]));
    });
    CUDA_CHECK(cudaMemcpyAsync(dev.buf.get(), tmp.data(), n * 2, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
  }
}

Tensor download(const DeviceTensor& dev, cudaStream_t s) {
  Tensor host(dev.shape);
  const int64_t n = dev.numel();
  CUDA_CHECK(cudaStreamSynchronize(s));  // surfaces errors of the kernels that wrote it
  if (dev.dtype == Dtype::f32) {
    std::vector<float> tmp(static_cast<std::size_t>(n));
    CUDA_CHECK(cudaMemcpy(tmp.data(), dev.buf.get(), n * 4, cudaMemcpyDeviceToHost));
    host_parallel(n, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) host.data[i] = tmp[i];
    });
  } else {
    std::vector<uint16_t> tmp(static_cast<std::size_t>(n));
    CUDA_CHECK(cudaMemcpy(tmp.data(), dev.buf.get(), n * 2, cudaMemcpyDeviceToHost));
    const Dtype d = dev.dtype;
    host_parallel(n, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) host.data[i] = from_bits16(d, tmp[i]);
    });
  }
  return host;
}

void fill_nan(DeviceTensor& dev, cudaStream_t s) {
  CUDA_CHECK(cudaMemsetAsync(dev.buf.get(), 0xff, dev.buf.bytes(), s));  // all-ones: NaN in every dtype
}

CudaPrepared::CudaPrepared(const Problem& p, Pass pass, Dtype dt, const Tensors& inputs) : p_(p), pass_(pass), dt_(dt) {
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  auto add_input = [&](const std::string& name, const std::vector<int64_t>& shape, bool gate) {
    DeviceTensor t = alloc_tensor(shape, gate ? Dtype::f32 : dt);
    upload(inputs.at(name), t, stream_);
    inputs_.emplace(name, std::move(t));
  };
  for (const auto& spec : forward_inputs(p)) add_input(spec.name, spec.shape, spec.gate);
  if (pass == Pass::bwd) add_input("do", {p.B, p.H, p.Tq, p.Dv}, false);
  for (const auto& spec : pass_outputs(p, pass)) {
    outputs_.emplace(spec.name, alloc_tensor(spec.shape, spec.storage_dtype ? dt : Dtype::f32));
  }
}

CudaPrepared::~CudaPrepared() {
  if (stream_) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
}

void CudaPrepared::poison_outputs() {
  for (auto& [name, t] : outputs_) fill_nan(t, stream_);
}

Tensors CudaPrepared::outputs() {
  Tensors out;
  for (auto& [name, t] : outputs_) out.emplace(name, download(t, stream_));
  return out;
}

DeviceTensor& CudaPrepared::scratch(const std::string& name, const std::vector<int64_t>& shape, Dtype dtype) {
  scratch_.erase(name);
  return scratch_.emplace(name, alloc_tensor(shape, dtype)).first->second;
}

}  // namespace attnbench::kernels
