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
#include <mutex>
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

/// The URLs the gateway hands out for finished jobs' videos: a link on the
/// gateway (`{base}/output/{id}.mp4?sig=...`) that anyone holding it may
/// GET (with Range requests, so a browser can seek) without an API key,
/// signed with HMAC-SHA256 over the job's id (128 bits of it).
///
/// Thread-safety: every member may be called from any thread once
/// set_base_url has been called.
class http_links {
public:
  /// Signs with `secret` (any bytes; empty: 32 random bytes, so links stop
  /// working when the process restarts).
  explicit http_links(std::string secret = {});

  /// Sets the base the links start with ("http://127.0.0.1:8447"), once the
  /// gateway knows its port.
  void set_base_url(std::string base);

  /// The base the links start with.
  std::string base_url() const;

  /// The link to job `id`'s video on the gateway.
  std::string video_link(runtime::job_id id) const;

  /// Whether `signature` is the one video_link puts on the link of job `id`
  /// (compared in constant time).
  bool valid_signature(runtime::job_id id, const std::string& signature) const;

  /// The `video_url` of a succeeded job: the gateway link when a node holds
  /// its video file, else its uploaded object's URL without the upload's
  /// query string; empty when it has neither or has not succeeded.
  std::string video_url(const runtime::job_result& result) const;

private:
  std::string signature(runtime::job_id id) const;

  std::string secret_;
  mutable std::mutex mutex_;
  std::string base_;
};

/// Runpod's status name of `state`: IN_QUEUE, IN_PROGRESS, COMPLETED,
/// FAILED, CANCELLED or TIMED_OUT.
const char* runpod_status_name(runtime::job_state state) noexcept;

/// A succeeded job's `output`: {"video_url": URL}, or {} when it has no
/// video (a model that writes none).
nlohmann::json runpod_output(const runtime::job_result& result,
                             const http_links& links);

/// The body Runpod's `status/{id}` answers with for `result`, which is also
/// its webhook's body: `id`, `status`, `delayTime` and `executionTime`
/// (integer milliseconds), and `output` ({"video_url": ...}) once
/// completed or `error` (a string) once failed, cancelled or timed out.
nlohmann::json runpod_status_body(const runtime::job_result& result,
                                  const http_links& links);

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
  /// Signs the video links and builds `video_url`s; its base URL is set
  /// by start (to `public_url`, or the address the gateway listens on).
  std::shared_ptr<http_links> links;
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
  /// The checks start makes before it binds: the options, the key file and
  /// the TLS files, so that a program can refuse them before it starts
  /// anything else. Errors as for start.
  static caf::error check(const http_gateway_options& opts);

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

  /// Where it listens ("http://127.0.0.1:8447", "https://[::1]:8447").
  std::string listen_url() const;

  /// The base of the links it hands out: `public_url`, else listen_url().
  std::string base_url() const;

  /// Reads the API key file again (SIGHUP); a file that cannot be read
  /// keeps the keys in use and is reported in the log.
  void reload_keys();

  /// Closes the port, answers waiting long polls with where their jobs
  /// stand, and returns once every request has been answered. Idempotent.
  void stop();

private:
  struct impl;
  explicit http_gateway(std::unique_ptr<impl> state);
  std::unique_ptr<impl> impl_;
};

} // namespace vidnode::net
