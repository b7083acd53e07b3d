// hyperbolic (Lorentz model), naive CUDA: the softmax-family naive kernels with a Lorentz-distance
// score. Curvature c > 0, temperature beta; x is lifted to the hyperboloid by its time coordinate
//   x0 = sqrt(1/c + |x|^2),   <q,k>_L = q.k - q0 k0,
//   z = max(-c <q,k>_L, zmin), zmin = 1 + 1e-6,   s = -(beta / sqrt c) acosh(z).
// Backward, with dZ = dS ds/dz, ds/dz = -(beta / sqrt c) / sqrt(z^2 - 1) where z > zmin, else 0:
//   dq_i = -c ( sum_j dZ_ij k_j - (q_i / q0_i) sum_j dZ_ij k0_j )
//   dk_j = -c ( sum_i dZ_ij q_i - (k_j / k0_j) sum_i dZ_ij q0_i )      (dx0/dx = x / x0)
// sqrt(z^2 - 1) is evaluated as sqrt(z - 1) sqrt(z + 1).
// Same precision as reference/hyperbolic.cpp: q.k of dtype inputs accumulated in fp32; q0, k0 in
// fp32 from the dtype inputs (not rounded), computed once per run by a pre-pass; the rest of the
// score in fp32; in same-precision mode dZ (not dS: the policy declares kRoundsDS) is rounded to
// the dtype before the gradient sums, which accumulate in fp32.
#include <cmath>

#include "softmax_family_naive_launch.cuh"
#include "softmax_kernels.h"

namespace attnbench::kernels {
namespace {

using naive::FamilyAccess;

constexpr double kZMin = 1.0 + 1e-6;  // the clamp on z = -c <q,k>_L (acosh is flat at 1)

// x0 = sqrt(1/c + |x|^2) for each of `rows` rows of length D: one warp per row.
template <class T, int S>
__global__ void __launch_bounds__(naive::kThreads) time_coordinates(const T* x, float* x0, int64_t rows, int D, float inv_c) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t r = int64_t(blockIdx.x) * naive::kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (r >= rows) return;
  float xr[S];
  load_row<S>(x + r * D, D, lane, xr);
  const float sq = dot_row<S>(xr, x + r * D, D, lane);
  if (lane == 0) x0[r] = sqrtf(inv_c + sq);
}

template <class T, int S>
struct LorentzScore {
  static constexpr bool kRoundsDS = true;  // dZ, not dS, is rounded (see the file comment)

  const T *q, *k;
  const float *q0, *k0;  // [B, H, Tq], [B, Hkv, Tk]
  T *dq, *dk;
  int H, Hkv, Tq, Tk, Dk;
  float c, coef, zmin;   // curvature, beta / sqrt(c), clamp
  bool round_dz;         // same-precision mode
  float row[S];          // q_i (query side) or k_j (key side)
  float row0;            // q0_i or k0_j
  float grad[S];         // sum dZ k_j (query side) or sum dZ q_i (key side)
  float grad0;           // sum dZ k0_j or sum dZ q0_i
  float z;               // z of the last scored pair (unclamped)

  __device__ int64_t q_row(int b, int h, int i) const { return (int64_t(b) * H + h) * Tq + i; }
  __device__ int64_t k_row(int b, int hk, int j) const { return (int64_t(b) * Hkv + hk) * Tk + j; }

  // s from the Euclidean dot product and the two time coordinates; remembers z.
  __device__ float lorentz_score(float dot, float x0, float y0) {
    z = -c * (dot - x0 * y0);
    return -coef * acoshf(fmaxf(z, zmin));
  }
  // dZ = dS ds/dz at the remembered z, rounded to T in same-precision mode.
  __device__ float dz(float ds) const {
    const float g = z > zmin ? ds * (-coef / (sqrtf(z - 1.0f) * sqrtf(z + 1.0f))) : 0.0f;
    return round_dz ? round_as<T>(g) : g;
  }
  __device__ void load(const T* x, float x0, int lane) {
    load_row<S>(x, Dk, lane, row);
    row0 = x0;
#pragma unroll
    for (int t = 0; t < S; ++t) grad[t] = 0.0f;
    grad0 = 0.0f;
  }
  // x_grad = -c (grad - (x / x0) grad0)
  __device__ void store(T* out, int lane) const {
    float g[S];
    const float r = grad0 / row0;
#pragma unroll
    for (int t = 0; t < S; ++t) g[t] = grad[t] - row[t] * r;
    store_row<S>(out, Dk, lane, g, -c);
  }

