#include "compare.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "errors.h"

namespace attnbench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::size_t kMaxListed = 200;  // rows listed per report section

double num(const CsvRow& r, const char* col) {
  const auto it = r.find(col);
  if (it == r.end() || it->second.empty()) return kNaN;
  try {
    std::size_t pos = 0;
    const double v = std::stod(it->second, &pos);
    return pos == it->second.size() ? v : kNaN;
  } catch (const std::exception&) {
    return kNaN;
  }
}

enum class Status { pass, unchecked, fail, error, skipped, unknown };

Status classify(const std::string& s) {
  if (s == "pass") return Status::pass;
  if (s == "unchecked") return Status::unchecked;
  if (s == "fail") return Status::fail;
  if (s.rfind("error:", 0) == 0) return Status::error;
  if (s.rfind("skipped:", 0) == 0) return Status::skipped;
  return Status::unknown;
}

bool ran_ok(Status s) { return s == Status::pass || s == Status::unchecked; }
bool broken(Status s) { return s == Status::fail || s == Status::error; }

std::string key_of(const CsvRow& r) {
  std::string k;
  for (const auto& c : compare_key_columns()) k += r.at(c) + '\x1f';
  return k;
}

// "softmax tiled fwd bf16 B=2 H=16 T=1024 D=64 causal" (+ Hkv, Tq/Tk, Dk/Dv, params when they say more).
std::string label(const CsvRow& r) {
  std::string s = r.at("algo") + (r.at("variant").empty() ? "" : "/" + r.at("variant"));
  s += fmt::format(" {} {} {} B={} H={}", r.at("impl"), r.at("pass"), r.at("dtype"), r.at("B"), r.at("H"));
  if (r.at("Hkv") != r.at("H")) s += " Hkv=" + r.at("Hkv");
  s += r.at("Tq") == r.at("Tk") ? " T=" + r.at("Tq") : " Tq=" + r.at("Tq") + " Tk=" + r.at("Tk");
  s += r.at("Dk") == r.at("Dv") ? " D=" + r.at("Dk") : " Dk=" + r.at("Dk") + " Dv=" + r.at("Dv");
  s += r.at("causal") == "yes" ? " causal" : "";
  if (!r.at("params").empty()) s += " [" + r.at("params") + "]";
  for (char& c : s) {
    if (c == '|') c = '/';
  }
  return s;
}

std::string cell(const std::string& status) {
  std::string s = status.size() > 60 ? status.substr(0, 57) + "..." : status;
  for (char& c : s) {
    if (c == '|' || c == '\n') c = ' ';
  }
  return s;
}

std::string ms_text(const CsvRow& r) {
  const double ms = num(r, "ms_median"), noise = num(r, "noise");
  return std::isfinite(noise) ? fmt::format("{:.4g} ms (noise {:.1f}%)", ms, 100 * noise) : fmt::format("{:.4g} ms", ms);
}

struct Finding {
  std::string row, what, base, next, limit;
};

void section(std::string& md, const std::string& title, const std::vector<Finding>& f) {
  if (f.empty()) return;
  md += fmt::format("\n## {} ({})\n\n| row | what | BASE | NEW | limit |\n|---|---|---|---|---|\n", title, f.size());
  for (std::size_t i = 0; i < f.size() && i < kMaxListed; ++i) {
    md += fmt::format("| {} | {} | {} | {} | {} |\n", f[i].row, f[i].what, f[i].base, f[i].next, f[i].limit);
  }
  if (f.size() > kMaxListed) md += fmt::format("| ... and {} more | | | | |\n", f.size() - kMaxListed);
}

std::string describe(const CsvTable& t, const std::string& path) {
  std::set<std::string> gpus, commits;
  for (const auto& r : t.rows) {
    if (r.count("gpu") && !r.at("gpu").empty()) gpus.insert(r.at("gpu"));
    if (r.count("commit") && !r.at("commit").empty()) commits.insert(r.at("commit"));
  }
  return fmt::format("`{}`: {} rows; machine: {}; commit: {}", path, t.rows.size(),
                     gpus.empty() ? "-" : fmt::format("{}", fmt::join(gpus, ", ")),
                     commits.empty() ? "-" : fmt::format("{}", fmt::join(commits, ", ")));
}

}  // namespace

