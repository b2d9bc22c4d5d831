#pragma once

/// @file
/// Admission's table of accepted jobs: their records, the clients waiting on
/// them, idempotency keys, and how long finished results are kept. Holds no
/// policy: admission decides when a job runs and how it ends.

#include <cstdint>
#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/typed_response_promise.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/transfers.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::actors {

/// One rank of a gang's running attempt (job_spec::ranks > 1).
struct gang_rank {
  /// Ledger slot of its device; -1 once its device is released.
  int32_t device = -1;
  /// Its attempt's lease (job_ticket::lease).
  uint64_t lease = 0;
  /// Memory reserved on its device (0 once its compute is done).
  uint64_t reserved = 0;
  /// Steps it reported finished.
  int32_t steps = 0;
  /// It reported success.
  bool done = false;
  /// Where its attempt's time went, once it reported success (only rank
  /// 0's is told to the node_observer).
  job_phases phases;
};

/// What a client's retry of an ended job changes in its record besides
/// resetting its result, kept until the retry is journaled (admission gives
/// it back when the journal refuses the retry).
struct retried_end {
  runtime::job_result result;
  uint64_t seq = 0;
  caf::actor_clock::time_point accepted;
  int32_t charged_failures = 0;
  std::vector<int32_t> crashed_on;
};

/// Admission's record of one accepted job.
struct job_record {
  using time_point = caf::actor_clock::time_point;
  using result_promise = caf::typed_response_promise<runtime::job_result>;

  /// What clients see; `node` is filled in on the way out.
  runtime::job_result result;
  runtime::job_spec spec;
  /// Acceptance order.
  uint64_t seq = 0;
  /// Identifies the job's live queue entry (job_queue::entry::ticket).
  uint64_t queue_ticket = 0;
  /// Identifies the running attempt (job_ticket::lease).
  uint64_t lease = 0;
  /// Jobs behind this one that started first while it waited for memory.
  int32_t bypassed = 0;
  /// Ledger slot (device_ledger) of the running attempt, or -1. A gang's:
  /// its rank 0's.
  int32_t device = -1;
  /// The ranks of a gang's running attempt, rank 0 first (whose slot and
  /// lease are also `device` and `lease`): all of them hold a slot of
  /// their own device, or none does. Empty for a job of one device, and
  /// while no attempt runs.
  std::vector<gang_rank> gang;
  /// Rank 0's output and peak memory once it reported success, kept until
  /// every rank did.
  std::string gang_output;
  uint64_t gang_peak_bytes = 0;
  /// The step whose stragglers a timer watches (-1: none yet).
  int32_t gang_watched_step = -1;
  /// The running attempt is held by worker node `held_by` (device index
  /// `held_index` there), which the head cannot reach: lost, or not back
  /// since the head restarted. The attempt keeps its lease but holds no
  /// ledger slot (`device` is -1) until the node rejoins with it or
  /// `hold_until` passes (admission_state::holds). Empty otherwise.
  std::string held_by;
  int32_t held_index = -1;
  time_point hold_until = time_point::max();
  /// Memory reserved on `device` while running.
  uint64_t reserved_bytes = 0;
  /// What the job's model declares as its peak memory (made once at
  /// accept); the learned figure for its shape takes precedence.
  uint64_t declared_bytes = 0;
  /// The key of the job's learned memory estimate (model and shape).
  std::string shape_key;
  /// The job's model (the catalog outlives every record).
  const gpu::model_factory* factory = nullptr;
  /// Failures charged to the job itself (its own OOMs, crashes of its
  /// device, the loss of its node): when they reach max_attempts it fails.
  int32_t charged_failures = 0;
  time_point accepted;
  time_point queued_since;
  time_point started;
  /// The pending queue or run deadline (time_point::max() if none).
  time_point deadline = time_point::max();
  /// The job's audio is being fetched: it is queued (for clients) but not
  /// yet in the queue.
  bool awaiting_inputs = false;
  /// No device in service can run the job (no node that is up serves its
  /// model on a device of a kind it runs on): it is queued (for clients)
  /// but waits outside the queue, holding up no job behind it, until such
  /// a device joins.
  bool parked = false;
  /// The job's video is being uploaded: it is running, on no device.
  bool uploading = false;
  /// The job's acceptance is being journaled: it is queued (for clients)
  /// but enters the queue only once its record is durable.
  bool awaiting_journal = false;
  /// Whether a journal commit holding the job succeeded (always false
  /// without a journal).
  bool durable = false;
  /// The job has ended but its end is not journaled yet: its waiters and
  /// observers stay until it is (admission_state::tell_end).
  bool end_pending = false;
  /// Ends the job's fetch or upload in flight, if any.
  std::shared_ptr<abort_signal> transfer;
  /// The fetched audio track (a local path), if any.
  std::string audio_path;
  /// The written video while it is uploaded.
  std::string video_path;
  /// Ledger slots whose worker died under this job, charged to the job: if
  /// the job then succeeds on another device, they were at fault instead.
  std::vector<int32_t> crashed_on;
  /// Bounded and unbounded waiters (wait, execute), each with its number.
  std::vector<std::pair<uint64_t, result_promise>> waiters;
  /// Subscribers to the job's events.
  std::vector<runtime::job_observer_actor> observers;
  /// The job's end before a client retried it, while the retry is not
  /// journaled yet.
  std::optional<retried_end> before_retry;

