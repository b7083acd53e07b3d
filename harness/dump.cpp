#include "dump.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "errors.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "NPY files are written '<' (little-endian) byte for byte");

namespace attnbench {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes
constexpr std::size_t kAlign = 64;      // numpy pads the header so the data starts 64-byte aligned

bool exact_in_float(const Tensor& t) {
  for (double v : t.data) {
    if (std::isnan(v)) continue;  // NaN (not computed by a sampled oracle) survives as a float NaN
    if (static_cast<double>(static_cast<float>(v)) != v) return false;
  }
  return true;
}

std::string shape_tuple(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// The value of `key` in a header dict "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }".
std::string dict_value(const std::string& h, const std::string& key, const std::string& path) {
  const auto k = h.find("'" + key + "'");
  if (k == std::string::npos) throw std::runtime_error(fmt::format("{}: npy header has no '{}'", path, key));
  auto v = h.find(':', k);
  if (v == std::string::npos) throw std::runtime_error(fmt::format("{}: npy header malformed at '{}'", path, key));
  ++v;
  while (v < h.size() && h[v] == ' ') ++v;
  std::size_t end = v;
  if (h[v] == '(') end = h.find(')', v) + 1;
  else if (h[v] == '\'') end = h.find('\'', v + 1) + 1;
  else end = h.find_first_of(",}", v);
  if (end == std::string::npos || end == 0) throw std::runtime_error(fmt::format("{}: npy header malformed at '{}'", path, key));
  return h.substr(v, end - v);
}

std::string safe(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '_';
  return out;
}

}  // namespace

std::string dump_tag(const Problem& p, const std::string& impl, Pass pass, Dtype dtype) {
  std::string t = p.algo + (p.variant.empty() ? "" : "-" + p.variant);
  t += fmt::format("_{}_{}_{}_B{}_H{}_Hkv{}_Tq{}_Tk{}_Dk{}_Dv{}{}", impl, pass_name(pass), dtype_name(dtype), p.B, p.H,
                   p.Hkv, p.Tq, p.Tk, p.Dk, p.Dv, p.causal ? "_causal" : "");
  const std::string params = p.params_string();  // "scale=0.125;lse=1" -> "_scale_0.125_lse_1"
  if (!params.empty()) t += "_" + params;
  return safe(t);
}

void write_npy(const std::string& path, const Tensor& t) {
  const bool f4 = exact_in_float(t);
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", f4 ? "<f4" : "<f8",
                                   shape_tuple(t.shape));
  const std::size_t prefix = 6 + 2 + 2;  // magic, version, header length
  const std::size_t total = (prefix + header.size() + 1 + kAlign - 1) / kAlign * kAlign;
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';
  if (header.size() > 65535) throw UsageError(fmt::format("--dump: {}: shape too long for an NPY 1.0 header", path));

