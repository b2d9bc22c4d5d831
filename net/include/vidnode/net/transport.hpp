#pragma once

#include <cstdint>
#include <set>
#include <string>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/io/middleman_actor.hpp>

namespace vidnode::net {

/// The actor that opens ports and makes connections for `sys`: vidnode's
/// TLS transport when `sys` was configured with use_tls (net/tls.hpp),
/// CAF's OpenSSL middleman actor when CAF's OpenSSL module was loaded some
/// other way, and the middleman's own actor otherwise. Send it CAF's
/// `publish_atom`, `connect_atom` and `unpublish_atom` exactly as the
/// middleman's actor (caf/io/middleman_actor.hpp); every vidnode port and
/// connection goes through it, so that with TLS on nothing is published or
/// connected in plain text. Requires the middleman; callable from any
/// thread.
caf::io::middleman_actor transport_handle(caf::actor_system& sys);

/// Who may connect to a port with TLS on (without TLS there are no
/// certificates to tell peers apart, and both mean anyone).
enum class port_peers : uint8_t {
  /// Any holder of a certificate of the cluster CA (clients and nodes).
  any,
  /// Only nodes: the peer's certificate must allow TLS server
  /// authentication (extended key usage serverAuth, which make-certs.sh
  /// gives node certificates and not client ones; tls_role::node). A client
  /// certificate is refused in the handshake.
  nodes,
};

/// Publishes `whom`, whose messaging interface is `signatures`, on
/// `host`:`port` (0 picks a free port) through transport_handle, for
/// `peers`, and returns the port. Blocks until the port is open: call it
/// outside of actors. Every port of a process must be opened through here
/// (not by requesting `publish_atom` directly) for `peers` to hold.
caf::expected<uint16_t> publish(caf::actor_system& sys,
                                caf::strong_actor_ptr whom,
                                std::set<std::string> signatures,
                                const std::string& host, uint16_t port,
                                bool reuse_address = true,
                                port_peers peers = port_peers::any);

/// Publishes the typed actor `whom` (see above); its interface is its
/// handle type's, which is what a typed remote_actor must ask for.
template <class Handle>
caf::expected<uint16_t> publish(caf::actor_system& sys, const Handle& whom,
                                const std::string& host, uint16_t port,
                                bool reuse_address = true,
                                port_peers peers = port_peers::any) {
  return publish(sys, caf::actor_cast<caf::strong_actor_ptr>(whom),
                 sys.message_types<Handle>(), host, port, reuse_address, peers);
}

} // namespace vidnode::net
