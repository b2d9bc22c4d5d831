#pragma once

/// @file
/// What the host synchronisations and measurements on the step path cost
/// on a CUDA device, and whether a piece of work synchronises at all, for
/// the [gpu] tests and scripts/gpu-check.sh (private to gpu/; free of
/// libtorch headers).

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace vidnode::gpu::host_costs {

/// Mean host time of one call of each, on a stream from libtorch's pool
/// (a lane's), with nothing else queued on it.
struct figures {
  /// device_memory_meter::measure around nothing: the registry's lock,
  /// resetPeakStats and two getDeviceStats (per step and per job phase).
  std::chrono::nanoseconds memory_window{0};
  /// step_timer::time around nothing: two cudaEventRecord (per step).
  std::chrono::nanoseconds step_events{0};
  /// step_timer::total per completed step: cudaEventQuery and
  /// cudaEventElapsedTime (per step, once, at finish).
  std::chrono::nanoseconds event_read{0};
  /// cudaStreamSynchronize of an idle stream.
  std::chrono::nanoseconds idle_stream_sync{0};
  /// A blocking 256 KiB host-to-device copy (a 256x256x16 job's initial
  /// noise, when a job begins).
  std::chrono::nanoseconds begin_copy{0};
  /// A blocking 3 MiB device-to-host copy (a 256x256x16 job's frames, when
  /// it finishes).
  std::chrono::nanoseconds frames_copy{0};
};

/// Measures `figures` on CUDA device `ordinal`, each a mean over `rounds`
/// calls after one to warm up. Nothing, and `why` says why, in a build
/// without CUDA or when the device fails.
std::optional<figures> measure(int32_t ordinal, int32_t rounds,
                               std::string& why);

/// Runs `work` with libtorch's CUDA synchronisation check on "error"
/// (torch.cuda.set_sync_debug_mode): a call that waits for a stream
/// (a blocking copy, .item(), a stream synchronisation through libtorch)
/// throws. Returns the first such error (or any other `work` threw), or
/// nothing. Process-wide while it runs: only for tests, with no other
/// CUDA work in flight. Without CUDA it just runs `work`.
std::optional<std::string>
synchronisations_in(const std::function<void()>& work);

} // namespace vidnode::gpu::host_costs
