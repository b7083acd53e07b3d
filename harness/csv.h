// The results CSV (DESIGN.md): one row per algo x variant x impl x pass x dtype x shape, appended
// and flushed one at a time, so a crash loses at most the row in flight. An existing file is never
// truncated: new rows are appended when its header matches, and a file with another header is
// refused.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace attnbench {

// DESIGN.md's columns, then `oracle` (what the check compared against: ref, ref-sampled,
// naive-fp32, or empty when unchecked) and `worst` (the tensor that decided the verdict).
const std::vector<std::string>& csv_columns();

using CsvRow = std::map<std::string, std::string>;

class CsvWriter {
 public:
  // Opens `path` for appending, creating parent directories; throws UsageError naming --out when
  // the path cannot be written or holds a CSV with a different header.
  explicit CsvWriter(const std::string& path);
  ~CsvWriter();
  CsvWriter(const CsvWriter&) = delete;
  CsvWriter& operator=(const CsvWriter&) = delete;
  void write(const CsvRow& row);  // unknown keys are a logic error; missing keys are empty
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

struct CsvTable {
  std::vector<std::string> header;
  std::vector<CsvRow> rows;
};

// Parse a CSV file (RFC 4180 quoting). Throws UsageError("<what>: <path>:<line>: ...") when
// malformed: unterminated quote, a row with a different number of fields than the header.
CsvTable read_csv(const std::string& path, const std::string& what = "csv");
std::string csv_escape(const std::string& field);
std::vector<std::string> split_csv_line(const std::string& line, bool* unterminated = nullptr);

}  // namespace attnbench
