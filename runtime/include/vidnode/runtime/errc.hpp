#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/fwd.hpp>

namespace vidnode::runtime {

/// Every error vidnode reports, registered with CAF as the category
/// `vidnode` so that it crosses the network with its context (one string
/// that names the field or the cause). Codes are stable: new codes are only
/// ever appended.
enum class errc : uint8_t {
  /// The request is malformed: the context names the field and the reason.
  invalid_request = 1,
  /// No pipeline of that name exists on this node.
  unknown_model,
  /// The queue holds its maximum number of jobs; nothing was changed.
  queue_full,
  /// The job's estimated peak memory exceeds the budget of every device.
  too_large,
  /// The job waited in the queue past its queue timeout.
  queue_timeout,
  /// The job ran past its run timeout.
  run_timeout,
  /// The job was cancelled (by a client, or by the node shutting down).
  cancelled,
  /// The device ran out of memory while running the job.
  out_of_memory,
  /// The device worker running the job died.
  worker_lost,
  /// The node that runs the job (or that a client talks to) is gone.
  node_lost,
  /// The client may not do this.
  unauthorized,
  /// A bug or an unexpected condition inside vidnode.
  internal,
  /// No job with that id is known (never was, or its result expired).
  unknown_job,
  /// The node is shutting down and accepts no new work.
  shutting_down,
  /// Fetching an input or uploading an output failed: the context names the
  /// URL and the cause.
  transfer_failed,
  /// The job has no video file to read: it has not ended, it ended without
  /// one, or its output is a URL (it was uploaded) or not a file. The
  /// context says which.
  no_output,
  /// The job's video cannot be read now: the node that holds it is lost or
  /// gone, the file was removed, or reading it failed. The context names
  /// the node and the cause.
  output_unavailable,
  /// The head cannot journal: the job was not accepted because its record
  /// could not be made durable (the disk is full, or writing failed), or
  /// the journal cannot be opened. The context names the file and cause.
  journal_unavailable,
};

/// The name of a code as users see it ("queue_full").
const char* to_string(errc code) noexcept;

/// Parses the name of a code; false if it names none.
bool from_string(const std::string& name, errc& code) noexcept;

/// The CAF error category of `errc` (the atom "vidnode").
caf::atom_value error_category() noexcept;

/// An error with no context.
caf::error make_error(errc code);

/// An error whose context says what went wrong, e.g.
/// `make_error(errc::invalid_request, "width: must be a multiple of 8")`.
caf::error make_error(errc code, std::string detail);

/// True if `err` is a vidnode error with code `code`.
bool is(const caf::error& err, errc code) noexcept;

/// The context string of a vidnode error ("" for other errors or none).
std::string detail_of(const caf::error& err);

/// A one-line description of any error, vidnode's or CAF's, e.g.
/// "queue_full: 1000 jobs are queued (queue-size 1000)" or
/// "system: cannot_connect_to_node".
std::string describe(const caf::error& err);

/// The machine-readable name of any error: an errc name for vidnode errors,
/// the sec name for CAF's ("request_timeout"), else "error".
std::string code_name(const caf::error& err);

} // namespace vidnode::runtime
