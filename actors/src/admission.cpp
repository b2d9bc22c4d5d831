#include "vidnode/actors/admission.hpp"

#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/actors/job_queue.hpp"
#include "vidnode/actors/memory_estimates.hpp"
#include "vidnode/actors/placement.hpp"
#include "vidnode/actors/webhook_sender.hpp"
#include "vidnode/gpu/video.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"
#include "vidnode/runtime/validation.hpp"

#include "spawn_transfer.hpp"

namespace vidnode::actors {

namespace {

using runtime::errc;
using runtime::job_id;
using runtime::job_result;
using runtime::job_spec;
using runtime::job_state;
using runtime::make_error;
using time_point = caf::actor_clock::time_point;
using result_promise = caf::typed_response_promise<job_result>;

/// When the node stops, webhooks get what is left of the grace period, but
/// at least this long.
constexpr caf::timespan last_webhooks_window = std::chrono::seconds{5};

/// Admission's record of one accepted job.
struct job_record {
  /// What clients see; `node` is filled in on the way out.
  job_result result;
  job_spec spec;
  /// Acceptance order.
  uint64_t seq = 0;
  /// Identifies the job's live queue entry (job_queue::entry::ticket).
  uint64_t queue_ticket = 0;
  /// Identifies the running attempt (job_ticket::lease).
  uint64_t lease = 0;
  /// Jobs behind this one that started first while it waited for memory.
  int32_t bypassed = 0;
  /// Device of the running attempt, or -1.
  int32_t device = -1;
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
  /// device): when they reach max_attempts the job fails.
  int32_t charged_failures = 0;
  time_point accepted;
  time_point queued_since;
  time_point started;
  /// The pending queue or run deadline (time_point::max() if none).
  time_point deadline = time_point::max();
  /// The job's audio is being fetched: it is queued (for clients) but not
  /// yet in the queue.
  bool awaiting_inputs = false;
  /// The job's video is being uploaded: it is running, on no device.
  bool uploading = false;
  /// Ends the job's fetch or upload in flight, if any.
  std::shared_ptr<abort_signal> transfer;
  /// The fetched audio track (a local path), if any.
  std::string audio_path;
  /// The written video while it is uploaded.
  std::string video_path;
  /// Devices whose worker died under this job, charged to the job: if the
  /// job then succeeds on another device, they were at fault instead.
  std::vector<int32_t> crashed_on;
  /// Bounded and unbounded waiters (wait, execute).
  std::vector<std::pair<uint64_t, result_promise>> waiters;
  std::vector<runtime::job_observer_actor> observers;
};

/// Admission's view of one device.
struct device_slot {
  runtime::device_info info;
  /// info.name(), made once.
  std::string name;
  device_worker_actor worker;
  enum class health {
    starting,
    up,
    restarting,
    quarantined
  } state = health::starting;
  int32_t restarts = 0;
  std::string last_error;
  /// Crashes charged to the jobs that ran here, since the device was last
  /// quarantined: a device is only blamed for a job that crashed here and
  /// succeeded elsewhere if it crashes clearly more jobs than that other
  /// device.
  int32_t job_crashes = 0;
  /// Why the device was last quarantined (for last_error once probed).
  std::string quarantine_reason;
  std::vector<job_id> running;
  /// Jobs whose compute is done on this device and whose output is being
  /// written by the worker (no slot, no memory): lost if the worker dies.
  std::vector<job_id> finishing;
  uint64_t reserved = 0;
  /// Device memory the loaded models hold (out of jobs' reach).
  uint64_t resident = 0;
  /// Models the worker loaded (or is loading) and the count of loads.
  std::vector<runtime::model_load_info> models;
  /// The supervisor that attached the worker; told when a job proves the
  /// device at fault.
  node_supervisor_actor supervisor;
  /// The job whose own failure (out of memory, a crash) ends the current
  /// worker, reported by the worker before it exits; 0 if none.
  job_id culprit;
  /// The worker reported that the device itself failed (it exits next).
  bool failed_itself = false;

  /// Memory jobs may reserve: the device's, less its loaded models'.
  uint64_t budget() const {
    return info.memory_bytes > resident ? info.memory_bytes - resident : 0;
  }

  runtime::model_load_info* find_model(const std::string& model) {
    for (auto& x : models)
      if (x.model == model)
        return &x;
    return nullptr;
  }
};

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0')
    return "localhost";
  return buf;
}

// -- transfer tasks: each runs on an actor of its own and ends ------------

/// Fetches the audio track `url` to `path` and checks that it can be muxed,
/// so that a job with unusable audio fails before it is queued for a device.
void fetch_task(caf::event_based_actor* self, std::shared_ptr<transfers> mover,
                admission_control_actor admission, job_id id, std::string url,
                std::string path, std::shared_ptr<abort_signal> cancel) {
  auto fetched = mover->fetch(url, path, *cancel);
  auto unusable = fetched ? gpu::probe_audio(path) : std::nullopt;
  if (unusable) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    fetched =
      make_error(errc::invalid_request, "audio_url: " + url + ": " + *unusable);
  }
  if (fetched)
    self->send(admission, fetched_atom::value, id, std::move(path),
               caf::error{});
  else
    self->send(admission, fetched_atom::value, id, std::string{},
               std::move(fetched.error()));
  self->quit();
}

void upload_task(caf::event_based_actor* self, std::shared_ptr<transfers> mover,
                 admission_control_actor admission, job_id id, std::string path,
                 std::string url, std::shared_ptr<abort_signal> cancel) {
  self->send(admission, uploaded_atom::value, id,
             mover->upload(path, url, *cancel));
  self->quit();
}

struct admission_state {
  using pointer = admission_control_actor::stateful_pointer<admission_state>;

  static inline const char* name = "vidnode.admission";

  explicit admission_state(pointer self) : self(self) {}

