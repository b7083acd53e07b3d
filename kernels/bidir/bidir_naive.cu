// bidir, naive CUDA: the oracle kernels. Plain CUDA (no tensor cores), fp32 accumulation, one
// warp per row, fp32 scratch of O(T) size (never T x T).
//
// Notation (one (b,h) slice): Q [Tq,Dk], K [Tk,Dk], V [Tk,Dv], dO [Tq,Dv]; phi the feature map.
//   Qf = phi(Q), Kf = phi(K), KV = Kf^T V [Dk,Dv], ksum = sum_j Kf_j, kmean = ksum / Tk.
//   simple: o_i = scale Qf_i KV
//   norm:   z_i = Qf_i . kmean + 1e-6,  o_i = (Qf_i KV / Tk) / z_i
// Backward:
//   simple: dQf = scale dO KV^T,  dKV = scale Qf^T dO
//   norm:   w_i = 1 / (Tk z_i),  dz_i = -(dO_i . o_i) / z_i,
//           dQf_i = w_i (dO KV^T)_i + dz_i kmean,  dKV = Qf^T (w dO),  dkmean = Qf^T dz
//   dKf = V dKV^T (+ dkmean / Tk),  dV = Kf dKV,  dq = phi'(q)^T dQf,  dk = phi'(k)^T dKf.
//
// Kernels, in launch order:
//   feature_map  Xf = phi(X) row by row                          (for Q and K)
//   outer_reduce out = alpha X^T Y [Dk,Dv] and vec = X^T c [Dk]   (KV and ksum; dKV and dkmean)
//   query_rows   o (forward); dq, G = w dO (or dO), dz (backward)
//   key_rows     dk, dv (backward)
//
// Same-precision mode (PrepareOptions::same_precision, the GPU `base` of the numerics rule) rounds
// to the storage dtype exactly where the CPU emulation does (reference/bidir.cpp): Qf, Kf, KV and
// the output (forward); w dO, dKV and the gradients (backward), with the backward's o the rounded
// output. Without it only the stored outputs are rounded.
#include "bidir_common.cuh"
#include "bidir_kernels.h"
#include "cuda_check.h"
#include "device_tensor.h"
#include "storage.cuh"
#include "warp.cuh"

namespace attnbench::kernels {
namespace {

using namespace bidir;

constexpr int kThreads = 128;                 // 4 warps per block, one row per warp
constexpr int kRowsPerBlock = kThreads / kWarpSize;
constexpr int kMaxDim = 256;                  // 8 register slots per lane

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

// phi over one row held in slots (lane l holds d = l + 32 t), in place; D valid entries.
template <int S>
__device__ void phi_row(int fm, float (&x)[S], int D, int lane) {
  if (fm != kFocused) {
#pragma unroll
    for (int t = 0; t < S; ++t) x[t] = phi_elem(fm, x[t]);
    return;
  }
  float y[S], u[S], ny2 = 0.0f, nu2 = 0.0f;
#pragma unroll
  for (int t = 0; t < S; ++t) {
    y[t] = focused_y(x[t], lane + kWarpSize * t < D);
    u[t] = y[t] * y[t] * y[t];
    ny2 += y[t] * y[t];
    nu2 += u[t] * u[t];
  }
  const float r = sqrtf(warp_sum(ny2)) / sqrtf(warp_sum(nu2));
#pragma unroll
  for (int t = 0; t < S; ++t) x[t] = u[t] * r;
}

// g <- phi'(x)^T g over one row (slots as above).
template <int S>
__device__ void dphi_row(int fm, const float (&x)[S], float (&g)[S], int D, int lane) {
  if (fm != kFocused) {
#pragma unroll
    for (int t = 0; t < S; ++t) g[t] = dphi_elem(fm, x[t], g[t]);
    return;
  }
  float ny2 = 0.0f, nu2 = 0.0f, gu = 0.0f;
#pragma unroll
  for (int t = 0; t < S; ++t) {
    const float y = focused_y(x[t], lane + kWarpSize * t < D), u = y * y * y;
    ny2 += y * y;
    nu2 += u * u;
    gu += g[t] * u;
  }
  ny2 = warp_sum(ny2), nu2 = warp_sum(nu2), gu = warp_sum(gu);
  const float r = sqrtf(ny2) / sqrtf(nu2);
#pragma unroll
  for (int t = 0; t < S; ++t) g[t] = focused_dx(x[t], g[t], r, ny2, nu2, gu);
}

template <int S>
__device__ void store_f32_row(float* row, int n, int lane, const float (&r)[S]) {
#pragma unroll
  for (int t = 0; t < S; ++t) {
    const int d = lane + kWarpSize * t;
    if (d < n) row[d] = r[t];
  }
}

// Xf[row] = phi(X[row]) for `rows` rows of D; rounded to T in same-precision mode.
template <class T, int S>
__global__ void __launch_bounds__(kThreads) feature_map(const T* x, float* xf, int64_t rows, int D, int fm, bool sp) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= rows) return;
  float r[S];
  load_row<S>(x + row * D, D, lane, r);
  phi_row<S>(fm, r, D, lane);
  if (sp) {
#pragma unroll
    for (int t = 0; t < S; ++t) r[t] = round_as<T>(r[t]);
  }
  store_f32_row<S>(xf + row * D, D, lane, r);
}

