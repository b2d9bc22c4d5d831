#pragma once

/// @file
/// The admission actor's state: the policy that joins the job table
/// (job_table.hpp), the device ledger (device_ledger.hpp), the queue
/// (job_queue.hpp) and the learned memory estimates. Its members are defined
/// by responsibility in admission_intake.cpp (checks, accepting, inputs and
/// outputs, deadlines), admission_dispatch.cpp (placement, attempts, the end
/// of a job), admission_devices.cpp (workers attaching and dying, worker
/// reports, quarantine), admission_nodes.cpp (nodes joining and being lost),
/// admission_holds.cpp (attempts of worker nodes out of reach),
/// admission_retry.cpp (a client's retry of an ended job),
/// admission_journal.cpp (the journal), admission_files.cpp (video and
/// input files read across nodes) and
/// admission_shutdown.cpp; admission.cpp maps messages onto them.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "vidnode/actors/device_ledger.hpp"
#include "vidnode/actors/file_chunks.hpp"
#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/job_queue.hpp"
#include "vidnode/actors/job_table.hpp"
#include "vidnode/actors/journal_store.hpp"
#include "vidnode/actors/memory_estimates.hpp"
#include "vidnode/actors/node_membership.hpp"
#include "vidnode/actors/node_observer.hpp"
#include "vidnode/actors/placement.hpp"
#include "vidnode/actors/transfers.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/settings.hpp"

#include "journal_writer.hpp"

namespace vidnode::actors {

struct admission_state {
  using pointer = admission_control_actor::stateful_pointer<admission_state>;
  using time_point = caf::actor_clock::time_point;

  static inline const char* name = "vidnode.admission";

  /// When the node stops, webhooks get what is left of the grace period,
  /// but at least this long.
  static constexpr caf::timespan last_webhooks_window = std::chrono::seconds{5};

  /// Queued jobs looked at behind a head that waits for memory.
  static constexpr size_t backfill_scan_limit = 64;

  /// How many more job crashes than the device where a job then succeeded
  /// make a device where it crashed look at fault. Jobs that crash now and
  /// then wherever they run thus blame no device, while a device that
  /// crashes what succeeds elsewhere soon stands out.
  static constexpr int32_t crash_margin = 2;

  explicit admission_state(pointer self);

  /// Sets up the state; called once, before the behavior is returned.
  void init(runtime::node_settings settings,
            std::vector<runtime::device_info> devices,
            std::shared_ptr<const gpu::model_catalog> catalog,
            std::shared_ptr<transfers> mover,
            std::shared_ptr<journal_store> journal,
            std::shared_ptr<node_observer> events);

  pointer self;
  runtime::node_settings settings;
  std::shared_ptr<const gpu::model_catalog> catalog;
  std::shared_ptr<transfers> mover;
  /// Told of jobs accepted and ended, device faults, nodes (never null).
  std::shared_ptr<node_observer> node_events;
  /// Delivers webhooks (null without a mover).
  webhook_sender_actor webhooks;
  /// Jobs whose inputs are being fetched (they count as queued).
  size_t awaiting_inputs = 0;
  /// Jobs no device in service can run, waiting outside the queue (they
  /// count as queued; job_record::parked): (acceptance order, id).
  std::set<std::pair<uint64_t, uint64_t>> parked;
  std::string node_name;
  std::unique_ptr<job_queue> queue;
  std::unique_ptr<memory_estimates> estimates;
  std::unique_ptr<job_table> jobs;
  device_ledger devices;
  /// The nodes whose devices are in the ledger (this one included) and
  /// those lost recently.
  node_membership nodes;
  /// Pending deadlines: (when, job).
  std::set<std::pair<time_point, uint64_t>> deadlines;
  /// Attempts held by worker nodes out of reach: (hold_until, job).
  std::set<std::pair<time_point, uint64_t>> holds;
  /// Earliest tick already scheduled (time_point::max() if none).
  time_point next_tick = time_point::max();
  /// Scratch space of dispatch, kept to avoid an allocation per job; entry
  /// i is ledger slot i.
  std::vector<placement_candidate> candidates;
  /// Jobs behind a head that waits for memory (scratch space for backfill).
  std::vector<runtime::job_id> behind;
  /// Jobs queued since the last dispatch(), which sets their deadlines.
  std::vector<runtime::job_id> undated;
  uint64_t next_lease = 0;
  bool shutting_down = false;
  /// While the node stops: jobs given the grace period to finish writing
  /// or uploading their video.
  std::set<runtime::job_id> in_grace;
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

