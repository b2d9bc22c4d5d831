#pragma once

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>

namespace vidnode::runtime {

/// What kind of hardware a device is.
enum class device_kind : uint8_t {
  /// Simulated: runs only the `sim` pipelines, never blocks a thread.
  sim,
  /// A share of the host's CPUs.
  cpu,
  /// One CUDA GPU.
  cuda,
};

/// "sim", "cpu" or "cuda".
const char* to_string(device_kind kind) noexcept;

/// One device of a node, as discovered at start.
struct device_info {
  /// Position in the node's device list (0-based, unique per node).
  int32_t index = 0;
  device_kind kind = device_kind::sim;
  /// Index among the devices of its kind (the N of "cuda:N").
  int32_t ordinal = 0;
  /// Memory jobs may reserve on it, in bytes.
  uint64_t memory_bytes = 0;

  /// "sim:0", "cpu:1", "cuda:0".
  std::string name() const;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, device_info& x) {
  return f(caf::meta::type_name("vidnode::device_info"), x.index, x.kind,
           x.ordinal, x.memory_bytes);
}

} // namespace vidnode::runtime
