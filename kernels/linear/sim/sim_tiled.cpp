// The tiled linear-family kernels run on the host simulator (lin_sim.h) against the CPU references
// (fp64 `ref` and the same-precision emulation as `base`), by the numerics rule. A development
// check of fragment layouts and indexing without a GPU; build as sim_naive.cpp says.
#include <cstdio>

#include "core/numerics.h"
#include "linear_family_tiled_fused.cuh"
#include "linear_family_tiled_fused_vec.cuh"
#include "linear_family_tiled_fused_vec_wg.cuh"
#include "linear_family_tiled_fused_based.cuh"
#include "linear_family_tiled_fused_based_wg.cuh"
#include "linear_family_tiled_fused_based_wgp.cuh"
#include "linear_family_tiled_fused_based_ws.cuh"
#include "linear_family_tiled_fused_wg.cuh"
#include "linear_family_tiled_fwd.cuh"
#include "linear_family_tiled_quad.cuh"
#include "linear_family_tiled_based_bwd.cuh"
#include "linear_family_tiled_based_ws_dq.cuh"
#include "linear_family_tiled_scan.cuh"
#include "linear_family_tiled_scan_wg.cuh"
#include "linear_family_tiled_gbwd.cuh"
#include "linear_family_tiled_gbwd2.cuh"
#include "sim_util.h"

using namespace attnbench;
using namespace attnbench::kernels::lin_tiled;
using simutil::DevBuf;

bool g_reverse = false;
const float* g_corr = nullptr;  // the rank-one correction of a pass (linear with the normalizer)
int g_corr_form = 0;
float* g_den = nullptr;         // a forward writes den here when set
bool g_fused = true;            // eligible forwards run fused_fwd (as the host does by default)

template <class C>
struct IsFusedBased : std::false_type {};
template <class T, int D, bool S, int W, bool L>
struct IsFusedBased<FusedBasedCfg<T, D, S, W, L>> : std::true_type {};
template <class C>
struct IsBasedWg : std::false_type {};
template <class T, int W, bool O>
struct IsBasedWg<BasedWgCfg<T, W, O>> : std::true_type {};
template <class C>
struct IsBasedWgp : std::false_type {};
template <class T>
struct IsBasedWgp<BasedWgpCfg<T>> : std::true_type {};
template <class C>
struct IsBasedWs : std::false_type {};
template <class T>
struct IsBasedWs<BasedWsCfg<T>> : std::true_type {};
template <class C>
struct IsWg : std::false_type {};
template <class T, Feat F>
struct IsWg<WgCfg<T, F>> : std::true_type {};
bool g_wg = true;           // widths in (64, 128]: fused_wg_fwd (the host's default; "mma": fused_fwd)
bool g_based_split = true;  // based: fused_based_fwd_split (else fused_based_fwd)
int g_based_cols = 32;      // based split: value columns a warp
bool g_based_wgp = false;   // based: fused_based_wgp_fwd (argv[2] "wgp": the host's ATTNBENCH_BASED_FWD=wgp)
bool g_based_wsdq = false;  // based: based_ws_dq for the backward's dq (argv[2] "wsdq": ATTNBENCH_BASED_DQ=ws)
bool g_based_ws = false;    // based: fused_based_ws_fwd (argv[2] "ws": the host's ATTNBENCH_BASED_FWD=ws)
bool g_based_lean = true;   // based split, 32 columns: the lean chunk (argv[2] "nolean": without, ATTNBENCH_BASED_LEAN=0)
bool g_based_wg = false;    // based: fused_based_wg_fwd ("wg", "2", "overlap", "2overlap": the host's
                            // ATTNBENCH_BASED_FWD=wg with ATTNBENCH_BASED_WG unset, 2, overlap, 2overlap)
int g_based_wgv = 0;  // based: fused_based_wg_fwd's variant (ATTNBENCH_BASED_WG): bit 1 "2" two warpgroups, bit 0 "overlap"
bool g_scan_pre = false;    // gated backward: the forward scan by ScanCfg<_, true> (argv[2] "scanpre")
bool g_scan_wg = true;      // gated backward, vector gates at widths in (64, 128]: vec_wg_scan (the
                            // host's default; argv[2] "oldscan" or "scanpre": chunk_scan)

