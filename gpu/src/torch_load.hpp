#pragma once

/// @file
/// Loading a model onto a device, measured (private to gpu/). Apart from
/// torch_boundary.hpp because it needs ATen, whose logging macros (CHECK)
/// clash with Catch's in that header's test.

#include <ATen/ATen.h>

#include "torch_boundary.hpp"

namespace vidnode::gpu {

/// Runs a pipeline's `load` on `device` and returns the device memory the
/// loaded model holds (0 on the CPU). Initializes CUDA first: the caching
/// allocator's statistics exist only after that.
template <class F>
uint64_t load_on_device(c10::Device device, F&& load) {
  with_torch(device,
             [&] { at::empty({1}, at::TensorOptions().device(device)); });
  device_memory_meter meter{device};
  meter.measure([&] { with_torch(device, load); });
  return meter.held_bytes();
}

} // namespace vidnode::gpu
