/// @file
/// Admission: the journal — group commits of job records and their replay
/// when a head starts again (see admission_state.hpp).

#include <algorithm>

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>

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

journaled_job admission_state::journaled_of(const job_record& rec) const {
  journaled_job result;
  result.result = rec.result;
  result.spec = rec.spec;
  result.charged_failures = rec.charged_failures;
  if (rec.result.state == job_state::running) {
    result.lease = rec.lease;
    if (auto device = devices.find(rec.device))
      result.device_index = device->info.index;
    else if (!rec.held_by.empty())
      result.device_index = rec.held_index;
  }
  return result;
}

void admission_state::journal_job(const job_record& rec) {
  if (!journal)
    return;
  auto id = rec.result.id.value;
  auto i = pending_jobs.find(id);
  if (i != pending_jobs.end()) {
    pending.jobs[i->second] = journaled_of(rec);
  } else {
    pending_jobs.emplace(id, pending.jobs.size());
    pending.jobs.push_back(journaled_of(rec));
  }
  schedule_flush();
}

void admission_state::journal_estimate(const std::string& key) {
  if (!journal)
    return;
  auto bytes = estimates->learned(key);
  if (bytes == 0)
    return;
  pending.estimates.emplace_back(key, bytes);
  schedule_flush();
}

void admission_state::after_durable(std::function<void(const caf::error&)> fn,
                                    bool waits_for_durability) {
  if (!journal || (pending.empty() && !commit_in_flight)) {
    fn(caf::error{});
    return;
  }
  journal_ack ack{std::move(fn), waits_for_durability};
  if (pending.empty())
    in_flight_acks.push_back(std::move(ack));
  else
    pending_acks.push_back(std::move(ack));
}

void admission_state::schedule_flush() {
  if (flush_scheduled || commit_in_flight)
    return;
  flush_scheduled = true;
  self->send(self, journal_flush_atom::value);
}

void admission_state::flush_journal() {
  if (!journal || commit_in_flight)
    return;
  if (pending.empty()) {
    // Callbacks kept after a failed commit whose changes are all gone
    // (dropped or forgotten) wait for nothing any more.
    auto acks = std::move(pending_acks);
    pending_acks.clear();
    for (auto& ack : acks)
      ack.fn(caf::error{});
    return;
  }
  in_flight_jobs.clear();
  for (const auto& entry : pending.jobs)
    in_flight_jobs.push_back(entry.result.id);
  in_flight_acks = std::move(pending_acks);
  pending_acks.clear();
  commit_in_flight = true;
  journal->commit(std::move(pending), ++commits);
  pending.clear();
  pending_jobs.clear();
}

void admission_state::journaled_accept(job_id id) {
  auto rec = jobs->find(id);
  if (rec == nullptr || !rec->awaiting_journal)
    return;
  rec->awaiting_journal = false;
  --awaiting_journal;
  if (rec->before_retry)
    node_events->job_retried(rec->spec.model, rec->spec.priority);
  else
    node_events->job_accepted(rec->spec.model, rec->spec.priority);
  rec->before_retry.reset();
  if (rec->spec.audio_url.empty()) {
    enqueue(*rec, false);
    log_job(runtime::log_level::info, rec->result, "queued");
  } else {
    log_job(runtime::log_level::info, rec->result,
            "accepted; its audio_url is being fetched");
    start_fetch(*rec);
  }
}

void admission_state::drop_unjournaled(job_record& rec, const caf::error& err) {
  if (!rec.ended())
    leave_queue(rec);
  clear_deadline(rec);
  for (auto& waiter : rec.waiters)
    waiter.second.deliver(err);
  rec.waiters.clear();
  for (auto& observer : rec.observers)
    caf::anon_send(observer, event_of(rec, err));
  jobs->erase(rec.result.id);
}

void admission_state::on_journaled(uint64_t number, caf::error err) {
  if (!commit_in_flight || number != commits)
    return;
  commit_in_flight = false;
  auto ids = std::move(in_flight_jobs);
  in_flight_jobs.clear();
  auto acks = std::move(in_flight_acks);
  in_flight_acks.clear();
  if (!err) {
    if (journal_failing)
      spdlog::info("journal {}: writing works again", journal->path());
    journal_failing = false;
    journal_retry_delay = caf::timespan{0};
    for (auto id : ids)
      if (auto rec = jobs->find(id))
        rec->durable = true;
  } else {
    if (!journal_failing)
      spdlog::error("journal {}: {}; new jobs are refused until it can be "
                    "written",
                    journal->path(), runtime::describe(err));
    journal_failing = true;
    // The next commit waits (the flush is scheduled before the jobs below
    // are journaled again, so that they do not ask for one at once).
    if (!flush_scheduled) {
      journal_retry_delay =
        std::clamp(journal_retry_delay * 2, min_journal_retry_delay,
                   max_journal_retry_delay);
      flush_scheduled = true;
      self->delayed_send(self, journal_retry_delay, journal_flush_atom::value);
    }
    for (auto id : ids) {
      auto rec = jobs->find(id);
      if (rec == nullptr)
        continue;
      if (rec->before_retry)
        undo_retry(*rec, err);
      else if (rec->durable)
        journal_job(*rec);
      else
        drop_unjournaled(*rec, err);
    }
  }
  for (auto& ack : acks) {
    if (err && ack.waits_for_durability)
      pending_acks.push_back(std::move(ack));
    else
      ack.fn(err);
  }
  if (!err)
    flush_journal();
  dispatch();
  if (shutting_down)
    finish_shutdown_if_done();
}

