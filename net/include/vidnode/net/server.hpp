#pragma once

#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "vidnode/runtime/protocol.hpp"

namespace vidnode::net {

/// Publishes `admission` on `host:port` (port 0 picks a free one) so that
/// clients can reach it with net::client or CAF's remote_actor. Returns the
/// port. Blocking: call it from a non-actor thread. The system must have
/// the middleman loaded (process_config does).
caf::expected<uint16_t> publish(caf::actor_system& sys,
                                const runtime::admission_actor& admission,
                                const std::string& host, uint16_t port);

/// Stops accepting connections for `admission` on `port` (0: every port).
caf::error unpublish(caf::actor_system& sys,
                     const runtime::admission_actor& admission,
                     uint16_t port = 0);

} // namespace vidnode::net
