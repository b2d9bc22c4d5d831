#pragma once

#include <deque>
#include <optional>

#include <caf/actor_clock.hpp>

#include "vidnode/runtime/settings.hpp"

namespace vidnode::actors {

/// Decides, for one device, whether a failure of the device leaves it in
/// service and after how long its worker restarts (OTP-style intensity with
/// exponential backoff). Counts only failures the device is blamed for. Not
/// an actor; owned by the node supervisor.
class restart_intensity {
public:
  using time_point = caf::actor_clock::time_point;

  explicit restart_intensity(runtime::restart_policy policy);

  /// Records a death at `now`. Returns the delay before the restart, or
  /// nothing when the device already had `max_restarts` restarts within the
  /// window: it must be quarantined. The delay is `backoff` for the first
  /// restart in the window and doubles for each further one, up to
  /// `backoff_max`.
  std::optional<caf::timespan> on_death(time_point now);

  /// Puts the device on probation at `now` (it was quarantined and is
  /// probed): its next failure within the window quarantines it again.
  void on_probe(time_point now);

  /// Restarts counted in the current window.
  size_t recent() const noexcept {
    return recent_.size();
  }

private:
  runtime::restart_policy policy_;
  std::deque<time_point> recent_;
};

} // namespace vidnode::actors
