#pragma once

/// @file
/// The web console of the HTTP gateway: its pages at `/` and the JSON it
/// reads under `/console/api/`. The gateway core (http_gateway.cpp) owns
/// the server and hands the console what it may do through console_backend.

#include <functional>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "vidnode/net/http_gateway.hpp"
#include "vidnode/runtime/job.hpp"

namespace vidnode::net::detail {

/// What the console may ask of the gateway. Every function blocks for at
/// most the gateway's request timeout and may be called from any HTTP
/// thread at once.
struct console_backend {
  /// True when the request carries a valid API key (either form); when it
  /// does not, the caller answers 401 with error_body.
  std::function<bool(const httplib::Request&)> authorized;
  /// Every device of the cluster (client protocol `nodes`).
  std::function<caf::expected<std::vector<runtime::device_status>>()> nodes;
  /// Jobs (client protocol `list`).
  std::function<caf::expected<std::vector<runtime::job_result>>(
    const runtime::list_query&)>
    jobs;
  /// Cancel and retry a job by its id (client protocol `cancel`, `retry`).
  std::function<caf::expected<runtime::job_result>(runtime::job_id)> cancel;
  std::function<caf::expected<runtime::job_result>(runtime::job_id)> retry;
  /// Submits `input` (a Runpod request body's `input`) to endpoint `id`
  /// as `/v2/{id}/run` does; the job's id or the error.
  std::function<caf::expected<runtime::job_id>(const std::string& endpoint,
                                               const nlohmann::json& input)>
    submit;
  /// The URL that plays a finished job's video in a browser (a signed
  /// gateway URL or the job's output URL); empty when it has none.
  std::function<std::string(const runtime::job_result&)> video_url;
  /// The endpoints, for the console's submit form.
  std::vector<http_endpoint> endpoints;
  /// Event streams served at once; each holds one of the server's threads
  /// while it is open, so the gateway keeps this to a share of them.
  int max_streams = 8;
};

/// A JSON error body: {"error": message, "code": code}; code is one of
/// runtime::errc's names or "unauthorized", "not_found", "bad_request".
inline nlohmann::json error_body(const std::string& code,
                                 const std::string& message) {
  return {{"error", message}, {"code", code}};
}

/// A POST whose body is not used (cancel, retry, purge-queue): Runpod's
/// curl examples send none, without a Content-Length, which httplib
/// refuses unless the handler reads the body itself; the SDKs send "{}",
/// which is read and dropped.
inline httplib::Server::HandlerWithContentReader
bodiless(httplib::Server::Handler handle) {
  return [handle](const httplib::Request& req, httplib::Response& res,
                  const httplib::ContentReader& read) {
    if (req.has_header("Content-Length")
        || req.get_header_value("Transfer-Encoding") == "chunked")
      read([](const char*, size_t) { return true; });
    handle(req, res);
  };
}

/// Adds the console's routes to `server`: `GET /` and its assets (no key
/// needed to load the page itself; the page asks for the key and keeps it
/// in the browser's session storage), and under `/console/api/` the JSON
/// the page reads, each behind the API key.
void add_console_routes(httplib::Server& server,
                        std::shared_ptr<const console_backend> backend);

} // namespace vidnode::net::detail
