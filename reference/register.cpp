#include "register.h"

#include "based.h"
#include "bidir.h"
#include "gated.h"
#include "hyperbolic.h"
#include "linear.h"
#include "piecewise.h"
#include "softmax.h"

namespace attnbench::ref {

void register_reference(Registry& r) {
  register_softmax(r);
  register_piecewise(r);
  register_hyperbolic(r);
  register_linear(r);
  register_based(r);
  register_gated(r);
  register_bidir(r);
}

}  // namespace attnbench::ref