  /// Most reads of video and input files in flight at once, clients' and
  /// workers' together; more are refused (queue_full) until some end.
  static constexpr size_t max_reads_in_flight = 64;

  /// Longest wait for one chunk from a node (a node that is lost fails its
  /// reads at once; this bounds a node that hangs without heartbeats).
  static constexpr caf::timespan read_timeout = std::chrono::seconds{30};

  /// The longest piece of a file asked of a worker node, and the chunks of
  /// copies from it: what fits in a message this node accepts
  /// (runtime::chunk_bytes_within(settings.max_message_size)); set by init.
  uint32_t part_bytes = runtime::max_chunk_bytes;
  uint32_t copy_chunk_bytes = runtime::default_chunk_bytes;

  /// A read of a file in flight on a node: answered by the node, or failed
  /// when the node is lost or admission stops. A worker node's file is read
  /// in pieces of at most part_bytes (its answers come to this node), joined
  /// in `chunk` until `left` is 0 or the file ends.
  struct pending_read {
    /// The node that reads (a name in `nodes`).
    std::string node;
    caf::typed_response_promise<runtime::output_chunk> promise;
    /// The worker node's supervisor; null for a file of this node, read
    /// whole on a local reader.
    file_reader_actor reader;
    std::string path;
    /// Where the next piece starts, and how many bytes are still wanted.
    uint64_t offset = 0;
    uint32_t left = 0;
    /// What arrived so far; its size is the first piece's.
    runtime::output_chunk chunk;
    bool sized = false;
  };

  /// Reads in flight, by number.
  std::map<uint64_t, pending_read> reads;
  uint64_t next_read = 0;

  /// Videos being copied from a worker node to the head before their
  /// upload: copy number -> job.
  std::map<uint64_t, runtime::job_id> staging_copies;
  uint64_t next_copy = 0;

  // -- the journal (admission_journal.cpp) ---------------------------------

  /// A callback run once the changes journaled before it are durable, with
  /// the commit's error if that failed. One that `waits_for_durability` is
  /// not run on a failure: it waits for the next commit that succeeds
  /// (what it tells must never be told before it is journaled).
  struct journal_ack {
    std::function<void(const caf::error&)> fn;
    bool waits_for_durability = false;
  };

  /// Commits journal batches; null without a journal (no state_dir).
  std::unique_ptr<journal_writer> journal;
  /// Changes not yet handed to the writer, and the index in pending.jobs of
  /// each job in it (a job changed twice is written once).
  journal_batch pending;
  std::unordered_map<uint64_t, size_t> pending_jobs;
  std::vector<journal_ack> pending_acks;
  /// The commit in flight: its number, its jobs and its callbacks.
  uint64_t commits = 0;
  bool commit_in_flight = false;
  std::vector<runtime::job_id> in_flight_jobs;
  std::vector<journal_ack> in_flight_acks;
  /// A journal_flush_atom is on its way.
  bool flush_scheduled = false;
  /// Jobs whose acceptance is being journaled (they count as queued).
  size_t awaiting_journal = 0;
  /// The last commit failed (a failure is logged once until one succeeds).
  bool journal_failing = false;
  /// After a failed commit the next one waits this long (doubling up to
  /// max_journal_retry_delay while commits keep failing), so a full disk is
  /// not retried in a busy loop; jobs accepted meanwhile wait for it.
  caf::timespan journal_retry_delay{0};
  static constexpr caf::timespan min_journal_retry_delay =
    std::chrono::milliseconds{100};
  static constexpr caf::timespan max_journal_retry_delay =
    std::chrono::seconds{2};

  /// Opens the journal's writer on `store` and rebuilds the jobs and
  /// estimates it holds (replay): queued jobs are queued again in their
  /// order, with queue deadlines from their first acceptance; jobs that
  /// were running are queued again with the attempt charged (their worker
  /// died with the head, or was stopped when its node lost the head);
  /// finished results are kept until their TTL.
  void open_journal(std::shared_ptr<journal_store> store);

