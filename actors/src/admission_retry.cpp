/// @file
/// Admission: a client's retry of a failed or timed-out job, queued again
/// under its id (see admission_state.hpp).

#include "admission_state.hpp"
#include "job_log.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::actors {

using runtime::errc;
using runtime::job_state;
using runtime::make_error;

caf::error admission_state::retry(job_record& rec) {
  auto& r = rec.result;
  if (rec.end_pending
      || (r.state != job_state::failed && r.state != job_state::timed_out))
    return make_error(errc::invalid_request,
                      "job " + runtime::to_string(r.id) + " is "
                        + runtime::to_string(snapshot(rec).state)
                        + ": only failed or timed-out jobs can be retried");
  const gpu::model_factory* factory = nullptr;
  uint64_t declared = 0;
  std::string shape_key;
  if (auto err = check(rec.spec, factory, declared, shape_key))
    return err;
  auto t = now();
  rec.before_retry =
    retried_end{r, rec.seq, rec.accepted, rec.charged_failures, rec.crashed_on};
  jobs->reopen(rec, t);
  rec.factory = factory;
  rec.declared_bytes = declared;
  rec.shape_key = std::move(shape_key);
  rec.charged_failures = 0;
  rec.crashed_on.clear();
  rec.bypassed = 0;
  rec.video_path.clear();
  r.state = job_state::queued;
  r.error = caf::error{};
  r.output.clear();
  r.output_node.clear();
  r.device.clear();
  r.node.clear();
  r.attempts = 0;
  r.step = 0;
  r.steps = 0;
  r.reserved_bytes = 0;
  r.accepted_at = wall(t);
  r.started_at = caf::timestamp{};
  r.computed_at = caf::timestamp{};
  r.finished_at = caf::timestamp{};
  r.queue_time = caf::timespan{0};
  r.run_time = caf::timespan{0};
  // As a new job: it enters the queue once its record is durable.
  rec.awaiting_journal = true;
  ++awaiting_journal;
  journal_job(rec);
  log_job(runtime::log_level::info, r, "retried by a client");
  after_durable([this, id = r.id](const caf::error&) { journaled_accept(id); });
  return caf::none;
}

void admission_state::undo_retry(job_record& rec, const caf::error& err) {
  auto before = std::move(*rec.before_retry);
  rec.before_retry.reset();
  leave_queue(rec);
  clear_deadline(rec);
  rec.result = std::move(before.result);
  rec.seq = before.seq;
  rec.accepted = before.accepted;
  rec.charged_failures = before.charged_failures;
  rec.crashed_on = std::move(before.crashed_on);
  log_job(runtime::log_level::warn, rec.result,
          "not retried: the retry could not be journaled", err);
  // Whoever subscribed or waited since the retry hears that it ended as
  // before.
  emit(rec);
  rec.observers.clear();
  job_table::answer_waiters(rec, snapshot(rec));
  if (auto expiry = jobs->retire(rec, now()))
    arm_tick(*expiry);
  journal_job(rec);
}

} // namespace vidnode::actors
