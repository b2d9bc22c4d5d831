#pragma once

/// @file
/// Every typed actor interface inside a node, in one place. The client
/// protocol (what `vidctl` speaks) is runtime/protocol.hpp; this file adds
/// the messages between admission, the node supervisor and device workers.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "vidnode/actors/node_metrics.hpp"
#include "vidnode/runtime/device.hpp"
#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::actors {

/// One attempt of a job, sent by admission to a device worker.
struct job_ticket {
  runtime::job_id id;
  /// Unique per attempt: every report about the attempt carries it, so a
  /// report from an earlier attempt or a replaced worker is recognised and
  /// ignored.
  uint64_t lease = 0;
  runtime::job_spec spec;
  /// 1 for the first attempt.
  int32_t attempt = 1;
  /// The fetched audio track to mux into the video, if any: a path on the
  /// head, which a worker on another node copies (read_input) before it
  /// starts the attempt.
  std::string audio_path;
  /// This attempt's rank in its gang, and the gang's ranks (spec.ranks);
  /// 0 and 1 for a job of one device. Rank 0 opens the gang's rendezvous
  /// and sends its address (rendezvous_atom); admission hands it to the
  /// other ranks, which start the attempt once they have it.
  int32_t rank = 0;
  int32_t world = 1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_ticket& x) {
  return f(caf::meta::type_name("vidnode::job_ticket"), x.id, x.lease, x.spec,
           x.attempt, x.audio_path, x.rank, x.world);
}

/// Where one attempt's wall time went on its device worker, phase by phase
/// (steady-clock durations measured by the worker around its own calls).
/// The phases do not overlap; their sum is the attempt's time from the
/// worker receiving it to its report, less time queued for a free lane.
struct job_phases {
  /// Loading the model this attempt needed (zero when it was cached; the
  /// attempt that triggered a load, or waited for one, is charged the wait).
  caf::timespan load{0};
  /// pipeline::begin (prompt conditioning, initial latents).
  caf::timespan prepare{0};
  /// Inside job_run::step calls, all steps together.
  caf::timespan steps{0};
  /// Of `steps`, the device's kernel time as the pipeline measured it
  /// (gpu::run_profile::kernel; on cpu devices equal to `steps`; zero when
  /// unknown, e.g. sim).
  caf::timespan kernel{0};
  /// Of `steps` and `decode`, reading the allocator's statistics
  /// (gpu::run_profile::memory_measurement).
  caf::timespan memory_measurement{0};
  /// job_run::finish (decoding latents to frames, copying them to the host).
  caf::timespan decode{0};
  /// Between the worker's pipeline calls: step messages, progress reports,
  /// hand-offs to a lane's thread and back, spawning the encoder.
  caf::timespan handoff{0};
  /// Writing the video file (the encoder's thread; the device is already
  /// free for the next job then).
  caf::timespan encode{0};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_phases& x) {
  return f(caf::meta::type_name("vidnode::job_phases"), x.load, x.prepare,
           x.steps, x.kernel, x.memory_measurement, x.decode, x.handoff,
           x.encode);
}

/// What a device worker reports when a job succeeded.
struct finished_job {
  /// Path or URL of the output.
  std::string output;
  /// Peak device memory the job used, in bytes (0 if unknown).
  uint64_t peak_bytes = 0;
  /// Where the attempt's time went on the device worker.
  job_phases phases;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, finished_job& x) {
  return f(caf::meta::type_name("vidnode::finished_job"), x.output,
           x.peak_bytes, x.phases);
}

/// Supervisor -> worker: load a model now, without a job (`--preload`); the
/// reply comes once it is in the device's cache.
using preload_atom = caf::atom_constant<caf::atom("preload")>;

