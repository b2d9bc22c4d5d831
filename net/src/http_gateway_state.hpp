#pragma once

/// @file
/// What the gateway's HTTP handlers share: the options, the keys, the
/// stream hub, the counts health reports, and calls to admission through
/// the client protocol (one blocking request per call, from the HTTP
/// thread that serves the request).

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

  /// Jobs retried through `endpoint` since the gateway started.
  int64_t retried(const std::string& endpoint) const;
  void count_retry(const std::string& endpoint);

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

/// Adds the Runpod routes under /v2/{endpoint}/ and the video links'
/// route /output/{id}.mp4 to `server`.
void add_runpod_routes(httplib::Server& server,
                       std::shared_ptr<gateway_state> state);

/// What the console may do, in terms of `state`.
std::shared_ptr<const console_backend>
make_console_backend(std::shared_ptr<gateway_state> state);

} // namespace vidnode::net::detail
