// The tiled linear-family Prepared: what it supports and how each pass is launched (see
// linear_family_tiled_launch.h), and the registration of linear/tiled, based/tiled, gated/tiled.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <fmt/format.h>

#include "linear_family_host.h"
#include "linear_family_tiled_launch.h"
#include "linear_family_tiled_gbwd.cuh"
#include "linear_family_tiled_quad.cuh"
#include "linear_kernels.h"
#include "softmax_kernels.h"

namespace attnbench::kernels {
namespace lin_tiled {

namespace {

bool data_gate(const Problem& p) { return p.algo == "gated" && p.variant != "retention" && p.variant != "lightning"; }

}  // namespace

Support tiled_supports(const Problem& p, Pass, Dtype dt) {
  if (dt == Dtype::f32) return Support::no("tiled runs on tensor cores: bf16 or fp16 storage (fp32: use naive)");
  if (p.Dk % 8 != 0 || p.Dv % 8 != 0) {
    return Support::no(fmt::format("tiled needs Dk and Dv multiples of 8 (16-byte rows); got Dk={} Dv={}", p.Dk, p.Dv));
  }
  if (p.B * p.H > 65535) return Support::no("tiled supports B*H <= 65535 (grid y)");
  if (p.Tq > (int64_t{1} << 30)) return Support::no("tiled supports T < 2^30");
  if (p.algo == "linear") {
    if (p.Dk > 256 || p.Dv > 256) return Support::no("tiled linear supports Dk, Dv <= 256");
    return Support::yes();
  }
  if (p.algo == "based") {
    if (p.Dk > 128 || p.Dv > 128) return Support::no("tiled based supports Dk, Dv <= 128");
    return Support::yes();
  }
  if (p.algo == "gated") {
    if (p.Dk > 128 || p.Dv > 128) return Support::no("tiled gated supports Dk, Dv <= 128");
    return Support::yes();
  }
  return Support::no("not a linear-family algorithm");
}

ChunkTiled::ChunkTiled(const Problem& p, Pass pass, Dtype dt, const Tensors& in) : CudaPrepared(p, pass, dt, in) {
  if (p.algo == "linear" && p.normalize() && pass == Pass::bwd) {  // the backward's o and den, untimed
    lin_host::workspace(ws_, "o", {p.B, p.H, p.Tq, p.Dv}, dt);
    lin_host::workspace(ws_, "den", {p.B, p.H, p.Tq}, Dtype::f32);
    lin_host::workspace(ws_, "delta", {p.B, p.H, p.Tq}, Dtype::f32);
    lin_host::workspace(ws_, "w", {p.B, p.H, p.Tq, p.Dv}, dt);
    den_out_ = ws_.at("den").as<float>();
    la_pass(this->in("q").buf.get(), this->in("k").buf.get(), this->in("v").buf.get(), ws_.at("o").buf.get(), p.Dk, p.Dv,
            false);
    den_out_ = nullptr;
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  if (p.algo == "based" && pass == Pass::bwd) {  // the backward's o and den, untimed
    lin_host::workspace(ws_, "o", {p.B, p.H, p.Tq, p.Dv}, dt);
    lin_host::workspace(ws_, "den", {p.B, p.H, p.Tq}, Dtype::f32);
    lin_host::workspace(ws_, "delta", {p.B, p.H, p.Tq}, Dtype::f32);
    if (p.normalize()) lin_host::workspace(ws_, "w", {p.B, p.H, p.Tq, p.Dv}, dt);
    QuadParams qp = quad_params();
    qp.out = ws_.at("o").buf.get();
    qp.den = ws_.at("den").as<float>();
    launch_based_quad_fwd(dt_, qp, static_cast<int>(p.B * p.H), stream_);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
}

QuadParams ChunkTiled::quad_params() const {
  QuadParams qp{};
  qp.q = in("q").buf.get();
  qp.k = in("k").buf.get();
  qp.v = in("v").buf.get();
  qp.T = static_cast<int>(p_.Tq), qp.Dk = static_cast<int>(p_.Dk), qp.Dv = static_cast<int>(p_.Dv);
  qp.scale = static_cast<float>(p_.scale());
  qp.normalize = p_.normalize();
  return qp;
}

// ATTNBENCH_LIN_GBWD=abl: gated_bwd_chunk2 timed with phases skipped (measurement only: wrong
// outputs, which the real launch after it overwrites). GateBwdParams::abl bits: 1 the intra-chunk
// products and their folds, 2 the factors and Qf/Kf, 4 the inter-chunk terms and Kt, 8 dv, 16 rd(A),
// dG and the dq/dk/dg stores, 32 the cp.async loads, 64 dA. Prints "gbwd-abl ... mask:ms ...".
static void gbwd_ablate(Dtype dt, GateBwdParams gp, bool bonus, int NC, int BH, cudaStream_t s,
                        const std::string& variant, int T) {
  static const int kMasks[] = {0, 1, 2, 4, 8, 16, 32, 64, 3, 95, 127};
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  std::string line = fmt::format("gbwd-abl {} T={}", variant, T);
  for (int m : kMasks) {
    gp.abl = m;
    CUDA_CHECK(cudaEventRecord(a, s));
    launch_gated_bwd_chunk(dt, gp, bonus, NC, BH, s);
    CUDA_CHECK(cudaEventRecord(b, s));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    line += fmt::format(" {}:{:.3f}", m, ms);
  }
  std::fprintf(stderr, "%s ms\n", line.c_str());
  CUDA_CHECK(cudaEventDestroy(a));
  CUDA_CHECK(cudaEventDestroy(b));
}

// gated backward with data-dependent gates: reverse state scan (rd(D_c)), forward state scan
// (rd(S_c), boundary partials from rd(D_c)), the chunk-parallel gradients, and du (rwkv6).
void ChunkTiled::gated_backward() {
  const int BH = static_cast<int>(p_.B * p_.H), NC = static_cast<int>((p_.Tq + kC - 1) / kC);
  const int W = gated_width(p_.Dk), NV = static_cast<int>((p_.Dv + 63) / 64);
  const bool bonus = p_.variant == "rwkv6";
  DeviceTensor& S = lin_host::workspace(ws_, "s_states", {BH, NC, W, p_.Dv}, dt_);
  DeviceTensor& D = lin_host::workspace(ws_, "d_states", {BH, NC, W, p_.Dv}, dt_);
  DeviceTensor& bnd = lin_host::workspace(ws_, "bnd", {BH, NV, NC, p_.Dk}, Dtype::f32);
  EngineParams e = base_params();
  e.Dqk = static_cast<int>(p_.Dk), e.Dvv = static_cast<int>(p_.Dv), e.NV = NV;
  e.k = in("q").buf.get(), e.v = in("do").buf.get(), e.states = D.buf.get();
  // ATTNBENCH_LIN_GBWD=prof (also fp32a+prof): events between the launches (measurement only)
  const bool prof = gbwd_prof();
  cudaEvent_t ev[5] = {};
  if (prof) {
    for (cudaEvent_t& x : ev) CUDA_CHECK(cudaEventCreate(&x));
    CUDA_CHECK(cudaEventRecord(ev[0], stream_));
  }
  launch_gated_scan(dt_, e, BH, stream_, true);
  if (prof) CUDA_CHECK(cudaEventRecord(ev[1], stream_));
  e.k = in("k").buf.get(), e.v = in("v").buf.get(), e.states = S.buf.get(), e.bnd_states = D.buf.get();
  e.bnd = bnd.as<float>();
  launch_gated_scan(dt_, e, BH, stream_, false);
  if (prof) CUDA_CHECK(cudaEventRecord(ev[2], stream_));
  GateBwdParams gp{};
  gp.q = in("q").buf.get(), gp.k = in("k").buf.get(), gp.v = in("v").buf.get(), gp.dout = in("do").buf.get();
  gp.g = in("g").as<float>();
  gp.u = bonus ? in("u").as<float>() : nullptr;
  gp.s_states = S.buf.get(), gp.d_states = D.buf.get(), gp.bnd = bnd.as<float>();
  gp.dq = out("dq").buf.get(), gp.dk = out("dk").buf.get(), gp.dv = out("dv").buf.get();
  gp.dg = out("dg").as<float>();
  gp.H = static_cast<int>(p_.H), gp.T = static_cast<int>(p_.Tq), gp.Dk = static_cast<int>(p_.Dk);
  gp.Dv = static_cast<int>(p_.Dv), gp.NV = NV, gp.scale = static_cast<float>(p_.scale());
  gp.vector_gate = p_.variant != "scalar";
  gp.fp32_a = gbwd_mode("fp32a");
  gp.fp32_i = gbwd_mode("fp32i");
  if (bonus) gp.du_part = lin_host::workspace(ws_, "du_part", {BH, NC, p_.Dk}, Dtype::f32).as<float>();
  if (gbwd_mode("abl")) {
    gbwd_ablate(dt_, gp, bonus, NC, BH, stream_, p_.variant, static_cast<int>(p_.Tq));
  }
  launch_gated_bwd_chunk(dt_, gp, bonus, NC, BH, stream_);
  if (prof) CUDA_CHECK(cudaEventRecord(ev[3], stream_));
  if (bonus) {
    launch_gated_du(gp.du_part, out("du").as<float>(), static_cast<int>(p_.B), static_cast<int>(p_.H), NC,
                    static_cast<int>(p_.Dk), stream_);
  }
  if (prof) {
    CUDA_CHECK(cudaEventRecord(ev[4], stream_));
    CUDA_CHECK(cudaEventSynchronize(ev[4]));
    float ms[4];
    for (int i = 0; i < 4; ++i) CUDA_CHECK(cudaEventElapsedTime(&ms[i], ev[i], ev[i + 1]));
    const char* kern = gp.fp32_a ? "fp32a" : gp.fp32_i ? "fp32i" : "new";
    std::fprintf(stderr, "gbwd-prof %s %s T=%d rev_scan %.4f fwd_scan %.4f chunk %.4f du %.4f ms\n",
                 p_.variant.c_str(), kern, static_cast<int>(p_.Tq), ms[0], ms[1], ms[2], ms[3]);
    for (cudaEvent_t& x : ev) CUDA_CHECK(cudaEventDestroy(x));
  }
}

// based's backward: at Dk <= 16 the chunkwise kernels (dq with the row pre-pass W, delta inside it;
// then dk and dv), else (or under ATTNBENCH_BASED_BWD=quad, the A/B switch) the row pre-pass
// (quad_prep) and the quadratic form's dq, dk, dv.
static bool based_chunk_bwd_enabled() {
  static const bool on = [] {
    const char* s = std::getenv("ATTNBENCH_BASED_BWD");
    if (s && *s && std::strcmp(s, "quad") != 0 && std::strcmp(s, "chunk") != 0) {
      throw std::invalid_argument(std::string("ATTNBENCH_BASED_BWD: expected chunk or quad, got '") + s + "'");
    }
    return !(s && std::strcmp(s, "quad") == 0);
  }();
  return on;
}

void ChunkTiled::based_backward() {
  const int BH = static_cast<int>(p_.B * p_.H);
  QuadParams qp = quad_params();
  qp.dout = in("do").buf.get();
  qp.o = ws_.at("o").buf.get();
  qp.den = ws_.at("den").as<float>();
  qp.delta = ws_.at("delta").as<float>();
  qp.w_out = p_.normalize() ? ws_.at("w").buf.get() : nullptr;
  const void* w = p_.normalize() ? ws_.at("w").buf.get() : in("do").buf.get();
  if (p_.Dk <= kBasedDk && based_chunk_bwd_enabled()) {  // based_chunk_dq does the row pre-pass (W, delta)
    qp.w = w;
    qp.out = out("dq").buf.get();
    launch_based_chunk_bwd(dt_, qp, out("dk").buf.get(), out("dv").buf.get(), BH, stream_);
    return;
  }
  launch_quad_prep(dt_, qp, BH, stream_);
  qp.w = w;
  qp.den = nullptr;
  qp.out = out("dq").buf.get();
  launch_based_quad_bwd(dt_, Quad::dq, qp, BH, stream_);
  qp.out = out("dk").buf.get();
  launch_based_quad_bwd(dt_, Quad::dk, qp, BH, stream_);
  qp.out = out("dv").buf.get();
  launch_based_quad_bwd(dt_, Quad::dv, qp, BH, stream_);
}

EngineParams ChunkTiled::base_params() const {
  EngineParams e{};
  e.H = static_cast<int>(p_.H);
  e.T = static_cast<int>(p_.Tq);
  e.scale = static_cast<float>(p_.scale());
  e.eps = static_cast<float>(p_.eps());
  e.normalize = (p_.algo == "linear" || p_.algo == "based") && p_.normalize();
  if (p_.algo == "gated") {
    const std::string& v = p_.variant;
    e.gate = v == "scalar" ? kGateScalar : (v == "vector" || v == "rwkv6") ? kGateVector : kGateFixed;
    e.lightning = v == "lightning";
    e.bonus = v == "rwkv6";
    if (e.gate != kGateFixed) e.g = in("g").as<float>();
    if (e.bonus) e.u = in("u").as<float>();
  }
  return e;
}

void ChunkTiled::forward(EngineParams e) {
  const int BH = static_cast<int>(p_.B * p_.H);
  if (p_.algo == "linear") launch_linear_fwd(dt_, e, BH, stream_);
  else if (p_.algo == "based") launch_based_fwd(dt_, e, BH, stream_);
  else launch_gated_fwd(dt_, e, BH, stream_);
}

void ChunkTiled::la_pass(const void* q, const void* k, const void* v, void* o, int64_t dqk, int64_t dvv, bool reverse,
                         const float* corr, int corr_form) {
  EngineParams e = base_params();
  e.q = q, e.k = k, e.v = v, e.o = o;
  e.den = den_out_;
  if (pass_ == Pass::bwd && den_out_ == nullptr) e.normalize = false;  // the backward passes have no normalizer
  e.corr = corr, e.corr_form = corr_form;
  e.Dqk = static_cast<int>(dqk), e.Dvv = static_cast<int>(dvv);
  const int width = p_.algo == "linear" ? linear_width(dqk) : gated_width(dqk);
  const int bv = p_.algo == "based" ? kBasedBV : value_tile(width);
  e.NV = static_cast<int>((dvv + bv - 1) / bv);
  e.reverse = reverse;
  forward(e);
}

void ChunkTiled::run() {
  const void *q = in("q").buf.get(), *k = in("k").buf.get(), *v = in("v").buf.get();
  if (p_.algo == "based" && (pass_ == Pass::bwd || p_.Dk > kBasedDk)) {
    if (pass_ == Pass::bwd) {
      based_backward();
    } else {
      QuadParams qp = quad_params();
      qp.out = out("o").buf.get();
      launch_based_quad_fwd(dt_, qp, static_cast<int>(p_.B * p_.H), stream_);
    }
    return;
  }
  if (pass_ == Pass::fwd) {
    la_pass(q, k, v, out("o").buf.get(), p_.Dk, p_.Dv, false);
    return;
  }
  if (data_gate(p_)) {
    gated_backward();
    return;
  }
  const void* dO = in("do").buf.get();
  if (p_.algo == "linear" && p_.normalize()) {
    // W = rd(dO / den), delta = W.o (the row pre-pass), then the three passes with the rank-one
    // corrections of the normalizer: dM = rd(W V^T - delta), dq -= delta z, dk -= sum_{later} delta q.
    QuadParams qp{};
    qp.dout = dO;
    qp.o = ws_.at("o").buf.get();
    qp.w_out = ws_.at("w").buf.get();
    qp.den = ws_.at("den").as<float>();
    qp.delta = ws_.at("delta").as<float>();
    qp.T = static_cast<int>(p_.Tq), qp.Dk = static_cast<int>(p_.Dk), qp.Dv = static_cast<int>(p_.Dv);
    qp.normalize = true;
    launch_quad_prep(dt_, qp, static_cast<int>(p_.B * p_.H), stream_);
    const void* w = ws_.at("w").buf.get();
    const float* delta = ws_.at("delta").as<float>();
    la_pass(w, v, k, out("dq").buf.get(), p_.Dv, p_.Dk, false, delta, 1);
    la_pass(v, w, q, out("dk").buf.get(), p_.Dv, p_.Dk, true, delta, 2);
    la_pass(k, q, w, out("dv").buf.get(), p_.Dk, p_.Dv, true);
    return;
  }
  la_pass(dO, v, k, out("dq").buf.get(), p_.Dv, p_.Dk, false);
  la_pass(v, dO, q, out("dk").buf.get(), p_.Dv, p_.Dk, true);
  la_pass(k, q, dO, out("dv").buf.get(), p_.Dk, p_.Dv, true);
}

}  // namespace lin_tiled

namespace {

// based's quadratic regime (Dk = Dv in {64, 128}, normalize on) runs on the tiled softmax-family
// flash kernels (softmax/softmax_tiled_based.cu) unless ATTNBENCH_BASED_QUAD=mma asks for the
// quadratic mma.sync form of linear_family_tiled_quad.cuh (an A/B switch; it is also the form
// wherever the flash kernels do not apply).
bool based_flash(const Problem& p, Dtype dt) {
  if (p.algo != "based") return false;
  const char* e = std::getenv("ATTNBENCH_BASED_QUAD");
  if (e && std::strcmp(e, "mma") == 0) return false;
  if (e && *e && std::strcmp(e, "flash") != 0) {
    throw std::invalid_argument(std::string("ATTNBENCH_BASED_QUAD: expected flash or mma, got '") + e + "'");
  }
  return tiled_based_flash_supports(p, dt).ok;
}

void add_tiled(Registry& r, const std::string& algo, const std::string& summary) {
  Impl impl;
  impl.algo = algo;
  impl.name = "tiled";
  impl.device = Device::cuda;
  impl.summary = summary;
  impl.supports = [](const Problem& p, Pass pass, Dtype dt) { return lin_tiled::tiled_supports(p, pass, dt); };
  impl.prepare = [](const Problem& p, Pass pass, Dtype dt, const Tensors& in,
                    const PrepareOptions&) -> std::unique_ptr<Prepared> {
    if (based_flash(p, dt)) return make_tiled_based_flash(p, pass, dt, in);
    return std::make_unique<lin_tiled::ChunkTiled>(p, pass, dt, in);
  };
  r.add(impl);
}

}  // namespace

void register_linear_tiled(Registry& r) {
  add_tiled(r, "linear",
            "chunkwise (C=64) on tensor cores (mma.sync), fp32 state; bf16/fp16; Dk, Dv <= 256, multiples of 8");
}
void register_based_tiled(Registry& r) {
  add_tiled(r, "based",
            "Dk = Dv in {64, 128} with normalize: the tiled softmax-family flash kernels (wgmma + TMA, weight "
            "1 + s + s^2/2 as the score policy, sm_90); else forward chunkwise on Taylor features (F=160) for "
            "Dk <= 16 or quadratic tiled; backward chunkwise on the features for Dk <= 16 (dq on wgmma on sm_90, "
            "ATTNBENCH_BASED_DQ=mma: mma.sync; ATTNBENCH_BASED_BWD=quad: the quadratic form), else quadratic tiled "
            "(mma.sync); bf16/fp16; Dk, Dv <= 128");
}
void register_gated_tiled(Registry& r) {
  add_tiled(r, "gated",
            "chunkwise (C=64) on tensor cores, gate as policy (scalar / vector with 16-row sub-blocks); backward: "
            "three passes (fixed gates) or state scans + chunk-parallel gradients (fp32 gate terms); bf16/fp16; "
            "Dk, Dv <= 128");
}

}  // namespace attnbench::kernels
