#pragma once

#include <string>

#include <caf/actor_system_config.hpp>

namespace vidnode::net {

/// The CAF configuration of a process that runs or talks to vidnode:
/// vidnode's types and error category, the middleman, the protocol version
/// in the handshake (`middleman.app-identifiers`), and the scheduler vidnode
/// is measured with. Applications that embed vidnode in their own
/// actor_system_config call actors::add_types instead and load the
/// middleman themselves.
class process_config : public caf::actor_system_config {
public:
  /// The scheduler policy vidnode uses unless told otherwise (see the
  /// README's dispatch benchmark for why).
  static constexpr const char* default_scheduler_policy = "sharing";

  process_config();

  /// Sets `scheduler.policy` ("sharing" or "stealing"); false if unknown.
  bool scheduler_policy(const std::string& policy);

  /// Sets `scheduler.max-threads`; 0 keeps CAF's default.
  void scheduler_threads(size_t threads);
};

} // namespace vidnode::net
