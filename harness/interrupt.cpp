#include "interrupt.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace attnbench {
namespace {

// State the handler reads: plain lock-free atomics and a fixed buffer, set before it can run.
std::atomic<bool> g_active{false};
std::atomic<int> g_writing{0};     // inside a RowWriteSection
std::atomic<int> g_pending{0};     // a signal that arrived while writing
std::atomic<pid_t> g_worker{-1};
std::atomic<long> g_rows{0};       // rows written since the guard was made
char g_path[1024];
struct sigaction g_old_int, g_old_term;

void put(const char* s) {
  const ssize_t n = static_cast<ssize_t>(std::strlen(s));
  ssize_t done = 0;
  while (done < n) {
    const ssize_t w = ::write(STDERR_FILENO, s + done, static_cast<std::size_t>(n - done));
    if (w <= 0) return;
    done += w;
  }
}

void put_number(long v) {
  char buf[24];
  int i = sizeof buf - 1;
  buf[i] = '\0';
  if (v == 0) buf[--i] = '0';
  while (v > 0 && i > 0) buf[--i] = static_cast<char>('0' + v % 10), v /= 10;
  put(buf + i);
}

// Async-signal-safe: stop the worker, say what happened, exit 128 + sig.
[[noreturn]] void finish(int sig) {
  const pid_t w = g_worker.load();
  if (w > 0) {
    ::kill(w, SIGKILL);
    ::waitpid(w, nullptr, 0);
  }
  put("attnbench: interrupted by ");
  put(sig == SIGINT ? "SIGINT" : "SIGTERM");
  put("; the row in flight was dropped; ");
  put_number(g_rows.load());
  put(" rows of this sweep are in ");
  put(g_path);
  put(" (rerun with --resume to finish)\n");
  ::_exit(128 + sig);
}

void on_signal(int sig) {
  if (g_writing.load()) {
    g_pending.store(sig);
    return;
  }
  finish(sig);
}

}  // namespace

InterruptGuard::InterruptGuard(const std::string& csv_path) {
  std::strncpy(g_path, csv_path.c_str(), sizeof g_path - 1);
  g_path[sizeof g_path - 1] = '\0';
  g_rows = 0;
  g_pending = 0;
  g_writing = 0;
  g_worker = -1;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
  g_active = true;
}

InterruptGuard::~InterruptGuard() {
  g_active = false;
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
  g_worker = -1;
}

void InterruptGuard::set_worker(pid_t pid) { g_worker = pid; }

RowWriteSection::RowWriteSection() { ++g_writing; }

RowWriteSection::~RowWriteSection() {
  ++g_rows;
  if (--g_writing == 0 && g_active) {
    const int sig = g_pending.exchange(0);
    if (sig) finish(sig);
  }
}

}  // namespace attnbench
