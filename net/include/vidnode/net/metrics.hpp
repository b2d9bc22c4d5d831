#pragma once

/// @file
/// The Prometheus endpoint of a node (`vidnode --metrics-listen`): an HTTP
/// server on its own threads that serves `GET /metrics` in Prometheus'
/// text format. Counters and histograms are made from the node's events
/// (the actors::node_observer it hands out, and the transfers it counts);
/// gauges of the queue, devices and nodes are read from admission at each
/// scrape (admission_control_actor's `metrics`), so they never drift.
/// prometheus-cpp stays inside net/'s sources.

#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node_observer.hpp"
#include "vidnode/actors/transfers.hpp"

namespace vidnode::net {

/// The port the README suggests for `--metrics-listen`.
constexpr uint16_t suggested_metrics_port = 9447;

/// A node's metrics endpoint. Every metric is named `vidnode_...`; the
/// README's "Metrics" section lists them.
///
/// Thread-safety: every member may be called from any thread. The observer
/// and the counted transfers only touch atomic counters and short-held
/// locks of prometheus-cpp, never I/O, so actors may call them. A scrape
/// waits at most the timeout given to `watch` for admission (or a worker
/// node's supervisor); then it serves the counters without the gauges (and
/// `vidnode_snapshot_ok` 0).
///
/// Lifetime: destroy it before the actor_system passed to `watch` (it stops
/// the HTTP server and waits for scrapes in progress).
class metrics_endpoint {
public:
  /// Starts serving on `host`:`port` (0: a free port; see port()).
  /// Fails with errc::invalid_request naming the address and the cause
  /// when it cannot be bound.
  static caf::expected<std::unique_ptr<metrics_endpoint>>
  start(const std::string& host, uint16_t port);

  /// Stops (see stop).
  ~metrics_endpoint();

  /// Stops the HTTP server, waiting for scrapes in progress, and stops
  /// asking the node's actors. Call it before the actor system passed to
  /// `watch` goes away: CAF 0.17.6's ~actor_system waits for the server's
  /// threads, which asked actors during a scrape, and hangs while they
  /// live. Idempotent.
  void stop();

  metrics_endpoint(const metrics_endpoint&) = delete;
  metrics_endpoint& operator=(const metrics_endpoint&) = delete;

  /// The port it listens on.
  uint16_t port() const noexcept;

  /// The observer to give the node (local_node::start's `events`); it
  /// counts into this endpoint. Never null; may outlive the endpoint.
  std::shared_ptr<actors::node_observer> observer() const;

  /// `inner`, with every fetch, upload and webhook counted by direction
  /// and outcome (vidnode_transfers_total). Null stays null.
  std::shared_ptr<actors::transfers>
  counted(std::shared_ptr<actors::transfers> inner) const;

  /// From now on each scrape asks `admission` (an actor of `sys`, which
  /// must outlive this object or the next call to `watch` or `unwatch`)
  /// for the state of the queue, devices and nodes, waiting at most
  /// `timeout`. Without a `watch`, only the counters are served.
  void watch(caf::actor_system& sys, actors::admission_control_actor admission,
             caf::timespan timeout = std::chrono::seconds{2});

  /// The same for a worker node: each scrape asks its `supervisor` for the
  /// state of the node's devices (the queue and nodes are the head's).
  void watch(caf::actor_system& sys, actors::node_supervisor_actor supervisor,
             caf::timespan timeout = std::chrono::seconds{2});

  /// Scrapes stop asking admission (call before the actor system goes).
  void unwatch();

  /// What a scrape would serve now, in Prometheus' text format (for tests).
  std::string render() const;

  /// Implementation detail.
  struct impl;

private:
  explicit metrics_endpoint(std::unique_ptr<impl> x);

  std::unique_ptr<impl> impl_;
};

} // namespace vidnode::net
