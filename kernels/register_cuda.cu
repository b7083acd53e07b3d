// The CUDA half of the registry (harness/registry.cpp calls this after the CPU references).
#include "bidir/bidir_kernels.h"
#include "linear/linear_kernels.h"
#include "register_cuda.h"
#include "softmax/softmax_kernels.h"

namespace attnbench::kernels {

void register_cuda(Registry& r) {
  register_softmax_family(r);
  register_linear_family(r);
  register_bidir_family(r);
}

}  // namespace attnbench::kernels
