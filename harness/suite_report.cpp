#include "suite_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/algos.h"
#include "errors.h"

namespace attnbench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

double to_double(const std::string& s) {
  if (s.empty()) return kNaN;
  try {
    std::size_t pos = 0;
    const double v = std::stod(s, &pos);
    return pos == s.size() && std::isfinite(v) ? v : kNaN;
  } catch (const std::exception&) {
    return kNaN;
  }
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep) out.emplace_back();
    else out.back() += c;
  }
  return out;
}

bool is_ms_metric(const std::string& m) { return m == "ms" || m == "ms_median" || m == "cuda_ms_total"; }

// One measured row, reduced to what the table needs.
struct Measured {
  std::string status, gpu, dtype;
  double ms = kNaN, tflops = kNaN;
  bool timed() const { return std::isfinite(ms) && ms > 0; }
};

std::string point_key(const std::string& algo, const std::string& variant, const std::string& impl,
                      const std::string& pass, const std::string& dtype, const std::string& B, const std::string& H,
                      const std::string& Tq, const std::string& Tk, const std::string& Dk, const std::string& Dv,
                      const std::string& causal) {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", algo, variant, impl, pass, dtype, B, H, Tq, Tk, Dk, Dv, causal);
}

// Measured rows by point; Hkv != H rows never match a published (MHA) point. Later rows win.
std::map<std::string, Measured> index_measured(const CsvTable& t) {
  std::map<std::string, Measured> idx;
  for (const auto& r : t.rows) {
    auto get = [&r](const char* c) {
      const auto it = r.find(c);
      return it == r.end() ? std::string() : it->second;
    };
    if (!get("Hkv").empty() && get("Hkv") != get("H")) continue;
    Measured m{get("status"), get("gpu"), get("dtype"), to_double(get("ms_median")), to_double(get("tflops"))};
    idx[point_key(get("algo"), get("variant"), get("impl"), get("pass"), get("dtype"), get("B"), get("H"), get("Tq"),
                  get("Tk"), get("Dk"), get("Dv"), get("causal"))] = m;
  }
  return idx;
}

// The measurement standing beside published row `p` for implementation `impl` in `dtype`;
// fwd+bwd adds our fwd and bwd medians. nullopt: no row at all.
std::optional<Measured> lookup(const std::map<std::string, Measured>& idx, const PublishedRow& p,
                               const std::string& impl, const std::string& dtype) {
  const std::string T = std::to_string(p.T);
  auto one = [&](const std::string& pass) -> std::optional<Measured> {
    const auto it = idx.find(point_key(p.algo, p.variant, impl, pass, dtype, std::to_string(p.B), std::to_string(p.H),
                                       T, T, std::to_string(p.Dk), std::to_string(p.Dv), p.causal));
    if (it == idx.end()) return std::nullopt;
    return it->second;
  };
  if (p.pass != "fwd+bwd") return one(p.pass);
  const auto f = one("fwd"), b = one("bwd");
  if (!f && !b) return std::nullopt;
  if (!f || !b) return Measured{f ? "no bwd row" : "no fwd row", (f ? f : b)->gpu, dtype};
  if (!f->timed()) return f;
  if (!b->timed()) return b;
  Measured m{f->status, f->gpu, dtype, f->ms + b->ms};
  if (std::isfinite(f->tflops) && std::isfinite(b->tflops)) m.tflops = (f->tflops * f->ms + b->tflops * b->ms) / m.ms;
  return m;
}

std::string fmt_value(double v, const std::string& metric) {
  if (!std::isfinite(v)) return "";
  return metric == "tflops" ? fmt::format("{:.4g} TFLOP/s", v) : fmt::format("{:.4g} ms", v);
}

std::string short_status(const std::string& s) {
  std::string out = s;
  if (out.rfind("skipped:", 0) == 0) out = "skipped (" + out.substr(8) + ")";
  else if (out.rfind("error:", 0) == 0) out = "error (" + out.substr(6) + ")";
  if (out.size() > 70) out = out.substr(0, 67) + "...";
  for (char& c : out) {
    if (c == '|') c = '/';
  }
  return out;
}

