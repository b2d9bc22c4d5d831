#pragma once

/// @file
/// Lanes: the threads that run a device's jobs side by side when it takes
/// more than one at a time (`--max-concurrency N`). Each lane is a thread of
/// its own; this header says how such a thread is set up for the device's
/// kind, keeping libtorch out of the actors.

#include <cstdint>

#include "vidnode/runtime/device.hpp"

namespace vidnode::gpu {

/// Whether jobs on devices of this kind run in lanes of their own threads
/// when the device takes several at a time: cpu and cuda devices (their
/// pipeline calls block); not sim devices, whose calls return at once with
/// the simulated time left, so the worker interleaves them on timers.
bool runs_in_lanes(runtime::device_kind kind) noexcept;

/// Prepares the calling thread to run lane `lane` (0-based) of `lanes` on
/// `device`. On a cpu device the thread's intra-op threads (libtorch's)
/// become max(1, T / lanes), where T is the process's intra-op thread count
/// when the first lane is entered (libtorch's default: the cores; a
/// benchmark or test may set it first). On a cuda device the thread's
/// current stream becomes a stream of its own from libtorch's pool, so the
/// lanes' kernels overlap. Nothing on other kinds or without libtorch.
/// Returns the intra-op threads the lane got (0 where not applicable).
int32_t enter_lane(const runtime::device_info& device, int32_t lane,
                   int32_t lanes);

} // namespace vidnode::gpu
