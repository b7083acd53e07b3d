// Host side of the tiled softmax-family kernels: what they support, their tile configurations,
// and a Prepared that builds the TMA tensor maps once and launches
//   forward:  [time coordinates q0, k0 (hyperbolic)] -> tiled_forward
//             [-> tiled_lse_pad -> tiled_dkdv<kTotal> (total attention, when asked)]
//   backward: its own forward once, untimed, in the constructor; then per run
//             [q0, k0] -> tiled_lse_pad -> tiled_delta (D_i) -> tiled_dkdv -> tiled_dq
// A family member supplies its score policy through a TiledPolicy<Score> specialization.
#pragma once

#include <cmath>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/gpu.h"
#include "device_tensor.h"
#include "softmax_tiled_bwd.cuh"
#include "softmax_tiled_dq.cuh"
#include "softmax_tiled_fwd.cuh"

namespace attnbench::kernels::tiled {

// Tile configurations (head dim D; NC consumer warpgroups of 64 rows each):
//   forward  BM = 192 query rows, BN = 128 keys, 4 stages (D = 64) or 2 (D = 128)
//   dK/dV    BNK = 128 keys, BMQ = 64 queries per step, 3 stages
//   dQ       BM = 128 query rows, BN = 128 keys per step, 3 stages (D = 64) or 2 (D = 128)
// The hyperbolic forward's variants for ATTNBENCH_HYP_FWD (A/B only, bf16 only; see
// TiledPrepared::hyp_fwd_):
//   FwdS4  session 4's forward: no mid path, q0 from the array of tiled_time_coords_s4;
//   FwdMid the mid path without ratio_tile_fast, q0 from the array of tiled_time_coords;
//   FwdFold Fwd plus the rank-one term folded into Q K^T (kFold, softmax_tiled_fwd.cuh): the
//          default of the ratio-domain forward in bf16 since session 5 round 2 (Fwd: =s5).
template <class T, int D>
struct TiledConfigs {
  using Fwd = FwdConfig<T, D, 3, 128, D == 64 ? 4 : 2>;
  using FwdS4 = FwdConfig<T, D, 3, 128, D == 64 ? 4 : 2, false, false, false>;
  using FwdMid = FwdConfig<T, D, 3, 128, D == 64 ? 4 : 2, true, false, false>;
  using FwdFold = FwdConfig<T, D, 3, 128, D == 64 ? 4 : 2, true, true, true, true>;
  using Dkv = DkvConfig<T, D, 2, 3>;
  using Dq = DqConfig<T, D, 2, 128, D == 64 ? 3 : 2>;
};

struct SlotNames {
  const char *q, *k, *dq, *dk;
};

// Per policy: its slots' tensor names and the device policy object.
template <class Score>
struct TiledPolicy;

template <>
struct TiledPolicy<DotScore> {
  static std::vector<SlotNames> slots() { return {{"q", "k", "dq", "dk"}}; }
  static DotScore make(const Problem& p, const float*, const float*) {
    DotScore s;
    s.scale = static_cast<float>(p.scale());
    s.score_log2 = static_cast<float>(p.scale() * 1.4426950408889634);
    return s;
  }
};

template <>
struct TiledPolicy<PiecewiseScore> {
  static std::vector<SlotNames> slots() { return {{"q1", "k1", "dq1", "dk1"}, {"q2", "k2", "dq2", "dk2"}}; }
  static PiecewiseScore make(const Problem& p, const float*, const float*) {
    PiecewiseScore s;
    s.scale = static_cast<float>(p.scale());
    s.score_log2 = static_cast<float>(p.scale() * 1.4426950408889634);
    s.w = static_cast<int>(p.window());
    return s;
  }
};

template <>
struct TiledPolicy<TaylorScore> {
  static std::vector<SlotNames> slots() { return {{"q", "k", "dq", "dk"}}; }
  static TaylorScore make(const Problem& p, const float*, const float*) {
    TaylorScore s;
    s.scale = static_cast<float>(p.scale());
    s.eps = 1e-6f;  // DESIGN.md: o_i = sum_j a_ij v_j / (sum_j a_ij + 1e-6)
    return s;
  }
};

// beta / sqrt(c) == 1 exactly selects the ratio-domain forward (LorentzScore<true>).
inline bool lorentz_unit(const Problem& p) { return p.params.beta / std::sqrt(p.params.curvature) == 1.0; }

template <bool kUnit>
struct TiledPolicy<LorentzScore<kUnit>> {
  static std::vector<SlotNames> slots() { return {{"q", "k", "dq", "dk"}}; }
  static LorentzScore<kUnit> make(const Problem& p, const float* q0, const float* k0) {
    LorentzScore<kUnit> s;
    s.c = static_cast<float>(p.params.curvature);
    s.neg_coef = static_cast<float>(-p.params.beta / std::sqrt(p.params.curvature));
    s.zmin = static_cast<float>(1.0 + 1e-6);
    s.q0 = q0;
    s.k0 = k0;
    const double c = p.params.curvature, zmin = 1.0 + 1e-6, z_far = 12.0;
    s.inv_c = static_cast<float>(1.0 / c);
    s.inv_c2 = static_cast<float>(1.0 / (c * c));
    s.u_clamp = static_cast<float>(-zmin / c);
    s.y_clamp = static_cast<float>((zmin + std::sqrt(zmin * zmin - 1.0)) / c);
    s.ln_c = static_cast<float>(std::log(c));
    s.u_far = static_cast<float>(-z_far / c);
    s.far_k[0] = static_cast<float>(1.0 / (4 * c * c));
    s.far_k[1] = static_cast<float>(1.0 / (8 * c * c * c * c));
    // The mid path's minimax coefficient on z >= z_mid (softmax_tiled_ratio.cuh).
    const double z_mid = 22.0, kappa = 1.0008567871859424;
    s.u_mid = static_cast<float>(-z_mid / c);
    s.mid_k = static_cast<float>(kappa / (4 * c * c));
    if (!std::isfinite(s.far_k[1]) || !std::isfinite(s.u_far)) {  // c below ~1e-9: the near path only
      s.u_far = s.u_mid = -INFINITY;
      s.far_k[0] = s.far_k[1] = s.mid_k = 0.0f;
    }
    return s;
  }
};

// What every tiled kernel supports, and why not the rest.
inline Support tiled_supports(const Problem& p, Dtype dt) {
  if (dt == Dtype::f32) return Support::no("tiled: fp16/bf16 only (wgmma operands)");
  if (p.Dk != p.Dv) return Support::no("tiled: needs Dk == Dv");
  if (p.Dk != 64 && p.Dk != 128) return Support::no("tiled: head dim 64 or 128 only");
  if (p.causal && p.Tk < p.Tq) return Support::no("tiled: causal needs Tk >= Tq");
  if (!(p.scale() > 0)) return Support::no("tiled: needs scale > 0");
  if (p.B * p.H > 65535) return Support::no("tiled: B*H <= 65535");
  if (p.Tq >= (int64_t{1} << 30) || p.Tk >= (int64_t{1} << 30)) return Support::no("tiled: T < 2^30");
  const GpuInfo& gi = gpu_info();
  if (gi.available && gi.cc_major != 9) return Support::no("tiled: needs a Hopper GPU (sm_90a)");
  return Support::yes();
}

template <class Kernel>
void allow_smem(Kernel kernel, uint32_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

constexpr uint32_t kMaxSmem = 227 * 1024;  // dynamic shared memory per block on sm_90
template <int D>
constexpr uint32_t kDeltaSmem = 2 * 64 * D * 2 + 8 + kSmemSlack;  // tiled_delta: dO and o tiles, a barrier

// Whether the forward of this policy and configuration has the ATTNBENCH_HYP_FWD variants.
template <class Score, class Fw>
constexpr bool kHypAB = Score::kRatio && std::is_same_v<typename Fw::T, __nv_bfloat16>;

template <class Score>
class TiledPrepared final : public CudaPrepared {
 public:
  TiledPrepared(const Problem& p, Pass pass, Dtype dt, const Tensors& inputs) : CudaPrepared(p, pass, dt, inputs) {
    TqP_ = round_up(p.Tq, 128), TkP_ = round_up(p.Tk, 128);
    scratch("lse_pad", {p.B * p.H * TqP_}, Dtype::f32);
    scratch("dvec", {p.B * p.H * TqP_}, Dtype::f32);
    if (Score::kLorentz) {
      scratch("q0", {p.B * p.H * TqP_}, Dtype::f32);
      scratch("k0", {p.B * p.Hkv * TkP_}, Dtype::f32);
      if (fold()) scratch("kx", {p.B * p.Hkv * TkP_ * 8}, Dtype::f32);  // 32 bytes per key
    }
    if (pass == Pass::bwd || !has_out("lse")) scratch("lse", {p.B, p.H, p.Tq}, Dtype::f32);
    if (pass == Pass::bwd) scratch("o", {p.B, p.H, p.Tq, p.Dv}, dt);
    dispatch([&](auto cfgs) { prepare_args(cfgs); });  // tensor maps and kernel attributes, once
    if (pass == Pass::bwd) {
      forward();  // the backward's o and lse, untimed
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }

  void run() override {
    if (pass_ == Pass::fwd) forward();
    else backward();
  }

 private:
  template <class F>
  void dispatch(F&& f) {
    if (dt_ == Dtype::bf16) {
      if (p_.Dk == 64) f(TiledConfigs<__nv_bfloat16, 64>{});
      else f(TiledConfigs<__nv_bfloat16, 128>{});
    } else {
      if (p_.Dk == 64) f(TiledConfigs<__half, 64>{});
      else f(TiledConfigs<__half, 128>{});
    }
  }

  CUtensorMap map(const std::string& name, int64_t T, int64_t BH, int box_rows) const {
    return hopper::make_tile_map(in(name).buf.get(), dt_ == Dtype::bf16, p_.Dk, T, BH, box_rows);
  }

  template <class Args>
  void fill_common(Args& a) const {
    a.geo = {static_cast<int>(p_.Tq), static_cast<int>(p_.Tk), static_cast<int>(p_.Tk - p_.Tq), p_.causal};
    a.H = static_cast<int>(p_.H), a.Hkv = static_cast<int>(p_.Hkv);
    a.TqP = static_cast<int>(TqP_), a.TkP = static_cast<int>(TkP_);
  }

  template <class Cfgs>
  void prepare_args(Cfgs) {
    using Fw = typename Cfgs::Fwd;
    using Kv = typename Cfgs::Dkv;
    using Qc = typename Cfgs::Dq;
    const auto slots = TiledPolicy<Score>::slots();
    const float* q0 = Score::kLorentz ? scratch("q0").template as<float>() : nullptr;
    const float* k0 = Score::kLorentz ? scratch("k0").template as<float>() : nullptr;
    Score score = TiledPolicy<Score>::make(p_, q0, k0);
    if constexpr (Score::kLorentz) {
      if (fold()) score.kx = scratch("kx").buf.get();
    }
    const int64_t BH = p_.B * p_.H, BHkv = p_.B * p_.Hkv;

    FwdArgs<Score>& a = fwd_;
    for (std::size_t s = 0; s < slots.size(); ++s) {
      a.q[s] = map(slots[s].q, p_.Tq, BH, Fw::BM);
      a.k[s] = map(slots[s].k, p_.Tk, BHkv, Fw::BN);
    }
    a.v = map("v", p_.Tk, BHkv, Fw::BN);
    a.score = score;
    a.o = (pass_ == Pass::fwd ? out("o") : scratch("o")).buf.get();
    a.lse = ((pass_ == Pass::fwd && has_out("lse")) ? out("lse") : scratch("lse")).template as<float>();
    fill_common(a);
    allow_smem(tiled_forward<Fw, Score>, FwdLayout<Fw, Score>::kBytes);
    if constexpr (kHypAB<Score, Fw>) {
      allow_smem(tiled_forward<typename Cfgs::FwdS4, Score>, FwdLayout<typename Cfgs::FwdS4, Score>::kBytes);
      allow_smem(tiled_forward<typename Cfgs::FwdMid, Score>, FwdLayout<typename Cfgs::FwdMid, Score>::kBytes);
      allow_smem(tiled_forward<typename Cfgs::FwdFold, Score>, FwdLayout<typename Cfgs::FwdFold, Score>::kBytes);
      static_assert(FwdLayout<typename Cfgs::FwdFold, Score>::kBytes <= kMaxSmem, "fold: shared memory");
    }
    static_assert(FwdLayout<Fw, Score>::kBytes <= kMaxSmem && DkvLayout<Kv, Score>::kBytes <= kMaxSmem &&
                      DqLayout<Qc, Score>::kBytes <= kMaxSmem,
                  "tile configuration exceeds shared memory");

    // The dK/dV kernel serves the backward, and the total-attention pass of a forward.
    DkvArgs<Score>& kv = dkv_;
    if (pass_ == Pass::fwd && !has_out("total")) return;
    for (std::size_t s = 0; s < slots.size(); ++s) {
      kv.q[s] = map(slots[s].q, p_.Tq, BH, Kv::BMQ);
      kv.k[s] = map(slots[s].k, p_.Tk, BHkv, Kv::BNK);
    }
    kv.v = map("v", p_.Tk, BHkv, Kv::BNK);
    kv.score = score;
    kv.lse = scratch("lse_pad").template as<float>();
    kv.dvec = scratch("dvec").template as<float>();
    fill_common(kv);
    if (pass_ == Pass::fwd) {
      kv.total = out("total").template as<float>();
      allow_smem(tiled_dkdv<Kv, Score, true>, DkvLayout<Kv, Score>::kBytes);
      return;
    }
    kv.dout = map("do", p_.Tq, BH, Kv::BMQ);
    delta_o_ = hopper::make_tile_map(scratch("o").buf.get(), dt_ == Dtype::bf16, p_.Dk, p_.Tq, BH, 64);
    allow_smem(tiled_delta<typename Kv::T, Kv::D>, kDeltaSmem<Kv::D>);
    kv.dv = out("dv").buf.get();
    for (std::size_t s = 0; s < slots.size(); ++s) kv.dk[s] = out(slots[s].dk).buf.get();
    allow_smem(tiled_dkdv<Kv, Score, false>, DkvLayout<Kv, Score>::kBytes);

    DqArgs<Score>& dq = dq_;
    for (std::size_t s = 0; s < slots.size(); ++s) {
      dq.q[s] = map(slots[s].q, p_.Tq, BH, Qc::BM);
      dq.k[s] = map(slots[s].k, p_.Tk, BHkv, Qc::BN);
      dq.dq[s] = out(slots[s].dq).buf.get();
    }
    dq.v = map("v", p_.Tk, BHkv, Qc::BN);
    dq.dout = map("do", p_.Tq, BH, Qc::BM);
    dq.score = score;
    dq.lse = kv.lse;
    dq.dvec = kv.dvec;
    fill_common(dq);
    allow_smem(tiled_dq<Qc, Score>, DqLayout<Qc, Score>::kBytes);
  }

  // q0 = sqrt(1/c + |q|^2) (with_q: the forward computes it from its Q tile otherwise), k0 likewise
  // (hyperbolic only).
  template <class T, int D>
  void time_coordinates(bool with_q) {
    if constexpr (Score::kLorentz) {
      const float inv_c = static_cast<float>(1.0 / p_.params.curvature);
      const int64_t qrows = p_.B * p_.H * TqP_, krows = p_.B * p_.Hkv * TkP_;
      if (hyp_fwd_ == HypFwd::s4) {
        tiled_time_coords_s4<T, D><<<static_cast<unsigned>((qrows + 7) / 8), 256, 0, stream_>>>(
            in("q").template as<T>(), scratch("q0").template as<float>(), static_cast<int>(p_.Tq),
            static_cast<int>(TqP_), qrows, inv_c);
        CUDA_CHECK_LAUNCH("tiled_time_coords_s4(q)");
        tiled_time_coords_s4<T, D><<<static_cast<unsigned>((krows + 7) / 8), 256, 0, stream_>>>(
            in("k").template as<T>(), scratch("k0").template as<float>(), static_cast<int>(p_.Tk),
            static_cast<int>(TkP_), krows, inv_c);
        CUDA_CHECK_LAUNCH("tiled_time_coords_s4(k)");
        return;
      }
      if (with_q) {
        tiled_time_coords<T, D><<<static_cast<unsigned>((qrows + 31) / 32), 256, 0, stream_>>>(
            in("q").template as<T>(), scratch("q0").template as<float>(), static_cast<int>(p_.Tq),
            static_cast<int>(TqP_), qrows, inv_c);
        CUDA_CHECK_LAUNCH("tiled_time_coords(q)");
      }
      tiled_time_coords<T, D><<<static_cast<unsigned>((krows + 31) / 32), 256, 0, stream_>>>(
          in("k").template as<T>(), scratch("k0").template as<float>(), static_cast<int>(p_.Tk),
          static_cast<int>(TkP_), krows, inv_c,
          fold() ? static_cast<uint4*>(scratch("kx").buf.get()) : nullptr);
      CUDA_CHECK_LAUNCH("tiled_time_coords(k)");
    }
  }

  void forward() {
    dispatch([&](auto cfgs) {
      using Fw = typename decltype(cfgs)::Fwd;
      const bool total = pass_ == Pass::fwd && has_out("total");  // tiled_dkdv reads the q0 array
      time_coordinates<typename Fw::T, Fw::D>(total || hyp_fwd_ == HypFwd::s4 || hyp_fwd_ == HypFwd::mid);
      const dim3 grid(static_cast<unsigned>((p_.Tq + Fw::BM - 1) / Fw::BM), static_cast<unsigned>(p_.B * p_.H));
      if constexpr (kHypAB<Score, Fw>) {
        using F4 = typename decltype(cfgs)::FwdS4;
        using Fm = typename decltype(cfgs)::FwdMid;
        using Ff = typename decltype(cfgs)::FwdFold;
        if (hyp_fwd_ == HypFwd::fold) {
          tiled_forward<Ff, Score><<<grid, Ff::kThreads, FwdLayout<Ff, Score>::kBytes, stream_>>>(fwd_);
        } else if (hyp_fwd_ == HypFwd::s4) {
          tiled_forward<F4, Score><<<grid, F4::kThreads, FwdLayout<F4, Score>::kBytes, stream_>>>(fwd_);
        } else if (hyp_fwd_ == HypFwd::mid) {
          tiled_forward<Fm, Score><<<grid, Fm::kThreads, FwdLayout<Fm, Score>::kBytes, stream_>>>(fwd_);
        } else {
          tiled_forward<Fw, Score><<<grid, Fw::kThreads, FwdLayout<Fw, Score>::kBytes, stream_>>>(fwd_);
        }
      } else {
        tiled_forward<Fw, Score><<<grid, Fw::kThreads, FwdLayout<Fw, Score>::kBytes, stream_>>>(fwd_);
      }
      CUDA_CHECK_LAUNCH("tiled_forward");
      if (total) {  // A_j = sum_i exp(s_ij - L_i), once L is known
        using Kv = typename decltype(cfgs)::Dkv;
        row_statistics<typename Kv::T, Kv::D>(false);
        const dim3 kv_grid(static_cast<unsigned>((p_.Tk + Kv::BNK - 1) / Kv::BNK),
                           static_cast<unsigned>(p_.B * p_.Hkv));
        tiled_dkdv<Kv, Score, true><<<kv_grid, Kv::kThreads, DkvLayout<Kv, Score>::kBytes, stream_>>>(dkv_);
        CUDA_CHECK_LAUNCH("tiled_dkdv(total)");
      }
    });
  }

  // L_i padded to TqP rows and (with_delta) D_i = dO_i . o_i.
  template <class T, int D>
  void row_statistics(bool with_delta) {
    const int64_t rows = p_.B * p_.H * TqP_;
    const float* lse = ((pass_ == Pass::fwd && has_out("lse")) ? out("lse") : scratch("lse")).template as<float>();
    // the backward of a policy with weight_grad() (based) reads w = exp(-L) (softmax_tiled_scores.cuh)
    auto* pad = tiled_lse_pad<false>;
    if constexpr (has_weight_grad<Score>::value) {
      if (with_delta) pad = tiled_lse_pad<true>;
    }
    pad<<<static_cast<unsigned>((rows + 255) / 256), 256, 0, stream_>>>(
        lse, scratch("lse_pad").template as<float>(), static_cast<int>(p_.Tq), static_cast<int>(TqP_), rows);
    CUDA_CHECK_LAUNCH("tiled_lse_pad");
    if (with_delta) {
      const dim3 grid(static_cast<unsigned>(TqP_ / 64), static_cast<unsigned>(p_.B * p_.H));
      tiled_delta<T, D><<<grid, 128, kDeltaSmem<D>, stream_>>>(dkv_.dout, delta_o_,
                                                               scratch("dvec").template as<float>(),
                                                               static_cast<int>(TqP_));
      CUDA_CHECK_LAUNCH("tiled_delta");
    }
  }

  void backward() {
    dispatch([&](auto cfgs) {
      using Kv = typename decltype(cfgs)::Dkv;
      using Qc = typename decltype(cfgs)::Dq;
      using T = typename Kv::T;
      time_coordinates<T, Kv::D>(true);
      row_statistics<T, Kv::D>(true);
      const dim3 kv_grid(static_cast<unsigned>((p_.Tk + Kv::BNK - 1) / Kv::BNK), static_cast<unsigned>(p_.B * p_.Hkv));
      tiled_dkdv<Kv, Score, false><<<kv_grid, Kv::kThreads, DkvLayout<Kv, Score>::kBytes, stream_>>>(dkv_);
      CUDA_CHECK_LAUNCH("tiled_dkdv");
      const dim3 dq_grid(static_cast<unsigned>((p_.Tq + Qc::BM - 1) / Qc::BM), static_cast<unsigned>(p_.B * p_.H));
      tiled_dq<Qc, Score><<<dq_grid, Qc::kThreads, DqLayout<Qc, Score>::kBytes, stream_>>>(dq_);
      CUDA_CHECK_LAUNCH("tiled_dq");
    });
  }

  int64_t TqP_ = 0, TkP_ = 0;
  // ATTNBENCH_HYP_FWD (read at prepare time; the ratio-domain hyperbolic forward in bf16 only, an
  // A/B switch): fold (default since session 5 round 2) s5 with the rank-one term -q0 k0 inside the
  // Q K^T GEMM (FwdFold); s5: the mid path, ratio_tile_fast (D = 64) and q0 from the Q tile (Fwd,
  // which every other dtype and score runs); mid: the mid path only, q0 from tiled_time_coords;
  // s4: session 4's forward and time coordinates.
  // The backward's time coordinates follow it (s4 or not), so that its q0 has the bits its own
  // forward used. H200 A/B: results/h200-20261121-s5/hyp_README.md.
  enum class HypFwd { s5, mid, s4, fold };
  bool fold() const { return hyp_fwd_ == HypFwd::fold; }
  HypFwd hyp_fwd_ = [this] {
    const char* e = std::getenv("ATTNBENCH_HYP_FWD");
    const std::string v = e ? e : "";
    if (!Score::kRatio || dt_ != Dtype::bf16) return HypFwd::s5;
    if (v.empty() || v == "fold") return HypFwd::fold;
    if (v == "s5") return HypFwd::s5;
    if (v == "mid") return HypFwd::mid;
    if (v == "s4") return HypFwd::s4;
    throw std::invalid_argument("ATTNBENCH_HYP_FWD: expected fold, s5, mid or s4, got '" + v + "'");
  }();
  CUtensorMap delta_o_{};  // o (the forward's output), box 64 rows, for tiled_delta
  FwdArgs<Score> fwd_{};
  DkvArgs<Score> dkv_{};
  DqArgs<Score> dq_{};
};

// One Impl per family member, all sharing the design above.
template <class Score>
Impl make_tiled_impl(const std::string& algo, const std::string& summary) {
  Impl impl;
  impl.algo = algo;
  impl.name = "tiled";
  impl.device = Device::cuda;
  impl.summary = summary;
  impl.supports = [](const Problem& p, Pass, Dtype dt) { return tiled_supports(p, dt); };
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in,
                    const PrepareOptions&) -> std::unique_ptr<Prepared> {
    return std::make_unique<TiledPrepared<Score>>(p, pass, dt, in);
  };
  return impl;
}

// The piecewise and hyperbolic impls, each instantiated in its own file (softmax_tiled_piecewise.cu,
// softmax_tiled_hyperbolic.cu); softmax_tiled.cu registers all three.
Impl tiled_piecewise_impl();
Impl tiled_hyperbolic_impl();

}  // namespace attnbench::kernels::tiled
