#include "vidnode/runtime/type_registration.hpp"

#include <caf/actor_system_config.hpp>

#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::runtime {

void add_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<job_id>("vidnode::job_id");
  cfg.add_message_type<job_spec>("vidnode::job_spec");
  cfg.add_message_type<job_result>("vidnode::job_result");
  cfg.add_message_type<job_event>("vidnode::job_event");
  cfg.add_message_type<model_load_info>("vidnode::model_load_info");
  cfg.add_message_type<device_status>("vidnode::device_status");
  cfg.add_message_type<list_query>("vidnode::list_query");
  cfg.add_message_type<output_chunk>("vidnode::output_chunk");
  cfg.add_message_type<std::vector<job_id>>("vidnode::job_id_list");
  cfg.add_message_type<std::vector<job_result>>("vidnode::job_result_list");
  cfg.add_message_type<std::vector<device_status>>(
    "vidnode::device_status_list");
  cfg.add_message_type<std::vector<model_load_info>>(
    "vidnode::model_load_info_list");
  cfg.add_message_type<job_observer_actor>("vidnode::job_observer_actor");
  cfg.add_message_type<admission_actor>("vidnode::admission_actor");
  cfg.add_error_category(error_category(), [](uint8_t code, caf::atom_value,
                                              const caf::message& ctx) {
    auto err = caf::error{code, error_category(), ctx};
    return describe(err);
  });
}

} // namespace vidnode::runtime
