// Bad input: one line naming the parameter and what is allowed. The CLI prints it and exits 2.
#pragma once

#include <stdexcept>
#include <string>

namespace attnbench {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace attnbench
