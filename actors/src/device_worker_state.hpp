#pragma once

/// @file
/// The state of a device worker (device_worker.hpp), shared by the files
/// that define it: device_worker.cpp (the attempt's life: steps,
/// encoding, aborts), device_worker_models.cpp (the model cache: loads and
/// preloads), device_worker_lanes.cpp (the lanes' threads),
/// device_worker_gang.cpp (the ranks of a gang) and
/// device_worker_inputs.cpp (inputs copied from the head, reports).

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <spdlog/spdlog.h>

#include "job_log.hpp"
#include "vidnode/actors/device_worker.hpp"
#include "vidnode/gpu/collectives.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::actors {

/// A pipeline call run on a lane's thread (device_worker_lanes.cpp), and
/// what became of it there: what it threw, and when it ran.
struct lane_call {
  std::function<void()> work;
  std::exception_ptr thrown;
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point ended;
};

/// The message a lane receives and answers: local only (never serialized).
using lane_call_ptr = std::shared_ptr<lane_call>;

} // namespace vidnode::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vidnode::actors::lane_call_ptr)

namespace vidnode::actors {

/// Spawns lane `index` of `count` of `device`: a detached actor, linked to
/// `worker`, that runs the lane_calls it receives on its own thread (set up
/// by gpu::enter_lane) and answers each with the same call, filled in.
caf::actor spawn_lane(caf::local_actor* worker,
                      const runtime::device_info& device, int32_t index,
                      int32_t count);

/// The most of an exception's text a report carries: reports go to the head,
/// and must fit in the messages it accepts whatever a pipeline threw.
constexpr size_t max_reported_text = 8192;

/// `what`, cut to max_reported_text bytes (saying how much was cut).
std::string reported(const char* what);

struct device_worker_state {
  using pointer = device_worker_actor::stateful_pointer<device_worker_state>;

  static inline const char* name = "vidnode.device_worker";

  explicit device_worker_state(pointer self) : self(self) {}

  /// Removes the inputs copied for attempts that did not end before the
  /// worker did.
  ~device_worker_state();

  using clock_type = std::chrono::steady_clock;

  /// One model in the cache.
  struct cache_entry {
    std::shared_ptr<gpu::pipeline> pipeline;
    /// False while a load is still in progress (simulated, or on a lane).
    bool ready = false;
    /// When the load began (for the attempts' load phase).
    clock_type::time_point load_started;
    /// Attempts waiting for the load to finish.
    std::vector<job_ticket> waiting;
    /// Preloads waiting for the load to finish.
    std::vector<caf::typed_response_promise<bool>> preloads;
  };

  /// One attempt in progress.
  struct active_attempt {
    runtime::job_id id;
    /// Shared with the call a lane runs on it, which may outlive an
    /// aborted attempt.
    /// The pipeline it runs on: a call on a lane keeps it (runs may refer
    /// to their pipeline's model), so a worker that stops while a lane is
    /// still in a step frees nothing the step uses. Declared before `run`,
    /// which is destroyed first.
    std::shared_ptr<gpu::pipeline> pipeline;
    std::shared_ptr<gpu::job_run> run;
    /// The audio track to mux into the video, if any.
    std::string audio_path;
    int32_t next_step = 0;
    /// Steps reported to admission; a step is reported once its device
    /// time has passed, i.e. when the next step message arrives.
    int32_t reported = 0;
    /// Ranks of its gang (1 for a job of one device).
    int32_t world = 1;
    /// A gang rank runs step `next_step` only while it is below this:
    /// admission raises it (advance) once every rank has finished the
    /// steps before; `steps() + 1` lets it finish.
    int32_t allowed = 1;
    /// A gang rank waits for admission's advance.
    bool waiting = false;
    /// Rank 0's rendezvous, kept open while the attempt runs.
    std::unique_ptr<gpu::rendezvous_host> rendezvous;
    /// This rank's membership in its gang, kept while the attempt runs
    /// whether or not the pipeline keeps it (sim's does not): a rank that
    /// left as soon as it had joined closed its connections under ranks
    /// still connecting, and failed their join.
    std::shared_ptr<gpu::communicator> members;
    /// The lane whose thread runs its calls; -1: the worker's own thread.
    int32_t lane = -1;
    /// Where its time went so far.
    job_phases phases;
    /// When its last phase ended (device time left included): the time
    /// until its next call is a hand-off.
    clock_type::time_point last;
  };

