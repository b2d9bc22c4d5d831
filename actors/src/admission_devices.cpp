/// @file
/// Admission: device workers attaching and dying, their reports about
/// attempts, quarantine and probes (see admission_state.hpp).

#include <algorithm>
#include <utility>

#include <caf/actor_system.hpp>

#include <spdlog/spdlog.h>

#include "admission_state.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::actors {

using runtime::errc;
using runtime::job_id;
using runtime::job_state;
using runtime::make_error;

job_record* admission_state::attempt_of(job_id id, uint64_t lease,
                                        int32_t* rank) {
  auto rec = jobs->find(id);
  if (rec == nullptr || rec->result.state != job_state::running)
    return nullptr;
  auto slot = rec->device;
  auto which = 0;
  if (!rec->gang.empty()) {
    which = rank_of(*rec, lease);
    if (which < 0)
      return nullptr;
    slot = rec->gang[static_cast<size_t>(which)].device;
  } else if (rec->lease != lease) {
    return nullptr;
  }
  auto device = devices.find(slot);
  if (device == nullptr
      || self->current_sender()
           != caf::actor_cast<caf::strong_actor_ptr>(device->worker))
    return nullptr;
  if (rank != nullptr)
    *rank = which;
  return rec;
}

bool admission_state::from_this_node() const {
  // Only client messages are accepted from elsewhere: the published handle
  // can be cast to an untyped actor and sent anything.
  const auto& sender = self->current_sender();
  return sender != nullptr && sender->node() == self->node();
}

cluster_node* admission_state::sender_node() {
  const auto& sender = self->current_sender();
  if (sender == nullptr)
    return nullptr;
  if (sender->node() == self->node())
    return nodes.find(node_name);
  return nodes.by_supervisor(sender);
}

int32_t admission_state::slot_of(const cluster_node& node,
                                 int32_t index) const {
  return devices.slot_of(node.name, index);
}

device_slot* admission_state::device_of_sender(int32_t index) {
  const auto& sender = self->current_sender();
  if (sender == nullptr)
    return nullptr;
  auto node = sender->node() == self->node() ? nodes.find(node_name)
                                             : nodes.find_up(sender->node());
  if (node == nullptr)
    return nullptr;
  auto device = devices.find(slot_of(*node, index));
  if (device == nullptr
      || sender != caf::actor_cast<caf::strong_actor_ptr>(device->worker))
    return nullptr;
  return device;
}

void admission_state::attach(runtime::device_info info,
                             device_worker_actor worker, int32_t restarts,
                             const std::vector<std::string>& kept_models,
                             uint64_t kept_resident) {
  auto node = sender_node();
  if (node == nullptr)
    return;
  auto slot = slot_of(*node, info.index);
  auto device = devices.find(slot);
  if (device == nullptr) {
    spdlog::error("attach for unknown device {} of node {}", info.name(),
                  node->name);
    return;
  }
  if (worker && worker.node() != self->node())
    self->monitor(worker);
  // A new worker for a device whose old one still had jobs: the old worker
  // is gone, its jobs must not wait for reports that never come. Attempts
  // taken over from a rejoined node are the attaching worker's own.
  auto resume = device->taken_over;
  device->taken_over = false;
  if (!resume && !device->running.empty())
    detach(slot, make_error(errc::worker_lost, "worker replaced"));
  device->supervisor =
    caf::actor_cast<node_supervisor_actor>(self->current_sender());
  device->culprit = job_id{};
  device->failed_itself = false;
  if (device->state == device_slot::health::quarantined)
    end_quarantine(*device);
  device->name = info.name();
  device->info = std::move(info);
  device->worker = std::move(worker);
  device->state = device_slot::health::up;
  device->restarts = restarts;
  for (auto& model : device->models)
    model.loaded = false;
  for (const auto& name : kept_models) {
    if (auto model = device->find_model(name))
      model->loaded = true;
    else
      device->models.push_back({name, 1, true});
  }
  device->resident = kept_resident;
  if (resume && device->worker) {
    // Only the attempts taken over are checked: one dispatched from now on
    // reaches the worker after its answer.
    std::vector<std::pair<job_id, uint64_t>> taken;
    for (auto id : device->running)
      if (auto rec = jobs->find(id))
        taken.emplace_back(id, rec->lease);
    resume_worker(slot, device->worker, std::move(taken));
  }
  // detach() above may have queried the ledger after `device` was found.
  devices.touch(slot);
  unpark();
  dispatch();
}