  std::ofstream out(path, std::ios::binary);
  if (!out) throw UsageError(fmt::format("--dump: cannot write '{}': {}", path, std::strerror(errno)));
  out.write(kMagic, 6);
  const unsigned char version[2] = {1, 0};
  out.write(reinterpret_cast<const char*>(version), 2);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const unsigned char len_le[2] = {static_cast<unsigned char>(len & 0xff), static_cast<unsigned char>(len >> 8)};
  out.write(reinterpret_cast<const char*>(len_le), 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  if (f4) {
    std::vector<float> f(t.data.begin(), t.data.end());
    out.write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size() * sizeof(float)));
  } else {
    out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * sizeof(double)));
  }
  out.flush();
  if (!out) throw UsageError(fmt::format("--dump: writing '{}' failed", path));
}

Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot read", path));
  char magic[6];
  unsigned char ver[2];
  in.read(magic, 6);
  in.read(reinterpret_cast<char*>(ver), 2);
  if (!in || std::memcmp(magic, kMagic, 6) != 0) throw std::runtime_error(fmt::format("{}: not an NPY file", path));
  std::size_t hlen = 0;
  if (ver[0] == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    hlen = b[0] | (b[1] << 8);
  } else if (ver[0] == 2 || ver[0] == 3) {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<std::size_t>(b[3]) << 24);
  } else {
    throw std::runtime_error(fmt::format("{}: NPY version {}.{} not supported", path, ver[0], ver[1]));
  }
  std::string h(hlen, '\0');
  in.read(h.data(), static_cast<std::streamsize>(hlen));
  if (!in) throw std::runtime_error(fmt::format("{}: truncated NPY header", path));
  const std::string descr = dict_value(h, "descr", path), order = dict_value(h, "fortran_order", path);
  if (order != "False") throw std::runtime_error(fmt::format("{}: fortran_order {} not supported", path, order));
  if (descr != "'<f4'" && descr != "'<f8'") {
    throw std::runtime_error(fmt::format("{}: descr {} not supported ('<f4' or '<f8')", path, descr));
  }
  Tensor t;
  const std::string shape = dict_value(h, "shape", path);  // "(2, 3)", "(5,)", "()"
  std::string cur;
  for (char c : shape.substr(1, shape.size() - 2)) {
    if (c == ',') {
      if (!cur.empty()) t.shape.push_back(std::stoll(cur));
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  if (!cur.empty()) t.shape.push_back(std::stoll(cur));
  const int64_t n = Tensor::count(t.shape);
  t.data.resize(static_cast<std::size_t>(n));
  if (descr == "'<f4'") {
    std::vector<float> f(static_cast<std::size_t>(n));
    in.read(reinterpret_cast<char*>(f.data()), static_cast<std::streamsize>(n * 4));
    std::copy(f.begin(), f.end(), t.data.begin());
  } else {
    in.read(reinterpret_cast<char*>(t.data.data()), static_cast<std::streamsize>(n * 8));
  }
  if (!in) throw std::runtime_error(fmt::format("{}: truncated data ({} values expected)", path, n));
  return t;
}

void prepare_dump_dir(const std::string& dir) {
  if (dir.empty()) throw UsageError("--dump: empty folder name");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec)) {
    throw UsageError(fmt::format("--dump: cannot create folder '{}'{}", dir, ec ? ": " + ec.message() : ""));
  }
  const fs::path probe = fs::path(dir) / ".attnbench_write_test";
  std::ofstream(probe.string()) << "";
  if (!fs::exists(probe, ec)) throw UsageError(fmt::format("--dump: cannot write in '{}'", dir));
  fs::remove(probe, ec);
}

void dump_point(const std::string& dir, const std::string& tag, const Tensors& inputs, const Tensors& outputs,
                const Tensors* oracle, const Tensors* base) {
  const fs::path folder = fs::path(dir) / tag;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw UsageError(fmt::format("--dump: cannot create '{}': {}", folder.string(), ec.message()));
  auto write_all = [&folder](const char* role, const Tensors& ts) {
    for (const auto& [name, t] : ts) write_npy((folder / (std::string(role) + "." + safe(name) + ".npy")).string(), t);
  };
  write_all("input", inputs);
  write_all("output", outputs);
  if (oracle) write_all("oracle", *oracle);
  if (base) write_all("base", *base);
}

DumpedPoint read_point(const std::string& dir, const std::string& tag) {
  DumpedPoint d;
  const fs::path folder = fs::path(dir) / tag;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw std::runtime_error(fmt::format("{}: no such dump", folder.string()));
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string file = e.path().filename().string();
    if (e.path().extension() != ".npy") continue;
    const auto dot = file.find('.');
    const std::string role = file.substr(0, dot);
    const std::string name = file.substr(dot + 1, file.size() - dot - 1 - 4);
    Tensors* into = role == "input" ? &d.inputs : role == "output" ? &d.outputs : role == "oracle" ? &d.oracle
                  : role == "base" ? &d.base : nullptr;
    if (into) (*into)[name] = read_npy(e.path().string());
  }
  return d;
}

}  // namespace attnbench
