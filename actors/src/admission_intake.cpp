/// @file
/// Admission: time, events, deadlines, checking and accepting jobs, and
/// their input and output transfers (see admission_state.hpp).

#include <filesystem>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include <spdlog/spdlog.h>

#include "admission_state.hpp"
#include "spawn_transfer.hpp"
#include "vidnode/gpu/video.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"
#include "vidnode/runtime/validation.hpp"

namespace vidnode::actors {

namespace {

using runtime::errc;
using runtime::job_id;
using runtime::job_spec;
using runtime::job_state;
using runtime::make_error;

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

} // namespace

// -- time, snapshots and events ----------------------------------------------

admission_state::time_point admission_state::now() const {
  return self->clock().now();
}

caf::timestamp admission_state::wall(time_point t) const {
  return wall_epoch + std::chrono::duration_cast<caf::timespan>(t - mono_epoch);
}

runtime::job_result admission_state::snapshot(const job_record& rec) const {
  auto result = rec.result;
  if (result.node.empty())
    result.node = node_name;
  if (rec.end_pending) {
    // Nobody is shown an end before it is journaled: until then the job
    // looks as it did before it ended.
    result.state = result.attempts > 0 ? job_state::running : job_state::queued;
    result.error = caf::error{};
    result.output.clear();
    result.output_node.clear();
    result.finished_at = caf::timestamp{};
    return result;
  }
  if (rec.result.state == job_state::running)
    result.run_time =
      std::chrono::duration_cast<caf::timespan>(now() - rec.started);
  else if (rec.result.state == job_state::queued)
    result.queue_time +=
      std::chrono::duration_cast<caf::timespan>(now() - rec.queued_since);
  return result;
}

runtime::job_event admission_state::event_of(const job_record& rec,
                                             caf::error error) const {
  runtime::job_event event;
  event.id = rec.result.id;
  event.state = rec.result.state;
  event.step = rec.result.step;
  event.steps = rec.result.steps;
  event.attempt = rec.result.attempts;
  event.device = rec.result.device;
  event.error = error ? std::move(error) : rec.result.error;
  event.at = wall(now());
  return event;
}

void admission_state::emit(job_record& rec, caf::error error) {
  if (rec.observers.empty())
    return;
  auto event = event_of(rec, std::move(error));
  // Anonymous: subscribers may be remote and must not learn admission's
  // address (only the gateway is published; net/server.hpp).
  for (auto& observer : rec.observers)
    caf::anon_send(observer, event);
}

// -- deadlines ---------------------------------------------------------------

void admission_state::set_deadline(job_record& rec, time_point when) {
  clear_deadline(rec);
  rec.deadline = when;
  deadlines.emplace(when, rec.result.id.value);
  arm_tick(when);
}

void admission_state::arm_tick(time_point when) {
  if (when >= next_tick)
    return;
  next_tick = when;
  auto delay = when - now();
  if (delay.count() < 0)
    delay = delay.zero();
  self->delayed_send(self, delay, tick_atom::value);
}

void admission_state::clear_deadline(job_record& rec) {
  if (rec.deadline != time_point::max()) {
    deadlines.erase({rec.deadline, rec.result.id.value});
    rec.deadline = time_point::max();
  }
}

void admission_state::on_tick() {
  auto t = now();
  if (next_tick <= t)
    next_tick = time_point::max();
  while (!deadlines.empty() && deadlines.begin()->first <= t) {
    auto id = job_id{deadlines.begin()->second};
    deadlines.erase(deadlines.begin());
    auto rec = jobs->find(id);
    if (rec == nullptr)
      continue;
    rec->deadline = time_point::max();
    if (rec->result.state == job_state::queued) {
      auto fetching = rec->awaiting_inputs;
      auto unplaceable = why_unplaceable(*rec);
      leave_queue(*rec);
      auto limit = effective_queue_timeout(rec->spec);
      auto why = fetching      ? " while its audio_url was still downloading"
                 : unplaceable ? ": " + *unplaceable
                               : std::string{" without a free device"};
      finalize(*rec, job_state::timed_out,
               make_error(errc::queue_timeout,
                          "waited " + runtime::format_duration(limit)
                            + " in the queue" + why));
    } else if (rec->result.state == job_state::running) {
      auto limit = effective_run_timeout(rec->spec);
      auto device = rec->result.device;
      stop_attempt(*rec);
      finalize(*rec, job_state::timed_out,
               make_error(errc::run_timeout,
                          "attempt " + std::to_string(rec->result.attempts)
                            + " ran longer than "
                            + runtime::format_duration(limit) + " on "
                            + device));
    }
  }
  expire_holds(t);
  forget_lost_nodes();
  auto expiry = jobs->expire(t);
  if (expiry != time_point::max())
    arm_tick(expiry);
  if (!deadlines.empty())
    arm_tick(deadlines.begin()->first);
  dispatch();
}

caf::timespan
admission_state::effective_queue_timeout(const job_spec& spec) const {
  return spec.queue_timeout.count() > 0 ? spec.queue_timeout
                                        : settings.queue_timeout;
}

caf::timespan
admission_state::effective_run_timeout(const job_spec& spec) const {
  return spec.run_timeout.count() > 0 ? spec.run_timeout : settings.run_timeout;
}

// -- admission ---------------------------------------------------------------

caf::error admission_state::check(const job_spec& spec,
                                  const gpu::model_factory*& factory,
                                  uint64_t& declared,
                                  std::string& shape_key) const {
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
  // A job no device can run now is queued when worker nodes may join: a
  // node that serves its model may come (or come back), and its queue
  // timeout bounds the wait.
  if (!settings.accepts_worker_nodes && !devices.any_runs(*factory, spec.model))
    return make_error(errc::unknown_model,
                      "model: no device of node " + node_name + " can run '"
                        + spec.model
                        + "' (and no worker node can join: it has no "
                          "--cluster-listen)");
  if (auto why = devices.no_device_left_for(*factory, spec.model))
    return make_error(errc::worker_lost, "model '" + spec.model + "': " + *why);
  if (devices.any_runs(*factory, spec.model)) {
    auto largest = devices.largest_budget_for(*factory, spec.model);
    if (bytes > largest)
      return make_error(errc::too_large,
                        "needs " + runtime::format_bytes(bytes)
                          + " but the largest device that can run model '"
                          + spec.model + "' has "
                          + runtime::format_bytes(largest));
    if (spec.ranks > 1)
      if (auto why = gang_too_large(*factory, spec, bytes))
        return make_error(errc::too_large, *why);
  }
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
  auto queued =
    queue->size() + awaiting_inputs + awaiting_journal + parked.size();
  if (queued >= settings.queue_size)
    return make_error(errc::queue_full,
                      std::to_string(queued) + " jobs are queued (queue-size "
                        + std::to_string(settings.queue_size) + ")");
  return caf::none;
}

caf::expected<job_record*> admission_state::accept(job_spec spec) {
  if (!spec.idempotency_key.empty()) {
    if (auto rec = jobs->find_by_key(spec.idempotency_key)) {
      if (rec->spec != spec)
        return make_error(errc::invalid_request,
                          "idempotency_key: already used by job "
                            + runtime::to_string(rec->result.id)
                            + " with a different request");
      return rec;
    }
  }
  const gpu::model_factory* factory = nullptr;
  uint64_t declared = 0;
  std::string shape_key;
  if (auto err = check(spec, factory, declared, shape_key))
    return err;
  auto t = now();
  auto& rec = jobs->add(std::move(spec), t);
  rec.factory = factory;
  rec.declared_bytes = declared;
  rec.shape_key = std::move(shape_key);
  rec.result.accepted_at = wall(t);
  // With a journal the job waits outside the queue until its record is
  // durable: a job that is never acknowledged never runs.
  rec.awaiting_journal = true;
  ++awaiting_journal;
  journal_job(rec);
  after_durable(
    [this, id = rec.result.id](const caf::error&) { journaled_accept(id); });
  return &rec;
}

void admission_state::enqueue(job_record& rec, bool at_front) {
  auto t = now();
  rec.result.state = job_state::queued;
  rec.queued_since = t;
  rec.queue_ticket = jobs->next_ticket();
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

void admission_state::leave_queue(job_record& rec) {
  if (rec.awaiting_journal) {
    rec.awaiting_journal = false;
    --awaiting_journal;
    rec.before_retry.reset();
  } else if (rec.awaiting_inputs) {
    rec.awaiting_inputs = false;
    --awaiting_inputs;
  } else if (rec.parked) {
    rec.parked = false;
    parked.erase({rec.seq, rec.result.id.value});
  } else {
    queue->forget();
  }
}

std::optional<std::string>
admission_state::why_unplaceable(const job_record& rec) const {
  const auto& model = rec.spec.model;
  if (devices.any_in_service_for(*rec.factory, model))
    return std::nullopt;
  if (!devices.any_node_serves(model))
    return "no registered node serves model '" + model + "'";
  std::string kinds;
  for (auto kind : {runtime::device_kind::sim, runtime::device_kind::cpu,
                    runtime::device_kind::cuda})
    if (rec.factory->runs_on(kind))
      kinds +=
        (kinds.empty() ? "" : ", ") + std::string{runtime::to_string(kind)};
  return "the nodes that serve model '" + model
         + "' have no device of a kind it runs on (" + kinds + ")";
}

// -- transfers ---------------------------------------------------------------

void admission_state::start_fetch(job_record& rec) {
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
                 caf::actor_cast<admission_control_actor>(self), rec.result.id,
                 rec.spec.audio_url, std::move(path), rec.transfer);
}

void admission_state::fetched(job_id id, std::string path, caf::error err) {
  auto rec = jobs->find(id);
  if (rec == nullptr || !rec->awaiting_inputs) {
    std::error_code ec;
    if (!path.empty())
      std::filesystem::remove(path, ec);
    return;
  }
  rec->awaiting_inputs = false;
  --awaiting_inputs;
  rec->transfer = nullptr;
  if (err) {
    finalize(*rec, job_state::failed, std::move(err));
    return;
  }
  rec->audio_path = std::move(path);
  rec->result.queue_time +=
    std::chrono::duration_cast<caf::timespan>(now() - rec->queued_since);
  enqueue(*rec, false);
  dispatch();
}

void admission_state::start_upload(job_record& rec, std::string video) {
  rec.uploading = true;
  rec.video_path = std::move(video);
  rec.transfer = std::make_shared<abort_signal>();
  if (output_is_remote(rec)) {
    start_staging(rec);
    return;
  }
  spawn_transfer(self, *mover, upload_task, mover,
                 caf::actor_cast<admission_control_actor>(self), rec.result.id,
                 rec.video_path, rec.spec.output_url, rec.transfer);
}

void admission_state::uploaded(job_id id, caf::error err) {
  auto rec = jobs->find(id);
  if (rec == nullptr || !rec->uploading
      || rec->result.state != job_state::running)
    return;
  rec->uploading = false;
  rec->transfer = nullptr;
  if (err) {
    finalize(*rec, job_state::failed,
             make_error(errc::transfer_failed, runtime::detail_of(err)
                                                 + "; the video is kept at "
                                                 + where_kept(*rec)),
             rec->video_path);
    return;
  }
  // The URL is the output now; the written video stays where it was.
  rec->result.output_node.clear();
  finalize(*rec, job_state::succeeded, caf::none, rec->spec.output_url);
}

} // namespace vidnode::actors
