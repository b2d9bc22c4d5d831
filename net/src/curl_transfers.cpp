#include "vidnode/net/curl_transfers.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <set>

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include "address_guard.hpp"
#include "vidnode/net/json.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::net {

/// The signals of the transfers in flight; abort_all raises them all.
struct curl_transfers::registry {
  std::mutex mutex;
  bool stopping = false;
  std::multiset<actors::abort_signal*> live;
};

namespace {

using actors::abort_signal;

/// Keeps `signal` in `reg` while a call runs, so abort_all reaches it; a
/// call that starts after abort_all is aborted at once.
class registration {
public:
  registration(curl_transfers::registry& reg, abort_signal& signal)
    : reg_(reg), signal_(signal) {
    std::lock_guard<std::mutex> guard{reg_.mutex};
    if (reg_.stopping)
      signal_.abort(abort_signal::reason::node_stopping);
    position_ = reg_.live.insert(&signal_);
  }

  ~registration() {
    std::lock_guard<std::mutex> guard{reg_.mutex};
    reg_.live.erase(position_);
  }

  registration(const registration&) = delete;
  registration& operator=(const registration&) = delete;

private:
  curl_transfers::registry& reg_;
  abort_signal& signal_;
  std::multiset<abort_signal*>::iterator position_;
};

/// libcurl's progress callback: a non-zero answer aborts the transfer.
int check_abort(void* signal, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const abort_signal*>(signal)->aborted() ? 1 : 0;
}

std::string abort_cause(const abort_signal& signal) {
  return signal.why() == abort_signal::reason::node_stopping
           ? "aborted: the node is stopping"
           : "aborted: the job ended";
}

using runtime::errc;
using runtime::make_error;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct easy_deleter {
  void operator()(CURL* x) const {
    curl_easy_cleanup(x);
  }
};

struct file_closer {
  void operator()(FILE* x) const {
    std::fclose(x);
  }
};

using easy_handle = std::unique_ptr<CURL, easy_deleter>;

/// How one try ended.
struct outcome {
  CURLcode code = CURLE_OK;
  long status = 0;
  /// Worth trying again: no connection, a timeout, a 5xx answer.
  bool retry = false;
  /// The URL policy refused a connection or a redirect.
  bool refused = false;
  std::string cause;
};

/// Where a download goes, and how much it may grow.
struct sink {
  FILE* file = nullptr;
  uint64_t written = 0;
  uint64_t limit = 0;
  bool too_large = false;
};

size_t write_to_sink(char* data, size_t size, size_t count, void* user) {
  auto out = static_cast<sink*>(user);
  auto bytes = size * count;
  if (out->written + bytes > out->limit) {
    out->too_large = true;
    return 0; // aborts the transfer
  }
  out->written += bytes;
  return std::fwrite(data, 1, bytes, out->file);
}

size_t discard(char*, size_t size, size_t count, void*) {
  return size * count;
}

void common_options(CURL* easy, const curl_transfers::options& opts,
                    abort_signal& cancel) {
  curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, check_abort);
  curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &cancel);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(opts.connect_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(opts.total_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "vidnode/0.1");
}

/// Why a transfer that ended with `code` was refused by the policy (a
/// connection `guard` refused, or a redirect to a scheme other than http
/// and https), or nothing.
std::optional<std::string> refusal_of(CURL* easy, CURLcode code,
                                      const address_guard& guard) {
  if (code == CURLE_OK)
    return std::nullopt;
  long redirects = 0;
  char* last = nullptr;
  curl_easy_getinfo(easy, CURLINFO_REDIRECT_COUNT, &redirects);
  curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &last);
  auto where = redirects > 0 && last != nullptr
                 ? "redirected to " + std::string{last} + ": "
                 : std::string{};
  if (!guard.refusal().empty())
    return where + "refused: " + guard.refusal();
  if (code == CURLE_UNSUPPORTED_PROTOCOL && !where.empty())
    return where + "refused: redirects may only go to http and https URLs";
  return std::nullopt;
}

