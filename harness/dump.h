// `--dump DIR`: a point's tensors as .npy files, so any framework can re-check it.
//
// Layout: DIR/<tag>/<role>.<name>.npy with role
//   input    what the implementation read (q, k, v, ..., do for a backward), storage-rounded
//   output   what it returned (o, lse, dq, ...)
//   oracle   what stood in for ref (fp64 CPU reference, its sampled slice with NaN where not
//            computed, or the fp32 naive kernel), when the point was checked
//   base     the same-precision run of the numerics rule, when the point was checked
// Each file is NPY format 1.0 (numpy.lib.format): magic "\x93NUMPY", version 1.0, a little-endian
// uint16 header length, and an ASCII dict {'descr': '<f4' | '<f8', 'fortran_order': False,
// 'shape': (...), } padded with spaces to a 64-byte boundary and ended by '\n'; then the values,
// C order. A tensor is written as '<f4' when every value is exactly a float (every fp16, bf16 and
// fp32 tensor), else as '<f8' (the fp64 oracle): lossless either way.
#pragma once

#include <string>

#include "core/dtype.h"
#include "core/problem.h"
#include "core/tensor.h"

namespace attnbench {

// A file-system-safe tag naming a row: "softmax_tiled_fwd_bf16_B2_H16_Hkv16_Tq1024_Tk1024_Dk64_Dv64_causal".
std::string dump_tag(const Problem& p, const std::string& impl, Pass pass, Dtype dtype);

// Creates DIR (and parents) or throws UsageError naming --dump: call before the sweep starts, so
// an unwritable DIR is bad input (exit 2), not an error row per point.
void prepare_dump_dir(const std::string& dir);

// Writes DIR/<tag>/... (creating folders). `oracle` and `base` may be null (unchecked rows).
// Throws UsageError naming --dump when the folder or a file cannot be written.
void dump_point(const std::string& dir, const std::string& tag, const Tensors& inputs, const Tensors& outputs,
                const Tensors* oracle, const Tensors* base = nullptr);

void write_npy(const std::string& path, const Tensor& t);
// Reads NPY 1.0/2.0 files of '<f4' or '<f8', C order. Throws std::runtime_error naming the file.
Tensor read_npy(const std::string& path);

struct DumpedPoint {
  Tensors inputs, outputs, oracle, base;
};
// Every DIR/<tag>/<role>.<name>.npy, by role.
DumpedPoint read_point(const std::string& dir, const std::string& tag);

}  // namespace attnbench
