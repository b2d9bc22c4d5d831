#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "vidnode/runtime/job.hpp"

namespace vidnode::actors {

/// Moves a job's inputs and outputs over the network: the blocking
/// operations admission runs on detached actors of their own, so no device
/// and no pooled thread ever waits for them. net::curl_transfers implements
/// it; a node without one refuses jobs that name URLs.
///
/// Every call blocks until it succeeded or gave up (after its retries), is
/// safe to call from several threads at once, and reports failures as
/// errc::transfer_failed naming the URL and the cause.
class transfers {
public:
  virtual ~transfers() = default;

  /// Downloads `url` (http, https or file) to `path`; returns its size.
  virtual caf::expected<uint64_t> fetch(const std::string& url,
                                        const std::string& path) = 0;

  /// Uploads the file `path` to `url` with HTTP PUT (the presigned-URL
  /// pattern of object stores).
  virtual caf::error upload(const std::string& path,
                            const std::string& url) = 0;

  /// POSTs `result` as JSON to `url`.
  virtual caf::error notify(const std::string& url,
                            const runtime::job_result& result) = 0;

  /// Makes every transfer in progress, and every later one, fail at once
  /// (errc::transfer_failed, "aborted"): called when the node stops, so no
  /// detached transfer keeps the process alive.
  virtual void abort_all() = 0;
};

} // namespace vidnode::actors