template <class C, bool kBonus, bool kFused = false>
Tensors run_fwd(const Problem& p, const Tensors& in) {
  using T = typename C::T;
  const int BH = int(p.B * p.H), T_ = int(p.Tq);
  DevBuf<T> q(in.at("q")), k(in.at("k")), v(in.at("v")), o(size_t(BH) * T_ * p.Dv);
  DevBuf<float> g(in.count("g") ? in.at("g") : Tensor({1})), u(in.count("u") ? in.at("u") : Tensor({1}));
  EngineParams e{};
  e.q = q.p(), e.k = k.p(), e.v = v.p(), e.o = o.p();
  e.H = int(p.H), e.T = T_, e.Dqk = int(p.Dk), e.Dvv = int(p.Dv);
  if constexpr (!kFused) e.NV = (e.Dvv + C::kBV - 1) / C::kBV;
  e.scale = float(p.scale()), e.eps = float(p.eps());
  e.reverse = g_reverse;
  e.corr = g_corr, e.corr_form = g_corr_form, e.den = g_den;
  e.normalize = (p.algo == "linear" || p.algo == "based") && p.normalize();
  if (p.algo == "gated") {
    const std::string& var = p.variant;
    e.gate = var == "scalar" ? kGateScalar : (var == "vector" || var == "rwkv6") ? kGateVector : kGateFixed;
    e.lightning = var == "lightning";
    e.bonus = var == "rwkv6";
    if (e.gate != kGateFixed) e.g = g.p();
    if (e.bonus) e.u = u.p();
  }
  if constexpr (IsBasedWs<C>::value) {
    sim::launch({1u, unsigned(BH)}, {unsigned(C::kThreads)}, C::kSmemBytes, [&] { fused_based_ws_fwd<C>(e); });
  } else if constexpr (IsBasedWgp<C>::value) {
    sim::launch({1u, unsigned(BH)}, {unsigned(C::kThreads)}, C::kSmemBytes, [&] { fused_based_wgp_fwd<C>(e); });
  } else if constexpr (IsBasedWg<C>::value) {
    const unsigned nv = unsigned((e.Dvv + C::kCols - 1) / C::kCols);
    sim::launch({nv, unsigned(BH)}, {unsigned(C::kThreads)}, C::kSmemBytes, [&] { fused_based_wg_fwd<C>(e); });
  } else if constexpr (IsFusedBased<C>::value) {
    if constexpr (C::kSplit) {
      sim::launch({1u, unsigned(BH)}, {unsigned(C::kThreads)}, C::kSmemBytes, [&] { fused_based_fwd_split<C>(e); });
    } else {
      sim::launch({1u, unsigned(BH)}, {unsigned(C::kThreads)}, C::kSmemBytes, [&] { fused_based_fwd<C>(e); });
    }
  } else if constexpr (IsWg<C>::value) {
    sim::launch({1u, unsigned(BH)}, {unsigned(C::kThreads)}, C::kSmemBytes, [&] { fused_wg_fwd<C>(e); });
  } else if constexpr (kFused) {
    sim::launch({1u, unsigned(BH)}, {unsigned(C::kThreads)}, C::kSmemBytes, [&] { fused_fwd<C>(e); });
  } else {
    sim::launch({unsigned(e.NV), unsigned(BH)}, {kThreads}, C::kSmemBytes, [&] { chunk_fwd<C, kBonus>(e); });
  }
  Tensors out;
  out.emplace("o", o.tensor({p.B, p.H, p.Tq, p.Dv}));
  return out;
}

template <class T>
Tensors dispatch_fwd(const Problem& p, const Tensors& in);

// The fused vector-gate forward (linear_family_tiled_fused_vec.cuh) for a configuration, or its
// wgmma form (linear_family_tiled_fused_vec_wg.cuh) for a WgVecCfg.
template <class C>
Tensors run_vec(const Problem& p, const Tensors& in) {
  using T = typename C::T;
  const int BH = int(p.B * p.H), T_ = int(p.Tq);
  DevBuf<T> q(in.at("q")), k(in.at("k")), v(in.at("v")), o(size_t(BH) * T_ * p.Dv);
  DevBuf<float> g(in.at("g")), u(in.count("u") ? in.at("u") : Tensor({1}));
  EngineParams e{};
  e.q = q.p(), e.k = k.p(), e.v = v.p(), e.o = o.p();
  e.H = int(p.H), e.T = T_, e.Dqk = int(p.Dk), e.Dvv = int(p.Dv);
  e.scale = float(p.scale());
  e.gate = kGateVector, e.g = g.p(), e.bonus = C::kBonus, e.u = u.p();
  if constexpr (C::kSwz) {
    sim::launch({1u, unsigned(BH)}, {unsigned(C::kThreads)}, C::kSmemBytes, [&] { fused_vec_wg_fwd<C>(e); });
  } else {
    sim::launch({1u, unsigned(BH)}, {unsigned(C::kThreads)}, C::kSmemBytes, [&] { fused_vec_fwd<C>(e); });
  }
  Tensors out;
  out.emplace("o", o.tensor({p.B, p.H, p.Tq, p.Dv}));
  return out;
}

// the fused vector forward's variant (ATTNBENCH_LIN_VEC): 3 wg, the default (widths in (64, 128]:
// fused_vec_wg_fwd, else fused_vec_fwd), 0 mma (fused_vec_fwd always), 1 bulk, 2 late
int g_vec = 3;

template <class T, bool kBonus, bool kEarly, bool kBulk>
Tensors run_fused_vec_o(const Problem& p, const Tensors& in) {
  if (p.Dk <= 64) {
    if (p.Dv <= 64) return run_vec<VecCfg<T, kBonus, 64, 64, kEarly, kBulk>>(p, in);
    return run_vec<VecCfg<T, kBonus, 64, 128, kEarly, kBulk>>(p, in);
  }
  if (p.Dv <= 64) return run_vec<VecCfg<T, kBonus, 128, 64, kEarly, kBulk>>(p, in);
  return run_vec<VecCfg<T, kBonus, 128, 128, kEarly, kBulk>>(p, in);
}

template <class T, bool kBonus>
Tensors run_fused_vec(const Problem& p, const Tensors& in) {
  if (g_vec == 3 && p.Dk > 64 && p.Dv > 64) return run_vec<WgVecCfg<T, kBonus>>(p, in);
  if (g_vec == 1) return run_fused_vec_o<T, kBonus, true, true>(p, in);
  if (g_vec == 2) return run_fused_vec_o<T, kBonus, false, false>(p, in);
  return run_fused_vec_o<T, kBonus, true, false>(p, in);
}

