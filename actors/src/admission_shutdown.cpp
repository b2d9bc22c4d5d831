/// @file
/// Admission: stopping the node (see admission_state.hpp).

#include <algorithm>

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

bool admission_state::past_compute(const job_record& rec) const {
  if (rec.uploading)
    return true;
  auto device = devices.find(rec.device);
  if (device == nullptr)
    return false;
  const auto& finishing = device->finishing;
  return std::find(finishing.begin(), finishing.end(), rec.result.id)
         != finishing.end();
}

void admission_state::shutdown(
  caf::typed_response_promise<caf::ok_atom> promise) {
  if (stopped) {
    promise.deliver(caf::ok_atom::value);
    return;
  }
  shutdown_requests.push_back(std::move(promise));
  if (shutting_down)
    return;
  shutting_down = true;
  grace_end = now() + settings.shutdown_grace;
  // With a journal and a lease grace, an attempt on a worker node runs on
  // there: the restarted head takes it over when the node rejoins.
  auto leave_to_nodes = journal && settings.lease_grace.count() > 0;
  jobs->for_each([&](job_record& rec) {
    if (rec.ended())
      return;
    if (leave_to_nodes && rec.result.state == job_state::running
        && !rec.uploading && runs_on_worker_node(rec))
      return;
    if (rec.result.state == job_state::running && past_compute(rec)) {
      in_grace.insert(rec.result.id);
      return;
    }
    if (rec.result.state == job_state::queued)
      leave_queue(rec);
    else
      stop_attempt(rec);
    if (journal) {
      keep_for_next_start(rec);
      return;
    }
    finalize(
      rec, job_state::cancelled,
      make_error(errc::cancelled, "node " + node_name + " is shutting down"));
  });
  if (in_grace.empty())
    finish_shutdown_if_done();
  else
    self->delayed_send(self, settings.shutdown_grace, grace_atom::value);
}

void admission_state::keep_for_next_start(job_record& rec) {
  clear_deadline(rec);
  if (rec.result.state == job_state::running) {
    rec.result.run_time =
      std::chrono::duration_cast<caf::timespan>(now() - rec.started);
    rec.result.state = job_state::queued;
    rec.queued_since = now();
  }
  journal_job(rec);
  log_job(runtime::log_level::info, rec.result, "kept for the next start");
}

void admission_state::grace_over() {
  auto ids = std::vector<job_id>(in_grace.begin(), in_grace.end());
  for (auto id : ids) {
    auto& rec = *jobs->find(id);
    stop_attempt(rec);
    finalize(rec, job_state::cancelled,
             make_error(errc::cancelled,
                        "node " + node_name + " is shutting down and its "
                          + runtime::format_duration(settings.shutdown_grace)
                          + " grace period ended"));
  }
}

void admission_state::finish_shutdown_if_done() {
  // The ends of the jobs just cancelled are told once they are journaled.
  if (!in_grace.empty() || draining || shutdown_requests.empty()
      || !journal_idle())
    return;
  draining = true;
  auto answer = [this] {
    stopped = true;
    fail_all_reads();
    for (auto& request : shutdown_requests)
      request.deliver(caf::ok_atom::value);
    shutdown_requests.clear();
  };
  if (!webhooks) {
    answer();
    return;
  }
  // Jobs cancelled when the grace period ended still get a try of their
  // webhook.
  auto left = std::chrono::duration_cast<caf::timespan>(grace_end - now());
  self
    ->request(webhooks, caf::infinite, drain_atom::value,
              std::max(left, last_webhooks_window))
    .then([answer](caf::ok_atom) { answer(); },
          [answer](caf::error&) { answer(); });
}

} // namespace vidnode::actors
