#pragma once

/// @file
/// Waiting for a freshly started node: local_node::start returns before the
/// supervisor has attached the device workers, and a job submitted before
/// then is refused (no device can run it).

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::bench {

/// Polls `node` until `devices` devices report "idle" or "busy"; returns
/// false if that did not happen within `limit`.
inline bool
await_devices(caf::actor_system& sys, const runtime::admission_actor& node,
              size_t devices,
              std::chrono::milliseconds limit = std::chrono::seconds{10}) {
  caf::scoped_actor self{sys};
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    size_t up = 0;
    self->request(node, caf::infinite, runtime::nodes_atom::value)
      .receive(
        [&](const std::vector<runtime::device_status>& status) {
          for (const auto& device : status)
            if (device.state == "idle" || device.state == "busy")
              ++up;
        },
        [&](caf::error&) {});
    if (up >= devices)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  return false;
}

} // namespace vidnode::bench