// based, quadratic form: forward (with den) and the four backward launches; kChunk: the backward
// by the chunkwise kernels instead (after the same forward; dq does the row pre-pass).
template <class C, bool kChunk = false>
Tensors run_quad(const Problem& p, Pass pass, const Tensors& in) {
  using T = typename C::T;
  const int BH = int(p.B * p.H), T_ = int(p.Tq), nb = (T_ + kC - 1) / kC;
  DevBuf<T> q(in.at("q")), k(in.at("k")), v(in.at("v")), o(size_t(BH) * T_ * p.Dv);
  DevBuf<float> den(size_t(BH) * T_), delta(size_t(BH) * T_);
  QuadParams qp{};
  qp.q = q.p(), qp.k = k.p(), qp.v = v.p(), qp.out = o.p(), qp.den = den.p();
  qp.T = T_, qp.Dk = int(p.Dk), qp.Dv = int(p.Dv), qp.scale = float(p.scale()), qp.normalize = p.normalize();
  sim::launch({unsigned(nb), unsigned(BH)}, {kThreads}, C::kSmemBytes, [&] { based_quad<C, Quad::fwd>(qp); });
  Tensors out;
  if (pass == Pass::fwd) {
    out.emplace("o", o.tensor({p.B, p.H, p.Tq, p.Dv}));
    return out;
  }
  DevBuf<T> dO(in.at("do")), w(size_t(BH) * T_ * p.Dv), dq(size_t(BH) * T_ * p.Dk), dk(size_t(BH) * T_ * p.Dk),
      dv(size_t(BH) * T_ * p.Dv);
  qp.dout = dO.p(), qp.o = o.p(), qp.w_out = w.p(), qp.delta = delta.p();
  if (!kChunk) sim::launch({unsigned((T_ + 3) / 4), unsigned(BH)}, {kThreads}, 0, [&] { quad_prep<T>(qp); });
  qp.w = p.normalize() ? static_cast<const void*>(w.p()) : static_cast<const void*>(dO.p());
  qp.out = dq.p();
  if (kChunk) {  // the chunkwise backward (Dk <= 16): based_chunk_dq (with the row pre-pass), based_chunk_dkv
    using B = BasedBwdCfg<T, C::kDv>;
    if (g_based_wsdq) {
      using D = BasedWsDqCfg<T>;
      sim::launch({1u, unsigned(BH)}, {unsigned(D::kThreads)}, D::kSmemBytes, [&] { based_ws_dq<D>(qp); });
    } else {
      sim::launch({1u, unsigned(BH)}, {unsigned(B::kThreads)}, B::kSmemBytes, [&] { based_chunk_dq<B>(qp); });
    }
    sim::launch({1u, unsigned(BH)}, {unsigned(B::kThreads)}, B::kSmemBytes,
                [&] { based_chunk_dkv<B>(qp, dk.p(), dv.p()); });
  } else {
    qp.den = nullptr;
    sim::launch({unsigned(nb), unsigned(BH)}, {kThreads}, C::kSmemBytes, [&] { based_quad<C, Quad::dq>(qp); });
    qp.out = dk.p();
    sim::launch({unsigned(nb), unsigned(BH)}, {kThreads}, C::kSmemBytes, [&] { based_quad<C, Quad::dk>(qp); });
    qp.out = dv.p();
    sim::launch({unsigned(nb), unsigned(BH)}, {kThreads}, C::kSmemBytes, [&] { based_quad<C, Quad::dv>(qp); });
  }
  out.emplace("dq", dq.tensor({p.B, p.H, p.Tq, p.Dk}));
  out.emplace("dk", dk.tensor({p.B, p.H, p.Tq, p.Dk}));
  out.emplace("dv", dv.tensor({p.B, p.H, p.Tq, p.Dv}));
  return out;
}

// One engine pass with other tensors in the q, k, v roles (the three-pass backward).
template <class T>
Tensor la_pass(const Problem& p, const Tensors& in, const char* qn, const char* kn, const char* vn, bool reverse) {
  Problem sub = p;
  sub.Dk = in.at(qn).shape[3], sub.Dv = in.at(vn).shape[3];
  sub.params.scale = p.scale();  // the roles change Dk; the scale stays the problem's
  Tensors roles;
  roles.emplace("q", in.at(qn));
  roles.emplace("k", in.at(kn));
  roles.emplace("v", in.at(vn));
  if (in.count("g")) roles.emplace("g", in.at("g"));
  g_reverse = reverse;
  Tensor o = dispatch_fwd<T>(sub, roles).at("o");
  g_reverse = false;
  return o;
}