  /// What the journal holds of `rec` now.
  journaled_job journaled_of(const job_record& rec) const;

  /// Journals `rec`'s current state with the next commit.
  void journal_job(const job_record& rec);

  /// Journals a learned memory estimate (now the figure of `key`).
  void journal_estimate(const std::string& key);

  /// Runs `fn` once every change journaled so far is durable (at once
  /// without a journal, or when nothing is pending). On a failed commit
  /// `fn` runs with the error, unless `waits_for_durability`: then it runs
  /// after the next commit that succeeds.
  void after_durable(std::function<void(const caf::error&)> fn,
                     bool waits_for_durability = false);

  /// Tells `rec`'s waiters, observers and webhook that it ended (once its
  /// end is journaled).
  void tell_end(job_record& rec, const std::string& webhook);

  /// Hands the pending changes to the writer unless a commit is in flight.
  void flush_journal();

  /// Asks for a journal_flush_atom unless one is on its way or a commit is
  /// in flight (its end flushes).
  void schedule_flush();

  /// The acceptance of job `id` is durable (or failed: the job is gone
  /// then): it enters the queue, or starts fetching its inputs.
  void journaled_accept(runtime::job_id id);

  /// Forgets `rec`, whose acceptance could not be journaled: its waiters
  /// get `err` and nothing of it remains.
  void drop_unjournaled(job_record& rec, const caf::error& err);

  /// Commit `number` ended: its callbacks run; a failed commit's jobs that
  /// never were durable are dropped (their clients get the error) and the
  /// others are journaled again with the next commit.
  void on_journaled(uint64_t number, caf::error err);

  /// Whether the journal has nothing pending or in flight.
  bool journal_idle() const noexcept {
    return !commit_in_flight && pending.empty() && pending_acks.empty();
  }

  // -- time, snapshots and events (admission_intake.cpp) -------------------

  time_point now() const;

  caf::timestamp wall(time_point t) const;

  /// What clients see of `rec` now.
  runtime::job_result snapshot(const job_record& rec) const;

  /// The event that tells `rec`'s current state (with `error` if given).
  runtime::job_event event_of(const job_record& rec, caf::error error) const;

  /// Tells `rec`'s observers its current state (with `error` if given).
  void emit(job_record& rec, caf::error error = {});

  // -- deadlines (admission_intake.cpp) ------------------------------------

  void set_deadline(job_record& rec, time_point when);

  /// Makes sure a tick arrives no later than `when`.
  void arm_tick(time_point when);

  void clear_deadline(job_record& rec);

  /// Ends the jobs whose deadlines passed and forgets expired results.
  void on_tick();

  caf::timespan effective_queue_timeout(const runtime::job_spec& spec) const;

  caf::timespan effective_run_timeout(const runtime::job_spec& spec) const;

  // -- admission (admission_intake.cpp) ------------------------------------

  /// Checks a request; none if it may be queued, and then `factory` says
  /// which model runs it, `declared` what memory the model declares and
  /// `shape_key` the key of its learned memory estimate.
  caf::error check(const runtime::job_spec& spec,
                   const gpu::model_factory*& factory, uint64_t& declared,
                   std::string& shape_key) const;

  /// Validates and queues a job; returns its record or the refusal.
  caf::expected<job_record*> accept(runtime::job_spec spec);

  /// Queues ended job `rec` again under its id for a client
  /// (runtime::admission_actor documents the refusals); like a new job it
  /// enters the queue once journaled.
  caf::error retry(job_record& rec);

  /// The commit of `rec`'s retry failed with `err`: the job ends again as
  /// before the retry.
  void undo_retry(job_record& rec, const caf::error& err);

  /// Puts `rec` in the queue (at the front for a retry).
  void enqueue(job_record& rec, bool at_front);

  /// Takes a queued job out of the queue (or stops waiting for its inputs,
  /// or out of the parked jobs).
  void leave_queue(job_record& rec);

  /// Why no device can take `rec` however long it waits as things stand
  /// (no node in service serves its model on a device of a kind it runs
  /// on), or nothing.
  std::optional<std::string> why_unplaceable(const job_record& rec) const;

