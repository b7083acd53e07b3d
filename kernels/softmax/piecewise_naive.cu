// piecewise (NLPE), naive CUDA: the softmax-family naive kernels with a score that selects one
// of two dot products by distance. Query row i, key row j, off = Tk - Tq, dist = i + off - j:
//   s_ij = scale * q2_i.k2_j   if dist >= w   (far keys)
//   s_ij = scale * q1_i.k1_j   otherwise      (near keys)
// Backward: the selection is by index, so dS splits: dS2 = dS where dist >= w, dS1 = the rest;
//   dq1 = scale dS1 K1,  dk1 = scale dS1^T Q1,  dq2 = scale dS2 K2,  dk2 = scale dS2^T Q2.
// Same precision as reference/piecewise.cpp: both dot products of dtype inputs accumulated in fp32,
// then scaled; dS rounded to the dtype (by the family kernels) before the gradient sums.
#include <algorithm>

#include "softmax_family_naive_launch.cuh"
#include "softmax_kernels.h"

namespace attnbench::kernels {
namespace {

using naive::FamilyAccess;

template <class T, int S>
struct PiecewiseScore {
  const T *q1, *k1, *q2, *k2;
  T *dq1, *dk1, *dq2, *dk2;
  int H, Hkv, Tq, Tk, Dk;
  int off, w;   // dist = i + off - j; far iff dist >= w
  float scale;
  float row1[S], row2[S];    // q1_i, q2_i (query side) or k1_j, k2_j (key side)
  float grad1[S], grad2[S];  // dq1_i, dq2_i or dk1_j, dk2_j accumulators

  __device__ bool far(int i, int j) const { return i + off - j >= w; }
  __device__ int64_t q_off(int b, int h, int i) const { return ((int64_t(b) * H + h) * Tq + i) * Dk; }
  __device__ int64_t k_off(int b, int hk, int j) const { return ((int64_t(b) * Hkv + hk) * Tk + j) * Dk; }

  __device__ void clear_grads() {
#pragma unroll
    for (int t = 0; t < S; ++t) grad1[t] = grad2[t] = 0.0f;
  }

  // Query side: rows q1_i, q2_i in registers; keys read from memory.
  __device__ void load_query(int b, int h, int i, int lane) {
    load_row<S>(q1 + q_off(b, h, i), Dk, lane, row1);
    load_row<S>(q2 + q_off(b, h, i), Dk, lane, row2);
    clear_grads();
  }
  __device__ float score(int b, int hk, int i, int j, int lane) const {
    return far(i, j) ? scale * dot_row<S>(row2, k2 + k_off(b, hk, j), Dk, lane)
                     : scale * dot_row<S>(row1, k1 + k_off(b, hk, j), Dk, lane);
  }
  __device__ void add_query_grad(float ds, int b, int hk, int i, int j, int lane) {
    if (far(i, j)) axpy_row<S>(grad2, ds, k2 + k_off(b, hk, j), Dk, lane);
    else axpy_row<S>(grad1, ds, k1 + k_off(b, hk, j), Dk, lane);
  }
  __device__ void store_query_grads(int b, int h, int i, int lane) const {
    store_row<S>(dq1 + q_off(b, h, i), Dk, lane, grad1, scale);
    store_row<S>(dq2 + q_off(b, h, i), Dk, lane, grad2, scale);
  }

  // Key side: rows k1_j, k2_j in registers; queries read from memory.
  __device__ void load_key(int b, int hk, int j, int lane) {
    load_row<S>(k1 + k_off(b, hk, j), Dk, lane, row1);
    load_row<S>(k2 + k_off(b, hk, j), Dk, lane, row2);
    clear_grads();
  }
  __device__ float key_score(int b, int h, int i, int j, int lane) const {
    return far(i, j) ? scale * dot_row<S>(row2, q2 + q_off(b, h, i), Dk, lane)
                     : scale * dot_row<S>(row1, q1 + q_off(b, h, i), Dk, lane);
  }
  __device__ void add_key_grad(float ds, int b, int h, int i, int j, int lane) {
    if (far(i, j)) axpy_row<S>(grad2, ds, q2 + q_off(b, h, i), Dk, lane);
    else axpy_row<S>(grad1, ds, q1 + q_off(b, h, i), Dk, lane);
  }
  __device__ void store_key_grads(int b, int hk, int j, int lane) const {
    store_row<S>(dk1 + k_off(b, hk, j), Dk, lane, grad1, scale);
    store_row<S>(dk2 + k_off(b, hk, j), Dk, lane, grad2, scale);
  }
};

struct MakePiecewiseScore {
  template <class T, int S>
  PiecewiseScore<T, S> operator()(FamilyAccess& a) const {
    const Problem& p = *a.p;
    PiecewiseScore<T, S> s{};
    s.q1 = a.in("q1").template as<T>();
    s.k1 = a.in("k1").template as<T>();
    s.q2 = a.in("q2").template as<T>();
    s.k2 = a.in("k2").template as<T>();
    if (a.pass == Pass::bwd) {
      s.dq1 = a.out("dq1").template as<T>();
      s.dk1 = a.out("dk1").template as<T>();
      s.dq2 = a.out("dq2").template as<T>();
      s.dk2 = a.out("dk2").template as<T>();
    }
    s.H = static_cast<int>(p.H), s.Hkv = static_cast<int>(p.Hkv);
    s.Tq = static_cast<int>(p.Tq), s.Tk = static_cast<int>(p.Tk), s.Dk = static_cast<int>(p.Dk);
    s.off = static_cast<int>(p.off());
    // dist lies in (-Tk, Tq + off]; any w beyond 2^31 - 1 selects the same (near) branch everywhere.
    s.w = static_cast<int>(std::min<int64_t>(p.window(), INT32_MAX));
    s.scale = static_cast<float>(p.scale());
    return s;
  }
};

}  // namespace

void register_piecewise_naive(Registry& r) {
  Impl impl;
  impl.algo = "piecewise";
  impl.name = "naive";
  impl.device = Device::cuda;
  impl.summary = "plain CUDA, warp per row, fp32 accumulate; fp32/fp16/bf16; Dk, Dv <= 256; any Tq, Tk, w; GQA";
  impl.supports = [](const Problem& p, Pass, Dtype) { return naive::family_naive_supports(p); };
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in, const PrepareOptions& o) -> std::unique_ptr<Prepared> {
    return std::make_unique<naive::FamilyNaive<MakePiecewiseScore>>(p, pass, dt, in, o.same_precision, MakePiecewiseScore{});
  };
  r.add(impl);
}

}  // namespace attnbench::kernels
