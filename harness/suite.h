// Suites: named sweeps, one file per published table or use case (suites/README.md).
//
// A suite file `suites/<name>.suite` is line-oriented text; `#` starts a comment, blank lines are
// ignored, and every other line is `key: value`:
//
//   name: fla_a100_2024                        required; equals the file's stem
//   description: ...                           required; one line
//   published: results/published/<file>.csv   optional; relative to the source tree
//   provider: <published provider> = <impl>[,<impl>...] | -
//                                              which of our implementations (or peers measured by
//                                              scripts/peers.py: sdpa_flash, sdpa_cudnn) stand
//                                              beside a provider named in the published file; `-`:
//                                              none (the published numbers are shown alone)
//   peers: <scripts/peers.py options>          optional; the peer rows the table expects
//   sweep: <attnbench run options>             one or more; parsed by parse_run_line, so every
//                                              option of `attnbench run` works (not --out)
//
// Malformed input (unknown key, repeated single key, a sweep line `attnbench run` would refuse,
// no sweep) is a UsageError naming the file and line: "suites/x.suite:7: ...".
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace attnbench {

struct ProviderMap {
  int line = 0;
  std::string provider;            // as written in the published CSV's `provider` column
  std::vector<std::string> impls;  // empty: no counterpart here (`-`)
};

struct Suite {
  std::string name, description, published, path;   // published: as written (may be empty)
  std::vector<std::pair<int, std::string>> sweeps;   // line number, options
  std::vector<ProviderMap> providers;
  std::string peers;                                 // scripts/peers.py options (may be empty)
};

// `name_or_path`: a bare name ("ci") means <source dir>/suites/<name>.suite; anything with a '/'
// or ending in ".suite" is a path. Every sweep line is parsed (not expanded) here, so a bad option
// is reported with its line. Throws UsageError.
Suite load_suite(const std::string& name_or_path);

// The names of the suites in <source dir>/suites, sorted.
std::vector<std::string> suite_names();

// The source tree the suites and published files are read from: $ATTNBENCH_SOURCE_DIR when set,
// else the tree this binary was configured from.
std::string source_dir();

// `published` resolved against the source tree (empty when the suite has none).
std::string published_path(const Suite& s);

// Implementation names a suite may name: DESIGN.md's (ref, emul, naive, tiled, flash1, flash2,
// unfused) and any registered in this build. A sweep may name one this build lacks (a CUDA kernel
// in a CPU-only build, a kernel not written yet): `attnbench suite` records its rows as skipped.
std::vector<std::string> suite_impl_names();
// The peers scripts/peers.py measures into the same CSV; `provider:` lines may name them too.
const std::vector<std::string>& peer_impl_names();

}  // namespace attnbench
