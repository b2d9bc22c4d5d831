#include <unistd.h>

#include <filesystem>

#include <caf/scoped_actor.hpp>

#include "vidnode/actors/cluster.hpp"
#include "vidnode/actors/node_supervisor.hpp"
#include "vidnode/gpu/devices.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::actors {

caf::expected<std::unique_ptr<worker_node>>
worker_node::start(caf::actor_system& sys,
                   const runtime::node_settings& settings, join_options options,
                   std::shared_ptr<const gpu::model_catalog> catalog) {
  if (auto err = runtime::validate(settings))
    return err;
  if (!options.connector)
    return runtime::make_error(runtime::errc::invalid_request,
                               "join: no connector (load the middleman)");
  std::vector<runtime::device_info> devices;
  std::string error;
  if (!gpu::parse_devices(settings.devices, devices, error,
                          settings.cuda_reserve_bytes))
    return runtime::make_error(runtime::errc::invalid_request,
                               "devices: " + error);
  if (devices.empty())
    return runtime::make_error(runtime::errc::invalid_request,
                               "devices: a worker node needs at least one "
                               "device");
  if (!catalog) {
    gpu::catalog_options catalog_options;
    catalog_options.tiny_t2v_weights = settings.tiny_t2v_weights;
    catalog_options.torchscript_models = settings.torchscript_models;
    std::string reason;
    catalog = gpu::model_catalog::make(catalog_options, reason);
    if (!catalog)
      return runtime::make_error(runtime::errc::invalid_request, reason);
  }
  auto name = settings.node_name;
  if (name.empty()) {
    char buf[256] = {};
    name = gethostname(buf, sizeof(buf) - 1) == 0 && buf[0] != '\0'
             ? buf
             : "localhost";
  }
  // Inputs copied from the head by an earlier run that was killed.
  std::error_code ec;
  std::filesystem::remove_all(
    std::filesystem::path{settings.output_dir} / "copies", ec);
  auto supervisor = spawn_node_supervisor(
    sys, settings, devices, admission_control_actor{}, std::move(catalog));
  auto member =
    spawn_cluster_member(sys, name, devices, supervisor, std::move(options));
  return std::unique_ptr<worker_node>{
    new worker_node(sys, std::move(supervisor), std::move(member),
                    std::move(devices), std::move(name))};
}

worker_node::worker_node(caf::actor_system& sys,
                         node_supervisor_actor supervisor, caf::actor member,
                         std::vector<runtime::device_info> devices,
                         std::string name)
  : sys_(sys), supervisor_(std::move(supervisor)), member_(std::move(member)),
    devices_(std::move(devices)), name_(std::move(name)) {}

worker_node::~worker_node() {
  stop();
}

caf::error worker_node::stop(caf::timespan timeout) {
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
  // The member first, so that no worker is bound to a head again; then the
  // workers (their jobs end: the head re-queues them once it sees this node
  // go), then the supervisor.
  self->request(member_, remaining(), shutdown_atom::value)
    .receive([](caf::ok_atom) {}, on_error);
  self->request(supervisor_, remaining(), shutdown_atom::value)
    .receive([](caf::ok_atom) {}, on_error);
  self->monitor(member_);
  self->monitor(supervisor_);
  self->send_exit(member_, caf::exit_reason::user_shutdown);
  self->send_exit(supervisor_, caf::exit_reason::user_shutdown);
  for (int down = 0; down < 2;) {
    bool timed_out = false;
    self->receive([&](caf::down_msg&) { ++down; },
                  caf::after(remaining()) >> [&] { timed_out = true; });
    if (timed_out) {
      if (!failure)
        failure = runtime::make_error(runtime::errc::internal,
                                      "worker node actors did not stop in "
                                      "time");
      break;
    }
  }
  supervisor_ = nullptr;
  member_ = nullptr;
  return failure;
}

} // namespace vidnode::actors
