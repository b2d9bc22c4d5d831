#pragma once

/// @file
/// How a vidnode process runs and stops, apart from parsing its settings:
/// the exit watchdog, its limits and directories, and a worker node's run.

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "vidnode/net/metrics.hpp"
#include "vidnode/runtime/errc.hpp"
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

/// A check for await_preloads: whether SIGINT or SIGTERM of `signals` is
/// pending (taken, and stored in `sig`); SIGHUP is taken and ignored.
std::function<bool()> stop_signal_taken(const sigset_t& signals, int& sig);

/// Waits for `node`'s preloads (a local_node or worker_node), stopping on
/// SIGINT or SIGTERM of `signals`: nothing once they are loaded, else the
/// exit status after saying why on stderr (0 for a signal, 1 for a failed
/// preload); the caller then stops the node. `explained` (if given) says
/// whether a signal came from vidnode itself after it said why it stops
/// (a head that refused a worker node): then nothing more is said.
template <class Node>
std::optional<int>
await_preloads(const Node& node, const sigset_t& signals,
               const std::function<bool()>& explained = nullptr) {
  int sig = 0;
  auto err = node.await_preloads(stop_signal_taken(signals, sig));
  if (!err)
    return std::nullopt;
  if (sig != 0) {
    if (!explained || !explained())
      std::fprintf(stderr,
                   "vidnode: %s before the preloads finished; stopping\n",
                   sig == SIGINT ? "SIGINT" : "SIGTERM");
    return 0;
  }
  std::fprintf(stderr, "vidnode: --preload: %s\n",
               runtime::describe(err).c_str());
  return 1;
}

/// Runs a worker node that joins the head at `host:port` until SIGINT or
/// SIGTERM of `signals` (or the head refuses it, or cuts its handshakes:
/// exit 2); its exit status. Tells a service manager when it has joined and
/// when it stops (service_manager.hpp); its devices' state is served by
/// `metrics` if given. With preloads it reports having joined only once
/// they are loaded too, and exits 1 if one fails.
int run_worker_node(caf::actor_system& sys,
                    const runtime::node_settings& settings,
                    const std::string& host, uint16_t port,
                    caf::timespan node_timeout, const sigset_t& signals,
                    net::metrics_endpoint* metrics);

} // namespace vidnode::apps
