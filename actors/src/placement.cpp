#include "vidnode/actors/placement.hpp"

#include <tuple>

namespace vidnode::actors {

int32_t choose_device(const std::vector<placement_candidate>& devices,
                      uint64_t bytes) {
  int32_t best = -1;
  auto rank = [](const placement_candidate& x) {
    return std::make_tuple(!x.has_model, x.running, x.memory_reserved);
  };
  for (size_t i = 0; i < devices.size(); ++i) {
    const auto& x = devices[i];
    if (!x.available || x.running >= x.slots
        || x.memory_reserved > x.memory_bytes
        || x.memory_bytes - x.memory_reserved < bytes)
      continue;
    if (best < 0 || rank(x) < rank(devices[static_cast<size_t>(best)]))
      best = static_cast<int32_t>(i);
  }
  return best;
}

} // namespace vidnode::actors