  /// One lane: a thread of its own that runs the pipeline calls of the
  /// attempt holding it.
  struct lane {
    caf::actor thread;
    /// The attempt holding it (0: free).
    uint64_t lease = 0;
    /// A call is in flight on it (an aborted attempt's call still runs to
    /// its end: the lane takes no other attempt before).
    bool busy = false;
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
  /// Why it exits, once it waits only for its lanes' calls to end.
  caf::error exit_reason;

  /// The device's lanes: empty where calls run on the worker's own thread
  /// (one job at a time, sim devices, tests on the coordinator).
  std::vector<lane> lanes;
  /// Attempts that found no free lane (an aborted attempt's call still
  /// ran on it): they start when one frees up, in arrival order.
  std::vector<job_ticket> lane_queue;

  // -- lanes (device_worker_lanes.cpp) -------------------------------------

  /// Spawns `count` lanes (count > 1 on a kind that runs in lanes).
  void open_lanes(int32_t count);

  /// A free lane's index for attempt `lease`, which now holds it; -1 if
  /// every lane is held or busy.
  int32_t take_lane(uint64_t lease);

  /// The lane attempt `lease` holds, if any, is free again; queued
  /// attempts start on free lanes.
  void release_lane(uint64_t lease);

  /// The lane held by attempt `lease` (-1: none).
  int32_t lane_of(uint64_t lease) const;

  /// Runs `work` on lane `index`'s thread; `then` runs on the worker's
  /// thread with the filled-in call, unless the worker exits meanwhile
  /// (then it quits once no lane is busy).
  void on_lane(int32_t index, std::function<void()> work,
               std::function<void(lane_call&)> then);

  /// Attempt `lease` (job `id`), whose call `call` returned from its lane,
  /// if it goes on: null if it was aborted meanwhile, or if the call threw
  /// (then handled as guarded() handles it).
  active_attempt* returned(runtime::job_id id, uint64_t lease, lane_call& call);

  /// Ends the worker with `reason`, once no lane runs a call (at once if
  /// none does): a restarted worker never runs beside its predecessor's
  /// calls.
  void exit_after_lanes(caf::error reason);

  /// Starts queued attempts on lanes that are free.
  void start_queued();

  /// An attempt whose video an encoder is writing.
  struct encoding_attempt {
    uint64_t lease;
    runtime::job_id id;
    uint64_t peak_bytes;
    job_phases phases;
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

  /// How gang ranks meet.
  gang_settings gang;
  /// Gang ranks other than 0 whose attempt waits for the rendezvous
  /// address (their model is ready).
  std::vector<job_ticket> awaiting_rendezvous;
  /// Rendezvous addresses that came before their attempt began (its model
  /// was loading): (lease, address).
  std::vector<std::pair<uint64_t, std::string>> early_rendezvous;

  // -- the ranks of a gang (device_worker_gang.cpp) ------------------------

  /// Begins rank `ticket.rank` of a gang: rank 0 opens the rendezvous,
  /// tells admission its address and joins; the others join once
  /// admission has handed them the address.
  void begin_rank(gpu::pipeline& pipeline, job_ticket ticket);

  /// Admission handed over the rendezvous address of attempt `lease`.
  void rendezvous_arrived(runtime::job_id id, uint64_t lease,
                          std::string address);

  /// Joins the gang at `address` (blocking until every rank joined, or
  /// gang.timeout; empty: a kind without collectives joins nothing) and
  /// starts the rank's attempt.
  void join_and_start(gpu::pipeline& pipeline, job_ticket ticket,
                      const std::string& address,
                      std::unique_ptr<gpu::rendezvous_host> host);

  /// Every rank of attempt `lease` finished `step` steps.
  void advance(uint64_t lease, int32_t step);

  /// Whether a gang rank must wait for the other ranks before it runs its
  /// next step (or finishes); then it waits for advance.
  bool held_back(active_attempt& attempt);

  /// Forgets what attempt `lease` waited for as a gang rank (aborted).
  void forget_rank(uint64_t lease);

  /// Starts a begun attempt: its first step, or its end if it has none.
  void launch(job_ticket& ticket, std::unique_ptr<gpu::job_run> run,
              gpu::device_time busy,
              std::shared_ptr<gpu::pipeline> pipeline = nullptr);

  /// Whether `ticket`'s input lives on another node (the head's admission
  /// runs elsewhere) and must be copied here first.
  bool input_is_remote(const job_ticket& ticket) const {
    return !ticket.audio_path.empty() && admission
           && admission.node() != self->node();
  }

