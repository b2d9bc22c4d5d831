#pragma once

/// @file
/// Random device sets for the property tests of placement: models that run
/// on chosen device kinds, and memory figures small enough to collide.

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/device.hpp"

namespace vidnode::test {

using runtime::device_kind;

/// One GiB, in bytes.
inline constexpr uint64_t gib = 1ull << 30;

/// Every device kind.
inline const std::vector<device_kind> all_kinds{
  device_kind::sim, device_kind::cpu, device_kind::cuda};

/// The models random devices load.
inline const std::vector<std::string> model_names{"a", "b", "c"};

/// A model that runs on the kinds in `kinds` (a bit per device_kind).
class kinds_factory : public gpu::model_factory {
public:
  explicit kinds_factory(unsigned kinds) : kinds_(kinds) {}

  const std::vector<std::string>& served() const override {
    static const std::vector<std::string> everything{"*"};
    return everything;
  }

  bool runs_on(device_kind kind) const override {
    return (kinds_ >> static_cast<unsigned>(kind)) & 1u;
  }

  std::optional<std::string> validate(const runtime::job_spec&) const override {
    return std::nullopt;
  }

  uint64_t estimate_peak_bytes(const runtime::job_spec&) const override {
    return 0;
  }

  std::unique_ptr<gpu::pipeline>
  make(const std::string&, const runtime::device_info&) const override {
    return nullptr;
  }

private:
  unsigned kinds_;
};

/// Models that run on every kind, on cpu and cuda only, on sim only, on
/// cuda only.
inline const std::vector<kinds_factory> factories{
  kinds_factory{7}, kinds_factory{6}, kinds_factory{1}, kinds_factory{4}};

/// A small amount of memory, so that budgets, reservations and requests
/// collide often: 0 to 8 GiB in steps of 1 GiB.
inline uint64_t some_bytes(std::mt19937& rng) {
  return gib * std::uniform_int_distribution<uint64_t>{0, 8}(rng);
}

/// A random element of `xs`, which must not be empty.
template <class T>
const T& pick(std::mt19937& rng, const std::vector<T>& xs) {
  return xs[std::uniform_int_distribution<size_t>{0, xs.size() - 1}(rng)];
}

/// True with probability `p`.
inline bool chance(std::mt19937& rng, double p) {
  return std::bernoulli_distribution{p}(rng);
}

} // namespace vidnode::test