  // -- transfers (admission_intake.cpp) ------------------------------------

  /// Fetches the job's audio on a transfer actor; the job enters the queue
  /// when it arrives. Its queue timeout runs meanwhile.
  void start_fetch(job_record& rec);

  void fetched(runtime::job_id id, std::string path, caf::error err);

  /// Uploads a finished job's video on a transfer actor; the job ends when
  /// the upload does. A video on a worker node is first copied to the head
  /// (start_staging).
  void start_upload(job_record& rec, std::string video);

  void uploaded(runtime::job_id id, caf::error err);

  // -- placement and attempts (admission_dispatch.cpp) ---------------------

  /// The bytes `rec`'s next attempt reserves: its shape's learned figure,
  /// else what its model declares.
  uint64_t estimate_of(const job_record& rec) const;

  /// Fails every queued job that no device can take any more.
  void fail_stranded_jobs();

  /// Starts every job that can start now, then gives the jobs queued since
  /// the last call their queue deadlines. Called after every change that
  /// may let a job start, and after every enqueue.
  void dispatch();

  void place();

  /// Parks `rec`, the job `entry` at the front of the queue stands for, if
  /// no device in service can run it, so that it holds up no job behind
  /// it; returns whether it did.
  bool park_if_unplaceable(job_record& rec, const job_queue::entry& entry);

  /// Puts the parked jobs that a device in service can run now back at the
  /// front of the queue, in acceptance order (their queue deadlines run
  /// on). Fails those too large for every such device (too_large), the
  /// check their intake could not make. Called whenever a device may have
  /// come into service: a node joined, a worker attached, a probe.
  void unpark();

  /// Whether `rec` may run in `slot`: not on a device whose worker died
  /// under it while another device that can run it is in service.
  bool may_retry_on(const job_record& rec, int32_t slot) const;

  /// The slot choose_device picks for `rec` needing `bytes`, or -1: from
  /// the ledger's index, or for a job with crash history (rare) from
  /// candidates filled by a scan of every device.
  int32_t choose(const job_record& rec, uint64_t bytes);

  /// Fills `candidates` with every ledger slot as seen by `rec`.
  void fill_candidates(const job_record& rec);

  /// Whether the device in `slot` (which must exist) is of a kind `rec`'s
  /// model runs on and on a node that serves it.
  bool could_run_on(const job_record& rec, int32_t slot) const;

  /// The job at the head of the queue, `head`, cannot start: it waits for
  /// memory, or for a slot, on the devices that can run it. Jobs behind it
  /// that fit now start first. Those that take a device `head` could run
  /// on bypass it: at most `max_bypass` of them over its whole wait, so it
  /// cannot be starved (0: none starts). Those that take a device it cannot
  /// run on (another kind, a node that does not serve its model) delay it
  /// in nothing and are not counted.
  template <class IsLive>
  void backfill(job_record& head, time_point t, IsLive& is_live);

  void start_attempt(job_record& rec, int32_t slot, uint64_t bytes);

  /// Marks `rec` as running its next attempt, reserving `bytes` per
  /// device; returns the time it started.
  time_point mark_running(job_record& rec, uint64_t bytes);

  /// Takes a slot and `bytes` of `slot`'s device for `rec`.
  void reserve_on(job_record& rec, int32_t slot, uint64_t bytes);

  /// The attempt `rec` just started: its deadline, journal, log line,
  /// event, and the tickets its workers get once its dispatch is durable.
  void announce_start(job_record& rec, time_point started);

  /// Sends the running attempt's tickets to its worker(s).
  void send_tickets(job_record& rec);

  /// Frees the slot and `reserved` bytes `rec` holds on `slot` (if it
  /// does); the device then finishes the job's output (its `finishing`).
  void free_slot_of(job_record& rec, int32_t slot, uint64_t& reserved);

  /// Frees the slot and memory of the job's attempt but keeps the attempt:
  /// its compute is done and the worker is writing its output.
  void free_slot(job_record& rec);

  /// Ends the job's attempt on its device: frees its slot and memory.
  void release(job_record& rec);