/// Runs a prepared transfer and judges it; a refusal by `policy` is final.
outcome perform(CURL* easy, const url_policy& policy) {
  outcome out;
  address_guard guard{policy};
  guard.install(easy);
  out.code = curl_easy_perform(easy);
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &out.status);
  if (auto why = refusal_of(easy, out.code, guard)) {
    out.refused = true;
    out.cause = std::move(*why);
    return out;
  }
  if (out.code != CURLE_OK) {
    out.cause = curl_easy_strerror(out.code);
    out.retry =
      out.code == CURLE_COULDNT_CONNECT || out.code == CURLE_OPERATION_TIMEDOUT
      || out.code == CURLE_RECV_ERROR || out.code == CURLE_SEND_ERROR
      || out.code == CURLE_GOT_NOTHING || out.code == CURLE_PARTIAL_FILE;
    return out;
  }
  if (out.status >= 400) {
    out.cause = "HTTP " + std::to_string(out.status);
    out.retry = out.status >= 500;
  }
  return out;
}

bool succeeded(const outcome& x) {
  return x.code == CURLE_OK && x.status < 400;
}

/// `url` without its query and fragment, for a log line: presigned URLs
/// carry their credentials there.
std::string loggable(const std::string& url) {
  auto end = url.find_first_of("?#");
  return end == std::string::npos ? url : url.substr(0, end) + "?...";
}

/// Tries `attempt` up to `attempts` times with exponential backoff from
/// opts.backoff, unless aborted; each try that is followed by another is
/// logged as a warning ("fetching URL: try 1 of 3 failed: ...").
template <class Attempt>
outcome with_retries(const curl_transfers::options& opts, int attempts,
                     const abort_signal& cancel, const char* what,
                     const std::string& url, Attempt attempt) {
  auto delay = opts.backoff;
  outcome last;
  for (int i = 1; i <= attempts; ++i) {
    if (cancel.aborted()) {
      last.code = CURLE_ABORTED_BY_CALLBACK;
      last.retry = false;
    } else {
      last = attempt();
    }
    if (last.code == CURLE_ABORTED_BY_CALLBACK) {
      last.cause = abort_cause(cancel);
      return last;
    }
    if (succeeded(last) || !last.retry)
      return last;
    if (i < attempts) {
      spdlog::warn("{} {}: try {} of {} failed: {}; trying again in {}", what,
                   loggable(url), i, attempts, last.cause,
                   runtime::format_duration(delay));
      if (cancel.wait_for(delay)) {
        last.cause = abort_cause(cancel);
        return last;
      }
      delay *= 2;
    }
  }
  if (attempts > 1)
    last.cause += " (after " + std::to_string(attempts) + " tries)";
  return last;
}

caf::error failure(const std::string& what, const std::string& url,
                   const std::string& cause) {
  return make_error(errc::transfer_failed,
                    what + " " + loggable(url) + ": " + cause);
}

} // namespace

curl_transfers::curl_transfers(options opts)
  : opts_(opts), policy_(opts.allowed_addresses, opts.file_url_dir),
    live_(std::make_shared<registry>()) {
  global_init();
}

void curl_transfers::abort_all() {
  std::lock_guard<std::mutex> guard{live_->mutex};
  live_->stopping = true;
  for (auto signal : live_->live)
    signal->abort(abort_signal::reason::node_stopping);
}

curl_transfers::~curl_transfers() = default;

caf::error curl_transfers::check_url(actors::url_use use,
                                     const std::string& url) const {
  if (auto why = policy_.refusal(use, url))
    return make_error(errc::invalid_request, "refused: " + *why);
  return caf::none;
}

