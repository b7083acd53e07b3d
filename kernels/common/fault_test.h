// Test-only CUDA implementations that fail on purpose (registered with ATTNBENCH_TEST_IMPLS=1; see
// harness/test_impls.h): softmax/fault_test and softmax/oom_test.
#pragma once

#include "core/impl.h"

namespace attnbench::kernels {

void register_fault_test(Registry& r);

}  // namespace attnbench::kernels
