#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "csv.h"
#include "errors.h"

namespace attnbench {
namespace {

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("attnbench_csv_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

TEST(Csv, WritesHeaderOnceAndAppends) {
  const std::string path = temp_path("a.csv");
  std::filesystem::remove(path);
  {
    CsvWriter w(path);
    w.write({{"algo", "softmax"}, {"status", "error:bad, \"quoted\""}});
  }
  {
    CsvWriter w(path);  // reopening appends; never truncates
    w.write({{"algo", "linear"}, {"status", "pass"}});
  }
  const CsvTable t = read_csv(path);
  EXPECT_EQ(t.header, csv_columns());
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0].at("status"), "error:bad, \"quoted\"");
  EXPECT_EQ(t.rows[1].at("algo"), "linear");
}

TEST(Csv, RefusesAFileWithAnotherHeader) {
  const std::string path = temp_path("other.csv");
  std::ofstream(path) << "a,b\n1,2\n";
  try {
    CsvWriter w(path);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--out"), std::string::npos);
  }
  std::ifstream in(path);  // untouched
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "a,b\n1,2\n");
}

TEST(Csv, UnwritablePathIsAUsageError) {
  EXPECT_THROW(CsvWriter("/proc/attnbench/x.csv"), UsageError);
  EXPECT_THROW(CsvWriter(std::filesystem::temp_directory_path().string()), UsageError);
}

TEST(Csv, ReaderRejectsMalformedFiles) {
  const std::string a = temp_path("short.csv");
  std::ofstream(a) << "x,y\n1\n";
  EXPECT_THROW(read_csv(a), UsageError);
  const std::string b = temp_path("quote.csv");
  std::ofstream(b) << "x,y\n1,\"open\n";
  EXPECT_THROW(read_csv(b), UsageError);
  EXPECT_THROW(read_csv(temp_path("missing.csv")), UsageError);
}

TEST(Csv, QuotedFieldsSpanLines) {
  const std::string a = temp_path("multi.csv");
  std::ofstream(a) << "x,y\n1,\"two\nlines\"\n";
  const CsvTable t = read_csv(a);
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].at("y"), "two\nlines");
}

}  // namespace
}  // namespace attnbench
