#include "vidnode/actors/node.hpp"

#include "vidnode/actors/admission.hpp"
#include "vidnode/actors/cluster.hpp"
#include "vidnode/actors/node_supervisor.hpp"
#include "vidnode/runtime/errc.hpp"

#include "node_lifecycle.hpp"

namespace vidnode::actors {

node_actors spawn_node(caf::actor_system& sys,
                       const runtime::node_settings& settings,
                       std::vector<runtime::device_info> devices,
                       std::shared_ptr<const gpu::model_catalog> catalog,
                       std::shared_ptr<transfers> transfers,
                       std::shared_ptr<journal_store> journal,
                       std::shared_ptr<node_observer> events,
                       std::function<void(const caf::error&)> preloaded) {
  node_actors result;
  result.admission =
    spawn_admission(sys, settings, devices, catalog, std::move(transfers),
                    std::move(journal), std::move(events));
  result.supervisor =
    spawn_node_supervisor(sys, settings, std::move(devices), result.admission,
                          std::move(catalog), std::move(preloaded));
  result.registry = spawn_cluster_registry(sys, result.admission);
  return result;
}

caf::expected<std::unique_ptr<local_node>> local_node::start(
  caf::actor_system& sys, const runtime::node_settings& settings,
  std::shared_ptr<const gpu::model_catalog> catalog,
  std::shared_ptr<transfers> transfers, std::shared_ptr<node_observer> events) {
  std::vector<runtime::device_info> devices;
  if (auto err = prepare_node(settings, devices, catalog))
    return err;
  std::shared_ptr<journal_store> journal;
  if (!settings.state_dir.empty()) {
    journal_sync sync = journal_sync::full;
    from_string(settings.journal_sync, sync);
    auto store =
      journal_store::open(settings.state_dir, sync, settings.lease_grace);
    if (!store)
      return std::move(store.error());
    journal = std::move(*store);
  }
  std::shared_future<caf::error> preloads;
  auto actors = spawn_node(sys, settings, devices, std::move(catalog),
                           std::move(transfers), std::move(journal),
                           std::move(events), preload_callback(preloads));
  return std::unique_ptr<local_node>{
    new local_node(sys, std::move(actors), std::move(devices),
                   settings.shutdown_grace, std::move(preloads))};
}

local_node::local_node(caf::actor_system& sys, node_actors actors,
                       std::vector<runtime::device_info> devices,
                       caf::timespan shutdown_grace,
                       std::shared_future<caf::error> preloads)
  : sys_(sys), stop_timeout_(shutdown_grace + std::chrono::seconds{10}),
    actors_(std::move(actors)), devices_(std::move(devices)),
    preloads_(std::move(preloads)) {}

caf::error
local_node::await_preloads(const std::function<bool()>& interrupted) const {
  return actors::await_preloads(preloads_, interrupted);
}

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
  // Order matters: no node joins any more, admission answers every job (so
  // no client is left waiting), then the workers stop, then the actors
  // themselves.
  auto failure =
    stop_in_order(sys_, timeout,
                  {{caf::actor_cast<caf::actor>(actors_.registry), false},
                   {caf::actor_cast<caf::actor>(actors_.admission), true},
                   {caf::actor_cast<caf::actor>(actors_.supervisor), true}});
  actors_ = node_actors{};
  return failure;
}

} // namespace vidnode::actors
