// Implementations that misbehave on purpose, to test that the harness survives them (issue 9).
// Registered only when the environment has ATTNBENCH_TEST_IMPLS=1, never in a normal run:
//   softmax/abort_test  CPU: run() calls abort(); with isolation it costs one `error:` row
//   softmax/slow_test   CPU: the fp64 reference, each run() first sleeping $ATTNBENCH_TEST_SLOW_MS
//                       (default 150) ms: a sweep slow enough to interrupt half-way
//   softmax/nan_test    CPU: the fp64 reference with one output element NaN: the check must fail it
// and in a CUDA build kernels/common/fault_test.cu: softmax/fault_test (a kernel writing through a
// wild pointer: an illegal address, sticky) and softmax/oom_test (asks for twice the GPU memory).
#pragma once

#include "core/impl.h"

namespace attnbench {

bool test_impls_enabled();  // $ATTNBENCH_TEST_IMPLS == "1"
void register_test_impls(Registry& r);

}  // namespace attnbench