  /// Whether the job has ended.
  bool ended() const noexcept {
    return runtime::is_terminal(result.state);
  }
};

/// The records of every accepted job that is live or whose result is still
/// kept. Pointers and references to a record stay valid until it is
/// forgotten (unordered_map nodes never move).
///
/// Retention: finished results are kept for `result_ttl` and at most
/// `max_results` of them; the oldest go first.
class job_table {
public:
  using time_point = caf::actor_clock::time_point;

  /// How long finished results are kept.
  struct retention {
    caf::timespan result_ttl = std::chrono::hours{1};
    size_t max_results = 10000;
  };

  explicit job_table(retention limits);

  /// The record of `id`, or null if it was never accepted or is forgotten.
  job_record* find(runtime::job_id id);

  /// The record of `id`, or null.
  const job_record* find(runtime::job_id id) const;

  /// The job accepted under idempotency key `key`, or null.
  job_record* find_by_key(const std::string& key);

  /// Adds a job with the next id and acceptance number, queued as of `t`,
  /// and records its idempotency key if it has one.
  job_record& add(runtime::job_spec spec, time_point t);

  /// Adds a job accepted by an earlier run of the node, under its own id,
  /// with the next acceptance number (restore jobs in acceptance order).
  /// Its idempotency key is recorded; its result is the caller's to fill.
  job_record& restore(runtime::job_id id, runtime::job_spec spec,
                      time_point accepted);

  /// Makes the next id at least `last_id` + 1 (ids of forgotten jobs are
  /// never given again).
  void skip_ids(uint64_t last_id) noexcept {
    next_id_ = std::max(next_id_, last_id);
  }

  /// Forgets a job that never counted as accepted (its acceptance could
  /// not be journaled); drops its idempotency key.
  void erase(runtime::job_id id);

  /// Called with the id of every record the table forgets (expiry or
  /// max_results), e.g. to delete it from the journal.
  void on_forget(std::function<void(runtime::job_id)> f) {
    on_forget_ = std::move(f);
  }

  /// A fresh number for a queue entry or attempt order (shared with the
  /// acceptance numbers, so it is unique among both).
  uint64_t next_ticket() noexcept {
    return ++next_seq_;
  }

  /// Records that `rec` ended at `t`. Drops the oldest finished results
  /// beyond max_results (never `rec` itself). Returns when the oldest kept
  /// result expires if this is the only one kept (the caller arms a timer
  /// for it), else nothing.
  std::optional<time_point> retire(const job_record& rec, time_point t);

  /// Takes ended `rec` out of the finished results and makes it a job
  /// accepted at `t`: the next acceptance number, `accepted` and
  /// `queued_since` at `t` (a client's retry). Its result is the caller's
  /// to reset.
  void reopen(job_record& rec, time_point t);

  /// Forgets the results older than result_ttl at `t`; returns when the next
  /// one expires (time_point::max() if none is kept).
  time_point expire(time_point t);

  /// Adds a waiter to `rec`; returns its number (for remove_waiter).
  uint64_t add_waiter(job_record& rec, job_record::result_promise promise);

  /// Answers waiter `waiter` of `rec` with `result` and removes it; false if
  /// it is gone already.
  bool answer_waiter(job_record& rec, uint64_t waiter,
                     const runtime::job_result& result);

  /// Answers every waiter of `rec` with `result`.
  static void answer_waiters(job_record& rec,
                             const runtime::job_result& result);

  /// The live jobs in acceptance order, then (with `query.include_finished`)
  /// the ended ones, newest first; at most `query.limit` (0: all), only
  /// those of `query.endpoint` when it is not empty.
  std::vector<const job_record*>
  listing(const runtime::list_query& query) const;

  /// Calls `f(job_record&)` for every record. `f` may end jobs (retire,
  /// which may forget other, ended records) but must not add any.
  template <class F>
  void for_each(F&& f) {
    for (auto& entry : records_)
      f(entry.second);
  }

  /// Records kept, live and ended.
  size_t size() const noexcept {
    return records_.size();
  }

private:
  void forget_oldest();

  retention limits_;
  std::unordered_map<runtime::job_id, job_record> records_;
  std::unordered_map<std::string, runtime::job_id> idempotency_keys_;
  /// Ended jobs in the order they ended, for expiry.
  std::deque<std::pair<time_point, runtime::job_id>> finished_;
  uint64_t next_id_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t next_waiter_ = 0;
  std::function<void(runtime::job_id)> on_forget_;
};

} // namespace vidnode::actors
