#include "row_runner.h"

#include "dump.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <new>

#include <fmt/format.h>

#include "check.h"
#include "core/algos.h"
#include "core/gpu.h"
#include "core/numerics.h"
#include "host_info.h"

namespace attnbench {
namespace {

std::string num(double v, const char* spec = "{:.6g}") {
  if (std::isnan(v)) return "";
  return fmt::format(fmt::runtime(spec), v);
}

// A rough count of the fp64 host bytes one point needs: its inputs twice (the drawn ones and an
// implementation's copy) and the outputs of both passes three times (oracle, base, the run under
// test). Points beyond the machine's memory are skipped instead of drawn.
double host_bytes_needed(const Problem& p, bool bwd) {
  double in = 0, out = 0;
  for (const auto& s : forward_inputs(p)) in += static_cast<double>(Tensor::count(s.shape));
  for (const auto& s : pass_outputs(p, Pass::fwd)) out += static_cast<double>(Tensor::count(s.shape));
  if (bwd) {
    in += static_cast<double>(p.B * p.H * p.Tq * p.Dv);  // do
    for (const auto& s : pass_outputs(p, Pass::bwd)) out += static_cast<double>(Tensor::count(s.shape));
  }
  return 8.0 * (2.0 * in + 3.0 * out);
}

double host_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : INFINITY;
}

}  // namespace

std::string nonfinite_summary(const Tensors& inputs) {
  std::string out;
  for (const auto& [name, t] : inputs) {
    int64_t nan = 0, inf = 0;
    for (double v : t.data) {
      nan += std::isnan(v);
      inf += std::isinf(v);
    }
    if (nan + inf == 0) continue;
    std::string what;
    if (nan) what = fmt::format("{} NaN", nan);
    if (inf) what += fmt::format("{}{} Inf", what.empty() ? "" : ", ", inf);
    out += fmt::format("{}{}: {}", out.empty() ? "" : "; ", name, what);
  }
  return out;
}

void inject_nonfinite(const std::vector<std::string>& specs, Tensors& inputs) {
  for (const auto& spec : specs) {
    const auto colon = spec.find(':');
    const std::string name = spec.substr(0, colon), kind = colon == std::string::npos ? "nan" : spec.substr(colon + 1);
    auto it = inputs.find(name);
    if (it == inputs.end() || it->second.data.empty()) continue;
    const double v = kind == "inf" ? INFINITY : kind == "-inf" ? -INFINITY : NAN;
    it->second.data[it->second.data.size() / 2] = v;
  }
}

// The state kept while consecutive rows share a point.
struct RowRunner::PointState {
  std::size_t index = 0;
  std::string skip;       // every row of the point gets this status (host memory)
  std::string nonfinite;  // non-finite inputs: every row is an error saying so
  std::unique_ptr<Tensors> inputs;
  std::unique_ptr<CheckSources> sources;  // reads *inputs; dropped after a row throws (recomputed)
};

RowRunner::RowRunner(const SweepOptions& opt, const std::vector<SweepPoint>& points) : opt_(opt), points_(points) {}
RowRunner::~RowRunner() = default;

void RowRunner::load_point(std::size_t index) {
  if (cur_ && cur_->index == index) {
    if (!cur_->sources && cur_->inputs) {
      const SweepPoint& pt = points_[index];
      cur_->sources = std::make_unique<CheckSources>(pt.problem, pt.dtype, *cur_->inputs, opt_.oracle);
    }
    return;
  }
  cur_.reset();  // free the previous point's tensors first
  auto st = std::make_unique<PointState>();
  st->index = index;
  const SweepPoint& pt = points_[index];
  const Problem& p = pt.problem;
  const bool bwd = std::find(opt_.passes.begin(), opt_.passes.end(), Pass::bwd) != opt_.passes.end();
  const double need = host_bytes_needed(p, bwd), have = host_memory_bytes();
  if (need > have) {
    st->skip = fmt::format("skipped:out of host memory (the point needs ~{:.0f} GiB of fp64 host tensors; the host has {:.0f} GiB)",
                           need / (1 << 30), have / (1 << 30));
    cur_ = std::move(st);
    return;
  }
  try {
    st->inputs = std::make_unique<Tensors>(make_inputs(p, bwd ? Pass::bwd : Pass::fwd, pt.dtype, point_seed(opt_.seed, p, pt.dtype)));
  } catch (const std::bad_alloc&) {
    st->skip = "skipped:out of host memory (drawing the inputs)";
    cur_ = std::move(st);
    return;
  }
  inject_nonfinite(opt_.inject_nonfinite, *st->inputs);
  st->nonfinite = nonfinite_summary(*st->inputs);
  st->sources = std::make_unique<CheckSources>(p, pt.dtype, *st->inputs, opt_.oracle);
  cur_ = std::move(st);
}

