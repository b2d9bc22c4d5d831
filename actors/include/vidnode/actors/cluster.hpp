#pragma once

/// @file
/// The two ends of node registration. On the head, the registry (published
/// on the cluster port, never on the client port) hands a joining node's
/// registration to admission. On a worker node, the cluster member connects
/// to the head's registry, registers the node's supervisor, devices and the
/// models it serves and the attempts its devices hold, binds the supervisor
/// to the head's admission actor, watches the head, and when the head is
/// lost joins again with capped exponential backoff until the head is back
/// (or gives up: join_options). Meanwhile the node's jobs run on, for the
/// head's lease grace less the node's timeout (join_answer); the head takes
/// over those it still wants when the node rejoins.

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/settings.hpp"

namespace vidnode::actors {

/// Spawns the head's registry of nodes for `admission`. It answers a join
/// with admission's handle and the head's name once admission registered
/// the node, or with admission's refusal. Publish it on the cluster port;
/// end it (send_exit) before the actor system shuts down.
cluster_registry_actor
spawn_cluster_registry(caf::actor_system& sys,
                       admission_control_actor admission);

/// How a worker node finds and keeps its head.
///
/// Failures to connect are of two kinds. Nothing listening (the connection
/// refused, the host unreachable, no TCP connection within the connect
/// timeout: CAF's cannot_connect_to_node) and silence (no answer within the
/// timeouts) mean a head that is down, restarting or hung: the member tries
/// again with backoff, forever. A TCP connection closed during the
/// handshake, by either end (CAF's disconnect_during_handshake), is what TLS
/// on at one end only gives, and a certificate that either end does not
/// trust (measured with vidnode's TLS transport: a plain node and a TLS
/// head, a TLS node and a plain head, a node with another CA's certificate
/// and CA, the same node trusting the head's CA as well): after
/// `handshake_failure_limit` such connections in a row the member gives up
/// through on_refused, whether or not it joined before (a head restarted
/// with other TLS settings, or a certificate that expired, needs the node
/// restarted with other files anyway). A connection that completes its
/// handshake, or finds nothing listening, starts the count again: a head
/// that restarts refuses connections while it is away, so only a handshake
/// cut as it dies counts, once; silence neither adds to the count nor
/// starts it again.
struct join_options {
  /// The head's cluster port.
  std::string host;
  uint16_t port = 0;
  /// The handle that connects (CAF's `connect_atom`): the middleman's, or
  /// the OpenSSL manager's when TLS is on.
  caf::actor connector;
  /// Longest time to connect to the head, handshake included.
  caf::timespan connect_timeout = std::chrono::seconds{5};
  /// Longest time the head may take to answer a registration.
  caf::timespan join_timeout = std::chrono::seconds{10};
  /// This node's --node-timeout: how long after the head stopped answering
  /// the node notices (the head, with its own timeout, may notice sooner).
  /// The node runs its attempts on for the head's lease grace less this.
  caf::timespan node_timeout = std::chrono::seconds{5};
  /// First delay before joining again after a failure or the loss of the
  /// head; doubles with each failure up to `backoff_max`.
  caf::timespan backoff = std::chrono::milliseconds{100};
  caf::timespan backoff_max = std::chrono::seconds{5};
  /// Connections in a row that may be closed during the handshake before
  /// the member gives up (see above); 0: never give up. With the defaults
  /// the third comes about 0.3 s after the first when the node never
  /// joined, and within 15 s (three times `backoff_max`) after a loss.
  int handshake_failure_limit = 3;
  /// Whether `connector` uses TLS: only the words of a refusal depend on it.
  bool tls = false;
  /// Called (from an actor thread) each time the node has registered, with
  /// the head's name.
  std::function<void(const std::string& head)> on_joined;
  /// Called (from an actor thread) when the head refuses the node for good
  /// (a duplicate --node-name, another protocol version, not a cluster
  /// port), or its connections were closed during the handshake
  /// `handshake_failure_limit` times in a row (errc::unauthorized naming
  /// the head's address and the likely cause);
  /// the member then stops trying.
  std::function<void(const caf::error& reason)> on_refused;
};

/// A worker node: its supervisor and device workers, and the cluster member
/// that registers them with the head. No admission: jobs come from the
/// head. Its videos stay in its `--output-dir` (settings.output_dir), from
/// which the head reads them for clients and uploads (`read_file`,
/// interfaces.hpp); inputs copied from the head go to its `copies/`
/// subdirectory, emptied at start.
///
/// In an application that embeds vidnode, the actor_system's config needs
/// net::configure_host, and net::join_options_for gives the join options
/// (net/embedding.hpp). Stop the node (stop, or destroy it) before the
/// actor_system is destroyed.
///
/// Thread-safety: start and stop block; call them from one non-actor
/// thread.
class worker_node {
public:
  /// Validates `settings`, discovers the devices it names, spawns the
  /// supervisor (its workers start once the head is joined) and the member,
  /// which starts joining at once. Fails with errc::invalid_request naming
  /// the bad setting. `catalog` null: the built-in models.
  static caf::expected<std::unique_ptr<worker_node>>
  start(caf::actor_system& sys, const runtime::node_settings& settings,
        join_options options,
        std::shared_ptr<const gpu::model_catalog> catalog = nullptr);

  /// Stops (see stop).
  ~worker_node();

  worker_node(const worker_node&) = delete;
  worker_node& operator=(const worker_node&) = delete;

  /// The devices the node serves.
  const std::vector<runtime::device_info>& devices() const noexcept {
    return devices_;
  }

  /// The node's supervisor (`metrics` for a metrics endpoint); never
  /// publish it.
  node_supervisor_actor supervisor() const {
    return supervisor_;
  }

  /// The name the node registers under.
  const std::string& name() const noexcept {
    return name_;
  }

  /// Blocks until the node has joined a head and every preload of
  /// `settings.preload` is in its device's cache (the workers, and so the
  /// preloads, start once a head is joined); as local_node::await_preloads
  /// otherwise. Call from a non-actor thread.
  caf::error
  await_preloads(const std::function<bool()>& interrupted = nullptr) const;

  /// Stops joining, ends every device worker (their jobs end with them; the
  /// head re-queues them when it sees the node go) and the node's actors.
  /// Waits at most `timeout`; returns an error if something did not stop in
  /// time. Idempotent.
  caf::error stop(caf::timespan timeout = std::chrono::seconds{10});

private:
  worker_node(caf::actor_system& sys, node_supervisor_actor supervisor,
              caf::actor member, std::vector<runtime::device_info> devices,
              std::string name, std::shared_future<caf::error> preloads);

  caf::actor_system& sys_;
  node_supervisor_actor supervisor_;
  caf::actor member_;
  std::vector<runtime::device_info> devices_;
  std::string name_;
  std::shared_future<caf::error> preloads_;
  bool stopped_ = false;
};

/// Spawns the cluster member of a worker node named `name` whose supervisor
/// is `supervisor`, whose devices are `devices` and which serves `models`
/// (model patterns: its catalog's served(), which the head places jobs by)
/// (for worker_node and tests). It ends on `shutdown_atom` (replying ok) or
/// an exit message.
caf::actor spawn_cluster_member(caf::actor_system& sys, std::string name,
                                std::vector<runtime::device_info> devices,
                                std::vector<std::string> models,
                                node_supervisor_actor supervisor,
                                join_options options);

} // namespace vidnode::actors
