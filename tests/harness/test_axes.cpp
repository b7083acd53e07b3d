#include <gtest/gtest.h>

#include "axes.h"
#include "errors.h"

namespace attnbench {
namespace {

std::vector<int64_t> values(const std::string& axis, const std::string& text) {
  AxisSet s;
  s.set(axis, text);
  std::vector<int64_t> out;
  for (const auto& p : s.expand()) out.push_back(p.at(axis));
  return out;
}

TEST(Axes, ListsAndRanges) {
  EXPECT_EQ(values("B", "1,2,4"), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(values("T", "512:16384:x2"), (std::vector<int64_t>{512, 1024, 2048, 4096, 8192, 16384}));
  EXPECT_EQ(values("T", "512:2048"), (std::vector<int64_t>{512, 1024, 2048}));  // default step x2
  EXPECT_EQ(values("D", "64:256:+64"), (std::vector<int64_t>{64, 128, 192, 256}));
  EXPECT_EQ(values("D", "64:256:64"), (std::vector<int64_t>{64, 128, 192, 256}));
  EXPECT_EQ(values("T", "1,63,1013"), (std::vector<int64_t>{1, 63, 1013}));
}

TEST(Axes, DerivedAxes) {
  AxisSet s;
  s.set("T", "512:16384:x2");
  s.set("B", "32768/T");
  s.set("D", "64,128");
  s.set("H", "2048/D");
  const auto pts = s.expand();
  ASSERT_EQ(pts.size(), 12u);
  for (const auto& p : pts) {
    EXPECT_EQ(p.at("B") * p.at("T"), 32768);
    EXPECT_EQ(p.at("H") * p.at("D"), 2048);
    EXPECT_EQ(p.at("Tq"), p.at("T"));
    EXPECT_EQ(p.at("Dk"), p.at("D"));
    EXPECT_EQ(p.at("Hkv"), p.at("H"));
  }
  s.set("Hkv", "H/4,1");
  EXPECT_EQ(s.expand().size(), 24u);
  s.set("Dv", "2*D");
  for (const auto& p : s.expand()) EXPECT_EQ(p.at("Dv"), 2 * p.at("D"));
}

TEST(Axes, BadInputNamesTheAxis) {
  auto msg = [](const std::string& axis, const std::string& text) {
    try {
      AxisSet s;
      s.set(axis, text);
      s.expand();
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("B", "0").find("--B"), std::string::npos);
  EXPECT_NE(msg("T", "5:1").find("--T"), std::string::npos);
  EXPECT_NE(msg("T", "5:1").find("empty"), std::string::npos);
  EXPECT_NE(msg("D", "-4").find("--D"), std::string::npos);
  EXPECT_NE(msg("T", "abc").find("--T"), std::string::npos);
  EXPECT_NE(msg("T", "1:100:x1").find("factor"), std::string::npos);
  EXPECT_NE(msg("T", "1,,2").find("empty item"), std::string::npos);
  EXPECT_NE(msg("B", "32768/Q").find("--B"), std::string::npos);
  EXPECT_NE(msg("B", "B").find("itself"), std::string::npos);
  EXPECT_NE(msg("H", "H/4").find("itself"), std::string::npos);
  EXPECT_NE(msg("T", "1:100000000:+1").find("more than"), std::string::npos);
  EXPECT_NE(msg("B", "99999999999999999999").find("--B"), std::string::npos);
}

TEST(Axes, DerivedBelowOneIsAnError) {
  AxisSet s;
  s.set("T", "65536");
  s.set("B", "32768/T");
  EXPECT_THROW(s.expand(), UsageError);
}

TEST(Axes, CyclesAreErrors) {
  AxisSet s;
  s.set("Tq", "Tk");
  s.set("Tk", "Tq");
  EXPECT_THROW(s.expand(), UsageError);
}

}  // namespace
}  // namespace attnbench
