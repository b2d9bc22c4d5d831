#pragma once

#include <atomic>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman_actor.hpp>

#include "vidnode/net/tls.hpp"
#include "vidnode/net/transport.hpp"

#include "tls_stream.hpp"

namespace vidnode::net::detail {

/// The TLS context of `files` (checked by check_tls_files first): TLS 1.3
/// at least, this certificate and key, peers verified against the CA file
/// and required to present a certificate, partial writes, no session
/// tickets. Errors as check_tls_files.
caf::expected<tls_context> make_tls_context(const tls_files& files);

/// vidnode's TLS transport: a middleman actor of its own that opens ports
/// and connects through hardened_multiplexer, with every connection a TLS
/// session on one SSL_CTX (made once, at start, from the checked files).
///
/// CAF 0.17.6's OpenSSL middleman actor is not used, for three reasons.
/// (1) It makes its sockets itself, past the multiplexer: its connections
/// keep the descriptor numbers the kernel gave them (so BASP's lost and
/// misrouted replies under concurrent clients come back), read messages of
/// any announced length, and connect with CAF's blocking connect (about two
/// minutes against a peer that drops SYNs). (2) Its streams busy-poll while
/// a handshake waits for the peer, and never leave the loop if dropped in
/// that state (see tls_stream). (3) It loads the files again for every
/// connection and throws, ending the process, if they became unreadable.
/// Here each socket gets hardened_multiplexer's fresh number, message size
/// limit and connect deadline, and the streams are tls_streams.
///
/// The module takes the OpenSSL manager's place in the actor system and
/// holds CAF's OpenSSL manager, so `sys.openssl_manager()` works for code
/// that expects it (configured with the same files through `openssl.*`);
/// vidnode never uses its middleman actor.
class tls_transport final : public caf::actor_system::module {
public:
  /// Loads the module into `cfg` (after the middleman), with `context` for
  /// its connections. Starting the actor system then throws
  /// std::logic_error when the middleman is missing or was not loaded with
  /// load_middleman.
  static void load(caf::actor_system_config& cfg, tls_context context);

  /// The TLS middleman actor of `sys`, or an invalid handle when `sys` has
  /// no tls_transport (or it has stopped). Any thread.
  static caf::io::middleman_actor handle_of(caf::actor_system& sys);

  /// Sets who may connect to the next port `sys`'s TLS middleman opens
  /// (the port then keeps it; later ports take `any` again unless set
  /// anew). Does nothing when `sys` has no tls_transport. Any thread;
  /// net::publish serializes the calls with its publishing.
  static void next_port_peers(caf::actor_system& sys, port_peers peers);

  ~tls_transport() override;

  void start() override;

  void stop() override;

  void init(caf::actor_system_config& cfg) override;

  id_t id() const override;

  void* subtype_ptr() override;

private:
  tls_transport(caf::actor_system& sys,
                std::unique_ptr<caf::actor_system::module> openssl,
                tls_context context);

  caf::actor_system& sys_;
  std::unique_ptr<caf::actor_system::module> openssl_;
  tls_context context_;
  caf::io::middleman_actor actor_;
  /// Read and reset by the middleman actor when it opens a port.
  std::shared_ptr<std::atomic<port_peers>> next_peers_;
};

} // namespace vidnode::net::detail