  pointer self;
  runtime::node_settings settings;
  std::shared_ptr<const gpu::model_catalog> catalog;
  std::shared_ptr<transfers> mover;
  /// Delivers webhooks (null without a mover).
  webhook_sender_actor webhooks;
  /// Jobs whose inputs are being fetched (they count as queued).
  size_t awaiting_inputs = 0;
  std::string node_name;
  std::unique_ptr<job_queue> queue;
  std::unique_ptr<memory_estimates> estimates;
  std::unordered_map<job_id, job_record> jobs;
  std::unordered_map<std::string, job_id> idempotency_keys;
  std::vector<device_slot> devices;
  /// Pending deadlines: (when, job).
  std::set<std::pair<time_point, uint64_t>> deadlines;
  /// Earliest tick already scheduled (time_point::max() if none).
  time_point next_tick = time_point::max();
  /// Finished jobs in the order they finished, for expiry.
  std::deque<std::pair<time_point, job_id>> finished;
  /// Scratch space of dispatch, kept to avoid an allocation per job.
  std::vector<placement_candidate> candidates;
  /// Jobs behind a head that waits for memory (scratch space for backfill).
  std::vector<job_id> behind;
  /// Queued jobs looked at behind a head that waits for memory.
  static constexpr size_t backfill_scan_limit = 64;
  /// Jobs queued since the last dispatch(), which sets their deadlines.
  std::vector<job_id> undated;
  uint64_t next_id = 0;
  uint64_t next_seq = 0;
  uint64_t next_lease = 0;
  uint64_t next_waiter = 0;
  bool shutting_down = false;
  /// While the node stops: jobs given the grace period to finish writing
  /// or uploading their video.
  std::set<job_id> in_grace;
  /// When the grace period ends.
  time_point grace_end;
  /// Requests to shut down, answered once the jobs in grace ended and the
  /// webhooks were drained.
  std::vector<caf::typed_response_promise<caf::ok_atom>> shutdown_requests;
  bool draining = false;
  bool stopped = false;
  /// Maps the actor clock to wall-clock time.
  time_point mono_epoch;
  caf::timestamp wall_epoch;

  // -- time --------------------------------------------------------------

  time_point now() const {
    return self->clock().now();
  }

  caf::timestamp wall(time_point t) const {
    return wall_epoch
           + std::chrono::duration_cast<caf::timespan>(t - mono_epoch);
  }

  // -- snapshots and events ------------------------------------------------

  job_result snapshot(const job_record& rec) const {
    auto result = rec.result;
    result.node = node_name;
    if (rec.result.state == job_state::running)
      result.run_time =
        std::chrono::duration_cast<caf::timespan>(now() - rec.started);
    else if (rec.result.state == job_state::queued)
      result.queue_time +=
        std::chrono::duration_cast<caf::timespan>(now() - rec.queued_since);
    return result;
  }

  void emit(job_record& rec, caf::error error = {}) {
    if (rec.observers.empty())
      return;
    runtime::job_event event;
    event.id = rec.result.id;
    event.state = rec.result.state;
    event.step = rec.result.step;
    event.steps = rec.result.steps;
    event.attempt = rec.result.attempts;
    event.device = rec.result.device;
    event.error = error ? std::move(error) : rec.result.error;
    event.at = wall(now());
    // Anonymous: subscribers may be remote and must not learn admission's
    // address (only the gateway is published; net/server.hpp).
    for (auto& observer : rec.observers)
      caf::anon_send(observer, event);
  }

  // -- deadlines -----------------------------------------------------------

  void set_deadline(job_record& rec, time_point when) {
    clear_deadline(rec);
    rec.deadline = when;
    deadlines.emplace(when, rec.result.id.value);
    arm_tick(when);
  }

  /// Makes sure a tick arrives no later than `when`.
  void arm_tick(time_point when) {
    if (when >= next_tick)
      return;
    next_tick = when;
    auto delay = when - now();
    if (delay.count() < 0)
      delay = delay.zero();
    self->delayed_send(self, delay, tick_atom::value);
  }

  void clear_deadline(job_record& rec) {
    if (rec.deadline != time_point::max()) {
      deadlines.erase({rec.deadline, rec.result.id.value});
      rec.deadline = time_point::max();
    }
  }

  void on_tick() {
    auto t = now();
    if (next_tick <= t)
      next_tick = time_point::max();
    while (!deadlines.empty() && deadlines.begin()->first <= t) {
      auto id = job_id{deadlines.begin()->second};
      deadlines.erase(deadlines.begin());
      auto i = jobs.find(id);
      if (i == jobs.end())
        continue;
      auto& rec = i->second;
      rec.deadline = time_point::max();
      if (rec.result.state == job_state::queued) {
        auto fetching = rec.awaiting_inputs;
        leave_queue(rec);
        auto limit = effective_queue_timeout(rec.spec);
        finalize(rec, job_state::timed_out,
                 make_error(errc::queue_timeout,
                            "waited " + runtime::format_duration(limit)
                              + (fetching ? " in the queue while its "
                                            "audio_url was still downloading"
                                          : " in the queue without a free "
                                            "device")));
      } else if (rec.result.state == job_state::running) {
        auto limit = effective_run_timeout(rec.spec);
        auto device = rec.result.device;
        stop_attempt(rec);
        finalize(rec, job_state::timed_out,
                 make_error(errc::run_timeout,
                            "attempt " + std::to_string(rec.result.attempts)
                              + " ran longer than "
                              + runtime::format_duration(limit) + " on "
                              + device));
      }
    }
    expire_results();
    if (!deadlines.empty())
      arm_tick(deadlines.begin()->first);
    dispatch();
  }

  caf::timespan effective_queue_timeout(const job_spec& spec) const {
    return spec.queue_timeout.count() > 0 ? spec.queue_timeout
                                          : settings.queue_timeout;
  }

  caf::timespan effective_run_timeout(const job_spec& spec) const {
    return spec.run_timeout.count() > 0 ? spec.run_timeout
                                        : settings.run_timeout;
  }

  // -- admission -----------------------------------------------------------

  /// Checks a request; none if it may be queued, and then `factory` says
  /// which model runs it, `declared` what memory the model declares and
  /// `shape_key` the key of its learned memory estimate.
  caf::error check(const job_spec& spec, const gpu::model_factory*& factory,
                   uint64_t& declared, std::string& shape_key) const {
    if (shutting_down)
      return make_error(errc::shutting_down,
                        "node " + node_name + " is shutting down");
    if (auto err = runtime::validate(spec))
      return err;
    factory = catalog->find(spec.model);
    if (factory == nullptr)
      return make_error(errc::unknown_model, "model: '" + spec.model
                                               + "' is not served by node "
                                               + node_name);
    if (auto reason = factory->validate(spec))
      return make_error(errc::invalid_request, *reason);
    if (spec.queue_timeout > settings.queue_timeout)
      return make_error(errc::invalid_request,
                        "queue_timeout: "
                          + runtime::format_duration(spec.queue_timeout)
                          + " exceeds the node's limit of "
                          + runtime::format_duration(settings.queue_timeout));
    if (spec.run_timeout > settings.run_timeout)
      return make_error(errc::invalid_request,
                        "run_timeout: "
                          + runtime::format_duration(spec.run_timeout)
                          + " exceeds the node's limit of "
                          + runtime::format_duration(settings.run_timeout));
    declared = factory->estimate_peak_bytes(spec);
    shape_key = memory_estimates::key_of(spec);
    auto bytes = estimates->estimate(shape_key, declared);
    uint64_t largest = 0;
    bool any_runs_model = false;
    for (const auto& device : devices) {
      if (!factory->runs_on(device.info.kind))
        continue;
      any_runs_model = true;
      largest = std::max(largest, device.budget());
    }
    if (!any_runs_model)
      return make_error(errc::unknown_model, "model: no device of node "
                                               + node_name + " can run '"
                                               + spec.model + "'");
    if (auto why = no_device_left_for(factory))
      return make_error(errc::worker_lost,
                        "model '" + spec.model + "': " + *why);
    if (bytes > largest)
      return make_error(errc::too_large, too_large_reason(bytes));
    if (!mover
        && (!spec.audio_url.empty() || !spec.output_url.empty()
            || !spec.webhook_url.empty()))
      return make_error(errc::invalid_request,
                        "node " + node_name
                          + " cannot fetch or send files: audio_url, "
                            "output_url and webhook_url are not available");
    for (auto [use, url] : {std::pair{url_use::fetch, &spec.audio_url},
                            std::pair{url_use::upload, &spec.output_url},
                            std::pair{url_use::notify, &spec.webhook_url}})
      if (mover && !url->empty())
        if (auto err = mover->check_url(use, *url))
          return make_error(errc::invalid_request, std::string{field_of(use)}
                                                     + ": "
                                                     + runtime::detail_of(err));
    auto queued = queue->size() + awaiting_inputs;
    if (queued >= settings.queue_size)
      return make_error(errc::queue_full,
                        std::to_string(queued) + " jobs are queued (queue-size "
                          + std::to_string(settings.queue_size) + ")");
    return caf::none;
  }

