#include "piecewise.h"

namespace attnbench::ref {

void register_piecewise(Registry&) {}  // placeholder until the piecewise reference lands

}  // namespace attnbench::ref
