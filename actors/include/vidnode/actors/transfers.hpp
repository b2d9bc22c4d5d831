#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "vidnode/runtime/job.hpp"

namespace vidnode::actors {

/// Ends one transfer early. Its owner (admission, for the job the transfer
/// belongs to) calls abort() when the job is cancelled, times out or the
/// node stops; the transfer checks it while it runs (libcurl: at least once
/// a second) and between retries, and then fails with
/// errc::transfer_failed ("aborted: ..."). Set once, never cleared;
/// thread-safe.
class abort_signal {
public:
  /// Why the transfer ends early, for its error message.
  enum class reason : uint8_t {
    none,
    /// The job ended (cancelled, timed out).
    job_ended,
    /// The node is stopping.
    node_stopping,
  };

  /// Makes the transfer end; the first call's reason sticks.
  void abort(reason why = reason::job_ended) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      if (why_ == reason::none)
        why_ = why;
    }
    aborted_.store(true, std::memory_order_release);
    changed_.notify_all();
  }

  /// Whether abort() was called; cheap enough for a progress callback.
  bool aborted() const noexcept {
    return aborted_.load(std::memory_order_acquire);
  }

  /// Why the transfer was aborted (reason::none if it was not).
  reason why() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return why_;
  }

  /// Waits `delay`, or less if aborted meanwhile; true if aborted.
  bool wait_for(std::chrono::milliseconds delay) const {
    std::unique_lock<std::mutex> guard{mutex_};
    return changed_.wait_for(guard, delay, [this] { return aborted(); });
  }

private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::atomic<bool> aborted_{false};
  reason why_ = reason::none;
};

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
/// operations admission runs on actors of their own (detached unless
/// blocking() says otherwise), so no device and no pooled thread ever waits
/// for them. net::curl_transfers implements it; a node without one refuses
/// jobs that name URLs.
///
/// Every call blocks until it succeeded, gave up or was aborted (by its
/// `cancel` signal or abort_all), is safe to call from several threads at
/// once, and reports failures as errc::transfer_failed naming the URL and
/// the cause.
class transfers {
public:
  virtual ~transfers() = default;

  /// Downloads `url` (http, https or file) to `path`, with retries; returns
  /// its size.
  virtual caf::expected<uint64_t> fetch(const std::string& url,
                                        const std::string& path,
                                        abort_signal& cancel) = 0;

  /// Uploads the file `path` to `url` with HTTP PUT (the presigned-URL
  /// pattern of object stores), with retries.
  virtual caf::error upload(const std::string& path, const std::string& url,
                            abort_signal& cancel) = 0;

  /// POSTs `result` as JSON to `url`, once: the caller schedules retries
  /// (webhooks are retried seconds apart, see node_settings). Any answer
  /// but 2xx is a failure (errc::transfer_failed, worth another try); a
  /// URL the implementation refuses to reach is errc::invalid_request
  /// (final).
  virtual caf::error notify(const std::string& url,
                            const runtime::job_result& result,
                            abort_signal& cancel) = 0;

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
  /// (errc::transfer_failed, "aborted: the node is stopping"): the last
  /// resort when the node stops, so no transfer keeps the process alive.
  virtual void abort_all() = 0;

  /// Whether the calls block the calling thread (true for real transfers):
  /// admission then runs them on detached actors. A test double that
  /// answers at once returns false, and its calls then run on CAF's
  /// scheduler (and the test coordinator).
  virtual bool blocking() const noexcept {
    return true;
  }
};

} // namespace vidnode::actors