  /// Stops the running attempt of `rec` on its worker and frees its slot.
  void stop_attempt(job_record& rec);

  /// Charges a failure to a job that was running: queues it again while it
  /// has attempts left, else ends it with `reason`.
  void retry_or_fail(job_record& rec, caf::error reason, bool charge);

  /// Ends a job. `at` is when it ended (default: now). Its waiters,
  /// observers and webhook hear of the end once it is journaled.
  void finalize(job_record& rec, runtime::job_state state, caf::error error,
                std::string output = {},
                std::optional<time_point> at = std::nullopt);

  // -- gangs: jobs of several ranks (admission_gangs.cpp) -------------------

  /// Places gang `rec` needing `bytes` per rank all or nothing; returns
  /// whether it started.
  bool place_gang(job_record& rec, uint64_t bytes);

  /// Why a gang of `spec.ranks` needing `bytes` per rank could never be
  /// placed on the devices present (too large for any node, or for the
  /// cluster with --gang-across-nodes), or nothing.
  std::optional<std::string> gang_too_large(const gpu::model_factory& factory,
                                            const runtime::job_spec& spec,
                                            uint64_t bytes) const;

  /// The rank of gang `rec`'s running attempt whose lease is `lease`, or
  /// -1.
  int32_t rank_of(const job_record& rec, uint64_t lease) const;

  /// Ends every rank of gang `rec` but `keep`: each is aborted on its
  /// worker, its slot freed; `rec` then stands for rank `keep`'s attempt
  /// alone (device, lease, reservation), which the single-device logic
  /// ends.
  void collapse_gang(job_record& rec, int32_t keep);

  /// Frees every rank's slot of gang `rec`, aborting those not done.
  void release_gang(job_record& rec);

  /// Rank 0 of `rec`'s attempt opened the gang's rendezvous at `address`:
  /// the other ranks get it.
  void on_rendezvous(runtime::job_id id, uint64_t lease, std::string address);

  /// Rank `rank` of gang `rec` finished `step` steps: once every rank has,
  /// the job's progress is `step` and every rank may run the next one.
  void gang_progress(job_record& rec, int32_t rank, int32_t step);

  /// The ranks of gang `rec` (attempt `lease`) that finished `step` steps
  /// have waited settings.gang_timeout for the others: if none of those
  /// moved on meanwhile, the first of them hangs; the gang ends (the hung
  /// rank is aborted, in case it wakes) and the job is retried, charged.
  void on_straggler(runtime::job_id id, uint64_t lease, int32_t step);

  /// Rank `rank` of gang `rec` succeeded with `out` (rank 0's is the job's
  /// output). Returns whether every rank has: then `out` is rank 0's.
  bool gang_done(job_record& rec, int32_t rank, finished_job& out);

  // -- devices and worker reports (admission_devices.cpp) ------------------

  /// The job whose running attempt `lease` is, if the sender is the worker
  /// running it; null for stale or foreign reports. For a gang, `rank`
  /// receives the rank whose lease it is (else 0).
  job_record* attempt_of(runtime::job_id id, uint64_t lease,
                         int32_t* rank = nullptr);

  /// Whether the current message comes from an actor of this node.
  bool from_this_node() const;

  /// The node that sent the current message as its supervisor: this node
  /// for any local actor, else the node that is up and whose supervisor
  /// sent it; null for anyone else.
  cluster_node* sender_node();

  /// The ledger slot of `node`'s device with index `index`, or -1.
  int32_t slot_of(const cluster_node& node, int32_t index) const;

  /// The device with index `index` of the sender's node if the current
  /// message comes from its worker, else null.
  device_slot* device_of_sender(int32_t index);

  void attach(runtime::device_info info, device_worker_actor worker,
              int32_t restarts, const std::vector<std::string>& kept_models,
              uint64_t kept_resident);

  /// Asks the worker of `slot`, which attached holding attempts taken over
  /// from its rejoined node, to send again the outcomes the head may have
  /// missed; queues again (charged) the taken-over attempts it no longer
  /// runs.
  /// `taken`: the attempts (job, lease) taken over on the device.
  void resume_worker(int32_t slot, device_worker_actor worker,
                     std::vector<std::pair<runtime::job_id, uint64_t>> taken);

