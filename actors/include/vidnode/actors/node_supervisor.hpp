#pragma once

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
node_supervisor_actor spawn_node_supervisor(
  caf::actor_system& sys, const runtime::node_settings& settings,
  std::vector<runtime::device_info> devices, admission_control_actor admission,
  std::shared_ptr<const gpu::model_catalog> catalog);

} // namespace vidnode::actors
