#include "sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "core/algos.h"
#include "core/gpu.h"
#include "check.h"
#include "core/numerics.h"
#include "errors.h"
#include "host_info.h"

namespace attnbench {
namespace {

std::string num(double v, const char* spec = "{:.6g}") {
  if (std::isnan(v)) return "";
  return fmt::format(fmt::runtime(spec), v);
}

uint64_t point_seed(uint64_t seed, const Problem& p, Dtype dt) {
  const std::string key = fmt::format("{}/{}/{}/{}/{}/{}", p.algo, p.variant, p.shape_string(), p.params_string(),
                                      dtype_name(dt), seed);
  return std::hash<std::string>{}(key);
}

std::vector<std::string> variants_for(const AlgoSpec& a, const std::vector<std::string>& asked) {
  if (a.variants.empty()) return {""};
  if (asked.empty()) return a.variants;
  std::vector<std::string> out;
  for (const auto& v : asked) {
    if (std::find(a.variants.begin(), a.variants.end(), v) != a.variants.end()) out.push_back(v);
  }
  return out;
}

}  // namespace

std::vector<const Impl*> select_impls(const std::string& algo, const std::vector<std::string>& names) {
  std::vector<const Impl*> out;
  if (names.empty()) {
    for (const Impl* i : registry().for_algo(algo)) {
      if (i->device == Device::cpu || gpu_info().available) out.push_back(i);
    }
    return out;
  }
  for (const auto& n : names) {
    if (const Impl* i = registry().find(algo, n)) out.push_back(i);
  }
  return out;
}

std::vector<SweepPoint> expand_points(const SweepOptions& opt) {
  if (opt.algos.empty()) throw UsageError("--algo: no algorithm given");
  for (const auto& a : opt.algos) {
    if (!find_algo(a)) throw UsageError(fmt::format("--algo: unknown algorithm '{}' (known: {})", a, algo_ids_joined()));
  }
  for (const auto& v : opt.variants) {
    bool known = false;
    for (const auto& a : opt.algos) {
      const auto& vs = find_algo(a)->variants;
      known = known || std::find(vs.begin(), vs.end(), v) != vs.end();
    }
    if (!known) throw UsageError(fmt::format("--variant: '{}' is not a variant of {}", v, fmt::join(opt.algos, ", ")));
  }
  for (const auto& n : opt.impls) {
    bool known = false;
    std::string have;
    for (const auto& a : opt.algos) {
      known = known || registry().find(a, n);
      for (const Impl* i : registry().for_algo(a)) have += (have.empty() ? "" : ", ") + a + "/" + i->name;
    }
    if (!known) throw UsageError(fmt::format("--impl: unknown implementation '{}' (registered: {})", n, have));
  }
  if (opt.dtypes.empty()) throw UsageError("--dtype: no dtype given");
  if (opt.passes.empty()) throw UsageError("--pass: no pass given");
  if (!(opt.k > 0) || !std::isfinite(opt.k)) throw UsageError(fmt::format("--k: must be a positive number (got {})", opt.k));

  const std::vector<AxisPoint> shapes = opt.axes.expand();
  std::vector<SweepPoint> points;
  for (const auto& algo : opt.algos) {
    const AlgoSpec& spec = *find_algo(algo);
    for (const auto& variant : variants_for(spec, opt.variants)) {
      std::vector<int> causals = opt.causal;
      if (spec.causal == CausalMode::always) causals = {1};
      if (spec.causal == CausalMode::never) causals = {0};
      const bool has_norm = algo == "linear" || algo == "based";
      const std::vector<int> norms = has_norm ? opt.normalize : std::vector<int>{-1};
      const std::vector<FeatureMap> fmaps = algo == "bidir" ? opt.feature_maps : std::vector<FeatureMap>{FeatureMap::identity};
      for (int norm : norms) {
        for (FeatureMap fm : fmaps) {
          for (Dtype dt : opt.dtypes) {
            for (int causal : causals) {
              for (const auto& s : shapes) {
                Problem p;
                p.algo = algo;
                p.variant = variant;
                p.params = opt.params;
                p.params.normalize = norm;
                p.params.feature_map = fm;
                p.causal = causal != 0;
                p.B = s.at("B");
                p.H = s.at("H");
                p.Hkv = spec.softmax_family ? s.at("Hkv") : p.H;
                p.Tq = s.at("Tq");
                p.Tk = s.at("Tk");
                p.Dk = s.at("Dk");
                p.Dv = s.at("Dv");
                const std::string err = validate_problem(p);
                if (!err.empty()) throw UsageError(err + " at " + p.shape_string());
                points.push_back({p, dt});
              }
            }
          }
        }
      }
    }
  }
  return points;
}

SweepStats run_sweep(const SweepOptions& opt, CsvWriter& csv, std::FILE* progress) {
  const std::vector<SweepPoint> points = expand_points(opt);
  std::size_t total_rows = 0;
  for (const auto& pt : points) total_rows += select_impls(pt.problem.algo, opt.impls).size() * opt.passes.size();

  const GpuInfo& gpu = gpu_info();
  const std::string cpu_name = "cpu: " + cpu_model();
  const auto t_start = std::chrono::steady_clock::now();
  SweepStats st;
  std::size_t row_no = 0;

  for (const auto& pt : points) {
    const Problem& p = pt.problem;
    const std::vector<const Impl*> impls = select_impls(p.algo, opt.impls);
    if (impls.empty()) continue;
    const Pass draw_pass = std::find(opt.passes.begin(), opt.passes.end(), Pass::bwd) != opt.passes.end() ? Pass::bwd : Pass::fwd;
    const Tensors inputs = make_inputs(p, draw_pass, pt.dtype, point_seed(opt.seed, p, pt.dtype));
    CheckSources sources(p, pt.dtype, inputs, opt.oracle);

    for (Pass pass : opt.passes) {
      for (const Impl* impl : impls) {
        ++row_no;
        const bool on_gpu = impl->device == Device::cuda;
        CsvRow row = {{"algo", p.algo},
                      {"variant", p.variant},
                      {"impl", impl->name},
                      {"pass", std::string(pass_name(pass))},
                      {"dtype", std::string(dtype_name(pt.dtype))},
                      {"B", std::to_string(p.B)},
                      {"H", std::to_string(p.H)},
                      {"Hkv", std::to_string(p.Hkv)},
                      {"Tq", std::to_string(p.Tq)},
                      {"Tk", std::to_string(p.Tk)},
                      {"Dk", std::to_string(p.Dk)},
                      {"Dv", std::to_string(p.Dv)},
                      {"causal", p.causal ? "yes" : "no"},
                      {"params", p.params_string()},
                      {"flop_model", std::string(model_name(p))},
                      {"gpu", on_gpu ? gpu.name : cpu_name},
                      {"driver", on_gpu ? gpu.driver : ""},
                      {"cuda", on_gpu ? gpu.runtime : ""},
                      {"commit", git_commit()}};
        std::string status, detail;
        std::optional<Timing> timing;
        try {
          const Support sup = impl->supports(p, pass, pt.dtype);
          if (on_gpu && !gpu.available) {
            status = "skipped:" + gpu.why_not;
          } else if (!sup.ok) {
            status = "skipped:" + sup.reason;
          } else {
            auto prep = impl->prepare(p, pass, pt.dtype, inputs, PrepareOptions{});
            bool timed_ok = true;
            if (opt.check) {
              std::string why_ref, why_base, oracle_name;
              const Tensors* ref = sources.oracle(pass, impl->device, &why_ref, &oracle_name);
              const Tensors* base = ref ? sources.base(pass, impl->device, &why_base) : nullptr;
              if (!ref || !base) {
                status = "skipped:no oracle (" + (ref ? why_base : why_ref) + ")";
                timed_ok = false;
              } else {
                prep->poison_outputs();
                prep->run();
                const Verdict v = check_outputs(p, pass, pt.dtype, opt.k, prep->outputs(), *ref, *base);
                const TensorVerdict& w = v.worst();
                row["err"] = num(w.err);
                row["err_base"] = num(w.err_base);
                row["floor"] = num(w.floor);
                row["rel_rms"] = num(w.rel_rms);
                row["k"] = num(opt.k);
                row["oracle"] = oracle_name;
                row["worst"] = w.tensor;
                status = v.pass ? "pass" : "fail";
                detail = v.pass ? fmt::format("err {:.2e} (base {:.2e}, floor {:.2e}) in {}", w.err, w.err_base, w.floor, w.tensor)
                                : w.why;
                timed_ok = v.pass;
              }
            } else {
              status = "unchecked";  // not asked to be checked: timed, never called a pass
            }
            if (timed_ok && opt.time) {
              TimingOptions to = opt.timing;
              if (!on_gpu) {  // CPU references are slow: fewer warm-ups and samples
                to.warmup = std::min(to.warmup, 1);
                to.min_samples = std::min(to.min_samples, 3);
              }
              timing = on_gpu ? time_gpu(*prep, to) : time_cpu(*prep, to);
            }
          }
        } catch (const OutOfDeviceMemory&) {
          status = "skipped:out of device memory";
        } catch (const std::exception& e) {
          status = std::string("error:") + e.what();
        }
        row["status"] = status;
        if (timing) {
          const double ms = timing->median;
          row["ms_median"] = num(ms);
          row["ms_p20"] = num(timing->p20);
          row["ms_p80"] = num(timing->p80);
          row["ms_min"] = num(timing->min);
          row["noise"] = num(timing->noise, "{:.4f}");
          row["samples"] = std::to_string(timing->samples);
          const double flops = model_flops(p, pass);
          if (flops > 0) row["tflops"] = num(flops / (ms * 1e-3) / 1e12, "{:.4g}");
          if (is_memory_bound_family(p.algo)) {
            const double bytes = model_bytes(p, pass, pt.dtype);
            const double bw = on_gpu ? gpu_copy_bandwidth_gbps() : host_copy_bandwidth_gbps();
            row["gbps"] = num(bytes / (ms * 1e-3) / 1e9, "{:.4g}");
            row["floor_ms"] = num(bytes / (bw * 1e9) * 1e3);
          }
        }
        if (on_gpu) row["sm_clock_mhz"] = num(gpu_sm_clock_mhz(), "{:.0f}");
        row["timestamp"] = utc_timestamp();
        csv.write(row);

        ++st.rows;
        if (status == "pass") ++st.pass;
        else if (status == "unchecked") ++st.unchecked;
        else if (status == "fail") ++st.fail;
        else if (status.rfind("skipped:", 0) == 0) ++st.skipped;
        else ++st.error;

        if (progress) {
          const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
          std::string timing_text;
          if (timing) {
            timing_text = fmt::format("  {:.4g} ms", timing->median);
            if (!row["tflops"].empty()) timing_text += fmt::format(" {} TFLOP/s", row["tflops"]);
            if (!row["gbps"].empty()) timing_text += fmt::format(" {} GB/s", row["gbps"]);
          }
          const std::string label = p.variant.empty() ? p.algo : p.algo + "/" + p.variant;
          std::fprintf(progress, "[%*zu/%zu %5.1fs] %-18s %-8s %s %s %s  %s%s%s\n",
                       static_cast<int>(std::to_string(total_rows).size()), row_no, total_rows, elapsed, label.c_str(),
                       impl->name.c_str(), std::string(pass_name(pass)).c_str(),
                       std::string(dtype_name(pt.dtype)).c_str(), p.shape_string().c_str(), status.c_str(),
                       detail.empty() ? "" : (": " + detail).c_str(), timing_text.c_str());
          std::fflush(progress);
        }
      }
    }
  }
  return st;
}

}  // namespace attnbench
