#include "worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/algos.h"
#include "host_info.h"
#include "interrupt.h"

extern char** environ;

namespace attnbench {
namespace {

constexpr double kStartTimeoutS = 300;  // a new worker's hello (process start, registry, CUDA probe)
constexpr double kExitTimeoutS = 10;    // a worker asked to exit, before SIGKILL

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string g17(double v) { return fmt::format("{:.17g}", v); }

bool write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t w = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<std::size_t>(w);
  }
  return true;
}

const char* oracle_text(OracleMode m) {
  switch (m) {
    case OracleMode::automatic: return "auto";
    case OracleMode::ref: return "ref";
    case OracleMode::sampled: return "sampled";
    case OracleMode::naive: return "naive";
  }
  return "auto";
}

// One row on the wire: the CSV columns in order, then the progress detail.
std::string encode_row(const RowResult& r) {
  std::string out;
  for (const auto& c : csv_columns()) {
    const auto it = r.row.find(c);
    out += csv_escape(it == r.row.end() ? "" : it->second) + ",";
  }
  return out + csv_escape(r.detail);
}

bool decode_row(const std::string& payload, RowResult& r) {
  const std::vector<std::string> f = split_csv_line(payload);
  const auto& cols = csv_columns();
  if (f.size() != cols.size() + 1) return false;
  for (std::size_t i = 0; i < cols.size(); ++i) {
    if (!f[i].empty()) r.row[cols[i]] = f[i];
  }
  r.detail = f.back();
  return true;
}

}  // namespace

std::vector<std::string> worker_args(const SweepOptions& o) {
  std::vector<std::string> a;
  auto opt = [&a](const char* name, const std::string& value) {
    a.push_back(name);
    a.push_back(value);
  };
  auto join = [](const auto& xs, auto&& f) {
    std::string s;
    for (const auto& x : xs) s += (s.empty() ? "" : ",") + std::string(f(x));
    return s;
  };
  auto same = [](const std::string& s) { return s; };
  opt("--algo", join(o.algos, same));
  if (!o.variants.empty()) opt("--variant", join(o.variants, same));
  if (!o.impls.empty()) opt("--impl", join(o.impls, same));
  opt("--dtype", join(o.dtypes, dtype_name));
  opt("--pass", join(o.passes, pass_name));
  opt("--causal", join(o.causal, [](int c) { return c ? "yes" : "no"; }));
  const bool default_norm = o.normalize.size() == 1 && o.normalize[0] < 0;
  opt("--normalize", default_norm ? "default" : join(o.normalize, [](int n) { return n ? "on" : "off"; }));
  opt("--feature-map", join(o.feature_maps, feature_map_name));
  for (const auto& axis : axis_names()) opt(("--" + axis).c_str(), o.axes.text(axis));
  if (o.params.scale >= 0) opt("--scale", g17(o.params.scale));
  if (o.params.window >= 0) opt("--window", std::to_string(o.params.window));
  opt("--curvature", g17(o.params.curvature));
  opt("--beta", g17(o.params.beta));
  if (o.params.eps > 0) opt("--eps", g17(o.params.eps));
  a.push_back(o.params.lse ? "--lse" : "--no-lse");
  if (o.params.total_attention) a.push_back("--total-attention");
  a.push_back(o.check ? "--check" : "--no-check");
  if (!o.time) a.push_back("--no-time");
  opt("--oracle", oracle_text(o.oracle));
  opt("--k", g17(o.k));
  opt("--budget-ms", g17(o.timing.budget_ms));
  opt("--warmup", std::to_string(o.timing.warmup));
  opt("--min-samples", std::to_string(o.timing.min_samples));
  opt("--max-samples", std::to_string(o.timing.max_samples));
  if (!o.timing.flush_l2) a.push_back("--hot");
  opt("--seed", std::to_string(o.seed));
  if (!o.inject_nonfinite.empty()) opt("--inject-nonfinite", join(o.inject_nonfinite, same));
  if (!o.dump_dir.empty()) opt("--dump", o.dump_dir);
  return a;
}

uint64_t plan_fingerprint(const std::vector<SweepPoint>& points, const std::vector<SweepRow>& rows) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (const auto& r : rows) {
    for (unsigned char c : row_key(row_identity(points[r.point], *r.impl, r.pass)) + "\n") {
      h = (h ^ c) * 1099511628211ull;
    }
  }
  return h;
}