// Per (b,h): out[d][e] = alpha sum_j X[j][d] Y[j][e] (e < Dv), rounded to T in same-precision mode;
// and, when vec is given, vec[d] = sum_j X[j][d] c_j (c_j = 1 without c). Block (d, bh); one thread
// per column e (e == Dv: the vec column), summing j in order.
template <class T, class TY>
__global__ void __launch_bounds__(kThreads) outer_reduce(const float* X, const TY* Y, const float* c, float* out,
                                                         float* vec, int rows, int Dk, int Dv, float alpha, bool sp) {
  const int d = blockIdx.x;
  const int64_t bh = blockIdx.y;
  const float* x = X + bh * rows * Dk + d;
  const TY* y = Y + bh * rows * Dv;
  const float* cc = c ? c + bh * rows : nullptr;
  const int cols = Dv + (vec ? 1 : 0);
  for (int e = threadIdx.x; e < cols; e += blockDim.x) {
    float acc = 0.0f;
    if (e < Dv) {
#pragma unroll 8
      for (int j = 0; j < rows; ++j) acc += x[static_cast<int64_t>(j) * Dk] * to_f32(y[static_cast<int64_t>(j) * Dv + e]);
      acc *= alpha;
      out[(bh * Dk + d) * Dv + e] = sp ? round_as<T>(acc) : acc;
    } else {
#pragma unroll 8
      for (int j = 0; j < rows; ++j) acc += x[static_cast<int64_t>(j) * Dk] * (cc ? cc[j] : 1.0f);
      vec[bh * Dk + d] = acc;
    }
  }
}

struct QueryArgs {
  const float *qf, *kv, *ksum;  // Qf [BH,Tq,Dk], KV [BH,Dk,Dv], ksum [BH,Dk]
  const void *q, *dout;         // q, dO (backward)
  void *o, *dq;                 // o (forward) or dq (backward)
  float *g, *dz;                // backward: G [BH,Tq,Dv], dz [BH,Tq]
  int64_t rows;                 // BH * Tq
  int Tq, Dk, Dv, fm;
  bool norm, sp, backward;
  float scale, inv_tk, tk;
};

// One warp per query row i: acc = Qf_i KV; o_i; in the backward P = dO_i KV^T, dQf_i, dq_i, G_i, dz_i.
template <class T, int S>
__global__ void __launch_bounds__(kThreads) query_rows(const QueryArgs a) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= a.rows) return;
  const int64_t bh = row / a.Tq;
  const float* kv = a.kv + bh * a.Dk * a.Dv;
  float qf[S], acc[S] = {};
  load_row<S>(a.qf + row * a.Dk, a.Dk, lane, qf);
  // acc_e = sum_d Qf_d KV[d][e]: Qf_d broadcast from the lane that holds it.
