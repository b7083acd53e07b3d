#include "gated.h"

namespace attnbench::ref {

void register_gated(Registry&) {}  // placeholder until the gated reference lands

}  // namespace attnbench::ref
