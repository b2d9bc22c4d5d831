#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vidnode::actors {

/// What placement needs to know about one device.
struct placement_candidate {
  /// Whether the device takes work (its worker is up, not quarantined).
  bool available = false;
  int32_t running = 0;
  int32_t slots = 0;
  uint64_t memory_bytes = 0;
  uint64_t memory_reserved = 0;
  /// Whether the job's model is in (or being loaded into) its cache.
  bool has_model = false;
};

/// Chooses the device for a job that needs `bytes` of memory: among the
/// available devices with a free slot and `bytes` of unreserved memory, one
/// that has the model, then the one running fewest jobs, then the one with
/// the least memory reserved, then the lowest index. Returns -1 if none fits.
int32_t choose_device(const std::vector<placement_candidate>& devices,
                      uint64_t bytes);

} // namespace vidnode::actors
