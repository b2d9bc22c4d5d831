#include "http_gateway_state.hpp"

#include <algorithm>

#include <httplib.h>

#include "http_console.hpp"
#include "http_runpod.hpp"

namespace vidnode::net::detail {

gateway_state::gateway_state(caf::actor_system& sys,
                             runtime::admission_actor admission,
                             http_gateway_options opts)
  : sys(sys), admission(admission), options(std::move(opts)),
    links(options.links), keys(options.api_key_file),
    hub(sys, admission, [links = options.links](const runtime::job_result& r) {
      return runpod_output(r, *links);
    }) {}

const http_endpoint* gateway_state::find_endpoint(const std::string& id) const {
  for (const auto& endpoint : options.endpoints)
    if (endpoint.id == id)
      return &endpoint;
  return nullptr;
}

std::string gateway_state::endpoint_names() const {
  std::string names;
  for (const auto& endpoint : options.endpoints)
    names +=
      (names.empty() ? "" : ", ") + endpoint.id + " (" + endpoint.model + ")";
  return names;
}

bool gateway_state::authorized(const httplib::Request& req) {
  return keys.admits(req.get_header_value("Authorization"));
}

int64_t gateway_state::retried(const std::string& endpoint) const {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = retried_.find(endpoint);
  return i == retried_.end() ? 0 : i->second;
}

caf::error gateway_state::translated(caf::error err) {
  if (err == caf::sec::request_timeout)
    return runtime::make_error(runtime::errc::node_lost,
                               "the head did not answer in time");
  if (err == caf::sec::request_receiver_down)
    return runtime::make_error(runtime::errc::shutting_down,
                               "the head is stopping");
  return err;
}

namespace {

/// Whether `err` refuses a timeout longer than the node allows.
bool beyond_node_limit(const caf::error& err, const std::string& field) {
  auto detail = runtime::detail_of(err);
  return runtime::is(err, runtime::errc::invalid_request)
         && detail.rfind(field + ":", 0) == 0
         && detail.find("exceeds the node's limit") != std::string::npos;
}

} // namespace

caf::expected<runtime::job_id> gateway_state::submit(runtime::job_spec spec) {
  auto id = ask<runtime::job_id>(runtime::submit_atom::value, spec);
  for (int clamped = 0; !id && clamped < 2; ++clamped) {
    if (beyond_node_limit(id.error(), "queue_timeout"))
      spec.queue_timeout = caf::timespan{0};
    else if (beyond_node_limit(id.error(), "run_timeout"))
      spec.run_timeout = caf::timespan{0};
    else
      break;
    id = ask<runtime::job_id>(runtime::submit_atom::value, spec);
  }
  if (!id)
    return in_request_terms(id.error());
  hub.follow(*id);
  return id;
}

caf::expected<runtime::job_result> gateway_state::retry(runtime::job_id id) {
  auto result = ask<runtime::job_result>(runtime::retry_atom::value, id);
  if (result) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      ++retried_[result->endpoint];
    }
    hub.refollow(id);
  }
  return result;
}

std::shared_ptr<const console_backend>
make_console_backend(std::shared_ptr<gateway_state> state) {
  auto backend = std::make_shared<console_backend>();
  backend->authorized = [state](const httplib::Request& req) {
    return state->authorized(req);
  };
  backend->nodes = [state] {
    return state->ask<std::vector<runtime::device_status>>(
      runtime::nodes_atom::value);
  };
  backend->jobs = [state](const runtime::list_query& query) {
    return state->ask<std::vector<runtime::job_result>>(
      runtime::list_atom::value, query);
  };
  backend->cancel = [state](runtime::job_id id) {
    return state->ask<runtime::job_result>(runtime::cancel_atom::value, id);
  };
  backend->retry = [state](runtime::job_id id) { return state->retry(id); };
  backend->submit =
    [state](const std::string& endpoint,
            const nlohmann::json& input) -> caf::expected<runtime::job_id> {
    const auto* found = state->find_endpoint(endpoint);
    if (found == nullptr)
      return runtime::make_error(runtime::errc::invalid_request,
                                 "endpoint: no endpoint '" + endpoint + "'");
    auto spec = job_spec_from_request(*found, {{"input", input}});
    if (!spec)
      return spec.error();
    return state->submit(*spec);
  };
  backend->video_url = [state](const runtime::job_result& result) {
    return state->links->video_url(result);
  };
  backend->endpoints = state->options.endpoints;
  // Long polls take at most half of the threads and event streams a
  // quarter, so short requests always find one.
  backend->max_streams =
    static_cast<int>(std::clamp<uint32_t>(state->options.threads / 4, 1, 8));
  return backend;
}

} // namespace vidnode::net::detail
