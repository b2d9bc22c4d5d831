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
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"
#include "stray_errors.hpp"

namespace vidnode::actors {

namespace {

using runtime::errc;
using runtime::make_error;

/// The most of an exception's text a report carries: reports go to the head,
/// and must fit in the messages it accepts whatever a pipeline threw.
constexpr size_t max_reported_text = 8192;

/// `what`, cut to max_reported_text bytes (saying how much was cut).
std::string reported(const char* what) {
  std::string text{what};
  if (text.size() > max_reported_text) {
    auto cut = text.size() - max_reported_text;
    text.resize(max_reported_text);
    text += "... (" + std::to_string(cut) + " more bytes)";
  }
  return text;
}

/// Writes one job's video on its own thread, reports to `worker`, and ends.
void encoder(caf::event_based_actor* self, device_worker_actor worker,
             uint64_t lease, std::string path, std::string output_dir,
             gpu::video_frames video, std::string audio_path) {
  caf::error err;
  std::error_code ec;
  std::filesystem::create_directories(output_dir, ec);
  if (ec)
    err = make_error(errc::internal, "cannot create the output directory "
                                       + output_dir + ": " + ec.message());
  else if (auto failure = gpu::write_video(path, video, audio_path))
    err = make_error(errc::internal, "encoding " + path + ": " + *failure);
  self->send(worker, encoded_atom::value, lease,
             err ? std::string{} : std::move(path), std::move(err));
  self->quit();
}

struct device_worker_state {
  using pointer = device_worker_actor::stateful_pointer<device_worker_state>;

  static inline const char* name = "vidnode.device_worker";

  explicit device_worker_state(pointer self) : self(self) {}

  /// Removes the inputs copied for attempts that did not end before the
  /// worker did.
  ~device_worker_state() {
    for (auto& [lease, path] : copied_inputs) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
    }
  }

  /// One model in the cache.
  struct cache_entry {
    std::shared_ptr<gpu::pipeline> pipeline;
    /// False while a simulated load is still in progress.
    bool ready = false;
    /// Attempts waiting for the load to finish.
    std::vector<job_ticket> waiting;
  };

  /// One attempt in progress.
  struct active_attempt {
    runtime::job_id id;
    std::unique_ptr<gpu::job_run> run;
    /// The audio track to mux into the video, if any.
    std::string audio_path;
    int32_t next_step = 0;
    /// Steps reported to admission; a step is reported once its device
    /// time has passed, i.e. when the next step message arrives.
    int32_t reported = 0;
  };

  pointer self;
  runtime::device_info device;
  admission_control_actor admission;
  std::shared_ptr<const gpu::model_catalog> catalog;
  std::string output_dir;
  /// Length of the chunks of inputs copied from the head.
  uint32_t input_chunk_bytes = runtime::default_chunk_bytes;
  std::map<std::string, cache_entry> cache;
  std::shared_ptr<device_models> kept;
  /// The device's attempts, kept across workers and heads.
  std::shared_ptr<lease_book> book;
  /// At most max_concurrency entries: a vector beats a hash map here.
  std::vector<std::pair<uint64_t, active_attempt>> attempts;

  active_attempt* find_attempt(uint64_t lease) {
    for (auto& [key, attempt] : attempts)
      if (key == lease)
        return &attempt;
    return nullptr;
  }

  void erase_attempt(uint64_t lease) {
    attempts.erase(std::remove_if(attempts.begin(), attempts.end(),
                                  [&](auto& x) { return x.first == lease; }),
                   attempts.end());
  }
  /// Set once the worker decided to exit; nothing further is started.
  bool exiting = false;

  /// An attempt whose video an encoder is writing.
  struct encoding_attempt {
    uint64_t lease;
    runtime::job_id id;
    uint64_t peak_bytes;
  };
  std::vector<encoding_attempt> encoding;

  /// An attempt whose input is being copied from the head before it starts
  /// (it holds its slot meanwhile).
  struct input_copy {
    uint64_t lease;
    job_ticket ticket;
    caf::actor copier;
  };
  std::vector<input_copy> copying;
  /// Inputs copied from the head, by attempt: removed when it ends.
  std::vector<std::pair<uint64_t, std::string>> copied_inputs;

  /// Whether `ticket`'s input lives on another node (the head's admission
  /// runs elsewhere) and must be copied here first.
  bool input_is_remote(const job_ticket& ticket) const {
    return !ticket.audio_path.empty() && admission
           && admission.node() != self->node();
  }

