/// @file
/// Admission: placing queued jobs on devices, starting and stopping
/// attempts, retries, and the end of a job (see admission_state.hpp).

#include <algorithm>
#include <filesystem>

#include <caf/actor_system.hpp>

#include "admission_state.hpp"
#include "job_log.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::actors {

using runtime::errc;
using runtime::job_id;
using runtime::job_state;
using runtime::make_error;

uint64_t admission_state::estimate_of(const job_record& rec) const {
  return estimates->estimate(rec.shape_key, rec.declared_bytes);
}

void admission_state::fail_stranded_jobs() {
  // Collected first: finalizing may drop old results from the table.
  std::vector<job_id> stranded;
  jobs->for_each([&](job_record& rec) {
    if (rec.result.state == job_state::queued
        && devices.no_device_left_for(*rec.factory, rec.spec.model))
      stranded.push_back(rec.result.id);
  });
  for (auto id : stranded) {
    auto rec = jobs->find(id);
    if (rec == nullptr)
      continue;
    auto why = devices.no_device_left_for(*rec->factory, rec->spec.model);
    leave_queue(*rec);
    finalize(*rec, job_state::failed, make_error(errc::worker_lost, *why));
  }
}

void admission_state::dispatch() {
  place();
  for (auto id : undated) {
    auto rec = jobs->find(id);
    if (rec != nullptr && rec->result.state == job_state::queued
        && rec->deadline == time_point::max())
      set_deadline(*rec,
                   rec->queued_since + effective_queue_timeout(rec->spec));
  }
  undated.clear();
}

void admission_state::place() {
  if (queue->empty())
    return;
  auto t = now();
  auto is_live = [this](const job_queue::entry& x) {
    auto rec = jobs->find(x.id);
    return rec != nullptr && rec->result.state == job_state::queued
           && rec->queue_ticket == x.ticket;
  };
  while (!queue->empty()) {
    auto next = queue->peek(t, is_live);
    if (!next)
      return;
    auto& rec = *jobs->find(next->id);
    auto any_free = devices.any_free_slot(settings.max_concurrency);
    if (any_free) {
      auto bytes = estimate_of(rec);
      if (rec.spec.ranks > 1) {
        if (place_gang(rec, bytes)) {
          queue->pop(*next);
          continue;
        }
      } else if (auto slot = choose(rec, bytes); slot >= 0) {
        queue->pop(*next);
        start_attempt(rec, slot, bytes);
        continue;
      }
    }
    if (park_if_unplaceable(rec, *next))
      continue;
    if (any_free)
      backfill(rec, t, is_live);
    return;
  }
}

bool admission_state::park_if_unplaceable(job_record& rec,
                                          const job_queue::entry& entry) {
  if (devices.any_in_service_for(*rec.factory, rec.spec.model))
    return false;
  queue->pop(entry);
  rec.parked = true;
  parked.emplace(rec.seq, rec.result.id.value);
  log_job(runtime::log_level::info, rec.result,
          "waits for a node: "
            + why_unplaceable(rec).value_or("no device can run it"));
  return true;
}

void admission_state::unpark() {
  std::vector<job_id> ready;
  for (auto i = parked.rbegin(); i != parked.rend(); ++i) {
    auto rec = jobs->find(job_id{i->second});
    if (rec != nullptr
        && devices.any_in_service_for(*rec->factory, rec->spec.model))
      ready.push_back(rec->result.id);
  }
  // Latest first, each to the front of its level: in acceptance order.
  for (auto id : ready) {
    auto& rec = *jobs->find(id);
    parked.erase({rec.seq, id.value});
    rec.parked = false;
    auto bytes = estimate_of(rec);
    auto largest = devices.largest_budget_for(*rec.factory, rec.spec.model);
    if (bytes > largest) {
      finalize(rec, job_state::failed,
               make_error(errc::too_large,
                          "needs " + runtime::format_bytes(bytes)
                            + " but the largest device that can run model '"
                            + rec.spec.model + "' has "
                            + runtime::format_bytes(largest)));
      continue;
    }
    if (rec.spec.ranks > 1)
      if (auto why = gang_too_large(*rec.factory, rec.spec, bytes)) {
        finalize(rec, job_state::failed, make_error(errc::too_large, *why));
        continue;
      }
    rec.queue_ticket = jobs->next_ticket();
    queue->push_front(job_queue::entry{id, rec.seq, rec.accepted,
                                       rec.spec.priority, rec.queue_ticket});
  }
}