// linear with the normalizer: forward (o, den), the row pre-pass (W, delta), three corrected passes.
template <class T>
Tensors run_bwd_linear_norm(const Problem& p, const Tensors& in) {
  const int BH = int(p.B * p.H), T_ = int(p.Tq);
  std::vector<float> den(size_t(BH) * T_), delta(size_t(BH) * T_);
  g_den = den.data();
  Tensor o = dispatch_fwd<T>(p, in).at("o");
  g_den = nullptr;
  DevBuf<T> dO(in.at("do")), ob(o), w(size_t(BH) * T_ * p.Dv);
  QuadParams qp{};
  qp.dout = dO.p(), qp.o = ob.p(), qp.w_out = w.p(), qp.den = den.data(), qp.delta = delta.data();
  qp.T = T_, qp.Dk = int(p.Dk), qp.Dv = int(p.Dv), qp.normalize = true;
  sim::launch({unsigned((T_ + 3) / 4), unsigned(BH)}, {kThreads}, 0, [&] { quad_prep<T>(qp); });
  Tensors roles = in;
  roles.erase("do");
  roles.emplace("do", w.tensor({p.B, p.H, p.Tq, p.Dv}));  // W in the role of dO
  Problem plain = p;
  plain.params.normalize = 0;
  Tensors g;
  g_corr = delta.data(), g_corr_form = 1;
  g.emplace("dq", la_pass<T>(plain, roles, "do", "v", "k", false));
  g_corr_form = 2;
  g.emplace("dk", la_pass<T>(plain, roles, "v", "do", "q", true));
  g_corr = nullptr, g_corr_form = 0;
  g.emplace("dv", la_pass<T>(plain, roles, "k", "q", "do", true));
  return g;
}

// gated with data-dependent gates: the two state scans, the chunk-parallel gradients, du.
template <class T, int W, bool kBonus>
Tensors run_bwd_gated_w(const Problem& p, const Tensors& in) {
  const bool vec = p.variant != "scalar";
  using CV = Cfg<T, Feat::gate_vector, W, 64>;
  using CS = Cfg<T, Feat::gate_scalar, W, 64>;
  const int BH = int(p.B * p.H), T_ = int(p.Tq), NC = (T_ + kC - 1) / kC, NV = (int(p.Dv) + 63) / 64;
  DevBuf<T> q(in.at("q")), k(in.at("k")), v(in.at("v")), dO(in.at("do"));
  DevBuf<float> g(in.at("g")), u(in.count("u") ? in.at("u") : Tensor({1}));
  DevBuf<T> Sst(size_t(BH) * NC * W * p.Dv), Dst(size_t(BH) * NC * W * p.Dv);
  DevBuf<float> bnd(size_t(BH) * NV * NC * p.Dk), du_part(size_t(BH) * NC * p.Dk), du(size_t(p.H) * p.Dk);
  DevBuf<T> dq(size_t(BH) * T_ * p.Dk), dk(size_t(BH) * T_ * p.Dk), dv(size_t(BH) * T_ * p.Dv);
  DevBuf<float> dg(vec ? size_t(BH) * T_ * p.Dk : size_t(BH) * T_);
  EngineParams e{};
  e.H = int(p.H), e.T = T_, e.Dqk = int(p.Dk), e.Dvv = int(p.Dv), e.NV = NV, e.scale = float(p.scale());
  e.gate = vec ? kGateVector : kGateScalar, e.bonus = kBonus, e.g = g.p(), e.u = u.p();
  auto scan = [&](auto rev) {
    constexpr bool kRev = decltype(rev)::value;
    using CV2 = ScanCfg<CV>;
    using CV3 = ScanCfg<CV, true>;
    using CW = ScanWgCfg<T, kBonus>;
    if (vec && W == 128 && p.Dv > 64 && g_scan_wg && !g_scan_pre) {
      sim::launch({1u, unsigned(BH)}, {unsigned(CW::kThreads)}, CW::kSmemBytes, [&] { vec_wg_scan<CW, kRev>(e); });
    } else if (vec && g_scan_pre && !kRev) {
      sim::launch({unsigned(NV), unsigned(BH)}, {kThreads}, CV3::kSmemBytes, [&] { chunk_scan<CV3, kBonus, false>(e); });
    } else if (vec) {
      sim::launch({unsigned(NV), unsigned(BH)}, {kThreads}, CV2::kSmemBytes, [&] { chunk_scan<CV2, kBonus, kRev>(e); });
    } else {
      sim::launch({unsigned(NV), unsigned(BH)}, {kThreads}, CS::kSmemBytes, [&] { chunk_scan<CS, false, kRev>(e); });
    }
  };
  e.k = q.p(), e.v = dO.p(), e.states = Dst.p();  // the reverse scan first: rd(D_c)
  scan(std::true_type{});
  e.k = k.p(), e.v = v.p(), e.states = Sst.p(), e.bnd_states = Dst.p(), e.bnd = bnd.p();
  scan(std::false_type{});
  GateBwdParams gp{};
  gp.q = q.p(), gp.k = k.p(), gp.v = v.p(), gp.dout = dO.p(), gp.g = g.p(), gp.u = u.p();
  gp.s_states = Sst.p(), gp.d_states = Dst.p(), gp.bnd = bnd.p();
  gp.dq = dq.p(), gp.dk = dk.p(), gp.dv = dv.p(), gp.dg = dg.p(), gp.du_part = du_part.p();
  gp.H = int(p.H), gp.T = T_, gp.Dk = int(p.Dk), gp.Dv = int(p.Dv), gp.NV = NV, gp.scale = float(p.scale());
  gp.vector_gate = vec;
  auto bc = [&](auto cfg) {
    using G = decltype(cfg);
    sim::launch({unsigned(NC), unsigned(BH)}, {kGThreads}, gbwd2_smem_bytes<G>(), [&] { gated_bwd_chunk2<G, kBonus>(gp); });
  };
  if (p.Dv <= 64) bc(GbwdCfg<T, W, 64>{});
  else bc(GbwdCfg<T, W, 128>{});
  Tensors out;
  out.emplace("dq", dq.tensor({p.B, p.H, p.Tq, p.Dk}));
  out.emplace("dk", dk.tensor({p.B, p.H, p.Tq, p.Dk}));
  out.emplace("dv", dv.tensor({p.B, p.H, p.Tq, p.Dv}));
  out.emplace("dg", vec ? dg.tensor({p.B, p.H, p.Tq, p.Dk}) : dg.tensor({p.B, p.H, p.Tq}));
  if (kBonus) {
    sim::launch({unsigned((p.H * p.Dk + 255) / 256)}, {256}, 0,
                [&] { gated_bwd_du(du_part.p(), du.p(), int(p.B), int(p.H), NC, int(p.Dk)); });
    out.emplace("du", du.tensor({p.H, p.Dk}));
  }
  return out;
}