  /// Copies `ticket`'s input from the head in chunks; the attempt starts
  /// when it is here (`copied`).
  void copy_input(job_ticket ticket) {
    auto lease = ticket.lease;
    auto path = (std::filesystem::path{output_dir} / "copies"
                 / ("job-" + std::to_string(ticket.id.value) + "-audio-"
                    + std::to_string(lease)))
                  .string();
    chunk_source source{
      caf::actor_cast<caf::actor>(admission),
      caf::make_message(read_input_atom::value, ticket.id, lease), "the head"};
    copy_options options;
    options.chunk_bytes = input_chunk_bytes;
    auto copier = spawn_chunked_copy(
      self->system(), std::move(source), std::move(path), lease,
      caf::actor_cast<caf::actor>(self), std::move(options));
    copying.push_back({lease, std::move(ticket), std::move(copier)});
  }

  /// The input of attempt `lease` is here (or not): the attempt starts, or
  /// fails.
  void input_copied(uint64_t lease, std::string path, caf::error err) {
    auto i = std::find_if(copying.begin(), copying.end(),
                          [&](const auto& x) { return x.lease == lease; });
    if (i == copying.end()) {
      std::error_code ec;
      if (!path.empty())
        std::filesystem::remove(path, ec);
      return;
    }
    auto ticket = std::move(i->ticket);
    copying.erase(i);
    if (err) {
      report_failed(ticket.id, lease,
                    make_error(errc::transfer_failed,
                               "audio_url: copying the fetched audio from the "
                               "head to "
                                 + where()
                                 + " failed: " + runtime::describe(err)));
      return;
    }
    copied_inputs.emplace_back(lease, path);
    ticket.audio_path = std::move(path);
    start(std::move(ticket));
  }

  /// Removes the input copied for attempt `lease`, if any.
  void forget_input(uint64_t lease) {
    for (auto i = copied_inputs.begin(); i != copied_inputs.end(); ++i)
      if (i->first == lease) {
        std::error_code ec;
        std::filesystem::remove(i->second, ec);
        copied_inputs.erase(i);
        return;
      }
  }

  std::string where() const {
    return "device " + device.name();
  }

  /// Attempt `lease` succeeded: admission hears so, and the book keeps it
  /// for a head that may not have.
  void report_done(runtime::job_id id, uint64_t lease, finished_job result) {
    log_attempt(
      runtime::log_level::info,
      fmt::format("{}: job {} succeeded (lease {})", where(), id.value, lease),
      id, device.name(), lease);
    book->ended({id, lease, true, result, caf::error{}});
    self->send(admission, done_atom::value, id, lease, std::move(result));
  }

  /// Attempt `lease` failed with `reason` (not out of memory: see guarded).
  void report_failed(runtime::job_id id, uint64_t lease, caf::error reason) {
    log_attempt(runtime::log_level::info,
                fmt::format("{}: job {} failed (lease {}): {}", where(),
                            id.value, lease, runtime::describe(reason)),
                id, device.name(), lease);
    book->ended({id, lease, false, finished_job{}, reason});
    self->send(admission, failed_atom::value, id, lease, std::move(reason),
               uint64_t{0});
  }

  /// Sends the outcomes of the book again: a head that took this device's
  /// attempts over after a rejoin attached it (resume). Those it heard
  /// already, or no longer wants, it ignores.
  void resend_outcomes() {
    for (auto& x : book->outcomes()) {
      if (x.succeeded)
        self->send(admission, done_atom::value, x.id, x.lease,
                   std::move(x.result));
      else
        self->send(admission, failed_atom::value, x.id, x.lease,
                   std::move(x.error), uint64_t{0});
    }
  }

