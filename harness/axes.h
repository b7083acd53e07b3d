// Size axes of a sweep: B, H, Hkv, T, Tq, Tk, D, Dk, Dv.
//
// An axis is a comma-separated list of items. An item is
//   - a number:                 64
//   - a range start:stop[:step] 512:16384:x2 (geometric, factor 2; the default step),
//                               64:256:+64 or 64:256:64 (arithmetic)
//   - a derived value:          32768/T  (N divided by another axis, rounded down),
//                               H/4, 2*D, D*2, or a bare axis name (Tk = Tq)
// Derived items are evaluated per point from the other axes' values; a derived value below 1 is
// an error naming the axis and the point. Defaults: Tq = T, Tk = T, Dk = D, Dv = D, Hkv = H.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace attnbench {

struct AxisItem {
  enum class Kind { literal, ref, n_div_ref, ref_div_n, ref_mul_n } kind = Kind::literal;
  int64_t n = 0;        // the literal, or the constant of a derived item
  std::string ref;      // the axis a derived item reads
  std::string text;     // as written, for messages
};

// The names of the size axes, in evaluation-independent order.
const std::vector<std::string>& axis_names();

// Parse one axis. Throws UsageError naming --<axis> on malformed text, values < 1, empty or
// oversized ranges (more than 4096 values), unknown axis references.
std::vector<AxisItem> parse_axis(const std::string& axis, const std::string& text);

// A full assignment of the size axes.
using AxisPoint = std::map<std::string, int64_t>;

class AxisSet {
 public:
  AxisSet();  // the defaults: B=1 H=1 T=128 D=64 and Tq=T, Tk=T, Dk=D, Dv=D, Hkv=H
  void set(const std::string& axis, const std::string& text);  // parse and replace
  // The axis as text that set() parses back to the same items (ranges written out as values).
  std::string text(const std::string& axis) const;
  // Every combination of items, evaluated; duplicates removed; order: the last axis of
  // axis_names() varies fastest. Throws UsageError on cycles and derived values below 1.
  std::vector<AxisPoint> expand() const;

 private:
  std::map<std::string, std::vector<AxisItem>> items_;
};

}  // namespace attnbench
