#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <caf/fwd.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/settings.hpp"

namespace vidnode::actors {

/// Spawns the supervisor of a node's devices. It spawns one device worker
/// per device (detached unless the device is `sim` and
/// `settings.detach_sim_workers` is off), monitors each and attaches it to
/// `admission`. When a worker dies it detaches the device at once (so
/// admission re-queues its jobs), then restarts it after a backoff, or
/// quarantines the device once the restart intensity is exceeded
/// (restart_intensity.hpp). A quarantined device stays out of service until
/// the node restarts.
///
/// `shutdown` ends every worker and replies once all are gone; no worker is
/// restarted after it.
///
/// `read_file` serves pieces of files inside `settings.output_dir` to the
/// head (interfaces.hpp), each on a detached reader of its own.
///
/// Preloads (`settings.preload`, planned by plan_preloads against `devices`
/// and `catalog`): each device's first worker is asked to load its models
/// as soon as it is attached (on a worker node: once the node is bound to
/// a head), each load bounded by `settings.preload_timeout`. `preloaded`
/// (if set) is called once, in the supervisor's context, with none when
/// every one of them has finished (at once if there are none) or with the
/// first failure (the worker's error, errc::worker_lost for a load past the
/// timeout, or the plan's own error); the node serves on either way, and
/// the caller decides. A worker restarted after its device's models were
/// lost (any death but out of memory) is asked for the missing preloads
/// again right after it is attached, in the background: other devices
/// serve meanwhile, jobs sent to it wait for the load as for any load, and
/// a failure is logged.
node_supervisor_actor spawn_node_supervisor(
  caf::actor_system& sys, const runtime::node_settings& settings,
  std::vector<runtime::device_info> devices, admission_control_actor admission,
  std::shared_ptr<const gpu::model_catalog> catalog,
  std::function<void(const caf::error&)> preloaded = nullptr);

} // namespace vidnode::actors
