#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timestamp.hpp>

namespace vidnode::runtime {

/// Identifies one accepted job on a node. Ids are assigned by the admission
/// actor, start at 1 and are never reused while the node runs.
struct job_id {
  /// The number users see (`vidctl status 17`); 0 means "no job".
  uint64_t value = 0;

  friend bool operator==(job_id x, job_id y) noexcept {
    return x.value == y.value;
  }
  friend bool operator!=(job_id x, job_id y) noexcept {
    return x.value != y.value;
  }
  friend bool operator<(job_id x, job_id y) noexcept {
    return x.value < y.value;
  }
};

/// Renders an id as its decimal number.
std::string to_string(job_id id);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_id& x) {
  return f(caf::meta::type_name("vidnode::job_id"), x.value);
}

/// The life of a job: queued -> running -> one terminal state. A job that is
/// retried goes from running back to queued.
enum class job_state : uint8_t {
  queued,
  running,
  succeeded,
  failed,
  cancelled,
  timed_out,
};

/// "queued", "running", "succeeded", "failed", "cancelled" or "timed_out".
const char* to_string(job_state state) noexcept;

/// True for succeeded, failed, cancelled and timed_out.
constexpr bool is_terminal(job_state state) noexcept {
  return state >= job_state::succeeded;
}

/// What a client asks for. Every field has a default, so `job_spec{}` is a
/// valid request for the default model; see validation.hpp for the bounds.
struct job_spec {
  /// The pipeline to run ("sim" on every node).
  std::string model = "sim";
  /// The text prompt.
  std::string prompt;
  /// Frame size in pixels (multiples of 8).
  int32_t width = 512;
  int32_t height = 512;
  /// Number of frames and their rate.
  int32_t frames = 16;
  int32_t fps = 8;
  /// Denoising steps; 0 runs no step (the pipeline only prepares and decodes).
  int32_t steps = 20;
  /// Seed of the initial noise: the same seed gives the same output.
  uint64_t seed = 0;
  /// 0 (lowest) to 9 (highest); higher runs first.
  int32_t priority = 5;
  /// Longest time in the queue; zero means the node's default. A request may
  /// only shorten the node's limit.
  caf::timespan queue_timeout{0};
  /// Longest time running (per attempt); zero means the node's default. A
  /// request may only shorten the node's limit.
  caf::timespan run_timeout{0};
  /// When not empty, a second submission with the same key (while the first
  /// job's record is kept) returns the first job's id instead of a new job.
  std::string idempotency_key;
  /// Pipeline options, validated by the pipeline (see model_catalog.hpp).
  std::map<std::string, std::string> options;
  /// An audio track to mux into the video (http, https or file URL); it is
  /// fetched while the job waits, never on a device.
  std::string audio_url;
  /// Where to PUT the finished video (a presigned object-store URL); the
  /// result's output is then this URL.
  std::string output_url;
  /// Where to POST the job's result as JSON when it ends (any end).
  std::string webhook_url;
  /// Devices the job runs on at once (a gang: one rank per device, 1 to
  /// job_limits::max_ranks). Admission places all of them or none; the
  /// model must support it (gpu::pipeline::begin_rank).
  int32_t ranks = 1;
  /// The HTTP gateway endpoint the job was submitted through
  /// (`/v2/{endpoint}/`); empty for other clients.
  std::string endpoint;

