#include "axes.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "errors.h"

namespace attnbench {
namespace {

constexpr int64_t kMaxAxisValues = 4096;
constexpr int64_t kMaxSize = int64_t{1} << 40;  // a single size beyond this is surely a typo

bool is_axis(const std::string& s) {
  const auto& n = axis_names();
  return std::find(n.begin(), n.end(), s) != n.end();
}

// A whole positive integer; throws naming the axis.
int64_t parse_int(const std::string& axis, const std::string& s, const std::string& item) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) || c == '-'; })) {
    throw UsageError(fmt::format("--{}: '{}' is not a number, range a:b[:step] or derived value like 32768/T", axis, item));
  }
  int64_t v = 0;
  try {
    std::size_t pos = 0;
    v = std::stoll(s, &pos);
    if (pos != s.size()) throw std::invalid_argument(s);
  } catch (const std::exception&) {
    throw UsageError(fmt::format("--{}: '{}' is not a valid integer", axis, item));
  }
  if (v < 1) throw UsageError(fmt::format("--{}: must be >= 1 (got {})", axis, v));
  if (v > kMaxSize) throw UsageError(fmt::format("--{}: {} is too large (max {})", axis, v, kMaxSize));
  return v;
}

void parse_range(const std::string& axis, const std::string& item, std::vector<AxisItem>& out) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : item) {
    if (c == ':') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  if (parts.size() < 2 || parts.size() > 3) {
    throw UsageError(fmt::format("--{}: range '{}' must be start:stop or start:stop:step", axis, item));
  }
  const int64_t start = parse_int(axis, parts[0], item), stop = parse_int(axis, parts[1], item);
  if (start > stop) throw UsageError(fmt::format("--{}: range '{}' is empty (start {} > stop {})", axis, item, start, stop));
  std::string step = parts.size() == 3 ? parts[2] : "x2";
  bool geometric = false;
  if (!step.empty() && (step[0] == 'x' || step[0] == '*')) {
    geometric = true;
    step = step.substr(1);
  } else if (!step.empty() && step[0] == '+') {
    step = step.substr(1);
  }
  const int64_t s = parse_int(axis, step, item);
  if (geometric && s < 2) throw UsageError(fmt::format("--{}: range '{}' needs a factor >= 2", axis, item));
  int64_t count = 0;
  for (int64_t v = start; v <= stop;) {
    if (++count > kMaxAxisValues) {
      throw UsageError(fmt::format("--{}: range '{}' has more than {} values", axis, item, kMaxAxisValues));
    }
    out.push_back({AxisItem::Kind::literal, v, "", std::to_string(v)});
    if (geometric && v > stop / s) break;  // the next value is past stop (and v * s might overflow)
    v = geometric ? v * s : v + s;          // v + s <= 2 * kMaxSize: no overflow
  }
}

}  // namespace

const std::vector<std::string>& axis_names() {
  static const std::vector<std::string> names = {"D", "Dk", "Dv", "H", "Hkv", "B", "T", "Tq", "Tk"};
  return names;
}

std::vector<AxisItem> parse_axis(const std::string& axis, const std::string& text) {
  if (!is_axis(axis)) throw UsageError(fmt::format("unknown axis '{}'", axis));
  std::vector<AxisItem> out;
  std::string item;
  auto flush = [&](const std::string& raw) {
    std::string it;
    for (char c : raw) {
      if (!std::isspace(static_cast<unsigned char>(c))) it += c;
    }
    if (it.empty()) throw UsageError(fmt::format("--{}: empty item in '{}'", axis, text));
    const auto slash = it.find('/'), star = it.find('*');
    if (it.find(':') != std::string::npos) {
      parse_range(axis, it, out);
    } else if (slash != std::string::npos || star != std::string::npos) {
      const auto pos = slash != std::string::npos ? slash : star;
      const std::string a = it.substr(0, pos), b = it.substr(pos + 1);
      AxisItem d;
      d.text = it;
      if (slash != std::string::npos && is_axis(b) && !a.empty() && std::isdigit(static_cast<unsigned char>(a[0]))) {
        d.kind = AxisItem::Kind::n_div_ref, d.n = parse_int(axis, a, it), d.ref = b;
      } else if (slash != std::string::npos && is_axis(a)) {
        d.kind = AxisItem::Kind::ref_div_n, d.n = parse_int(axis, b, it), d.ref = a;
      } else if (star != std::string::npos && is_axis(a)) {
        d.kind = AxisItem::Kind::ref_mul_n, d.n = parse_int(axis, b, it), d.ref = a;
      } else if (star != std::string::npos && is_axis(b)) {
        d.kind = AxisItem::Kind::ref_mul_n, d.n = parse_int(axis, a, it), d.ref = b;
      } else {
        throw UsageError(fmt::format("--{}: '{}' is not a derived value like 32768/T, H/4 or 2*D (axes: B H Hkv T Tq Tk D Dk Dv)", axis, it));
      }
      out.push_back(d);
    } else if (is_axis(it)) {
      out.push_back({AxisItem::Kind::ref, 0, it, it});
    } else {
      out.push_back({AxisItem::Kind::literal, parse_int(axis, it, it), "", it});
    }
  };
  for (char c : text) {
    if (c == ',') {
      flush(item);
      item.clear();
    } else {
      item += c;
    }
  }
  flush(item);
  if (static_cast<int64_t>(out.size()) > kMaxAxisValues) {
    throw UsageError(fmt::format("--{}: more than {} values", axis, kMaxAxisValues));
  }
  for (const auto& d : out) {
    if (d.ref == axis) throw UsageError(fmt::format("--{}: '{}' refers to itself", axis, d.text));
  }
  return out;
}