  /// Runs a pipeline call. Exceptions end here: a job error fails the
  /// attempt; out-of-memory fails it and ends the worker; anything else
  /// ends the worker as crashed. Returns false if the call failed.
  template <class F>
  bool guarded(runtime::job_id id, uint64_t lease, F&& call) {
    try {
      call();
      return true;
    } catch (const gpu::job_error& e) {
      erase_attempt(lease);
      forget_input(lease);
      report_failed(id, lease, make_error(e.code(), reported(e.what())));
    } catch (const gpu::out_of_memory& e) {
      auto reason =
        make_error(errc::out_of_memory, where() + ": " + reported(e.what()));
      log_attempt(runtime::log_level::warn,
                  fmt::format("{}: job {} ran out of memory (it needs at "
                              "least {}); the worker restarts, keeping its "
                              "loaded models",
                              where(), id.value,
                              runtime::format_bytes(e.requested_bytes())),
                  id, device.name(), lease);
      self->send(admission, failed_atom::value, id, lease, reason,
                 e.requested_bytes());
      exiting = true;
      self->quit(std::move(reason));
    } catch (const gpu::device_failure& e) {
      log_attempt(runtime::log_level::error,
                  fmt::format("{}: the device failed running job {}: {}",
                              where(), id.value, e.what()),
                  id, device.name(), lease);
      crash(id, lease, where() + ": device failed: " + reported(e.what()),
            true);
    } catch (const std::exception& e) {
      log_attempt(runtime::log_level::error,
                  fmt::format("{}: worker crashed running job {}: {}", where(),
                              id.value, e.what()),
                  id, device.name(), lease);
      crash(id, lease, where() + ": worker crashed: " + reported(e.what()),
            false);
    } catch (...) {
      crash(id, lease, where() + ": worker crashed (unknown exception)", false);
    }
    return false;
  }

  /// Ends the worker after job `id`'s pipeline call threw: admission hears
  /// which job it was, and whether the device itself failed, before the
  /// supervisor reports the worker's death.
  void crash(runtime::job_id id, uint64_t lease, std::string what,
             bool device_failed) {
    auto reason = make_error(errc::worker_lost, std::move(what));
    self->send(admission, crashed_atom::value, id, lease, reason,
               device_failed);
    exiting = true;
    self->quit(std::move(reason));
  }

  /// Whether the lease of attempt `lease` ran out (the head has not been
  /// heard from for so long that it may run it again elsewhere, e.g. after
  /// this node was frozen): then the attempt is dropped here, without a
  /// report, and the head queues it again when it finds it gone.
  bool lapsed(runtime::job_id id, uint64_t lease) {
    auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 self->clock().now().time_since_epoch())
                 .count();
    if (!book->expired(now))
      return false;
    spdlog::warn("{}: job {} is stopped: the head has not been heard from "
                 "for longer than its lease grace allows (lease {})",
                 where(), id.value, lease);
    abort(id, lease);
    return true;
  }

  void schedule_step(uint64_t lease, gpu::device_time busy) {
    if (busy == gpu::never_completes)
      return;
    if (busy.count() == 0)
      self->send(self, step_atom::value, lease);
    else
      self->delayed_send(self, busy, step_atom::value, lease);
  }

  void run(job_ticket ticket) {
    if (exiting)
      return;
    book->started(ticket.id, ticket.lease);
    if (input_is_remote(ticket)) {
      copy_input(std::move(ticket));
      return;
    }
    start(std::move(ticket));
  }

  /// Runs an attempt whose input, if any, is on this node.
  void start(job_ticket ticket) {
    if (exiting)
      return;
    auto i = cache.find(ticket.spec.model);
    if (i == cache.end()) {
      auto factory = catalog->find(ticket.spec.model);
      if (factory == nullptr) {
        report_failed(
          ticket.id, ticket.lease,
          make_error(errc::unknown_model, "model: '" + ticket.spec.model
                                            + "' is not served by " + where()));
        return;
      }
      cache_entry entry;
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
    } else if (!i->second.ready) {
      i->second.waiting.push_back(std::move(ticket));
      return;
    }
    begin(*i->second.pipeline, std::move(ticket));
  }

  /// The model of `entry` is loaded: admission hears of it and later
  /// workers of this device keep it.
  void mark_ready(std::map<std::string, cache_entry>::iterator entry) {
    entry->second.ready = true;
    kept->ready[entry->first] = entry->second.pipeline;
    self->send(admission, loaded_atom::value, device.index, entry->first,
               entry->second.pipeline->resident_bytes());
  }

  void load_finished(const std::string& model) {
    auto i = cache.find(model);
    if (i == cache.end() || i->second.ready)
      return;
    mark_ready(i);
    auto waiting = std::move(i->second.waiting);
    i->second.waiting.clear();
    for (auto& ticket : waiting)
      begin(*i->second.pipeline, std::move(ticket));
  }

