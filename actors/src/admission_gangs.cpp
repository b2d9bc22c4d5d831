/// @file
/// Admission: gangs, jobs of several ranks that run together, one per
/// device (see admission_state.hpp). A gang is placed all or nothing and
/// holds nothing while it waits; its ranks advance in lockstep through
/// admission; the failure of any rank ends them all, and the job is
/// retried like a job of one device.

#include <algorithm>

#include "admission_state.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::actors {

using runtime::job_id;
using runtime::job_state;

bool admission_state::place_gang(job_record& rec, uint64_t bytes) {
  auto slots =
    devices.choose_gang(*rec.factory, rec.spec.model, bytes, rec.spec.ranks,
                        settings.gang_across_nodes, settings.max_concurrency);
  if (slots.empty())
    return false;
  // With several slots per device, a gang takes only devices that run no
  // job: a device's worker runs one collective at a time, so two gangs
  // sharing two devices would wait on each other inside their collectives.
  // Devices are chosen idle first, so a busy one means too few are idle.
  if (settings.max_concurrency > 1
      && std::any_of(slots.begin(), slots.end(), [&](int32_t slot) {
           return !devices.at(slot).running.empty();
         }))
    return false;
  auto t = mark_running(rec, bytes);
  rec.gang.clear();
  rec.gang_output.clear();
  rec.gang_peak_bytes = 0;
  rec.gang_watched_step = -1;
  std::string names;
  std::vector<std::string> nodes;
  for (auto slot : slots) {
    gang_rank rank;
    rank.device = slot;
    rank.lease = rec.gang.empty() ? rec.lease : ++next_lease;
    rank.reserved = bytes;
    rec.gang.push_back(rank);
    reserve_on(rec, slot, bytes);
    const auto& device = devices.at(slot);
    names += (names.empty() ? "" : ",") + device.name;
    if (std::find(nodes.begin(), nodes.end(), device.node) == nodes.end())
      nodes.push_back(device.node);
  }
  rec.device = slots.front();
  rec.result.device = std::move(names);
  rec.result.node.clear();
  for (const auto& node : nodes)
    rec.result.node += (rec.result.node.empty() ? "" : ",") + node;
  announce_start(rec, t);
  return true;
}

std::optional<std::string>
admission_state::gang_too_large(const gpu::model_factory& factory,
                                const runtime::job_spec& spec,
                                uint64_t bytes) const {
  auto most = devices.largest_gang_for(factory, spec.model, bytes,
                                       settings.gang_across_nodes);
  if (most >= spec.ranks)
    return std::nullopt;
  auto needs = "needs " + std::to_string(spec.ranks) + " devices that run '"
               + spec.model + "' with " + runtime::format_bytes(bytes)
               + " each";
  if (settings.gang_across_nodes)
    return needs + "; the cluster has " + std::to_string(most);
  return needs + " on one node; the most on one node is " + std::to_string(most)
         + " (the head runs with gangs kept to one node: "
           "--gang-across-nodes is off)";
}

int32_t admission_state::rank_of(const job_record& rec, uint64_t lease) const {
  for (size_t i = 0; i < rec.gang.size(); ++i)
    if (rec.gang[i].lease == lease)
      return static_cast<int32_t>(i);
  return -1;
}

namespace {

/// Whether some rank of `rec` has finished more than `least` steps.
bool rank_is_ahead_of(const job_record& rec, int32_t least) {
  return std::any_of(rec.gang.begin(), rec.gang.end(),
                     [&](const gang_rank& x) { return x.steps > least; });
}

void forget_finishing(device_slot* device, job_id id) {
  if (device == nullptr)
    return;
  auto& finishing = device->finishing;
  finishing.erase(std::remove(finishing.begin(), finishing.end(), id),
                  finishing.end());
}

} // namespace

void admission_state::collapse_gang(job_record& rec, int32_t keep) {
  auto kept = rec.gang.at(static_cast<size_t>(keep));
  rec.gang.erase(rec.gang.begin() + keep);
  release_gang(rec);
  rec.device = kept.device;
  rec.lease = kept.lease;
  rec.reserved_bytes = kept.reserved;
}

