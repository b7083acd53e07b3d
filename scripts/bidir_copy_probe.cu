// Copy-class probes at the bidir forward's byte counts (B=8, H=16, D=64, bf16: q, k, v read once,
// o written once), timed as the harness times a kernel (kernels/common/gpu_runtime.cu: a memset of
// 2x the L2 size before each run, CUDA events around the run, the median): what a kernel with the
// forward's traffic and no math gets, against DESIGN.md's floor (the bytes at the bandwidth of a
// 1 GiB device-to-device copy, measured here the same way as gpu_copy_bandwidth_gbps()).
//   memcpy   cudaMemcpyAsync of half the bytes (read) into the other half (written)
//   stream4  o = q + k + v (bf16, 16-byte accesses, 4 independent chunks per thread in flight):
//            3 streams read, 1 written, as the forward
//   headwise one CTA per (b,h) slice, as the forward walks its data (see headwise() below)
// Build and run (device): nvcc -O3 -arch=sm_90a -o build/copy_probe scripts/bidir_copy_probe.cu && build/copy_probe
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x)                                                                          \
  do {                                                                                 \
    cudaError_t e_ = (x);                                                              \
    if (e_ != cudaSuccess) {                                                           \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                    \
    }                                                                                  \
  } while (0)

__device__ __forceinline__ uint4 add3(uint4 a, uint4 b, uint4 c) {
  const __nv_bfloat162* x = reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162* y = reinterpret_cast<const __nv_bfloat162*>(&b);
  const __nv_bfloat162* z = reinterpret_cast<const __nv_bfloat162*>(&c);
  uint4 r;
  __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(&r);
#pragma unroll
  for (int i = 0; i < 4; ++i) o[i] = __hadd2(__hadd2(x[i], y[i]), z[i]);
  return r;
}

// n16 16-byte chunks per tensor; each thread takes 4 chunks a stride apart per step.
__global__ void __launch_bounds__(256) stream4(const uint4* __restrict__ q, const uint4* __restrict__ k,
                                               const uint4* __restrict__ v, uint4* __restrict__ o, long n16) {
  const long stride = static_cast<long>(gridDim.x) * blockDim.x;
  for (long base = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x; base < n16; base += 4 * stride) {
    uint4 a[4], b[4], c[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const long i = base + u * stride;
      if (i < n16) a[u] = __ldcs(q + i), b[u] = __ldcs(k + i), c[u] = __ldcs(v + i);
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const long i = base + u * stride;
      if (i < n16) o[i] = add3(a[u], b[u], c[u]);
    }
  }
}

// Per head, as the one-launch forward walks its data (one CTA per (b,h) slice of n16 16-byte
// chunks per tensor, no math): mode 0 "phased": k and v first (all of them: the state needs every
// key), then q read and o written; mode 1 "mixed": q, k, v read and o written chunk by chunk (the
// traffic of stream4, per head instead of across the whole tensor); mode 2: phased, each head's
// walk starting at a rotation bh * n16 / BH of its slice.
__global__ void __launch_bounds__(512) headwise(const uint4* __restrict__ q, const uint4* __restrict__ k,
                                               const uint4* __restrict__ v, uint4* __restrict__ o, long n16, int mode) {
  const long h0 = static_cast<long>(blockIdx.x) * n16;
  const long rot = mode == 2 ? blockIdx.x * n16 / gridDim.x / 2048 * 2048 : 0;
  const int tid = threadIdx.x;
  auto at = [&](long i) { const long r = i + rot; return h0 + (r < n16 ? r : r - n16); };
  if (mode == 1) {
    for (long base = tid; base < n16; base += 4 * 512) {
      uint4 a[4], b[4], c[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const long i = base + u * 512;
        if (i < n16) a[u] = __ldcs(q + at(i)), b[u] = __ldcs(k + at(i)), c[u] = __ldcs(v + at(i));
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const long i = base + u * 512;
        if (i < n16) o[at(i)] = add3(a[u], b[u], c[u]);
      }
    }
    return;
  }
  uint4 acc = make_uint4(0, 0, 0, 0);
  for (long base = tid; base < n16; base += 4 * 512) {  // phase 1: k, v
    uint4 b[4], c[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const long i = base + u * 512;
      if (i < n16) b[u] = __ldcs(k + at(i)), c[u] = __ldcs(v + at(i));
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      if (base + u * 512 < n16) acc.x ^= b[u].x ^ c[u].y, acc.y ^= b[u].y ^ c[u].z, acc.z ^= b[u].z ^ c[u].w, acc.w ^= b[u].w ^ c[u].x;
    }
  }
  __syncthreads();
  acc.x &= 0x00010001u, acc.y = acc.z = acc.w = 0;  // a dependence on phase 1, nearly no change
  for (long base = tid; base < n16; base += 4 * 512) {  // phase 2: q -> o
    uint4 a[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const long i = base + u * 512;
      if (i < n16) a[u] = __ldcs(q + at(i));
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const long i = base + u * 512;
      if (i < n16) o[at(i)] = make_uint4(a[u].x ^ acc.x, a[u].y, a[u].z, a[u].w);
    }
  }
}

