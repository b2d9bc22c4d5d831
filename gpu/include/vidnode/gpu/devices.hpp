#pragma once

#include <string>
#include <vector>

#include "vidnode/gpu/cuda.hpp"
#include "vidnode/runtime/device.hpp"

namespace vidnode::gpu {

/// Default memory of one sim device when `sim:N` names none (an H100's).
constexpr uint64_t default_sim_memory_bytes = 80ull << 30;

/// Default memory kept out of each CUDA device's budget: the caching
/// allocator's fragmentation, cuDNN workspaces, other processes.
constexpr uint64_t default_cuda_reserve_bytes = 2ull << 30;

/// Turns a `--devices` value into the node's device list.
///
/// Accepted forms:
/// - `auto`: every CUDA device present, else one cpu device;
/// - `none`: no device (a head that only places jobs on worker nodes);
/// - `cuda[:ORDINALS[:MEMORY]]`: ORDINALS is `all` (the default) or a list
///   such as `0,1`; each device's budget is its free memory now minus
///   `cuda_reserve_bytes`, or MEMORY if given (at most that);
/// - `cpu:N[:MEMORY]`, `sim:N[:MEMORY]`: N is 1 to 64, MEMORY a size per
///   device such as `16GiB` (sim default 80GiB; cpu default: the host's
///   physical memory divided by N).
///
/// Returns false and says why in `error` for anything else, and for CUDA
/// devices that are absent or have too little free memory.
bool parse_devices(const std::string& spec,
                   std::vector<runtime::device_info>& devices,
                   std::string& error,
                   uint64_t cuda_reserve_bytes = default_cuda_reserve_bytes);

/// parse_devices against a given list of CUDA devices instead of the
/// machine's (`present`: what cuda_devices() would return).
bool parse_devices(const std::string& spec,
                   const std::vector<cuda_device>& present,
                   uint64_t cuda_reserve_bytes,
                   std::vector<runtime::device_info>& devices,
                   std::string& error);

} // namespace vidnode::gpu