  /// Copies `ticket`'s input from the head in chunks; the attempt starts
  /// when it is here (`copied`).
  void copy_input(job_ticket ticket);

  /// The input of attempt `lease` is here (or not): the attempt starts, or
  /// fails.
  void input_copied(uint64_t lease, std::string path, caf::error err);

  /// Removes the input copied for attempt `lease`, if any.
  void forget_input(uint64_t lease);

  std::string where() const {
    return "device " + device.name();
  }

  /// Attempt `lease` succeeded: admission hears so, and the book keeps it
  /// for a head that may not have.
  void report_done(runtime::job_id id, uint64_t lease, finished_job result);

  /// Attempt `lease` failed with `reason` (not out of memory: see guarded).
  void report_failed(runtime::job_id id, uint64_t lease, caf::error reason);

  /// Sends the outcomes of the book again: a head that took this device's
  /// attempts over after a rejoin attached it (resume). Those it heard
  /// already, or no longer wants, it ignores.
  void resend_outcomes();

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
      release_lane(lease);
      report_failed(id, lease,
                    runtime::make_error(e.code(), reported(e.what())));
    } catch (const gpu::out_of_memory& e) {
      auto reason = runtime::make_error(runtime::errc::out_of_memory,
                                        where() + ": " + reported(e.what()));
      log_attempt(runtime::log_level::warn,
                  fmt::format("{}: job {} ran out of memory (it needs at "
                              "least {}); the worker restarts, keeping its "
                              "loaded models",
                              where(), id.value,
                              runtime::format_bytes(e.requested_bytes())),
                  id, device.name(), lease);
      self->send(admission, failed_atom::value, id, lease, reason,
                 e.requested_bytes());
      exit_after_lanes(std::move(reason));
    } catch (const gpu::collective_error& e) {
      // A gang's collectives failed (a rank left or never came): the
      // attempt is over, the device unharmed.
      erase_attempt(lease);
      forget_input(lease);
      release_lane(lease);
      report_failed(
        id, lease,
        runtime::make_error(runtime::errc::worker_lost,
                            where() + ": gang: " + reported(e.what())));
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
             bool device_failed);

  /// Whether the lease of attempt `lease` ran out (the head has not been
  /// heard from for so long that it may run it again elsewhere, e.g. after
  /// this node was frozen): then the attempt is dropped here, without a
  /// report, and the head queues it again when it finds it gone.
  bool lapsed(runtime::job_id id, uint64_t lease);

  void schedule_step(uint64_t lease, gpu::device_time busy) {
    if (busy == gpu::never_completes)
      return;
    if (busy.count() == 0)
      self->send(self, step_atom::value, lease);
    else
      self->delayed_send(self, busy, step_atom::value, lease);
  }

  void run(job_ticket ticket);

  /// Runs an attempt whose input, if any, is on this node.
  void start(job_ticket ticket);

  /// The model of `entry` is loaded: admission hears of it and later
  /// workers of this device keep it.
  void mark_ready(std::map<std::string, cache_entry>::iterator entry);

  void load_finished(const std::string& model);

  /// Loads `model` without a job (`--preload`): the reply is true once it
  /// is in the cache (at once if it is), or the load's error (unknown_model,
  /// out_of_memory, or the pipeline's job_error); a failed preload leaves
  /// the worker serving.
  caf::result<bool> preload(const std::string& model);

  /// Begins attempt `ticket` on `pipeline` (loaded), on its lane if it
  /// holds one; `load_time` is its load phase.
  void begin(std::shared_ptr<gpu::pipeline> pipeline, job_ticket ticket,
             caf::timespan load_time);

  /// Loads `ticket`'s model on lane `lane` (which the ticket holds); the
  /// ticket and later ones for the model wait for the load.
  void load_on_lane(int32_t lane, const gpu::model_factory* factory,
                    job_ticket ticket);

  /// Attempt `lease` finished on the device with `output`: its video goes
  /// to an encoder, or the attempt is reported done.
  void finished(uint64_t lease, gpu::job_output output);

  void step(uint64_t lease);

  void finish(uint64_t lease);

  /// An encoder reported: the job's video is at `path`, or `err` says why
  /// not; writing it took `took`. Nothing happens if the job was aborted
  /// meanwhile.
  void encoded(uint64_t lease, std::string path, caf::error err,
               caf::timespan took);

  void abort(runtime::job_id id, uint64_t lease);
};

} // namespace vidnode::actors
