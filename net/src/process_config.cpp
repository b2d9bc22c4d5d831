#include "vidnode/net/process_config.hpp"

#include <thread>

#include <caf/atom.hpp>
#include <caf/io/middleman.hpp>
#include <caf/settings.hpp>

#include "vidnode/net/embedding.hpp"
#include "vidnode/net/hardened_multiplexer.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/protocol.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::net {

namespace {

size_t hardware_threads() {
  auto n = std::thread::hardware_concurrency();
  return n > 0 ? n : 1;
}

} // namespace

void process_config::apply_default_scheduler(caf::actor_system_config& cfg) {
  cfg.set("scheduler.policy", caf::atom_from_string(default_scheduler_policy));
  cfg.set("scheduler.max-threads", hardware_threads());
}

process_config::process_config() {
  // Only vidnode's protocol: CAF's default identifier would let any CAF
  // application that kept it connect.
  set("middleman.app-identifiers",
      std::vector<std::string>{runtime::protocol_version});
  configure_host(*this);
  apply_default_scheduler(*this);
}

caf::error process_config::check_heartbeat(caf::timespan interval,
                                           caf::timespan node_timeout) {
  using runtime::format_duration;
  if (interval < min_heartbeat_interval || interval > max_heartbeat_interval)
    return runtime::make_error(
      runtime::errc::invalid_request,
      "heartbeat: must be from " + format_duration(min_heartbeat_interval)
        + " to " + format_duration(max_heartbeat_interval) + ", got "
        + format_duration(interval));
  if (node_timeout < 2 * interval || node_timeout > max_node_timeout)
    return runtime::make_error(
      runtime::errc::invalid_request,
      "node-timeout: must be at least twice the heartbeat interval ("
        + format_duration(2 * interval) + ") and at most "
        + format_duration(max_node_timeout) + ", got "
        + format_duration(node_timeout));
  return caf::none;
}

caf::error process_config::heartbeat(caf::timespan interval,
                                     caf::timespan node_timeout) {
  if (auto err = check_heartbeat(interval, node_timeout))
    return err;
  set("middleman.heartbeat-interval", interval);
  set("middleman.connection-timeout", node_timeout);
  return caf::none;
}

bool process_config::scheduler_policy(const std::string& policy) {
  if (policy != "sharing" && policy != "stealing")
    return false;
  set("scheduler.policy", caf::atom_from_string(policy));
  return true;
}

void process_config::poll_attempts(size_t attempts) {
  set("work-stealing.aggressive-poll-attempts", attempts);
}

void process_config::connect_timeout(caf::timespan timeout) {
  caf::put(content, hardened_multiplexer::connect_timeout_key, timeout);
}

void process_config::max_message_size(size_t bytes) {
  caf::put(content, hardened_multiplexer::max_message_size_key, bytes);
}

void process_config::scheduler_threads(size_t threads) {
  set("scheduler.max-threads", threads > 0 ? threads : hardware_threads());
}

} // namespace vidnode::net
