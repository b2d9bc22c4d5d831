#pragma once

#include <string>

#include <caf/actor_system_config.hpp>

namespace vidnode::net {

/// The CAF configuration of a process that runs or talks to vidnode:
/// vidnode's types and error category, the middleman with vidnode's
/// hardened network backend (hardened_multiplexer), the protocol version
/// in the handshake (`middleman.app-identifiers`), and the scheduler vidnode
/// is measured with. Applications that embed vidnode in their own
/// actor_system_config call actors::add_types and net::load_middleman
/// instead.
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

  process_config();

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