// The peak that bounds this point on `hw`: bandwidth (memory-bound), tensor or fp32 FLOP/s.
double peak_for(const HardwarePeak& hw, const std::string& algo, const std::string& dtype, std::string* what) {
  if (is_memory_bound_family(algo)) {
    *what = "bandwidth";
    return hw.bandwidth_tbs;
  }
  if (dtype == "fp32") {
    *what = "fp32 FLOP/s";
    return hw.fp32_tflops;
  }
  *what = "tensor FLOP/s";
  return hw.tensor_tflops;
}

// "| a | b |  | d |": one markdown table row (an empty cell is two spaces).
std::string md_row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const auto& c : cells) out += " " + c + " |";
  return out + "\n";
}

std::string shape_cell(const PublishedRow& p) {
  return p.Dk == p.Dv ? fmt::format("{}x{}x{} D={}", p.B, p.H, p.T, p.Dk)
                      : fmt::format("{}x{}x{} Dk={} Dv={}", p.B, p.H, p.T, p.Dk, p.Dv);
}

}  // namespace

const std::vector<HardwarePeak>& hardware_peaks() {
  // Dense (no sparsity) rates. Sources: NVIDIA datasheets (H100, H200, A100, A800) and the
  // GeForce RTX 30 series specifications; the GeForce fp16 tensor rate with fp32 accumulate is
  // half the fp16-accumulate rate (Ampere GA10x architecture whitepaper).
  static const std::vector<HardwarePeak> t = {
      {"H200 NVL", {"h200", "nvl"}, 4.8, 835, 60, "NVIDIA H200 NVL datasheet"},
      {"H200 SXM", {"h200"}, 4.8, 989, 67, "NVIDIA H200 datasheet (same SMs and clocks as H100 SXM)"},
      {"H100 PCIe", {"h100", "pcie"}, 2.0, 756, 51, "NVIDIA H100 datasheet"},
      {"H100 SXM5", {"h100"}, 3.35, 989, 67, "NVIDIA H100 datasheet (an H100 not named PCIe is taken as SXM)"},
      {"A100 PCIe 40GB", {"a100", "pcie", "40gb"}, 1.555, 312, 19.5, "NVIDIA A100 datasheet"},
      {"A100 PCIe 80GB", {"a100", "pcie"}, 1.935, 312, 19.5, "NVIDIA A100 datasheet"},
      {"A100 SXM4 40GB", {"a100", "40gb"}, 1.555, 312, 19.5, "NVIDIA A100 datasheet"},
      {"A100 SXM4 80GB", {"a100"}, 2.039, 312, 19.5, "NVIDIA A100 datasheet (an A100 not named otherwise)"},
      {"A800 80GB", {"a800"}, 2.0, 312, 19.5,
       "NVIDIA A800 datasheet: 1.935 (PCIe) to 2.039 (SXM) TB/s; the published table does not say which"},
      {"RTX 3090", {"3090"}, 0.936, 71, 35.6, "GeForce RTX 3090 specifications"},
      {"RTX 3060", {"3060"}, 0.36, 25.6, 12.7, "GeForce RTX 3060 12GB specifications"},
      {"A100 (assumed)", {"not stated (ampere)"}, kNaN, 312, 19.5,
       "FlagAttention v0.2 names no GPU; its README says tested on RTX-3090 and A100, and its 190 TFLOP/s "
       "exceeds an RTX 3090's 71, so A100; bandwidth unknown (its tables are compute-bound)"},
  };
  return t;
}

const HardwarePeak* find_hardware(const std::string& text) {
  const std::string s = lower(text);
  for (const auto& h : hardware_peaks()) {
    if (std::all_of(h.match.begin(), h.match.end(), [&s](const std::string& w) { return s.find(w) != std::string::npos; })) {
      return &h;
    }
  }
  return nullptr;
}