caf::expected<uint64_t> curl_transfers::fetch(const std::string& url,
                                              const std::string& path,
                                              abort_signal& cancel) {
  if (auto why = policy_.refusal(actors::url_use::fetch, url))
    return failure("fetching", url, "refused: " + *why);
  registration registered{*live_, cancel};
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path{path}.parent_path(),
                                      ec);
  uint64_t size = 0;
  auto result =
    with_retries(opts_, opts_.attempts, cancel, "fetching", url, [&] {
      outcome out;
      std::unique_ptr<FILE, file_closer> file{std::fopen(path.c_str(), "wb")};
      if (!file) {
        out.code = CURLE_WRITE_ERROR;
        out.cause = "cannot write " + path;
        return out;
      }
      easy_handle easy{curl_easy_init()};
      sink to{file.get(), 0, opts_.max_download_bytes, false};
      common_options(easy.get(), opts_, cancel);
      curl_easy_setopt(easy.get(), CURLOPT_URL, url.c_str());
      curl_easy_setopt(easy.get(), CURLOPT_PROTOCOLS_STR,
                       policy_.allows_file_urls() ? "http,https,file"
                                                  : "http,https");
      curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, write_to_sink);
      curl_easy_setopt(easy.get(), CURLOPT_WRITEDATA, &to);
      // A declared Content-Length above the limit fails before the body.
      constexpr auto off_t_max =
        static_cast<uint64_t>(std::numeric_limits<curl_off_t>::max());
      auto declared_limit = std::min(opts_.max_download_bytes, off_t_max);
      curl_easy_setopt(easy.get(), CURLOPT_MAXFILESIZE_LARGE,
                       static_cast<curl_off_t>(declared_limit));
      out = perform(easy.get(), policy_);
      if (to.too_large || out.code == CURLE_FILESIZE_EXCEEDED) {
        out.retry = false;
        out.cause = "larger than the limit of "
                    + std::to_string(opts_.max_download_bytes) + " bytes";
      }
      size = to.written;
      return out;
    });
  if (!succeeded(result)) {
    std::filesystem::remove(path, ec);
    return failure("fetching", url, result.cause);
  }
  return size;
}

caf::error curl_transfers::upload(const std::string& path,
                                  const std::string& url,
                                  abort_signal& cancel) {
  if (auto why = policy_.refusal(actors::url_use::upload, url))
    return failure("uploading to", url, "refused: " + *why);
  registration registered{*live_, cancel};
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec)
    return failure("uploading to", url, "cannot read " + path);
  auto result =
    with_retries(opts_, opts_.attempts, cancel, "uploading to", url, [&] {
      outcome out;
      std::unique_ptr<FILE, file_closer> file{std::fopen(path.c_str(), "rb")};
      if (!file) {
        out.code = CURLE_READ_ERROR;
        out.cause = "cannot read " + path;
        return out;
      }
      easy_handle easy{curl_easy_init()};
      common_options(easy.get(), opts_, cancel);
      curl_easy_setopt(easy.get(), CURLOPT_URL, url.c_str());
      curl_easy_setopt(easy.get(), CURLOPT_PROTOCOLS_STR, "http,https");
      curl_easy_setopt(easy.get(), CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(easy.get(), CURLOPT_READDATA, file.get());
      curl_easy_setopt(easy.get(), CURLOPT_INFILESIZE_LARGE,
                       static_cast<curl_off_t>(size));
      curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, discard);
      return perform(easy.get(), policy_);
    });
  if (!succeeded(result))
    return failure("uploading to", url, result.cause);
  return caf::none;
}

caf::error curl_transfers::notify(const std::string& url,
                                  const runtime::job_result& job,
                                  abort_signal& cancel) {
  if (auto why = policy_.refusal(actors::url_use::notify, url))
    return make_error(errc::invalid_request,
                      "notifying " + loggable(url) + ": refused: " + *why);
  registration registered{*live_, cancel};
  auto custom = opts_.webhook_body ? opts_.webhook_body(job) : nullptr;
  auto body = to_json_text(custom.is_null() ? to_json(job) : custom);
  auto result = with_retries(opts_, 1, cancel, "notifying", url, [&] {
    easy_handle easy{curl_easy_init()};
    common_options(easy.get(), opts_, cancel);
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(easy.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy.get(), CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy.get(), CURLOPT_POSTFIELDS, body.c_str());
    // A redirect keeps the POST and its body (libcurl would GET).
    curl_easy_setopt(easy.get(), CURLOPT_POSTREDIR,
                     static_cast<long>(CURL_REDIR_POST_ALL));
    curl_easy_setopt(easy.get(), CURLOPT_POSTFIELDSIZE,
                     static_cast<long>(body.size()));
    curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, discard);
    auto out = perform(easy.get(), policy_);
    curl_slist_free_all(headers);
    if (out.code == CURLE_OK && out.status >= 300 && out.status < 400)
      out.cause = "HTTP " + std::to_string(out.status);
    return out;
  });
  if (result.refused)
    return make_error(errc::invalid_request,
                      "notifying " + loggable(url) + ": " + result.cause);
  if (!succeeded(result) || result.status >= 300)
    return failure("notifying", url, result.cause);
  return caf::none;
}

} // namespace vidnode::net