#pragma unroll
  for (int t = 0; t < S; ++t) {
    for (int src = 0; src < kWarpSize; ++src) {
      const int d = kWarpSize * t + src;
      if (d >= a.Dk) break;
      const float qd = __shfl_sync(0xffffffffu, qf[t], src);
#pragma unroll
      for (int u = 0; u < S; ++u) {
        const int e = lane + kWarpSize * u;
        if (e < a.Dv) acc[u] += qd * kv[d * a.Dv + e];
      }
    }
  }
  float kmean[S], z = 0.0f, o[S];
  if (a.norm) {
    float part = 0.0f;
#pragma unroll
    for (int t = 0; t < S; ++t) {
      const int d = lane + kWarpSize * t;
      kmean[t] = d < a.Dk ? a.ksum[bh * a.Dk + d] * a.inv_tk : 0.0f;
      part += qf[t] * kmean[t];
    }
    z = warp_sum(part) + kNormEps;
  }
#pragma unroll
  for (int u = 0; u < S; ++u) {
    o[u] = a.norm ? (acc[u] * a.inv_tk) / z : acc[u] * a.scale;
    if (a.sp) o[u] = round_as<T>(o[u]);
  }
  if (!a.backward) {
    store_row<S>(static_cast<T*>(a.o) + row * a.Dv, a.Dv, lane, o, 1.0f);
    return;
  }
  float dout[S], p[S] = {};
  load_row<S>(static_cast<const T*>(a.dout) + row * a.Dv, a.Dv, lane, dout);
  // P_d = sum_e dO_e KV[d][e]: dO_e broadcast from the lane that holds it.
#pragma unroll
  for (int t = 0; t < S; ++t) {
    for (int src = 0; src < kWarpSize; ++src) {
      const int e = kWarpSize * t + src;
      if (e >= a.Dv) break;
      const float de = __shfl_sync(0xffffffffu, dout[t], src);
#pragma unroll
      for (int u = 0; u < S; ++u) {
        const int d = lane + kWarpSize * u;
        if (d < a.Dk) p[u] += de * kv[d * a.Dv + e];
      }
    }
  }
  float g[S], dz = 0.0f;
  if (a.norm) {
    const float w = 1.0f / (a.tk * z);
    float part = 0.0f;
#pragma unroll
    for (int u = 0; u < S; ++u) part += (lane + kWarpSize * u < a.Dv) ? dout[u] * o[u] : 0.0f;
    dz = -warp_sum(part) / z;
#pragma unroll
    for (int u = 0; u < S; ++u) {
      p[u] = w * p[u] + dz * kmean[u];                         // dQf
      g[u] = a.sp ? round_as<T>(dout[u] * w) : dout[u] * w;    // G = w dO, an MMA operand
    }
  } else {
#pragma unroll
    for (int u = 0; u < S; ++u) {
      p[u] *= a.scale;  // dQf
      g[u] = dout[u];   // G = dO; the scale goes on dKV
    }
  }
  store_f32_row<S>(a.g + row * a.Dv, a.Dv, lane, g);
  if (lane == 0) a.dz[row] = dz;
  float x[S];
  load_row<S>(static_cast<const T*>(a.q) + row * a.Dk, a.Dk, lane, x);
  dphi_row<S>(a.fm, x, p, a.Dk, lane);
  store_row<S>(static_cast<T*>(a.dq) + row * a.Dk, a.Dk, lane, p, 1.0f);
}

struct KeyArgs {
  const float *kf, *dkv, *dkmean;  // Kf [BH,Tk,Dk], dKV [BH,Dk,Dv], dkmean [BH,Dk] (norm)
  const void *k, *v;
  void *dk, *dv;
  int64_t rows;                    // BH * Tk
  int Tk, Dk, Dv, fm;
  bool norm;
  float tk;
};

// One warp per key row j: dKf_j = V_j dKV^T (+ dkmean / Tk), dV_j = Kf_j dKV, dk_j = phi'(k_j)^T dKf_j.
template <class T, int S>
__global__ void __launch_bounds__(kThreads) key_rows(const KeyArgs a) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= a.rows) return;
  const int64_t bh = row / a.Tk;
  const float* dkv = a.dkv + bh * a.Dk * a.Dv;
  float kf[S], v[S], dkf[S] = {}, dv[S] = {};
  load_row<S>(a.kf + row * a.Dk, a.Dk, lane, kf);
  load_row<S>(static_cast<const T*>(a.v) + row * a.Dv, a.Dv, lane, v);
