#include "vidnode/net/transport.hpp"

#include <mutex>

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/scoped_actor.hpp>

#include "tls_transport.hpp"

namespace vidnode::net {

caf::io::middleman_actor transport_handle(caf::actor_system& sys) {
  if (auto tls = detail::tls_transport::handle_of(sys))
    return tls;
  if (sys.has_openssl_manager())
    return sys.openssl_manager().actor_handle();
  return sys.middleman().actor_handle();
}

caf::expected<uint16_t> publish(caf::actor_system& sys,
                                caf::strong_actor_ptr whom,
                                std::set<std::string> signatures,
                                const std::string& host, uint16_t port,
                                bool reuse_address, port_peers peers) {
  caf::expected<uint16_t> result{caf::sec::cannot_open_port};
  // The TLS transport learns who may connect from a setting its next open
  // port takes; publishing one port at a time makes that port this one.
  static std::mutex one_at_a_time;
  std::lock_guard<std::mutex> guard{one_at_a_time};
  detail::tls_transport::next_port_peers(sys, peers);
  caf::scoped_actor self{sys};
  self
    ->request(transport_handle(sys), caf::infinite, caf::publish_atom::value,
              port, std::move(whom), std::move(signatures), host, reuse_address)
    .receive([&](uint16_t actual) { result = actual; },
             [&](caf::error& err) { result = std::move(err); });
  detail::tls_transport::next_port_peers(sys, port_peers::any);
  return result;
}

} // namespace vidnode::net