/// Admission -> worker: run one attempt of a job.
using run_atom = caf::atom_constant<caf::atom("run")>;
/// Admission -> worker: stop an attempt (cancelled or timed out).
using abort_atom = caf::atom_constant<caf::atom("abort")>;
/// Worker -> itself: advance an attempt by one step.
using step_atom = caf::atom_constant<caf::atom("step")>;
/// Worker -> itself: a simulated load finished. Worker -> admission: a model
/// is in the device's cache now, holding so many bytes of device memory.
using loaded_atom = caf::atom_constant<caf::atom("loaded")>;
/// Worker -> admission: an attempt made progress.
using progress_atom = caf::atom_constant<caf::atom("progress")>;
/// Worker -> admission: an attempt's compute is done; its output is being
/// written off the device (its slot and memory are free).
using computed_atom = caf::atom_constant<caf::atom("computed")>;
/// Encoder -> worker: an attempt's video is written (a path, or an error),
/// and how long writing it took.
using encoded_atom = caf::atom_constant<caf::atom("encoded")>;
/// Worker -> admission: an attempt succeeded.
using done_atom = caf::atom_constant<caf::atom("done")>;
/// Transfer task -> admission: a job's input was fetched (or not).
using fetched_atom = caf::atom_constant<caf::atom("fetched")>;
/// Transfer task -> admission: a job's output was uploaded (or not).
using uploaded_atom = caf::atom_constant<caf::atom("uploaded")>;
/// Worker -> admission: an attempt failed (the worker may exit after it);
/// after out_of_memory, with the least the job needs in bytes (else 0).
using failed_atom = caf::atom_constant<caf::atom("failed")>;
/// Worker -> admission: an attempt's pipeline call crashed the worker, which
/// exits next. The flag says whether the device itself failed
/// (gpu::device_failure: nothing is charged to the job) or the job did (the
/// crash is charged to it, not to the device).
using crashed_atom = caf::atom_constant<caf::atom("crashed")>;
/// Supervisor -> admission: a device's worker is up, with the models it
/// kept from its predecessor and the device memory they hold.
using attach_atom = caf::atom_constant<caf::atom("attach")>;
/// Supervisor -> admission: a device's worker died. The reply says whether
/// the device is to blame (true) or a job it ran (false: the death was
/// charged to that job).
using detach_atom = caf::atom_constant<caf::atom("detach")>;
/// Supervisor -> admission: a device is out of service (its worker died too
/// often for reasons no job explains) until it is probed after a cool-down.
using quarantine_atom = caf::atom_constant<caf::atom("quarantine")>;
/// Supervisor -> itself: a quarantined device's cool-down has passed.
/// Supervisor -> admission: a quarantined device whose worker still lives
/// takes jobs again, on probation.
using probe_atom = caf::atom_constant<caf::atom("probe")>;
/// Admission -> supervisor: a device failed a job that then succeeded on
/// another device: evidence that the device, not the job, was at fault.
using fault_atom = caf::atom_constant<caf::atom("fault")>;
/// A gang's rank 0 worker -> admission: the address of the gang's
/// rendezvous (gpu::host_rendezvous; empty on devices whose kind has no
/// collective backend). Admission -> the other ranks' workers: join it.
using rendezvous_atom = caf::atom_constant<caf::atom("rendezvous")>;
/// Admission -> a gang's workers: every rank has finished so many steps;
/// the next one may run (ranks advance in lockstep).
using advance_atom = caf::atom_constant<caf::atom("advance")>;
/// Admission -> itself: the ranks of a gang that finished a step have
/// waited --gang-timeout for the others (job, lease of rank 0, step).
using straggler_atom = caf::atom_constant<caf::atom("straggler")>;
/// Admission -> itself: deadlines may have passed.
using tick_atom = caf::atom_constant<caf::atom("tick")>;
/// Admission -> itself: a bounded wait ran out.
using wait_expired_atom = caf::atom_constant<caf::atom("waitexp")>;
/// Supervisor -> itself: restart a device's worker.
using restart_atom = caf::atom_constant<caf::atom("restart")>;
/// Node -> admission or supervisor: finish every job / stop every worker,
/// then reply.
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
/// Admission's timer when the node stops: the shutdown grace period ended.
using grace_atom = caf::atom_constant<caf::atom("grace")>;

/// A node -> the head's registry -> admission: a node registers its
/// supervisor and devices.
using join_atom = caf::atom_constant<caf::atom("join")>;
/// A worker node's cluster member -> its supervisor: the admission actor to
/// attach the devices to, and the attempts to stop (null: the head stayed
/// away past its lease grace; stop every job). Supervisor -> a device
/// worker: report to this admission actor from now on.
using bind_atom = caf::atom_constant<caf::atom("bind")>;

