// Running one sweep row in this process (the in-process sweep and the worker both use it).
//
// Consecutive rows of one point share its inputs and its oracle/base (drawn and computed once,
// kept until a row of another point comes). A row never throws: whatever goes wrong is its
// status (`skipped:...`, `error:...`).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "csv.h"
#include "sweep.h"

namespace attnbench {

struct RowResult {
  CsvRow row;          // every column the row has (row_identity() plus status, errors, timing)
  std::string detail;  // for the progress line: the verdict's numbers or its reason for failing
};

class RowRunner {
 public:
  RowRunner(const SweepOptions& opt, const std::vector<SweepPoint>& points);
  ~RowRunner();
  RowRunner(const RowRunner&) = delete;
  RowRunner& operator=(const RowRunner&) = delete;

  RowResult run(const SweepRow& r);

  // Non-empty once a CUDA fault has left this process's CUDA context unusable (an illegal
  // address, a trap): no later GPU work here can succeed, only a new process can use the GPU.
  // Later CUDA rows of this runner are `error:` rows that say so without running.
  const std::string& gpu_broken() const { return gpu_broken_; }

 private:
  struct PointState;
  void load_point(std::size_t index);

  const SweepOptions& opt_;
  const std::vector<SweepPoint>& points_;
  std::unique_ptr<PointState> cur_;
  std::string gpu_broken_;
};

// "q: 1 NaN; k: 2 Inf" for the non-finite elements of `inputs`; empty when all are finite.
std::string nonfinite_summary(const Tensors& inputs);

// Apply --inject-nonfinite specs ("q", "k:inf", "v:-inf", "q:nan") to freshly drawn inputs: one
// element (the middle one) of each named tensor becomes the value. Names absent here are ignored
// (a sweep over several algorithms); expand_points() has already checked each names some input.
void inject_nonfinite(const std::vector<std::string>& specs, Tensors& inputs);

}  // namespace attnbench
