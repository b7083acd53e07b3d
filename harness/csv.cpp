#include "csv.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "errors.h"

namespace attnbench {

const std::vector<std::string>& csv_columns() {
  static const std::vector<std::string> cols = {
      "algo",     "variant",  "impl",      "pass",    "dtype",    "B",        "H",          "Hkv",
      "Tq",       "Tk",       "Dk",        "Dv",      "causal",   "params",   "status",     "err",
      "err_base", "floor",    "rel_rms",   "k",       "ms_median", "ms_p20",  "ms_p80",     "ms_min",
      "noise",    "samples",  "tflops",    "gbps",    "floor_ms", "flop_model", "gpu",      "sm_clock_mhz",
      "driver",   "cuda",     "commit",    "timestamp", "oracle", "worst"};
  return cols;
}

std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::vector<std::string> split_csv_line(const std::string& line, bool* unterminated) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  if (unterminated) *unterminated = quoted;
  return fields;
}

static std::string header_line() {
  std::string h;
  for (const auto& c : csv_columns()) h += (h.empty() ? "" : ",") + c;
  return h;
}

CsvWriter::CsvWriter(const std::string& path) : path_(path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(path);
  if (p.has_parent_path()) {
    fs::create_directories(p.parent_path(), ec);
    if (ec) throw UsageError(fmt::format("--out: cannot create directory '{}': {}", p.parent_path().string(), ec.message()));
  }
  if (fs::is_directory(p, ec)) throw UsageError(fmt::format("--out: '{}' is a directory; give a file path", path));
  bool has_header = false;
  if (fs::exists(p, ec) && fs::file_size(p, ec) > 0) {
    std::ifstream in(path);
    std::string first;
    std::getline(in, first);
    if (!first.empty() && first.back() == '\r') first.pop_back();
    if (first != header_line()) {
      throw UsageError(fmt::format("--out: '{}' exists with a different header; choose another file", path));
    }
    has_header = true;
  }
  f_ = std::fopen(path.c_str(), "a");
  if (!f_) throw UsageError(fmt::format("--out: cannot write '{}': {}", path, std::strerror(errno)));
  if (!has_header) {
    std::fprintf(f_, "%s\n", header_line().c_str());
    std::fflush(f_);
  }
}

CsvWriter::~CsvWriter() {
  if (f_) std::fclose(f_);
}

void CsvWriter::write(const CsvRow& row) {
  for (const auto& [k, v] : row) {
    if (std::find(csv_columns().begin(), csv_columns().end(), k) == csv_columns().end()) {
      throw std::logic_error("CsvWriter: unknown column " + k);
    }
  }
  std::string line;
  bool first = true;
  for (const auto& c : csv_columns()) {
    if (!first) line += ',';
    first = false;
    const auto it = row.find(c);
    if (it != row.end()) line += csv_escape(it->second);
  }
  line += '\n';
  if (std::fputs(line.c_str(), f_) < 0 || std::fflush(f_) != 0) {
    throw std::runtime_error(fmt::format("writing '{}': {}", path_, std::strerror(errno)));
  }
}

CsvTable read_csv(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("{}: cannot read '{}': {}", what, path, std::strerror(errno)));
  CsvTable t;
  std::string line, pending;
  int lineno = 0, start = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (pending.empty()) start = lineno;
    pending += pending.empty() ? line : "\n" + line;
    bool open = false;
    auto fields = split_csv_line(pending, &open);
    if (open) continue;  // a quoted field spans lines
    pending.clear();
    if (t.header.empty()) {
      if (fields.size() == 1 && fields[0].empty()) throw UsageError(fmt::format("{}: {}: empty header line", what, path));
      t.header = fields;
      continue;
    }
    if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
    if (fields.size() != t.header.size()) {
      throw UsageError(fmt::format("{}: {}:{}: {} fields, header has {}", what, path, start, fields.size(), t.header.size()));
    }
    CsvRow r;
    for (std::size_t i = 0; i < fields.size(); ++i) r[t.header[i]] = fields[i];
    t.rows.push_back(std::move(r));
  }
  if (!pending.empty()) throw UsageError(fmt::format("{}: {}:{}: unterminated quoted field", what, path, start));
  if (t.header.empty()) throw UsageError(fmt::format("{}: '{}' is empty", what, path));
  return t;
}

}  // namespace attnbench