const std::vector<std::string>& compare_key_columns() {
  static const std::vector<std::string> k = {"algo", "variant", "impl", "pass", "dtype", "B", "H",
                                             "Hkv", "Tq", "Tk", "Dk", "Dv", "causal", "params"};
  return k;
}

const std::vector<std::string>& compare_required_columns() {
  static const std::vector<std::string> c = [] {
    std::vector<std::string> v = compare_key_columns();
    for (const char* x : {"status", "err", "floor", "ms_median", "noise"}) v.push_back(x);
    return v;
  }();
  return c;
}

CsvTable load_results(const std::string& path, const std::string& which) {
  CsvTable t = read_csv(path, which);
  std::vector<std::string> missing;
  for (const auto& c : compare_required_columns()) {
    if (std::find(t.header.begin(), t.header.end(), c) == t.header.end()) missing.push_back(c);
  }
  if (!missing.empty()) {
    throw UsageError(fmt::format("{}: {}: not an attnbench CSV (missing columns: {})", which, path, fmt::join(missing, ", ")));
  }
  if (t.rows.empty()) throw UsageError(fmt::format("{}: {}: no rows", which, path));
  std::map<std::string, std::size_t> first;
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    const CsvRow& r = t.rows[i];
    if (classify(r.at("status")) == Status::unknown) {
      throw UsageError(fmt::format("{}: {}: data row {}: unknown status '{}' (pass, fail, unchecked, skipped:.., error:..)",
                                   which, path, i + 1, cell(r.at("status"))));
    }
    const auto [it, fresh] = first.emplace(key_of(r), i);
    if (!fresh) {
      throw UsageError(fmt::format("{}: {}: data rows {} and {} have the same key ({}); compare needs one row per key",
                                   which, path, it->second + 1, i + 1, label(r)));
    }
  }
  return t;
}

