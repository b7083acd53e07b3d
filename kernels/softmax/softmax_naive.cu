// softmax, naive CUDA: the softmax-family naive kernels with the dot-product score
//   s_ij = scale q_i . k_j,  ds/dq_i = scale k_j,  ds/dk_j = scale q_i.
#include "softmax_family_naive_launch.cuh"
#include "softmax_kernels.h"

namespace attnbench::kernels {
namespace {

using naive::FamilyAccess;

template <class T, int S>
struct DotScore {
  const T *q, *k;
  T *dq, *dk;
  int H, Hkv, Tq, Tk, Dk;
  float scale;
  float row[S];   // q_i (query side) or k_j (key side)
  float grad[S];  // dq_i or dk_j accumulator

  __device__ const T* q_row(int b, int h, int i) const { return q + ((int64_t(b) * H + h) * Tq + i) * Dk; }
  __device__ const T* k_row(int b, int hk, int j) const { return k + ((int64_t(b) * Hkv + hk) * Tk + j) * Dk; }

  __device__ void load_query(int b, int h, int i, int lane) {
    load_row<S>(q_row(b, h, i), Dk, lane, row);
#pragma unroll
    for (int t = 0; t < S; ++t) grad[t] = 0.0f;
  }
  __device__ float score(int b, int hk, int, int j, int lane) const {
    return scale * dot_row<S>(row, k_row(b, hk, j), Dk, lane);
  }
  __device__ void add_query_grad(float ds, int b, int hk, int, int j, int lane) {
    axpy_row<S>(grad, ds, k_row(b, hk, j), Dk, lane);
  }
  __device__ void store_query_grads(int b, int h, int i, int lane) const {
    store_row<S>(dq + ((int64_t(b) * H + h) * Tq + i) * Dk, Dk, lane, grad, scale);
  }

  __device__ void load_key(int b, int hk, int j, int lane) {
    load_row<S>(k_row(b, hk, j), Dk, lane, row);
#pragma unroll
    for (int t = 0; t < S; ++t) grad[t] = 0.0f;
  }
  __device__ float key_score(int b, int h, int i, int, int lane) const {
    return scale * dot_row<S>(row, q_row(b, h, i), Dk, lane);
  }
  __device__ void add_key_grad(float ds, int b, int h, int i, int, int lane) {
    axpy_row<S>(grad, ds, q_row(b, h, i), Dk, lane);
  }
  __device__ void store_key_grads(int b, int hk, int j, int lane) const {
    store_row<S>(dk + ((int64_t(b) * Hkv + hk) * Tk + j) * Dk, Dk, lane, grad, scale);
  }
};

struct MakeDotScore {
  template <class T, int S>
  DotScore<T, S> operator()(FamilyAccess& a) const {
    const Problem& p = *a.p;
    DotScore<T, S> s{};
    s.q = a.in("q").template as<T>();
    s.k = a.in("k").template as<T>();
    if (a.pass == Pass::bwd) {
      s.dq = a.out("dq").template as<T>();
      s.dk = a.out("dk").template as<T>();
    }
    s.H = static_cast<int>(p.H), s.Hkv = static_cast<int>(p.Hkv);
    s.Tq = static_cast<int>(p.Tq), s.Tk = static_cast<int>(p.Tk), s.Dk = static_cast<int>(p.Dk);
    s.scale = static_cast<float>(p.scale());
    return s;
  }
};

}  // namespace

void register_softmax_naive(Registry& r) {
  Impl impl;
  impl.algo = "softmax";
  impl.name = "naive";
  impl.device = Device::cuda;
  impl.summary = "plain CUDA, warp per row, fp32 accumulate; fp32/fp16/bf16; Dk, Dv <= 256; any Tq, Tk; GQA";
  impl.supports = [](const Problem& p, Pass, Dtype) { return naive::family_naive_supports(p); };
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in, const PrepareOptions& o) -> std::unique_ptr<Prepared> {
    return std::make_unique<naive::FamilyNaive<MakeDotScore>>(p, pass, dt, in, o.same_precision, MakeDotScore{});
  };
  r.add(impl);
}

}  // namespace attnbench::kernels
