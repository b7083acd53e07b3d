// based, CPU: fp64 reference and same-precision emulation (being written this session).
#pragma once

#include "core/impl.h"

namespace attnbench::ref {

void register_based(Registry& r);

}  // namespace attnbench::ref
