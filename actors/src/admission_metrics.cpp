/// @file
/// Admission: what it tells its node_observer and its metrics snapshot
/// (see admission_state.hpp).

#include <algorithm>

#include "admission_state.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::actors {

node_metrics admission_state::metrics() {
  node_metrics result;
  result.queued.resize(static_cast<size_t>(job_queue::levels), 0);
  jobs->for_each([&](const job_record& rec) {
    if (rec.end_pending || rec.ended())
      return;
    if (rec.result.state == runtime::job_state::running) {
      ++result.running;
      return;
    }
    auto level = std::clamp(rec.spec.priority, int32_t{0},
                            static_cast<int32_t>(job_queue::levels) - 1);
    ++result.queued[static_cast<size_t>(level)];
  });
  for (const auto& node : nodes.nodes()) {
    if (node.state == cluster_node::status::up)
      ++result.nodes_up;
    else
      ++result.nodes_lost;
  }
  // As device_statuses lists them: node by node, each by device index.
  for (const auto& node : nodes.nodes()) {
    auto slots = node.slots;
    std::sort(slots.begin(), slots.end(), [this](int32_t x, int32_t y) {
      return devices.at(x).info.index < devices.at(y).info.index;
    });
    for (auto slot : slots) {
      device_metrics entry;
      entry.status = devices.status_of(slot, settings.max_concurrency);
      entry.resident_bytes = devices.at(slot).resident;
      result.devices.push_back(std::move(entry));
    }
  }
  return result;
}

void admission_state::observe_end(const job_record& rec) {
  const auto& r = rec.result;
  job_end end;
  end.model = rec.spec.model;
  end.priority = rec.spec.priority;
  end.state = r.state;
  if (!r.error)
    end.error = "none";
  else if (r.error.category() == runtime::error_category())
    end.error = runtime::to_string(static_cast<runtime::errc>(r.error.code()));
  else
    end.error = "other";
  end.queue_time = r.queue_time;
  end.run_time = r.attempts > 0 ? r.run_time : caf::timespan{0};
  end.attempts = r.attempts;
  node_events->job_ended(end);
}

} // namespace vidnode::actors
