// The one visible list of implementations. Order: CPU references first (ref, emul), then the CUDA
// kernels when built with a toolkit.
#include "core/impl.h"
#include "register.h"
#ifdef ATTNBENCH_HAVE_CUDA
#include "register_cuda.h"
#endif

namespace attnbench {

void register_all(Registry& r) {
  ref::register_reference(r);
#ifdef ATTNBENCH_HAVE_CUDA
  kernels::register_cuda(r);
#endif
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
