#include "sweep.h"

#include <algorithm>
#include <functional>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/algos.h"
#include "core/gpu.h"
#include "errors.h"
#include "host_info.h"
#include "interrupt.h"
#include "row_runner.h"
#include "worker.h"

namespace attnbench {
namespace {

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

uint64_t point_seed(uint64_t seed, const Problem& p, Dtype dt) {
  const std::string key = fmt::format("{}/{}/{}/{}/{}/{}", p.algo, p.variant, p.shape_string(), p.params_string(),
                                      dtype_name(dt), seed);
  return std::hash<std::string>{}(key);
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
  if (!(opt.row_timeout_s >= 0) || !std::isfinite(opt.row_timeout_s)) {
    throw UsageError(fmt::format("--row-timeout: must be a number of seconds >= 0 (got {})", opt.row_timeout_s));
  }
  for (const auto& spec : opt.inject_nonfinite) {
    const auto colon = spec.find(':');
    const std::string name = spec.substr(0, colon), kind = colon == std::string::npos ? "nan" : spec.substr(colon + 1);
    if (kind != "nan" && kind != "inf" && kind != "-inf") {
      throw UsageError(fmt::format("--inject-nonfinite: '{}': the value must be nan, inf or -inf", spec));
    }
    std::set<std::string> names;
    for (const auto& a : opt.algos) {
      Problem p;
      p.algo = a;
      p.variant = find_algo(a)->variants.empty() ? "" : find_algo(a)->variants.back();  // rwkv6 has every gate input
      for (const auto& in : forward_inputs(p)) names.insert(in.name);
    }
    names.insert("do");
    if (!names.count(name)) {
      throw UsageError(fmt::format("--inject-nonfinite: '{}' is not an input of {} (inputs: {})", name,
                                   fmt::join(opt.algos, ", "), fmt::join(names, ", ")));
    }
  }

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


std::vector<SweepRow> plan_rows(const SweepOptions& opt, const std::vector<SweepPoint>& points) {
  std::vector<SweepRow> rows;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const std::vector<const Impl*> impls = select_impls(points[i].problem.algo, opt.impls);
    for (Pass pass : opt.passes) {
      for (const Impl* impl : impls) rows.push_back({i, pass, impl});
    }
  }
  return rows;
}

CsvRow row_identity(const SweepPoint& pt, const Impl& impl, Pass pass) {
  return row_identity(pt, impl.name, impl.device, pass);
}

CsvRow row_identity(const SweepPoint& pt, const std::string& impl, Device device, Pass pass) {
  const Problem& p = pt.problem;
  const bool on_gpu = device == Device::cuda;
  const GpuInfo& gpu = gpu_info();
  static const std::string cpu_name = "cpu: " + cpu_model();
  return {{"algo", p.algo},
          {"variant", p.variant},
          {"impl", impl},
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
}

std::string row_key(const CsvRow& row) {
  std::string key;
  for (const char* c : {"algo", "variant", "impl", "pass", "dtype", "B", "H", "Hkv", "Tq", "Tk", "Dk", "Dv", "causal",
                        "params"}) {
    const auto it = row.find(c);
    key += (it == row.end() ? std::string() : it->second) + '\x1f';
  }
  return key;
}

std::vector<std::string> existing_row_keys(const std::string& path) {
  std::vector<std::string> keys;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw UsageError(fmt::format("--out: '{}' is a directory; give a file path", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) return keys;  // nothing yet: nothing to skip
  in.seekg(0, std::ios::end);
  if (in.tellg() <= 0) return keys;
  in.seekg(-1, std::ios::end);
  if (in.get() != '\n') {
    throw UsageError(fmt::format("--resume: '{}' ends in a partial row (no newline at the end); remove that line first", path));
  }
  const CsvTable t = read_csv(path, "--resume");
  for (const char* c : {"algo", "impl", "pass", "params", "status"}) {
    if (std::find(t.header.begin(), t.header.end(), c) == t.header.end()) {
      throw UsageError(fmt::format("--resume: '{}' is not an attnbench CSV (no column '{}')", path, c));
    }
  }
  for (const auto& r : t.rows) keys.push_back(row_key(r));
  return keys;
}

namespace {

void print_progress(std::FILE* progress, std::size_t row_no, std::size_t total, double elapsed, const SweepPoint& pt,
                    const SweepRow& r, const RowResult& res) {
  const Problem& p = pt.problem;
  auto col = [&res](const char* c) {
    const auto it = res.row.find(c);
    return it == res.row.end() ? std::string() : it->second;
  };
  std::string timing_text;
  if (!col("ms_median").empty()) {
    timing_text = fmt::format("  {:.4g} ms", std::stod(col("ms_median")));
    if (!col("tflops").empty()) timing_text += " " + col("tflops") + " TFLOP/s";
    if (!col("gbps").empty()) timing_text += " " + col("gbps") + " GB/s";
  }
  const std::string label = p.variant.empty() ? p.algo : p.algo + "/" + p.variant;
  const std::string status = col("status");
  std::fprintf(progress, "[%*zu/%zu %5.1fs] %-18s %-8s %s %s %s  %s%s%s\n", static_cast<int>(std::to_string(total).size()),
               row_no, total, elapsed, label.c_str(), r.impl->name.c_str(), std::string(pass_name(r.pass)).c_str(),
               std::string(dtype_name(pt.dtype)).c_str(), p.shape_string().c_str(), status.c_str(),
               res.detail.empty() ? "" : (": " + res.detail).c_str(), timing_text.c_str());
  std::fflush(progress);
}

}  // namespace

SweepStats run_sweep(const SweepOptions& opt, CsvWriter& csv, std::FILE* progress) {
  const std::vector<SweepPoint> points = expand_points(opt);
  const std::vector<SweepRow> rows = plan_rows(opt, points);
  SweepStats st;
  std::vector<std::size_t> todo;
  if (opt.resume) {
    const std::vector<std::string> have = existing_row_keys(csv.path());
    const std::set<std::string> done(have.begin(), have.end());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (done.count(row_key(row_identity(points[rows[i].point], *rows[i].impl, rows[i].pass)))) {
        ++st.resumed;
      } else {
        todo.push_back(i);
      }
    }
    if (progress) {
      std::fprintf(progress, "resume: %d of %zu rows are already in %s; running the other %zu\n", st.resumed,
                   rows.size(), csv.path().c_str(), todo.size());
    }
  } else {
    for (std::size_t i = 0; i < rows.size(); ++i) todo.push_back(i);
  }

  InterruptGuard guard(csv.path());
  std::unique_ptr<Worker> worker;
  std::unique_ptr<RowRunner> runner;
  if (opt.isolate) {
    worker = std::make_unique<Worker>(opt, points, rows);
  } else {
    runner = std::make_unique<RowRunner>(opt, points);
  }
  const auto t_start = std::chrono::steady_clock::now();
  std::size_t row_no = 0;
  for (const std::size_t id : todo) {
    const SweepRow& r = rows[id];
    const RowResult res = worker ? worker->run(id) : runner->run(r);
    RowWriteSection writing;  // a signal now waits until the row and its progress line are out
    csv.write(res.row);
    ++row_no;
    ++st.rows;
    const std::string& status = res.row.at("status");
    if (status == "pass") ++st.pass;
    else if (status == "unchecked") ++st.unchecked;
    else if (status == "fail") ++st.fail;
    else if (status.rfind("skipped:", 0) == 0) ++st.skipped;
    else ++st.error;
    if (progress) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      print_progress(progress, row_no, todo.size(), elapsed, points[r.point], r, res);
    }
  }
  return st;
}

}  // namespace attnbench
