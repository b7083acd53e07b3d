#include "linear.h"

namespace attnbench::ref {

void register_linear(Registry&) {}  // placeholder until the linear reference lands

}  // namespace attnbench::ref
