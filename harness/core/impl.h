// The one interface every implementation of every algorithm sits behind.
//
// An Impl is an (algo, name) pair: "softmax/ref", "gated/tiled", ... It says which problems it
// supports (and why not the rest), and prepares a problem: allocates, uploads the inputs and, for
// a backward, runs its own forward untimed. The Prepared object then runs the pass as many times
// as the timer asks, and hands its outputs back as fp64 host tensors for the checker.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/problem.h"
#include "core/tensor.h"

namespace attnbench {

enum class Device { cpu, cuda };

struct Support {
  bool ok = true;
  std::string reason;  // why not, for a `skipped:<reason>` row
  static Support yes() { return {}; }
  static Support no(std::string why) { return {false, std::move(why)}; }
};

struct PrepareOptions {
  // Round where the same-precision `base` of the numerics rule rounds (DESIGN.md): products of
  // dtype inputs, fp32 accumulation, probabilities / intra-chunk scores rounded to the dtype before
  // they multiply values, outputs rounded. Implementations that are always "careful kernels"
  // ignore it; the naive GPU kernels honour it.
  bool same_precision = false;
};

class Prepared {
 public:
  virtual ~Prepared() = default;
  // One execution of the pass. CUDA implementations enqueue on stream() and return.
  virtual void run() = 0;
  // Fill every output with NaN, so an element the next run() does not write shows up.
  virtual void poison_outputs() = 0;
  // Every output of the pass (see pass_outputs()) as fp64 host tensors; synchronizes.
  virtual Tensors outputs() = 0;
  // The cudaStream_t run() enqueues on (nullptr: the default stream or a CPU implementation).
  virtual void* stream() { return nullptr; }
};

// Thrown by prepare()/run() when device memory runs out: the sweep records
// `skipped:out of device memory` and goes on.
struct OutOfDeviceMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Impl {
  std::string algo;     // registry key, part 1: the algorithm id
  std::string name;     // registry key, part 2: ref, emul, naive, tiled, flash1, flash2, unfused
  Device device = Device::cpu;
  std::string summary;  // what it supports, for `attnbench list`
  std::function<Support(const Problem&, Pass, Dtype)> supports;
  std::function<std::unique_ptr<Prepared>(const Problem&, Pass, Dtype, const Tensors& inputs,
                                          const PrepareOptions&)>
      prepare;
  // CPU implementations: the operation count of a problem (what `supports` holds against its
  // limit), so the sampled oracle can price one slice; empty where none is modelled.
  std::function<double(const Problem&, Pass)> cost;
};

class Registry {
 public:
  void add(Impl impl);
  const Impl* find(const std::string& algo, const std::string& name) const;
  std::vector<const Impl*> for_algo(const std::string& algo) const;
  const std::vector<Impl>& all() const { return impls_; }

 private:
  std::vector<Impl> impls_;
};

// The one visible list of implementations (harness/registry.cpp): references, then kernels.
void register_all(Registry& r);
const Registry& registry();  // register_all() once, on first use

}  // namespace attnbench