bool admission_state::may_retry_on(const job_record& rec, int32_t slot) const {
  auto failed_on = [&](int32_t i) {
    return std::find(rec.crashed_on.begin(), rec.crashed_on.end(), i)
           != rec.crashed_on.end();
  };
  if (rec.crashed_on.empty() || !failed_on(slot))
    return true;
  bool elsewhere = false;
  devices.for_each([&](int32_t other, const device_slot& device) {
    elsewhere =
      elsewhere
      || (device.present() && device.state != device_slot::health::quarantined
          && rec.factory->runs_on(device.info.kind)
          && devices.serves(device, rec.spec.model) && !failed_on(other));
  });
  return !elsewhere;
}

int32_t admission_state::choose(const job_record& rec, uint64_t bytes) {
  if (rec.crashed_on.empty())
    return devices.choose(*rec.factory, rec.spec.model, bytes,
                          settings.max_concurrency);
  fill_candidates(rec);
  return choose_device(candidates, bytes);
}

void admission_state::fill_candidates(const job_record& rec) {
  // Read only: the non-const ledger would mark every slot as changed.
  const auto& ledger = devices;
  candidates.clear();
  for (int32_t slot = 0; slot < ledger.size(); ++slot) {
    placement_candidate c;
    if (auto device = ledger.find(slot)) {
      c.available = device->state == device_slot::health::up
                    && rec.factory->runs_on(device->info.kind)
                    && ledger.serves(*device, rec.spec.model)
                    && may_retry_on(rec, slot);
      c.running = static_cast<int32_t>(device->running.size());
      c.slots = settings.max_concurrency;
      c.memory_bytes = device->budget();
      c.memory_reserved = device->reserved;
      auto model = device->find_model(rec.spec.model);
      c.has_model = model != nullptr && model->loaded;
    }
    candidates.push_back(c);
  }
}

bool admission_state::could_run_on(const job_record& rec, int32_t slot) const {
  const auto& device = devices.at(slot);
  return rec.factory->runs_on(device.info.kind)
         && devices.serves(device, rec.spec.model);
}

template <class IsLive>
void admission_state::backfill(job_record& head, time_point t,
                               IsLive& is_live) {
  if (head.bypassed >= settings.max_bypass)
    return;
  behind.clear();
  queue->visit_in_order(t, is_live, backfill_scan_limit,
                        [&](const job_queue::entry& x) {
                          if (x.id != head.result.id)
                            behind.push_back(x.id);
                          return true;
                        });
  for (auto id : behind) {
    if (head.bypassed >= settings.max_bypass
        || !devices.any_free_slot(settings.max_concurrency))
      return;
    auto& rec = *jobs->find(id);
    auto bytes = estimate_of(rec);
    if (rec.spec.ranks > 1) {
      if (!place_gang(rec, bytes))
        continue;
      queue->forget();
      auto bypasses =
        std::any_of(rec.gang.begin(), rec.gang.end(), [&](const gang_rank& x) {
          return could_run_on(head, x.device);
        });
      if (bypasses)
        head.bypassed += 1;
      continue;
    }
    auto slot = choose(rec, bytes);
    if (slot < 0)
      continue;
    auto bypasses = could_run_on(head, slot);
    // Its entry turns stale once it runs; the queue drops it later.
    queue->forget();
    start_attempt(rec, slot, bytes);
    if (bypasses)
      head.bypassed += 1;
  }
}

void admission_state::start_attempt(job_record& rec, int32_t slot,
                                    uint64_t bytes) {
  auto t = mark_running(rec, bytes);
  rec.device = slot;
  reserve_on(rec, slot, bytes);
  const auto& device = devices.at(slot);
  rec.result.device = device.name;
  rec.result.node = device.node;
  announce_start(rec, t);
}

