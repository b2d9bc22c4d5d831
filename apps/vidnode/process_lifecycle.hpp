#pragma once

/// @file
/// How a vidnode process runs and stops, apart from parsing its settings:
/// the exit watchdog, its limits and directories, and a worker node's run.

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "vidnode/net/metrics.hpp"
#include "vidnode/runtime/settings.hpp"

namespace vidnode::apps {

/// How long stopping may take beyond the shutdown grace period (for the
/// webhooks of jobs cancelled when it ends, then the actors) before the
/// process exits anyway.
constexpr auto stop_margin = std::chrono::seconds{10};

/// Exits the process if stopping takes longer than `limit` (CAF 0.17.6 can
/// hang in ~actor_system), or at once on a second signal of `signals`.
void start_exit_watchdog(sigset_t signals, caf::timespan limit);

/// Raises the soft limit on open descriptors to the hard limit: a node
/// holds one per client connection and transfer, and the network backend
/// rotates connections through the whole range
/// (net::hardened_multiplexer).
void raise_descriptor_limit();

/// Why `dir` cannot hold the node's videos (it is a file, cannot be
/// created or is not writable), or nothing: checked at start so that no
/// job finds out after its device time is spent.
std::optional<std::string> unusable_directory(const std::string& dir);

/// --state-dir's default: $VIDNODE_STATE_DIR if set, else /var/lib/vidnode
/// for root, else $XDG_STATE_HOME/vidnode or ~/.local/state/vidnode (the
/// XDG base directory specification's place for state that should persist
/// between restarts).
std::string default_state_dir();

/// Runs a worker node that joins the head at `host:port` until SIGINT or
/// SIGTERM of `signals` (or the head refuses it, or cuts its handshakes:
/// exit 2); its exit status. Tells a service manager when it has joined and
/// when it stops (service_manager.hpp); its devices' state is served by
/// `metrics` if given.
int run_worker_node(caf::actor_system& sys,
                    const runtime::node_settings& settings,
                    const std::string& host, uint16_t port,
                    caf::timespan node_timeout, const sigset_t& signals,
                    net::metrics_endpoint* metrics);

} // namespace vidnode::apps
