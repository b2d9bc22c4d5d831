#pragma once

/// @file
/// What tests and benchmarks may read of a tiny-t2v job run (private to
/// gpu/, not installed; free of libtorch headers). The public API stays
/// job_run.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vidnode/gpu/pipeline.hpp"

namespace vidnode::gpu::tiny_t2v_hooks {

/// The latent a tiny-t2v run holds now: this rank's frames, float32,
/// [frames / ranks, 4, height / 8, width / 8] in row-major order, so the
/// ranks' latents concatenated in rank order are the whole latent; empty
/// once finish() has returned (the run frees its tensors there). Throws
/// std::invalid_argument when `run` is not a tiny-t2v run.
std::vector<float> latent(const job_run& run);

/// Where a tiny-t2v run's time went so far (throws std::invalid_argument
/// when `run` is not one).
struct run_timing {
  /// Wall time inside step() calls.
  std::chrono::nanoseconds steps{0};
  /// The part of `steps` inside the communicator's calls (all-to-all),
  /// waiting for the other ranks included. Zero for one rank.
  std::chrono::nanoseconds step_collectives{0};
  /// Wall time inside finish() (decoding and gathering the frames).
  std::chrono::nanoseconds finish{0};
  /// The part of `finish` inside the communicator's calls (all-gather).
  std::chrono::nanoseconds finish_collectives{0};
};

/// See run_timing.
run_timing timing(const job_run& run);

/// Sets torch's intra-op threads for the whole process
/// (at::set_num_threads): every rank and job in it shares them. For tests
/// and benchmarks, before they run jobs; pipelines never call it.
void set_intra_op_threads(int32_t threads);

/// torch's intra-op threads as the calling thread sees them
/// (at::get_num_threads).
int32_t intra_op_threads();

/// Writes a weights file in the layout tiny-t2v had before its temporal
/// attention (a 3D-convolution denoiser, no recorded layout), so tests can
/// check that loading one fails with a clear job_error. Returns what went
/// wrong, if anything.
std::optional<std::string> save_old_layout_weights(const std::string& path);

} // namespace vidnode::gpu::tiny_t2v_hooks