template <class T>
Tensors run_bwd_gated(const Problem& p, const Tensors& in) {
  const bool bonus = p.variant == "rwkv6";
  if (p.Dk <= 64) return bonus ? run_bwd_gated_w<T, 64, true>(p, in) : run_bwd_gated_w<T, 64, false>(p, in);
  return bonus ? run_bwd_gated_w<T, 128, true>(p, in) : run_bwd_gated_w<T, 128, false>(p, in);
}

template <class T>
Tensors run_bwd_la(const Problem& p, const Tensors& in) {
  if (p.algo == "gated" && p.variant != "retention" && p.variant != "lightning") return run_bwd_gated<T>(p, in);
  if (p.algo == "linear" && p.normalize()) return run_bwd_linear_norm<T>(p, in);
  Tensors g;
  g.emplace("dq", la_pass<T>(p, in, "do", "v", "k", false));
  g.emplace("dk", la_pass<T>(p, in, "v", "do", "q", true));
  g.emplace("dv", la_pass<T>(p, in, "k", "q", "do", true));
  return g;
}

// The fused forward for the widths the host picks (linear_family_tiled_fused_launch.h).
template <class T, Feat F>
Tensors run_fused(const Problem& p, const Tensors& in) {
  if (g_wg && p.Dk > 64 && p.Dv > 64) return run_fwd<WgCfg<T, F>, false, true>(p, in);
  if (p.Dk <= 64) {
    if (p.Dv <= 64) return run_fwd<FusedCfg<T, F, 64, 64>, false, true>(p, in);
    return run_fwd<FusedCfg<T, F, 64, 128>, false, true>(p, in);
  }
  if (p.Dv <= 64) return run_fwd<FusedCfg<T, F, 128, 64>, false, true>(p, in);
  return run_fwd<FusedCfg<T, F, 128, 128>, false, true>(p, in);
}

template <class T>
Tensors dispatch_fwd(const Problem& p, const Tensors& in) {
  // the widths the host picks (linear_family_tiled_launch.h); fused where fused_eligible()
  if (g_fused && !g_corr_form && p.Dk <= 128 && p.Dv <= 128) {
    if (p.algo == "linear" && !p.normalize()) return run_fused<T, Feat::linear>(p, in);
    if (p.algo == "gated" && p.variant != "vector" && p.variant != "rwkv6") return run_fused<T, Feat::gate_scalar>(p, in);
    if (p.algo == "gated" && !g_reverse && p.variant == "vector") return run_fused_vec<T, false>(p, in);
    if (p.algo == "gated" && !g_reverse && p.variant == "rwkv6") return run_fused_vec<T, true>(p, in);
    if (p.algo == "based" && p.Dk <= kBasedDk && !g_reverse) {  // based_tiled.cu: fused_based_fwd
      if (g_based_ws) return run_fwd<BasedWsCfg<T>, false, true>(p, in);
      if (g_based_wgp) return run_fwd<BasedWgpCfg<T>, false, true>(p, in);
      if (g_based_wg && g_based_wgv == 1) return run_fwd<BasedWgCfg<T, 1, true>, false, true>(p, in);
      if (g_based_wg && g_based_wgv == 2) return run_fwd<BasedWgCfg<T, 2, false>, false, true>(p, in);
      if (g_based_wg && g_based_wgv == 3) return run_fwd<BasedWgCfg<T, 2, true>, false, true>(p, in);
      if (g_based_wg) return run_fwd<BasedWgCfg<T, 1, false>, false, true>(p, in);
      if (g_based_split && g_based_cols == 16) {
        if (p.Dv <= 64) return run_fwd<FusedBasedCfg<T, 64, true, 16>, false, true>(p, in);
        return run_fwd<FusedBasedCfg<T, 128, true, 16>, false, true>(p, in);
      }
      if (g_based_split && g_based_lean) {
        if (p.Dv <= 64) return run_fwd<FusedBasedCfg<T, 64, true, 32, true>, false, true>(p, in);
        return run_fwd<FusedBasedCfg<T, 128, true, 32, true>, false, true>(p, in);
      }
      if (g_based_split) {
        if (p.Dv <= 64) return run_fwd<FusedBasedCfg<T, 64, true>, false, true>(p, in);
        return run_fwd<FusedBasedCfg<T, 128, true>, false, true>(p, in);
      }
      if (p.Dv <= 64) return run_fwd<FusedBasedCfg<T, 64>, false, true>(p, in);
      return run_fwd<FusedBasedCfg<T, 128>, false, true>(p, in);
    }
  }
  if (p.algo == "linear") {
    if (p.Dk <= 64) return run_fwd<Cfg<T, Feat::linear, 64, 64>, false>(p, in);
    if (p.Dk <= 128) return run_fwd<Cfg<T, Feat::linear, 128, 64>, false>(p, in);
    return run_fwd<Cfg<T, Feat::linear, 256, 32>, false>(p, in);
  }
  if (p.algo == "based") return run_fwd<Cfg<T, Feat::based, 16, 32>, false>(p, in);
  if (p.Dk <= 64) {
    if (p.variant == "vector") return run_fwd<Cfg<T, Feat::gate_vector, 64, 64>, false>(p, in);
    if (p.variant == "rwkv6") return run_fwd<Cfg<T, Feat::gate_vector, 64, 64>, true>(p, in);
    return run_fwd<Cfg<T, Feat::gate_scalar, 64, 64>, false>(p, in);
  }
  if (p.variant == "vector") return run_fwd<Cfg<T, Feat::gate_vector, 128, 64>, false>(p, in);
  if (p.variant == "rwkv6") return run_fwd<Cfg<T, Feat::gate_vector, 128, 64>, true>(p, in);
  return run_fwd<Cfg<T, Feat::gate_scalar, 128, 64>, false>(p, in);
}