  /// Validates and queues a job; returns its record or the refusal.
  caf::expected<job_record*> accept(job_spec spec) {
    if (!spec.idempotency_key.empty()) {
      auto i = idempotency_keys.find(spec.idempotency_key);
      if (i != idempotency_keys.end()) {
        auto& rec = jobs.at(i->second);
        if (rec.spec != spec)
          return make_error(errc::invalid_request,
                            "idempotency_key: already used by job "
                              + runtime::to_string(rec.result.id)
                              + " with a different request");
        return &rec;
      }
    }
    const gpu::model_factory* factory = nullptr;
    uint64_t declared = 0;
    std::string shape_key;
    if (auto err = check(spec, factory, declared, shape_key))
      return err;
    auto id = job_id{++next_id};
    auto& rec = jobs[id];
    rec.factory = factory;
    rec.declared_bytes = declared;
    rec.shape_key = std::move(shape_key);
    auto t = now();
    rec.result.id = id;
    rec.result.state = job_state::queued;
    rec.result.model = spec.model;
    rec.result.priority = spec.priority;
    rec.result.steps = spec.steps;
    rec.result.accepted_at = wall(t);
    rec.seq = ++next_seq;
    rec.accepted = t;
    rec.spec = std::move(spec);
    if (!rec.spec.idempotency_key.empty())
      idempotency_keys.emplace(rec.spec.idempotency_key, id);
    if (rec.spec.audio_url.empty())
      enqueue(rec, false);
    else
      start_fetch(rec);
    return &rec;
  }

  // -- transfers -----------------------------------------------------------

  /// Fetches the job's audio on a detached actor; the job enters the queue
  /// when it arrives. Its queue timeout runs meanwhile.
  void start_fetch(job_record& rec) {
    auto t = now();
    rec.result.state = job_state::queued;
    rec.queued_since = t;
    rec.awaiting_inputs = true;
    ++awaiting_inputs;
    set_deadline(rec, t + effective_queue_timeout(rec.spec));
    auto path = (std::filesystem::path{settings.output_dir} / "inputs"
                 / ("job-" + runtime::to_string(rec.result.id) + "-audio"))
                  .string();
    rec.transfer = std::make_shared<abort_signal>();
    spawn_transfer(self, *mover, fetch_task, mover,
                   caf::actor_cast<admission_control_actor>(self),
                   rec.result.id, rec.spec.audio_url, std::move(path),
                   rec.transfer);
  }

  /// Takes a queued job out of the queue (or stops waiting for its inputs).
  void leave_queue(job_record& rec) {
    if (rec.awaiting_inputs) {
      rec.awaiting_inputs = false;
      --awaiting_inputs;
    } else {
      queue->forget();
    }
  }

  void fetched(job_id id, std::string path, caf::error err) {
    auto i = jobs.find(id);
    if (i == jobs.end() || !i->second.awaiting_inputs) {
      std::error_code ec;
      if (!path.empty())
        std::filesystem::remove(path, ec);
      return;
    }
    auto& rec = i->second;
    rec.awaiting_inputs = false;
    --awaiting_inputs;
    rec.transfer = nullptr;
    if (err) {
      finalize(rec, job_state::failed, std::move(err));
      return;
    }
    rec.audio_path = std::move(path);
    rec.result.queue_time +=
      std::chrono::duration_cast<caf::timespan>(now() - rec.queued_since);
    enqueue(rec, false);
    dispatch();
  }

  /// Uploads a finished job's video on a detached actor; the job ends when
  /// the upload does.
  void start_upload(job_record& rec, std::string video) {
    rec.uploading = true;
    rec.video_path = std::move(video);
    rec.transfer = std::make_shared<abort_signal>();
    spawn_transfer(self, *mover, upload_task, mover,
                   caf::actor_cast<admission_control_actor>(self),
                   rec.result.id, rec.video_path, rec.spec.output_url,
                   rec.transfer);
  }

  void uploaded(job_id id, caf::error err) {
    auto i = jobs.find(id);
    if (i == jobs.end() || !i->second.uploading
        || i->second.result.state != job_state::running)
      return;
    auto& rec = i->second;
    rec.uploading = false;
    rec.transfer = nullptr;
    if (err)
      finalize(rec, job_state::failed,
               make_error(errc::transfer_failed, runtime::detail_of(err)
                                                   + "; the video is kept at "
                                                   + rec.video_path),
               rec.video_path);
    else
      finalize(rec, job_state::succeeded, caf::none, rec.spec.output_url);
  }

  void enqueue(job_record& rec, bool at_front) {
    auto t = now();
    rec.result.state = job_state::queued;
    rec.queued_since = t;
    rec.queue_ticket = ++next_seq;
    job_queue::entry entry{rec.result.id, rec.seq, rec.accepted,
                           rec.spec.priority, rec.queue_ticket};
    if (at_front)
      queue->push_front(entry);
    else
      queue->push_back(entry);
    // The queue deadline is set by dispatch() if the job is still queued
    // then: most jobs leave the queue at once and never need one.
    undated.push_back(rec.result.id);
  }

  // -- memory --------------------------------------------------------------

  /// The bytes `rec`'s next attempt reserves: its shape's learned figure,
  /// else what its model declares.
  uint64_t estimate_of(const job_record& rec) const {
    return estimates->estimate(rec.shape_key, rec.declared_bytes);
  }