void admission_state::resume_worker(
  int32_t slot, device_worker_actor worker,
  std::vector<std::pair<job_id, uint64_t>> taken) {
  self->request(worker, resume_timeout, resume_atom::value)
    .then(
      [this, slot, worker, taken](lease_list& running) {
        auto device = devices.find(slot);
        if (device == nullptr || device->worker != worker)
          return;
        // The outcomes it sent again came first; a taken-over attempt it
        // neither ended nor runs died with a worker of the node while the
        // head was away.
        std::vector<job_record*> gone;
        for (auto [id, lease] : taken) {
          auto rec = jobs->find(id);
          if (rec != nullptr && !rec->ended() && rec->lease == lease
              && rec->device == slot
              && std::find(running.leases.begin(), running.leases.end(), lease)
                   == running.leases.end())
            gone.push_back(rec);
        }
        auto name = device->name;
        for (auto* rec : gone)
          retry_or_fail(*rec,
                        make_error(errc::worker_lost,
                                   "the worker of device " + name
                                     + " died under attempt "
                                     + std::to_string(rec->result.attempts)
                                     + " while the head was away"),
                        true);
        if (!gone.empty())
          dispatch();
      },
      [](caf::error&) {
        // The worker died: its supervisor detaches the device.
      });
}

bool admission_state::detach(int32_t slot, caf::error reason) {
  auto found = devices.find(slot);
  if (found == nullptr)
    return false;
  auto& device = *found;
  device.lose_worker();
  device.last_error = runtime::describe(reason);
  for (auto& model : device.models)
    model.loaded = false;
  auto culprit = device.culprit;
  auto failed_itself = device.failed_itself;
  device.culprit = job_id{};
  device.failed_itself = false;
  std::vector<job_id> lost;
  for (const auto* ids : {&device.running, &device.finishing})
    for (auto id : *ids) {
      auto rec = jobs->find(id);
      if (rec != nullptr && rec->result.state == job_state::running)
        lost.push_back(id);
    }
  auto explained =
    culprit.value != 0 || runtime::is(reason, errc::out_of_memory);
  // Alone on the device, a job is the cause of the death it died in,
  // unless the worker said the device itself failed.
  auto charged =
    !explained && !failed_itself && lost.size() == 1 ? lost.front() : job_id{};
  auto blame_device = !explained && charged.value == 0;
  for (auto id : lost) {
    auto& rec = *jobs->find(id);
    if (id == charged) {
      rec.crashed_on.push_back(slot);
      ++device.job_crashes;
      retry_or_fail(rec, reason, true);
      continue;
    }
    auto why = explained
                 ? make_error(errc::worker_lost,
                              "device " + device.name + " restarted after job "
                                + runtime::to_string(culprit)
                                + " failed; retried at no charge")
                 : reason;
    retry_or_fail(rec, std::move(why), false);
  }
  device.running.clear();
  device.finishing.clear();
  device.reserved = 0;
  device.resident = 0;
  dispatch();
  return blame_device;
}

void admission_state::quarantine(int32_t slot, caf::error reason,
                                 caf::timespan cooldown) {
  auto device = devices.find(slot);
  if (device == nullptr)
    return;
  device->state = device_slot::health::quarantined;
  device->job_crashes = 0;
  device->quarantine_reason = runtime::describe(reason);
  device->last_error = device->quarantine_reason + "; probed again in "
                       + runtime::format_duration(cooldown);
  spdlog::warn("device {} is quarantined: {}", device->name,
               device->last_error);
  fail_stranded_jobs();
  dispatch();
}

void admission_state::end_quarantine(device_slot& device) {
  device.last_error =
    "quarantined (" + device.quarantine_reason + "), then probed: on probation";
}

void admission_state::probe(int32_t slot) {
  auto device = devices.find(slot);
  if (device == nullptr || device->state != device_slot::health::quarantined
      || !device->worker)
    return;
  end_quarantine(*device);
  device->state = device_slot::health::up;
  spdlog::info("device {} is probed: it takes jobs again", device->name);
  unpark();
  dispatch();
}

void admission_state::exonerate(job_record& rec, int32_t where) {
  std::sort(rec.crashed_on.begin(), rec.crashed_on.end());
  rec.crashed_on.erase(
    std::unique(rec.crashed_on.begin(), rec.crashed_on.end()),
    rec.crashed_on.end());
  auto succeeded_on = devices.find(where);
  for (auto slot : rec.crashed_on) {
    auto device = devices.find(slot);
    if (slot == where || device == nullptr || succeeded_on == nullptr)
      continue;
    if (device->job_crashes < succeeded_on->job_crashes + crash_margin)
      continue;
    if (device->supervisor)
      self->send(
        device->supervisor, fault_atom::value, device->info.index,
        make_error(errc::worker_lost, "job " + runtime::to_string(rec.result.id)
                                        + " failed on " + device->name
                                        + " and then succeeded on "
                                        + succeeded_on->name));
  }
  rec.crashed_on.clear();
}

// -- worker reports ----------------------------------------------------------

void admission_state::on_loaded(int32_t index, const std::string& model,
                                uint64_t resident) {
  auto device = device_of_sender(index);
  if (device == nullptr)
    return;
  device->resident += resident;
  auto entry = device->find_model(model);
  if (entry == nullptr) {
    device->models.push_back({model, 1, true});
  } else {
    entry->loads += 1;
    entry->loaded = true;
  }
}