#pragma unroll
  for (int t = 0; t < S; ++t) {
    for (int src = 0; src < kWarpSize; ++src) {  // dKf_d += V_e dKV[d][e]
      const int e = kWarpSize * t + src;
      if (e >= a.Dv) break;
      const float ve = __shfl_sync(0xffffffffu, v[t], src);
#pragma unroll
      for (int u = 0; u < S; ++u) {
        const int d = lane + kWarpSize * u;
        if (d < a.Dk) dkf[u] += ve * dkv[d * a.Dv + e];
      }
    }
    for (int src = 0; src < kWarpSize; ++src) {  // dV_e += Kf_d dKV[d][e]
      const int d = kWarpSize * t + src;
      if (d >= a.Dk) break;
      const float kd = __shfl_sync(0xffffffffu, kf[t], src);
#pragma unroll
      for (int u = 0; u < S; ++u) {
        const int e = lane + kWarpSize * u;
        if (e < a.Dv) dv[u] += kd * dkv[d * a.Dv + e];
      }
    }
  }
  if (a.norm) {
#pragma unroll
    for (int u = 0; u < S; ++u) {
      const int d = lane + kWarpSize * u;
      if (d < a.Dk) dkf[u] += a.dkmean[bh * a.Dk + d] / a.tk;
    }
  }
  float x[S];
  load_row<S>(static_cast<const T*>(a.k) + row * a.Dk, a.Dk, lane, x);
  dphi_row<S>(a.fm, x, dkf, a.Dk, lane);
  store_row<S>(static_cast<T*>(a.dk) + row * a.Dk, a.Dk, lane, dkf, 1.0f);
  store_row<S>(static_cast<T*>(a.dv) + row * a.Dv, a.Dv, lane, dv, 1.0f);
}

class NaiveBidir : public CudaPrepared {
 public:
  NaiveBidir(const Problem& p, Pass pass, Dtype dt, const Tensors& in, bool sp) : CudaPrepared(p, pass, dt, in), sp_(sp) {
    const int64_t BH = p.B * p.H;
    scratch("qf", {BH, p.Tq, p.Dk}, Dtype::f32);
    scratch("kf", {BH, p.Tk, p.Dk}, Dtype::f32);
    scratch("kv", {BH, p.Dk, p.Dv}, Dtype::f32);
    scratch("ksum", {BH, p.Dk}, Dtype::f32);
    if (pass == Pass::bwd) {
      scratch("g", {BH, p.Tq, p.Dv}, Dtype::f32);
      scratch("dz", {BH, p.Tq}, Dtype::f32);
      scratch("dkv", {BH, p.Dk, p.Dv}, Dtype::f32);
      scratch("dkmean", {BH, p.Dk}, Dtype::f32);
    }
  }

  void run() override {
    ATTNBENCH_DISPATCH_DTYPE(dt_, T, {
      ATTNBENCH_DISPATCH_SLOTS(std::max(p_.Dk, p_.Dv), S, { run_typed<T, S>(); });
    });
  }