template <class F>
double median_ms(F&& run, void* flush, size_t flush_bytes, int reps) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) run();
  CK(cudaDeviceSynchronize());
  std::vector<float> ms;
  for (int r = 0; r < reps; ++r) {
    if (flush) CK(cudaMemsetAsync(flush, (r + 1) & 0xff, flush_bytes));
    CK(cudaEventRecord(e0));
    run();
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    CK(cudaGetLastError());
    float t = 0;
    CK(cudaEventElapsedTime(&t, e0, e1));
    ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int main() {
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  const size_t flush_bytes = static_cast<size_t>(prop.l2CacheSize) * 2;
  void* flush = nullptr;
  CK(cudaMalloc(&flush, flush_bytes));
  // The copy bandwidth, as gpu_copy_bandwidth_gbps(): 1 GiB each way, no flush, median of 10.
  const size_t gib = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  CK(cudaMalloc(&a, gib));
  CK(cudaMalloc(&b, gib));
  CK(cudaMemset(a, 1, gib));
  const double copy_ms = median_ms([&] { CK(cudaMemcpyAsync(b, a, gib, cudaMemcpyDeviceToDevice)); }, nullptr, 0, 10);
  const double bw = 2.0 * gib / (copy_ms * 1e-3);  // bytes/s, read + written
  CK(cudaFree(a));
  CK(cudaFree(b));
  std::printf("%s, %d SMs, L2 %d B; copy bandwidth %.1f GB/s (1 GiB each way, %.4f ms)\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize, bw / 1e9, copy_ms);
  std::printf("| T | bytes MB | floor ms | memcpy ms | memcpy x floor | stream4 ms | stream4 x floor | headwise phased | mixed | phased rotated | phased, 200 KB smem (x floor) |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (long T : {1024L, 4096L, 8192L, 16384L}) {
    const size_t tb = size_t{8} * 16 * T * 64 * 2;  // one [8,16,T,64] bf16 tensor
    const double bytes = 4.0 * tb, floor_ms = bytes / bw * 1e3;
    char *q, *k, *v, *o;
    CK(cudaMalloc(&q, tb));
    CK(cudaMalloc(&k, tb));
    CK(cudaMalloc(&v, tb));
    CK(cudaMalloc(&o, tb));
    CK(cudaMemset(q, 0x3c, tb));
    CK(cudaMemset(k, 0x3d, tb));
    CK(cudaMemset(v, 0x3e, tb));
    char *src, *dst;  // memcpy: 2 tensors read, 2 written
    CK(cudaMalloc(&src, 2 * tb));
    CK(cudaMalloc(&dst, 2 * tb));
    CK(cudaMemset(src, 0x3c, 2 * tb));
    const double mc = median_ms([&] { CK(cudaMemcpyAsync(dst, src, 2 * tb, cudaMemcpyDeviceToDevice)); }, flush, flush_bytes, 50);
    double best = 1e30;
    for (int blocks_per_sm : {2, 4, 8}) {
      const int grid = prop.multiProcessorCount * blocks_per_sm;
      const double t = median_ms(
          [&] {
            stream4<<<grid, 256>>>(reinterpret_cast<const uint4*>(q), reinterpret_cast<const uint4*>(k),
                                   reinterpret_cast<const uint4*>(v), reinterpret_cast<uint4*>(o), static_cast<long>(tb / 16));
          },
          flush, flush_bytes, 50);
      best = std::min(best, t);
    }
    double hw[4];
    CK(cudaFuncSetAttribute(headwise, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
    for (int mode = 0; mode < 4; ++mode) {  // mode 3: mode 0 with 200 KB of (unused) shared memory
      hw[mode] = median_ms(
          [&] {
            headwise<<<8 * 16, 512, mode == 3 ? 200 * 1024 : 0>>>(reinterpret_cast<const uint4*>(q), reinterpret_cast<const uint4*>(k),
                                      reinterpret_cast<const uint4*>(v), reinterpret_cast<uint4*>(o), static_cast<long>(tb / 16 / 128), mode % 3);
          },
          flush, flush_bytes, 50);
    }
    std::printf("| %ld | %.1f | %.4f | %.4f | %.2f | %.4f | %.2f | %.4f (%.2f) | %.4f (%.2f) | %.4f (%.2f) | %.4f (%.2f) |\n", T, bytes / 1e6, floor_ms, mc,
                mc / floor_ms, best, best / floor_ms, hw[0], hw[0] / floor_ms, hw[1], hw[1] / floor_ms, hw[2], hw[2] / floor_ms,
                hw[3], hw[3] / floor_ms);
    CK(cudaFree(q));
    CK(cudaFree(k));
    CK(cudaFree(v));
    CK(cudaFree(o));
    CK(cudaFree(src));
    CK(cudaFree(dst));
  }
  return 0;
}