// ---- parent side ----

Worker::Worker(const SweepOptions& opt, const std::vector<SweepPoint>& points, const std::vector<SweepRow>& rows)
    : opt_(opt), points_(points), rows_(rows), fingerprint_(plan_fingerprint(points, rows)) {}

Worker::~Worker() { stop(); }

void Worker::start() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    throw std::runtime_error(fmt::format("worker: socketpair: {}", std::strerror(errno)));
  }
  // The child's end moves above fd 10 first: dup2 onto itself would keep its close-on-exec flag.
  const int child = ::fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
  ::close(sv[1]);
  fd_ = sv[0];
  std::vector<std::string> args = {"/proc/self/exe", "run"};
  if (!opt_.worker_exe.empty()) args[0] = opt_.worker_exe;
  for (auto& w : worker_args(opt_)) args.push_back(std::move(w));
  args.push_back("--worker");
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, child, kWorkerFd);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGPIPE}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &defaults);
  posix_spawnattr_setpgroup(&at, 0);  // its own process group: a terminal's Ctrl-C goes to us only
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &fa, &at, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  ::close(child);
  if (rc != 0) {
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error(fmt::format("worker: cannot start {}: {}", argv[0], std::strerror(rc)));
  }
  pid_ = pid;
  InterruptGuard::set_worker(pid_);
  if (ever_started_) ++restarts_;

  std::string hello;
  bool timed_out = false;
  if (!read_line(hello, now_s() + kStartTimeoutS, &timed_out)) {
    const std::string how = timed_out ? fmt::format("sent nothing for {:g} s", kStartTimeoutS) : reap(false);
    if (timed_out) reap(true);
    throw std::runtime_error(fmt::format("worker {} before it was ready{}", how,
                                         ever_started_ ? "" : " (--no-isolate runs the sweep in this process)"));
  }
  unsigned long long n = 0, fp = 0;
  if (std::sscanf(hello.c_str(), "hello %llu %llx", &n, &fp) != 2 || n != rows_.size() || fp != fingerprint_) {
    reap(true);
    throw std::logic_error(fmt::format("worker: its sweep plan differs from ours ('{}'; expected {} rows, {:x}); "
                                       "rerun with --no-isolate", hello, rows_.size(), fingerprint_));
  }
  ever_started_ = true;
}