  /// Why no device can take `factory`'s jobs any more (every device that
  /// runs its model is quarantined), or nothing if one can.
  std::optional<std::string>
  no_device_left_for(const gpu::model_factory* factory) const {
    std::string quarantined;
    for (const auto& device : devices) {
      if (!factory->runs_on(device.info.kind))
        continue;
      if (device.state != device_slot::health::quarantined)
        return std::nullopt;
      quarantined += (quarantined.empty() ? "" : "; ") + device.info.name()
                     + ": " + device.last_error;
    }
    if (quarantined.empty())
      return std::nullopt;
    return "every device that can run this model is quarantined (" + quarantined
           + ")";
  }

  /// Fails every queued job that no device can take any more.
  void fail_stranded_jobs() {
    // Collected first: finalizing may drop old results from `jobs`.
    std::vector<job_id> stranded;
    for (auto& [id, rec] : jobs)
      if (rec.result.state == job_state::queued
          && no_device_left_for(rec.factory))
        stranded.push_back(id);
    for (auto id : stranded) {
      auto i = jobs.find(id);
      if (i == jobs.end())
        continue;
      auto why = no_device_left_for(i->second.factory);
      leave_queue(i->second);
      finalize(i->second, job_state::failed,
               make_error(errc::worker_lost, *why));
    }
  }

  /// The memory of the largest device that can run `factory`'s model.
  uint64_t largest_device_for(const gpu::model_factory* factory) const {
    uint64_t largest = 0;
    for (const auto& device : devices)
      if (factory->runs_on(device.info.kind))
        largest = std::max(largest, device.budget());
    return largest;
  }

  std::string too_large_reason(uint64_t bytes) const {
    uint64_t largest = 0;
    for (const auto& device : devices)
      largest = std::max(largest, device.budget());
    return "needs " + runtime::format_bytes(bytes)
           + " but the largest device has " + runtime::format_bytes(largest);
  }

  // -- dispatch ------------------------------------------------------------

  /// Whether some device could take a job now (a cheap test before the
  /// queue is looked at).
  bool any_free_slot() const {
    for (const auto& device : devices)
      if (device.state == device_slot::health::up
          && device.running.size()
               < static_cast<size_t>(settings.max_concurrency))
        return true;
    return false;
  }

  /// Starts every job that can start now, then gives the jobs queued since
  /// the last call their queue deadlines. Called after every change that
  /// may let a job start, and after every enqueue.
  void dispatch() {
    place();
    for (auto id : undated) {
      auto i = jobs.find(id);
      if (i != jobs.end() && i->second.result.state == job_state::queued
          && i->second.deadline == time_point::max())
        set_deadline(i->second, i->second.queued_since
                                  + effective_queue_timeout(i->second.spec));
    }
    undated.clear();
  }

  void place() {
    if (queue->empty() || !any_free_slot())
      return;
    auto t = now();
    auto is_live = [this](const job_queue::entry& x) {
      auto i = jobs.find(x.id);
      return i != jobs.end() && i->second.result.state == job_state::queued
             && i->second.queue_ticket == x.ticket;
    };
    while (!queue->empty()) {
      auto next = queue->peek(t, is_live);
      if (!next)
        return;
      auto& rec = jobs.at(next->id);
      fill_candidates(rec);
      auto bytes = estimate_of(rec);
      auto index = choose_device(candidates, bytes);
      if (index < 0) {
        if (waits_for_memory_only())
          backfill(rec, t, is_live);
        return;
      }
      queue->pop(*next);
      start_attempt(rec, devices[static_cast<size_t>(index)], bytes);
    }
  }

  /// Whether `rec` may run on `index`: not on a device whose worker died
  /// under it while another device that can run it is in service.
  bool may_retry_on(const job_record& rec, int32_t index) const {
    auto failed_on = [&](int32_t i) {
      return std::find(rec.crashed_on.begin(), rec.crashed_on.end(), i)
             != rec.crashed_on.end();
    };
    if (rec.crashed_on.empty() || !failed_on(index))
      return true;
    for (const auto& other : devices)
      if (other.state != device_slot::health::quarantined
          && rec.factory->runs_on(other.info.kind)
          && !failed_on(other.info.index))
        return false;
    return true;
  }

  /// Fills `candidates` with every device as seen by `rec`.
  void fill_candidates(const job_record& rec) {
    candidates.clear();
    for (auto& device : devices) {
      placement_candidate c;
      c.available = device.state == device_slot::health::up
                    && rec.factory->runs_on(device.info.kind)
                    && may_retry_on(rec, device.info.index);
      c.running = static_cast<int32_t>(device.running.size());
      c.slots = settings.max_concurrency;
      c.memory_bytes = device.budget();
      c.memory_reserved = device.reserved;
      auto model = device.find_model(rec.spec.model);
      c.has_model = model != nullptr && model->loaded;
      candidates.push_back(c);
    }
  }

  /// Whether the job `candidates` were filled for has a free slot on a
  /// device that can run it, and lacks only memory there.
  bool waits_for_memory_only() const {
    for (const auto& c : candidates)
      if (c.available && c.running < c.slots)
        return true;
    return false;
  }