std::vector<PublishedRow> read_published(const std::string& path) {
  const CsvTable t = read_csv(path, "published");
  std::vector<std::string> missing;
  for (const char* c : {"source", "hardware", "algo", "variant", "provider", "pass", "dtype", "B", "H", "T", "Dk", "Dv",
                        "causal", "metric", "value"}) {
    if (std::find(t.header.begin(), t.header.end(), c) == t.header.end()) missing.push_back(c);
  }
  if (!missing.empty()) {
    throw UsageError(fmt::format("published: {}: not a published-numbers CSV (missing columns: {})", path, fmt::join(missing, ", ")));
  }
  std::vector<PublishedRow> out;
  int line = 1;
  for (const auto& r : t.rows) {
    ++line;
    PublishedRow p;
    p.line = line;
    p.source = r.at("source");
    p.hardware = r.at("hardware");
    p.algo = r.at("algo");
    p.variant = r.at("variant");
    p.provider = r.at("provider");
    p.pass = r.at("pass");
    p.dtype = r.at("dtype");
    p.causal = r.at("causal");
    p.metric = r.at("metric");
    if (r.count("note")) p.note = r.at("note");
    p.value = to_double(r.at("value"));
    const std::pair<const char*, long long*> ints[] = {{"B", &p.B}, {"H", &p.H}, {"T", &p.T}, {"Dk", &p.Dk}, {"Dv", &p.Dv}};
    for (const auto& [col, dst] : ints) {
      const double v = to_double(r.at(col));
      if (!(v >= 1) || v != std::floor(v)) throw UsageError(fmt::format("published: {}:{}: {} '{}' is not a size", path, line, col, r.at(col)));
      *dst = static_cast<long long>(v);
    }
    const AlgoSpec* spec = find_algo(p.algo);
    if (!spec) throw UsageError(fmt::format("published: {}:{}: unknown algo '{}'", path, line, p.algo));
    if (!(p.value > 0)) throw UsageError(fmt::format("published: {}:{}: value '{}' is not a positive number", path, line, r.at("value")));
    if (p.metric != "tflops" && !is_ms_metric(p.metric)) {
      throw UsageError(fmt::format("published: {}:{}: metric '{}' (allowed: tflops, ms, ms_median, cuda_ms_total)", path, line, p.metric));
    }
    if (p.pass != "fwd" && p.pass != "bwd" && p.pass != "fwd+bwd") {
      throw UsageError(fmt::format("published: {}:{}: pass '{}' (allowed: fwd, bwd, fwd+bwd)", path, line, p.pass));
    }
    if (p.causal != "yes" && p.causal != "no") throw UsageError(fmt::format("published: {}:{}: causal '{}' (yes or no)", path, line, p.causal));
    if (p.provider.empty()) throw UsageError(fmt::format("published: {}:{}: empty provider", path, line));
    out.push_back(std::move(p));
  }
  if (out.empty()) throw UsageError(fmt::format("published: {}: no rows", path));
  return out;
}

void check_providers(const Suite& s, const std::vector<PublishedRow>& pub) {
  std::set<std::string> published;
  for (const auto& p : pub) published.insert(p.provider);
  for (const auto& name : published) {
    const bool mapped = std::any_of(s.providers.begin(), s.providers.end(), [&name](const ProviderMap& m) { return m.provider == name; });
    if (!mapped) {
      throw UsageError(fmt::format("{}: published provider '{}' has no 'provider:' line (map it to impls, or to -)", s.path, name));
    }
  }
  for (const auto& m : s.providers) {
    if (!published.count(m.provider)) {
      throw UsageError(fmt::format("{}:{}: provider '{}' does not occur in {}", s.path, m.line, m.provider, s.published));
    }
  }
}

