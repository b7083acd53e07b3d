#include "hyperbolic.h"

namespace attnbench::ref {

void register_hyperbolic(Registry&) {}  // placeholder until the hyperbolic reference lands

}  // namespace attnbench::ref