  void begin(gpu::pipeline& pipeline, job_ticket ticket) {
    if (exiting)
      return;
    gpu::device_time busy{0};
    std::unique_ptr<gpu::job_run> run;
    if (!guarded(ticket.id, ticket.lease, [&] {
          run = pipeline.begin(ticket.spec, ticket.attempt, busy);
        }))
      return;
    auto lease = ticket.lease;
    attempts.emplace_back(lease, active_attempt{});
    auto& attempt = attempts.back().second;
    attempt.id = ticket.id;
    attempt.run = std::move(run);
    attempt.audio_path = std::move(ticket.audio_path);
    if (busy.count() == 0 && attempt.run->steps() == 0)
      finish(lease);
    else
      schedule_step(lease, busy);
  }

  void step(uint64_t lease) {
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
    if (attempt.next_step >= steps) {
      finish(lease);
      return;
    }
    gpu::device_time busy{0};
    auto index = attempt.next_step;
    if (!guarded(attempt.id, lease, [&] { busy = attempt.run->step(index); }))
      return;
    attempt.next_step += 1;
    schedule_step(lease, busy);
  }

  void finish(uint64_t lease) {
    auto& attempt = *find_attempt(lease);
    gpu::job_output output;
    gpu::device_time busy{0};
    auto id = attempt.id;
    if (!guarded(id, lease, [&] { output = attempt.run->finish(busy); }))
      return;
    auto audio_path = std::move(attempt.audio_path);
    erase_attempt(lease);
    if (!output.video) {
      forget_input(lease);
      report_done(id, lease,
                  finished_job{std::move(output.location), output.peak_bytes});
      return;
    }
    // The device is free for the next job while an encoder of its own
    // writes the video; its answer comes back as `encoded`.
    self->send(admission, computed_atom::value, id, lease);
    encoding.push_back({lease, id, output.peak_bytes});
    auto path = (std::filesystem::path{output_dir}
                 / ("job-" + std::to_string(id.value) + "."
                    + gpu::video_file_extension()))
                  .string();
    self->system().spawn<caf::detached>(
      encoder, device_worker_actor{self}, lease, std::move(path), output_dir,
      std::move(*output.video), std::move(audio_path));
  }

  /// An encoder reported: the job's video is at `path`, or `err` says why
  /// not. Nothing happens if the job was aborted meanwhile.
  void encoded(uint64_t lease, std::string path, caf::error err) {
    forget_input(lease);
    auto i = std::find_if(encoding.begin(), encoding.end(),
                          [&](const auto& x) { return x.lease == lease; });
    if (i == encoding.end())
      return;
    auto job = *i;
    if (lapsed(job.id, lease))
      return;
    encoding.erase(i);
    if (err)
      report_failed(job.id, lease, std::move(err));
    else
      report_done(job.id, lease, finished_job{std::move(path), job.peak_bytes});
  }

  void abort(runtime::job_id id, uint64_t lease) {
    book->forget(lease);
    erase_attempt(lease);
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
  }
};

device_worker_actor::behavior_type device_worker_behavior(
  device_worker_state::pointer self, runtime::device_info device,
  admission_control_actor admission,
  std::shared_ptr<const gpu::model_catalog> catalog, std::string output_dir,
  uint32_t input_chunk_bytes, std::shared_ptr<device_models> kept,
  std::shared_ptr<lease_book> book) {
  auto& st = self->state;
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
  return {
    [=](run_atom, job_ticket& ticket) { self->state.run(std::move(ticket)); },
    [=](abort_atom, runtime::job_id id, uint64_t lease) {
      self->state.abort(id, lease);
    },
    [=](step_atom, uint64_t lease) { self->state.step(lease); },
    [=](loaded_atom, const std::string& model) {
      self->state.load_finished(model);
    },
    [=](encoded_atom, uint64_t lease, std::string& path, caf::error& err) {
      self->state.encoded(lease, std::move(path), std::move(err));
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
                    std::shared_ptr<lease_book> book) {
  auto chunk_bytes = runtime::chunk_bytes_within(max_message_size);
  if (detached)
    return sys.spawn<caf::detached>(
      device_worker_behavior, device, std::move(admission), std::move(catalog),
      std::move(output_dir), chunk_bytes, std::move(kept), std::move(book));
  return sys.spawn(device_worker_behavior, device, std::move(admission),
                   std::move(catalog), std::move(output_dir), chunk_bytes,
                   std::move(kept), std::move(book));
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
