#pragma once

#include <functional>
#include <future>
#include <memory>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/journal_store.hpp"
#include "vidnode/actors/node_observer.hpp"
#include "vidnode/actors/transfers.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/settings.hpp"

namespace vidnode::actors {

/// The actors of one node: its admission actor, its device supervisor and
/// the registry worker nodes join through.
struct node_actors {
  admission_control_actor admission;
  node_supervisor_actor supervisor;
  cluster_registry_actor registry;
};

/// Spawns a node's actors in `sys` without blocking: admission, then the
/// supervisor, which attaches one worker per entry of `devices`, then the
/// registry of worker nodes. For tests
/// on the test coordinator and for callers that manage shutdown themselves
/// (see local_node for the blocking facade). `journal`, `events`: see
/// spawn_admission (settings.state_dir is not read here). `preloaded`:
/// see spawn_node_supervisor.
node_actors
spawn_node(caf::actor_system& sys, const runtime::node_settings& settings,
           std::vector<runtime::device_info> devices,
           std::shared_ptr<const gpu::model_catalog> catalog,
           std::shared_ptr<transfers> transfers = nullptr,
           std::shared_ptr<journal_store> journal = nullptr,
           std::shared_ptr<node_observer> events = nullptr,
           std::function<void(const caf::error&)> preloaded = nullptr);

/// A running node inside an actor_system that the caller owns: the entry
/// point for applications that embed vidnode (net/embedding.hpp has the
/// whole recipe). The system's config must have had vidnode's types added
/// (actors::add_types, or net::configure_host when the process also talks
/// to other processes) before it was created. The node is a head: it
/// serves its own devices and, once its registry() is published, takes
/// worker nodes.
///
/// Stop it (stop, or destroy it) before the actor_system is destroyed:
/// ~actor_system waits for the node's actors. Actors of the host that
/// subscribed to jobs receive no more events once it stopped.
///
/// Thread-safety: start and stop are called from one non-actor thread (they
/// block); `admission()` may be used from anywhere.
class local_node {
public:
  /// Validates `settings`, discovers the devices it names, opens the
  /// journal in `settings.state_dir` if set (its jobs are taken up again),
  /// spawns the node. Fails with errc::invalid_request naming the bad
  /// setting, or errc::journal_unavailable naming the journal's file and
  /// why it cannot be used (never starting over with an empty one).
  /// `catalog` null: the built-in models, set up from `settings`.
  /// `transfers` null: jobs that name URLs are refused. `events` (null:
  /// none) is told of the node's events (node_observer; metrics). The
  /// preloads (`settings.preload`) are checked here (an unknown model, a
  /// device the node lacks or a model no selected device can run fail as
  /// prepare_node says) and start at once; await_preloads waits for them.
  /// Returns without waiting for them.
  static caf::expected<std::unique_ptr<local_node>>
  start(caf::actor_system& sys, const runtime::node_settings& settings,
        std::shared_ptr<const gpu::model_catalog> catalog = nullptr,
        std::shared_ptr<transfers> transfers = nullptr,
        std::shared_ptr<node_observer> events = nullptr);

  /// Stops the node (see stop).
  ~local_node();

  local_node(const local_node&) = delete;
  local_node& operator=(const local_node&) = delete;

  /// The handle clients submit to, with the client protocol
  /// (runtime/protocol.hpp): the host's actors request it directly, and
  /// net::server::start publishes it for vidctl and other processes.
  runtime::admission_actor admission() const;

  /// The admission actor with its node-internal messages (`metrics` for a
  /// metrics endpoint); never publish it.
  admission_control_actor admission_control() const {
    return actors_.admission;
  }

  /// The registry worker nodes join through: publish it on the cluster
  /// port (never on the client port).
  cluster_registry_actor registry() const {
    return actors_.registry;
  }

  /// The devices the node serves.
  const std::vector<runtime::device_info>& devices() const noexcept {
    return devices_;
  }

  /// Blocks until every preload of `settings.preload` is in its device's
  /// cache (at once if there are none), each bounded by
  /// `settings.preload_timeout`: none, or the first failure (the worker's
  /// error: unknown_model, out_of_memory, the pipeline's; worker_lost for a
  /// load past the timeout). `interrupted` (if set) is polled every 100 ms;
  /// once it returns true this returns errc::cancelled. A failure does not
  /// stop the node: the caller does. Call from a non-actor thread.
  caf::error
  await_preloads(const std::function<bool()>& interrupted = nullptr) const;

  /// Stops the node: new jobs are refused and queued and running jobs end
  /// (cancelled: the node is shutting down; waiters receive that result),
  /// or, with a journal, are journaled as queued for the next start (a
  /// running attempt is stopped and not charged).
  /// Jobs whose video is being written or uploaded, and webhooks, get
  /// node_settings::shutdown_grace to finish (webhooks at least 5 s). Then
  /// every device worker stops, then the admission actor and supervisor.
  /// Waits at most `timeout` in all; returns an error if something did not
  /// stop in time. Idempotent.
  caf::error stop(caf::timespan timeout);

  /// stop() with a timeout of the shutdown grace period plus 10 s.
  caf::error stop();

private:
  local_node(caf::actor_system& sys, node_actors actors,
             std::vector<runtime::device_info> devices,
             caf::timespan shutdown_grace,
             std::shared_future<caf::error> preloads);

  caf::actor_system& sys_;
  caf::timespan stop_timeout_;
  node_actors actors_;
  std::vector<runtime::device_info> devices_;
  std::shared_future<caf::error> preloads_;
  bool stopped_ = false;
};

} // namespace vidnode::actors