std::string Worker::reap(bool kill_first) {
  if (pid_ < 0) return "was not running";
  if (fd_ >= 0) ::close(fd_);  // EOF on its input: a healthy worker exits
  fd_ = -1;
  buf_.clear();
  int status = 0;
  pid_t got = 0;
  if (kill_first) ::kill(pid_, SIGKILL);
  const double deadline = now_s() + kExitTimeoutS;
  while ((got = ::waitpid(pid_, &status, WNOHANG)) == 0 && now_s() < deadline) ::usleep(2000);
  if (got == 0) {
    ::kill(pid_, SIGKILL);
    got = ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  InterruptGuard::set_worker(-1);
  if (got < 0) return "ended (status unknown)";
  if (WIFSIGNALED(status)) return fmt::format("died (signal {}: {})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return fmt::format("exited with status {}", WEXITSTATUS(status));
}

void Worker::stop() {
  if (pid_ >= 0) reap(false);
}

bool Worker::fill(double deadline, bool* timed_out) {
  char chunk[65536];
  while (true) {
    const double left = deadline - now_s();
    if (left <= 0) {
      *timed_out = true;
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    const int ms = std::isinf(deadline) ? -1 : static_cast<int>(std::min(left * 1e3 + 1, 6e4));
    const int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return false;
    if (r == 0) continue;  // re-check the deadline
    const ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // EOF: the worker is gone
    buf_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
}

bool Worker::read_line(std::string& line, double deadline, bool* timed_out) {
  std::size_t nl;
  while ((nl = buf_.find('\n')) == std::string::npos) {
    if (!fill(deadline, timed_out)) return false;
  }
  line = buf_.substr(0, nl);
  buf_.erase(0, nl + 1);
  return true;
}

bool Worker::read_bytes(std::size_t n, std::string& out, double deadline, bool* timed_out) {
  while (buf_.size() < n) {
    if (!fill(deadline, timed_out)) return false;
  }
  out = buf_.substr(0, n);
  buf_.erase(0, n);
  return true;
}

RowResult Worker::failed_row(std::size_t id, const std::string& status) const {
  const SweepRow& r = rows_[id];
  RowResult res{row_identity(points_[r.point], *r.impl, r.pass), ""};
  res.row["status"] = status;
  res.row["timestamp"] = utc_timestamp();
  return res;
}

RowResult Worker::run(std::size_t id) {
  if (pid_ < 0) {
    if (!ever_started_) {
      start();  // failing to start at all ends the sweep: every row would fail the same way
    } else {
      try {
        start();
      } catch (const std::runtime_error& e) {
        return failed_row(id, std::string("error:") + e.what());
      }
    }
  }
  if (!write_all(fd_, std::to_string(id) + "\n")) {
    // It died between rows (nothing of ours in flight): one fresh worker, then it is this row's.
    reap(false);
    try {
      start();
    } catch (const std::runtime_error& e) {
      return failed_row(id, std::string("error:") + e.what());
    }
    if (!write_all(fd_, std::to_string(id) + "\n")) return failed_row(id, "error:worker " + reap(true));
  }
  const double deadline = opt_.row_timeout_s > 0 ? now_s() + opt_.row_timeout_s : INFINITY;
  bool timed_out = false;
  std::string header, payload;
  if (!read_line(header, deadline, &timed_out)) {
    if (timed_out) {
      reap(true);
      return failed_row(id, fmt::format("error:timed out after {:g} s (worker killed)", opt_.row_timeout_s));
    }
    return failed_row(id, "error:worker " + reap(false));
  }
  unsigned long long got_id = 0, bytes = 0;
  char next[8] = {0};
  if (std::sscanf(header.c_str(), "row %llu %llu %7s", &got_id, &bytes, next) != 3 || got_id != id) {
    reap(true);
    return failed_row(id, fmt::format("error:worker protocol: expected row {}, got '{}'", id, header.substr(0, 80)));
  }
  if (!read_bytes(bytes, payload, deadline, &timed_out)) {
    if (timed_out) reap(true);
    return failed_row(id, "error:worker " + (timed_out ? std::string("timed out") : reap(false)) + " while sending the row");
  }
  RowResult res;
  const SweepRow& r = rows_[id];
  if (!decode_row(payload, res) || row_key(res.row) != row_key(row_identity(points_[r.point], *r.impl, r.pass))) {
    reap(true);
    return failed_row(id, "error:worker protocol: a malformed row");
  }
  if (std::strcmp(next, "exit") == 0) reap(false);  // its CUDA context is gone: a new worker for the next row
  return res;
}

// ---- worker side ----

int worker_main(const SweepOptions& opt) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the parent's death (even by SIGKILL) ends us
  const std::vector<SweepPoint> points = expand_points(opt);
  const std::vector<SweepRow> rows = plan_rows(opt, points);
  if (!write_all(kWorkerFd, fmt::format("hello {} {:x}\n", rows.size(), plan_fingerprint(points, rows)))) return 1;
  RowRunner runner(opt, points);
  std::string buf;
  char chunk[256];
  while (true) {
    const std::size_t nl = buf.find('\n');
    if (nl == std::string::npos) {
      const ssize_t n = ::read(kWorkerFd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return 0;  // the parent closed its end: done
      buf.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    const std::string line = buf.substr(0, nl);
    buf.erase(0, nl + 1);
    char* end = nullptr;
    const unsigned long long id = std::strtoull(line.c_str(), &end, 10);
    if (line.empty() || *end != '\0' || id >= rows.size()) {
      std::fprintf(stderr, "attnbench worker: bad request '%s'\n", line.c_str());
      return 2;
    }
    const RowResult r = runner.run(rows[id]);
    const std::string payload = encode_row(r);
    const bool exit_after = !runner.gpu_broken().empty();
    if (!write_all(kWorkerFd, fmt::format("row {} {} {}\n", id, payload.size(), exit_after ? "exit" : "next") + payload)) {
      return 1;
    }
    if (exit_after) ::_exit(0);  // no CUDA teardown in a broken context
  }
}

}  // namespace attnbench
