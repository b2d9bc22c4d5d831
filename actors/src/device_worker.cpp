#include "vidnode/actors/device_worker.hpp"

#include <algorithm>
#include <filesystem>
#include <map>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <spdlog/spdlog.h>

#include "job_log.hpp"

#include "vidnode/actors/file_chunks.hpp"
#include "vidnode/gpu/lanes.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"
#include "stray_errors.hpp"

#include "device_worker_state.hpp"

namespace vidnode::actors {

namespace {

using runtime::errc;
using runtime::make_error;

/// Writes one job's video on its own thread, reports to `worker`, and ends.
void encoder(caf::event_based_actor* self, device_worker_actor worker,
             uint64_t lease, std::string path, std::string output_dir,
             gpu::video_frames video, std::string audio_path) {
  auto started = std::chrono::steady_clock::now();
  caf::error err;
  std::error_code ec;
  std::filesystem::create_directories(output_dir, ec);
  if (ec)
    err = make_error(errc::internal, "cannot create the output directory "
                                       + output_dir + ": " + ec.message());
  else if (auto failure = gpu::write_video(path, video, audio_path))
    err = make_error(errc::internal, "encoding " + path + ": " + *failure);
  caf::timespan took = std::chrono::steady_clock::now() - started;
  self->send(worker, encoded_atom::value, lease,
             err ? std::string{} : std::move(path), std::move(err), took);
  self->quit();
}

} // namespace

namespace {

using clock_type = std::chrono::steady_clock;

/// `busy` as a duration to add (none for a call that never completes).
clock_type::duration device_left(gpu::device_time busy) {
  if (busy == gpu::never_completes || busy.count() <= 0)
    return clock_type::duration{0};
  return std::chrono::duration_cast<clock_type::duration>(busy);
}

/// Accounts one pipeline call of `attempt` that ran from `started` to
/// `ended` and left `busy` device time: the time since its last phase is a
/// hand-off, the call (and the device time it left) goes to `phase`.
void account(device_worker_state::active_attempt& attempt, caf::timespan& phase,
             clock_type::time_point started, clock_type::time_point ended,
             gpu::device_time busy) {
  if (started > attempt.last)
    attempt.phases.handoff += started - attempt.last;
  auto left = device_left(busy);
  phase += (ended - started) + left;
  attempt.last = ended + left;
}

} // namespace

void device_worker_state::run(job_ticket ticket) {
  if (exiting)
    return;
  book->started(ticket.id, ticket.lease);
  if (input_is_remote(ticket)) {
    copy_input(std::move(ticket));
    return;
  }
  start(std::move(ticket));
}

void device_worker_state::start(job_ticket ticket) {
  if (exiting)
    return;
  // Gang ranks run on the worker's own thread, never in a lane.
  if (!lanes.empty() && ticket.world == 1 && lane_of(ticket.lease) < 0
      && take_lane(ticket.lease) < 0) {
    lane_queue.push_back(std::move(ticket));
    return;
  }
  auto i = cache.find(ticket.spec.model);
  if (i == cache.end()) {
    auto factory = catalog->find(ticket.spec.model);
    if (factory == nullptr) {
      release_lane(ticket.lease);
      report_failed(
        ticket.id, ticket.lease,
        make_error(errc::unknown_model, "model: '" + ticket.spec.model
                                          + "' is not served by " + where()));
      return;
    }
    auto lane = lane_of(ticket.lease);
    if (lane >= 0) {
      load_on_lane(lane, factory, std::move(ticket));
      return;
    }
    cache_entry entry;
    entry.load_started = clock_type::now();
    gpu::device_time busy{0};
    auto loaded = guarded(ticket.id, ticket.lease, [&] {
      entry.pipeline = factory->make(ticket.spec.model, device);
      busy = entry.pipeline->load(ticket.spec);
    });
    if (!loaded)
      return;
    auto model = ticket.spec.model;
    i = cache.emplace(model, std::move(entry)).first;
    if (busy.count() > 0) {
      i->second.waiting.push_back(std::move(ticket));
      if (busy != gpu::never_completes)
        self->delayed_send(self, busy, loaded_atom::value, model);
      return;
    }
    mark_ready(i);
    auto load_time = clock_type::now() - i->second.load_started;
    begin(i->second.pipeline, std::move(ticket), load_time);
    return;
  } else if (!i->second.ready) {
    i->second.waiting.push_back(std::move(ticket));
    return;
  }
  begin(i->second.pipeline, std::move(ticket), caf::timespan{0});
}

void device_worker_state::begin(std::shared_ptr<gpu::pipeline> pipeline,
                                job_ticket ticket, caf::timespan load_time) {
  if (exiting)
    return;
  if (ticket.world > 1) {
    begin_rank(*pipeline, std::move(ticket));
    return;
  }
  auto lane = lane_of(ticket.lease);
  if (lane >= 0) {
    auto run = std::make_shared<std::unique_ptr<gpu::job_run>>();
    auto spec = std::make_shared<job_ticket>(std::move(ticket));
    auto target = std::move(pipeline);
    on_lane(
      lane,
      [target, spec, run] {
        gpu::device_time busy{0};
        *run = target->begin(spec->spec, spec->attempt, busy);
      },
      [this, run, spec, load_time, target](lane_call& call) {
        auto& ticket = *spec;
        if (lane_of(ticket.lease) < 0)
          return; // aborted meanwhile
        if (call.thrown && !guarded(ticket.id, ticket.lease, [&] {
              std::rethrow_exception(call.thrown);
            }))
          return;
        launch(ticket, std::move(*run), gpu::device_time{0}, target);
        auto& attempt = *find_attempt(ticket.lease);
        attempt.phases.load = load_time;
        attempt.phases.prepare = call.ended - call.started;
        attempt.last = call.ended;
      });
    return;
  }
  gpu::device_time busy{0};
  std::unique_ptr<gpu::job_run> run;
  auto started = clock_type::now();
  if (!guarded(ticket.id, ticket.lease, [&] {
        run = pipeline->begin(ticket.spec, ticket.attempt, busy);
      }))
    return;
  auto ended = clock_type::now();
  auto lease = ticket.lease;
  launch(ticket, std::move(run), busy);
  if (auto attempt = find_attempt(lease)) {
    attempt->phases.load = load_time;
    attempt->phases.prepare = (ended - started) + device_left(busy);
    attempt->last = ended + device_left(busy);
  }
}

void device_worker_state::launch(job_ticket& ticket,
                                 std::unique_ptr<gpu::job_run> run,
                                 gpu::device_time busy,
                                 std::shared_ptr<gpu::pipeline> pipeline) {
  auto lease = ticket.lease;
  attempts.emplace_back(lease, active_attempt{});
  auto& attempt = attempts.back().second;
  attempt.id = ticket.id;
  attempt.pipeline = std::move(pipeline);
  attempt.run = std::move(run);
  attempt.audio_path = std::move(ticket.audio_path);
  attempt.world = ticket.world;
  attempt.lane = lane_of(lease);
  attempt.last = clock_type::now() + device_left(busy);
  if (busy.count() == 0 && attempt.run->steps() == 0)
    finish(lease);
  else
    schedule_step(lease, busy);
}

void device_worker_state::step(uint64_t lease) {
  auto found = find_attempt(lease);
  if (found == nullptr)
    return; // aborted
  if (lapsed(found->id, lease))
    return;
  auto& attempt = *found;
  auto steps = attempt.run->steps();
  if (attempt.reported < attempt.next_step) {
    attempt.reported = attempt.next_step;
    self->send(admission, progress_atom::value, attempt.id, lease,
               attempt.reported, steps);
  }
  if (held_back(attempt))
    return;
  if (attempt.next_step >= steps) {
    finish(lease);
    return;
  }
  auto index = attempt.next_step;
  if (attempt.lane >= 0) {
    auto run = attempt.run;
    on_lane(
      attempt.lane,
      [keep = attempt.pipeline, run, index] { (void)run->step(index); },
      [this, lease, id = attempt.id](lane_call& call) {
        auto found = returned(id, lease, call);
        if (found == nullptr)
          return;
        account(*found, found->phases.steps, call.started, call.ended,
                gpu::device_time{0});
        found->next_step += 1;
        step(lease);
      });
    return;
  }
  gpu::device_time busy{0};
  auto started = clock_type::now();
  if (!guarded(attempt.id, lease, [&] { busy = attempt.run->step(index); }))
    return;
  account(attempt, attempt.phases.steps, started, clock_type::now(), busy);
  attempt.next_step += 1;
  schedule_step(lease, busy);
}

void device_worker_state::finish(uint64_t lease) {
  auto& attempt = *find_attempt(lease);
  if (attempt.lane >= 0) {
    auto run = attempt.run;
    auto output = std::make_shared<gpu::job_output>();
    on_lane(
      attempt.lane,
      [keep = attempt.pipeline, run, output] {
        gpu::device_time busy{0};
        *output = run->finish(busy);
      },
      [this, lease, id = attempt.id, output](lane_call& call) {
        auto found = returned(id, lease, call);
        if (found == nullptr)
          return;
        account(*found, found->phases.decode, call.started, call.ended,
                gpu::device_time{0});
        finished(lease, std::move(*output));
      });
    return;
  }
  gpu::job_output output;
  gpu::device_time busy{0};
  auto started = clock_type::now();
  if (!guarded(attempt.id, lease, [&] { output = attempt.run->finish(busy); }))
    return;
  account(attempt, attempt.phases.decode, started, clock_type::now(), busy);
  finished(lease, std::move(output));
}

void device_worker_state::finished(uint64_t lease, gpu::job_output output) {
  auto& attempt = *find_attempt(lease);
  auto id = attempt.id;
  auto profile = attempt.run->profile();
  attempt.phases.kernel =
    std::chrono::duration_cast<caf::timespan>(profile.kernel);
  attempt.phases.memory_measurement =
    std::chrono::duration_cast<caf::timespan>(profile.memory_measurement);
  auto phases = attempt.phases;
  auto last = attempt.last;
  auto audio_path = std::move(attempt.audio_path);
  erase_attempt(lease);
  release_lane(lease);
  if (!output.video) {
    forget_input(lease);
    report_done(
      id, lease,
      finished_job{std::move(output.location), output.peak_bytes, phases});
    return;
  }
  // The device is free for the next job while an encoder of its own
  // writes the video; its answer comes back as `encoded`.
  self->send(admission, computed_atom::value, id, lease);
  auto now = clock_type::now();
  if (now > last)
    phases.handoff += now - last;
  encoding.push_back({lease, id, output.peak_bytes, phases});
  auto path =
    (std::filesystem::path{output_dir}
     / ("job-" + std::to_string(id.value) + "." + gpu::video_file_extension()))
      .string();
  self->system().spawn<caf::detached>(
    encoder, device_worker_actor{self}, lease, std::move(path), output_dir,
    std::move(*output.video), std::move(audio_path));
}

void device_worker_state::encoded(uint64_t lease, std::string path,
                                  caf::error err, caf::timespan took) {
  forget_input(lease);
  auto i = std::find_if(encoding.begin(), encoding.end(),
                        [&](const auto& x) { return x.lease == lease; });
  if (i == encoding.end())
    return;
  auto job = *i;
  if (lapsed(job.id, lease))
    return;
  encoding.erase(i);
  job.phases.encode = took;
  if (err)
    report_failed(job.id, lease, std::move(err));
  else
    report_done(job.id, lease,
                finished_job{std::move(path), job.peak_bytes, job.phases});
}

void device_worker_state::abort(runtime::job_id id, uint64_t lease) {
  book->forget(lease);
  forget_rank(lease);
  erase_attempt(lease);
  lane_queue.erase(
    std::remove_if(lane_queue.begin(), lane_queue.end(),
                   [&](const job_ticket& x) { return x.lease == lease; }),
    lane_queue.end());
  // An encoder still reads the input: it is removed when it reports.
  auto encoding_now =
    std::any_of(encoding.begin(), encoding.end(),
                [&](const auto& x) { return x.lease == lease; });
  if (!encoding_now)
    forget_input(lease);
  for (auto i = copying.begin(); i != copying.end(); ++i)
    if (i->lease == lease) {
      // The copier removes what it wrote.
      self->send_exit(i->copier, caf::exit_reason::user_shutdown);
      copying.erase(i);
      break;
    }
  encoding.erase(std::remove_if(encoding.begin(), encoding.end(),
                                [&](auto& x) { return x.lease == lease; }),
                 encoding.end());
  for (auto& [model, entry] : cache) {
    auto& waiting = entry.waiting;
    waiting.erase(
      std::remove_if(waiting.begin(), waiting.end(),
                     [&](const job_ticket& x) { return x.lease == lease; }),
      waiting.end());
  }
  release_lane(lease);
}

namespace {

device_worker_actor::behavior_type device_worker_behavior(
  device_worker_state::pointer self, runtime::device_info device,
  admission_control_actor admission,
  std::shared_ptr<const gpu::model_catalog> catalog, std::string output_dir,
  uint32_t input_chunk_bytes, std::shared_ptr<device_models> kept,
  std::shared_ptr<lease_book> book, gang_settings gang, int32_t lanes) {
  auto& st = self->state;
  st.gang = std::move(gang);
  survive_stray_errors(self, "a device worker");
  st.device = std::move(device);
  st.admission = std::move(admission);
  st.catalog = std::move(catalog);
  st.output_dir = std::move(output_dir);
  st.input_chunk_bytes = input_chunk_bytes;
  st.kept = kept ? std::move(kept) : std::make_shared<device_models>();
  st.book = book ? std::move(book) : std::make_shared<lease_book>();
  for (auto& [model, pipeline] : st.kept->ready) {
    device_worker_state::cache_entry entry;
    entry.pipeline = pipeline;
    entry.ready = true;
    st.cache.emplace(model, std::move(entry));
  }
  if (lanes > 1)
    st.open_lanes(lanes);
  return {
    [=](run_atom, job_ticket& ticket) { self->state.run(std::move(ticket)); },
    [=](abort_atom, runtime::job_id id, uint64_t lease) {
      self->state.abort(id, lease);
    },
    [=](step_atom, uint64_t lease) { self->state.step(lease); },
    [=](loaded_atom, const std::string& model) {
      self->state.load_finished(model);
    },
    [=](encoded_atom, uint64_t lease, std::string& path, caf::error& err,
        caf::timespan took) {
      self->state.encoded(lease, std::move(path), std::move(err), took);
    },
    [=](copied_atom, uint64_t lease, std::string& path, caf::error& err) {
      self->state.input_copied(lease, std::move(path), std::move(err));
    },
    [=](bind_atom, const caf::actor& next) {
      // Only its supervisor, on this node, rebinds it.
      const auto& sender = self->current_sender();
      if (sender != nullptr && sender->node() == self->node() && next)
        self->state.admission = caf::actor_cast<admission_control_actor>(next);
    },
    [=](rendezvous_atom, runtime::job_id id, uint64_t lease,
        std::string& address) {
      self->state.rendezvous_arrived(id, lease, std::move(address));
    },
    [=](advance_atom, uint64_t lease, int32_t step) {
      self->state.advance(lease, step);
    },
    [=](preload_atom, const std::string& model) -> caf::result<bool> {
      return self->state.preload(model);
    },
    [=](resume_atom) -> caf::result<lease_list> {
      auto& st = self->state;
      if (!st.admission
          || self->current_sender()
               != caf::actor_cast<caf::strong_actor_ptr>(st.admission))
        return make_error(errc::unauthorized,
                          "only the admission actor it reports to resumes a "
                          "worker");
      st.resend_outcomes();
      return lease_list{st.book->running()};
    },
  };
}

} // namespace

device_worker_actor
spawn_device_worker(caf::actor_system& sys, const runtime::device_info& device,
                    admission_control_actor admission,
                    std::shared_ptr<const gpu::model_catalog> catalog,
                    std::string output_dir, uint64_t max_message_size,
                    bool detached, std::shared_ptr<device_models> kept,
                    std::shared_ptr<lease_book> book, gang_settings gang,
                    int32_t max_concurrency) {
  auto chunk_bytes = runtime::chunk_bytes_within(max_message_size);
  if (detached) {
    auto lanes = gpu::runs_in_lanes(device.kind) ? max_concurrency : 1;
    return sys.spawn<caf::detached>(
      device_worker_behavior, device, std::move(admission), std::move(catalog),
      std::move(output_dir), chunk_bytes, std::move(kept), std::move(book),
      gang, lanes);
  }
  return sys.spawn(device_worker_behavior, device, std::move(admission),
                   std::move(catalog), std::move(output_dir), chunk_bytes,
                   std::move(kept), std::move(book), gang, 1);
}

uint64_t device_models::resident_bytes() const {
  uint64_t total = 0;
  for (const auto& [model, pipeline] : ready)
    total += pipeline->resident_bytes();
  return total;
}

std::vector<std::string> device_models::names() const {
  std::vector<std::string> result;
  for (const auto& [model, pipeline] : ready)
    result.push_back(model);
  return result;
}

} // namespace vidnode::actors
