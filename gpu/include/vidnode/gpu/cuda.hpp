#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vidnode::gpu {

/// One CUDA device as libtorch sees it when asked.
struct cuda_device {
  /// The N of `cuda:N`.
  int32_t ordinal = 0;
  /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
  std::string name;
  /// Memory free on the device when asked, in bytes.
  uint64_t free_bytes = 0;
  /// The device's memory, in bytes.
  uint64_t total_bytes = 0;
};

/// Whether this build can run jobs on CUDA devices (libtorch with CUDA).
bool cuda_supported() noexcept;

/// Every CUDA device present, with its free memory now; empty when this
/// build has no CUDA or the machine no GPU. Creates a CUDA context on each
/// device (once per process).
std::vector<cuda_device> cuda_devices();

} // namespace vidnode::gpu