/// The head -> a node's supervisor -> a file reader: read a piece of a file
/// in the node's output directory (file_chunks.hpp).
using read_file_atom = caf::atom_constant<caf::atom("readfile")>;
/// A worker node's device worker -> admission: read a piece of the input
/// (the fetched audio) of the job whose attempt it runs.
using read_input_atom = caf::atom_constant<caf::atom("readinput")>;
/// A chunked copy -> whoever started it (a device worker: its attempt's
/// input; admission: a video staged for its upload): the file is copied, or
/// why not.
using copied_atom = caf::atom_constant<caf::atom("copied")>;
/// Admission -> itself: hand the journal's pending changes to its writer.
using journal_flush_atom = caf::atom_constant<caf::atom("jflush")>;
/// Journal writer -> admission: commit number N is durable (or failed with
/// the error).
using journaled_atom = caf::atom_constant<caf::atom("journaled")>;

/// A worker node's member -> its supervisor: the attempts the node's
/// devices hold.
using held_atom = caf::atom_constant<caf::atom("held")>;
/// A worker node's member -> admission: is this node still registered?
/// (ok, or node_lost when the head lost it; each ok renews the node's
/// leases). Member -> its supervisor: the node's attempts may run until
/// the given time of the actor clock (nanoseconds since its epoch).
using renew_atom = caf::atom_constant<caf::atom("renew")>;
/// Admission -> a device worker whose attempts it took over after a
/// rejoin: send the outcomes of the attempts that ended again.
using resume_atom = caf::atom_constant<caf::atom("resume")>;

/// A metrics endpoint -> admission: the state of the queue, the devices and
/// the nodes now (node_metrics). -> a worker node's supervisor: the state of
/// its devices.
using metrics_atom = caf::atom_constant<caf::atom("metrics")>;

/// An attempt a worker node holds: running on one of its devices, or ended
/// there recently (its outcome kept for a head that may not have heard it).
struct held_lease {
  runtime::job_id id;
  /// The attempt's job_ticket::lease.
  uint64_t lease = 0;
  /// The index of the device that runs or ran it.
  int32_t device = -1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, held_lease& x) {
  return f(caf::meta::type_name("vidnode::held_lease"), x.id, x.lease,
           x.device);
}

/// The leases of the attempts a device worker runs (its reply to resume).
/// A type of vidnode's own rather than a bare `std::vector<uint64_t>`, whose
/// registration would take that common type's wire name from a host
/// application that embeds vidnode (or give it vidnode's). On the wire it
/// is what protocol vidnode/4 sent: the name "vidnode::lease_list" and the
/// vector's bytes.
struct lease_list {
  std::vector<uint64_t> leases;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lease_list& x) {
  return f(caf::meta::type_name("vidnode::lease_list"), x.leases);
}

/// A device worker: owns one device and its pipeline cache.
/// Runs detached (its own thread) for devices whose pipelines block.
///
/// `copied, lease, path, error`: the input of attempt `lease`, copied from
/// the head (a worker on another node than admission copies a ticket's
/// audio_path before it starts the attempt), is at `path`, or `error`.
///
/// `bind, admission`: its supervisor hands it the admission actor of a head
/// that took over its attempts after the node rejoined (an
/// admission_control_actor as an untyped handle); its reports go there from
/// now on. `resume -> leases`: that admission actor attached it; the
/// outcomes of attempts that ended while no head heard them are sent again,
/// then the leases of the attempts it runs are the reply (one the head
/// took over that is in neither died with an earlier worker).
using device_worker_actor = caf::typed_actor<
  caf::reacts_to<run_atom, job_ticket>,
  caf::reacts_to<abort_atom, runtime::job_id, uint64_t>,
  caf::reacts_to<step_atom, uint64_t>, caf::reacts_to<loaded_atom, std::string>,
  caf::reacts_to<encoded_atom, uint64_t, std::string, caf::error,
                 caf::timespan>,
  caf::reacts_to<copied_atom, uint64_t, std::string, caf::error>,
  caf::reacts_to<bind_atom, caf::actor>,
  caf::replies_to<resume_atom>::with<lease_list>,
  caf::reacts_to<rendezvous_atom, runtime::job_id, uint64_t, std::string>,
  caf::reacts_to<advance_atom, uint64_t, int32_t>,
  caf::replies_to<preload_atom, std::string>::with<bool>>;

