#include <filesystem>

#include "vidnode/actors/cluster.hpp"
#include "vidnode/actors/node_supervisor.hpp"
#include "vidnode/runtime/errc.hpp"

#include "node_lifecycle.hpp"

namespace vidnode::actors {

caf::expected<std::unique_ptr<worker_node>>
worker_node::start(caf::actor_system& sys,
                   const runtime::node_settings& settings, join_options options,
                   std::shared_ptr<const gpu::model_catalog> catalog) {
  std::vector<runtime::device_info> devices;
  if (auto err = prepare_node(settings, devices, catalog))
    return err;
  if (!options.connector)
    return runtime::make_error(runtime::errc::invalid_request,
                               "join: no connector (load the middleman)");
  if (devices.empty())
    return runtime::make_error(runtime::errc::invalid_request,
                               "devices: a worker node needs at least one "
                               "device");
  auto name = node_name_of(settings);
  // Inputs copied from the head by an earlier run that was killed.
  std::error_code ec;
  std::filesystem::remove_all(
    std::filesystem::path{settings.output_dir} / "copies", ec);
  auto models = catalog->served();
  std::shared_future<caf::error> preloads;
  auto supervisor =
    spawn_node_supervisor(sys, settings, devices, admission_control_actor{},
                          std::move(catalog), preload_callback(preloads));
  auto member = spawn_cluster_member(sys, name, devices, std::move(models),
                                     supervisor, std::move(options));
  return std::unique_ptr<worker_node>{
    new worker_node(sys, std::move(supervisor), std::move(member),
                    std::move(devices), std::move(name), std::move(preloads))};
}

worker_node::worker_node(caf::actor_system& sys,
                         node_supervisor_actor supervisor, caf::actor member,
                         std::vector<runtime::device_info> devices,
                         std::string name,
                         std::shared_future<caf::error> preloads)
  : sys_(sys), supervisor_(std::move(supervisor)), member_(std::move(member)),
    devices_(std::move(devices)), name_(std::move(name)),
    preloads_(std::move(preloads)) {}

caf::error
worker_node::await_preloads(const std::function<bool()>& interrupted) const {
  return actors::await_preloads(preloads_, interrupted);
}

worker_node::~worker_node() {
  stop();
}

caf::error worker_node::stop(caf::timespan timeout) {
  if (stopped_)
    return caf::none;
  stopped_ = true;
  // The member first, so that no worker is bound to a head again; then the
  // workers (their jobs end: the head re-queues them once it sees this node
  // go), then the supervisor.
  auto failure = stop_in_order(
    sys_, timeout,
    {{member_, true}, {caf::actor_cast<caf::actor>(supervisor_), true}});
  supervisor_ = nullptr;
  member_ = nullptr;
  return failure;
}

} // namespace vidnode::actors