void admission_state::release_gang(job_record& rec) {
  auto id = rec.result.id;
  for (auto& rank : rec.gang) {
    auto device = devices.find(rank.device);
    if (!rank.done && device != nullptr && device->worker)
      self->send(device->worker, abort_atom::value, id, rank.lease);
    free_slot_of(rec, rank.device, rank.reserved);
    forget_finishing(device, id);
  }
  rec.gang.clear();
  rec.gang_output.clear();
}

void admission_state::on_rendezvous(job_id id, uint64_t lease,
                                    std::string address) {
  int32_t rank = 0;
  auto rec = attempt_of(id, lease, &rank);
  if (rec == nullptr || rec->gang.empty() || rank != 0)
    return;
  for (size_t i = 1; i < rec->gang.size(); ++i)
    if (auto device = devices.find(rec->gang[i].device);
        device && device->worker)
      self->send(device->worker, rendezvous_atom::value, id, rec->gang[i].lease,
                 address);
}

void admission_state::gang_progress(job_record& rec, int32_t rank,
                                    int32_t step) {
  auto& self_rank = rec.gang.at(static_cast<size_t>(rank));
  self_rank.steps = std::max(self_rank.steps, step);
  auto least = std::min_element(rec.gang.begin(), rec.gang.end(),
                                [](const gang_rank& x, const gang_rank& y) {
                                  return x.steps < y.steps;
                                })
                 ->steps;
  if (rank_is_ahead_of(rec, least) && rec.gang_watched_step != least) {
    // Some ranks wait for the others: they may not wait for ever.
    rec.gang_watched_step = least;
    self->delayed_send(self, settings.gang_timeout, straggler_atom::value,
                       rec.result.id, rec.lease, least);
  }
  if (least <= rec.result.step)
    return;
  rec.result.step = least;
  emit(rec);
  for (const auto& x : rec.gang)
    if (auto device = devices.find(x.device); device && device->worker)
      self->send(device->worker, advance_atom::value, x.lease, least);
}

void admission_state::on_straggler(job_id id, uint64_t lease, int32_t step) {
  auto rec = jobs->find(id);
  if (rec == nullptr || rec->result.state != job_state::running
      || rec->gang.empty() || rec->lease != lease)
    return;
  auto hung = std::find_if(rec->gang.begin(), rec->gang.end(),
                           [&](const gang_rank& x) { return x.steps <= step; });
  if (hung == rec->gang.end() || !rank_is_ahead_of(*rec, step))
    return;
  auto rank = static_cast<int32_t>(hung - rec->gang.begin());
  auto device = devices.find(hung->device);
  auto name = device != nullptr ? device->name : std::string{"?"};
  auto reason = runtime::make_error(
    runtime::errc::worker_lost,
    "rank " + std::to_string(rank) + " on device " + name
      + " finished no step for "
      + runtime::format_duration(settings.gang_timeout) + " after step "
      + std::to_string(step) + " while the other ranks waited for it");
  collapse_gang(*rec, rank);
  stop_attempt(*rec);
  retry_or_fail(*rec, std::move(reason), true);
  dispatch();
}

bool admission_state::gang_done(job_record& rec, int32_t rank,
                                finished_job& out) {
  auto& x = rec.gang.at(static_cast<size_t>(rank));
  x.done = true;
  x.phases = out.phases;
  rec.gang_peak_bytes = std::max(rec.gang_peak_bytes, out.peak_bytes);
  if (rank == 0) {
    rec.gang_output = std::move(out.output);
    if (!rec.gang_output.empty() && rec.gang_output.front() == '/')
      rec.result.output_node = devices.at(x.device).node;
  }
  // Its device takes other jobs while the other ranks finish.
  free_slot_of(rec, x.device, x.reserved);
  forget_finishing(devices.find(x.device), rec.result.id);
  auto all_done = std::all_of(rec.gang.begin(), rec.gang.end(),
                              [](const gang_rank& y) { return y.done; });
  if (!all_done)
    return false;
  out = finished_job{std::move(rec.gang_output), rec.gang_peak_bytes,
                     rec.gang.front().phases};
  return true;
}

} // namespace vidnode::actors