  // Query side: q_i in registers, keys read from memory.
  __device__ void load_query(int b, int h, int i, int lane) {
    const int64_t r = q_row(b, h, i);
    load(q + r * Dk, q0[r], lane);
  }
  __device__ float score(int b, int hk, int, int j, int lane) {
    const int64_t r = k_row(b, hk, j);
    return lorentz_score(dot_row<S>(row, k + r * Dk, Dk, lane), row0, k0[r]);
  }
  __device__ void add_query_grad(float ds, int b, int hk, int, int j, int lane) {
    const int64_t r = k_row(b, hk, j);
    const float g = dz(ds);
    axpy_row<S>(grad, g, k + r * Dk, Dk, lane);
    grad0 += g * k0[r];
  }
  __device__ void store_query_grads(int b, int h, int i, int lane) const { store(dq + q_row(b, h, i) * Dk, lane); }

  // Key side: k_j in registers, queries read from memory.
  __device__ void load_key(int b, int hk, int j, int lane) {
    const int64_t r = k_row(b, hk, j);
    load(k + r * Dk, k0[r], lane);
  }
  __device__ float key_score(int b, int h, int i, int, int lane) {
    const int64_t r = q_row(b, h, i);
    return lorentz_score(dot_row<S>(row, q + r * Dk, Dk, lane), q0[r], row0);
  }
  __device__ void add_key_grad(float ds, int b, int h, int i, int, int lane) {
    const int64_t r = q_row(b, h, i);
    const float g = dz(ds);
    axpy_row<S>(grad, g, q + r * Dk, Dk, lane);
    grad0 += g * q0[r];
  }
  __device__ void store_key_grads(int b, int hk, int j, int lane) const { store(dk + k_row(b, hk, j) * Dk, lane); }
};

struct MakeLorentzScore {
  template <class T, int S>
  LorentzScore<T, S> operator()(FamilyAccess& a) const {
    const Problem& p = *a.p;
    LorentzScore<T, S> s{};
    s.q = a.in("q").template as<T>();
    s.k = a.in("k").template as<T>();
    if (a.pass == Pass::bwd) {
      s.dq = a.out("dq").template as<T>();
      s.dk = a.out("dk").template as<T>();
    }
    s.H = static_cast<int>(p.H), s.Hkv = static_cast<int>(p.Hkv);
    s.Tq = static_cast<int>(p.Tq), s.Tk = static_cast<int>(p.Tk), s.Dk = static_cast<int>(p.Dk);
    s.c = static_cast<float>(p.params.curvature);
    s.coef = static_cast<float>(p.params.beta / std::sqrt(p.params.curvature));
    s.zmin = static_cast<float>(kZMin);
    s.round_dz = a.same_precision;
    // The pre-pass: time coordinates of every query and key row.
    const float inv_c = static_cast<float>(1.0 / p.params.curvature);
    const int64_t q_rows = p.B * p.H * p.Tq, k_rows = p.B * p.Hkv * p.Tk;
    float* q0 = a.workspace("q0", {q_rows}, Dtype::f32).template as<float>();
    float* k0 = a.workspace("k0", {k_rows}, Dtype::f32).template as<float>();
    const auto blocks = [](int64_t rows) { return static_cast<unsigned>((rows + naive::kWarpsPerBlock - 1) / naive::kWarpsPerBlock); };
    time_coordinates<T, S><<<blocks(q_rows), naive::kThreads, 0, a.stream>>>(s.q, q0, q_rows, s.Dk, inv_c);
    CUDA_CHECK_LAUNCH("time_coordinates(q)");
    time_coordinates<T, S><<<blocks(k_rows), naive::kThreads, 0, a.stream>>>(s.k, k0, k_rows, s.Dk, inv_c);
    CUDA_CHECK_LAUNCH("time_coordinates(k)");
    s.q0 = q0;
    s.k0 = k0;
    return s;
  }
};

}  // namespace

void register_hyperbolic_naive(Registry& r) {
  Impl impl;
  impl.algo = "hyperbolic";
  impl.name = "naive";
  impl.device = Device::cuda;
  impl.summary = "plain CUDA, warp per row, fp32 accumulate; fp32/fp16/bf16; Dk, Dv <= 256; any Tq, Tk, c, beta; GQA";
  impl.supports = [](const Problem& p, Pass, Dtype) { return naive::family_naive_supports(p); };
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in, const PrepareOptions& o) -> std::unique_ptr<Prepared> {
    return std::make_unique<naive::FamilyNaive<MakeLorentzScore>>(p, pass, dt, in, o.same_precision, MakeLorentzScore{});
  };
  r.add(impl);
}

}  // namespace attnbench::kernels