RowResult RowRunner::run(const SweepRow& r) {
  const SweepPoint& pt = points_[r.point];
  const Problem& p = pt.problem;
  const Impl* impl = r.impl;
  const Pass pass = r.pass;
  const bool on_gpu = impl->device == Device::cuda;
  const GpuInfo& gpu = gpu_info();
  RowResult res{row_identity(pt, *impl, pass), ""};
  CsvRow& row = res.row;
  std::string status;
  Timing timing;
  bool timed = false;
  double copy_gbps = NAN;  // the bandwidth ceiling of memory-bound families' floor_ms
  try {
    const Support sup = impl->supports(p, pass, pt.dtype);
    if (on_gpu && !gpu.available) {
      status = "skipped:" + gpu.why_not;
    } else if (!sup.ok) {
      status = "skipped:" + sup.reason;
    } else if (on_gpu && !gpu_broken_.empty()) {
      status = "error:CUDA context unusable after an earlier fault in this process (" + gpu_broken_ + ")";
    } else {
      load_point(r.point);
    }
    if (!status.empty()) {
      // decided above: nothing to run
    } else if (!cur_->skip.empty()) {
      status = cur_->skip;
    } else if (!cur_->nonfinite.empty()) {
      status = "error:non-finite inputs (" + cur_->nonfinite + ")";
    } else {
      auto prep = impl->prepare(p, pass, pt.dtype, *cur_->inputs, PrepareOptions{});
      bool timed_ok = true;
      if (opt_.check) {
        std::string why_ref, why_base, oracle_name;
        CheckSources& sources = *cur_->sources;
        const Tensors* ref = sources.oracle(pass, impl->device, &why_ref, &oracle_name);
        const Tensors* base = ref ? sources.base(pass, impl->device, &why_base) : nullptr;
        if (!ref || !base) {
          status = "skipped:no oracle (" + (ref ? why_base : why_ref) + ")";
          timed_ok = false;
        } else {
          prep->poison_outputs();
          prep->run();
          const Tensors out = prep->outputs();
          const Verdict v = check_outputs(p, pass, pt.dtype, opt_.k, out, *ref, *base);
          if (!opt_.dump_dir.empty()) {
            dump_point(opt_.dump_dir, dump_tag(p, impl->name, pass, pt.dtype), *cur_->inputs, out, ref, base);
          }
          const TensorVerdict& w = v.worst();
          row["err"] = num(w.err);
          row["err_base"] = num(w.err_base);
          row["floor"] = num(w.floor);
          row["rel_rms"] = num(w.rel_rms);
          row["k"] = num(opt_.k);
          row["oracle"] = oracle_name;
          row["worst"] = w.tensor;
          status = v.pass ? "pass" : "fail";
          res.detail = v.pass ? fmt::format("err {:.2e} (base {:.2e}, floor {:.2e}) in {}", w.err, w.err_base, w.floor, w.tensor)
                              : w.why;
          timed_ok = v.pass;
        }
      } else {
        status = "unchecked";  // not asked to be checked: timed, never called a pass
        if (!opt_.dump_dir.empty()) {
          prep->run();
          dump_point(opt_.dump_dir, dump_tag(p, impl->name, pass, pt.dtype), *cur_->inputs, prep->outputs(), nullptr);
        }
      }
      if (timed_ok && opt_.time) {
        TimingOptions to = opt_.timing;
        if (!on_gpu) {  // CPU references are slow: fewer warm-ups and samples
          to.warmup = std::min(to.warmup, 1);
          to.min_samples = std::min(to.min_samples, 3);
        }
        timing = on_gpu ? time_gpu(*prep, to) : time_cpu(*prep, to);
        timed = true;
        if (is_memory_bound_family(p.algo)) copy_gbps = on_gpu ? gpu_copy_bandwidth_gbps() : host_copy_bandwidth_gbps();
      }
    }
  } catch (const OutOfDeviceMemory&) {
    status = "skipped:out of device memory";
    timed = false;
    if (cur_) cur_->sources.reset();  // an oracle or base that ran out is tried again next row
  } catch (const std::bad_alloc&) {
    status = "skipped:out of host memory";
    timed = false;
    if (cur_) cur_->sources.reset();
  } catch (const std::exception& e) {
    status = std::string("error:") + e.what();
    timed = false;
    if (cur_) cur_->sources.reset();
  }
  // A CUDA row that failed may have been a fault that poisons the context (illegal address):
  // ask the device once, so later rows say so instead of each repeating the fault.
  if (on_gpu && gpu.available && gpu_broken_.empty() && status.rfind("error:", 0) == 0) gpu_broken_ = gpu_sticky_error();
  std::replace(status.begin(), status.end(), '\n', ' ');  // one line, in the CSV and the progress line
  std::replace(status.begin(), status.end(), '\r', ' ');
  row["status"] = status;
  if (timed) {
    const double ms = timing.median;
    row["ms_median"] = num(ms);
    row["ms_p20"] = num(timing.p20);
    row["ms_p80"] = num(timing.p80);
    row["ms_min"] = num(timing.min);
    row["noise"] = num(timing.noise, "{:.4f}");
    row["samples"] = std::to_string(timing.samples);
    const double flops = model_flops(p, pass);
    if (flops > 0) row["tflops"] = num(flops / (ms * 1e-3) / 1e12, "{:.4g}");
    if (is_memory_bound_family(p.algo)) {
      const double bytes = model_bytes(p, pass, pt.dtype);
      row["gbps"] = num(bytes / (ms * 1e-3) / 1e9, "{:.4g}");
      row["floor_ms"] = num(bytes / (copy_gbps * 1e9) * 1e3);
    }
  }
  if (on_gpu && gpu_broken_.empty()) row["sm_clock_mhz"] = num(gpu_sm_clock_mhz(), "{:.0f}");
  row["timestamp"] = utc_timestamp();
  return res;
}

}  // namespace attnbench
