#include "vidnode/actors/restart_intensity.hpp"

#include <algorithm>

namespace vidnode::actors {

restart_intensity::restart_intensity(runtime::restart_policy policy)
  : policy_(policy) {}

std::optional<caf::timespan> restart_intensity::on_death(time_point now) {
  while (!recent_.empty() && now - recent_.front() >= policy_.window)
    recent_.pop_front();
  if (recent_.size() >= static_cast<size_t>(policy_.max_restarts))
    return std::nullopt;
  recent_.push_back(now);
  auto delay = policy_.backoff;
  for (size_t i = 1; i < recent_.size() && delay < policy_.backoff_max; ++i)
    delay *= 2;
  return delay < policy_.backoff_max ? delay : policy_.backoff_max;
}

void restart_intensity::on_probe(time_point now) {
  recent_.assign(static_cast<size_t>(std::max(policy_.max_restarts, 0)), now);
}

} // namespace vidnode::actors
