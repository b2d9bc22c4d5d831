#pragma once

/// @file
/// What admission reports of its queue, devices and nodes when asked
/// (`metrics_atom` on admission_control_actor): the state that metrics
/// gauges show, read at scrape time so that they never drift.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "vidnode/runtime/job.hpp"

namespace vidnode::actors {

/// One device of the cluster as admission's ledger holds it.
struct device_metrics {
  /// Node, device, state ("starting", "idle", "busy", "restarting",
  /// "quarantined" or "lost"), slots, memory (memory_reserved counts the
  /// loaded models' memory too), model loads and worker restarts.
  runtime::device_status status;
  /// Device memory the loaded models hold, as the worker measured it, in
  /// bytes (part of status.memory_reserved).
  uint64_t resident_bytes = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, device_metrics& x) {
  return f(caf::meta::type_name("vidnode::device_metrics"), x.status,
           x.resident_bytes);
}

/// Admission's state at one moment.
struct node_metrics {
  /// Jobs queued (waiting for a device, for their input, for their journal
  /// record, or parked) by priority: entry i is priority i (0 to 9).
  std::vector<uint64_t> queued;
  /// Jobs running (on a device, writing or uploading their video, or held
  /// by a worker node out of reach).
  uint64_t running = 0;
  /// Every device of every node, the lost nodes' included.
  std::vector<device_metrics> devices;
  /// Nodes registered (the head included) and lost (not yet forgotten).
  uint32_t nodes_up = 0;
  uint32_t nodes_lost = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_metrics& x) {
  return f(caf::meta::type_name("vidnode::node_metrics"), x.queued, x.running,
           x.devices, x.nodes_up, x.nodes_lost);
}

} // namespace vidnode::actors
