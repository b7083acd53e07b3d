#include "register.h"

#include "softmax.h"

namespace attnbench::ref {

void register_reference(Registry& r) {
  register_softmax(r);
}

}  // namespace attnbench::ref
