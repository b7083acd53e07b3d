// What `attnbench suite` prints: measured rows beside the published ones, with a ratio normalized
// by the two machines' peak rates, from ONE table of hardware peaks (below; the same table, with
// sources, is in results/published/README.md and a test keeps the two equal).
//
// Normalization. For a published value p and our measurement m at the same point:
//   speed ratio   r = m / p      (metric tflops: higher is faster)
//                 r = p / m      (metric ms, ms_median, cuda_ms_total: lower is faster)
//   hw factor     f = peak(ours) / peak(published), where peak is
//                   - the memory bandwidth for memory-bound families (linear, based, gated, bidir:
//                     the CSV's flop_model min-bytes),
//                   - the dense tensor-core rate (fp16/bf16 inputs, fp32 accumulate) for the
//                     softmax family in fp16/bf16,
//                   - the fp32 CUDA-core rate for the softmax family in fp32;
//   normalized    r / f: 1.0 means ours reaches the same fraction of its machine's peak as the
//                 published number did on its machine; > 1 better, < 1 worse.
// `fwd+bwd` published points (one timing of both passes) are compared to our fwd + bwd medians.
#pragma once

#include <string>
#include <vector>

#include "csv.h"
#include "suite.h"

namespace attnbench {

struct HardwarePeak {
  std::string name;                // "H100 SXM5 80GB"
  std::vector<std::string> match;  // lower-case words that all occur in a GPU or hardware string
  double bandwidth_tbs;            // peak DRAM bandwidth, TB/s (NaN: unknown)
  double tensor_tflops;            // dense fp16/bf16 tensor-core rate with fp32 accumulate
  double fp32_tflops;              // fp32 on CUDA cores (no tensor cores)
  std::string source;              // datasheet, or the assumption made
};

// Ordered most specific first; find_hardware returns the first whose words all occur
// (case-insensitive), or nullptr (a CPU, an unknown GPU).
const std::vector<HardwarePeak>& hardware_peaks();
const HardwarePeak* find_hardware(const std::string& text);

struct PublishedRow {
  int line = 0;  // in the published CSV
  std::string source, hardware, algo, variant, provider, pass, dtype, causal, metric, note;
  long long B = 0, H = 0, T = 0, Dk = 0, Dv = 0;
  double value = 0;
};

// Reads and validates a published CSV (the columns of shared/published). Throws UsageError naming
// the file (and line) when malformed.
std::vector<PublishedRow> read_published(const std::string& path);

// Every provider of `pub` needs a `provider:` line in the suite and every `provider:` line a
// provider in `pub`; throws UsageError naming the suite file and line otherwise.
void check_providers(const Suite& s, const std::vector<PublishedRow>& pub);

struct SuiteReport {
  std::string markdown;
  int points = 0;      // table rows
  int measured = 0;    // rows with a timing on both sides
  int skipped = 0;     // rows whose measurement was skipped or failed (no timing)
  int missing = 0;     // rows with no measured row at all
  int unmapped = 0;    // published providers with no counterpart here (`-`)
};

// Published vs measured for a suite with a published file; `measured` is the suite's results CSV
// (rows of later runs supersede earlier ones at the same key).
SuiteReport side_by_side(const Suite& s, const std::vector<PublishedRow>& pub, const CsvTable& measured);

// For a suite without a published file: one line per measured row (status, time, rate, error).
SuiteReport measured_summary(const Suite& s, const CsvTable& measured);

}  // namespace attnbench