/// The node supervisor: spawns, monitors and restarts device workers,
/// quarantines devices that fail whatever runs on them and probes them again
/// after a cool-down. On a worker node, `bind, admission, stop` says which
/// admission actor (the head's, an admission_control_actor as an untyped
/// handle: the two interfaces name each other) its workers report to: live
/// workers carry on with their attempts and report there, except the
/// attempts in `stop` (the head no longer wants them), which are aborted;
/// a null admission actor (the head stayed away past its lease grace) ends
/// every worker, and so every attempt, keeping the loaded models.
///
/// `held -> leases`: the attempts the node's devices run, and those that
/// ended recently (lease_book), for a registration.
///
/// `metrics -> devices`: the node's devices as the supervisor sees them
/// (state, slots in use by the attempts they run, memory, restarts; no
/// models: the workers own those), for actors of this node only
/// (unauthorized for anyone else).
///
/// `read_file, path, offset, max_bytes -> chunk`: a piece of a file inside
/// the node's output directory, read on a short-lived detached actor of its
/// own (file_chunks.hpp: read_file_chunk's rules and errors), so disk I/O
/// never blocks the supervisor. Served to actors of this node and of the
/// node of the admission actor it is bound to (the head); refused
/// (unauthorized) to anyone else.
using node_supervisor_actor = caf::typed_actor<
  caf::reacts_to<restart_atom, int32_t>, caf::reacts_to<probe_atom, int32_t>,
  caf::reacts_to<fault_atom, int32_t, caf::error>,
  caf::reacts_to<bind_atom, caf::actor, std::vector<held_lease>>,
  caf::replies_to<held_atom>::with<std::vector<held_lease>>,
  caf::reacts_to<renew_atom, int64_t>,
  caf::replies_to<metrics_atom>::with<std::vector<device_metrics>>,
  caf::replies_to<read_file_atom, std::string, uint64_t,
                  uint32_t>::with<runtime::output_chunk>,
  caf::replies_to<shutdown_atom>::with<caf::ok_atom>>;

/// What a node sends to register with the head.
struct node_registration {
  /// Its `--node-name`.
  std::string name;
  /// runtime::protocol_version of the node (must equal the head's).
  std::string protocol;
  /// Its supervisor (which attaches the device workers next).
  node_supervisor_actor supervisor;
  /// Its devices; `index` is unique and is what its messages name.
  std::vector<runtime::device_info> devices;
  /// The models it serves, as model patterns (runtime/model_pattern.hpp;
  /// gpu::model_catalog::served): the head places only jobs of these
  /// models on its devices.
  std::vector<std::string> models;
  /// The attempts its devices run or ended recently (lease_book): the head
  /// takes over those it still wants and stops the others.
  std::vector<held_lease> leases;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_registration& x) {
  return f(caf::meta::type_name("vidnode::node_registration"), x.name,
           x.protocol, x.supervisor, x.devices, x.models, x.leases);
}

/// The head's answer to a registration it accepted.
struct join_answer {
  /// The head's node name.
  std::string head;
  /// The registration's attempts the head does not want (cancelled, timed
  /// out, run again elsewhere, or already reported): the node stops them
  /// and forgets their outcomes.
  std::vector<held_lease> stop;
  /// How long the head keeps a node's running attempts for it when the two
  /// lose each other (node_settings::lease_grace): the node runs them on
  /// for that long, less its own node timeout, while it joins again, then
  /// stops them (the head has run them again elsewhere by then).
  caf::timespan lease_grace{0};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, join_answer& x) {
  return f(caf::meta::type_name("vidnode::join_answer"), x.head, x.stop,
           x.lease_grace);
}