 private:
  template <class T, int S>
  void run_typed() {
    const Problem& p = p_;
    const int64_t BH = p.B * p.H;
    const int fm = feature_map_id(p.params.feature_map);
    const bool norm = p.variant == "norm", bwd = pass_ == Pass::bwd;
    const float scale = static_cast<float>(p.scale()), tk = static_cast<float>(p.Tk), inv_tk = 1.0f / tk;
    const int Tq = static_cast<int>(p.Tq), Tk = static_cast<int>(p.Tk), Dk = static_cast<int>(p.Dk), Dv = static_cast<int>(p.Dv);
    float* qf = scratch("qf").as<float>();
    float* kf = scratch("kf").as<float>();
    float* kv = scratch("kv").as<float>();
    float* ksum = scratch("ksum").as<float>();

    feature_map<T, S><<<row_blocks(BH * Tq), kThreads, 0, stream_>>>(in("q").as<T>(), qf, BH * Tq, Dk, fm, sp_);
    CUDA_CHECK_LAUNCH("bidir naive feature_map(q)");
    feature_map<T, S><<<row_blocks(BH * Tk), kThreads, 0, stream_>>>(in("k").as<T>(), kf, BH * Tk, Dk, fm, sp_);
    CUDA_CHECK_LAUNCH("bidir naive feature_map(k)");
    outer_reduce<T, T><<<dim3(Dk, BH), kThreads, 0, stream_>>>(kf, in("v").as<T>(), nullptr, kv, norm ? ksum : nullptr,
                                                              Tk, Dk, Dv, 1.0f, sp_);
    CUDA_CHECK_LAUNCH("bidir naive outer_reduce(KV)");

    QueryArgs qa{};
    qa.qf = qf, qa.kv = kv, qa.ksum = ksum, qa.q = in("q").buf.get();
    qa.rows = BH * Tq, qa.Tq = Tq, qa.Dk = Dk, qa.Dv = Dv, qa.fm = fm;
    qa.norm = norm, qa.sp = sp_, qa.backward = bwd;
    qa.scale = scale, qa.inv_tk = inv_tk, qa.tk = tk;
    if (!bwd) {
      qa.o = out("o").buf.get();
      query_rows<T, S><<<row_blocks(BH * Tq), kThreads, 0, stream_>>>(qa);
      CUDA_CHECK_LAUNCH("bidir naive query_rows(fwd)");
      return;
    }
    float* g = scratch("g").as<float>();
    float* dz = scratch("dz").as<float>();
    float* dkv = scratch("dkv").as<float>();
    float* dkmean = scratch("dkmean").as<float>();
    qa.dout = in("do").buf.get(), qa.dq = out("dq").buf.get(), qa.g = g, qa.dz = dz;
    query_rows<T, S><<<row_blocks(BH * Tq), kThreads, 0, stream_>>>(qa);
    CUDA_CHECK_LAUNCH("bidir naive query_rows(bwd)");
    outer_reduce<T, float><<<dim3(Dk, BH), kThreads, 0, stream_>>>(qf, g, dz, dkv, norm ? dkmean : nullptr, Tq, Dk, Dv,
                                                                  norm ? 1.0f : scale, sp_);
    CUDA_CHECK_LAUNCH("bidir naive outer_reduce(dKV)");
    KeyArgs ka{};
    ka.kf = kf, ka.dkv = dkv, ka.dkmean = dkmean, ka.k = in("k").buf.get(), ka.v = in("v").buf.get();
    ka.dk = out("dk").buf.get(), ka.dv = out("dv").buf.get();
    ka.rows = BH * Tk, ka.Tk = Tk, ka.Dk = Dk, ka.Dv = Dv, ka.fm = fm, ka.norm = norm, ka.tk = tk;
    key_rows<T, S><<<row_blocks(BH * Tk), kThreads, 0, stream_>>>(ka);
    CUDA_CHECK_LAUNCH("bidir naive key_rows");
  }

  bool sp_;
};

}  // namespace

void register_bidir_naive(Registry& r) {
  Impl impl;
  impl.algo = "bidir";
  impl.name = "naive";
  impl.device = Device::cuda;
  impl.summary = "plain CUDA, warp per row, fp32 accumulate, O(T) scratch; fp32/fp16/bf16; Dk, Dv <= 256; any Tq, Tk; "
                 "every feature map";
  impl.supports = [](const Problem& p, Pass, Dtype) {
    if (p.Dk > kMaxDim || p.Dv > kMaxDim) {
      return Support::no("naive: Dk and Dv must be <= 256 (got Dk=" + std::to_string(p.Dk) + ", Dv=" + std::to_string(p.Dv) + ")");
    }
    if (p.Tq > INT32_MAX || p.Tk > INT32_MAX) return Support::no("naive: Tq and Tk must be < 2^31");
    if (p.B * p.H > 65535) return Support::no("naive: B*H must be <= 65535 (one grid row per head)");
    return Support::yes();
  };
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in, const PrepareOptions& o) -> std::unique_ptr<Prepared> {
    return std::make_unique<NaiveBidir>(p, pass, dt, in, o.same_precision);
  };
  r.add(impl);
}

}  // namespace attnbench::kernels