int main(int argc, char** argv) {
  // argv[1]: only this algo or variant ("" or "all": every case); argv[2] = "tile": eligible
  // forwards by chunk_fwd (the host's ATTNBENCH_LIN_FWD=tile) instead of fused_fwd; the fused
  // vector forward's A/B variants "bulk", "late" (ATTNBENCH_LIN_VEC); "mma": the mma.sync kernels
  // (fused_fwd and fused_vec_fwd) at every width, as ATTNBENCH_LIN_FUSED=mma ATTNBENCH_LIN_VEC=mma;
  // based's wgmma forward: "wg" (one warpgroup a block), "2" (two), "overlap", "2overlap";
  // the gated backward's "scanpre" (ATTNBENCH_LIN_GBWD=scanpre) and "oldscan" (=oldscan)
  const std::string only = argc > 1 && std::string(argv[1]) != "all" ? argv[1] : "";
  g_fused = !(argc > 2 && std::string(argv[2]) == "tile");
  const std::string sel = argc > 2 ? argv[2] : "";
  g_vec = sel == "bulk" ? 1 : sel == "late" ? 2 : sel == "mma" ? 0 : 3;
  g_based_split = !(argc > 2 && std::string(argv[2]) == "nosplit");  // based: fused_based_fwd instead
  if (argc > 2 && std::string(argv[2]) == "cols16") g_based_cols = 16;  // based: the 16-column split
  g_based_lean = sel != "nolean";
  g_based_wsdq = sel == "wsdq";
  g_based_ws = sel == "ws";    // based: the warp-specialized wgmma forward
  g_based_wgp = sel == "wgp";  // based: the pipelined wgmma forward  // based: the 32-column split without its lean chunk
  g_based_wg = sel == "wg" || sel == "2" || sel == "overlap" || sel == "2overlap";  // based: the wgmma forward
  g_based_wgv = (sel == "2" || sel == "2overlap" ? 2 : 0) | (sel == "overlap" || sel == "2overlap" ? 1 : 0);
  g_wg = !(argc > 2 && std::string(argv[2]) == "mma");  // widths in (64, 128]: fused_fwd, not fused_wg_fwd
  g_scan_pre = sel == "scanpre";  // the forward scan loads rd(D) by cp.async (ATTNBENCH_LIN_GBWD=scanpre)
  g_scan_wg = sel != "oldscan";   // the gated backward's chunk_scan at every width (ATTNBENCH_LIN_GBWD=oldscan)
  std::printf("eligible forwards by %s%s%s%s\n", g_fused ? "fused_fwd" : "chunk_fwd",
              g_fused && g_wg ? " (widths in (64, 128]: fused_wg_fwd)" : "",
              g_fused && g_vec == 3 ? " (vector gates, widths in (64, 128]: fused_vec_wg_fwd)" : "",
              g_fused && g_based_wg ? " (based, Dk <= 16: fused_based_wg_fwd)"
              : g_fused && g_based_ws ? " (based, Dk <= 16: fused_based_ws_fwd)" : "");
  if (g_fused && g_based_wg) std::printf("based: fused_based_wg_fwd, warpgroups %d, overlap %d\n", 1 + (g_based_wgv >> 1), g_based_wgv & 1);
  struct Case {
    std::string algo, variant;
    int64_t T, Dk, Dv;
    int normalize;
    double gate_mul = 1.0;  // > 1: larger log-gates (the exact diagonal paths of the fused vector
                            // forward and of gated_bwd_chunk2; -DATTNBENCH_LIN_GBWD_SPAN_MAX=-1.0f:
                            // the backward's exact path on every case)
  };
  std::vector<Case> cases = {{"linear", "", 1, 64, 64, 0},    {"linear", "", 130, 64, 72, 0},
                             {"linear", "", 130, 48, 32, 1},  {"linear", "", 70, 256, 40, 0}, {"linear", "", 200, 128, 64, 1},
                             {"based", "", 63, 16, 32, -1},  {"based", "", 130, 16, 72, 0},
                             {"based", "", 1, 16, 16, -1},   {"based", "", 200, 16, 64, 1},
                             {"based", "", 150, 48, 72, -1}, {"based", "", 70, 64, 64, 0},
                             {"linear", "", 200, 128, 128, 0}, {"linear", "", 260, 104, 120, 0},
                             {"linear", "", 140, 64, 128, 0}, {"linear", "", 1, 128, 128, 0},
                             {"linear", "", 70, 72, 128, 0}};
  // based, Taylor form (Dk = 16): the fused forward's awkward shapes
  for (int64_t T : {1, 63, 1013}) {
    for (int64_t Dv : {64, 128, 120}) {
      for (int nrm : {-1, 0}) {
        if (T == 1013 && (Dv == 120 || nrm == 0)) continue;  // (the long case twice only: time)
        cases.push_back({"based", "", T, 16, Dv, nrm});
      }
    }
  }
  cases.push_back({"based", "", 200, 8, 24, 0});
  cases.push_back({"based", "", 130, 16, 40, -1});
  for (const char* v : {"retention", "lightning", "scalar", "vector", "rwkv6"}) {
    cases.push_back({"gated", v, 130, 64, 72, -1});
    cases.push_back({"gated", v, 1, 48, 16, -1});
    cases.push_back({"gated", v, 100, 128, 64, -1});
    if (std::string(v) != "vector" && std::string(v) != "rwkv6") cases.push_back({"gated", v, 200, 128, 128, -1});
  }
  for (const char* v : {"vector", "rwkv6"}) {  // the fused vector-gate forward's shapes
    cases.push_back({"gated", v, 63, 64, 128, -1});
    cases.push_back({"gated", v, 1013, 128, 64, -1});
    cases.push_back({"gated", v, 200, 128, 128, -1});
    cases.push_back({"gated", v, 130, 64, 64, -1, 12.0});
    cases.push_back({"gated", v, 130, 128, 64, -1, 3.0});  // the backward's per-block factored path
    cases.push_back({"gated", v, 70, 128, 128, -1, 12.0});
    cases.push_back({"gated", v, 130, 96, 120, -1});  // widths in (64, 128], padded (fused_vec_wg_fwd)
    cases.push_back({"gated", v, 130, 128, 128, -1, 3.0});
  }
  cases.push_back({"gated", "scalar", 130, 64, 64, -1, 12.0});  // strong scalar gates
  cases.push_back({"gated", "scalar", 130, 128, 64, -1, 3.0});
  cases.push_back({"gated", "scalar", 130, 128, 128, -1, 12.0});  // fused_wg_fwd, strong gates
  cases.push_back({"gated", "retention", 1, 96, 128, -1});
  int fails = 0;
  for (const Case& c : cases) {
    if (!only.empty() && c.algo != only && c.variant != only) continue;
    Problem p;
    p.algo = c.algo, p.variant = c.variant, p.B = 1, p.H = 2, p.Hkv = 2, p.Tq = p.Tk = c.T, p.Dk = c.Dk, p.Dv = c.Dv;
    p.causal = true;
    p.params.normalize = c.normalize;
    for (Dtype dt : {Dtype::bf16, Dtype::f16}) {
      Tensors in = make_inputs(p, Pass::bwd, dt, 11);
      if (c.gate_mul != 1.0) {
        for (double& x : in.at("g").data) x = double(float(x * c.gate_mul));
      }
      const Tensors ref = simutil::reference(p, Pass::fwd, in), emul = simutil::emulation(p, Pass::fwd, dt, in);
      const bool taylor = !(p.algo == "based" && p.Dk > 16);
      const Tensors x = !taylor ? ref : dt == Dtype::bf16 ? dispatch_fwd<__nv_bfloat16>(p, in) : dispatch_fwd<__half>(p, in);
      char gm[32] = "";
      if (c.gate_mul != 1.0) std::snprintf(gm, sizeof gm, " g*%g", c.gate_mul);
      std::printf("%-7s %-9s T=%-4ld Dk=%-3ld Dv=%-3ld norm=%d%s fwd %s:", c.algo.c_str(), c.variant.c_str(), long(c.T),
                  long(c.Dk), long(c.Dv), p.normalize() ? 1 : 0, gm, std::string(dtype_name(dt)).c_str());
      for (const auto& spec : forward_outputs(p)) {
        const auto v = check_tensor(spec.name, x.at(spec.name), ref.at(spec.name), emul.at(spec.name), dt, spec.stored_as(dt));
        std::printf(" %s %s m=%.2f (err %.2e base %.2e floor %.2e rms %.1e)", spec.name.c_str(), v.pass ? "ok" : "FAIL",
                    v.margin(), v.err, v.err_base, v.floor, v.rel_rms);
        if (!v.pass) std::printf(" [%s]", v.why.c_str());
        fails += !v.pass;
      }
      std::printf("\n");
      if (p.algo == "based") {  // the quadratic form, forward and backward
        for (Pass pass : {Pass::fwd, Pass::bwd}) {
          const Tensors r = simutil::reference(p, pass, in), b = simutil::emulation(p, pass, dt, in);
          Tensors x2;
          if (dt == Dtype::bf16) {
            x2 = p.Dk <= 16 ? (p.Dv <= 64 ? run_quad<QuadCfg<__nv_bfloat16, 16, 64>>(p, pass, in)
                                          : run_quad<QuadCfg<__nv_bfloat16, 16, 128>>(p, pass, in))
                            : run_quad<QuadCfg<__nv_bfloat16, 64, 128>>(p, pass, in);
          } else {
            x2 = p.Dk <= 16 ? (p.Dv <= 64 ? run_quad<QuadCfg<__half, 16, 64>>(p, pass, in)
                                          : run_quad<QuadCfg<__half, 16, 128>>(p, pass, in))
                            : run_quad<QuadCfg<__half, 64, 128>>(p, pass, in);
          }
          std::printf("%-7s quadratic T=%-4ld Dk=%-3ld Dv=%-3ld norm=%d %s %s:", c.algo.c_str(), long(c.T), long(c.Dk),
                      long(c.Dv), p.normalize() ? 1 : 0, std::string(pass_name(pass)).c_str(),
                      std::string(dtype_name(dt)).c_str());
          double ps = 0;
          for (const auto& spec : pass_outputs(p, pass)) ps = std::max(ps, max_abs_finite(r.at(spec.name)));
          for (const auto& spec : pass_outputs(p, pass)) {
            const auto v = check_tensor(spec.name, x2.at(spec.name), r.at(spec.name), b.at(spec.name), dt, spec.stored_as(dt), 2.0, ps);
            std::printf(" %s %s m=%.2f", spec.name.c_str(), v.pass ? "ok" : "FAIL", v.margin());
            fails += !v.pass;
          }
          std::printf("\n");
        }
        if (p.Dk <= 16) {  // the chunkwise backward
          const Tensors r = simutil::reference(p, Pass::bwd, in), b = simutil::emulation(p, Pass::bwd, dt, in);
          Tensors x3;
          if (dt == Dtype::bf16) {
            x3 = p.Dv <= 64 ? run_quad<QuadCfg<__nv_bfloat16, 16, 64>, true>(p, Pass::bwd, in)
                            : run_quad<QuadCfg<__nv_bfloat16, 16, 128>, true>(p, Pass::bwd, in);
          } else {
            x3 = p.Dv <= 64 ? run_quad<QuadCfg<__half, 16, 64>, true>(p, Pass::bwd, in)
                            : run_quad<QuadCfg<__half, 16, 128>, true>(p, Pass::bwd, in);
          }
          std::printf("%-7s chunkwise T=%-4ld Dk=%-3ld Dv=%-3ld norm=%d bwd %s:", c.algo.c_str(), long(c.T), long(c.Dk),
                      long(c.Dv), p.normalize() ? 1 : 0, std::string(dtype_name(dt)).c_str());
          double ps = 0;
          for (const auto& spec : pass_outputs(p, Pass::bwd)) ps = std::max(ps, max_abs_finite(r.at(spec.name)));
          for (const auto& spec : pass_outputs(p, Pass::bwd)) {
            const auto v = check_tensor(spec.name, x3.at(spec.name), r.at(spec.name), b.at(spec.name), dt, spec.stored_as(dt), 2.0, ps);
            std::printf(" %s %s m=%.2f", spec.name.c_str(), v.pass ? "ok" : "FAIL", v.margin());
            if (!v.pass) std::printf(" [%s; err %.2e base %.2e floor %.2e]", v.why.c_str(), v.err, v.err_base, v.floor);
            fails += !v.pass;
          }
          std::printf("\n");
        }
      }
      const bool la = p.algo != "based";
      if (!la) continue;
      const Tensors gref = simutil::reference(p, Pass::bwd, in), gemul = simutil::emulation(p, Pass::bwd, dt, in);
      const Tensors gx = dt == Dtype::bf16 ? run_bwd_la<__nv_bfloat16>(p, in) : run_bwd_la<__half>(p, in);
      std::printf("%-7s %-9s T=%-4ld Dk=%-3ld Dv=%-3ld  %6s bwd %s:", c.algo.c_str(), c.variant.c_str(), long(c.T),
                  long(c.Dk), long(c.Dv), gm, std::string(dtype_name(dt)).c_str());
      double ps = 0;
      for (const auto& spec : backward_outputs(p)) ps = std::max(ps, max_abs_finite(gref.at(spec.name)));
      for (const auto& spec : backward_outputs(p)) {
        const auto v = check_tensor(spec.name, gx.at(spec.name), gref.at(spec.name), gemul.at(spec.name), dt, spec.stored_as(dt), 2.0, ps);
        std::printf(" %s %s m=%.2f", spec.name.c_str(), v.pass ? "ok" : "FAIL", v.margin());
        if (!v.pass) {
          std::printf(" [%s; err %.2e base %.2e floor %.2e rms %.1e base %.1e]", v.why.c_str(), v.err, v.err_base,
                      v.floor, v.rel_rms, v.rel_rms_base);
        }
        fails += !v.pass;
      }
      std::printf("\n");
    }
  }
  std::printf("%s: %d failures\n", fails ? "FAIL" : "PASS", fails);
  return fails ? 1 : 0;
}
