#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "vidnode/runtime/job.hpp"

namespace vidnode::actors {

/// What a job does with a URL: the field that names it and the transfer
/// that uses it.
enum class url_use : uint8_t {
  /// `audio_url`: downloaded by transfers::fetch.
  fetch,
  /// `output_url`: the video is PUT there by transfers::upload.
  upload,
  /// `webhook_url`: the result is POSTed there by transfers::notify.
  notify,
};

/// The job_spec field that holds a URL of this use ("audio_url",
/// "output_url", "webhook_url").
constexpr const char* field_of(url_use use) noexcept {
  return use == url_use::fetch    ? "audio_url"
         : use == url_use::upload ? "output_url"
                                  : "webhook_url";
}

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

  /// Whether a URL may be used for `use`, judged without the network (its
  /// scheme, a file URL's path, a host that is a literal address): admission
  /// calls it before it accepts a job, so that what is sure to be refused is
  /// refused at submission. Returns errc::invalid_request whose context says
  /// what is refused and which setting would allow it, without the field's
  /// name; the caller adds that. Accepting here does not promise that the
  /// transfer is allowed: a host name, or a redirect, may still lead to an
  /// address the implementation refuses when it connects. The default
  /// accepts every URL.
  virtual caf::error check_url(url_use use, const std::string& url) const {
    static_cast<void>(use);
    static_cast<void>(url);
    return caf::none;
  }

  /// Makes every transfer in progress, and every later one, fail at once
  /// (errc::transfer_failed, "aborted"): called when the node stops, so no
  /// detached transfer keeps the process alive.
  virtual void abort_all() = 0;
};

} // namespace vidnode::actors
