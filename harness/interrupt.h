// SIGINT and SIGTERM during a sweep: the CSV stays valid and nothing already written is lost.
//
// While an InterruptGuard lives, either signal ends the process between whole rows: the worker
// process (if any) is killed, the row in flight is dropped, one line goes to stderr, and the exit
// status is 128 + the signal (130 for SIGINT, 143 for SIGTERM, as a shell reports them). A signal
// that arrives while a row and its progress line are being written (inside a RowWriteSection)
// takes effect right after them, so every row in the file is whole and the file ends with a
// newline. `--resume` then runs only the rows the file lacks.
//
// The handler does only async-signal-safe things (kill, waitpid, write, _exit).
#pragma once

#include <sys/types.h>

#include <string>

namespace attnbench {

class InterruptGuard {
 public:
  explicit InterruptGuard(const std::string& csv_path);
  ~InterruptGuard();  // restores the previous handlers
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  static void set_worker(pid_t pid);  // the worker process to kill on a signal (-1: none)
};

// Brackets the writing of one row (CSV line and progress line).
class RowWriteSection {
 public:
  RowWriteSection();
  ~RowWriteSection();  // counts the row; acts on a signal that arrived meanwhile
  RowWriteSection(const RowWriteSection&) = delete;
  RowWriteSection& operator=(const RowWriteSection&) = delete;
};

}  // namespace attnbench
