#include "suite.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/options.h"
#include "cli/run_options.h"
#include "core/impl.h"
#include "errors.h"

#ifndef ATTNBENCH_SOURCE_DIR
#define ATTNBENCH_SOURCE_DIR "."
#endif

namespace attnbench {
namespace {

namespace fs = std::filesystem;

std::string trim(const std::string& s) {
  std::size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

bool is_bare_name(const std::string& s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

std::string suites_dir() { return (fs::path(source_dir()) / "suites").string(); }

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

std::vector<std::string> suite_impl_names() {
  std::vector<std::string> names = {"ref", "emul", "naive", "tiled", "flash1", "flash2", "unfused"};
  for (const Impl& i : registry().all()) {
    if (!contains(names, i.name)) names.push_back(i.name);
  }
  return names;
}

const std::vector<std::string>& peer_impl_names() {
  static const std::vector<std::string> names = {"sdpa_flash", "sdpa_cudnn"};
  return names;
}

std::string source_dir() {
  const char* env = std::getenv("ATTNBENCH_SOURCE_DIR");
  return env && *env ? env : ATTNBENCH_SOURCE_DIR;
}

std::vector<std::string> suite_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(suites_dir(), ec)) {
    if (e.path().extension() == ".suite") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string published_path(const Suite& s) {
  if (s.published.empty()) return "";
  const fs::path p(s.published);
  return p.is_absolute() ? p.string() : (fs::path(source_dir()) / p).string();
}

Suite load_suite(const std::string& name_or_path) {
  Suite s;
  const bool by_name = name_or_path.find('/') == std::string::npos &&
                       !(name_or_path.size() > 6 && name_or_path.substr(name_or_path.size() - 6) == ".suite");
  if (by_name) {
    if (!is_bare_name(name_or_path)) {
      throw UsageError(fmt::format("suite: '{}' is not a suite name (letters, digits, _ and -)", name_or_path));
    }
    s.path = (fs::path(suites_dir()) / (name_or_path + ".suite")).string();
    std::error_code ec;
    if (!fs::is_regular_file(s.path, ec)) {
      throw UsageError(fmt::format("suite: unknown suite '{}' (known: {})", name_or_path, fmt::join(suite_names(), ", ")));
    }
  } else {
    s.path = name_or_path;
  }
  std::ifstream in(s.path);
  if (!in) throw UsageError(fmt::format("suite: cannot read '{}'", s.path));
  const std::string stem = fs::path(s.path).stem().string();

  std::string line;
  int lineno = 0;
  bool seen_name = false, seen_desc = false, seen_published = false, seen_peers = false;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string where = fmt::format("{}:{}", s.path, lineno);
    const auto hash = line.find('#');
    const std::string text = trim(hash == std::string::npos ? line : line.substr(0, hash));
    if (text.empty()) continue;
    const auto colon = text.find(':');
    if (colon == std::string::npos) {
      throw UsageError(fmt::format("{}: expected 'key: value' (keys: name, description, published, provider, peers, sweep)", where));
    }
    const std::string key = trim(text.substr(0, colon)), value = trim(text.substr(colon + 1));
    auto once = [&](bool& seen) {
      if (seen) throw UsageError(fmt::format("{}: '{}' given twice", where, key));
      seen = true;
      if (value.empty()) throw UsageError(fmt::format("{}: '{}' needs a value", where, key));
    };
    if (key == "name") {
      once(seen_name);
      if (value != stem) throw UsageError(fmt::format("{}: name '{}' differs from the file name '{}'", where, value, stem));
      s.name = value;
    } else if (key == "description") {
      once(seen_desc);
      s.description = value;
    } else if (key == "published") {
      once(seen_published);
      s.published = value;
      std::error_code ec;
      if (!fs::is_regular_file(published_path(s), ec)) {
        throw UsageError(fmt::format("{}: published file '{}' not found", where, published_path(s)));
      }
    } else if (key == "peers") {
      once(seen_peers);
      s.peers = value;
    } else if (key == "provider") {
      // "<provider as published> = <impl>[,<impl>...]" or "<provider> = -"
      const auto eq = value.rfind('=');
      if (eq == std::string::npos) throw UsageError(fmt::format("{}: provider: expected '<published provider> = <impls> | -'", where));
      ProviderMap m;
      m.line = lineno;
      m.provider = trim(value.substr(0, eq));
      const std::string impls = trim(value.substr(eq + 1));
      if (m.provider.empty() || impls.empty()) {
        throw UsageError(fmt::format("{}: provider: expected '<published provider> = <impls> | -'", where));
      }
      for (const auto& other : s.providers) {
        if (other.provider == m.provider) throw UsageError(fmt::format("{}: provider '{}' mapped twice", where, m.provider));
      }
      if (impls != "-") {
        try {
          m.impls = cli::split_list("provider", impls);
        } catch (const UsageError& e) {
          throw UsageError(fmt::format("{}: {}", where, e.what()));
        }
        for (const auto& i : m.impls) {
          if (!contains(suite_impl_names(), i) && !contains(peer_impl_names(), i)) {
            throw UsageError(fmt::format("{}: provider: '{}' is not an implementation (known: {}, {})", where, i,
                                         fmt::join(suite_impl_names(), ", "), fmt::join(peer_impl_names(), ", ")));
          }
        }
      }
      s.providers.push_back(std::move(m));
    } else if (key == "sweep") {
      // Parse and convert now, so a bad option names this line rather than failing mid-suite.
      const cli::RunArgs args = cli::parse_run_line(value, where);
      if (!args.out.empty()) throw UsageError(fmt::format("{}: --out belongs on the command line (attnbench suite --out)", where));
      try {
        (void)cli::to_sweep(args);
      } catch (const UsageError& e) {
        throw UsageError(fmt::format("{}: {}", where, e.what()));
      }
      if (!args.impl.empty()) {
        for (const auto& i : cli::split_list("--impl", args.impl)) {
          if (!contains(suite_impl_names(), i)) {
            throw UsageError(fmt::format("{}: --impl: '{}' is not an implementation (known: {}; peers come from "
                                         "scripts/peers.py, see 'peers:')", where, i, fmt::join(suite_impl_names(), ", ")));
          }
        }
      }
      s.sweeps.emplace_back(lineno, value);
    } else {
      throw UsageError(fmt::format("{}: unknown key '{}' (keys: name, description, published, provider, peers, sweep)", where, key));
    }
  }
  if (!seen_name) throw UsageError(fmt::format("{}: no 'name:' line", s.path));
  if (!seen_desc) throw UsageError(fmt::format("{}: no 'description:' line", s.path));
  if (s.sweeps.empty()) throw UsageError(fmt::format("{}: no 'sweep:' line", s.path));
  if (!s.providers.empty() && s.published.empty()) {
    throw UsageError(fmt::format("{}:{}: 'provider:' without a 'published:' file", s.path, s.providers.front().line));
  }
  return s;
}

}  // namespace attnbench
