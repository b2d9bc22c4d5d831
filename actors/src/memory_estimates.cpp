#include "vidnode/actors/memory_estimates.hpp"

#include <cmath>
#include <limits>

namespace vidnode::actors {

namespace {

uint64_t scaled(uint64_t bytes, double factor) {
  auto x = std::ceil(static_cast<double>(bytes) * factor);
  if (x >= static_cast<double>(std::numeric_limits<uint64_t>::max()))
    return std::numeric_limits<uint64_t>::max();
  return static_cast<uint64_t>(x);
}

} // namespace

memory_estimates::memory_estimates(policy p) : policy_(p) {}

std::string memory_estimates::key_of(const runtime::job_spec& spec) {
  auto key = spec.model + '|' + std::to_string(spec.width) + 'x'
             + std::to_string(spec.height) + 'x' + std::to_string(spec.frames);
  for (const auto& [name, value] : spec.options) {
    key += '|';
    key += name;
    key += '=';
    key += value;
  }
  return key;
}

uint64_t memory_estimates::estimate(const std::string& key,
                                    uint64_t declared) const {
  auto i = learned_.find(key);
  return i == learned_.end() ? declared : i->second;
}

uint64_t memory_estimates::learned(const std::string& key) const {
  auto i = learned_.find(key);
  return i == learned_.end() ? 0 : i->second;
}

void memory_estimates::observed_peak(const std::string& key, uint64_t bytes) {
  if (bytes > 0)
    learn(key, scaled(bytes, 1.0 + policy_.headroom));
}

uint64_t memory_estimates::out_of_memory(const std::string& key,
                                         uint64_t reserved, uint64_t needed) {
  auto raised =
    std::max<uint64_t>({scaled(reserved, policy_.oom_growth),
                        scaled(needed, 1.0 + policy_.headroom), uint64_t{1}});
  learn(key, raised);
  return raised;
}

void memory_estimates::learn(const std::string& key, uint64_t bytes) {
  auto [i, added] = learned_.insert_or_assign(key, bytes);
  (void)i;
  if (!added)
    return;
  order_.push_back(key);
  while (learned_.size() > policy_.capacity && !order_.empty()) {
    learned_.erase(order_.front());
    order_.pop_front();
  }
}

} // namespace vidnode::actors
