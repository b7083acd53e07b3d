#include "core/impl.h"

#include <fmt/format.h>

namespace attnbench {

void Registry::add(Impl impl) {
  if (find(impl.algo, impl.name)) {
    throw std::logic_error(fmt::format("impl {}/{} registered twice", impl.algo, impl.name));
  }
  impls_.push_back(std::move(impl));
}

const Impl* Registry::find(const std::string& algo, const std::string& name) const {
  for (const auto& i : impls_) {
    if (i.algo == algo && i.name == name) return &i;
  }
  return nullptr;
}

std::vector<const Impl*> Registry::for_algo(const std::string& algo) const {
  std::vector<const Impl*> out;
  for (const auto& i : impls_) {
    if (i.algo == algo) out.push_back(&i);
  }
  return out;
}

}  // namespace attnbench