admission_state::time_point admission_state::mark_running(job_record& rec,
                                                          uint64_t bytes) {
  auto t = now();
  auto& r = rec.result;
  r.state = job_state::running;
  r.attempts += 1;
  r.step = 0;
  r.steps = rec.spec.steps;
  r.started_at = wall(t);
  r.computed_at = caf::timestamp{};
  r.queue_time +=
    std::chrono::duration_cast<caf::timespan>(t - rec.queued_since);
  rec.started = t;
  rec.lease = ++next_lease;
  rec.reserved_bytes = bytes;
  r.reserved_bytes = bytes;
  return t;
}

void admission_state::reserve_on(job_record& rec, int32_t slot,
                                 uint64_t bytes) {
  auto& device = devices.at(slot);
  device.running.push_back(rec.result.id);
  device.reserved += bytes;
  // Marked as loading at once: the next job of the model waits for this
  // device rather than loading the model on another.
  auto model = device.find_model(rec.spec.model);
  if (model == nullptr) {
    device.models.push_back({rec.spec.model, 0, true});
  } else {
    model->loaded = true;
  }
}

void admission_state::announce_start(job_record& rec, time_point started) {
  set_deadline(rec, started + effective_run_timeout(rec.spec));
  journal_job(rec);
  log_job(runtime::log_level::info, rec.result, "running");
  // The workers get the attempt once its dispatch is durable: a head that
  // restarts knows every attempt a worker node may run, and never starts a
  // second one beside it.
  after_durable(
    [this, id = rec.result.id, lease = rec.lease](const caf::error&) {
      auto rec = jobs->find(id);
      if (rec != nullptr && rec->lease == lease
          && rec->result.state == job_state::running)
        send_tickets(*rec);
    },
    true);
  emit(rec);
}

void admission_state::send_tickets(job_record& rec) {
  auto send = [&](int32_t slot, job_ticket ticket) {
    auto device = devices.find(slot);
    if (device != nullptr && device->worker)
      self->send(device->worker, run_atom::value, std::move(ticket));
  };
  auto& r = rec.result;
  if (rec.gang.empty()) {
    send(rec.device,
         job_ticket{r.id, rec.lease, rec.spec, r.attempts, rec.audio_path});
    return;
  }
  auto world = static_cast<int32_t>(rec.gang.size());
  for (int32_t i = 0; i < world; ++i) {
    const auto& rank = rec.gang[static_cast<size_t>(i)];
    // Only rank 0 writes the video, so only it gets the audio to mux.
    send(rank.device,
         job_ticket{r.id, rank.lease, rec.spec, r.attempts,
                    i == 0 ? rec.audio_path : std::string{}, i, world});
  }
}

void admission_state::free_slot_of(job_record& rec, int32_t slot,
                                   uint64_t& reserved) {
  auto device = devices.find(slot);
  if (device == nullptr)
    return;
  auto& running = device->running;
  auto i = std::find(running.begin(), running.end(), rec.result.id);
  if (i == running.end())
    return;
  running.erase(i);
  device->reserved -= std::min(device->reserved, reserved);
  reserved = 0;
  device->finishing.push_back(rec.result.id);
}

void admission_state::free_slot(job_record& rec) {
  free_slot_of(rec, rec.device, rec.reserved_bytes);
}

void admission_state::release(job_record& rec) {
  if (!rec.held_by.empty()) {
    // The node that holds the attempt is told to stop it if it comes back.
    end_hold(rec);
    rec.lease = 0;
  }
  if (!rec.gang.empty()) {
    release_gang(rec);
    rec.device = -1;
    rec.lease = 0;
    rec.reserved_bytes = 0;
    return;
  }
  if (rec.device < 0)
    return;
  free_slot(rec);
  if (auto device = devices.find(rec.device)) {
    auto& finishing = device->finishing;
    finishing.erase(
      std::remove(finishing.begin(), finishing.end(), rec.result.id),
      finishing.end());
  }
  rec.device = -1;
  rec.lease = 0;
}

