// Run the attnbench binary (path from $ATTNBENCH_BIN, set by CTest) and capture its output.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace attnbench::testing {

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string scratch_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("attnbench_test_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

inline std::string source_dir() { return env_or("ATTNBENCH_SOURCE_DIR", ATTNBENCH_SOURCE_DIR_DEFAULT); }

// Hides every GPU from the CUDA runtime of a child process: what a machine without one sees.
inline const std::string kNoGpuEnv = "CUDA_VISIBLE_DEVICES= ";

// Runs the attnbench binary; `env` ("NAME=value ...", e.g. kNoGpuEnv) prefixes the command.
inline CliResult run_cli(const std::string& args, const std::string& env = "") {
  const std::string dir = scratch_dir("cli");
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  const std::string cmd = env + env_or("ATTNBENCH_BIN", ATTNBENCH_BIN_DEFAULT) + " " + args + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

inline int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace attnbench::testing