SuiteReport side_by_side(const Suite& s, const std::vector<PublishedRow>& pub, const CsvTable& measured) {
  const auto idx = index_measured(measured);
  SuiteReport rep;
  std::string& md = rep.markdown;
  std::set<std::string> sources, hardware, gpus;
  for (const auto& p : pub) sources.insert(p.source), hardware.insert(p.hardware);

  std::string body;
  body += "| algo | pass | dtype | BxHxT, D | causal | published: provider | value | ours: impl | measured | status | ours/published | hw-normalized |\n";
  body += "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::map<std::string, std::string> factors;  // "H200 SXM / A100 PCIe 40GB, bandwidth" -> "3.09"
  for (const auto& p : pub) {
    const ProviderMap* map = nullptr;
    for (const auto& m : s.providers) {
      if (m.provider == p.provider) map = &m;
    }
    const std::string algo = p.variant.empty() ? p.algo : p.algo + "/" + p.variant;
    const std::vector<std::string> head = {algo, p.pass, p.dtype, shape_cell(p), p.causal, p.provider,
                                           fmt_value(p.value, p.metric)};
    auto emit = [&body, &head](const std::vector<std::string>& ours) {
      std::vector<std::string> cells = head;
      cells.insert(cells.end(), ours.begin(), ours.end());
      body += md_row(cells);
    };
    if (!map || map->impls.empty()) {
      emit({"-", "", "no counterpart here", "", ""});
      ++rep.points, ++rep.unmapped;
      continue;
    }
    for (const auto& impl : map->impls) {
      bool any = false;
      for (const auto& dt : split(p.dtype, '/')) {
        const auto m = lookup(idx, p, impl, dt);
        if (!m) continue;
        any = true;
        ++rep.points;
        std::string status = short_status(m->status), value, ratio, norm;
        if (p.dtype.find('/') != std::string::npos) status += " [" + dt + "]";
        if (m->timed()) {
          ++rep.measured;
          gpus.insert(m->gpu);
          const double mv = p.metric == "tflops" ? m->tflops : m->ms;
          value = fmt_value(mv, p.metric == "tflops" ? "tflops" : "ms");
          const double r = p.metric == "tflops" ? mv / p.value : p.value / mv;
          if (std::isfinite(r)) ratio = fmt::format("{:.3g}x", r);
          const HardwarePeak* ours = find_hardware(m->gpu);
          const HardwarePeak* theirs = find_hardware(p.hardware);
          if (!ours || !theirs) {
            norm = fmt::format("n/a ({} peak unknown)", ours ? p.hardware : m->gpu);
          } else {
            std::string what;
            const double f = peak_for(*ours, p.algo, dt, &what) / peak_for(*theirs, p.algo, dt, &what);
            if (std::isfinite(f) && std::isfinite(r)) {
              norm = fmt::format("{:.3g}x", r / f);
              factors[fmt::format("{} / {}, {}", ours->name, theirs->name, what)] = fmt::format("{:.3g}", f);
            } else {
              norm = fmt::format("n/a ({} unknown)", what);
            }
          }
        } else {
          ++rep.skipped;
        }
        emit({impl, value, status, ratio, norm});
      }
      if (!any) {
        ++rep.points, ++rep.missing;
        const bool peer = std::find(peer_impl_names().begin(), peer_impl_names().end(), impl) != peer_impl_names().end();
        emit({impl, "", peer ? "not measured (a peer: scripts/peers.py rows)" : "not measured", "", ""});
      }
    }
  }

  md += fmt::format("## {}: measured vs published\n\n{}\n\n", s.name, s.description);
  md += fmt::format("- published: `{}` ({})\n", s.published, fmt::join(sources, "; "));
  for (const auto& h : hardware) {
    const HardwarePeak* hp = find_hardware(h);
    auto peak = [](double v) { return std::isfinite(v) ? fmt::format("{:g}", v) : std::string("n/a"); };
    md += hp ? fmt::format("- published hardware: {}, taken as {} (peaks: {} TB/s, {} TFLOP/s tensor, {} TFLOP/s fp32; {})\n", h,
                           hp->name, peak(hp->bandwidth_tbs), peak(hp->tensor_tflops), peak(hp->fp32_tflops), hp->source)
             : fmt::format("- published hardware: {} (peak unknown: no normalization)\n", h);
  }
  md += gpus.empty() ? "- measured: no timed rows at these points on this machine\n"
                     : fmt::format("- measured on: {}\n", fmt::join(gpus, "; "));
  for (const auto& [what, f] : factors) md += fmt::format("- hardware factor {}: {}\n", what, f);
  md += "- ours/published: speed ratio (TFLOP/s ours/theirs, or ms theirs/ours); hw-normalized: that ratio divided "
        "by the peak ratio (bandwidth for memory-bound ops, FLOP/s otherwise)\n\n";
  md += body;
  md += fmt::format("\n{} rows: {} measured, {} skipped or failed (no timing), {} not measured, {} with no counterpart here\n",
                    rep.points, rep.measured, rep.skipped, rep.missing, rep.unmapped);
  return rep;
}