void admission_state::stop_attempt(job_record& rec) {
  // A gang's ranks are aborted as they are released.
  if (rec.gang.empty())
    if (auto device = devices.find(rec.device))
      if (device->worker)
        self->send(device->worker, abort_atom::value, rec.result.id, rec.lease);
  release(rec);
}

void admission_state::retry_or_fail(job_record& rec, caf::error reason,
                                    bool charge) {
  release(rec);
  if (charge)
    rec.charged_failures += 1;
  rec.result.run_time =
    std::chrono::duration_cast<caf::timespan>(now() - rec.started);
  if (rec.charged_failures >= settings.max_attempts) {
    finalize(rec, job_state::failed, std::move(reason));
    return;
  }
  if (shutting_down && journal) {
    keep_for_next_start(rec);
    return;
  }
  if (shutting_down) {
    finalize(rec, job_state::cancelled,
             make_error(errc::cancelled,
                        "node " + node_name
                          + " is shutting down; the last attempt failed: "
                          + runtime::describe(reason)));
    return;
  }
  enqueue(rec, true);
  journal_job(rec);
  log_job(runtime::log_level::info, rec.result,
          "queued again: attempt " + std::to_string(rec.result.attempts)
            + " failed",
          reason);
  emit(rec, std::move(reason));
}

void admission_state::finalize(job_record& rec, job_state state,
                               caf::error error, std::string output,
                               std::optional<time_point> at) {
  auto t = at ? *at : now();
  auto& r = rec.result;
  if (rec.transfer) {
    rec.transfer->abort(shutting_down ? abort_signal::reason::node_stopping
                                      : abort_signal::reason::job_ended);
    rec.transfer = nullptr;
  }
  if (rec.uploading) {
    // Ended before its upload did: the written video stays on disk.
    rec.uploading = false;
    if (output.empty())
      output = rec.video_path;
    error = make_error(
      static_cast<errc>(error.code()),
      runtime::detail_of(error) + "; the upload to " + rec.spec.output_url
        + " was aborted and the video is kept at " + where_kept(rec));
  }
  if (r.state == job_state::running)
    r.run_time = std::chrono::duration_cast<caf::timespan>(t - rec.started);
  else if (r.state == job_state::queued)
    r.queue_time +=
      std::chrono::duration_cast<caf::timespan>(t - rec.queued_since);
  r.state = state;
  r.error = std::move(error);
  r.output = std::move(output);
  r.finished_at = wall(t);
  clear_deadline(rec);
  release(rec);
  journal_job(rec);
  observe_end(rec);
  log_job(state == job_state::failed || state == job_state::timed_out
            ? runtime::log_level::warn
            : runtime::log_level::info,
          r, runtime::to_string(state), r.error);
  if (!rec.audio_path.empty()) {
    std::error_code ec;
    std::filesystem::remove(rec.audio_path, ec);
    rec.audio_path.clear();
  }
  // Whoever waits hears of the end once it is durable: an end reported and
  // then lost in a crash could be reported again, and differently.
  auto webhook = webhooks && !rec.spec.webhook_url.empty()
                   ? rec.spec.webhook_url
                   : std::string{};
  rec.end_pending = true;
  after_durable(
    [this, id = r.id, webhook](const caf::error&) {
      if (auto ended = jobs->find(id))
        tell_end(*ended, webhook);
    },
    true);
  if (shutting_down && in_grace.erase(r.id) > 0)
    finish_shutdown_if_done();
  if (auto expiry = jobs->retire(rec, t))
    arm_tick(*expiry);
}

void admission_state::tell_end(job_record& rec, const std::string& webhook) {
  if (!rec.end_pending)
    return;
  rec.end_pending = false;
  emit(rec);
  rec.observers.clear();
  rec.observers.shrink_to_fit();
  auto result = snapshot(rec);
  if (!rec.waiters.empty())
    job_table::answer_waiters(rec, result);
  if (!webhook.empty())
    self->send(webhooks, notify_atom::value, webhook, result);
}

} // namespace vidnode::actors
