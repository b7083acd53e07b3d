#include "bidir_kernels.h"

namespace attnbench::kernels {

void register_bidir_family(Registry&) {}  // placeholder until the bidir kernels land

}  // namespace attnbench::kernels
