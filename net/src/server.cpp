#include "vidnode/net/server.hpp"

#include <caf/io/middleman.hpp>

#include "vidnode/runtime/errc.hpp"

namespace vidnode::net {

caf::expected<uint16_t> publish(caf::actor_system& sys,
                                const runtime::admission_actor& admission,
                                const std::string& host, uint16_t port) {
  if (!sys.has_middleman())
    return runtime::make_error(runtime::errc::internal,
                               "the actor system has no middleman loaded");
  auto result = sys.middleman().publish(admission, port, host.c_str(), true);
  if (!result)
    return runtime::make_error(runtime::errc::internal,
                               "cannot listen on " + host + ":"
                                 + std::to_string(port) + ": "
                                 + runtime::describe(result.error()));
  return *result;
}

caf::error unpublish(caf::actor_system& sys,
                     const runtime::admission_actor& admission,
                     uint16_t port) {
  auto result = sys.middleman().unpublish(admission, port);
  if (!result)
    return result.error();
  return caf::none;
}

} // namespace vidnode::net
