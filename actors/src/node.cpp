#include "vidnode/actors/node.hpp"

#include <caf/scoped_actor.hpp>

#include "vidnode/actors/admission.hpp"
#include "vidnode/actors/cluster.hpp"
#include "vidnode/actors/node_supervisor.hpp"
#include "vidnode/gpu/devices.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::actors {

node_actors spawn_node(caf::actor_system& sys,
                       const runtime::node_settings& settings,
                       std::vector<runtime::device_info> devices,
                       std::shared_ptr<const gpu::model_catalog> catalog,
                       std::shared_ptr<transfers> transfers) {
  node_actors result;
  result.admission =
    spawn_admission(sys, settings, devices, catalog, std::move(transfers));
  result.supervisor = spawn_node_supervisor(
    sys, settings, std::move(devices), result.admission, std::move(catalog));
  result.registry = spawn_cluster_registry(sys, result.admission);
  return result;
}

caf::expected<std::unique_ptr<local_node>>
local_node::start(caf::actor_system& sys,
                  const runtime::node_settings& settings,
                  std::shared_ptr<const gpu::model_catalog> catalog,
                  std::shared_ptr<transfers> transfers) {
  if (auto err = runtime::validate(settings))
    return err;
  std::vector<runtime::device_info> devices;
  std::string error;
  if (!gpu::parse_devices(settings.devices, devices, error,
                          settings.cuda_reserve_bytes))
    return runtime::make_error(runtime::errc::invalid_request,
                               "devices: " + error);
  if (!catalog) {
    gpu::catalog_options options;
    options.tiny_t2v_weights = settings.tiny_t2v_weights;
    options.torchscript_models = settings.torchscript_models;
    std::string reason;
    catalog = gpu::model_catalog::make(options, reason);
    if (!catalog)
      return runtime::make_error(runtime::errc::invalid_request, reason);
  }
  auto actors = spawn_node(sys, settings, devices, std::move(catalog),
                           std::move(transfers));
  return std::unique_ptr<local_node>{new local_node(
    sys, std::move(actors), std::move(devices), settings.shutdown_grace)};
}

local_node::local_node(caf::actor_system& sys, node_actors actors,
                       std::vector<runtime::device_info> devices,
                       caf::timespan shutdown_grace)
  : sys_(sys), stop_timeout_(shutdown_grace + std::chrono::seconds{10}),
    actors_(std::move(actors)), devices_(std::move(devices)) {}

local_node::~local_node() {
  stop();
}

runtime::admission_actor local_node::admission() const {
  return caf::actor_cast<runtime::admission_actor>(actors_.admission);
}

caf::error local_node::stop() {
  return stop(stop_timeout_);
}

caf::error local_node::stop(caf::timespan timeout) {
  if (stopped_)
    return caf::none;
  stopped_ = true;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto remaining = [&] {
    auto left = deadline - std::chrono::steady_clock::now();
    return caf::duration{std::max(
      std::chrono::duration_cast<caf::timespan>(left), caf::timespan{1})};
  };
  caf::scoped_actor self{sys_};
  caf::error failure;
  auto on_error = [&](caf::error& err) {
    if (!failure)
      failure = std::move(err);
  };
  // Order matters: no node joins any more, admission answers every job (so
  // no client is left waiting), then the workers stop, then the actors
  // themselves.
  self->monitor(actors_.registry);
  self->send_exit(actors_.registry, caf::exit_reason::user_shutdown);
  self->request(actors_.admission, remaining(), shutdown_atom::value)
    .receive([](caf::ok_atom) {}, on_error);
  self->request(actors_.supervisor, remaining(), shutdown_atom::value)
    .receive([](caf::ok_atom) {}, on_error);
  self->monitor(actors_.admission);
  self->monitor(actors_.supervisor);
  self->send_exit(actors_.admission, caf::exit_reason::user_shutdown);
  self->send_exit(actors_.supervisor, caf::exit_reason::user_shutdown);
  for (int down = 0; down < 3;) {
    bool timed_out = false;
    self->receive([&](caf::down_msg&) { ++down; },
                  caf::after(remaining()) >> [&] { timed_out = true; });
    if (timed_out) {
      if (!failure)
        failure = runtime::make_error(runtime::errc::internal,
                                      "node actors did not stop in time");
      break;
    }
  }
  actors_ = node_actors{};
  return failure;
}

} // namespace vidnode::actors
