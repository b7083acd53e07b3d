#include "host_info.h"

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace attnbench {
namespace {

std::string run_command(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return "";
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, pipe.get())) out += buf;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string format_time(const char* fmt_str) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, fmt_str, &tm);
  return buf;
}

}  // namespace

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return fmt::format("{} ({} threads)", model, std::thread::hardware_concurrency());
}

// The source tree's commit: $ATTNBENCH_COMMIT where set (a copy of a checkout whose git metadata
// does not match its files, as the device tool's copies), else git describe at run time, else the
// configure-time value.
std::string git_commit() {
  static const std::string commit = [] {
    if (const char* e = std::getenv("ATTNBENCH_COMMIT"); e && *e) return std::string(e);
    std::string c = run_command("git -C '" ATTNBENCH_SOURCE_DIR "' describe --always --dirty --abbrev=12 2>/dev/null");
    return c.empty() ? std::string(ATTNBENCH_CONFIGURE_COMMIT) : c;
  }();
  return commit;
}

std::string utc_timestamp() { return format_time("%Y-%m-%dT%H:%M:%SZ"); }

std::string run_name() { return format_time("%Y%m%d-%H%M%S"); }

double host_copy_bandwidth_gbps() {
  static const double bw = [] {
    const std::size_t n = std::size_t{256} << 20;
    std::vector<char> a(n, 1), b(n, 0);
    std::memcpy(b.data(), a.data(), n);  // touch every page first
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      std::memcpy(b.data(), a.data(), n);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, 2.0 * static_cast<double>(n) / s / 1e9);
    }
    return best;
  }();
  return bw;
}

}  // namespace attnbench
