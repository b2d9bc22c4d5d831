#include "vidnode/net/embedding.hpp"

#include <algorithm>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/defaults.hpp>
#include <caf/settings.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/net/hardened_multiplexer.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/net/tls.hpp"
#include "vidnode/net/transport.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::net {

void configure_host(caf::actor_system_config& cfg) {
  actors::add_types(cfg);
  load_middleman(cfg);
  auto ids = caf::get_or(cfg, "middleman.app-identifiers",
                         caf::defaults::middleman::app_identifiers);
  if (std::find(ids.begin(), ids.end(), runtime::protocol_version)
      == ids.end()) {
    ids.emplace_back(runtime::protocol_version);
    cfg.set("middleman.app-identifiers", std::move(ids));
  }
  auto interval =
    caf::get_or(cfg, "middleman.heartbeat-interval", caf::timespan{0});
  if (interval == caf::timespan{0}) {
    interval = process_config::default_heartbeat_interval;
    cfg.set("middleman.heartbeat-interval", interval);
  }
  // Five heartbeats, as process_config's defaults: one late heartbeat must
  // not drop a healthy link.
  if (caf::get_or(cfg, "middleman.connection-timeout", caf::timespan{0})
      == caf::timespan{0})
    cfg.set("middleman.connection-timeout",
            std::max(process_config::default_node_timeout, 5 * interval));
}

actors::join_options join_options_for(caf::actor_system& sys, std::string host,
                                      uint16_t port) {
  actors::join_options options;
  options.host = std::move(host);
  options.port = port;
  options.connector = caf::actor_cast<caf::actor>(transport_handle(sys));
  options.tls = tls_enabled(sys);
  options.node_timeout =
    caf::get_or(sys.config(), "middleman.connection-timeout",
                process_config::default_node_timeout);
  return options;
}

} // namespace vidnode::net
