#include "vidnode/actors/node_observer.hpp"

namespace vidnode::actors {

const char* to_string(device_fault fault) noexcept {
  switch (fault) {
    case device_fault::out_of_memory:
      return "out_of_memory";
    case device_fault::crash:
      return "crash";
  }
  return "unknown";
}

node_observer::~node_observer() = default;

void node_observer::job_accepted(const std::string&, int32_t) {}

void node_observer::job_retried(const std::string&, int32_t) {}

void node_observer::job_ended(const job_end&) {}

void node_observer::device_failed(const std::string&, const std::string&,
                                  device_fault) {}

void node_observer::node_joined(const std::string&) {}

void node_observer::node_lost(const std::string&) {}

void node_observer::attempt_phases(const std::string&, runtime::device_kind,
                                   const job_phases&) {}

void node_observer::journal_committed(caf::timespan, bool) {}

std::shared_ptr<node_observer> null_observer() {
  static const auto instance = std::make_shared<node_observer>();
  return instance;
}

} // namespace vidnode::actors
