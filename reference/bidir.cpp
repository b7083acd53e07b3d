#include "bidir.h"

namespace attnbench::ref {

void register_bidir(Registry&) {}  // placeholder until the bidir reference lands

}  // namespace attnbench::ref
