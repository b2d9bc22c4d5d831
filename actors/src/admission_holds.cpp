/// @file
/// Admission: attempts held by worker nodes the head cannot reach, kept for
/// them until they rejoin or their lease grace passes (see
/// admission_state.hpp and node_settings::lease_grace).

#include <algorithm>
#include <map>

#include <spdlog/spdlog.h>

#include "admission_state.hpp"
#include "job_log.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::actors {

using runtime::errc;
using runtime::job_id;
using runtime::job_state;
using runtime::make_error;

void admission_state::hold_attempt(job_record& rec, const std::string& node,
                                   int32_t index, time_point until) {
  end_hold(rec);
  rec.device = -1;
  rec.held_by = node;
  rec.held_index = index;
  rec.hold_until = until;
  holds.emplace(until, rec.result.id.value);
  arm_tick(until);
}

void admission_state::end_hold(job_record& rec) {
  if (rec.held_by.empty())
    return;
  holds.erase({rec.hold_until, rec.result.id.value});
  rec.held_by.clear();
  rec.held_index = -1;
  rec.hold_until = time_point::max();
}

void admission_state::expire_holds(time_point t) {
  while (!holds.empty() && holds.begin()->first <= t) {
    auto rec = jobs->find(job_id{holds.begin()->second});
    if (rec == nullptr) {
      holds.erase(holds.begin());
      continue;
    }
    auto node = rec->held_by;
    retry_or_fail(
      *rec,
      make_error(errc::worker_lost,
                 "node " + node + " held attempt "
                   + std::to_string(rec->result.attempts)
                   + " and did not come back within the lease "
                     "grace of "
                   + runtime::format_duration(settings.lease_grace)),
      true);
  }
  if (!holds.empty())
    arm_tick(holds.begin()->first);
}

std::vector<held_lease>
admission_state::take_over(cluster_node& node,
                           const std::vector<held_lease>& leases) {
  std::vector<held_lease> unwanted;
  std::map<uint64_t, const held_lease*> reported;
  for (const auto& x : leases)
    reported.emplace(x.lease, &x);
  std::vector<job_record*> held;
  jobs->for_each([&](job_record& rec) {
    if (rec.held_by == node.name)
      held.push_back(&rec);
  });
  size_t resumed = 0;
  size_t missing = 0;
  for (auto* rec : held) {
    auto i = reported.find(rec->lease);
    auto slot = i == reported.end() || i->second->id != rec->result.id
                    || i->second->device != rec->held_index
                  ? -1
                  : slot_of(node, rec->held_index);
    if (slot < 0) {
      ++missing;
      retry_or_fail(
        *rec,
        make_error(errc::worker_lost,
                   "node " + node.name
                     + " came back without "
                       "attempt "
                     + std::to_string(rec->result.attempts)
                     + " (it restarted, or another head stopped it)"),
        true);
      continue;
    }
    reported.erase(i);
    end_hold(*rec);
    auto& device = devices.at(slot);
    rec->device = slot;
    device.running.push_back(rec->result.id);
    device.reserved += rec->reserved_bytes;
    device.taken_over = true;
    rec->result.device = device.name;
    devices.touch(slot);
    log_job(runtime::log_level::info, rec->result,
            "carries on: its node is back");
    ++resumed;
  }
  for (const auto& [lease, x] : reported)
    unwanted.push_back(*x);
  if (resumed + missing > 0)
    spdlog::info("node {} is back: {} of its {} attempt(s) carry on, {} went "
                 "with a restart of the node",
                 node.name, resumed, resumed + missing, missing);
  return unwanted;
}

bool admission_state::runs_on_worker_node(const job_record& rec) const {
  if (!rec.held_by.empty())
    return true;
  auto device = devices.find(rec.device);
  return device != nullptr && device->node != node_name;
}

} // namespace vidnode::actors
