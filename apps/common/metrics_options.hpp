#pragma once

/// @file
/// vidnode's --metrics-listen (README, "Metrics"): the flag, and the
/// endpoint it starts before the actor system does, so that a port that
/// cannot be bound is a usage error like any other bad value.

#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "vidnode/net/client.hpp"
#include "vidnode/net/metrics.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::apps {

/// What --metrics-listen says.
struct metrics_flags {
  /// HOST:PORT as given; empty: no endpoint.
  std::string listen;
  std::string host;
  uint16_t port = 0;
};

/// Adds --metrics-listen to `app` (and so a key of that name to a --config
/// file it reads).
inline void add_metrics_options(CLI::App& app, metrics_flags& flags) {
  app.add_option("--metrics-listen", flags.listen,
                 "Serve Prometheus metrics at http://HOST:PORT/metrics (off "
                 "by default; suggested port "
                   + std::to_string(net::suggested_metrics_port)
                   + "; port 0 picks a free one). Anyone who reaches it "
                     "reads them: bind a private address");
}

/// Starts the endpoint --metrics-listen asks for into `endpoint` (nothing
/// if the flag was not given). Returns 0, or 2 after printing why to
/// stderr: a value that is not HOST:PORT, or an address that cannot be
/// bound.
inline int start_metrics(const CLI::App& app, metrics_flags& flags,
                         std::unique_ptr<net::metrics_endpoint>& endpoint) {
  if (app.count("--metrics-listen") == 0)
    return 0;
  if (!net::parse_endpoint(flags.listen, flags.host, flags.port)
      || flags.host.empty()) {
    std::fprintf(stderr,
                 "vidnode: --metrics-listen: '%s' is not HOST:PORT (e.g. "
                 "127.0.0.1:%u)\n",
                 flags.listen.c_str(),
                 static_cast<unsigned>(net::suggested_metrics_port));
    return 2;
  }
  auto started = net::metrics_endpoint::start(flags.host, flags.port);
  if (!started) {
    std::fprintf(stderr, "vidnode: --%s\n",
                 runtime::detail_of(started.error()).c_str());
    return 2;
  }
  endpoint = std::move(*started);
  return 0;
}

/// Tells where the metrics are served: "vidnode metrics on URL" (tests
/// read the port from it).
inline void print_metrics_address(const metrics_flags& flags,
                                  const net::metrics_endpoint& endpoint) {
  std::printf("vidnode metrics on http://%s:%u/metrics\n", flags.host.c_str(),
              static_cast<unsigned>(endpoint.port()));
  std::fflush(stdout);
}

/// Stops the endpoint (its HTTP server and its scrapes) when it goes out of
/// scope: declare it after the actor system, so that it goes first (see
/// metrics_endpoint::stop).
class unwatch_on_exit {
public:
  explicit unwatch_on_exit(net::metrics_endpoint* endpoint)
    : endpoint_(endpoint) {}

  ~unwatch_on_exit() {
    if (endpoint_ != nullptr)
      endpoint_->stop();
  }

  unwatch_on_exit(const unwatch_on_exit&) = delete;
  unwatch_on_exit& operator=(const unwatch_on_exit&) = delete;

private:
  net::metrics_endpoint* endpoint_;
};

} // namespace vidnode::apps
