#pragma once

/// @file
/// What starting and stopping a head (local_node) and a worker node
/// (worker_node) have in common.

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/error.hpp>

#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/device.hpp"
#include "vidnode/runtime/settings.hpp"

namespace vidnode::actors {

/// The name a node goes by: `settings.node_name`, else the host name (else
/// "localhost").
std::string node_name_of(const runtime::node_settings& settings);

/// Validates `settings`, discovers the devices they name into `devices` and,
/// if `catalog` is null, makes the catalog they describe, and checks the
/// preloads against both (plan_preloads). Fails with errc::invalid_request
/// naming the bad setting (or errc::unknown_model for a preload of a model
/// the node does not serve).
caf::error prepare_node(const runtime::node_settings& settings,
                        std::vector<runtime::device_info>& devices,
                        std::shared_ptr<const gpu::model_catalog>& catalog);

/// A one-shot callback for spawn_node_supervisor's `preloaded`, and in
/// `outcome` the future it sets (a broken promise if the supervisor ended
/// without calling it).
std::function<void(const caf::error&)>
preload_callback(std::shared_future<caf::error>& outcome);

/// Waits for `outcome` (preload_callback), polling `interrupted` (if set)
/// every 100 ms: the preloads' error or none; errc::cancelled once
/// `interrupted` returned true; errc::internal if the supervisor ended
/// first.
caf::error await_preloads(const std::shared_future<caf::error>& outcome,
                          const std::function<bool()>& interrupted);

/// One actor to stop: asked to shut down (shutdown_atom, answered with ok)
/// before it gets an exit message, or only sent the exit message.
struct stop_step {
  caf::actor actor;
  bool ask_first = true;
};

/// Stops `steps` in order: each is asked to shut down and its answer awaited
/// (or, if not asked, sent its exit message at once), then every asked one
/// gets its exit message, and all are awaited. Returns the first error, or
/// errc::internal if they did not all end within `timeout`.
caf::error stop_in_order(caf::actor_system& sys, caf::timespan timeout,
                         const std::vector<stop_step>& steps);

} // namespace vidnode::actors
