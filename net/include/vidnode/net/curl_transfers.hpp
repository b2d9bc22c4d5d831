#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "vidnode/actors/transfers.hpp"
#include "vidnode/net/url_policy.hpp"

#include <nlohmann/json.hpp>

namespace vidnode::net {

/// actors::transfers with libcurl: http, https (and file:// for fetches,
/// where allowed), connect and total timeouts, a size limit on downloads,
/// and, for fetches and uploads, retries with exponential backoff on
/// connection failures, timeouts and 5xx answers (a 4xx answer is final).
/// Webhooks are tried once per call (admission schedules their retries).
/// Every URL, every redirect and every address connected to is judged by a
/// url_policy made from the options: a refusal is final, never retried,
/// and its message says what was refused and which setting allows it.
class curl_transfers : public actors::transfers {
public:
  /// Limits and retries, with their defaults.
  struct options {
    std::chrono::milliseconds connect_timeout{5000};
    /// Longest time one try may take.
    std::chrono::milliseconds total_timeout{60000};
    /// Largest download accepted.
    uint64_t max_download_bytes = 1ull << 30;
    /// Tries in all (1: no retry).
    int attempts = 4;
    /// Wait before the second try; doubles for each further one.
    std::chrono::milliseconds backoff{200};
    /// The classes of non-global addresses (loopback, private, link-local,
    /// ...; see url_policy) that transfers may connect to: none by default;
    /// all_special_address_classes() with `vidnode --allow-private-urls`.
    std::set<address_class> allowed_addresses;
    /// The directory whose files file:// audio URLs may name (`vidnode
    /// --allow-file-urls DIR`); empty: file URLs are refused.
    std::string file_url_dir;
    /// The body of a job's webhook; when unset, or when it returns null
    /// for a job, the body is net::to_json of the job's result. vidnode's
    /// HTTP gateway sets it so that jobs submitted through it get Runpod's
    /// status body (runpod_status_body).
    std::function<nlohmann::json(const runtime::job_result&)> webhook_body;
  };

  explicit curl_transfers(options opts);
  ~curl_transfers() override;

  caf::expected<uint64_t> fetch(const std::string& url, const std::string& path,
                                actors::abort_signal& cancel) override;
  caf::error upload(const std::string& path, const std::string& url,
                    actors::abort_signal& cancel) override;
  caf::error notify(const std::string& url, const runtime::job_result& result,
                    actors::abort_signal& cancel) override;
  void abort_all() override;
  /// Judges `url` by this object's url_policy; a refusal is
  /// errc::invalid_request, "refused: " and the reason.
  caf::error check_url(actors::url_use use,
                       const std::string& url) const override;

  /// Implementation detail: the signals of the transfers in flight, which
  /// abort_all raises.
  struct registry;

private:
  options opts_;
  url_policy policy_;
  std::shared_ptr<registry> live_;
};

} // namespace vidnode::net
