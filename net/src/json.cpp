#include "vidnode/net/json.hpp"

#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::net {

namespace {

nlohmann::json time_or_null(caf::timestamp t) {
  if (t.time_since_epoch().count() == 0)
    return nullptr;
  return runtime::format_timestamp(t);
}

double seconds(caf::timespan d) {
  return std::chrono::duration<double>(d).count();
}

} // namespace

nlohmann::json to_json(const caf::error& err) {
  if (!err)
    return nullptr;
  return {{"code", runtime::code_name(err)},
          {"message", runtime::describe(err)}};
}

nlohmann::json to_json(const runtime::job_result& r) {
  return {
    {"id", r.id.value},
    {"state", runtime::to_string(r.state)},
    {"error", to_json(r.error)},
    {"output",
     r.output.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.output)},
    {"output_node", r.output_node.empty() ? nlohmann::json(nullptr)
                                          : nlohmann::json(r.output_node)},
    {"model", r.model},
    {"endpoint",
     r.endpoint.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.endpoint)},
    {"priority", r.priority},
    {"device",
     r.device.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.device)},
    {"node", r.node},
    {"attempts", r.attempts},
    {"step", r.step},
    {"steps", r.steps},
    {"reserved_bytes", r.reserved_bytes},
    {"accepted_at", time_or_null(r.accepted_at)},
    {"started_at", time_or_null(r.started_at)},
    {"computed_at", time_or_null(r.computed_at)},
    {"finished_at", time_or_null(r.finished_at)},
    {"queue_time_s", seconds(r.queue_time)},
    {"run_time_s", seconds(r.run_time)},
  };
}

nlohmann::json to_json(const runtime::job_event& e) {
  return {
    {"id", e.id.value},
    {"state", runtime::to_string(e.state)},
    {"step", e.step},
    {"steps", e.steps},
    {"attempt", e.attempt},
    {"device",
     e.device.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.device)},
    {"error", to_json(e.error)},
    {"at", time_or_null(e.at)},
  };
}

nlohmann::json to_json(const runtime::device_status& s) {
  auto models = nlohmann::json::array();
  for (const auto& m : s.models)
    models.push_back(
      {{"model", m.model}, {"loads", m.loads}, {"loaded", m.loaded}});
  auto running = nlohmann::json::array();
  for (auto id : s.running)
    running.push_back(id.value);
  return {
    {"node", s.node},
    {"device", s.device},
    {"state", s.state},
    {"slots_in_use", s.slots_in_use},
    {"slots", s.slots},
    {"memory_bytes", s.memory_bytes},
    {"memory_reserved_bytes", s.memory_reserved},
    {"models", models},
    {"running", running},
    {"restarts", s.restarts},
    {"last_error", s.last_error.empty() ? nlohmann::json(nullptr)
                                        : nlohmann::json(s.last_error)},
    {"served_models", s.served_models},
  };
}

std::string to_json_text(const nlohmann::json& doc) {
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace vidnode::net
