#include "vidnode/net/process_config.hpp"

#include <caf/atom.hpp>
#include <caf/io/middleman.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::net {

process_config::process_config() {
  actors::add_types(*this);
  load<caf::io::middleman>();
  set("middleman.app-identifiers",
      std::vector<std::string>{runtime::protocol_version});
  scheduler_policy(default_scheduler_policy);
}

bool process_config::scheduler_policy(const std::string& policy) {
  if (policy != "sharing" && policy != "stealing")
    return false;
  set("scheduler.policy", caf::atom_from_string(policy));
  return true;
}

void process_config::scheduler_threads(size_t threads) {
  if (threads > 0)
    set("scheduler.max-threads", threads);
}

} // namespace vidnode::net
