// libFuzzer entry point for the parsers of user text (the in-house fuzzer in test_fuzz.cpp runs
// in every build; this one is for long coverage-guided runs). Clang only, not in the default build:
//   cmake -S . -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DATTNBENCH_CUDA=OFF -DATTNBENCH_LIBFUZZER=ON
//   cmake --build build/fuzz --target fuzz_parsers
//   build/fuzz/tests/harness/fuzz_parsers -max_total_time=60
// The first byte picks the target: parse_axis + AxisSet::expand, parse_run_line + to_sweep +
// expand_points, or load_suite on a temp file. UsageError is the expected refusal; any other
// exception escapes and libFuzzer reports it as a crash (as it does ASan/UBSan findings).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "axes.h"
#include "cli/run_options.h"
#include "errors.h"
#include "suite.h"
#include "sweep.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnbench;
  if (size < 1) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 3) {
      case 0: {
        const auto& names = axis_names();
        AxisSet axes;
        axes.set(names[data[0] / 3 % names.size()], text);
        axes.expand();
        break;
      }
      case 1:
        expand_points(cli::to_sweep(cli::parse_run_line(text, "fuzz:1")));
        break;
      default: {
        static const std::string path = "/tmp/attnbench_fuzz_" + std::to_string(getpid()) + "/fz.suite";
        static const bool made = system(("mkdir -p $(dirname " + path + ")").c_str()) == 0;
        if (!made) return 0;
        std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
        load_suite(path);
        break;
      }
    }
  } catch (const UsageError&) {
  }
  return 0;
}