AxisSet::AxisSet() {
  set("B", "1");
  set("H", "1");
  set("T", "128");
  set("D", "64");
  set("Tq", "T");
  set("Tk", "T");
  set("Dk", "D");
  set("Dv", "D");
  set("Hkv", "H");
}

void AxisSet::set(const std::string& axis, const std::string& text) { items_[axis] = parse_axis(axis, text); }

std::string AxisSet::text(const std::string& axis) const {
  std::string out;
  for (const auto& it : items_.at(axis)) out += (out.empty() ? "" : ",") + it.text;
  return out;
}

std::vector<AxisPoint> AxisSet::expand() const {
  const auto& names = axis_names();
  // Every combination is visited (duplicates are dropped after evaluation): bound the work first.
  constexpr double kMaxCombinations = 4e6;
  double combinations = 1;
  for (const auto& n : names) combinations *= static_cast<double>(items_.at(n).size());
  if (combinations > kMaxCombinations) {
    throw UsageError(fmt::format("sweep: {:.3g} combinations of axis values (max {:.0e}); narrow the axes", combinations,
                                 kMaxCombinations));
  }
  std::vector<AxisPoint> points;
  std::set<std::vector<int64_t>> seen;
  std::vector<std::size_t> idx(names.size(), 0);
  while (true) {
    // Evaluate this combination of items, resolving derived items recursively.
    std::map<std::string, int64_t> value;
    std::set<std::string> visiting;
    std::function<int64_t(const std::string&)> eval = [&](const std::string& a) -> int64_t {
      if (auto it = value.find(a); it != value.end()) return it->second;
      if (!visiting.insert(a).second) throw UsageError(fmt::format("--{}: derived axes form a cycle", a));
      const std::size_t ai = static_cast<std::size_t>(std::find(names.begin(), names.end(), a) - names.begin());
      const AxisItem& it = items_.at(a)[idx[ai]];
      int64_t v = it.n;
      switch (it.kind) {
        case AxisItem::Kind::literal: break;
        case AxisItem::Kind::ref: v = eval(it.ref); break;
        case AxisItem::Kind::n_div_ref: v = it.n / eval(it.ref); break;
        case AxisItem::Kind::ref_div_n: v = eval(it.ref) / it.n; break;
        case AxisItem::Kind::ref_mul_n: {
          const int64_t r = eval(it.ref);
          if (r > kMaxSize / it.n) {
            throw UsageError(fmt::format("--{}: '{}' gives more than {} at {}={}", a, it.text, kMaxSize, it.ref, r));
          }
          v = r * it.n;
          break;
        }
      }
      if (v < 1) {
        throw UsageError(fmt::format("--{}: '{}' gives {} at {}={}; must be >= 1", a, it.text, v, it.ref, eval(it.ref)));
      }
      visiting.erase(a);
      value[a] = v;
      return v;
    };
    std::vector<int64_t> key;
    for (const auto& n : names) key.push_back(eval(n));
    if (seen.insert(key).second) points.push_back(value);
    // Next combination; the last axis varies fastest.
    std::size_t d = names.size();
    while (d > 0) {
      --d;
      if (++idx[d] < items_.at(names[d]).size()) break;
      idx[d] = 0;
      if (d == 0) return points;
    }
    if (points.size() > 100000) throw UsageError("sweep: more than 100000 shape points; narrow the axes");
  }
}

}  // namespace attnbench