  friend bool operator==(const job_spec& x, const job_spec& y) noexcept;
  friend bool operator!=(const job_spec& x, const job_spec& y) noexcept {
    return !(x == y);
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_spec& x) {
  return f(caf::meta::type_name("vidnode::job_spec"), x.model, x.prompt,
           x.width, x.height, x.frames, x.fps, x.steps, x.seed, x.priority,
           x.queue_timeout, x.run_timeout, x.idempotency_key, x.options,
           x.audio_url, x.output_url, x.webhook_url, x.ranks, x.endpoint);
}

/// Where a job stands, or how it ended. Returned by submit-and-wait, status,
/// wait, cancel and list.
struct job_result {
  job_id id;
  job_state state = job_state::queued;
  /// Why the job did not succeed (none while queued, running or succeeded).
  caf::error error;
  /// Where the output is (a path or URL); empty until it succeeded.
  std::string output;
  /// The node whose output directory holds `output` when it is a video file
  /// (a path on that node, which `vidctl fetch` downloads through the head);
  /// empty when the output is a URL or no file.
  std::string output_node;
  /// The model and priority the job was submitted with.
  std::string model;
  int32_t priority = 0;
  /// The device and node of the latest attempt ("sim:0", "host-a").
  std::string device;
  std::string node;
  /// How many times the job was sent to a device.
  int32_t attempts = 0;
  /// Progress of the current or last attempt: step of steps.
  int32_t step = 0;
  int32_t steps = 0;
  /// Device memory reserved for the current or last attempt, in bytes.
  uint64_t reserved_bytes = 0;
  /// Wall-clock times; the epoch (zero) when not reached yet.
  caf::timestamp accepted_at;
  caf::timestamp started_at;
  /// When the device was done with the job (its output may still have been
  /// encoding or uploading until finished_at).
  caf::timestamp computed_at;
  caf::timestamp finished_at;
  /// Total time spent queued (over all attempts) and running (last attempt).
  caf::timespan queue_time{0};
  caf::timespan run_time{0};
  /// The HTTP gateway endpoint the job was submitted through
  /// (job_spec::endpoint).
  std::string endpoint;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_result& x) {
  return f(caf::meta::type_name("vidnode::job_result"), x.id, x.state, x.error,
           x.output, x.output_node, x.model, x.priority, x.device, x.node,
           x.attempts, x.step, x.steps, x.reserved_bytes, x.accepted_at,
           x.started_at, x.computed_at, x.finished_at, x.queue_time, x.run_time,
           x.endpoint);
}

/// What a subscriber receives: every state change and every step of
/// progress of one job. The last event of a job has a terminal state.
struct job_event {
  job_id id;
  job_state state = job_state::queued;
  /// Progress: step i of n (0 of n when the attempt starts).
  int32_t step = 0;
  int32_t steps = 0;
  /// Attempt number (1 for the first run).
  int32_t attempt = 0;
  /// The device of the current attempt, if any.
  std::string device;
  /// Why the job left a state, if it failed or is retried.
  caf::error error;
  /// When it happened (wall clock).
  caf::timestamp at;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_event& x) {
  return f(caf::meta::type_name("vidnode::job_event"), x.id, x.state, x.step,
           x.steps, x.attempt, x.device, x.error, x.at);
}

/// One model in a device's pipeline cache.
struct model_load_info {
  std::string model;
  /// How many times this device loaded it (a restart after a crash empties
  /// the cache; one after an out-of-memory error keeps it).
  int32_t loads = 0;
  /// Whether it is in the cache now.
  bool loaded = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, model_load_info& x) {
  return f(caf::meta::type_name("vidnode::model_load_info"), x.model, x.loads,
           x.loaded);
}

/// The state of one device as `vidctl nodes` shows it.
struct device_status {
  std::string node;
  /// "sim:0", "cpu:1", "cuda:0".
  std::string device;
  /// "idle", "busy", "restarting" or "quarantined".
  std::string state;
  int32_t slots_in_use = 0;
  int32_t slots = 0;
  uint64_t memory_bytes = 0;
  uint64_t memory_reserved = 0;
  std::vector<model_load_info> models;
  std::vector<job_id> running;
  /// Restarts of the device's worker since the node started.
  int32_t restarts = 0;
  /// Why the worker last died (empty if it never did).
  std::string last_error;
  /// The models the device's node serves, as model patterns
  /// (model_pattern.hpp): only jobs of these models are placed on it.
  std::vector<std::string> served_models;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, device_status& x) {
  return f(caf::meta::type_name("vidnode::device_status"), x.node, x.device,
           x.state, x.slots_in_use, x.slots, x.memory_bytes, x.memory_reserved,
           x.models, x.running, x.restarts, x.last_error, x.served_models);
}

/// Which jobs `list` returns: queued and running jobs first (oldest first),
/// then finished jobs (newest first), at most `limit` in all.
struct list_query {
  /// Include finished jobs whose records are still kept.
  bool include_finished = true;
  /// Most jobs returned; 0 means no limit.
  uint32_t limit = 100;
  /// When not empty, only the jobs submitted through this HTTP gateway
  /// endpoint (job_spec::endpoint).
  std::string endpoint;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, list_query& x) {
  return f(caf::meta::type_name("vidnode::list_query"), x.include_finished,
           x.limit, x.endpoint);
}

} // namespace vidnode::runtime

namespace std {
template <>
struct hash<vidnode::runtime::job_id> {
  size_t operator()(vidnode::runtime::job_id x) const noexcept {
    return std::hash<uint64_t>{}(x.value);
  }
};
} // namespace std
