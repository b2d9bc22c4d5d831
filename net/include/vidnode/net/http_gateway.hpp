#pragma once

/// @file
/// The HTTP gateway (`vidnode --http-listen`): Runpod's serverless API
/// (../shared/anchors/RUNPOD.md, read from Runpod's public docs and the npm
/// package runpod-sdk 1.1.2) under `/v2/{endpoint}/`, the video files of
/// finished jobs, and the web console at `/`. It talks to admission only
/// through the client protocol (runtime/protocol.hpp), as vidctl does.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::net {

/// The port the README suggests for `--http-listen`.
constexpr uint16_t suggested_http_port = 8447;

/// One `--endpoint ID=MODEL[,key=value...]`: a name clients use in
/// `/v2/{id}/` for a model and the job settings its requests start from.
struct http_endpoint {
  /// 1 to 64 characters of [A-Za-z0-9_-].
  std::string id;
  /// The model its jobs run.
  std::string model;
  /// Defaults for `input` fields, by input field name (README, "HTTP
  /// gateway": the mapping table), e.g. {"width": "256"}; a request's own
  /// fields win.
  std::map<std::string, std::string> defaults;
  /// `extra_fields=ignore`: input fields outside the mapping table are
  /// dropped. Otherwise (`extra_fields=options`, the default) they become
  /// model options, and admission refuses those the model does not take.
  bool ignore_extra_fields = false;
};

/// Parses the value of one `--endpoint`: "ID=MODEL" then ",key=value"
/// pairs; `extra_fields` (options or ignore) is the endpoint's own key,
/// every other key must be an input field of the mapping table.
/// Errors: invalid_request naming the part at fault.
caf::expected<http_endpoint> parse_http_endpoint(const std::string& text);

/// How the gateway serves.
struct http_gateway_options {
  /// Address and port to bind (port 0 picks a free one).
  std::string host = "127.0.0.1";
  uint16_t port = suggested_http_port;
  /// The endpoints; at least one.
  std::vector<http_endpoint> endpoints;
  /// A file of API keys, one per line (blank lines and lines starting with
  /// '#' skipped), read again when it changes and on reload_keys(). Empty:
  /// no key is asked for (only allowed on a loopback address).
  std::string api_key_file;
  /// Server-side TLS with this certificate and key (PEM); both empty: plain
  /// HTTP. Client certificates are not asked for.
  std::string tls_certificate;
  std::string tls_key;
  std::string tls_passphrase;
  /// The base of the URLs the gateway hands out (`video_url`), e.g.
  /// "https://gpu.example.com:8447"; empty: the scheme, host and port it
  /// listens on.
  std::string public_url;
  /// A secret that signs video URLs (any bytes; at least 16). Empty: a
  /// random one, so URLs handed out stop working when the process restarts.
  std::string url_secret;
  /// Requests served at once; long polls (runsync, status-sync, stream)
  /// hold one each.
  uint32_t threads = 64;
  /// How long requests wait for admission's answer.
  caf::timespan request_timeout = std::chrono::seconds{10};
};

/// A running gateway.
///
/// Thread-safety: start, stop and reload_keys may be called from any
/// non-actor thread.
class http_gateway {
public:
  /// Binds `opts.host:opts.port` and starts serving. Errors:
  /// invalid_request for bad options (the option is named: no endpoint, an
  /// endpoint given twice, a non-loopback address without an API key file,
  /// unreadable key or TLS files) or a port that cannot be bound.
  static caf::expected<std::unique_ptr<http_gateway>>
  start(caf::actor_system& sys, runtime::admission_actor admission,
        http_gateway_options opts);

  /// Stops (see stop).
  ~http_gateway();

  http_gateway(const http_gateway&) = delete;
  http_gateway& operator=(const http_gateway&) = delete;

  /// The TCP port it listens on.
  uint16_t port() const noexcept;

  /// The base URL of the gateway ("http://127.0.0.1:8447").
  std::string base_url() const;

  /// Reads the API key file again (SIGHUP); a file that cannot be read
  /// keeps the keys in use and is reported in the log.
  void reload_keys();

  /// The body Runpod's `status/{id}` answers for `result` (also its
  /// webhook's body): id, status, delayTime, executionTime, and output or
  /// error.
  nlohmann::json runpod_status(const runtime::job_result& result) const;

  /// Closes the port, answers waiting long polls with where their jobs
  /// stand, and returns once every request has been answered. Idempotent.
  void stop();

private:
  struct impl;
  explicit http_gateway(std::unique_ptr<impl> state);
  std::unique_ptr<impl> impl_;
};

} // namespace vidnode::net
