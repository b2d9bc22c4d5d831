#pragma once

// Real libtorch allocations for the boundary's tests, in a file of their
// own: ATen's logging macros (CHECK) clash with Catch's.

#include <cstdint>
#include <string>

namespace vidnode::test {

/// More bytes (1 PiB) than a process can map without asking for a larger
/// address space: libtorch's CPU allocator refuses at once, touching no
/// memory, whatever the machine's memory or overcommit policy.
constexpr int64_t unmappable_bytes = int64_t{1} << 50;

/// Allocates `bytes` bytes as one uint8 tensor on the CPU (at::empty, which
/// writes nothing) and frees it.
void allocate_cpu_tensor(int64_t bytes);

/// Writes to `path` a TorchScript model that follows the contract but whose
/// every denoising step first allocates `bytes` bytes (a multiple of 4) as
/// one tensor, which it does not write.
void write_greedy_model(const std::string& path, int64_t bytes);

} // namespace vidnode::test