  /// The job at the head of the queue, `head`, waits for memory: jobs
  /// behind it that fit now start first, at most `max_bypass` of them over
  /// its whole wait, so it cannot be starved.
  template <class IsLive>
  void backfill(job_record& head, time_point t, IsLive& is_live) {
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
      if (head.bypassed >= settings.max_bypass || !any_free_slot())
        return;
      auto& rec = jobs.at(id);
      fill_candidates(rec);
      auto bytes = estimate_of(rec);
      auto index = choose_device(candidates, bytes);
      if (index < 0)
        continue;
      // Its entry turns stale once it runs; the queue drops it later.
      queue->forget();
      start_attempt(rec, devices[static_cast<size_t>(index)], bytes);
      head.bypassed += 1;
    }
  }

  void start_attempt(job_record& rec, device_slot& device, uint64_t bytes) {
    auto t = now();
    auto& r = rec.result;
    r.state = job_state::running;
    r.attempts += 1;
    r.device = device.name;
    r.step = 0;
    r.steps = rec.spec.steps;
    r.started_at = wall(t);
    r.computed_at = caf::timestamp{};
    r.queue_time +=
      std::chrono::duration_cast<caf::timespan>(t - rec.queued_since);
    rec.started = t;
    rec.lease = ++next_lease;
    rec.device = device.info.index;
    rec.reserved_bytes = bytes;
    r.reserved_bytes = bytes;
    device.running.push_back(r.id);
    device.reserved += bytes;
    // Marked as loading at once: the next job of the model waits for this
    // device rather than loading the model on another.
    auto model = device.find_model(rec.spec.model);
    if (model == nullptr) {
      device.models.push_back({rec.spec.model, 0, true});
    } else {
      model->loaded = true;
    }
    set_deadline(rec, t + effective_run_timeout(rec.spec));
    self->send(
      device.worker, run_atom::value,
      job_ticket{r.id, rec.lease, rec.spec, r.attempts, rec.audio_path});
    emit(rec);
  }

  /// Frees the slot and memory of the job's attempt but keeps the attempt:
  /// its compute is done and the worker is writing its output.
  void free_slot(job_record& rec) {
    if (rec.device < 0)
      return;
    auto& device = devices[static_cast<size_t>(rec.device)];
    auto& running = device.running;
    auto i = std::find(running.begin(), running.end(), rec.result.id);
    if (i == running.end())
      return;
    running.erase(i);
    device.reserved -= std::min(device.reserved, rec.reserved_bytes);
    rec.reserved_bytes = 0;
    device.finishing.push_back(rec.result.id);
  }

  /// Ends the job's attempt on its device: frees its slot and memory.
  void release(job_record& rec) {
    if (rec.device < 0)
      return;
    free_slot(rec);
    auto& finishing = devices[static_cast<size_t>(rec.device)].finishing;
    finishing.erase(
      std::remove(finishing.begin(), finishing.end(), rec.result.id),
      finishing.end());
    rec.device = -1;
    rec.lease = 0;
  }

  /// Stops the running attempt of `rec` on its worker and frees its slot.
  void stop_attempt(job_record& rec) {
    if (rec.device >= 0) {
      auto& device = devices[static_cast<size_t>(rec.device)];
      if (device.worker)
        self->send(device.worker, abort_atom::value, rec.result.id, rec.lease);
    }
    release(rec);
  }

  /// Charges a failure to a job that was running: queues it again while it
  /// has attempts left, else ends it with `reason`.
  void retry_or_fail(job_record& rec, caf::error reason, bool charge) {
    release(rec);
    if (charge)
      rec.charged_failures += 1;
    rec.result.run_time =
      std::chrono::duration_cast<caf::timespan>(now() - rec.started);
    if (rec.charged_failures >= settings.max_attempts) {
      finalize(rec, job_state::failed, std::move(reason));
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
    spdlog::info("job {} is retried after attempt {} on {} failed: {}",
                 rec.result.id.value, rec.result.attempts, rec.result.device,
                 runtime::describe(reason));
    enqueue(rec, true);
    emit(rec, std::move(reason));
  }

  // -- the end of a job ----------------------------------------------------

  /// Ends a job. `at` is when it ended (default: now).
  void finalize(job_record& rec, job_state state, caf::error error,
                std::string output = {},
                std::optional<time_point> at = std::nullopt) {
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
          + " was aborted and the video is kept at " + rec.video_path);
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
    emit(rec);
    rec.observers.clear();
    rec.observers.shrink_to_fit();
    if (!rec.waiters.empty()) {
      auto result = snapshot(rec);
      for (auto& waiter : rec.waiters)
        waiter.second.deliver(result);
      rec.waiters.clear();
      rec.waiters.shrink_to_fit();
    }
    if (state != job_state::succeeded)
      spdlog::info("job {} {}: {}", r.id.value, runtime::to_string(state),
                   runtime::describe(r.error));
    if (!rec.audio_path.empty()) {
      std::error_code ec;
      std::filesystem::remove(rec.audio_path, ec);
      rec.audio_path.clear();
    }
    if (webhooks && !rec.spec.webhook_url.empty())
      self->send(webhooks, notify_atom::value, rec.spec.webhook_url,
                 snapshot(rec));
    if (shutting_down && in_grace.erase(r.id) > 0)
      finish_shutdown_if_done();
    finished.emplace_back(t, r.id);
    if (finished.size() == 1)
      arm_tick(t + settings.result_ttl);
    // Only older records than `rec` are dropped here: callers may still use
    // `rec`, and loops over `jobs` survive the erasure of other entries.
    while (finished.size() > settings.max_results)
      forget_oldest_result();
  }

  void forget_oldest_result() {
    auto i = jobs.find(finished.front().second);
    finished.pop_front();
    if (i == jobs.end())
      return;
    if (!i->second.spec.idempotency_key.empty())
      idempotency_keys.erase(i->second.spec.idempotency_key);
    jobs.erase(i);
  }

  void expire_results() {
    auto t = now();
    while (!finished.empty()
           && t - finished.front().first >= settings.result_ttl)
      forget_oldest_result();
    if (!finished.empty())
      arm_tick(finished.front().first + settings.result_ttl);
  }

  // -- worker reports ------------------------------------------------------

  /// The job whose running attempt `lease` is, if the sender is the worker
  /// running it; null for stale or foreign reports.
  job_record* attempt_of(job_id id, uint64_t lease) {
    auto i = jobs.find(id);
    if (i == jobs.end())
      return nullptr;
    auto& rec = i->second;
    if (rec.result.state != job_state::running || rec.lease != lease
        || rec.device < 0)
      return nullptr;
    auto& device = devices[static_cast<size_t>(rec.device)];
    if (self->current_sender()
        != caf::actor_cast<caf::strong_actor_ptr>(device.worker))
      return nullptr;
    return &rec;
  }

  /// Whether the current message comes from an actor of this node. Only
  /// client messages are accepted from elsewhere: the published handle can
  /// be cast to an untyped actor and sent anything.
  bool from_this_node() const {
    const auto& sender = self->current_sender();
    return sender != nullptr && sender->node() == self->node();
  }

  device_slot* device_of_sender(int32_t index) {
    if (index < 0 || static_cast<size_t>(index) >= devices.size())
      return nullptr;
    auto& device = devices[static_cast<size_t>(index)];
    if (self->current_sender()
        != caf::actor_cast<caf::strong_actor_ptr>(device.worker))
      return nullptr;
    return &device;
  }

  // -- devices -------------------------------------------------------------

  void attach(runtime::device_info info, device_worker_actor worker,
              int32_t restarts, const std::vector<std::string>& kept_models,
              uint64_t kept_resident) {
    auto index = static_cast<size_t>(info.index);
    if (devices.size() <= index) {
      spdlog::error("attach for unknown device {}", info.name());
      return;
    }
    auto& device = devices[index];
    // A new worker for a device whose old one still had jobs: the old worker
    // is gone, its jobs must not wait for reports that never come.
    if (!device.running.empty())
      detach(info.index, make_error(errc::worker_lost, "worker replaced"));
    device.supervisor =
      caf::actor_cast<node_supervisor_actor>(self->current_sender());
    device.culprit = job_id{};
    device.failed_itself = false;
    if (device.state == device_slot::health::quarantined)
      end_quarantine(device);
    device.info = info;
    device.name = info.name();
    device.worker = std::move(worker);
    device.state = device_slot::health::up;
    device.restarts = restarts;
    for (auto& model : device.models)
      model.loaded = false;
    for (const auto& name : kept_models) {
      if (auto model = device.find_model(name))
        model->loaded = true;
      else
        device.models.push_back({name, 1, true});
    }
    device.resident = kept_resident;
    dispatch();
  }

  /// A device's worker died: its jobs are queued again, and the death is
  /// charged to the job whose own failure explains it (reported by the
  /// worker, or the only job on the device), else to the device. Returns
  /// whether the device is to blame.
  bool detach(int32_t index, caf::error reason) {
    if (index < 0 || static_cast<size_t>(index) >= devices.size())
      return false;
    auto& device = devices[static_cast<size_t>(index)];
    device.worker = nullptr;
    if (device.state != device_slot::health::quarantined)
      device.state = device_slot::health::restarting;
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
        auto i = jobs.find(id);
        if (i != jobs.end() && i->second.result.state == job_state::running)
          lost.push_back(id);
      }
    auto explained =
      culprit.value != 0 || runtime::is(reason, errc::out_of_memory);
    // Alone on the device, a job is the cause of the death it died in,
    // unless the worker said the device itself failed.
    auto charged = !explained && !failed_itself && lost.size() == 1
                     ? lost.front()
                     : job_id{};
    auto blame_device = !explained && charged.value == 0;
    for (auto id : lost) {
      auto& rec = jobs.at(id);
      if (id == charged) {
        rec.crashed_on.push_back(index);
        ++device.job_crashes;
        retry_or_fail(rec, reason, true);
        continue;
      }
      auto why =
        explained ? make_error(errc::worker_lost,
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

  /// Takes a device out of service until it is probed after `cooldown`.
  /// Jobs running there carry on; queued jobs that no device is left for
  /// fail at once.
  void quarantine(int32_t index, caf::error reason, caf::timespan cooldown) {
    if (index < 0 || static_cast<size_t>(index) >= devices.size())
      return;
    auto& device = devices[static_cast<size_t>(index)];
    device.state = device_slot::health::quarantined;
    device.job_crashes = 0;
    device.quarantine_reason = runtime::describe(reason);
    device.last_error = device.quarantine_reason + "; probed again in "
                        + runtime::format_duration(cooldown);
    spdlog::warn("device {} is quarantined: {}", device.name,
                 device.last_error);
    fail_stranded_jobs();
    dispatch();
  }

  /// A quarantined device takes jobs again: its last error says so.
  static void end_quarantine(device_slot& device) {
    device.last_error = "quarantined (" + device.quarantine_reason
                        + "), then probed: on probation";
  }

  /// A quarantined device whose worker still lives takes jobs again.
  void probe(int32_t index) {
    if (index < 0 || static_cast<size_t>(index) >= devices.size())
      return;
    auto& device = devices[static_cast<size_t>(index)];
    if (device.state != device_slot::health::quarantined || !device.worker)
      return;
    end_quarantine(device);
    device.state = device_slot::health::up;
    spdlog::info("device {} is probed: it takes jobs again", device.name);
    dispatch();
  }

  /// How many more job crashes than the device where a job then succeeded
  /// make a device where it crashed look at fault. Jobs that crash now and
  /// then wherever they run thus blame no device, while a device that
  /// crashes what succeeds elsewhere soon stands out.
  static constexpr int32_t crash_margin = 2;

  /// `rec` succeeded on `where`: every other device whose worker died under
  /// it, and which crashed at least crash_margin more jobs than `where`,
  /// was at fault, and its supervisor hears so.
  void exonerate(job_record& rec, int32_t where) {
    std::sort(rec.crashed_on.begin(), rec.crashed_on.end());
    rec.crashed_on.erase(
      std::unique(rec.crashed_on.begin(), rec.crashed_on.end()),
      rec.crashed_on.end());
    for (auto index : rec.crashed_on) {
      if (index == where)
        continue;
      auto& device = devices[static_cast<size_t>(index)];
      if (device.job_crashes
          < devices[static_cast<size_t>(where)].job_crashes + crash_margin)
        continue;
      if (device.supervisor)
        self->send(device.supervisor, fault_atom::value, index,
                   make_error(errc::worker_lost,
                              "job " + runtime::to_string(rec.result.id)
                                + " failed on " + device.name
                                + " and then succeeded on "
                                + devices[static_cast<size_t>(where)].name));
    }
    rec.crashed_on.clear();
  }

  // -- queries -------------------------------------------------------------

  std::vector<runtime::device_status> device_statuses() const {
    std::vector<runtime::device_status> result;
    for (const auto& device : devices) {
      runtime::device_status status;
      status.node = node_name;
      status.device = device.info.name();
      switch (device.state) {
        case device_slot::health::starting:
          status.state = "starting";
          break;
        case device_slot::health::up:
          status.state = device.running.empty() ? "idle" : "busy";
          break;
        case device_slot::health::restarting:
          status.state = "restarting";
          break;
        case device_slot::health::quarantined:
          status.state = "quarantined";
          break;
      }
      status.slots_in_use = static_cast<int32_t>(device.running.size());
      status.slots = settings.max_concurrency;
      status.memory_bytes = device.info.memory_bytes;
      status.memory_reserved = device.reserved + device.resident;
      status.models = device.models;
      status.running = device.running;
      status.restarts = device.restarts;
      status.last_error = device.last_error;
      result.push_back(std::move(status));
    }
    return result;
  }

  std::vector<job_result> list(const runtime::list_query& query) const {
    std::vector<const job_record*> active;
    std::vector<const job_record*> ended;
    for (const auto& [id, rec] : jobs)
      (runtime::is_terminal(rec.result.state) ? ended : active).push_back(&rec);
    std::sort(active.begin(), active.end(),
              [](auto x, auto y) { return x->seq < y->seq; });
    std::sort(ended.begin(), ended.end(),
              [](auto x, auto y) { return x->seq > y->seq; });
    std::vector<job_result> result;
    auto limit = query.limit == 0 ? SIZE_MAX : size_t{query.limit};
    for (auto rec : active)
      if (result.size() < limit)
        result.push_back(snapshot(*rec));
    if (query.include_finished)
      for (auto rec : ended)
        if (result.size() < limit)
          result.push_back(snapshot(*rec));
    return result;
  }

  // -- shutdown ------------------------------------------------------------

  /// Whether a running job's compute is done: its video is being written
  /// by its worker or uploaded.
  bool past_compute(const job_record& rec) const {
    if (rec.uploading)
      return true;
    if (rec.device < 0)
      return false;
    const auto& finishing = devices[static_cast<size_t>(rec.device)].finishing;
    return std::find(finishing.begin(), finishing.end(), rec.result.id)
           != finishing.end();
  }

  /// Starts stopping the node: new jobs are refused, queued and running
  /// jobs cancelled; jobs whose video is being written or uploaded get
  /// until settings.shutdown_grace, and so do webhooks; `promise` is
  /// answered when all of that ended.
  void shutdown(caf::typed_response_promise<caf::ok_atom> promise) {
    if (stopped) {
      promise.deliver(caf::ok_atom::value);
      return;
    }
    shutdown_requests.push_back(std::move(promise));
    if (shutting_down)
      return;
    shutting_down = true;
    grace_end = now() + settings.shutdown_grace;
    for (auto& [id, rec] : jobs) {
      if (runtime::is_terminal(rec.result.state))
        continue;
      if (rec.result.state == job_state::running && past_compute(rec)) {
        in_grace.insert(id);
        continue;
      }
      if (rec.result.state == job_state::queued)
        leave_queue(rec);
      else
        stop_attempt(rec);
      finalize(
        rec, job_state::cancelled,
        make_error(errc::cancelled, "node " + node_name + " is shutting down"));
    }
    if (in_grace.empty())
      finish_shutdown_if_done();
    else
      self->delayed_send(self, settings.shutdown_grace, grace_atom::value);
  }

  /// The grace period ended: jobs still writing or uploading their video
  /// are cancelled (a written video's path is in the result).
  void grace_over() {
    auto ids = std::vector<job_id>(in_grace.begin(), in_grace.end());
    for (auto id : ids) {
      auto& rec = jobs.at(id);
      stop_attempt(rec);
      finalize(rec, job_state::cancelled,
               make_error(errc::cancelled,
                          "node " + node_name + " is shutting down and its "
                            + runtime::format_duration(settings.shutdown_grace)
                            + " grace period ended"));
    }
  }

  /// Once no job is left in grace, drains the webhooks for what is left of
  /// the grace period, then answers shutdown.
  void finish_shutdown_if_done() {
    if (!in_grace.empty() || draining || shutdown_requests.empty())
      return;
    draining = true;
    auto answer = [this] {
      stopped = true;
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
};

using admission_pointer = admission_state::pointer;

caf::result<job_result> unknown_job(job_id id) {
  return make_error(errc::unknown_job,
                    "no job " + runtime::to_string(id)
                      + " (never accepted, or its result has expired)");
}

admission_control_actor::behavior_type
admission_behavior(admission_pointer self, runtime::node_settings settings,
                   std::vector<runtime::device_info> devices,
                   std::shared_ptr<const gpu::model_catalog> catalog,
                   std::shared_ptr<transfers> mover) {
  auto& st = self->state;
  for (auto& info : devices) {
    device_slot slot;
    slot.info = info;
    slot.name = info.name();
    st.devices.push_back(std::move(slot));
  }
  st.node_name = settings.node_name.empty() ? host_name() : settings.node_name;
  st.queue = std::make_unique<job_queue>(settings.aging_interval);
  memory_estimates::policy memory_policy;
  memory_policy.headroom = settings.memory_headroom;
  memory_policy.oom_growth = settings.oom_estimate_growth;
  st.estimates = std::make_unique<memory_estimates>(memory_policy);
  st.settings = std::move(settings);
  st.catalog = std::move(catalog);
  st.mover = std::move(mover);
  if (st.mover)
    st.webhooks =
      spawn_webhook_sender(self->system(), self->address(), st.mover,
                           webhook_schedule{st.settings.webhook_attempts,
                                            st.settings.webhook_retry_delay});
  st.mono_epoch = self->clock().now();
  st.wall_epoch = caf::make_timestamp();
  return {
    // -- client protocol ---------------------------------------------------
    [=](runtime::submit_atom, job_spec& spec) -> caf::result<job_id> {
      auto& st = self->state;
      auto rec = st.accept(std::move(spec));
      if (!rec)
        return std::move(rec.error());
      auto id = (*rec)->result.id;
      st.dispatch();
      return id;
    },
    [=](runtime::execute_atom, job_spec& spec) -> caf::result<job_result> {
      auto& st = self->state;
      auto rec = st.accept(std::move(spec));
      if (!rec)
        return std::move(rec.error());
      if (runtime::is_terminal((*rec)->result.state))
        return st.snapshot(**rec);
      auto promise = self->make_response_promise<job_result>();
      (*rec)->waiters.emplace_back(++st.next_waiter, promise);
      st.dispatch();
      return promise;
    },
    [=](runtime::status_atom, job_id id) -> caf::result<job_result> {
      auto& st = self->state;
      auto i = st.jobs.find(id);
      if (i == st.jobs.end())
        return unknown_job(id);
      return st.snapshot(i->second);
    },
    [=](runtime::wait_atom, job_id id,
        caf::timespan max_wait) -> caf::result<job_result> {
      auto& st = self->state;
      auto i = st.jobs.find(id);
      if (i == st.jobs.end())
        return unknown_job(id);
      auto& rec = i->second;
      if (runtime::is_terminal(rec.result.state))
        return st.snapshot(rec);
      if (max_wait.count() < 0)
        return make_error(errc::invalid_request,
                          "max_wait: must not be negative");
      auto promise = self->make_response_promise<job_result>();
      auto waiter = ++st.next_waiter;
      rec.waiters.emplace_back(waiter, promise);
      if (max_wait.count() > 0)
        self->delayed_send(self, max_wait, wait_expired_atom::value, id,
                           waiter);
      return promise;
    },
    [=](runtime::cancel_atom, job_id id) -> caf::result<job_result> {
      auto& st = self->state;
      auto i = st.jobs.find(id);
      if (i == st.jobs.end())
        return unknown_job(id);
      auto& rec = i->second;
      if (runtime::is_terminal(rec.result.state))
        return st.snapshot(rec);
      if (rec.result.state == job_state::queued)
        st.leave_queue(rec);
      else
        st.stop_attempt(rec);
      st.finalize(rec, job_state::cancelled,
                  make_error(errc::cancelled, "cancelled by a client"));
      auto result = st.snapshot(rec);
      st.dispatch();
      return result;
    },
    [=](runtime::list_atom, const runtime::list_query& query)
      -> std::vector<job_result> { return self->state.list(query); },
    [=](runtime::nodes_atom) -> std::vector<runtime::device_status> {
      return self->state.device_statuses();
    },
    [=](runtime::subscribe_atom, job_id id,
        runtime::job_observer_actor observer) -> caf::result<job_result> {
      auto& st = self->state;
      auto i = st.jobs.find(id);
      if (i == st.jobs.end())
        return unknown_job(id);
      auto& rec = i->second;
      if (!runtime::is_terminal(rec.result.state) && observer)
        rec.observers.push_back(std::move(observer));
      return st.snapshot(rec);
    },
    // -- supervisor --------------------------------------------------------
    [=](attach_atom, runtime::device_info info, device_worker_actor worker,
        int32_t restarts, const std::vector<std::string>& kept_models,
        uint64_t kept_resident) {
      if (self->state.from_this_node())
        self->state.attach(std::move(info), std::move(worker), restarts,
                           kept_models, kept_resident);
    },
    [=](detach_atom, int32_t index, caf::error reason) -> caf::result<bool> {
      if (!self->state.from_this_node())
        return make_error(errc::unauthorized, "only the node may detach");
      return self->state.detach(index, std::move(reason));
    },
    [=](quarantine_atom, int32_t index, caf::error reason,
        caf::timespan cooldown) {
      if (self->state.from_this_node())
        self->state.quarantine(index, std::move(reason), cooldown);
    },
    [=](probe_atom, int32_t index) {
      if (self->state.from_this_node())
        self->state.probe(index);
    },
    // -- device workers ----------------------------------------------------
    [=](loaded_atom, int32_t index, const std::string& model,
        uint64_t resident) {
      auto device = self->state.device_of_sender(index);
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
    },
    [=](computed_atom, job_id id, uint64_t lease) {
      auto& st = self->state;
      if (auto rec = st.attempt_of(id, lease)) {
        rec->result.computed_at = st.wall(st.now());
        st.free_slot(*rec);
        st.dispatch();
      }
    },
    [=](progress_atom, job_id id, uint64_t lease, int32_t step, int32_t steps) {
      auto& st = self->state;
      if (auto rec = st.attempt_of(id, lease)) {
        rec->result.step = step;
        rec->result.steps = steps;
        st.emit(*rec);
      }
    },
    [=](done_atom, job_id id, uint64_t lease, finished_job& out) {
      auto& st = self->state;
      if (auto rec = st.attempt_of(id, lease)) {
        st.estimates->observed_peak(rec->shape_key, out.peak_bytes);
        // The device's next job goes out before anyone is told of this one;
        // this one ended before that.
        auto ended = st.now();
        if (rec->result.computed_at.time_since_epoch().count() == 0)
          rec->result.computed_at = st.wall(ended);
        if (!rec->crashed_on.empty())
          st.exonerate(*rec, rec->device);
        st.release(*rec);
        st.dispatch();
        rec->result.step = rec->result.steps;
        if (!rec->spec.output_url.empty() && st.mover)
          st.start_upload(*rec, std::move(out.output));
        else
          st.finalize(*rec, job_state::succeeded, caf::none,
                      std::move(out.output), ended);
      }
    },
    // -- transfer tasks ----------------------------------------------------
    [=](fetched_atom, job_id id, std::string& path, caf::error& err) {
      if (self->state.from_this_node())
        self->state.fetched(id, std::move(path), std::move(err));
    },
    [=](uploaded_atom, job_id id, caf::error& err) {
      if (self->state.from_this_node())
        self->state.uploaded(id, std::move(err));
    },
    [=](failed_atom, job_id id, uint64_t lease, caf::error& reason,
        uint64_t needed_bytes) {
      auto& st = self->state;
      if (auto rec = st.attempt_of(id, lease)) {
        if (runtime::is(reason, errc::out_of_memory)) {
          // The worker exits after an out-of-memory error: nothing more may
          // be sent to it until the supervisor attached its successor.
          auto& device = st.devices[static_cast<size_t>(rec->device)];
          device.worker = nullptr;
          if (device.state != device_slot::health::quarantined)
            device.state = device_slot::health::restarting;
          device.culprit = id;
          // The retry reserves more; if no device has that much, it fails.
          auto raised = st.estimates->out_of_memory(
            rec->shape_key, rec->reserved_bytes, needed_bytes);
          if (raised > st.largest_device_for(rec->factory)) {
            st.finalize(*rec, job_state::failed,
                        make_error(errc::out_of_memory,
                                   runtime::detail_of(reason)
                                     + "; a retry would need "
                                     + runtime::format_bytes(raised)
                                     + ", more than any device has"));
          } else {
            st.retry_or_fail(*rec, std::move(reason), true);
          }
        } else
          st.finalize(*rec, job_state::failed, std::move(reason));
        st.dispatch();
      }
    },
    [=](crashed_atom, job_id id, uint64_t lease, caf::error& reason,
        bool device_failed) {
      // The worker exits next. Its death is charged to this job, unless the
      // device itself failed: then to the device (detach), and every job it
      // ran is retried at no charge.
      auto& st = self->state;
      if (auto rec = st.attempt_of(id, lease)) {
        auto& device = st.devices[static_cast<size_t>(rec->device)];
        device.worker = nullptr;
        if (device.state != device_slot::health::quarantined)
          device.state = device_slot::health::restarting;
        if (device_failed) {
          device.failed_itself = true;
          return;
        }
        device.culprit = id;
        rec->crashed_on.push_back(rec->device);
        ++device.job_crashes;
        st.retry_or_fail(*rec, std::move(reason), true);
        st.dispatch();
      }
    },
    // -- timers ------------------------------------------------------------
    [=](tick_atom) {
      if (self->state.from_this_node())
        self->state.on_tick();
    },
    [=](wait_expired_atom, job_id id, uint64_t waiter) {
      auto& st = self->state;
      if (!st.from_this_node())
        return;
      auto i = st.jobs.find(id);
      if (i == st.jobs.end())
        return;
      auto& waiters = i->second.waiters;
      auto w = std::find_if(waiters.begin(), waiters.end(),
                            [&](auto& x) { return x.first == waiter; });
      if (w == waiters.end())
        return;
      w->second.deliver(st.snapshot(i->second));
      waiters.erase(w);
    },
    // -- node --------------------------------------------------------------
    [=](shutdown_atom) -> caf::result<caf::ok_atom> {
      if (!self->state.from_this_node())
        return make_error(errc::unauthorized,
                          "only the node itself may shut it down");
      auto promise = self->make_response_promise<caf::ok_atom>();
      self->state.shutdown(promise);
      return promise;
    },
    [=](grace_atom) {
      if (self->state.from_this_node())
        self->state.grace_over();
    },
  };
}

} // namespace

admission_control_actor
spawn_admission(caf::actor_system& sys, const runtime::node_settings& settings,
                std::vector<runtime::device_info> devices,
                std::shared_ptr<const gpu::model_catalog> catalog,
                std::shared_ptr<transfers> mover) {
  return sys.spawn(admission_behavior, settings, std::move(devices),
                   std::move(catalog), std::move(mover));
}

} // namespace vidnode::actors
