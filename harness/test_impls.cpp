#include "test_impls.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>

namespace attnbench {
namespace {

enum class Misbehave { abort, slow, nan };

// Wraps the fp64 reference's prepared pass and misbehaves as asked.
class TestPrepared final : public Prepared {
 public:
  TestPrepared(std::unique_ptr<Prepared> inner, Misbehave how) : inner_(std::move(inner)), how_(how) {}
  void run() override {
    if (how_ == Misbehave::abort) std::abort();
    if (how_ == Misbehave::slow) std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms()));
    inner_->run();
  }
  void poison_outputs() override { inner_->poison_outputs(); }
  Tensors outputs() override {
    Tensors out = inner_->outputs();
    if (how_ == Misbehave::nan && !out.empty()) {  // one NaN in the middle of o (else the first output)
      auto& data = (out.count("o") ? out.find("o") : out.begin())->second.data;
      if (!data.empty()) data[data.size() / 2] = NAN;
    }
    return out;
  }

 private:
  static int slow_ms() {
    const char* v = std::getenv("ATTNBENCH_TEST_SLOW_MS");
    return v ? std::atoi(v) : 150;
  }
  std::unique_ptr<Prepared> inner_;
  Misbehave how_;
};

}  // namespace

bool test_impls_enabled() {
  const char* v = std::getenv("ATTNBENCH_TEST_IMPLS");
  return v && std::string(v) == "1";
}

void register_test_impls(Registry& r) {
  const Impl* ref = r.find("softmax", "ref");
  if (!ref) return;
  const Impl base = *ref;  // a copy: the registry's storage moves as it grows
  const std::pair<const char*, Misbehave> kinds[] = {
      {"abort_test", Misbehave::abort}, {"slow_test", Misbehave::slow}, {"nan_test", Misbehave::nan}};
  for (const auto& [name, how] : kinds) {
    Impl i;
    i.algo = "softmax";
    i.name = name;
    i.device = Device::cpu;
    i.summary = "test only (ATTNBENCH_TEST_IMPLS=1): misbehaves on purpose";
    i.supports = base.supports;
    i.prepare = [prep = base.prepare, how = how](const Problem& p, Pass pass, Dtype dt, const Tensors& in,
                                                 const PrepareOptions& o) -> std::unique_ptr<Prepared> {
      return std::make_unique<TestPrepared>(prep(p, pass, dt, in, o), how);
    };
    r.add(std::move(i));
  }
}

}  // namespace attnbench
