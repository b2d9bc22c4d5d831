#pragma once

#include <utility>

#include <caf/spawn_options.hpp>

#include "vidnode/actors/transfers.hpp"

namespace vidnode::actors {

/// Spawns `task(xs...)` from `self` on an actor of its own: detached when
/// `mover` blocks its caller (real transfers do), so no pooled thread waits
/// for the network; on CAF's scheduler otherwise (test doubles, which then
/// run on the test coordinator).
template <class Self, class Task, class... Ts>
void spawn_transfer(Self* self, const transfers& mover, Task task, Ts&&... xs) {
  if (mover.blocking())
    self->template spawn<caf::detached>(task, std::forward<Ts>(xs)...);
  else
    self->spawn(task, std::forward<Ts>(xs)...);
}

} // namespace vidnode::actors
