#include "check.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/algos.h"

namespace attnbench {
namespace {

// The cost limit of a sampled reference: one head group of the largest published shapes.
constexpr double kSampledCostLimit = 6e12;

int pass_index(Pass p) { return p == Pass::fwd ? 0 : 1; }

// One (batch b, heads [h0, h0+nh), kv heads [hk0, hk0+nhk)) slice of the problem.
struct SliceSpec {
  int64_t b, h0, nh, hk0, nhk;
};

// The problem of a slice alone: one batch, its query and kv heads.
Problem slice_problem(const Problem& p, const SliceSpec& sl) {
  Problem sub = p;
  sub.B = 1, sub.H = sl.nh, sub.Hkv = sl.nhk;
  return sub;
}

SliceSpec last_slice(const Problem& p) {
  const AlgoSpec* a = find_algo(p.algo);
  if (a->softmax_family) return {p.B - 1, (p.Hkv - 1) * p.group(), p.group(), p.Hkv - 1, 1};
  // retention's and lightning's fixed gates are functions of the head index h (and H): a slice
  // of fewer heads would renumber them, so it keeps every head of the last batch.
  if (p.algo == "gated" && (p.variant == "retention" || p.variant == "lightning")) return {p.B - 1, 0, p.H, 0, p.H};
  return {p.B - 1, p.H - 1, 1, p.H - 1, 1};
}

// Copy the [b, heads] block between a full tensor and a sliced one. Axis 0 is batch and axis 1
// heads for [B,H,...] tensors; [H,...] tensors (rwkv6's u) have heads on axis 0.
void copy_block(const Tensor& from, Tensor& to, bool to_full, int64_t b, int64_t h0, int64_t nh, bool batched) {
  const Tensor& full = to_full ? to : from;
  const int64_t heads_full = batched ? full.shape[1] : full.shape[0];
  int64_t inner = 1;
  for (std::size_t d = batched ? 2 : 1; d < full.shape.size(); ++d) inner *= full.shape[d];
  for (int64_t h = 0; h < nh; ++h) {
    const int64_t full_off = ((batched ? b * heads_full : 0) + h0 + h) * inner;
    const int64_t part_off = h * inner;
    const double* src = from.ptr() + (to_full ? part_off : full_off);
    double* dst = to.ptr() + (to_full ? full_off : part_off);
    std::copy(src, src + inner, dst);
  }
}

}  // namespace

std::optional<OracleMode> parse_oracle_mode(const std::string& s) {
  if (s == "auto") return OracleMode::automatic;
  if (s == "ref") return OracleMode::ref;
  if (s == "sampled" || s == "ref-sampled") return OracleMode::sampled;
  if (s == "naive" || s == "naive-fp32") return OracleMode::naive;
  return std::nullopt;
}

Verdict check_outputs(const Problem& p, Pass pass, Dtype dt, double k, const Tensors& x, const Tensors& ref,
                      const Tensors& base) {
  Verdict v;
  v.pass = true;
  double pass_scale = 0;  // the largest |ref| of the pass: the rounding scale of its computation
  for (const auto& spec : pass_outputs(p, pass)) {
    if (ref.count(spec.name)) pass_scale = std::max(pass_scale, max_abs_finite(ref.at(spec.name)));
  }
  for (const auto& spec : pass_outputs(p, pass)) {
    const Dtype store = spec.stored_as(dt);
    TensorVerdict tv;
    if (!x.count(spec.name) || !ref.count(spec.name) || !base.count(spec.name)) {
      tv.tensor = spec.name;
      tv.k = k;
      tv.why = fmt::format("{}: missing from {}", spec.name,
                           !x.count(spec.name) ? "the output" : !ref.count(spec.name) ? "the oracle" : "the base");
    } else {
      tv = check_tensor(spec.name, x.at(spec.name), ref.at(spec.name), base.at(spec.name), dt, store, k, pass_scale);
    }
    v.pass = v.pass && tv.pass;
    v.tensors.push_back(std::move(tv));
  }
  return v;
}

void CheckSources::fill(Slot& s, const Impl* impl, Pass pass, Dtype dt, const PrepareOptions& o, const char* missing) {
  s.done = true;
  if (!impl) {
    s.why = missing;
    return;
  }
  const Support sup = impl->supports(p_, pass, dt);
  if (!sup.ok) {
    s.why = fmt::format("{}: {}", impl->name, sup.reason);
    return;
  }
  auto prep = impl->prepare(p_, pass, dt, in_, o);
  prep->poison_outputs();
  prep->run();
  s.value = prep->outputs();
}

void CheckSources::fill_sampled(Slot& s, Pass pass) {
  s.done = true;
  s.name = "ref-sampled";
  const Impl* ref = registry().find(p_.algo, "ref");
  if (!ref) {
    s.why = "no fp64 reference";
    return;
  }
  const SliceSpec sl = last_slice(p_);
  const Problem sub = slice_problem(p_, sl);
  // The reference's own operation count of the slice (the recurrent gated reference is linear in
  // T, the quadratic ones are not); else the FLOP model, else a quadratic estimate.
  const double full_heads = static_cast<double>(p_.B * p_.H), sub_heads = static_cast<double>(sl.nh);
  const double cost = ref->cost ? ref->cost(sub, pass)
                      : model_flops(p_, pass) > 0
                          ? model_flops(p_, pass) * sub_heads / full_heads * 1.4
                          : 4.0 * static_cast<double>(p_.Tq) * static_cast<double>(p_.Tk) * static_cast<double>(p_.Dk + p_.Dv) * sub_heads;
  if (cost > kSampledCostLimit) {
    s.why = fmt::format("ref-sampled: one slice costs ~{:.0e} flop > {:.0e}", cost, kSampledCostLimit);
    return;
  }
  // The slice's own cost limit above stands in for the reference's limit on whole problems.
  fill_on_slice(s, ref, pass, dt_, PrepareOptions{}, "no fp64 reference", false);
  s.name = fmt::format("ref-sampled(b={},h={}..{})", sl.b, sl.h0, sl.h0 + sl.nh - 1);
}

// Runs `impl` on the last (batch, head-group) slice alone and places its outputs in full-size
// tensors that are NaN elsewhere (NaN in the oracle: not compared).
void CheckSources::fill_on_slice(Slot& s, const Impl* impl, Pass pass, Dtype dt, const PrepareOptions& o,
                                 const char* missing, bool check_support) {
  s.done = true;
  if (!impl) {
    s.why = missing;
    return;
  }
  const SliceSpec sl = last_slice(p_);
  const Problem sub = slice_problem(p_, sl);
  const Support sup = check_support ? impl->supports(sub, pass, dt) : Support::yes();
  if (!sup.ok) {
    s.why = fmt::format("{}: {}", impl->name, sup.reason);
    return;
  }
  // Slice every input: [B,H,...] on (b, query heads) or (b, kv heads); [H,...] on heads.
  const AlgoSpec* a = find_algo(p_.algo);
  auto kv_input = [&](const std::string& n) { return a->softmax_family && (n[0] == 'k' || n[0] == 'v'); };
  Tensors in;
  for (const auto& [name, full] : in_) {
    const bool batched = full.shape.size() >= 3 || (full.shape.size() == 2 && full.shape[0] == p_.B && name != "u");
    const bool kv = kv_input(name);
    std::vector<int64_t> shape = full.shape;
    if (batched) {
      shape[0] = 1;
      shape[1] = kv ? sl.nhk : sl.nh;
    } else {
      shape[0] = sl.nh;
    }
    Tensor part(shape);
    copy_block(full, part, false, sl.b, kv ? sl.hk0 : sl.h0, kv ? sl.nhk : sl.nh, batched);
    in.emplace(name, std::move(part));
  }
  auto prep = impl->prepare(sub, pass, dt, in, o);
  prep->poison_outputs();
  prep->run();
  const Tensors part = prep->outputs();
  Tensors out;
  for (const auto& spec : pass_outputs(p_, pass)) {
    Tensor full(spec.shape, NAN);
    const Tensor& got = part.at(spec.name);
    const bool batched = spec.shape.size() >= 3;
    if (batched) {
      const bool kv = kv_input(spec.name.substr(1));
      copy_block(got, full, true, sl.b, kv ? sl.hk0 : sl.h0, kv ? sl.nhk : sl.nh, true);
    } else if (p_.B == 1) {
      copy_block(got, full, true, 0, sl.h0, sl.nh, false);
    }
    out.emplace(spec.name, std::move(full));
  }
  s.value = std::move(out);
}

// The fp32 naive run is an oracle for the outputs stored in the run's dtype (fp16/bf16 rounding
// dwarfs its fp32 error), not for outputs stored in fp32 (lse, gate gradients): there it computes
// exactly what the same-precision base computes, so err_base = floor = 0 and any other correct
// summation order would fail. Those tensors come from the fp64 reference on one slice instead
// (NaN elsewhere: not compared); when that slice is too costly they stay naive-fp32, and the
// oracle's name says which.
void CheckSources::with_fp32_outputs_from_sampled(Slot& s, Pass pass) {
  std::vector<std::string> fp32;
  for (const auto& spec : pass_outputs(p_, pass)) {
    if (!spec.storage_dtype) fp32.push_back(spec.name);
  }
  if (fp32.empty()) return;
  Slot& sm = sampled_[pass_index(pass)];
  if (!sm.done) fill_sampled(sm, pass);
  if (!sm.value) {
    s.name += fmt::format(" ({} unchecked by fp64: {})", fmt::join(fp32, "+"), sm.why);
    return;
  }
  for (const auto& n : fp32) s.value->at(n) = sm.value->at(n);
  s.name += fmt::format("; {}: {}", fmt::join(fp32, "+"), sm.name);
}

const Tensors* CheckSources::oracle(Pass pass, Device device, std::string* why, std::string* oracle_name) {
  const int i = pass_index(pass);
  const Impl* ref = registry().find(p_.algo, "ref");
  const Impl* naive = registry().find(p_.algo, "naive");
  OracleMode mode = mode_;
  if (mode == OracleMode::automatic) {
    const bool ref_ok = ref && ref->supports(p_, pass, dt_).ok;
    const bool naive_ok = device == Device::cuda && dt_ != Dtype::f32 && naive && naive->supports(p_, pass, Dtype::f32).ok;
    mode = ref_ok ? OracleMode::ref : naive_ok ? OracleMode::naive : OracleMode::sampled;
  }
  Slot* s = nullptr;
  switch (mode) {
    case OracleMode::automatic:
    case OracleMode::ref:
      s = &ref_[i];
      if (!s->done) fill(*s, ref, pass, dt_, PrepareOptions{}, "no fp64 reference");
      s->name = "ref";
      break;
    case OracleMode::naive:
      s = &naive_fp32_[i];
      if (!s->done) {
        if (dt_ == Dtype::f32) {
          s->done = true;
          s->why = "naive-fp32 is no oracle for an fp32 run (use ref or sampled)";
          s->name = "naive-fp32";
        } else {
          fill(*s, naive, pass, Dtype::f32, PrepareOptions{}, "no naive CUDA kernel");
          s->name = "naive-fp32";
          if (s->value) with_fp32_outputs_from_sampled(*s, pass);
        }
      }
      break;
    case OracleMode::sampled:
      s = &sampled_[i];
      if (!s->done) fill_sampled(*s, pass);
      break;
  }
  sampled_oracle_[i] = mode == OracleMode::sampled;
  *why = s->why;
  if (oracle_name) *oracle_name = s->name;
  return s->value ? &*s->value : nullptr;
}

const Tensors* CheckSources::base(Pass pass, Device device, std::string* why) {
  const int i = pass_index(pass);
  if (device == Device::cuda) {
    // Against a sampled oracle only its slice is compared: the base runs on that slice alone.
    Slot& s = gpu_base_[i];
    const Impl* naive = registry().find(p_.algo, "naive");
    if (!s.done && sampled_oracle_[i]) fill_on_slice(s, naive, pass, dt_, PrepareOptions{true}, "no naive CUDA kernel");
    if (!s.done) fill(s, naive, pass, dt_, PrepareOptions{true}, "no naive CUDA kernel");
    if (s.value) {
      *why = "";
      return &*s.value;
    }
  }
  Slot& s = cpu_base_[i];
  const Impl* emul = registry().find(p_.algo, "emul");
  if (!s.done && sampled_oracle_[i]) fill_on_slice(s, emul, pass, dt_, PrepareOptions{}, "no CPU emulation");
  if (!s.done) fill(s, emul, pass, dt_, PrepareOptions{}, "no CPU emulation");
  *why = s.why;
  return s.value ? &*s.value : nullptr;
}

}  // namespace attnbench