CompareResult compare_results(const CsvTable& base, const std::string& base_path, const CsvTable& next,
                              const std::string& new_path, const CompareOptions& opt) {
  std::map<std::string, const CsvRow*> in_new;
  for (const auto& r : next.rows) in_new[key_of(r)] = &r;
  std::set<std::string> in_base;
  for (const auto& r : base.rows) in_base.insert(key_of(r));

  CompareResult res;
  std::vector<Finding> regressions, missing, improvements, changes;
  for (const auto& o : base.rows) {
    const auto it = in_new.find(key_of(o));
    if (it == in_new.end()) {
      missing.push_back({label(o), "missing from NEW", cell(o.at("status")), "-", opt.allow_missing ? "allowed" : "must be present"});
      continue;
    }
    const CsvRow& n = *it->second;
    ++res.matched;
    const Status so = classify(o.at("status")), sn = classify(n.at("status"));
    bool regressed = false, improved = false;

    // Numerics verdict.
    if ((ran_ok(so) && broken(sn)) || (so == Status::unchecked && sn == Status::fail)) {
      regressions.push_back({label(o), "verdict", cell(o.at("status")), cell(n.at("status")), "pass or unchecked"});
      ++res.numerics, regressed = true;
    } else if (broken(so) && ran_ok(sn)) {
      improvements.push_back({label(o), "fixed", cell(o.at("status")), cell(n.at("status")), ""});
      improved = true;
    } else if (sn == Status::skipped && so != Status::skipped) {
      changes.push_back({label(o), "now skipped", cell(o.at("status")), cell(n.at("status")), "reported, not failed"});
    } else if (broken(so) && broken(sn)) {
      changes.push_back({label(o), "still failing", cell(o.at("status")), cell(n.at("status")), ""});
    } else if (so == Status::skipped && sn != Status::skipped) {
      changes.push_back({label(o), "now runs", cell(o.at("status")), cell(n.at("status")), ""});
    }

    // Error growth, beyond the rounding floor.
    const double eo = num(o, "err"), en = num(n, "err");
    if (std::isfinite(eo) && std::isfinite(en)) {
      double floor = std::max(num(o, "floor"), num(n, "floor"));
      if (!std::isfinite(floor)) floor = 0;
      const double limit = (1 + opt.max_error_growth) * eo;
      if (en > limit && en > floor) {
        regressions.push_back({label(o), "error growth", fmt::format("err {:.3e}", eo), fmt::format("err {:.3e}", en),
                               fmt::format("<= {:.3e} (+{:.0f}%) or <= floor {:.3e}", limit, 100 * opt.max_error_growth, floor)});
        ++res.error_growth, regressed = true;
      }
    }

    // Time, noise-aware.
    const double mo = num(o, "ms_median"), mn = num(n, "ms_median");
    if (opt.judge_time && std::isfinite(mo) && std::isfinite(mn) && mo > 0 && mn > 0) {
      const double no = std::isfinite(num(o, "noise")) ? num(o, "noise") : 0;
      const double nn = std::isfinite(num(n, "noise")) ? num(n, "noise") : 0;
      const double allowed = std::max(opt.max_slowdown, no + nn);
      if (mn > mo * (1 + allowed)) {
        regressions.push_back({label(o), fmt::format("slowdown {:+.1f}%", 100 * (mn / mo - 1)), ms_text(o), ms_text(n),
                               fmt::format("<= {:.4g} ms (+{:.1f}%)", mo * (1 + allowed), 100 * allowed)});
        ++res.slowdown, regressed = true;
      } else if (mn * (1 + allowed) < mo) {
        improvements.push_back({label(o), fmt::format("speed-up {:.2f}x", mo / mn), ms_text(o), ms_text(n),
                                fmt::format("beyond +{:.1f}%", 100 * allowed)});
        improved = true;
      }
    }
    res.regressed += regressed;
    res.improved += improved && !regressed;
  }
  std::vector<Finding> added;
  for (const auto& r : next.rows) {
    if (!in_base.count(key_of(r))) added.push_back({label(r), "new in NEW", "-", cell(r.at("status")), ""});
  }
  res.missing = static_cast<int>(missing.size());
  res.added = static_cast<int>(added.size());
  if (res.matched == 0) {
    throw UsageError(fmt::format("NEW: {}: no row shares a key (algo, variant, impl, pass, dtype, shape, causal, params) "
                                 "with BASE {}", new_path, base_path));
  }
  const int failing_rows = res.regressed + (opt.allow_missing ? 0 : res.missing);
  res.regressed = failing_rows;

  std::set<std::string> gb, gn;
  for (const auto& r : base.rows) gb.insert(r.count("gpu") ? r.at("gpu") : "");
  for (const auto& r : next.rows) gn.insert(r.count("gpu") ? r.at("gpu") : "");

  res.verdict = failing_rows > 0
                    ? fmt::format("REGRESSION: {} of {} matched rows regressed ({} numerics, {} error growth, {} slowdown); "
                                  "{} missing from NEW{}",
                                  failing_rows - (opt.allow_missing ? 0 : res.missing), res.matched, res.numerics,
                                  res.error_growth, res.slowdown, res.missing, opt.allow_missing ? " (allowed)" : "")
                    : fmt::format("OK: {} matched rows, no regression ({} improved, {} missing from NEW{}, {} new)",
                                  res.matched, res.improved, res.missing, opt.allow_missing ? " (allowed)" : "", res.added);
  std::string& md = res.report;
  md += "# attnbench compare\n\n";
  md += "- BASE " + describe(base, base_path) + "\n";
  md += "- NEW " + describe(next, new_path) + "\n";
  if (gb != gn) md += "- note: BASE and NEW were measured on different machines; time comparisons assume they are alike\n";
  md += fmt::format("- rules: verdict pass/unchecked -> fail/error fails; err above (1 + {:g}) x BASE err and above the "
                    "floor fails; {}; a BASE row missing from NEW {}\n\n",
                    opt.max_error_growth,
                    opt.judge_time ? fmt::format("median time above BASE x (1 + max({:g}, noise BASE + noise NEW)) fails",
                                                 opt.max_slowdown)
                                   : std::string("times not judged (--no-time)"),
                    opt.allow_missing ? "is reported (--allow-missing)" : "fails");
  md += "**" + res.verdict + "**\n";
  section(md, "Regressions", regressions);
  section(md, "Missing from NEW", missing);
  section(md, "Improvements", improvements);
  section(md, "Other changes", changes);
  section(md, "New in NEW", added);
  return res;
}

}  // namespace attnbench
