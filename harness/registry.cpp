// The one visible list of implementations. Order: CPU references first (ref, emul), then the CUDA
// kernels when built with a toolkit.
#include "core/impl.h"
#include "register.h"
#include "test_impls.h"
#ifdef ATTNBENCH_HAVE_CUDA
#include "common/fault_test.h"
#include "register_cuda.h"
#endif

namespace attnbench {

void register_all(Registry& r) {
  ref::register_reference(r);
#ifdef ATTNBENCH_HAVE_CUDA
  kernels::register_cuda(r);
#endif
  if (test_impls_enabled()) {  // ATTNBENCH_TEST_IMPLS=1: implementations that fail on purpose
    register_test_impls(r);
#ifdef ATTNBENCH_HAVE_CUDA
    kernels::register_fault_test(r);
#endif
  }
}

const Registry& registry() {
  static const Registry reg = [] {
    Registry r;
    register_all(r);
    return r;
  }();
  return reg;
}

}  // namespace attnbench
