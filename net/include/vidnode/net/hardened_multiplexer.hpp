#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include <caf/actor_system_config.hpp>
#include <caf/io/network/default_multiplexer.hpp>

#include "vidnode/runtime/settings.hpp"

namespace vidnode::net {

/// CAF's default network backend with two faults of CAF 0.17.6's BASP
/// broker closed. Every vidnode process loads the middleman with it
/// (load_middleman); so should an application that embeds vidnode.
///
/// 1. Lost and misrouted replies under concurrent clients. BASP keys its
///    routing table by connection handle, which is the socket's descriptor
///    number, and removes a closed connection's entry only later, through its
///    message queue. The kernel hands the same number to the next accepted
///    socket at once, so a client that connects in that window is entered
///    under a handle that the pending cleanup then erases: the node drops the
///    client's requests' sender, and every reply to it is lost (about 3% of
///    clients with 32 at once), while its stale entry can later route another
///    node's messages to whichever client gets that number next. Here every
///    connection's socket is moved to a descriptor number not used recently
///    (they rotate through the range the process may open), so no handle is
///    reused while BASP may still hold state for it.
/// 2. Unbounded allocation by unauthenticated peers. BASP sizes its read
///    buffer from the length a message header claims, before reading the
///    payload: a 32-byte header claiming 4 GiB made the node allocate 4 GiB.
///    Here a connection that announces a message longer than
///    `max-message-size` is closed instead, before anything is allocated.
///
/// Thread-safety: as CAF's default multiplexer (new_scribe may be called
/// from the multiplexer's thread and from the middleman actor at once).
class hardened_multiplexer : public caf::io::network::default_multiplexer {
public:
  /// The configuration key of the longest message (bytes, a size_t) a peer
  /// may send; read when the actor system starts.
  static constexpr const char* max_message_size_key =
    "vidnode.max-message-size";

  /// What a node accepts by default: runtime::default_max_message_size
  /// (16 MiB), far above any request of the client protocol.
  static constexpr size_t default_max_message_size =
    runtime::default_max_message_size;

  /// The config key of the longest time an outgoing TCP connection may take
  /// to be established (a caf::timespan; default 10 s).
  static constexpr const char* connect_timeout_key = "vidnode.connect-timeout";

  /// Lowest descriptor number given to a connection's socket.
  static constexpr int first_descriptor = 64;

  /// Created by the middleman (see load_middleman).
  explicit hardened_multiplexer(caf::actor_system* sys);

  /// Moves `fd` to a descriptor number not used recently and wraps it in a
  /// scribe that closes its connection when a message longer than the limit
  /// is announced. Takes ownership of `fd`.
  caf::io::scribe_ptr new_scribe(caf::io::network::native_socket fd) override;

  /// Connects to `host`:`port` (every address the name resolves to, in
  /// turn) without blocking longer than the connect timeout, then wraps the
  /// socket as new_scribe does. CAF's own connect blocks until the kernel
  /// gives up (about 2 minutes against a peer that drops SYNs), and the
  /// middleman, and with it the actor system's shutdown, waits that long.
  /// Fails with caf::sec::cannot_connect_to_node naming the cause.
  caf::expected<caf::io::scribe_ptr> new_tcp_scribe(const std::string& host,
                                                    uint16_t port) override;

  /// Connects a TCP socket to `host`:`port` as new_tcp_scribe does (every
  /// address in turn, within the connect timeout) and returns it, blocking,
  /// without wrapping it. Fails with caf::sec::cannot_connect_to_node naming
  /// the cause.
  caf::expected<caf::io::network::native_socket>
  connect_socket(const std::string& host, uint16_t port);

  /// What every connection's socket goes through before it is wrapped:
  /// moves `fd` to a descriptor number not used recently (closing the old
  /// number) and turns on TCP keepalive. Returns the socket's new number.
  /// Used by new_scribe and by the TLS transport (net/tls.hpp).
  caf::io::network::native_socket
  prepare_connection(caf::io::network::native_socket fd);

  /// The longest message a peer may send, in bytes.
  size_t max_message_size() const noexcept {
    return max_message_size_;
  }

private:
  caf::io::network::native_socket
  fresh_descriptor(caf::io::network::native_socket fd);

  size_t max_message_size_;
  caf::timespan connect_timeout_;
  std::atomic<int> next_descriptor_{first_descriptor};
};

/// Loads CAF's middleman with the hardened_multiplexer into `cfg`, and sets
/// the longest message a peer may send (bytes; 0 keeps what `cfg` says, or
/// the default). Call it instead of `cfg.load<caf::io::middleman>()`.
void load_middleman(caf::actor_system_config& cfg, size_t max_message_size = 0);

} // namespace vidnode::net
