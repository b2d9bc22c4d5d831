#pragma once

#include <cstdint>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/fwd.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/transfers.hpp"

namespace vidnode::actors {

/// How webhooks are retried: up to `attempts` tries in all, `retry_delay`
/// apart (Runpod retries a webhook that did not answer 200 twice, 10 s
/// apart: ../shared/anchors/RUNPOD.md). Any answer but 2xx, and any
/// connection failure, is tried again.
struct webhook_schedule {
  int32_t attempts = 5;
  caf::timespan retry_delay = std::chrono::seconds{10};
};

/// Spawns the webhook sender of the actor `owner`; it ends when its owner
/// does. Each try runs transfers::notify on an actor of its own
/// (detached when `transfers->blocking()`); a delivery that fails for good,
/// or is still pending when a drain's grace period ends, is logged as a
/// warning naming the job, the URL and the cause.
webhook_sender_actor spawn_webhook_sender(caf::actor_system& sys,
                                          caf::actor_addr owner,
                                          std::shared_ptr<transfers> transfers,
                                          webhook_schedule schedule);

} // namespace vidnode::actors
