#pragma once

#include <chrono>
#include <string>

#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>
#include <caf/timespan.hpp>

namespace vidnode::net {

/// The CAF configuration of a process that runs or talks to vidnode:
/// vidnode's types and error category, the middleman with vidnode's
/// hardened network backend (hardened_multiplexer), the protocol version
/// in the handshake (`middleman.app-identifiers`), and the scheduler vidnode
/// is measured with. Applications that embed vidnode in their own
/// actor_system_config call configure_host (embedding.hpp) instead.
///
/// Heartbeats are on: every process that talks to vidnode must send them,
/// because a node drops a connection it has heard nothing on for its node
/// timeout (and CAF sees a hung or cut-off peer only through them).
class process_config : public caf::actor_system_config {
public:
  /// The scheduler policy vidnode uses unless told otherwise: work sharing,
  /// with one pool thread per hardware thread (CAF's default is work
  /// stealing with at least 4 threads). On the 2-core benchmark machine it
  /// dispatches more jobs per second and answers remote clients faster than
  /// CAF's default, and, unlike work stealing, burns no CPU polling while
  /// jobs run (README, "Benchmarks").
  static constexpr const char* default_scheduler_policy = "sharing";

  /// Applies vidnode's default scheduler configuration to any config (the
  /// benchmarks use it to measure exactly what vidnode runs with).
  static void apply_default_scheduler(caf::actor_system_config& cfg);

  /// How often a process sends heartbeats on each connection, by default.
  static constexpr caf::timespan default_heartbeat_interval =
    std::chrono::seconds{1};

  /// How long a connection may stay silent (no message, no heartbeat)
  /// before it is dropped as lost, by default: five heartbeats.
  static constexpr caf::timespan default_node_timeout = std::chrono::seconds{5};

  /// Bounds of the heartbeat interval. CAF 0.17.6 drops a new outgoing
  /// connection that got no answer by its first heartbeat tick, so a very
  /// short interval would drop healthy connections still in their
  /// handshake.
  static constexpr caf::timespan min_heartbeat_interval =
    std::chrono::milliseconds{100};
  static constexpr caf::timespan max_heartbeat_interval =
    std::chrono::minutes{1};

  /// Most a node timeout may be; at least it is twice the interval.
  static constexpr caf::timespan max_node_timeout = std::chrono::minutes{10};

  /// Why `interval` and `node_timeout` are not usable heartbeat settings,
  /// or nothing: the interval must be from 100 ms to 1 min, the node timeout
  /// at least twice the interval (one late heartbeat must not drop a
  /// healthy link) and at most 10 min. The error is
  /// runtime::errc::invalid_request naming the setting ("heartbeat: ..." or
  /// "node-timeout: ...").
  static caf::error check_heartbeat(caf::timespan interval,
                                    caf::timespan node_timeout);

  /// Sets up vidnode's types, middleman, protocol version, scheduler and
  /// heartbeats with their defaults.
  process_config();

  /// Sets `middleman.heartbeat-interval` to `interval` and
  /// `middleman.connection-timeout` to `node_timeout`: a connection on which
  /// nothing arrived for `node_timeout` is dropped and every actor of its
  /// peer seen as down. Every peer must send heartbeats more often than
  /// this process's node timeout, or healthy idle links are dropped. Bad
  /// values (see check_heartbeat) are refused and change nothing.
  caf::error heartbeat(caf::timespan interval, caf::timespan node_timeout);

  /// Sets `scheduler.policy` ("sharing" or "stealing"); false if unknown.
  bool scheduler_policy(const std::string& policy);

  /// Sets the longest message (bytes) a peer may send before its connection
  /// is closed (hardened_multiplexer; default 16 MiB).
  void max_message_size(size_t bytes);

  /// Sets the longest time an outgoing TCP connection may take to be
  /// established (hardened_multiplexer; default 10 s).
  void connect_timeout(caf::timespan timeout);

  /// Sets `scheduler.max-threads`; 0 means one per hardware thread.
  void scheduler_threads(size_t threads);

  /// Sets `work-stealing.aggressive-poll-attempts`: how often an idle
  /// work-stealing thread polls before it backs off into sleeps.
  void poll_attempts(size_t attempts);
};

} // namespace vidnode::net
