#include "based.h"

namespace attnbench::ref {

void register_based(Registry&) {}  // placeholder until the based reference lands

}  // namespace attnbench::ref
