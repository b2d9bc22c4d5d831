#include "vidnode/net/process_config.hpp"

#include <thread>

#include <caf/atom.hpp>
#include <caf/io/middleman.hpp>
#include <caf/settings.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/net/hardened_multiplexer.hpp"
#include "vidnode/runtime/protocol.hpp"

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
  actors::add_types(*this);
  load_middleman(*this);
  set("middleman.app-identifiers",
      std::vector<std::string>{runtime::protocol_version});
  apply_default_scheduler(*this);
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
