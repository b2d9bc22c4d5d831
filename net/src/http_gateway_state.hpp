#pragma once

/// @file
/// What the gateway's HTTP handlers share: the options, the keys, the
/// stream hub, the counts health reports, and calls to admission through
/// the client protocol (one blocking request per call, from the HTTP
/// thread that serves the request).

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>

#include "http_api_keys.hpp"
#include "http_stream_hub.hpp"
#include "vidnode/net/http_gateway.hpp"
#include "vidnode/runtime/errc.hpp"

namespace httplib {
class Server;
struct Request;
} // namespace httplib

namespace vidnode::net::detail {

struct console_backend;

/// The state every handler of one gateway shares.
struct gateway_state {
  gateway_state(caf::actor_system& sys, runtime::admission_actor admission,
                http_gateway_options opts);

  caf::actor_system& sys;
  runtime::admission_actor admission;
  http_gateway_options options;
  std::shared_ptr<http_links> links;
  api_keys keys;
  stream_hub hub;

  /// The endpoint named `id`, or null.
  const http_endpoint* find_endpoint(const std::string& id) const;

  /// "sim (sim), t2v (tiny-t2v)".
  std::string endpoint_names() const;

  /// Whether the request carries a valid API key.
  bool authorized(const httplib::Request& req);

  /// Long polls waiting now (see long_poll).
  std::atomic<uint32_t> long_polls{0};

  /// Submits `spec` and follows the job's stream. A policy timeout longer
  /// than the node's limit runs with the node's limit (its default), as
  /// Runpod's clients send their defaults (ttl: 24 h) to nodes that allow
  /// less. Errors: admission's, in the request's terms (in_request_terms).
  caf::expected<runtime::job_id> submit(runtime::job_spec spec);

  /// Queues failed or timed-out job `id` again (client protocol `retry`),
  /// counts it for health and follows its stream afresh.
  caf::expected<runtime::job_result> retry(runtime::job_id id);

  /// Jobs retried through `endpoint` since the gateway started.
  int64_t retried(const std::string& endpoint) const;

  /// Sends `xs` to admission and waits up to `timeout` for the answer.
  /// Errors: admission's; request_timeout becomes errc::node_lost ("the
  /// head did not answer within ..."), a stopped admission
  /// errc::shutting_down.
  template <class T, class... Ts>
  caf::expected<T> ask(caf::timespan timeout, Ts... xs) {
    caf::scoped_actor self{sys};
    caf::expected<T> result{caf::error{}};
    self->request(admission, timeout, std::move(xs)...)
      .receive([&](T& x) { result = std::move(x); },
               [&](caf::error& err) { result = translated(std::move(err)); });
    return result;
  }

  /// ask with the gateway's request timeout.
  template <class T, class... Ts>
  caf::expected<T> ask(Ts... xs) {
    return ask<T>(options.request_timeout, std::move(xs)...);
  }

private:
  static caf::error translated(caf::error err);

  mutable std::mutex mutex_;
  std::map<std::string, int64_t> retried_;
};

/// A long poll's claim on one of the gateway's threads (runsync,
/// status-sync, stream): at most half of them wait at once, so that the
/// requests Runpod's SDK gives 3 s (run, status, cancel, health) always
/// find a thread, also while clients that went away still hold theirs
/// until their wait ends. A poll beyond that answers at once.
class long_poll {
public:
  long_poll(gateway_state& state, std::chrono::milliseconds wanted)
    : state_(state) {
    auto most = std::max<uint32_t>(1, state.options.threads / 2);
    granted_ = ++state.long_polls <= most;
    wait_ = granted_ ? wanted : std::chrono::milliseconds{1};
  }

  ~long_poll() {
    --state_.long_polls;
  }

  long_poll(const long_poll&) = delete;
  long_poll& operator=(const long_poll&) = delete;

  /// How long this poll may wait: what it asked for, or 1 ms.
  std::chrono::milliseconds wait_ms() const noexcept {
    return wait_;
  }

  caf::timespan wait() const noexcept {
    return wait_;
  }

private:
  gateway_state& state_;
  bool granted_ = false;
  std::chrono::milliseconds wait_{0};
};

/// Adds the Runpod routes under /v2/{endpoint}/ and the video links'
/// route /output/{id}.mp4 to `server`.
void add_runpod_routes(httplib::Server& server,
                       std::shared_ptr<gateway_state> state);

/// What the console may do, in terms of `state`.
std::shared_ptr<const console_backend>
make_console_backend(std::shared_ptr<gateway_state> state);

} // namespace vidnode::net::detail
