#pragma once

/// @file
/// vidctl's downloads (`fetch ID FILE`, `wait --download FILE`, `submit
/// --wait --download FILE`): the destination is checked before anything
/// is sent, the video is written to a temporary file that vidctl creates
/// itself beside FILE (net::download_file) and renamed to FILE when every
/// byte arrived; on any failure, and on SIGINT, SIGTERM or SIGHUP, the
/// temporary file is removed and FILE is left as it was.

#include <cstdint>
#include <string>

#include "vidnode/net/client.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::vidctl {

/// Where the user asked a video to go.
struct download_target {
  /// The file; empty: no download.
  std::string path;
  /// How messages name it: the flag or argument that gave it ("--download",
  /// "fetch FILE").
  std::string argument;
  /// --force: replace a regular file or symbolic link at `path`; without
  /// it, a file there is refused up front and never replaced.
  bool replace = false;
};

/// Checks `target` before anything is sent (see net::download_file::check;
/// a file already at the path is refused unless `replace`): prints
/// "vidctl: ARGUMENT: why" and returns exit_usage, or 0 if it can be
/// written (or no download is asked for).
int check_download_target(const download_target& target);

/// Downloads job `id`'s video to `target` through `node` and, unless
/// --json, says on stderr how much it wrote. Returns 0 and sets `bytes`,
/// or prints the error and returns its exit status: the node's (3, 4) or
/// exit_local_file when the file could not be written here.
int download(net::client& node, runtime::job_id id,
             const download_target& target, uint64_t& bytes);

/// Prints job `r`'s result and, if it succeeded and `target` names a file,
/// first downloads its video there (with --json the result's document
/// gains `"download": {"path", "bytes"}`). Returns the exit status: as
/// finish_with, or the download's.
int finish_with_download(net::client& node, const runtime::job_result& r,
                         const download_target& target);

} // namespace vidnode::vidctl
