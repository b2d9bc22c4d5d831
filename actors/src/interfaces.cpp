#include "vidnode/actors/interfaces.hpp"

#include <caf/actor_system_config.hpp>

#include "vidnode/runtime/type_registration.hpp"

namespace vidnode::actors {

void add_types(caf::actor_system_config& cfg) {
  runtime::add_types(cfg);
  cfg.add_message_type<runtime::device_info>("vidnode::device_info");
  cfg.add_message_type<job_ticket>("vidnode::job_ticket");
  cfg.add_message_type<job_phases>("vidnode::job_phases");
  cfg.add_message_type<finished_job>("vidnode::finished_job");
  cfg.add_message_type<device_worker_actor>("vidnode::device_worker_actor");
  cfg.add_message_type<admission_control_actor>(
    "vidnode::admission_control_actor");
  cfg.add_message_type<node_supervisor_actor>("vidnode::node_supervisor_actor");
  cfg.add_message_type<held_lease>("vidnode::held_lease");
  cfg.add_message_type<lease_list>("vidnode::lease_list");
  cfg.add_message_type<node_registration>("vidnode::node_registration");
  cfg.add_message_type<join_answer>("vidnode::join_answer");
  cfg.add_message_type<device_metrics>("vidnode::device_metrics");
  cfg.add_message_type<std::vector<device_metrics>>(
    "vidnode::device_metrics_list");
  cfg.add_message_type<node_metrics>("vidnode::node_metrics");
  cfg.add_message_type<cluster_registry_actor>(
    "vidnode::cluster_registry_actor");
}

} // namespace vidnode::actors
