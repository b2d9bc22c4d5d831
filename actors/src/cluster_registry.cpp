#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "vidnode/actors/cluster.hpp"
#include "vidnode/runtime/errc.hpp"
#include "stray_errors.hpp"

namespace vidnode::actors {

namespace {

/// How long admission may take to register a node.
constexpr caf::timespan registration_timeout = std::chrono::seconds{10};

cluster_registry_actor::behavior_type
registry_behavior(cluster_registry_actor::pointer self,
                  admission_control_actor admission) {
  survive_stray_errors(self, "the cluster registry");
  // Exit messages from other nodes are ignored: only the head ends it.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    if (msg.source.node() == self->node())
      self->quit(msg.reason);
  });
  return {
    [=](join_atom, node_registration& reg)
      -> caf::result<admission_control_actor, join_answer> {
      auto promise =
        self->make_response_promise<admission_control_actor, join_answer>();
      self
        ->request(admission, registration_timeout, join_atom::value,
                  std::move(reg))
        .then(
          [=](join_answer& answer) mutable {
            promise.deliver(admission, std::move(answer));
          },
          [=](caf::error& err) mutable { promise.deliver(std::move(err)); });
      return promise;
    },
  };
}

} // namespace

cluster_registry_actor
spawn_cluster_registry(caf::actor_system& sys,
                       admission_control_actor admission) {
  return sys.spawn(registry_behavior, std::move(admission));
}

} // namespace vidnode::actors
