#pragma once

/// @file
/// The protocol every vidnode client speaks: `vidctl`, a CAF application,
/// later the HTTP gateway. It is the typed interface of the admission actor,
/// published by `vidnode` (see net/server.hpp). Keep it small and stable:
/// messages are only ever added.
///
/// Errors come back as `caf::error`s of category "vidnode" (errc.hpp) whose
/// context names the field or the cause. A remote client must watch the
/// connection itself: CAF does not fail requests in flight to a node that
/// died (net/client.hpp does this for you).

#include <cstdint>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "vidnode/runtime/job.hpp"

namespace vidnode::runtime {

/// Sent in the handshake (`middleman.app-identifiers`): nodes and clients
/// of incompatible protocol versions refuse each other at connect.
/// Version 2 added `read_output` and job_result::output_node; version 3 the
/// models a node serves (node registrations, device_status::served_models);
/// version 4 the attempts a worker node holds when it registers, and the
/// head's join answer (leases to stop, the lease grace); version 5 gangs
/// (job_spec::ranks); version 6 the HTTP gateway endpoint of a job
/// (job_spec, job_result and list_query `endpoint`) and `retry`; version 7
/// the phases of a finished attempt (finished_job::phases).
constexpr const char* protocol_version = "vidnode/7";

/// Submit a job; the reply is its id (or a refusal).
using submit_atom = caf::atom_constant<caf::atom("submit")>;
/// Submit a job and reply only when it has ended, with its result.
using execute_atom = caf::atom_constant<caf::atom("execute")>;
/// Where a job stands now.
using status_atom = caf::atom_constant<caf::atom("status")>;
/// Wait until a job has ended, or at most a given time.
using wait_atom = caf::atom_constant<caf::atom("wait")>;
/// Cancel a queued or running job.
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
/// The jobs a node knows.
using list_atom = caf::atom_constant<caf::atom("list")>;
/// The devices of the cluster and their state.
using nodes_atom = caf::atom_constant<caf::atom("nodes")>;
/// Receive a job's events.
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
/// Read a piece of a job's video file.
using read_output_atom = caf::atom_constant<caf::atom("readout")>;
/// Queue a failed or timed-out job again under its id.
using retry_atom = caf::atom_constant<caf::atom("retry")>;

/// The length of a chunk clients ask for by default: 1 MiB.
constexpr uint32_t default_chunk_bytes = uint32_t{1} << 20;

/// The longest chunk a read returns: 4 MiB (longer asks are cut to it).
constexpr uint32_t max_chunk_bytes = uint32_t{4} << 20;

/// Room kept in a message for what surrounds a chunk's bytes: the reply's
/// other fields and type names and the actors it passed (a reply of 1 MiB
/// measured 40 bytes more; CAF's 32-byte BASP header is not counted against
/// a message size limit).
constexpr uint32_t chunk_envelope_bytes = 4096;

/// The length to ask for per chunk when the reply must fit in
/// `max_message_size` bytes, the longest message the asker accepts (its
/// --max-message-size: replies come to the asker): `wanted`, cut to
/// max_chunk_bytes and to `max_message_size` less chunk_envelope_bytes,
/// and at least 1. Every chunk vidnode asks for (a client's reads, the
/// head's reads of a worker node's files, copies between nodes) is sized
/// here; whoever answers never sends more than was asked.
constexpr uint32_t chunk_bytes_within(uint64_t max_message_size,
                                      uint32_t wanted = default_chunk_bytes) {
  uint64_t room = max_message_size > chunk_envelope_bytes
                    ? max_message_size - chunk_envelope_bytes
                    : 1;
  uint64_t length = wanted < max_chunk_bytes ? wanted : max_chunk_bytes;
  length = length < room ? length : room;
  return length > 0 ? static_cast<uint32_t>(length) : 1;
}

/// A piece of a job's video file.
struct output_chunk {
  /// The file's size in bytes when the chunk was read (the same for every
  /// chunk of a file that does not change; a reader compares them).
  uint64_t size = 0;
  /// The bytes from the offset asked for: at most the length asked for, and
  /// fewer only at the end of the file (none at the end).
  std::vector<uint8_t> bytes;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, output_chunk& x) {
  return f(caf::meta::type_name("vidnode::output_chunk"), x.size, x.bytes);
}

/// What a subscriber implements to receive a job's events.
using job_observer_actor = caf::typed_actor<caf::reacts_to<job_event>>;

/// The admission actor as clients see it.
///
/// - `submit, spec -> id`: validates and queues the job. Refusals:
///   invalid_request, unknown_model, queue_full, too_large, shutting_down;
///   a refused job changes nothing. A repeated idempotency key returns the
///   first job's id (invalid_request if the spec differs).
/// - `execute, spec -> result`: submit, then reply when the job has ended.
/// - `status, id -> result`: a snapshot; unknown_job if the id is unknown or
///   its result has expired.
/// - `wait, id, max_wait -> result`: replies when the job has ended, or
///   after `max_wait` (zero: no limit) with a snapshot that is not terminal.
/// - `cancel, id -> result`: a queued job is dropped, a running one is
///   stopped and its device slot freed at once; the result says `cancelled`.
///   A job that had already ended is returned unchanged.
/// - `list, query -> results`: see list_query.
/// - `nodes -> devices`: one entry per device.
/// - `subscribe, id, observer -> result`: the observer receives every later
///   event of the job; the reply is the current snapshot. An ended job sends
///   no events.
/// - `read_output, id, offset, max_bytes -> chunk`: up to `max_bytes` (cut
///   to max_chunk_bytes) of the job's video file from byte `offset`, read on
///   the node that wrote it (job_result::output_node) and relayed by the
///   head, which reads it from that node in pieces that fit its own message
///   size limit and answers with them joined; stateless, so a client reads
///   a file chunk by chunk and may have several reads in flight. A client
///   asks for chunk_bytes_within its own message size limit. Errors:
///   unknown_job; no_output (the job has not ended, has no video file, or its
///   output is a URL); invalid_request
///   (`offset` beyond the end); output_unavailable (the node that holds the
///   video is lost or gone, the file was removed, a read failed; each named
///   in the context). A job whose upload failed or was cancelled still has
///   its video file, and reads serve it.
/// - `retry, id -> result`: a job that ended `failed` or `timed_out`, and
///   whose result is still kept, is queued again under the same id with the
///   same spec, as if just accepted: state queued; error, output and
///   output_node cleared; attempts, step and steps 0; accepted_at now;
///   started_at, computed_at and finished_at the epoch; queue_time and
///   run_time 0. It passes the checks of a new submission (shutting_down,
///   queue_full, unknown_model or worker_lost for a model no node serves
///   any more, too_large) and is journaled like one (journal_unavailable
///   when that fails); a refused retry changes nothing. The reply is the
///   job's snapshot once the retry is durable; subscribers then get its
///   events as for any job. A job in another state is refused with
///   invalid_request (its state unchanged); unknown_job if the id is
///   unknown or its result has expired.
using admission_actor = caf::typed_actor<
  caf::replies_to<submit_atom, job_spec>::with<job_id>,
  caf::replies_to<execute_atom, job_spec>::with<job_result>,
  caf::replies_to<status_atom, job_id>::with<job_result>,
  caf::replies_to<wait_atom, job_id, caf::timespan>::with<job_result>,
  caf::replies_to<cancel_atom, job_id>::with<job_result>,
  caf::replies_to<list_atom, list_query>::with<std::vector<job_result>>,
  caf::replies_to<nodes_atom>::with<std::vector<device_status>>,
  caf::replies_to<subscribe_atom, job_id, job_observer_actor>::with<job_result>,
  caf::replies_to<read_output_atom, job_id, uint64_t,
                  uint32_t>::with<output_chunk>,
  caf::replies_to<retry_atom, job_id>::with<job_result>>;

} // namespace vidnode::runtime