/// The admission actor with the messages devices and the supervisor send
/// it. Only `runtime::admission_actor` is published; reports are accepted
/// only from the worker currently registered for the device.
///
/// `read_input, id, lease, offset, max_bytes -> chunk`: a piece of the
/// input (the fetched audio) of job `id`'s running attempt `lease`, for the
/// node that runs it; refused (unauthorized) to any other sender, no_output
/// when the attempt has no input or is no longer running.
///
/// `metrics -> snapshot`: the queue, devices and nodes now, for actors of
/// this node only (unauthorized for anyone else); O(jobs + devices).
using admission_control_actor = runtime::admission_actor::extend<
  caf::replies_to<read_input_atom, runtime::job_id, uint64_t, uint64_t,
                  uint32_t>::with<runtime::output_chunk>,
  caf::replies_to<join_atom, node_registration>::with<join_answer>,
  caf::replies_to<renew_atom>::with<caf::ok_atom>,
  caf::reacts_to<attach_atom, runtime::device_info, device_worker_actor,
                 int32_t, std::vector<std::string>, uint64_t>,
  caf::replies_to<detach_atom, int32_t, caf::error>::with<bool>,
  caf::reacts_to<quarantine_atom, int32_t, caf::error, caf::timespan>,
  caf::reacts_to<probe_atom, int32_t>,
  caf::reacts_to<loaded_atom, int32_t, std::string, uint64_t>,
  caf::reacts_to<computed_atom, runtime::job_id, uint64_t>,
  caf::reacts_to<fetched_atom, runtime::job_id, std::string, caf::error>,
  caf::reacts_to<uploaded_atom, runtime::job_id, caf::error>,
  caf::reacts_to<copied_atom, uint64_t, std::string, caf::error>,
  caf::reacts_to<progress_atom, runtime::job_id, uint64_t, int32_t, int32_t>,
  caf::reacts_to<rendezvous_atom, runtime::job_id, uint64_t, std::string>,
  caf::reacts_to<done_atom, runtime::job_id, uint64_t, finished_job>,
  caf::reacts_to<failed_atom, runtime::job_id, uint64_t, caf::error, uint64_t>,
  caf::reacts_to<crashed_atom, runtime::job_id, uint64_t, caf::error, bool>,
  caf::reacts_to<tick_atom>,
  caf::reacts_to<wait_expired_atom, runtime::job_id, uint64_t>,
  caf::reacts_to<straggler_atom, runtime::job_id, uint64_t, int32_t>,
  caf::reacts_to<grace_atom>, caf::reacts_to<journal_flush_atom>,
  caf::replies_to<metrics_atom>::with<node_metrics>,
  caf::reacts_to<journaled_atom, uint64_t, caf::error>,
  caf::replies_to<shutdown_atom>::with<caf::ok_atom>>;

/// Admission -> webhook sender: POST a job's result to its webhook URL.
using notify_atom = caf::atom_constant<caf::atom("notify")>;
/// One try of a webhook -> its sender: how it ended.
using notified_atom = caf::atom_constant<caf::atom("notified")>;
/// The webhook sender's timer: try a delivery again.
using retry_atom = caf::atom_constant<caf::atom("retry")>;
/// Admission -> webhook sender, when the node stops: answer once every
/// delivery ended, or at once after the given grace period, aborting the
/// deliveries still under way.
using drain_atom = caf::atom_constant<caf::atom("drain")>;
/// The webhook sender's timer: the drain's grace period ended.
using drained_atom = caf::atom_constant<caf::atom("drained")>;

/// Delivers webhooks for one node's admission: each try on an actor of its
/// own, failed tries again after a delay (node_settings::webhook_attempts,
/// webhook_retry_delay), so a receiver that restarts still gets its result.
using webhook_sender_actor = caf::typed_actor<
  caf::reacts_to<notify_atom, std::string, runtime::job_result>,
  caf::reacts_to<notified_atom, uint64_t, caf::error>,
  caf::reacts_to<retry_atom, uint64_t>,
  caf::replies_to<drain_atom, caf::timespan>::with<caf::ok_atom>,
  caf::reacts_to<drained_atom>>;

/// The head's registry of nodes, published on the cluster port (separate
/// from the client port): a node that joins gets the admission actor to
/// report to and admission's answer, or the refusal.
using cluster_registry_actor = caf::typed_actor<caf::replies_to<
  join_atom, node_registration>::with<admission_control_actor, join_answer>>;

/// Adds to `cfg` every message type of this file and of the client
/// protocol (runtime::add_types), and vidnode's error category ("vidnode",
/// rendered by runtime::describe). Call it once, before the actor_system is
/// created (types cannot be added later), in every process that runs a
/// node; a host application that embeds vidnode calls it on its own
/// actor_system_config, or net::configure_host (net/embedding.hpp), which
/// calls it, when the process talks to other vidnode processes.
///
/// Every name registered is in vidnode's namespace ("vidnode::job_spec",
/// and CAF's "std::vector<vidnode::job_spec>" for containers), and every
/// type is vidnode's own or a container of one: CAF 0.17.6 keeps the first
/// name a C++ type is registered under, so registering a common type such
/// as std::vector<uint64_t> would give it vidnode's name in the host's
/// messages, or the host's name in vidnode's. A host's own types, and its
/// atoms (CAF atoms are values, not registrations), cannot collide with
/// vidnode's. Type-ID blocks are not used.
void add_types(caf::actor_system_config& cfg);

} // namespace vidnode::actors
