/// Embedding vidnode in your own CAF application: add vidnode's types to
/// your actor_system_config, start a node inside your actor_system, talk to
/// its admission actor like any typed actor, and stop it before the system
/// goes away.

#include <iostream>

#include <caf/all.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/runtime/errc.hpp"

namespace {

struct app_config : caf::actor_system_config {
  app_config() {
    vidnode::actors::add_types(*this);
  }
};

} // namespace

int main() {
  using namespace vidnode;
  app_config cfg;
  caf::actor_system sys{cfg};

  runtime::node_settings settings;
  settings.devices = "sim:2";
  settings.node_name = "embedded";
  auto node = actors::local_node::start(sys, settings);
  if (!node) {
    std::cerr << "cannot start: " << runtime::describe(node.error()) << "\n";
    return 1;
  }

  runtime::job_spec spec;
  spec.prompt = "a lighthouse at dusk";
  spec.steps = 5;
  spec.options = {{"step_ms", "20"}, {"load_ms", "50"}};

  caf::scoped_actor self{sys};
  int status = 0;
  self
    ->request((*node)->admission(), caf::infinite, runtime::execute_atom::value,
              spec)
    .receive(
      [&](const runtime::job_result& result) {
        std::cout << "job " << result.id.value << " "
                  << runtime::to_string(result.state) << " on " << result.device
                  << ": " << result.output << "\n";
        status = result.state == runtime::job_state::succeeded ? 0 : 1;
      },
      [&](const caf::error& err) {
        std::cerr << "refused: " << runtime::describe(err) << "\n";
        status = 1;
      });
  (*node)->stop();
  return status;
}