void admission_state::open_journal(std::shared_ptr<journal_store> store) {
  auto contents = std::move(store->contents());
  journal = std::make_unique<journal_writer>(
    std::move(store), caf::actor_cast<admission_control_actor>(self),
    self->system(), node_events);
  // Leases of this run differ from those of every earlier run: a report
  // about an attempt of an earlier run is never taken for one of this run.
  next_lease = contents.generation << 40;
  jobs->skip_ids(contents.last_job_id);
  jobs->on_forget([this](job_id id) {
    pending.forgotten.push_back(id);
    schedule_flush();
  });
  for (auto& [key, bytes] : contents.estimates)
    estimates->restore(key, bytes);
  auto t = now();
  auto wall_now = wall(t);
  // A wall-clock time of the earlier run on this run's clock (never later
  // than now, if the wall clock went back).
  auto local = [&](caf::timestamp at) {
    auto ago = wall_now - at;
    return t - std::max(ago, decltype(ago){0});
  };
  size_t queued = 0;
  size_t requeued = 0;
  size_t finished = 0;
  std::vector<job_record*> interrupted;
  size_t held = 0;
  // Nodes that have not rejoined yet run their attempts on by the grace of
  // the run they joined: it is kept for them if it was longer.
  auto hold_for = std::max(settings.lease_grace, contents.previous_lease_grace);
  for (auto& entry : contents.jobs) {
    auto accepted = local(entry.result.accepted_at);
    auto& rec = jobs->restore(entry.result.id, std::move(entry.spec), accepted);
    rec.result = std::move(entry.result);
    rec.result.endpoint = rec.spec.endpoint;
    rec.charged_failures = entry.charged_failures;
    rec.durable = true;
    if (rec.ended()) {
      ++finished;
      if (auto expiry = jobs->retire(rec, local(rec.result.finished_at)))
        arm_tick(*expiry);
      continue;
    }
    rec.factory = catalog->find(rec.spec.model);
    if (rec.factory == nullptr) {
      rec.result.state = job_state::queued;
      finalize(rec, job_state::failed,
               make_error(errc::unknown_model, "model: '" + rec.spec.model
                                                 + "' is not served by node "
                                                 + node_name
                                                 + " any more (it restarted)"));
      continue;
    }
    if (!settings.accepts_worker_nodes
        && !devices.any_runs(*rec.factory, rec.spec.model)) {
      // As at acceptance: no node can ever join to run it.
      rec.result.state = job_state::queued;
      finalize(rec, job_state::failed,
               make_error(errc::unknown_model,
                          "model: no device of node " + node_name + " can run '"
                            + rec.spec.model
                            + "' any more (it restarted with other devices, "
                              "and no worker node can join: it has no "
                              "--cluster-listen)"));
      continue;
    }
    rec.declared_bytes = rec.factory->estimate_peak_bytes(rec.spec);
    rec.shape_key = memory_estimates::key_of(rec.spec);
    if (rec.result.state == job_state::running) {
      rec.started = local(rec.result.started_at);
      // A gang's ranks do not ride out the head's absence: it runs again.
      if (settings.lease_grace.count() > 0 && rec.result.node != node_name
          && entry.lease != 0 && entry.device_index >= 0
          && rec.spec.ranks == 1) {
        // Its worker node runs it on while the head is away: it stays the
        // node's until the node rejoins, or the lease grace passes.
        ++held;
        rec.lease = entry.lease;
        rec.reserved_bytes = rec.result.reserved_bytes;
        set_deadline(rec, rec.started + effective_run_timeout(rec.spec));
        hold_attempt(rec, rec.result.node, entry.device_index, t + hold_for);
        continue;
      }
      interrupted.push_back(&rec);
      continue;
    }
    ++queued;
    if (!rec.spec.audio_url.empty() && mover) {
      start_fetch(rec);
    } else {
      enqueue(rec, false);
      // A job never run waits from its first acceptance; one queued again
      // after a failed attempt from now (when it was queued again is not
      // journaled).
      if (rec.result.attempts == 0)
        rec.queued_since = accepted;
    }
  }
  // Oldest first at the front of the queue, as retries go.
  for (auto i = interrupted.rbegin(); i != interrupted.rend(); ++i) {
    auto& rec = **i;
    ++requeued;
    rec.device = -1;
    retry_or_fail(
      rec,
      make_error(errc::node_lost, "the head restarted while attempt "
                                    + std::to_string(rec.result.attempts)
                                    + " ran on " + rec.result.device
                                    + " of node " + rec.result.node),
      true);
  }
  if (!contents.jobs.empty())
    spdlog::info("journal {}: {} queued job(s) queued again, {} interrupted "
                 "attempt(s) queued again or failed, {} attempt(s) left to "
                 "their worker nodes for up to {}, {} result(s) kept",
                 journal->path(), queued, requeued, held,
                 runtime::format_duration(hold_for), finished);
  dispatch();
}

} // namespace vidnode::actors