void admission_state::on_computed(job_id id, uint64_t lease) {
  int32_t rank = 0;
  if (auto rec = attempt_of(id, lease, &rank)) {
    if (rec->gang.empty()) {
      free_slot(*rec);
    } else {
      auto& x = rec->gang[static_cast<size_t>(rank)];
      free_slot_of(*rec, x.device, x.reserved);
    }
    if (rank == 0)
      rec->result.computed_at = wall(now());
    dispatch();
  }
}

void admission_state::on_progress(job_id id, uint64_t lease, int32_t step,
                                  int32_t steps) {
  int32_t rank = 0;
  if (auto rec = attempt_of(id, lease, &rank)) {
    if (!rec->gang.empty()) {
      gang_progress(*rec, rank, step);
      return;
    }
    rec->result.step = step;
    rec->result.steps = steps;
    emit(*rec);
  }
}

void admission_state::on_done(job_id id, uint64_t lease, finished_job out) {
  int32_t rank = 0;
  auto rec = attempt_of(id, lease, &rank);
  if (rec == nullptr)
    return;
  if (!rec->gang.empty()) {
    if (!gang_done(*rec, rank, out)) {
      dispatch();
      return;
    }
  } else if (!out.output.empty() && out.output.front() == '/') {
    // A written video stays on the node that wrote it; reads go there.
    rec->result.output_node = devices.at(rec->device).node;
  }
  // Where the attempt's time went (a gang's: rank 0's, on rank 0's
  // device). Looked up const: the ledger's index is not touched.
  auto slot = rec->gang.empty() ? rec->device : rec->gang.front().device;
  if (const auto* device = std::as_const(devices).find(slot))
    node_events->attempt_phases(rec->spec.model, device->info.kind,
                                out.phases);
  estimates->observed_peak(rec->shape_key, out.peak_bytes);
  journal_estimate(rec->shape_key);
  // The device's next job goes out before anyone is told of this one; this
  // one ended before that.
  auto ended = now();
  if (rec->result.computed_at.time_since_epoch().count() == 0)
    rec->result.computed_at = wall(ended);
  if (!rec->crashed_on.empty())
    exonerate(*rec, rec->device);
  release(*rec);
  dispatch();
  rec->result.step = rec->result.steps;
  if (!rec->spec.output_url.empty() && mover)
    start_upload(*rec, std::move(out.output));
  else
    finalize(*rec, job_state::succeeded, caf::none, std::move(out.output),
             ended);
}

void admission_state::on_failed(job_id id, uint64_t lease, caf::error reason,
                                uint64_t needed_bytes) {
  int32_t rank = 0;
  auto rec = attempt_of(id, lease, &rank);
  if (rec == nullptr)
    return;
  if (!rec->gang.empty())
    collapse_gang(*rec, rank);
  if (runtime::is(reason, errc::out_of_memory)) {
    // The worker exits after an out-of-memory error: nothing more may be
    // sent to it until the supervisor attached its successor.
    auto& device = devices.at(rec->device);
    node_events->device_failed(device.node, device.name,
                               device_fault::out_of_memory);
    device.lose_worker();
    device.culprit = id;
    // The retry reserves more; if no device has that much, it fails.
    auto raised = estimates->out_of_memory(rec->shape_key, rec->reserved_bytes,
                                           needed_bytes);
    journal_estimate(rec->shape_key);
    if (raised > devices.largest_budget_for(*rec->factory, rec->spec.model)) {
      finalize(*rec, job_state::failed,
               make_error(errc::out_of_memory,
                          runtime::detail_of(reason) + "; a retry would need "
                            + runtime::format_bytes(raised)
                            + ", more than any device has"));
    } else {
      retry_or_fail(*rec, std::move(reason), true);
    }
  } else if (runtime::is(reason, errc::worker_lost)) {
    // A gang's collectives failed (a rank left or never came): the device
    // is unharmed; the job is tried again.
    retry_or_fail(*rec, std::move(reason), true);
  } else {
    finalize(*rec, job_state::failed, std::move(reason));
  }
  dispatch();
}

void admission_state::on_crashed(job_id id, uint64_t lease, caf::error reason,
                                 bool device_failed) {
  // The worker exits next. Its death is charged to this job, unless the
  // device itself failed: then to the device (detach), and every job it ran
  // is retried at no charge.
  int32_t rank = 0;
  auto rec = attempt_of(id, lease, &rank);
  if (rec == nullptr)
    return;
  if (!rec->gang.empty())
    collapse_gang(*rec, rank);
  auto& device = devices.at(rec->device);
  node_events->device_failed(device.node, device.name, device_fault::crash);
  device.lose_worker();
  if (device_failed) {
    device.failed_itself = true;
    return;
  }
  device.culprit = id;
  rec->crashed_on.push_back(rec->device);
  ++device.job_crashes;
  retry_or_fail(*rec, std::move(reason), true);
  dispatch();
}

} // namespace vidnode::actors