  /// Longest wait for a resumed worker's answer.
  static constexpr caf::timespan resume_timeout = std::chrono::seconds{30};

  /// A device's worker died: its jobs are queued again, and the death is
  /// charged to the job whose own failure explains it (reported by the
  /// worker, or the only job on the device), else to the device. Returns
  /// whether the device is to blame.
  bool detach(int32_t slot, caf::error reason);

  /// Takes a device out of service until it is probed after `cooldown`.
  void quarantine(int32_t slot, caf::error reason, caf::timespan cooldown);

  /// A quarantined device whose worker still lives takes jobs again.
  void probe(int32_t slot);

  /// A quarantined device takes jobs again: its last error says so.
  static void end_quarantine(device_slot& device);

  /// `rec` succeeded in `where`: every other device whose worker died
  /// under it, and which crashed at least crash_margin more jobs than
  /// `where`, was at fault, and its supervisor hears so.
  void exonerate(job_record& rec, int32_t where);

  void on_loaded(int32_t index, const std::string& model, uint64_t resident);

  void on_computed(runtime::job_id id, uint64_t lease);

  void on_progress(runtime::job_id id, uint64_t lease, int32_t step,
                   int32_t steps);

  void on_done(runtime::job_id id, uint64_t lease, finished_job out);

  void on_failed(runtime::job_id id, uint64_t lease, caf::error reason,
                 uint64_t needed_bytes);

  void on_crashed(runtime::job_id id, uint64_t lease, caf::error reason,
                  bool device_failed);

  // -- nodes (admission_nodes.cpp) -----------------------------------------

  /// Registers a worker node and its devices (jobs may be placed on them
  /// once their workers attach) and takes over the attempts it holds
  /// (take_over); returns the answer (the head's name, the leases to stop,
  /// the lease grace), or the refusal (errc::invalid_request: duplicate
  /// name, bad registration; errc::shutting_down). A node already up under
  /// the same CAF node registers anew: its old registration is lost first,
  /// its attempts held.
  caf::result<join_answer> join_node(node_registration reg);

  /// A monitored supervisor or worker of another node is gone: its node is
  /// lost when the supervisor went, or when the connection to its node did.
  void on_down(const caf::down_msg& msg);

  /// Takes `node`'s devices out of the ledger at once; the jobs that ran
  /// there are queued again, with the attempt counted when `charge` (a job
  /// that takes its node down every time must not loop forever; a node
  /// stopped on purpose charges nothing). With `hold` (the connection
  /// dropped: the node may still run them) and a lease grace, they stay
  /// the node's for settings.lease_grace instead (hold_attempt). `node` is
  /// shown as lost until settings.lost_node_ttl has passed.
  void lose_node(cluster_node& node, const std::string& why, bool charge = true,
                 bool hold = false);

  /// Frees the ledger slots of `node` (lost or re-registering) and forgets
  /// that any job crashed in them.
  void drop_slots(cluster_node& node);

  /// Forgets the nodes lost at least settings.lost_node_ttl ago.
  void forget_lost_nodes();

  // -- attempts held by nodes out of reach (admission_holds.cpp) -----------

  /// `rec`'s running attempt stays with worker node `node` (device index
  /// `index`), which the head cannot reach, until `until`: it leaves the
  /// ledger (the node's slots are lost or not there yet) but keeps its
  /// lease, its run deadline and its attempt count.
  void hold_attempt(job_record& rec, const std::string& node, int32_t index,
                    time_point until);

  /// `rec`'s attempt is no longer held (taken over, ended, queued again).
  void end_hold(job_record& rec);

  /// Queues again, charged, the attempts whose node did not come back
  /// before their hold ended (hold_until).
  void expire_holds(time_point t);

  /// `node` rejoined holding `leases`: the held attempts among them go back
  /// on its devices (slots and memory reserved again; their workers resume
  /// once attached); those it held but no longer has are queued again,
  /// charged. Returns the leases the head does not want, for the node to
  /// stop and forget.
  std::vector<held_lease> take_over(cluster_node& node,
                                    const std::vector<held_lease>& leases);

  /// Whether `rec`'s running attempt is on, or held by, a worker node.
  bool runs_on_worker_node(const job_record& rec) const;

