#pragma once

#include <string>
#include <vector>

#include "vidnode/runtime/device.hpp"

namespace vidnode::gpu {

/// Default memory of one sim device when `sim:N` names none (an H100's).
constexpr uint64_t default_sim_memory_bytes = 80ull << 30;

/// Turns a `--devices` value into the node's device list.
///
/// Accepted forms: `auto` (every CUDA device; until CUDA support exists,
/// one cpu device), `cpu:N[:MEMORY]`, `sim:N[:MEMORY]`, where N is 1 to 64
/// and MEMORY a size per device such as `16GiB` (sim default 80GiB; cpu
/// default: the host's physical memory divided by N). Returns false and
/// says why in `error` for anything else.
bool parse_devices(const std::string& spec,
                   std::vector<runtime::device_info>& devices,
                   std::string& error);

} // namespace vidnode::gpu
