#pragma once

/// @file
/// The connection flags vidnode and vidctl share: heartbeats. Each program
/// adds them with add_transport_options and, once its flags are parsed,
/// checks and applies them with one call to use_transport_flags, before its
/// actor system starts.

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "common/cli_options.hpp"
#include "vidnode/net/client.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::apps {

/// What the connection flags say.
struct transport_flags {
  caf::timespan heartbeat = net::process_config::default_heartbeat_interval;
  caf::timespan node_timeout = net::process_config::default_node_timeout;
};

/// Adds --heartbeat and --node-timeout to `app` (and so keys of the same
/// names to a --config file it reads).
inline void add_transport_options(CLI::App& app, transport_flags& flags) {
  add_duration(app, "--heartbeat", flags.heartbeat,
               "How often a heartbeat is sent on each connection (100ms to "
               "1m); must be shorter than every peer's --node-timeout");
  add_duration(app, "--node-timeout", flags.node_timeout,
               "A connection silent this long (no message, no heartbeat) is "
               "dropped as lost, so a hung or cut-off peer is noticed within "
               "it (at least twice --heartbeat, at most 10m)");
}

namespace detail {

/// Prints "PROGRAM: --SETTING: reason" for an error that names its setting
/// and returns the exit status of a usage error.
inline int usage_error(const caf::error& err, const std::string& program) {
  std::fprintf(stderr, "%s: --%s\n", program.c_str(),
               runtime::detail_of(err).c_str());
  return 2;
}

} // namespace detail

/// vidnode's half: checks `flags` and applies them to `cfg`. Returns the
/// exit status 2 after printing the problem, or 0.
inline int use_transport_flags(transport_flags flags, net::process_config& cfg,
                               const std::string& program) {
  if (auto err = cfg.heartbeat(flags.heartbeat, flags.node_timeout))
    return detail::usage_error(err, program);
  return 0;
}

/// vidctl's half: checks `flags` and puts them in `options`. Returns the
/// exit status 2 after printing the problem, or 0.
inline int use_transport_flags(transport_flags flags,
                               net::client::options& options,
                               const std::string& program) {
  if (auto err = net::process_config::check_heartbeat(flags.heartbeat,
                                                      flags.node_timeout))
    return detail::usage_error(err, program);
  options.heartbeat_interval = flags.heartbeat;
  options.node_timeout = flags.node_timeout;
  return 0;
}

} // namespace vidnode::apps
