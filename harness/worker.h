// Sweep rows in a worker process, so that a crash costs one row, not the sweep.
//
// A kernel that faults (an illegal address, a trap) leaves the process's CUDA context unusable,
// and a CPU implementation can abort or be killed by a signal; either would end an in-process
// sweep. With isolation the parent (`attnbench run`, `attnbench suite`) keeps the CSV and starts
//
//   <this binary> run <options that reproduce the sweep> --worker
//
// with a socket pair as its fd 3: row ids go in, rows come back. The worker expands
// the same sweep (it proves it with a fingerprint of the row plan in its first message), runs the
// rows it is sent with a RowRunner (so consecutive rows of one point share inputs and oracle) and
// returns each whole row. Messages:
//
//   worker -> parent   hello <rows> <fingerprint>\n             once, at start
//   parent -> worker   <row id>\n                               one row to run
//   worker -> parent   row <row id> <bytes> <next|exit>\n<bytes>   the row: its CSV fields and
//                                                                the progress detail, CSV-escaped
//
// `exit` means the worker's CUDA context is unusable after this row (gpu_sticky_error()), so it
// exits and the parent starts a new one for the next row. If the worker dies instead (a signal, an
// exit) or a row outlives --row-timeout, the row in flight becomes `error:worker died (signal 6:
// Aborted)` / `error:timed out after 60 s (worker killed)` and the next row gets a new worker.
//
// The worker runs in its own process group, so a terminal's Ctrl-C reaches only the parent, which
// kills the worker and exits (harness/interrupt.h); a worker whose parent dies is killed too.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "row_runner.h"
#include "sweep.h"

namespace attnbench {

// The `attnbench run` options that reproduce `opt` (expand_points and plan_rows give the same
// rows). The worker flags (--worker) are not included.
std::vector<std::string> worker_args(const SweepOptions& opt);

// FNV-1a over the keys of the rows, in order: parent and worker agree on the plan iff equal.
uint64_t plan_fingerprint(const std::vector<SweepPoint>& points, const std::vector<SweepRow>& rows);

class Worker {
 public:
  Worker(const SweepOptions& opt, const std::vector<SweepPoint>& points, const std::vector<SweepRow>& rows);
  ~Worker();  // stops the worker (EOF on its input, then SIGKILL if it lingers)
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs row `id` in the worker (starting one if none is running). Never throws for a row's own
  // failure; throws std::runtime_error when the worker cannot be started at all or disagrees on
  // the plan (a bug, or a binary that does not match this one).
  RowResult run(std::size_t id);
  int restarts() const { return restarts_; }

 private:
  void start();
  void stop();
  std::string reap(bool kill_first);  // waits for the worker; returns how it ended
  RowResult failed_row(std::size_t id, const std::string& status) const;
  // Reads a line / n bytes from the worker; false on EOF, error or the deadline (*timed_out).
  bool read_line(std::string& line, double deadline, bool* timed_out);
  bool read_bytes(std::size_t n, std::string& out, double deadline, bool* timed_out);
  bool fill(double deadline, bool* timed_out);

  const SweepOptions& opt_;
  const std::vector<SweepPoint>& points_;
  const std::vector<SweepRow>& rows_;
  uint64_t fingerprint_;
  pid_t pid_ = -1;
  int fd_ = -1;  // our end of the socket pair
  std::string buf_;
  bool ever_started_ = false;
  int restarts_ = 0;
};

constexpr int kWorkerFd = 3;
// The worker side: serves rows on fd 3 until EOF. Returns the exit status.
int worker_main(const SweepOptions& opt);

}  // namespace attnbench
