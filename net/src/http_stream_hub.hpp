#pragma once

/// @file
/// The chunks of Runpod's `stream/{id}`: every step of progress of a job
/// ({"output": {"step": i, "steps": n}}) and, once it succeeded, its output
/// ({"output": {"video_url": ...}}), each handed to exactly one stream call.
/// The gateway subscribes to a job's events when it submits it (or when a
/// stream call asks for a job it does not follow yet); an observer actor
/// feeds them in here, and stream calls wait here for the next chunk.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_system.hpp>
#include <nlohmann/json.hpp>

#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::net::detail {

/// What a stream call takes: the job's Runpod status and the chunks not
/// handed out before.
struct stream_take {
  std::string status;
  std::vector<nlohmann::json> chunks;
};

/// The chunks of the jobs the gateway follows.
///
/// Thread-safety: every member may be called from any thread.
class stream_hub {
public:
  /// Follows jobs of `admission`; `output_of` builds a succeeded job's
  /// final chunk's `output`.
  stream_hub(
    caf::actor_system& sys, runtime::admission_actor admission,
    std::function<nlohmann::json(const runtime::job_result&)> output_of);

  /// Stops following (see stop).
  ~stream_hub();

  stream_hub(const stream_hub&) = delete;
  stream_hub& operator=(const stream_hub&) = delete;

  /// Starts following job `id`, which was just submitted: its events from
  /// now on become chunks. Does not wait for the subscription.
  void follow(runtime::job_id id);

  /// Follows job `id` afresh after it was queued again (retry): what was
  /// left of its earlier run is forgotten.
  void refollow(runtime::job_id id);

  /// Takes the chunks of job `id` not taken before, waiting up to `wait`
  /// for one when there is none and the job has not ended. A job not
  /// followed yet is followed first (its earlier steps are not known).
  /// Errors: unknown_job when admission does not know the job.
  caf::expected<stream_take> take(runtime::job_id id,
                                  std::chrono::milliseconds wait);

  /// Wakes every waiting take (they answer with what they have) and makes
  /// later takes answer at once.
  void stop();

  /// Jobs followed now.
  size_t size() const;

  /// How long an ended job's chunks are kept for a stream call to take.
  static constexpr std::chrono::minutes kept_after_end{30};

  /// The most jobs followed at once; the oldest ended ones are forgotten
  /// first beyond it.
  static constexpr size_t max_followed = 100000;

  /// Called by the observer actor: an event of a followed job, the
  /// subscription's answer, the result of a job that ended, or a
  /// subscription that failed.
  void on_event(const runtime::job_event& event);
  void on_subscribed(const runtime::job_result& snapshot);
  void on_result(const runtime::job_result& result);
  void on_unknown(runtime::job_id id, const caf::error& err);

private:
  struct followed_job {
    runtime::job_state state = runtime::job_state::queued;
    /// Whether the final chunk is still to come (the job ended, its result
    /// is being asked for).
    bool awaiting_result = false;
    bool subscribed = false;
    caf::error failure;
    int32_t attempt = 0;
    int32_t step = -1;
    std::deque<nlohmann::json> pending;
    std::chrono::steady_clock::time_point ended_at{};
  };

  followed_job& entry(runtime::job_id id);
  void forget_old(std::chrono::steady_clock::time_point now);

  runtime::admission_actor admission_;
  std::function<nlohmann::json(const runtime::job_result&)> output_of_;
  caf::actor observer_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_map<runtime::job_id, followed_job> jobs_;
  bool stopped_ = false;
};

} // namespace vidnode::net::detail
