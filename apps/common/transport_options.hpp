#pragma once

/// @file
/// The connection flags vidnode and vidctl share: heartbeats and mutual TLS
/// (README, "TLS"). Each program adds them with add_transport_options and,
/// once its flags are parsed, checks and applies them with one call to
/// use_transport_flags, before its actor system starts.

#include <cstdio>
#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>

#include "common/cli_options.hpp"
#include "vidnode/net/client.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/net/tls.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::apps {

/// What the connection flags say.
struct transport_flags {
  caf::timespan heartbeat = net::process_config::default_heartbeat_interval;
  caf::timespan node_timeout = net::process_config::default_node_timeout;
  /// The passphrase is not a flag: it comes from
  /// net::tls_passphrase_variable.
  net::tls_files tls;
};

/// Adds --heartbeat, --node-timeout, --tls-cert, --tls-key and --tls-ca to
/// `app` (and so keys of the same names to a --config file it reads).
inline void add_transport_options(CLI::App& app, transport_flags& flags) {
  add_duration(app, "--heartbeat", flags.heartbeat,
               "How often a heartbeat is sent on each connection (100ms to "
               "1m); must be shorter than every peer's --node-timeout");
  add_duration(app, "--node-timeout", flags.node_timeout,
               "A connection silent this long (no message, no heartbeat) is "
               "dropped as lost, so a hung or cut-off peer is noticed within "
               "it (at least twice --heartbeat, at most 10m)");
  app
    .add_option("--tls-cert", flags.tls.certificate,
                "This process's certificate (PEM), signed by the cluster CA; "
                "with --tls-key and --tls-ca (all three or none) every "
                "connection is mutual TLS (README, \"Connections: heartbeats "
                "and TLS\")")
    ->type_name("FILE");
  app
    .add_option("--tls-key", flags.tls.key,
                "The certificate's private key (PEM); an encrypted key's "
                "passphrase is read from $"
                  + std::string{net::tls_passphrase_variable})
    ->type_name("FILE");
  app
    .add_option("--tls-ca", flags.tls.ca,
                "The cluster CA's certificate(s) (PEM): only peers whose "
                "certificate one of them signed are accepted")
    ->type_name("FILE");
}

namespace detail {

/// Prints "PROGRAM: --SETTING: reason" for an error that names its setting
/// and returns the exit status of a usage error.
inline int usage_error(const caf::error& err, const std::string& program) {
  std::fprintf(stderr, "%s: --%s\n", program.c_str(),
               runtime::detail_of(err).c_str());
  return 2;
}

/// Reads the key's passphrase, if one is set, from the environment.
inline void read_passphrase(net::tls_files& tls) {
  if (auto passphrase = std::getenv(net::tls_passphrase_variable))
    tls.passphrase = passphrase;
}

} // namespace detail

/// vidnode's half: checks `flags` (as a node: its certificate must allow
/// TLS server and client authentication) and applies them to `cfg`. Returns
/// the exit status 2 after printing the problem, or 0.
inline int use_transport_flags(transport_flags flags, net::process_config& cfg,
                               const std::string& program) {
  if (auto err = cfg.heartbeat(flags.heartbeat, flags.node_timeout))
    return detail::usage_error(err, program);
  if (!flags.tls.any())
    return 0;
  detail::read_passphrase(flags.tls);
  if (auto err = net::use_tls(cfg, flags.tls, net::tls_role::node))
    return detail::usage_error(err, program);
  return 0;
}

/// vidctl's half: checks `flags` (as a client) and puts them in `options`.
/// Returns the exit status 2 after printing the problem, or 0.
inline int use_transport_flags(transport_flags flags,
                               net::client::options& options,
                               const std::string& program) {
  if (auto err = net::process_config::check_heartbeat(flags.heartbeat,
                                                      flags.node_timeout))
    return detail::usage_error(err, program);
  if (flags.tls.any()) {
    detail::read_passphrase(flags.tls);
    if (auto err = net::check_tls_files(flags.tls, net::tls_role::client))
      return detail::usage_error(err, program);
  }
  options.heartbeat_interval = flags.heartbeat;
  options.node_timeout = flags.node_timeout;
  options.tls = std::move(flags.tls);
  return 0;
}

} // namespace vidnode::apps
