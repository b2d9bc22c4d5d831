#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/typed_actor.hpp>

#include "vidnode/runtime/protocol.hpp"

namespace vidnode::net {

/// Makes a node's admission actor reachable over the network, behind a
/// gateway actor that is the only thing published.
///
/// The gateway speaks the client protocol only and forwards each request to
/// admission, answering in its own name: clients never learn admission's
/// address, so they cannot send it the node's internal messages or exit
/// messages. The gateway ignores exit messages from other nodes; one sent
/// with `exit_reason::kill` (which no actor can refuse) ends it, and a new
/// gateway is published on the same port at once (requests in flight then
/// fail with node_lost on the client side). Events sent to subscribers are
/// anonymous for the same reason.
///
/// Thread-safety: start and stop block; call them from a non-actor thread.
class server {
public:
  /// Publishes a gateway to `admission` on `host:port` (0 picks a free
  /// port) through transport_handle (net/transport.hpp): with TLS on
  /// (use_tls), the port takes only TLS clients whose certificate the
  /// cluster CA signed. The system must have the middleman loaded
  /// (process_config, or configure_host in an application that embeds
  /// vidnode).
  static caf::expected<std::unique_ptr<server>>
  start(caf::actor_system& sys, runtime::admission_actor admission,
        const std::string& host, uint16_t port);

  /// Stops (see stop).
  ~server();

  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// The TCP port clients connect to.
  uint16_t port() const noexcept {
    return port_;
  }

  /// Closes the port and ends the gateway once it has answered every
  /// request it forwarded and every remote client it served has
  /// disconnected, or after a grace of two seconds. Stop the node first, so
  /// that waiting clients hear how their jobs ended. Idempotent.
  void stop();

private:
  server(caf::actor_system& sys, caf::actor keeper, uint16_t port);

  caf::actor_system& sys_;
  caf::actor keeper_;
  uint16_t port_;
};

} // namespace vidnode::net
