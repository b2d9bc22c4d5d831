#pragma once

/// @file
/// What an application that has its own CAF actor_system needs to run
/// vidnode inside it. The roles, each in the host's one actor_system:
///
/// 1. Configure: call configure_host on the host's actor_system_config
///    before the actor_system exists (or only actors::add_types when the
///    process never opens a port or connects to another vidnode process).
/// 2. A head: actors::local_node::start (node.hpp). It serves its own
///    devices (alone it is a whole cluster) and, once its registry() is
///    published with net::publish(sys, registry, host, port, true,
///    port_peers::nodes) (transport.hpp), the devices of worker nodes that
///    join it: both roles in one process. Its admission() is the typed
///    handle (runtime::admission_actor, runtime/protocol.hpp) the host's
///    actors submit to and subscribe with; to let vidctl and other
///    processes submit, publish it with net::server::start (server.hpp).
///    Jobs that name URLs need start's `transfers` (net::curl_transfers,
///    curl_transfers.hpp); a journal needs node_settings::state_dir.
/// 3. A worker node that joins a head in another process:
///    actors::worker_node::start (actors/cluster.hpp) with
///    join_options_for(sys, host, port). Its jobs come from the head;
///    submit them to the head's client port (net::client, client.hpp).
/// 4. Stop, from a non-actor thread, before the actor_system goes away
///    (~actor_system waits for every live actor, vidnode's included): close
///    the cluster port (unpublish_atom to transport_handle(sys)), stop the
///    node (local_node::stop or worker_node::stop; their destructors stop
///    too), then the server (server::stop, after the node so that waiting
///    clients hear how their jobs ended).
///
/// Logs: vidnode writes through spdlog's default logger, which writes to
/// stdout unless the application replaces it (spdlog::set_default_logger,
/// in an application that links spdlog itself); runtime::use_log_format
/// (runtime/logging.hpp) sets the lines' format without spdlog's headers.

#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "vidnode/actors/cluster.hpp"

namespace vidnode::net {

/// Adds to a host application's `cfg` what every process that runs a
/// vidnode node, or talks to one over the network, needs:
/// - vidnode's message types and its error category "vidnode"
///   (actors::add_types; every type name starts with "vidnode::", or is
///   CAF's container name of such a type, so none collides with a host's);
/// - CAF's middleman with vidnode's network backend (load_middleman,
///   hardened_multiplexer.hpp): call this instead of
///   `cfg.load<caf::io::middleman>()`, never both;
/// - runtime::protocol_version added to `middleman.app-identifiers`, after
///   the names the host put there: CAF connects two processes when their
///   lists share a name, so the host's own peers still connect, and
///   vidnode processes of another protocol version are refused;
/// - heartbeats (process_config::default_heartbeat_interval and
///   default_node_timeout), unless `cfg` sets them: vidnode processes drop
///   connections that stay silent, and see lost peers only through them.
///
/// The scheduler stays the host's (process_config::apply_default_scheduler
/// applies vidnode's). Call it before the actor_system is created; options
/// the host parses afterwards (`cfg.parse`) override these settings. For
/// TLS, call net::use_tls (tls.hpp) afterwards.
///
/// vidnode adds no option group to the host's configuration: a node is
/// configured with runtime::node_settings, which runtime::validate checks
/// as a whole, and CAF 0.17.6 silently ignores a mistyped value in an INI
/// file, which would start a node with defaults nobody asked for. Map the
/// host's own options onto node_settings.
void configure_host(caf::actor_system_config& cfg);

/// The join_options of a worker node in `sys` that joins the head whose
/// cluster port is `host`:`port`: it connects through transport_handle(sys)
/// (TLS when use_tls configured it) and takes its node timeout from `sys`'s
/// `middleman.connection-timeout`; everything else has join_options'
/// defaults. Set `on_joined` and `on_refused` to hear how joining goes.
actors::join_options join_options_for(caf::actor_system& sys, std::string host,
                                      uint16_t port);

} // namespace vidnode::net
