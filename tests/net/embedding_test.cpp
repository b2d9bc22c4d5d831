#include <chrono>
#include <string>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/settings.hpp>

#include <catch2/catch.hpp>

#include "vidnode/net/embedding.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/net/transport.hpp"
#include "vidnode/runtime/protocol.hpp"

using namespace vidnode;
using namespace std::chrono_literals;

namespace {

caf::timespan setting(const caf::actor_system_config& cfg, const char* name) {
  return caf::get_or(cfg, name, caf::timespan{0});
}

} // namespace

TEST_CASE("configure_host adds vidnode's protocol after a host's own "
          "application identifiers") {
  caf::actor_system_config cfg;
  cfg.set("middleman.app-identifiers", std::vector<std::string>{"host-app"});
  net::configure_host(cfg);
  CHECK(
    caf::get_or(cfg, "middleman.app-identifiers", std::vector<std::string>{})
    == std::vector<std::string>{"host-app", runtime::protocol_version});
}

TEST_CASE("configure_host keeps a host's heartbeats and fills in those it "
          "lacks") {
  SECTION("none set: vidnode's defaults") {
    caf::actor_system_config cfg;
    net::configure_host(cfg);
    CHECK(setting(cfg, "middleman.heartbeat-interval")
          == net::process_config::default_heartbeat_interval);
    CHECK(setting(cfg, "middleman.connection-timeout")
          == net::process_config::default_node_timeout);
  }
  SECTION("only the interval set: a timeout of five intervals at least") {
    caf::actor_system_config cfg;
    cfg.set("middleman.heartbeat-interval", caf::timespan{3s});
    net::configure_host(cfg);
    CHECK(setting(cfg, "middleman.heartbeat-interval") == 3s);
    CHECK(setting(cfg, "middleman.connection-timeout") == 15s);
  }
  SECTION("both set: kept") {
    caf::actor_system_config cfg;
    cfg.set("middleman.heartbeat-interval", caf::timespan{200ms});
    cfg.set("middleman.connection-timeout", caf::timespan{1s});
    net::configure_host(cfg);
    CHECK(setting(cfg, "middleman.heartbeat-interval") == 200ms);
    CHECK(setting(cfg, "middleman.connection-timeout") == 1s);
  }
}

TEST_CASE("a worker node's join options connect through the host's "
          "transport with its node timeout") {
  caf::actor_system_config cfg;
  cfg.set("middleman.heartbeat-interval", caf::timespan{200ms});
  cfg.set("middleman.connection-timeout", caf::timespan{1s});
  net::configure_host(cfg);
  caf::actor_system sys{cfg};
  auto options = net::join_options_for(sys, "head.example", 7448);
  CHECK(options.host == "head.example");
  CHECK(options.port == 7448);
  CHECK(options.connector
        == caf::actor_cast<caf::actor>(net::transport_handle(sys)));
  CHECK(options.node_timeout == 1s);
  CHECK_FALSE(options.tls);
}
