// Registers every CPU implementation (ref and emul of each algorithm).
#pragma once

#include "core/impl.h"

namespace attnbench::ref {
void register_reference(Registry& r);
}
