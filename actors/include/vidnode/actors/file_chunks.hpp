#pragma once

/// @file
/// Files moved between nodes in chunks: videos from the node that wrote
/// them to clients (through the head) and to the head before an upload,
/// fetched inputs from the head to the node that runs the job. A node reads
/// only regular files inside its own output directory; reads are
/// stateless (path, offset, length), so a lost reader loses nothing; a copy
/// holds at most `window` chunks in memory.

#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/typed_actor.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/transfers.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::actors {

/// Reads up to `max_bytes` (cut to runtime::max_chunk_bytes) of the file
/// `path` from byte `offset`, only if `path` resolves (symbolic links and
/// `..` followed) to a regular file inside the directory `root`. Blocking:
/// call it on a thread of its own (spawn_file_reader).
///
/// Errors: unauthorized when `path` is not absolute, lies outside `root`
/// after resolving, or is not a regular file (a FIFO is opened without
/// blocking and refused); output_unavailable when the file or `root` does
/// not exist or reading fails (the context has the cause); invalid_request
/// when `offset` is beyond the end or `max_bytes` is 0. Not guaranteed:
/// someone who can change the directory tree between the check and the
/// open can swap a directory on the path (the last component is opened
/// without following links).
caf::expected<runtime::output_chunk> read_file_chunk(const std::string& root,
                                                     const std::string& path,
                                                     uint64_t offset,
                                                     uint32_t max_bytes);

/// Serves one `read_file, path, offset, max_bytes -> chunk` request with
/// read_file_chunk, then quits.
using file_reader_actor =
  caf::typed_actor<caf::replies_to<read_file_atom, std::string, uint64_t,
                                   uint32_t>::with<runtime::output_chunk>>;

/// Spawns a reader of files inside `root` for one request: detached (its own
/// thread, so disk I/O never blocks a pooled thread) unless `detached` is
/// false (deterministic tests). Send it its request at once: it lives until
/// it answered one.
file_reader_actor spawn_file_reader(caf::actor_system& sys, std::string root,
                                    bool detached = true);

/// Where a chunked copy gets its chunks.
struct chunk_source {
  /// Asked for every chunk and monitored: its loss ends the copy
  /// (errc::node_lost).
  caf::actor actor;
  /// Each request is this message followed by (uint64_t offset, uint32_t
  /// max_bytes); the answer must be a runtime::output_chunk. E.g.
  /// `caf::make_message(read_file_atom::value, path)` for a supervisor.
  caf::message request;
  /// Named in errors ("node w1", "the head").
  std::string name;
};

/// How a chunked copy runs.
struct copy_options {
  /// Bytes asked for per request (cut to runtime::max_chunk_bytes). The
  /// chunks come to the copy's node: use runtime::chunk_bytes_within its
  /// message size limit.
  uint32_t chunk_bytes = runtime::default_chunk_bytes;
  /// Requests in flight at once (at least 1); also the most chunks held in
  /// memory.
  uint32_t window = 2;
  /// Longest wait for one chunk.
  caf::timespan chunk_timeout = std::chrono::seconds{30};
  /// Ends the copy early when raised (checked with every chunk and every
  /// 200 ms while one is awaited); may be null.
  std::shared_ptr<abort_signal> cancel;
};

/// Spawns a detached actor that copies the file `source` serves into
/// `path` (its directory is created; an existing file is replaced), then
/// sends `copied, tag, path, error` to `notify` (error none on success) and
/// quits. On any failure, and when it is killed or `notify` goes away first,
/// it removes what it wrote. Errors: the source's own (its code kept, its
/// context prefixed with the source's name); node_lost when the source went
/// away; output_unavailable when a chunk did not come within
/// `chunk_timeout` or the file changed size during the copy;
/// transfer_failed when writing failed or `cancel` was raised.
caf::actor spawn_chunked_copy(caf::actor_system& sys, chunk_source source,
                              std::string path, uint64_t tag, caf::actor notify,
                              copy_options options = {});

} // namespace vidnode::actors