SuiteReport measured_summary(const Suite& s, const CsvTable& measured) {
  SuiteReport rep;
  std::string& md = rep.markdown;
  md += fmt::format("## {}\n\n{}\n\n", s.name, s.description);
  md += "| algo | impl | pass | dtype | B | H | Tq/Tk | Dk/Dv | causal | params | status | err / bound | ms | TFLOP/s | GB/s |\n";
  md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  // Later rows supersede earlier ones at the same key; first-seen order is kept.
  std::vector<std::string> order;
  std::map<std::string, const CsvRow*> last;
  for (const auto& r : measured.rows) {
    auto g = [&r](const char* c) { return r.count(c) ? r.at(c) : std::string(); };
    const std::string key = point_key(g("algo"), g("variant"), g("impl"), g("pass"), g("dtype"), g("B"), g("H") + "/" + g("Hkv"),
                                      g("Tq"), g("Tk"), g("Dk"), g("Dv"), g("causal")) + "|" + g("params");
    if (!last.count(key)) order.push_back(key);
    last[key] = &r;
  }
  std::set<std::string> gpus;
  for (const auto& key : order) {
    const CsvRow& r = *last[key];
    auto g = [&r](const char* c) { return r.count(c) ? r.at(c) : std::string(); };
    const double err = to_double(g("err")), eb = to_double(g("err_base")), fl = to_double(g("floor")), k = to_double(g("k"));
    std::string bound;
    if (std::isfinite(err) && std::isfinite(eb) && std::isfinite(fl) && std::isfinite(k)) {
      bound = fmt::format("{:.2e} / {:.2e}", err, k * eb + fl);
    }
    const Measured m{g("status"), g("gpu"), g("dtype"), to_double(g("ms_median")), to_double(g("tflops"))};
    ++rep.points;
    if (m.timed()) ++rep.measured, gpus.insert(m.gpu);
    else ++rep.skipped;
    const std::string algo = g("variant").empty() ? g("algo") : g("algo") + "/" + g("variant");
    const std::string t = g("Tq") == g("Tk") ? g("Tq") : g("Tq") + "/" + g("Tk");
    const std::string h = g("Hkv") == g("H") || g("Hkv").empty() ? g("H") : g("H") + "/" + g("Hkv");
    md += md_row({algo, g("impl"), g("pass"), g("dtype"), g("B"), h, t, g("Dk") + "/" + g("Dv"), g("causal"), g("params"),
                  short_status(g("status")), bound, m.timed() ? fmt::format("{:.4g}", m.ms) : "", g("tflops"), g("gbps")});
  }
  md += fmt::format("\n{} rows: {} timed, {} without a timing (skipped, failed or errored); measured on: {}\n", rep.points,
                    rep.measured, rep.skipped, gpus.empty() ? "-" : fmt::format("{}", fmt::join(gpus, "; ")));
  return rep;
}

}  // namespace attnbench