  /// Every device for `vidctl nodes`: node by node in the order they
  /// joined (this one first), each node's devices by index.
  std::vector<runtime::device_status> device_statuses() const;

  // -- files across nodes (admission_files.cpp) ----------------------------

  /// A client's read of a piece of job `id`'s video, served by the node
  /// that holds it (runtime::admission_actor documents the errors).
  caf::result<runtime::output_chunk>
  read_output(runtime::job_id id, uint64_t offset, uint32_t max_bytes);

  /// A worker node's read of a piece of the input of job `id`'s running
  /// attempt `lease`; only the node that runs the attempt may read it.
  caf::result<runtime::output_chunk> read_input(runtime::job_id id,
                                                uint64_t lease, uint64_t offset,
                                                uint32_t max_bytes);

  /// Reads `path` on `node` (the head's own files on a local reader, a
  /// worker node's through its supervisor) and answers with the chunk, or
  /// with an error that names the node.
  caf::result<runtime::output_chunk> read_on(const cluster_node& node,
                                             std::string path, uint64_t offset,
                                             uint32_t max_bytes);

  /// Asks for the next piece of read `number`.
  void read_piece(uint64_t number);

  /// Piece `asked` bytes long of read `number` arrived: joins it, then
  /// answers the read or asks for the next piece.
  void piece_read(uint64_t number, uint32_t asked,
                  runtime::output_chunk& piece);

  /// Answers read `number` (if still in flight) with `x`.
  void answer_read(uint64_t number, caf::expected<runtime::output_chunk> x);

  /// Answers the reads in flight on `node` (it was lost) with
  /// output_unavailable naming it and `why`.
  void fail_reads(const cluster_node& node, const std::string& why);

  /// Answers every read in flight with shutting_down (admission stops).
  void fail_all_reads();

  /// Whether `rec`'s video was written on another node than the head.
  bool output_is_remote(const job_record& rec) const;

  /// Where `rec`'s written video is, for messages: its path, and the node
  /// when that is not the head.
  std::string where_kept(const job_record& rec) const;

  /// Copies `rec`'s video from the worker node that wrote it to the head's
  /// staging directory, then uploads it from there (the head's transfers
  /// and URL policy do every upload); the staged copy is removed when the
  /// upload ends, whatever the end.
  void start_staging(job_record& rec);

  /// A staging copy ended: uploads the copy, or fails the job (re-queues it
  /// when the worker node was lost, since the video went with it).
  void copied(uint64_t copy, std::string path, caf::error err);

  /// Removes staged copies left by an earlier run of the head (its
  /// `staging/` subdirectory of the output directory); called at start.
  void clear_staging() const;

  // -- metrics (admission_metrics.cpp) ------------------------------------

  /// The queue, devices and nodes now (metrics_atom).
  node_metrics metrics();

  /// Tells the observer that `rec` ended (called by finalize).
  void observe_end(const job_record& rec);

  // -- shutdown (admission_shutdown.cpp) -----------------------------------

  /// Whether a running job's compute is done: its video is being written
  /// by its worker or uploaded.
  bool past_compute(const job_record& rec) const;

  /// Starts stopping the node: new jobs are refused, queued and running
  /// jobs cancelled (with a journal: kept for the next start, see
  /// keep_for_next_start); jobs whose video is being written or uploaded get
  /// until settings.shutdown_grace, and so do webhooks; `promise` is
  /// answered when all of that ended.
  void shutdown(caf::typed_response_promise<caf::ok_atom> promise);

  /// With a journal, a job that is queued or running when the node stops
  /// is kept for the next start instead of cancelled: it is journaled as
  /// queued (a stopped attempt is not charged) and leaves the queue and its
  /// device; its waiters stay until the process goes (then they reconnect
  /// to the restarted head).
  void keep_for_next_start(job_record& rec);

  /// The grace period ended: jobs still writing or uploading their video
  /// are cancelled (a written video's path is in the result).
  void grace_over();

  /// Once no job is left in grace, drains the webhooks for what is left of
  /// the grace period, then answers shutdown.
  void finish_shutdown_if_done();
};

} // namespace vidnode::actors
